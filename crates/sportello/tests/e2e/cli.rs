//! The command line: users, configuration errors, the protocol register.

use sportello_domain::calendar::rome_date;
use sportello_domain::clock::{Clock, SystemClock};
use sqlx::Executor;
use sqlx::any::AnyPoolOptions;

use crate::harness::{Install, case_body};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn users_and_usage_errors() {
    let install = Install::new("").await;
    let out = install.cli(&[
        "user",
        "add",
        "anna",
        "--role",
        "supervisor",
        "--name",
        "Anna Blu",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("password: ") && l.len() > 20),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("token: spt_")), "{text}");
    let out = install.cli(&["user", "add", "anna", "--role", "supervisor"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a duplicate login is a run-time failure"
    );
    assert!(stderr(&out).contains("already exists"));
    let out = install.cli(&["user", "add", "bob", "--role", "emperor"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown role"));
    let out = install.cli(&["user", "add", "Bad Name", "--role", "operator"]);
    assert_eq!(out.status.code(), Some(2));
    let out = install.cli(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(2));

    std::fs::write(&install.config, "listen = \"nowhere\"\n").unwrap();
    let out = install.cli(&["register", "verify"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("`listen`"), "{}", stderr(&out));
    std::fs::write(
        &install.config,
        "[calendar]\nextra_holidays = [\"31-12\"]\n",
    )
    .unwrap();
    let out = install.cli(&["register", "verify"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("calendar.extra_holidays"),
        "{}",
        stderr(&out)
    );

    let out = install.cli(&["config", "example"]);
    assert!(out.status.success());
    std::fs::write(&install.config, stdout(&out)).unwrap();
    let out = install.cli(&["config", "check"]);
    assert!(
        out.status.success(),
        "the printed example must itself be valid: {}",
        stderr(&out)
    );
}

/// Runs SQL that bypasses the register's append-only triggers, as an attacker with
/// database access could.
async fn tamper(database_url: &str, sql_sqlite: &str, sql_postgres: &str) {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(database_url)
        .await
        .unwrap();
    let sql = if database_url.starts_with("sqlite") {
        sql_sqlite
    } else {
        sql_postgres
    };
    pool.execute(sqlx::AssertSqlSafe(sql.to_owned()))
        .await
        .unwrap();
    pool.close().await;
}

/// Runs a poppler tool; `None` (with a notice) when poppler-utils is not installed, unless
/// `SPORTELLO_REQUIRE_SERVICES=1`.
fn poppler(tool: &str, args: &[&str], pdf: &std::path::Path) -> Option<String> {
    // pdftotext writes next to the file unless told '-' (standard output).
    let to_stdout: &[&str] = if tool == "pdftotext" { &["-"] } else { &[] };
    match std::process::Command::new(tool)
        .args(args)
        .arg(pdf)
        .args(to_stdout)
        .output()
    {
        Ok(out) => {
            assert!(out.status.success(), "{tool}: {}", stderr(&out));
            Some(stdout(&out))
        }
        Err(e) if std::env::var("SPORTELLO_REQUIRE_SERVICES").as_deref() != Ok("1") => {
            eprintln!("skipped: {tool} not available ({e}; Debian package poppler-utils)");
            None
        }
        Err(e) => panic!("SPORTELLO_REQUIRE_SERVICES=1 but {tool} cannot run: {e}"),
    }
}

/// The daily register is kept for conservation: PDF/A-2b (its XMP says part 2,
/// conformance B), with an sRGB output intent, every font embedded, and text that can be
/// extracted (the first protocol number of the day is found in it).
fn check_register_pdf(pdf: &std::path::Path, first_number: &str) {
    let bytes = std::fs::read(pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    let raw = String::from_utf8_lossy(&bytes);
    assert!(raw.contains("/OutputIntents"), "no output intent");
    assert!(raw.contains("/DestOutputProfile"), "no ICC profile");
    if let Some(meta) = poppler("pdfinfo", &["-meta"], pdf) {
        assert!(meta.contains("<pdfaid:part>2</pdfaid:part>"), "{meta}");
        assert!(
            meta.contains("<pdfaid:conformance>B</pdfaid:conformance>"),
            "{meta}"
        );
    }
    if let Some(fonts) = poppler("pdffonts", &[], pdf) {
        let rows: Vec<Vec<&str>> = fonts
            .lines()
            .skip(2)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert!(!rows.is_empty(), "no fonts: {fonts}");
        for row in rows {
            // name type encoding emb sub uni object ID
            assert_eq!(row[row.len() - 5], "yes", "not embedded:\n{fonts}");
        }
    }
    if let Some(text) = poppler("pdftotext", &["-layout"], pdf) {
        assert!(
            text.contains(first_number),
            "{first_number} not in:\n{text}"
        );
    }
}

#[tokio::test]
async fn register_verify_finds_tampering_and_daily_register_is_written() {
    let mut install = Install::new("").await;
    let op = install.user("op1", "operator");
    install.start(&[]).await;
    for _ in 0..5 {
        let (status, _, _) = install
            .call("POST", "/api/v1/cases", Some(&op), Some(case_body()))
            .await;
        assert_eq!(status, 201);
    }
    install.stop();
    let out = install.cli(&["register", "verify"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("5 entries"));

    let today = rome_date(SystemClock.now()).format("%Y-%m-%d").to_string();
    let csv = install.dir.path().join("registro.csv");
    let out = install.cli(&[
        "register",
        "daily",
        "--date",
        &today,
        "-o",
        csv.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 6, "header + 5 registrations: {text}");
    assert!(text.lines().nth(1).unwrap().contains("Mario Rossi"));
    let sidecar = std::fs::read_to_string(format!("{}.sha256", csv.display())).unwrap();
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    assert!(sidecar.starts_with(&digest), "{sidecar} vs {digest}");
    assert!(stdout(&out).starts_with(&digest));
    let pdf = install.dir.path().join("registro.pdf");
    let out = install.cli(&[
        "register",
        "daily",
        "--date",
        &today,
        "-o",
        pdf.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first_number = text.lines().nth(1).unwrap().split(',').next().unwrap();
    check_register_pdf(&pdf, first_number);
    let out = install.cli(&["register", "daily", "--date", "26/11/2026"]);
    assert_eq!(out.status.code(), Some(2));
    let out = install.cli(&["register", "daily", "--date", &today, "-o", "x.txt"]);
    assert_eq!(out.status.code(), Some(2));

    // Alter the third entry behind the triggers' back: verify must say where.
    tamper(
        &install.database_url,
        "DROP TRIGGER protocol_register_no_update; UPDATE protocol_register SET subject = 'altro' WHERE seq = 3",
        "ALTER TABLE protocol_register DISABLE TRIGGER protocol_register_append_only; \
         UPDATE protocol_register SET subject = 'altro' WHERE seq = 3",
    )
    .await;
    let out = install.cli(&["register", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("/0000003"), "{}", stdout(&out));
    assert!(stdout(&out).contains("altered"), "{}", stdout(&out));
}

#[tokio::test]
async fn register_verify_finds_a_removed_last_entry() {
    let mut install = Install::new("").await;
    let op = install.user("op1", "operator");
    install.start(&[]).await;
    for _ in 0..3 {
        install
            .call("POST", "/api/v1/cases", Some(&op), Some(case_body()))
            .await;
    }
    install.stop();
    tamper(
        &install.database_url,
        "DROP TRIGGER protocol_register_no_delete; PRAGMA foreign_keys = OFF; DELETE FROM protocol_register WHERE seq = 3",
        "ALTER TABLE protocol_register DISABLE TRIGGER protocol_register_append_only; DELETE FROM protocol_register WHERE seq = 3",
    )
    .await;
    let out = install.cli(&["register", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("removed"), "{}", stdout(&out));
}
