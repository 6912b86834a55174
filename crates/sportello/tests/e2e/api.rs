//! The HTTP API of CONTRACT §5 through a real server.

use chrono::Datelike;
use serde_json::{Value, json};
use sportello_domain::calendar::{HolidayCalendar, rome_date};
use sportello_domain::clock::{Clock, SystemClock};
use sportello_domain::sla::due_date;

use crate::harness::{Install, case_body, file_form, started_with};

fn is_problem(ctype: &str, body: &Value, status: u16) -> bool {
    ctype.starts_with("application/problem+json")
        && body["status"] == status
        && body["title"].is_string()
        && body["type"].is_string()
        && body["detail"].is_string()
}

#[tokio::test]
async fn a_new_case_gets_its_reference_protocol_and_term_and_references_stay_gap_free() {
    let (install, users) = started_with(&[("op1", "operator")]).await;
    let op = &users[0].1;
    let today = rome_date(SystemClock.now());

    let (status, _, case) = install
        .call("POST", "/api/v1/cases", Some(op), Some(case_body()))
        .await;
    assert_eq!(status, 201, "{case}");
    let reference = case["reference"].as_str().unwrap().to_owned();
    assert_eq!(reference, format!("ZTL-{}-000001", today.year()));
    assert_eq!(case["status"], "received");
    assert_eq!(case["protocol"], format!("{}/0000001", today.year()));
    let expected_due = due_date(&HolidayCalendar::default(), today, 30, 0);
    assert_eq!(case["due_at"], expected_due.format("%Y-%m-%d").to_string());
    assert_eq!(case["sla"]["state"], "running");
    assert_eq!(case["sla"]["days_left"], (expected_due - today).num_days());
    assert_eq!(case["citizen"]["fiscal_code"], "RSSMRA80A01H501U");

    // References stay gap-free.
    for n in 2..=6 {
        let (_, _, c) = install
            .call("POST", "/api/v1/cases", Some(op), Some(case_body()))
            .await;
        assert_eq!(c["reference"], format!("ZTL-{}-{n:06}", today.year()));
    }
}

#[tokio::test]
async fn bad_requests_and_unknown_things_are_problems_that_say_what_is_wrong() {
    let (install, users) = started_with(&[("op1", "operator")]).await;
    let op = &users[0].1;
    // Validation: every bad field named, problem+json, never a 500.
    let bad = json!({"case_type": "nope", "subject": "", "channel": "pigeon",
                     "citizen": {"fiscal_code": "RSSMRA80A01H501X", "email": "not-an-address"}});
    let (status, ctype, problem) = install
        .call("POST", "/api/v1/cases", Some(op), Some(bad))
        .await;
    assert_eq!(status, 422);
    assert!(is_problem(&ctype, &problem, 422), "{ctype} {problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in [
        "case_type",
        "subject",
        "channel",
        "citizen.fiscal_code",
        "citizen.email",
    ] {
        assert!(fields.contains(&f), "{f} missing in {problem}");
    }
    let check = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["field"] == "citizen.fiscal_code")
        .unwrap();
    assert!(
        check["message"].as_str().unwrap().contains('U'),
        "the message names the right check character: {check}"
    );

    // Malformed JSON is a 400 problem.
    let resp = install
        .client
        .post(format!("{}/api/v1/cases", install.base()))
        .bearer_auth(op)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );

    // Unknown things are 404 problems.
    for path in [
        "/api/v1/cases/ZTL-2026-999999",
        "/api/v1/cases/not-a-reference",
        "/api/v1/nowhere",
    ] {
        let (status, ctype, problem) = install.call("GET", path, Some(op), None).await;
        assert_eq!(status, 404, "{path}");
        assert!(is_problem(&ctype, &problem, 404), "{path}: {problem}");
    }
}

