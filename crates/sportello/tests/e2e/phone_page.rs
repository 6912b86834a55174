//! The phone at hand (issue 18 §5): `/ufficio/chiamata?numero=` finds the caller by the
//! number in any format (as the CTI look-up does), lists their open cases in words with
//! what each waits for and the open call-back; an unknown number and a bad one say so;
//! a call the PBX logs links back here from the case's timeline.

use serde_json::json;

use crate::browser::Browser;
use crate::harness::started_with;

#[tokio::test]
async fn the_call_page_shows_the_caller_their_cases_and_an_unknown_number() {
    let (install, users) = started_with(&[("op", "operator"), ("pbx", "integration")]).await;
    let (password, op) = &users[0];
    let pbx = &users[1].1;
    let body = json!({"case_type": "ztl_permit", "subject": "Permesso residenti", "channel": "phone",
        "citizen": {"name": "Marta Gialli", "fiscal_code": "GLLMRT80A41H501J", "phone": "+39 347 1234567"}});
    let (status, _, case) = install
        .call("POST", "/api/v1/cases", Some(op), Some(body))
        .await;
    assert_eq!(status, 201, "{case}");
    let reference = case["reference"].as_str().unwrap().to_owned();
    install
        .act(op, &reference, json!({"action": "start_review"}))
        .await;
    install
        .act(
            op,
            &reference,
            json!({"action": "request_integration", "missing": ["carta_circolazione"]}),
        )
        .await;

    // Before signing in: the sign-in page, back here after.
    let mut anonymous = Browser::new(&install);
    let gate = anonymous.get("/ufficio/chiamata?numero=3471234567").await;
    assert_eq!(gate.status, 303);
    assert!(
        gate.location.starts_with("/ufficio/login"),
        "{}",
        gate.location
    );

    let (mut browser, _) = Browser::signed_in(&install, "op", password).await;
    // The same number as the PBX gives it: international prefix, no spaces.
    let page = browser
        .get("/ufficio/chiamata?numero=%2B393471234567")
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    for text in [
        "Marta Gialli",
        "GLLMRT80A41H501J",
        "+39 347 1234567",
        reference.as_str(),
        "in attesa del cittadino",
        "Carta di circolazione",
        &format!("href=\"/ufficio/pratiche/{reference}\""),
        "href=\"/domanda\"",
        // A citizen reached only by phone: the office owes them a call-back.
        "Richiamata aperta n.",
    ] {
        assert!(page.body.contains(text), "{text} missing: {}", page.body);
    }
    assert!(
        !page.body.contains("waiting_citizen") && !page.body.contains("carta_circolazione"),
        "no raw ids: {}",
        page.body
    );
    // The same page in English (the choice sticks: the pages below ask for Italian).
    let english = browser
        .get("/ufficio/chiamata?numero=347%20123%204567&lang=en")
        .await;
    assert_eq!(english.status, 200);
    assert!(english.body.contains("Marta Gialli"), "{}", english.body);
    assert!(english.body.contains("Open cases"), "{}", english.body);

    // A number nobody has: said plainly, with the number as it is matched.
    let unknown = browser
        .get("/ufficio/chiamata?numero=06-9999-8888&lang=it")
        .await;
    assert_eq!(unknown.status, 200, "{}", unknown.body);
    assert!(
        unknown.body.contains("Numero non riconosciuto"),
        "{}",
        unknown.body
    );
    assert!(unknown.body.contains("699998888"), "{}", unknown.body);
    assert!(unknown.body.contains("href=\"/domanda\""));
    assert!(!unknown.body.contains("Marta Gialli"));

    // Not a number: a message on the page, 422, never a crash.
    let bad = browser.get("/ufficio/chiamata?numero=abc12&lang=it").await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(bad.body.contains("aria-invalid=\"true\""), "{}", bad.body);
    assert!(bad.body.contains("almeno 6 cifre"), "{}", bad.body);
    // No number yet: the form alone.
    let empty = browser.get("/ufficio/chiamata").await;
    assert_eq!(empty.status, 200);
    assert!(empty.body.contains("id=\"numero\""));

    // The PBX logs the call on the case; its timeline entry links back to this page.
    let (status, _, logged) = install
        .call(
            "POST",
            "/api/v1/inbound/phone",
            Some(pbx),
            Some(
                json!({"call_id": "c-1", "direction": "in", "from": "+39 347 1234567",
                "to": "0612345", "started_at": "2026-01-05T10:00:00+01:00"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{logged}");
    assert_eq!(logged["case"], reference.as_str());
    let case_page = browser
        .get(&format!("/ufficio/pratiche/{reference}?lang=it"))
        .await;
    assert_eq!(case_page.status, 200);
    assert!(
        case_page
            .body
            .contains("href=\"/ufficio/chiamata?numero=%2B39%20347%201234567\""),
        "{}",
        case_page.body
    );
}
