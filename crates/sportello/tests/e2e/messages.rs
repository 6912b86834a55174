//! Staff correcting intake through the API: a message moved to the right case with its
//! attachments, a message split off into a case of its own, wrong requests refused.

use serde_json::json;

use crate::harness::Install;

fn eml(id: &str, subject: &str, with_attachment: bool) -> String {
    let attachment = if with_attachment {
        "--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"../../libretto.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJSVFT0YK\r\n"
    } else {
        ""
    };
    format!(
        "From: Anna Neri <anna@example.it>\r\nTo: protocollo@comune.example.it\r\nSubject: {subject}\r\n\
         Message-ID: <{id}@example.it>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBuongiorno.\r\n{attachment}--b--\r\n"
    )
}

#[tokio::test]
async fn staff_move_and_split_messages_and_the_journal_says_why() {
    let mut install = Install::new("").await;
    let op = install.user("op1", "operator");
    let dir = install.dir.path().to_owned();
    let mut cases = Vec::new();
    for (id, subject, attachment) in [
        ("one", "Permesso residenti", false),
        ("two", "Altra cosa", true),
    ] {
        let path = dir.join(format!("{id}.eml"));
        std::fs::write(&path, eml(id, subject, attachment)).unwrap();
        let out = install.cli(&["ingest", path.to_str().unwrap()]);
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(line["outcome"], "new_case");
        cases.push((
            line["case"].as_str().unwrap().to_owned(),
            line["protocol"].clone(),
        ));
    }
    install.start(&[]).await;
    let (first, second) = (&cases[0].0, &cases[1].0);
    let (status, _, messages) = install
        .call(
            "GET",
            &format!("/api/v1/cases/{second}/messages"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(messages[0]["rule"], "new");
    let message = messages[0]["id"].as_i64().unwrap();

    // Moved to the first case: attachment follows, protocol kept, both journals say why.
    let (status, _, moved) = install
        .call(
            "POST",
            &format!("/api/v1/messages/{message}/move"),
            Some(&op),
            Some(json!({"to": first, "note": "è la stessa pratica"})),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["protocol"], cases[1].1);
    assert_eq!(moved["documents"], 1);
    let (_, _, on_first) = install
        .call("GET", &format!("/api/v1/cases/{first}"), Some(&op), None)
        .await;
    assert_eq!(on_first["documents"][0]["filename"], "libretto.pdf");
    assert!(
        on_first["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "message_moved_in"
                && e["actor"] == "op1"
                && e["detail"]["note"] == "è la stessa pratica")
    );
    let (_, _, left) = install
        .call("GET", &format!("/api/v1/cases/{second}"), Some(&op), None)
        .await;
    assert!(left["documents"].as_array().unwrap().is_empty());
    assert!(
        left["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "message_moved_out")
    );

    // Refused: no note, unknown case, the case it is already on, no such message.
    for (path, body, field) in [
        (
            format!("/api/v1/messages/{message}/move"),
            json!({"to": first, "note": ""}),
            "note",
        ),
        (
            format!("/api/v1/messages/{message}/move"),
            json!({"to": "ZTL-2026-999999", "note": "x"}),
            "to",
        ),
        (
            format!("/api/v1/messages/{message}/move"),
            json!({"to": first, "note": "x"}),
            "to",
        ),
        (
            format!("/api/v1/messages/{message}/move"),
            json!({"to": "nonsense", "note": "x"}),
            "to",
        ),
        (
            format!("/api/v1/messages/{message}/split"),
            json!({"case_type": "nope", "note": "x"}),
            "case_type",
        ),
    ] {
        let (status, _, problem) = install
            .call("POST", &path, Some(&op), Some(body.clone()))
            .await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }
    let (status, _, _) = install
        .call(
            "POST",
            "/api/v1/messages/999999/split",
            Some(&op),
            Some(json!({"note": "x"})),
        )
        .await;
    assert_eq!(status, 404);

    // Split off into a new CUDE case under the same protocol entry.
    let (status, _, split) = install
        .call(
            "POST",
            &format!("/api/v1/messages/{message}/split"),
            Some(&op),
            Some(json!({"case_type": "cude", "note": "richiesta distinta"})),
        )
        .await;
    assert_eq!(status, 200, "{split}");
    let new_case = split["to"].as_str().unwrap();
    assert!(new_case.starts_with("CUD-"), "{split}");
    let (_, _, created) = install
        .call("GET", &format!("/api/v1/cases/{new_case}"), Some(&op), None)
        .await;
    assert_eq!(created["protocol"], cases[1].1, "no second registration");
    assert_eq!(created["documents"].as_array().unwrap().len(), 1);
    install.stop();
    let out = install.cli(&["register", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
