//! The phone at hand (issue 18 §5): `/ufficio/chiamata?numero=` finds the caller by the
//! number in any format (as the CTI look-up does), lists their open cases in words with
//! what each waits for and the open call-back; an unknown number and a bad one say so;
//! a call the PBX logs links back here from the case's timeline; one click logs a call on
//! a case, one form opens a new case by telephone.

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
        "action=\"/ufficio/chiamata/nuova\"",
        "action=\"/ufficio/chiamata/registra\"",
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
    assert!(unknown.body.contains("action=\"/ufficio/chiamata/nuova\""));
    assert!(
        unknown.body.contains("id=\"new-fiscal-code\""),
        "an unknown caller is asked who they are"
    );
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

#[tokio::test]
async fn one_click_logs_the_call_and_a_form_opens_a_case_by_telephone() {
    let (install, users) = started_with(&[("op", "operator"), ("reader", "police")]).await;
    let (password, op) = &users[0];
    let body = json!({"case_type": "ztl_permit", "subject": "Permesso residenti", "channel": "email",
        "citizen": {"name": "Piero Blu", "fiscal_code": "BLUPRI80A01H501U", "phone": "333 765 4321",
            "email": "piero@example.it"}});
    let (status, _, case) = install
        .call("POST", "/api/v1/cases", Some(op), Some(body))
        .await;
    assert_eq!(status, 201, "{case}");
    let reference = case["reference"].as_str().unwrap().to_owned();
    // The office owed them a call-back: their call answers it.
    let (status, _, task) = install
        .call(
            "POST",
            &format!("/api/v1/cases/{reference}/callbacks"),
            Some(op),
            Some(json!({"note": "Spiegare il rinnovo"})),
        )
        .await;
    assert_eq!(status, 201, "{task}");
    let task = task["id"].as_i64().unwrap();

    let (mut browser, _) = Browser::signed_in(&install, "op", password).await;
    let page = browser
        .get("/ufficio/chiamata?numero=3337654321&lang=it")
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = crate::browser::csrf_of(&page.body);
    assert!(
        page.body
            .contains(&format!("Registra la chiamata su {reference}")),
        "{}",
        page.body
    );

    // One click: the call is on the case's timeline, and the case page opens.
    let logged = browser
        .post_form(
            "/ufficio/chiamata/registra",
            &[
                ("csrf", &csrf),
                ("numero", "3337654321"),
                ("case", &reference),
                ("note", "Chiede a che punto è"),
            ],
        )
        .await;
    assert_eq!(logged.status, 303, "{}", logged.body);
    assert_eq!(
        logged.location,
        format!("/ufficio/pratiche/{reference}?esito=log_call")
    );
    let (_, _, timeline) = install
        .call("GET", &format!("/api/v1/cases/{reference}"), Some(op), None)
        .await;
    let calls: Vec<&serde_json::Value> = timeline["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "call")
        .collect();
    assert_eq!(calls.len(), 1, "{timeline}");
    assert_eq!(calls[0]["actor"], "op");
    assert_eq!(calls[0]["detail"]["from"], "3337654321");
    assert_eq!(calls[0]["detail"]["note"], "Chiede a che punto è");
    // The call-back is done: out of the queue, its outcome on the timeline.
    let (_, _, queue) = install
        .call("GET", "/api/v1/callbacks", Some(op), None)
        .await;
    assert!(
        queue["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["id"] != task),
        "{queue}"
    );
    let answered = timeline["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "call_logged")
        .unwrap_or_else(|| panic!("no call_logged: {timeline}"));
    assert_eq!(answered["detail"]["outcome"], "reached", "{answered}");
    let shown = browser
        .get(&format!(
            "/ufficio/pratiche/{reference}?esito=log_call&lang=it"
        ))
        .await;
    assert!(shown.body.contains("chiamata registrata"), "{}", shown.body);

    // A stale form (wrong CSRF) logs nothing; a case that does not exist is said so.
    let stale = browser
        .post_form(
            "/ufficio/chiamata/registra",
            &[
                ("csrf", "nope"),
                ("numero", "3337654321"),
                ("case", &reference),
            ],
        )
        .await;
    assert_eq!(stale.status, 422, "{}", stale.body);
    let missing = browser
        .post_form(
            "/ufficio/chiamata/registra",
            &[
                ("csrf", &csrf),
                ("numero", "3337654321"),
                ("case", "ZTL-2026-999999"),
            ],
        )
        .await;
    assert_eq!(missing.status, 422, "{}", missing.body);
    let (_, _, again) = install
        .call("GET", &format!("/api/v1/cases/{reference}"), Some(op), None)
        .await;
    let count = again["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "call")
        .count();
    assert_eq!(count, 1, "refused forms log nothing");

    // A new case by telephone for the known caller: their identity from the record.
    let opened = browser
        .post_form(
            "/ufficio/chiamata/nuova",
            &[
                ("csrf", &csrf),
                ("numero", "+39 333 765 4321"),
                ("case_type", "cude"),
                ("subject", "Contrassegno per il padre"),
                ("note", "Chiede come rinnovare"),
                // Ignored for a known caller: the record says who they are.
                ("fiscal_code", "RSSMRA80A01H501U"),
            ],
        )
        .await;
    assert_eq!(opened.status, 303, "{}", opened.body);
    let new_reference = opened
        .location
        .strip_prefix("/ufficio/pratiche/")
        .and_then(|l| l.strip_suffix("?esito=new_case"))
        .unwrap()
        .to_owned();
    let (_, _, new_case) = install
        .call(
            "GET",
            &format!("/api/v1/cases/{new_reference}"),
            Some(op),
            None,
        )
        .await;
    assert_eq!(new_case["channel"], "phone", "{new_case}");
    assert_eq!(new_case["case_type"], "cude");
    assert_eq!(new_case["citizen"]["fiscal_code"], "BLUPRI80A01H501U");
    assert!(new_case["protocol"].is_string(), "registered: {new_case}");

    // An unknown caller: the fiscal code the operator typed is checked.
    let bad = browser
        .post_form(
            "/ufficio/chiamata/nuova",
            &[
                ("csrf", &csrf),
                ("numero", "06 5555 1234"),
                ("case_type", "ztl_permit"),
                ("subject", "Informazioni"),
                ("fiscal_code", "NOTACODE"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(bad.body.contains("role=\"alert\""), "{}", bad.body);

    // Someone who may not take calls (the municipal police) cannot log them.
    let (mut auditor, their_csrf) = Browser::signed_in(&install, "reader", &users[1].0).await;
    let refused = auditor
        .post_form(
            "/ufficio/chiamata/registra",
            &[
                ("csrf", &their_csrf),
                ("numero", "3337654321"),
                ("case", &reference),
            ],
        )
        .await;
    assert_eq!(refused.status, 303);
    assert_eq!(refused.location, "/ufficio/permessi");
}
