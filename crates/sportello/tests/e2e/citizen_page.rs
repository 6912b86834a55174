//! The citizen's record (`/ufficio/cittadini/{id}`, issue 18 §4): reached from the case
//! page, it lists every case of the fiscal code, its read is audited, an unknown id is a
//! 404, and only case readers see it.

use sportello_domain::clock::{Clock, SystemClock};

use crate::browser::Browser;
use crate::harness::{case_body, started_with};

#[tokio::test]
async fn the_citizen_record_lists_every_case_is_audited_and_only_for_case_readers() {
    let (install, users) = started_with(&[
        ("op", "operator"),
        ("capo", "supervisor"),
        ("vigile", "police"),
    ])
    .await;
    let (op_password, op) = &users[0];
    let sup = &users[1].1;
    let first = install.create_case(op).await;
    let mut body = case_body();
    body["channel"] = "email".into();
    body["subject"] = "Seconda richiesta".into();
    let (status, _, second) = install
        .call("POST", "/api/v1/cases", Some(op), Some(body))
        .await;
    assert_eq!(status, 201, "{second}");
    let second = second["reference"].as_str().unwrap().to_owned();
    // An appointment on the second case, on the first open morning the office accepts.
    // The time is Rome's local time (no fixed offset: it would be an hour off in summer).
    let mut last = (0, serde_json::Value::Null);
    for days in 3..20 {
        let day =
            sportello_domain::calendar::rome_date(SystemClock.now()) + chrono::Duration::days(days);
        let starts_at = format!("{day}T10:30:00");
        let (status, _, answer) = install
            .call(
                "POST",
                &format!("/api/v1/cases/{second}/appointments"),
                Some(op),
                Some(serde_json::json!({"starts_at": starts_at, "reason": "Firma del permesso"})),
            )
            .await;
        last = (status, answer);
        if status == 201 {
            break;
        }
    }
    assert_eq!(
        last.0, 201,
        "no day accepted for an appointment: {}",
        last.1
    );

    // A third case of theirs, whose permit is issued.
    let (third, permit) = install.issued_permit(op, &["AB123CD"]).await;

    let (mut browser, _) = Browser::signed_in(&install, "op", op_password).await;
    let case = browser.get(&format!("/ufficio/pratiche/{first}")).await;
    assert_eq!(case.status, 200);
    let link = case
        .body
        .split("<a href=\"")
        .filter_map(|s| s.split_once("\">Scheda del cittadino</a>"))
        .map(|(href, _)| href.to_owned())
        .next()
        .unwrap_or_else(|| panic!("no link to the citizen's record: {}", case.body));
    assert!(link.starts_with("/ufficio/cittadini/"), "{link}");

    let record = browser.get(&link).await;
    assert_eq!(record.status, 200, "{}", record.body);
    for words in [
        first.as_str(),
        second.as_str(),
        "Mario Rossi",
        "RSSMRA80A01H501U",
        "mario.rossi@example.it",
        "Scheda del cittadino",
        "Firma del permesso",
        third.as_str(),
        permit.as_str(),
        "AB123CD: valido dal ",
        "proposto",
    ] {
        assert!(
            record.body.contains(words),
            "{words} missing: {}",
            record.body
        );
    }
    assert!(
        record
            .body
            .contains(&format!("href=\"/ufficio/pratiche/{second}\"")),
        "each case is linked"
    );
    // Status in words, never the raw id.
    assert!(!record.body.contains(">received<"), "{}", record.body);
    let english = browser.get(&format!("{link}?lang=en")).await;
    assert!(
        english.body.contains("Citizen&#39;s record") || english.body.contains("Citizen's record")
    );

    // Audited: the citizen read, and a read of each case shown.
    let (status, _, reads) = install
        .call(
            "GET",
            &format!("/api/v1/audit/reads?reference={second}"),
            Some(sup),
            None,
        )
        .await;
    assert_eq!(status, 200, "{reads}");
    assert!(
        reads["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["action"] == "read_case" && i["actor"] == "op"),
        "the record's read is in the second case's trail: {reads}"
    );
    let mut supervisor = Browser::new(&install);
    supervisor.sign_in("capo", &users[1].0).await;
    let log = supervisor
        .get("/ufficio/accessi?target=RSSMRA80A01H501U")
        .await;
    assert!(
        log.body
            .contains("<td>op</td><td>ha aperto la scheda del cittadino</td>"),
        "{}",
        log.body
    );

    // Unknown or malformed id: 404 page.
    for missing in ["/ufficio/cittadini/999999", "/ufficio/cittadini/abc"] {
        assert_eq!(browser.get(missing).await.status, 404, "{missing}");
    }

    // Anonymous: to the sign-in; police (no case reading): to the permits desk.
    let mut anonymous = Browser::new(&install);
    let refused = anonymous.get(&link).await;
    assert_eq!(refused.status, 303);
    assert!(
        refused.location.starts_with("/ufficio/login"),
        "{}",
        refused.location
    );
    let mut police = Browser::new(&install);
    police.sign_in("vigile", &users[2].0).await;
    let refused = police.get(&link).await;
    assert_eq!(refused.status, 303);
    assert_eq!(refused.location, "/ufficio/permessi");
}

#[tokio::test]
async fn the_record_shows_messages_both_ways_and_call_backs_and_search_finds_the_citizen() {
    let (install, users) = started_with(&[("op", "operator")]).await;
    let (op_password, op) = &users[0];
    let reference = install.create_case(op).await;
    // The citizen writes about their case (the reference in the subject)…
    let line = install.ingest_mail(
        "answer.eml",
        &format!(
            "From: Mario Rossi <mario.rossi@example.it>\r\nSubject: Re: {reference} libretto\r\n\
             Message-ID: <record@example.it>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
             Allego il libretto.\r\n"
        ),
    );
    assert_eq!(line["case"], reference.as_str(), "{line}");
    // …the office writes to them on their channel…
    let (status, _, sent) = install
        .call(
            "POST",
            &format!("/api/v1/cases/{reference}/messages"),
            Some(op),
            Some(serde_json::json!({"subject": "Il libretto", "body": "Grazie, lo abbiamo ricevuto."})),
        )
        .await;
    assert!(status == 201 || status == 202, "{status} {sent}");
    // …and someone must call them back.
    let (status, _, task) = install
        .call(
            "POST",
            &format!("/api/v1/cases/{reference}/callbacks"),
            Some(op),
            Some(serde_json::json!({"note": "Spiegare il libretto"})),
        )
        .await;
    assert_eq!(status, 201, "{task}");

    let (mut browser, _) = Browser::signed_in(&install, "op", op_password).await;
    // Search by part of the name: a link to the record.
    let found = browser.get("/ufficio/cerca?q=rossi&lang=it").await;
    assert_eq!(found.status, 200, "{}", found.body);
    let link = found
        .body
        .split("<a href=\"")
        .filter_map(|s| s.split_once("\">Mario Rossi</a>"))
        .map(|(href, _)| href.to_owned())
        .next()
        .unwrap_or_else(|| panic!("no citizen in the search: {}", found.body));
    assert!(link.starts_with("/ufficio/cittadini/"), "{link}");
    // By fiscal code too.
    let by_code = browser.get("/ufficio/cerca?q=rssmra80a01h501u").await;
    assert!(by_code.body.contains(&link), "{}", by_code.body);

    let record = browser.get(&format!("{link}?lang=it")).await;
    assert_eq!(record.status, 200, "{}", record.body);
    let messages = record
        .body
        .split("id=\"messages-title\"")
        .nth(1)
        .and_then(|s| s.split("id=\"calls-title\"").next())
        .unwrap_or_else(|| panic!("no messages section: {}", record.body));
    for words in [
        "Ricevuto",
        &format!("Re: {reference} libretto"),
        "mario.rossi@example.it",
        "Inviato",
        "in coda",
        "<td>e-mail</td>",
    ] {
        assert!(messages.contains(words), "{words} missing: {messages}");
    }
    let calls = record
        .body
        .split("id=\"calls-title\"")
        .nth(1)
        .unwrap_or_default();
    for words in ["richiesta di un operatore", "da fare", reference.as_str()] {
        assert!(calls.contains(words), "{words} missing: {calls}");
    }
    assert!(
        !record.body.contains(">queued<") && !record.body.contains(">operator<"),
        "states and reasons in words: {}",
        record.body
    );
}
