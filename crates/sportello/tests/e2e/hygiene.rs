//! Availability and hygiene (issue 16 §5) through the real binary: one server per SQLite
//! file, a full disk named at start, a locked database answered 503 with `Retry-After`,
//! uploads up to `documents.max_upload_bytes` on every path, the headers every answer
//! carries, `/metrics` behind a token, and `next=` that cannot split a header.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};

use crate::browser::{Browser, csrf_of};
use crate::harness::{Install, binary, case_body};

fn is_sqlite(install: &Install) -> bool {
    install.database_url.starts_with("sqlite")
}

/// Runs `sportello serve` with `args` until it exits (at most a minute), returning its exit
/// code and its output; a server that keeps running is killed and fails the test.
fn serve_until_exit(install: &Install, global: &[&str], args: &[&str]) -> (i32, String) {
    let mut child = Command::new(binary())
        .arg("--config")
        .arg(&install.config)
        .args(global)
        .arg("serve")
        .args(args)
        .current_dir(install.dir.path())
        .env_remove("SPORTELLO_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (status.code().unwrap_or(-1), text);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the second server kept running instead of refusing to start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn a_second_server_on_one_sqlite_file_is_refused_and_a_killed_one_does_not_block() {
    let mut install = Install::new("").await;
    if !is_sqlite(&install) {
        eprintln!("skipped: the serve lock is for SQLite (PostgreSQL runs several instances)");
        return;
    }
    install.start(&[]).await;
    let other_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let listen = format!("127.0.0.1:{other_port}");
    let (code, output) = serve_until_exit(&install, &[], &["--listen", &listen]);
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("already running"), "{output}");
    assert!(output.contains("serve.lock"), "{output}");
    // Another data folder on the same database file: refused too.
    let elsewhere = install.dir.path().join("other-data");
    let (code, output) = serve_until_exit(
        &install,
        &["--data", elsewhere.to_str().unwrap()],
        &["--listen", &listen],
    );
    assert_eq!(code, 2, "{output}");
    // Commands beside a running server keep working.
    let added = install.cli(&["user", "add", "beside", "--role", "operator"]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    // A SIGKILLed server leaves no lock behind.
    install.kill();
    install.start(&[]).await;
    let (status, _, _) = install.call("GET", "/healthz", None, None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_full_disk_at_start_is_named_at_once() {
    let install = Install::new("").await;
    let probe = Command::new("unshare")
        .args(["-rm", "true"])
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("skipped: no user namespaces here (unshare -rm) to mount a full tmpfs");
        return;
    }
    let data = install.data_dir();
    std::fs::create_dir_all(&data).unwrap();
    // A private mount namespace: a 256 KiB tmpfs over the data folder, filled up.
    let script = format!(
        "mount -t tmpfs -o size=256k tmpfs '{data}' && \
         (dd if=/dev/zero of='{data}/fill' bs=4k 2>/dev/null; true) && \
         exec '{bin}' --config '{config}' serve",
        data = data.display(),
        bin = binary(),
        config = install.config.display()
    );
    let started = Instant::now();
    let out = Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .current_dir(install.dir.path())
        .env_remove("SPORTELLO_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&data.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("does not take writes") && stderr.contains("No space left"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("pool timed out"),
        "it names the disk, not the pool: {stderr}"
    );
    eprintln!("refused after {:?}", started.elapsed());
}

#[tokio::test]
async fn a_locked_database_answers_503_with_retry_after_and_readyz_tells_it() {
    use sqlx::{Connection, Executor};
    let mut install = Install::new("").await;
    if !is_sqlite(&install) {
        eprintln!(
            "skipped: another process holding the write lock is SQLite's case (PostgreSQL's codes are unit-tested)"
        );
        return;
    }
    let (op_password, op) = install.user_with_password("op", "operator");
    install.start(&[]).await;
    let reference = install.create_case(&op).await;
    let (mut browser, _) = Browser::signed_in(&install, "op", &op_password).await;
    let resp = install
        .client
        .get(format!("{}/readyz", install.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "ready");

    // Another process takes SQLite's write lock and keeps it.
    sqlx::any::install_default_drivers();
    let mut holder = sqlx::AnyConnection::connect(&install.database_url)
        .await
        .unwrap();
    holder
        .execute("BEGIN EXCLUSIVE; UPDATE readiness_probe SET probed_at = 0;")
        .await
        .unwrap();
    let ready = install
        .client
        .get(format!("{}/readyz", install.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.headers().contains_key("retry-after"));
    let healthz = install
        .client
        .get(format!("{}/healthz", install.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200, "reads still answer");
    let created = install
        .client
        .post(format!("{}/api/v1/cases", install.base()))
        .bearer_auth(&op)
        .json(&case_body())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 503);
    assert_eq!(created.headers()["retry-after"], "5");
    assert_eq!(
        created.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = created.json().await.unwrap();
    assert_eq!(problem["status"], 503);
    assert!(
        problem["detail"].as_str().unwrap().contains("try again"),
        "{problem}"
    );
    // The case page can read the case (WAL readers are not blocked) but not record the
    // read: it shows nothing and answers 503, never the data unaudited.
    let page = browser.get(&format!("/ufficio/pratiche/{reference}")).await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(!page.body.contains(&reference), "{}", page.body);
    holder.execute("ROLLBACK").await.unwrap();
    holder.close().await.unwrap();
    let page = browser.get(&format!("/ufficio/pratiche/{reference}")).await;
    assert_eq!(page.status, 200, "shown once the read can be recorded");
    let (status, _, _) = install
        .call("POST", "/api/v1/cases", Some(&op), Some(case_body()))
        .await;
    assert_eq!(status, 201, "writes resume once the lock is gone");
}

/// How many documents a case has.
async fn documents(install: &Install, token: &str, reference: &str) -> usize {
    let (_, _, case) = install
        .call(
            "GET",
            &format!("/api/v1/cases/{reference}"),
            Some(token),
            None,
        )
        .await;
    case["documents"].as_array().unwrap().len()
}

/// A PDF-looking file of `size` bytes.
fn pdf_of(size: usize) -> Vec<u8> {
    let mut bytes = b"%PDF-1.4\n".to_vec();
    bytes.resize(size, b'x');
    bytes
}

#[tokio::test]
async fn office_and_portal_uploads_take_files_up_to_the_limit_and_refuse_larger_ones_with_413() {
    // 3 MiB: above axum's 1 MB default, which used to cut web forms short.
    let mut install = Install::new("[documents]\nmax_upload_bytes = 3145728\n").await;
    let (password, op) = install.user_with_password("op", "operator");
    install.start(&[]).await;
    let reference = install.create_case(&op).await;
    let mut browser = Browser::new(&install);
    browser.sign_in("op", &password).await;
    let case_path = format!("/ufficio/pratiche/{reference}");

    // 1.5 MB on the case page: stored (it used to be answered 200 and dropped).
    let token = csrf_of(&browser.get(&case_path).await.body);
    let part = Part::bytes(pdf_of(1_500_000))
        .file_name("verbale.pdf")
        .mime_str("application/pdf")
        .unwrap();
    let form = Form::new().text("csrf", token.clone()).part("file", part);
    let uploaded = browser
        .post_multipart(&format!("{case_path}/documenti"), form)
        .await;
    assert_eq!(uploaded.status, 200, "{}", uploaded.body);
    assert!(
        uploaded.body.contains("Abbiamo ricevuto 1 documenti"),
        "{}",
        uploaded.body
    );
    assert_eq!(documents(&install, &op, &reference).await, 1);

    // Over the limit: 413 naming the limit, nothing stored.
    let part = Part::bytes(pdf_of(3_300_000))
        .file_name("troppo.pdf")
        .mime_str("application/pdf")
        .unwrap();
    let form = Form::new().text("csrf", token.clone()).part("file", part);
    let refused = browser
        .post_multipart(&format!("{case_path}/documenti"), form)
        .await;
    assert_eq!(refused.status, 413, "{}", refused.body);
    assert!(refused.body.contains("3.0 MB"), "{}", refused.body);
    assert_eq!(documents(&install, &op, &reference).await, 1);

    // The API: up to the limit, 413 above.
    let ok = install
        .upload(
            &reference,
            Some(&op),
            crate::harness::file_form(pdf_of(2_000_000), "a.pdf"),
        )
        .await;
    assert_eq!(ok.status(), 201);
    let too_big = install
        .upload(
            &reference,
            Some(&op),
            crate::harness::file_form(pdf_of(3_300_000), "b.pdf"),
        )
        .await;
    assert_eq!(too_big.status(), 413);

    // The portal's application: a 2 MB file is taken, one over the limit is a 413.
    let mut citizen = Browser::new(&install);
    let token = csrf_of(&citizen.get("/domanda").await.body);
    let form = |token: &str, size: usize| {
        Form::new()
            .text("csrf", token.to_owned())
            .text("category", "residenti")
            .text("name", "Mario Rossi")
            .text("fiscal_code", "RSSMRA80A01H501U")
            .text("email", "mario.rossi@example.it")
            .text("plates", "ab 123 cd")
            .text("privacy", "yes")
            .part(
                "doc_documento_identita",
                Part::bytes(pdf_of(size))
                    .file_name("carta.pdf")
                    .mime_str("application/pdf")
                    .unwrap(),
            )
            .part(
                "doc_carta_circolazione",
                Part::bytes(pdf_of(1000))
                    .file_name("libretto.pdf")
                    .mime_str("application/pdf")
                    .unwrap(),
            )
    };
    let refused = citizen
        .post_multipart("/domanda", form(&token, 3_300_000))
        .await;
    assert_eq!(refused.status, 413, "{}", refused.body);
    assert!(refused.body.contains("3.0 MB"), "{}", refused.body);
    let applied = citizen
        .post_multipart("/domanda", form(&token, 2_000_000))
        .await;
    assert_eq!(applied.status, 201, "{}", applied.body);
}

#[tokio::test]
async fn every_answer_carries_the_hygiene_headers_and_hsts_follows_https() {
    let mut install = Install::new("").await;
    install.start(&[]).await;
    for path in ["/", "/ufficio/login", "/healthz", "/api/v1/cases"] {
        let resp = install
            .client
            .get(format!("{}{path}", install.base()))
            .send()
            .await
            .unwrap();
        let headers = resp.headers();
        let policy = headers["permissions-policy"].to_str().unwrap();
        for feature in ["camera=()", "microphone=()", "geolocation=()", "payment=()"] {
            assert!(policy.contains(feature), "{path}: {policy}");
        }
        assert!(
            !headers.contains_key("strict-transport-security"),
            "{path}: no HSTS over plain http"
        );
        assert_eq!(headers["cache-control"], "no-store", "{path}");
    }
    let css = install
        .client
        .get(format!("{}/static/sportello.css", install.base()))
        .send()
        .await
        .unwrap();
    assert_ne!(
        css.headers()["cache-control"],
        "no-store",
        "assets keep caching"
    );
    install.stop();

    let mut https = Install::new("").await;
    let config = std::fs::read_to_string(&https.config).unwrap().replace(
        &format!("public_url = \"http://127.0.0.1:{}\"", https.port),
        "public_url = \"https://permessi.comune.example.it\"",
    );
    std::fs::write(&https.config, config).unwrap();
    https.start(&[]).await;
    let resp = https
        .client
        .get(format!("{}/", https.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}

#[tokio::test]
async fn metrics_need_a_token_or_a_separate_address() {
    let mut install = Install::new("[metrics]\ntoken = \"scraper-secret-1234\"\n").await;
    let op = install.user("op", "operator");
    let sup = install.user("sup", "supervisor");
    install.start(&[]).await;
    let get = |token: Option<&str>| {
        let mut req = install.client.get(format!("{}/metrics", install.base()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.unwrap() }
    };
    assert_eq!(get(None).await.status(), 401);
    assert_eq!(get(Some("wrong")).await.status(), 401);
    assert_eq!(get(Some(&op)).await.status(), 401, "an operator's token");
    let scraped = get(Some("scraper-secret-1234")).await;
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("sportello_cases"));
    assert_eq!(get(Some(&sup)).await.status(), 200, "a supervisor's token");
    install.stop();

    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut separate = Install::new(&format!(
        "[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"
    ))
    .await;
    let sup = separate.user("sup", "supervisor");
    separate.start(&[]).await;
    let public = separate
        .client
        .get(format!("{}/metrics", separate.base()))
        .bearer_auth(&sup)
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    let internal = separate
        .client
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(internal.status(), 200);
    assert!(
        internal
            .text()
            .await
            .unwrap()
            .contains("http_requests_total")
    );
}

#[tokio::test]
async fn a_next_with_cr_lf_after_sign_in_goes_to_the_office_not_to_a_500() {
    let mut install = Install::new("").await;
    let (password, _) = install.user_with_password("op", "operator");
    install.start(&[]).await;
    let mut browser = Browser::new(&install);
    let form_page = browser
        .get("/ufficio/login?next=%2Fufficio%0D%0ASet-Cookie:%20x%3D1")
        .await;
    assert_eq!(form_page.status, 200, "{}", form_page.body);
    let csrf = csrf_of(&form_page.body);
    let signed = browser
        .post_form(
            "/ufficio/login",
            &[
                ("csrf", &csrf),
                ("login", "op"),
                ("password", &password),
                ("next", "/ufficio\r\nSet-Cookie: x=1"),
            ],
        )
        .await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    assert_eq!(signed.location, "/ufficio");
}

#[tokio::test]
async fn staged_uploads_of_a_crash_are_removed_and_files_are_private() {
    let mut install = Install::new("").await;
    let tmp = install.data_dir().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let orphan = tmp.join("upload-00000000000000000000000000000001");
    std::fs::write(&orphan, b"half an upload").unwrap();
    let old_document = install.data_dir().join("documents").join("old.bin");
    std::fs::create_dir_all(old_document.parent().unwrap()).unwrap();
    std::fs::write(&old_document, b"x").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&old_document, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let op = install.user("op", "operator");
    install.start(&[]).await;
    let reference = install.create_case(&op).await;
    let uploaded = install
        .upload(
            &reference,
            Some(&op),
            crate::harness::file_form(b"%PDF-1.4 x".to_vec(), "x.pdf"),
        )
        .await;
    assert_eq!(uploaded.status(), 201);
    if is_sqlite(&install) {
        assert!(!orphan.exists(), "the crash's staged upload is gone");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // Tightened in the background at start.
        let deadline = Instant::now() + Duration::from_secs(30);
        while mode(&old_document) != 0o600 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(mode(&old_document), 0o600);
        let mut stack = vec![install.data_dir()];
        while let Some(path) = stack.pop() {
            let meta = std::fs::metadata(&path).unwrap();
            if meta.is_dir() {
                assert_eq!(mode(&path), 0o700, "{}", path.display());
                stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else {
                assert_eq!(mode(&path) & 0o077, 0, "{}", path.display());
            }
        }
        if is_sqlite(&install) {
            let db = install.database_url.trim_start_matches("sqlite://");
            assert_eq!(mode(std::path::Path::new(db)) & 0o077, 0, "{db}");
        }
    }
}

#[tokio::test]
async fn a_register_import_accounts_for_every_line_and_an_open_quote_loses_nothing() {
    let install = Install::new("").await;
    let row = |permit: &str, name: &str, plate: &str, country: &str| {
        format!(
            "{permit},residenti,RSSMRA80A01H501U,{name},{plate},{country},2026-01-01,2026-12-31,active"
        )
    };
    let file = [
        "permit,category,holder_fiscal_code,holder_name,plate,country,valid_from,valid_to,status"
            .to_owned(),
        row("P1", "\"Mario Rossi", "AB123CD", "IT"),
        row("P2", "Luigi Verdi", "CD456EF", "IT"),
        String::new(),
        row("P3", "Nul\u{0}lo", "EF789GH", "IT"),
        row("P4", "Anna \u{202E}issoR", "GH012IJ", "IT"),
        row("P5", "Anna Blu", "IJ345KL", "ZZ"),
    ]
    .join("\n")
        + "\n";
    let path = install.dir.path().join("registro.csv");
    std::fs::write(&path, file).unwrap();
    let out = install.cli(&["permits", "import", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    for (line, reason) in [
        (2, "unterminated quote"),
        (5, "control character"),
        (6, "bidirectional"),
        (7, "ISO 3166"),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!("line {line}:")) && l.contains(reason)),
            "line {line} ({reason}) not reported:\n{stderr}"
        );
    }
    assert!(stdout.contains("1 rows added"), "{stdout}");
    assert!(
        stdout.contains("7 lines read: 1 header, 1 accepted, 4 refused, 1 blank"),
        "{stdout}"
    );
}

#[tokio::test]
async fn unknown_fields_and_bidirectional_controls_in_names_are_refused_with_422() {
    let mut install = Install::new("").await;
    let op = install.user("op", "operator");
    install.start(&[]).await;
    let mut body = case_body();
    body["colour"] = serde_json::json!("blue");
    let (status, ctype, problem) = install
        .call("POST", "/api/v1/cases", Some(&op), Some(body))
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(ctype, "application/problem+json");
    assert_eq!(problem["errors"][0]["field"], "colour", "{problem}");
    let mut body = case_body();
    body["citizen"]["nickname"] = serde_json::json!("Mario");
    let (status, _, problem) = install
        .call("POST", "/api/v1/cases", Some(&op), Some(body))
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(
        problem["errors"][0]["field"], "citizen.nickname",
        "{problem}"
    );
    let mut body = case_body();
    body["citizen"]["name"] = serde_json::json!("Mario \u{202E}issoR");
    let (status, _, problem) = install
        .call("POST", "/api/v1/cases", Some(&op), Some(body))
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "citizen.name", "{problem}");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("bidirectional"),
        "{problem}"
    );
    let added = install.cli(&[
        "user",
        "add",
        "eve",
        "--role",
        "operator",
        "--name",
        "Eve \u{202E}",
    ]);
    assert_eq!(added.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&added.stderr).contains("name:"));
}
