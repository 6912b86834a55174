//! The citizen's data rights and retention (CONTRACT §8.5): `citizen export`,
//! `citizen anonymise`, `retention run [--dry-run]`.

use std::io::Read;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Install, binary, file_form, started_with, tools_present};

const CF: &str = "RSSMRA80A01H501U";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn upload(
    install: &Install,
    token: &str,
    reference: &str,
    bytes: &[u8],
    name: &str,
) -> String {
    let resp = install
        .upload(reference, Some(token), file_form(bytes.to_vec(), name))
        .await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

async fn search(install: &Install, token: &str, q: &str) -> Vec<Value> {
    let (status, _, body) = install
        .call("GET", &format!("/api/v1/search?q={q}"), Some(token), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

async fn get(install: &Install, token: &str, path: &str) -> Value {
    let (status, _, body) = install.call("GET", path, Some(token), None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn zip_entries(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut f = archive.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().unwrap().into_owned(), data)
        })
        .collect()
}

#[tokio::test]
async fn export_then_anonymise_once_closed_leaves_no_trace_in_search_cases_or_messages() {
    let (install, users) = started_with(&[("sup", "supervisor")]).await;
    let sup = &users[0].1;
    let mut body = crate::harness::case_body();
    body["description"] = Value::from("Il sig. Mario ROSSI chiede il permesso; tel. 333 1234567");
    body["citizen"]["phone"] = Value::from("+39 333 123 4567");
    let (status, _, case) = install
        .call("POST", "/api/v1/cases", Some(sup), Some(body))
        .await;
    assert_eq!(status, 201, "{case}");
    let reference = case["reference"].as_str().unwrap().to_owned();
    let statement = "Io sottoscritto Mario Rossi dichiaro di risiedere in via Roma 1 (ornitorinco)";
    let doc = upload(
        &install,
        sup,
        &reference,
        statement.as_bytes(),
        "dichiarazione_rossi.txt",
    )
    .await;
    let mail = format!(
        "From: Mario Rossi <mario.rossi@example.it>\r\nSubject: Re: {reference}\r\n\
         Message-ID: <privacy-e2e@example.it>\r\n\r\nBuongiorno, sono Mario Rossi: allego i documenti.\r\n"
    );
    let line = install.ingest_mail("reply.eml", &mail);
    assert_eq!(line["case"], reference.as_str(), "{line}");
    // The document's text is read in the background.
    let deadline = Instant::now() + Duration::from_secs(60);
    while search(&install, sup, "ornitorinco").await.is_empty() {
        assert!(Instant::now() < deadline, "the document was never read");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    get(&install, sup, &format!("/api/v1/cases/{reference}")).await;

    // Export: bad code, unknown person, then the real one.
    let zip_path = install.dir.path().join("rossi.zip");
    let zip = zip_path.to_str().unwrap();
    let out = install.cli(&["citizen", "export", "RSSMRA80A01H501X", "-o", zip]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stranger = sportello_domain::fiscal_code::FiscalCode::complete_person("BNCGNN75C41F205")
        .unwrap()
        .as_str()
        .to_owned();
    let out = install.cli(&["citizen", "export", &stranger, "-o", zip]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(&stranger), "{}", text(&out));
    assert!(!zip_path.exists());
    // The server writes its audit of reads in batches: export until the read has landed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let entries = loop {
        let out = install.cli(&["citizen", "export", CF, "-o", zip]);
        assert!(out.status.success(), "{}", text(&out));
        let entries = zip_entries(&zip_path);
        let index = entries.iter().find(|(n, _)| n == "index.json").unwrap();
        let index: Value = serde_json::from_slice(&index.1).unwrap();
        let landed = index["reads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["actor"] == "sup");
        if landed || Instant::now() > deadline {
            break entries;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let file = |name: &str| {
        entries
            .iter()
            .find(|(n, _)| n == name || n.starts_with(name))
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("{name} not in the export"))
    };
    let readme = String::from_utf8(file("README.txt")).unwrap();
    assert!(readme.contains("art. 15") && readme.contains("COPY OF PERSONAL DATA"));
    let index: Value = serde_json::from_slice(&file("index.json")).unwrap();
    assert_eq!(index["person"]["fiscal_code"], CF);
    assert_eq!(index["cases"][0]["case"]["reference"], reference.as_str());
    assert!(
        index["cases"][0]["case"]["timeline"]
            .as_array()
            .unwrap()
            .len()
            >= 2,
        "the timeline"
    );
    assert_eq!(
        index["cases"][0]["messages_received"][0]["sender"]
            .as_str()
            .map(|s| s.contains("Rossi")),
        Some(true),
        "{}",
        index["cases"][0]
    );
    assert_eq!(
        file(&format!("documents/{reference}/{doc}-")),
        statement.as_bytes(),
        "the document's bytes"
    );
    assert!(file(&format!("messages/{reference}/")).starts_with(b"From: Mario Rossi"));
    let reads = index["reads"].as_array().unwrap();
    assert!(
        reads
            .iter()
            .any(|r| r["actor"] == "sup" && r["target"] == reference.as_str()),
        "who read the case: {reads:?}"
    );
    assert_eq!(index["payments"], serde_json::json!([]));
    assert!(index["cases"][0]["calls"].is_array());

    // Refused while the case is open, naming it; nothing changed.
    let out = install.cli(&[
        "citizen",
        "anonymise",
        CF,
        "--reason",
        "richiesta prot. 123",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains(&reference), "{}", text(&out));
    assert!(
        search(&install, sup, "Rossi").await.len() >= 3,
        "case, document, message"
    );
    let out = install.cli(&["citizen", "anonymise", "nonsense", "--reason", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    install
        .act(
            sup,
            &reference,
            serde_json::json!({"action": "withdraw", "note": "rinuncia"}),
        )
        .await;
    let out = install.cli(&[
        "citizen",
        "anonymise",
        CF,
        "--reason",
        "richiesta prot. 123",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ANON-"), "{}", text(&out));

    for q in [
        "Rossi",
        "Mario",
        CF,
        "mario.rossi%40example.it",
        "3331234567",
    ] {
        let found = search(&install, sup, q).await;
        assert!(found.is_empty(), "{q} still found: {found:?}");
    }
    assert_eq!(
        search(&install, sup, "ornitorinco").await.len(),
        1,
        "the document is still searchable"
    );
    let case = get(&install, sup, &format!("/api/v1/cases/{reference}")).await;
    let messages = get(
        &install,
        sup,
        &format!("/api/v1/cases/{reference}/messages"),
    )
    .await;
    for (what, json) in [("case", &case), ("messages", &messages)] {
        let json = json.to_string().to_lowercase();
        for needle in ["rossi", "mario", &CF.to_lowercase(), "1234567"] {
            assert!(!json.contains(needle), "{needle} in the {what}: {json}");
        }
    }
    assert_eq!(case["status"], "closed");
    assert!(
        case["citizen"]["name"]
            .as_str()
            .unwrap()
            .starts_with("ANON-")
    );
    assert_eq!(
        case["documents"][0]["id"],
        doc.as_str(),
        "anonymising deletes no document"
    );
    let out = install.cli(&["register", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = install.cli(&["documents", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    // The person is no longer known.
    let out = install.cli(&["citizen", "export", CF, "-o", zip]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

/// `retention run` as if `days` had passed (libfaketime).
fn retention_later(install: &Install, days: u32, args: &[&str]) -> Output {
    Command::new("faketime")
        .arg("-f")
        .arg(format!("+{days}d"))
        .arg(binary())
        .arg("--config")
        .arg(&install.config)
        .args(["retention", "run"])
        .args(args)
        .current_dir(install.dir.path())
        .env_remove("SPORTELLO_CONFIG")
        .output()
        .unwrap()
}

#[tokio::test]
async fn retention_deletes_only_unregistered_documents_of_cases_past_their_period() {
    if !tools_present(&["faketime"]) {
        return;
    }
    let mut install = Install::new("[retention]\nztl_permit = \"30d\"\n").await;
    let sup = install.user("sup", "supervisor");
    install.start(&[]).await;
    // An issued permit: its PDF is registered outgoing; an upload is not registered.
    let (reference, _permit) = install.issued_permit(&sup, &["AB123CD"]).await;
    let upload_id = upload(
        &install,
        &sup,
        &reference,
        b"scansione carta identita",
        "ci.txt",
    )
    .await;
    install
        .act(&sup, &reference, serde_json::json!({"action": "close"}))
        .await;
    let open = install.create_case(&sup).await;
    let before = get(&install, &sup, &format!("/api/v1/cases/{reference}")).await;
    let documents = before["documents"].as_array().unwrap().len();
    assert!(documents >= 2, "{before}");

    // Not yet due: nothing to do.
    let out = retention_later(&install, 10, &["--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ztl_permit (30d"), "{}", text(&out));
    assert!(
        text(&out).contains(": 0 cases would be anonymised"),
        "{}",
        text(&out)
    );

    // Due: a dry run reports and changes nothing.
    let out = retention_later(&install, 40, &["--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("1 cases would be anonymised, 1 documents would be deleted"),
        "{}",
        text(&out)
    );
    let same = get(&install, &sup, &format!("/api/v1/cases/{reference}")).await;
    // The text reader works in the background meanwhile: compare what retention would change.
    let ids = |case: &Value| -> Vec<String> {
        case["documents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&same), ids(&before));
    assert_eq!(same["citizen"], before["citizen"]);

    let out = retention_later(&install, 40, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("1 cases anonymised, 1 documents deleted"),
        "{}",
        text(&out)
    );
    let after = get(&install, &sup, &format!("/api/v1/cases/{reference}")).await;
    let ids: Vec<&str> = after["documents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(ids.len(), documents - 1, "{after}");
    assert!(!ids.contains(&upload_id.as_str()));
    let (status, _, _) = install
        .call(
            "GET",
            &format!("/api/v1/documents/{upload_id}"),
            Some(&sup),
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert!(
        after["citizen"]["name"]
            .as_str()
            .unwrap()
            .starts_with("ANON-"),
        "{after}"
    );
    assert!(!after.to_string().contains("Rossi"), "{after}");
    // The open case of the same person is untouched.
    let other = get(&install, &sup, &format!("/api/v1/cases/{open}")).await;
    assert_eq!(other["citizen"]["name"], "Mario Rossi");

    for args in [["register", "verify"], ["documents", "verify"]] {
        let out = install.cli(&args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    }
    // Idempotent.
    let out = retention_later(&install, 41, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("0 cases anonymised, 0 documents deleted"),
        "{}",
        text(&out)
    );

    // A bad period names its key (exit 2).
    let bad = Install::new("[retention]\nztl_permit = \"5 anni\"\n").await;
    let out = bad.cli(&["retention", "run", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("retention.ztl_permit"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn a_killed_retention_run_is_finished_by_the_next_and_leaves_no_bytes_behind() {
    if !tools_present(&["faketime"]) {
        return;
    }
    let mut install = Install::new("[retention]\nztl_permit = \"30d\"\n").await;
    let sup = install.user("sup", "supervisor");
    install.start(&[]).await;
    let mut uploaded = Vec::new();
    for i in 0..30 {
        let reference = install.create_case(&sup).await;
        let bytes = format!("documento {i} di Mario Rossi");
        upload(&install, &sup, &reference, bytes.as_bytes(), "doc.txt").await;
        install
            .act(
                &sup,
                &reference,
                serde_json::json!({"action": "withdraw", "note": "rinuncia"}),
            )
            .await;
        use sha2::Digest;
        uploaded.push(hex::encode(sha2::Sha256::digest(bytes.as_bytes())));
    }
    // SIGKILLed wherever it happens to be (maybe before it began, maybe after it ended).
    let mut child = Command::new("faketime")
        .arg("-f")
        .arg("+40d")
        .arg(binary())
        .arg("--config")
        .arg(&install.config)
        .args(["retention", "run"])
        .current_dir(install.dir.path())
        .env_remove("SPORTELLO_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let _ = child.kill();
    let _ = child.wait();
    let out = retention_later(&install, 40, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let out = retention_later(&install, 41, &[]);
    assert!(
        text(&out).contains("0 cases anonymised, 0 documents deleted"),
        "{}",
        text(&out)
    );
    for sha in &uploaded {
        let path = install
            .data_dir()
            .join("documents/sha256")
            .join(&sha[..2])
            .join(sha);
        assert!(!path.exists(), "bytes left behind: {}", path.display());
    }
    let (_, _, listed) = install
        .call("GET", "/api/v1/cases?per_page=100", Some(&sup), None)
        .await;
    assert_eq!(listed["total"], 30, "no case is lost: {listed}");
    assert!(!listed.to_string().contains("Rossi"), "{listed}");
    for args in [["register", "verify"], ["documents", "verify"]] {
        let out = install.cli(&args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    }
}
