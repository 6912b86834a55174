//! The audit trails (CONTRACT §8.6): every read answered with 200 has its entry even when
//! the server is killed right after; who may read the trails; the chain verifies.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::harness::{Install, file_form};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_answered_read_is_audited_even_when_the_server_is_killed() {
    let mut install = Install::new("").await;
    let op = install.user("op.audit", "operator");
    let sup = install.user("sup.audit", "supervisor");
    install.start(&[]).await;
    let reference = install.create_case(&op).await;
    let uploaded = install
        .upload(
            &reference,
            Some(&op),
            file_form(b"%PDF-1.4\n%audit\n".to_vec(), "a.pdf"),
        )
        .await;
    assert_eq!(uploaded.status(), 201);
    let document: serde_json::Value = uploaded.json().await.unwrap();
    let document_id = match &document["id"] {
        serde_json::Value::String(id) => id.clone(),
        other => other.to_string(),
    };

    // Readers hammer the case until the server dies under them.
    let answered = Arc::new(AtomicUsize::new(0));
    let dead = Arc::new(AtomicBool::new(false));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut readers = Vec::new();
    for _ in 0..8 {
        let (client, answered, dead) = (client.clone(), answered.clone(), dead.clone());
        let url = format!("{}/api/v1/cases/{reference}", install.base());
        let token = op.clone();
        readers.push(tokio::spawn(async move {
            while !dead.load(Ordering::SeqCst) {
                match client.get(&url).bearer_auth(&token).send().await {
                    Ok(r) if r.status() == 200 => {
                        // Only a complete answer counts as answered.
                        if r.bytes().await.is_ok() {
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Ok(r) => panic!("read answered {}", r.status()),
                    Err(_) => break,
                }
            }
        }));
    }
    while answered.load(Ordering::SeqCst) < 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    install.kill();
    dead.store(true, Ordering::SeqCst);
    for r in readers {
        r.await.unwrap();
    }
    let answered = answered.load(Ordering::SeqCst);

    install.start(&[]).await;
    let (status, _, document_read) = install
        .call(
            "GET",
            &format!("/api/v1/documents/{document_id}"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, 200, "{document_read}");
    let (status, _, reads) = install
        .call(
            "GET",
            &format!("/api/v1/audit/reads?reference={reference}"),
            Some(&sup),
            None,
        )
        .await;
    assert_eq!(status, 200, "{reads}");
    assert_eq!(reads["reference"], reference.as_str());
    let items = reads["items"].as_array().unwrap();
    let case_reads = items
        .iter()
        .filter(|i| i["action"] == "read_case" && i["actor"] == "op.audit")
        .count();
    assert!(
        case_reads >= answered,
        "{answered} reads answered with 200 but only {case_reads} audited"
    );
    assert!(
        items
            .iter()
            .any(|i| i["action"] == "read_document" && i["target"] == document_id.as_str()),
        "the document's read is among the case's reads: {reads}"
    );
    assert!(
        items
            .iter()
            .all(|i| i["at"].as_str().is_some_and(|at| at.len() >= 20))
    );

    // Only supervisors and administrators read the trails; bad input is a clear 422.
    for path in [
        format!("/api/v1/audit/reads?reference={reference}"),
        "/api/v1/audit/security".to_owned(),
    ] {
        let (status, _, _) = install.call("GET", &path, Some(&op), None).await;
        assert_eq!(status, 403, "{path}");
        let (status, _, _) = install.call("GET", &path, None, None).await;
        assert_eq!(status, 401, "{path}");
    }
    for (path, expected) in [
        ("/api/v1/audit/reads?reference=not-a-case", 404),
        ("/api/v1/audit/reads?reference=", 404),
        ("/api/v1/audit/reads", 422),
        ("/api/v1/audit/security?from=yesterday", 422),
        ("/api/v1/audit/security?to=%0B", 422),
    ] {
        let (status, ctype, problem) = install.call("GET", path, Some(&sup), None).await;
        assert_eq!(status, expected, "{path}: {problem}");
        assert_eq!(ctype, "application/problem+json");
    }
    // A period that ends before it begins holds nothing.
    let (status, _, empty) = install
        .call(
            "GET",
            "/api/v1/audit/security?from=2026-12-10&to=2026-12-01",
            Some(&sup),
            None,
        )
        .await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty["items"], serde_json::json!([]));
    // A wrong token is a security event, shown to supervisors with its client's address
    // and never the token itself.
    let (status, _, _) = install
        .call("GET", "/api/v1/cases", Some("spt_not-a-real-token"), None)
        .await;
    assert_eq!(status, 401);
    let (status, _, events) = install
        .call("GET", "/api/v1/audit/security", Some(&sup), None)
        .await;
    assert_eq!(status, 200, "{events}");
    let invalid = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "token_invalid")
        .unwrap_or_else(|| panic!("no token_invalid event: {events}"));
    assert_eq!(invalid["address"], "127.0.0.1", "{invalid}");
    assert!(
        !invalid.to_string().contains("not-a-real-token"),
        "{invalid}"
    );

    // The chain of reads is intact after the kill.
    install.stop();
    let out = install.cli(&["audit", "verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("intact"), "{stdout}");
}