#[tokio::test]
async fn the_workflow_refuses_what_the_status_does_not_allow_and_the_journal_shows_who_acted() {
    let (install, users) = started_with(&[("op1", "operator")]).await;
    let op = &users[0].1;
    let reference = install.create_case(op).await;
    // Workflow: 409 when not allowed, with a problem body.
    let actions = format!("/api/v1/cases/{reference}/actions");
    let (status, ctype, problem) = install
        .call("POST", &actions, Some(op), Some(json!({"action": "issue"})))
        .await;
    assert_eq!(status, 409);
    assert!(is_problem(&ctype, &problem, 409), "{problem}");
    let (status, _, _) = install
        .call("POST", &actions, Some(op), Some(json!({"action": "fly"})))
        .await;
    assert_eq!(status, 422);
    let (status, _, after) = install
        .call(
            "POST",
            &actions,
            Some(op),
            Some(json!({"action": "start_review"})),
        )
        .await;
    assert_eq!((status, after["status"].as_str()), (200, Some("in_review")));
    let (status, _, _) = install
        .call(
            "POST",
            &actions,
            Some(op),
            Some(json!({"action": "reject", "reasons": ["x"]})),
        )
        .await;
    assert_eq!(status, 409, "reject needs an earlier notify_rejection");
    let (status, _, problem) = install
        .call(
            "POST",
            &actions,
            Some(op),
            Some(json!({"action": "request_integration"})),
        )
        .await;
    assert_eq!(status, 422, "missing[] is required: {problem}");
    let body = json!({"action": "request_integration", "missing": ["carta_circolazione"], "note": "manca il libretto"});
    let (status, _, paused) = install
        .call("POST", &actions, Some(op), Some(body.clone()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (paused["status"].as_str(), paused["sla"]["state"].as_str()),
        (Some("waiting_citizen"), Some("paused"))
    );
    let (status, _, _) = install
        .call(
            "POST",
            &actions,
            Some(op),
            Some(json!({"action": "integration_received"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, problem) = install.call("POST", &actions, Some(op), Some(body)).await;
    assert_eq!(status, 409, "integration only once: {problem}");

    // The journal shows who did what.
    let (_, _, full) = install
        .call("GET", &format!("/api/v1/cases/{reference}"), Some(op), None)
        .await;
    let timeline = full["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 4);
    assert!(timeline.iter().skip(1).all(|e| e["actor"] == "op1"));

    // Lists with filters and validation of parameters.
    let (status, _, list) = install
        .call(
            "GET",
            "/api/v1/cases?status=in_review&case_type=ztl_permit",
            Some(op),
            None,
        )
        .await;
    assert_eq!((status, list["total"].as_i64()), (200, Some(1)));
    let (status, _, list) = install
        .call("GET", "/api/v1/cases?status=received", Some(op), None)
        .await;
    assert_eq!((status, list["total"].as_i64()), (200, Some(0)));
    let (status, _, problem) = install
        .call(
            "GET",
            "/api/v1/cases?status=bogus&per_page=100000",
            Some(op),
            None,
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(problem["errors"].as_array().unwrap().len(), 2, "{problem}");
}

#[tokio::test]
async fn openapi_health_and_metrics() {
    let mut install = Install::new("[metrics]\ntoken = \"metrics-scraper-token\"\n").await;
    let op = install.user("op1", "operator");
    install.start(&[]).await;
    let resp = install
        .client
        .get(format!("{}/healthz", install.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "ok");
    let (status, _, doc) = install.call("GET", "/api/openapi.json", None, None).await;
    assert_eq!(status, 200);
    for path in [
        "/api/v1/cases",
        "/api/v1/cases/{reference}",
        "/api/v1/cases/{reference}/actions",
        "/api/v1/cases/{reference}/documents",
        "/api/v1/documents/{id}",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from openapi.json"
        );
    }
    assert!(doc["components"]["schemas"].get("CaseView").is_some());
    // Instants are RFC 3339 strings in every schema the API documents (CONTRACT §5).
    let numeric_times = numeric_time_properties(&doc["components"]["schemas"], "schemas");
    assert!(
        numeric_times.is_empty(),
        "instants documented as numbers: {numeric_times:?}"
    );
    install
        .call("POST", "/api/v1/cases", Some(&op), Some(case_body()))
        .await;
    let text = install
        .client
        .get(format!("{}/metrics", install.base()))
        .bearer_auth("metrics-scraper-token")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(text.contains("route=\"/api/v1/cases\""), "{text}");
    assert!(
        text.contains("sportello_cases{condition=\"open\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("sportello_document_text{state=\"failed\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn documents_upload_download_and_limits() {
    let mut install = Install::new("[documents]\nmax_upload_bytes = 4096\n").await;
    let op = install.user("op1", "operator");
    let police = install.user("vigile", "police");
    install.start(&[]).await;
    let reference = install.create_case(&op).await;
    let pdf = b"%PDF-1.4\n% carta di circolazione\n".to_vec();
    let resp = install
        .upload(
            &reference,
            Some(&op),
            file_form(pdf.clone(), "..\\..\\etc/../libretto.txt"),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(
        doc["media_type"], "application/pdf",
        "sniffed from content, not the name"
    );
    assert_eq!(doc["filename"], "libretto.txt");
    assert_eq!(doc["size"], pdf.len());
    let id = doc["id"].as_str().unwrap();
    let resp = install
        .client
        .get(format!("{}/api/v1/documents/{id}", install.base()))
        .bearer_auth(&op)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    assert_eq!(resp.bytes().await.unwrap().to_vec(), pdf);
    let resp = install
        .client
        .get(format!("{}/api/v1/documents/{id}", install.base()))
        .bearer_auth(&police)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    let (_, _, full) = install
        .call(
            "GET",
            &format!("/api/v1/cases/{reference}"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(full["documents"][0]["id"], id);
    assert_eq!(
        full["timeline"].as_array().unwrap().last().unwrap()["kind"],
        "document_added"
    );

    // Too large: 413 problem, nothing recorded.
    let resp = install
        .upload(
            &reference,
            Some(&op),
            file_form(vec![b'a'; 5000], "big.txt"),
        )
        .await;
    assert_eq!(resp.status(), 413);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );
    // No file part: 422.
    let none = reqwest::multipart::Form::new().text("note", "niente");
    let resp = install.upload(&reference, Some(&op), none).await;
    assert_eq!(resp.status(), 422);
    // Unknown case and unknown document: 404.
    let resp = install
        .upload(
            "ZTL-2020-000009",
            Some(&op),
            file_form(b"x".to_vec(), "x.txt"),
        )
        .await;
    assert_eq!(resp.status(), 404);
    let (status, _, _) = install
        .call(
            "GET",
            &format!("/api/v1/documents/{}", "0".repeat(32)),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (_, _, full) = install
        .call(
            "GET",
            &format!("/api/v1/cases/{reference}"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(full["documents"].as_array().unwrap().len(), 1);

    // The CLI re-hashes what was stored: documents and the raw bytes of messages.
    install.stop();
    let eml = install.dir.path().join("m.eml");
    std::fs::write(
        &eml,
        "From: a@example.it\r\nSubject: Ciao\r\nMessage-ID: <v@example.it>\r\n\r\nCiao\r\n",
    )
    .unwrap();
    assert!(
        install
            .cli(&["ingest", eml.to_str().unwrap()])
            .status
            .success()
    );
    let out = install.cli(&["documents", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("documents intact: 2 verified"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let sha = doc["sha256"].as_str().unwrap();
    let stored = install
        .data_dir()
        .join("documents")
        .join("sha256")
        .join(&sha[..2])
        .join(sha);
    std::fs::write(&stored, b"tampered").unwrap();
    let out = install.cli(&["documents", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("ALTERED {sha}")));
    std::fs::remove_file(&stored).unwrap();
    let out = install.cli(&["documents", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("MISSING {sha}")));
}

#[tokio::test]
async fn hostile_requests_get_problems_never_500() {
    let mut install = Install::new("[limits]\nmax_json_bytes = 2048\n").await;
    let op = install.user("op1", "operator");
    let form_backend = install.user("portale", "integration");
    install.start(&[]).await;
    let reference = install.create_case(&op).await;

    let expect_problem = |status: u16, ctype: &str, body: &Value, want: u16, what: &str| {
        assert_eq!(status, want, "{what}: {body}");
        assert!(is_problem(ctype, body, want), "{what}: {ctype} {body}");
    };
    // A NUL byte would be refused by PostgreSQL: it must be a 422, on both engines.
    let (s, c, b) = install
        .call("GET", "/api/v1/cases?q=%00abc", Some(&op), None)
        .await;
    expect_problem(s, &c, &b, 422, "NUL in q");
    let body = json!({"action": "assign", "user": "op1\u{0}"});
    let (s, c, b) = install
        .call(
            "POST",
            &format!("/api/v1/cases/{reference}/actions"),
            Some(&op),
            Some(body),
        )
        .await;
    expect_problem(s, &c, &b, 422, "NUL in user");
    let body = json!({"case_type": "ztl_permit", "subject": "a\u{0}b", "channel": "web"});
    let (s, c, b) = install
        .call("POST", "/api/v1/cases", Some(&op), Some(body))
        .await;
    expect_problem(s, &c, &b, 422, "NUL in subject");
    // Wrong method, oversized JSON, wrong content type for an upload.
    let (s, c, b) = install
        .call("DELETE", "/api/v1/cases", Some(&op), None)
        .await;
    expect_problem(s, &c, &b, 405, "DELETE on the collection");
    let big = json!({"case_type": "ztl_permit", "subject": "x".repeat(4000), "channel": "web"});
    let (s, c, b) = install
        .call("POST", "/api/v1/cases", Some(&op), Some(big))
        .await;
    expect_problem(s, &c, &b, 413, "JSON over limits.max_json_bytes");
    let (s, c, b) = install
        .call(
            "POST",
            &format!("/api/v1/cases/{reference}/documents"),
            Some(&op),
            Some(json!({})),
        )
        .await;
    expect_problem(s, &c, &b, 400, "upload that is not multipart");
    let (s, c, b) = install
        .call("GET", "/api/v1/cases/%FF%FE", Some(&op), None)
        .await;
    assert!(s == 404 || s == 400, "bad UTF-8 in the path -> {s}");
    assert!(is_problem(&c, &b, s), "{c} {b}");

    // A caller that may not read case files gets back only what it sent.
    let mut stranger = case_body();
    stranger["citizen"] = json!({"fiscal_code": "RSSMRA80A01H501U", "name": "Qualcuno"});
    let (s, _, created) = install
        .call("POST", "/api/v1/cases", Some(&form_backend), Some(stranger))
        .await;
    assert_eq!(s, 201);
    assert_eq!(
        created["citizen"]["email"],
        Value::Null,
        "no stored contact leaks: {created}"
    );
    assert_eq!(created["citizen"]["name"], "Qualcuno");
    let (_, _, stored) = install
        .call(
            "GET",
            &format!("/api/v1/cases/{}", created["reference"].as_str().unwrap()),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(
        stored["citizen"]["email"], "mario.rossi@example.it",
        "and the record was not overwritten"
    );
    assert_eq!(stored["citizen"]["name"], "Mario Rossi");
}

/// The properties of the OpenAPI document whose name says "time" but whose type is a
/// number (a Unix instant leaking out), with their path.
fn numeric_time_properties(node: &Value, at: &str) -> Vec<String> {
    let mut found = Vec::new();
    match node {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                for (name, schema) in props {
                    let numeric = ["integer", "number"].iter().any(|t| {
                        schema["type"] == *t
                            || schema["type"]
                                .as_array()
                                .is_some_and(|types| types.iter().any(|x| x == *t))
                    });
                    if numeric && crate::harness::is_time_name(name) && !is_count(name) {
                        found.push(format!("{at}.{name}"));
                    }
                }
            }
            for (key, child) in map {
                found.extend(numeric_time_properties(child, &format!("{at}.{key}")));
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                found.extend(numeric_time_properties(child, &format!("{at}[{i}]")));
            }
        }
        _ => {}
    }
    found
}

/// Durations and counts are numbers by nature (`days_left`, `term_days`,
/// `lead_time_median_days`, the cases closed `on_time`…), not instants.
fn is_count(name: &str) -> bool {
    [
        "days", "hours", "minutes", "seconds", "count", "total", "share", "_ms", "on_time",
    ]
    .iter()
    .any(|w| name.contains(w))
}
