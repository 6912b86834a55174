//! The case page as a workspace (issue 18 §1 and §6): the documents checklist ticked from
//! what came in, approve refused with what is missing until nothing is, reject offered only
//! after the art. 10-bis notice, "assign to me" and the colleagues' list, and a moved
//! message confirmed first and undone by the session that moved it, not by another.

use serde_json::{Value, json};

use crate::browser::{Answer, Browser};
use crate::harness::{Install, file_form, started_with};

/// The ids of the messages on a case.
async fn message_ids(install: &Install, token: &str, reference: &str) -> Vec<i64> {
    let (status, _, messages) = install
        .call(
            "GET",
            &format!("/api/v1/cases/{reference}/messages"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{messages}");
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect()
}

/// The kinds of a case's journal events, oldest first.
async fn event_kinds(install: &Install, token: &str, reference: &str) -> Vec<String> {
    install.case(token, reference).await["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// The value of the hidden input `name` in a page.
fn hidden(page: &Answer, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = page
        .body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} on the page: {}", page.body))
        + marker.len();
    page.body[at..at + page.body[at..].find('"').unwrap()].to_owned()
}

/// A new case in review, its page's path, and a browser signed in as its operator
/// (`credentials` as `started_with` gives them, login `op`) with the session's CSRF token.
async fn in_review(
    install: &Install,
    credentials: &(String, String),
) -> (String, String, Browser, String) {
    let (password, token) = credentials;
    let reference = install.create_case(token).await;
    install
        .act(token, &reference, json!({"action": "start_review"}))
        .await;
    let (browser, csrf) = Browser::signed_in(install, "op", password).await;
    let path = format!("/ufficio/pratiche/{reference}");
    (reference, path, browser, csrf)
}

#[tokio::test]
async fn the_checklist_is_ticked_from_documents_and_approve_waits_for_what_is_missing() {
    let (install, users) = started_with(&[("op", "operator")]).await;
    let op = &users[0].1;
    let (reference, path, mut browser, csrf) = in_review(&install, &users[0]).await;

    // Nothing chosen yet: approve is disabled and says what is missing, in words.
    let page = browser.get(&path).await;
    assert_eq!(page.status, 200);
    for words in [
        "<button type=\"button\" disabled aria-describedby=\"approve-missing\">Approva</button>",
        "La pratica non indica la categoria di permesso richiesta.",
        "La pratica non indica targhe da autorizzare.",
        "Nessuna categoria scelta: sono elencati i documenti di tutte le categorie",
        "name=\"documents\" value=\"visura_camerale\">",
        "href=\"#actions-title\" accesskey=\"z\"",
    ] {
        assert!(page.body.contains(words), "{words}: {}", page.body);
    }
    // Pressed anyway, the page handler refuses it with the same words.
    let refused = browser
        .post_form(
            &format!("{path}/azioni"),
            &[("csrf", &csrf), ("action", "approve")],
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("La pratica non può essere approvata.")
    );
    assert!(refused.body.contains("La pratica non indica la categoria"));
    assert_eq!(install.case(op, &reference).await["status"], "in_review");

    // The registration certificate arrives; the category is chosen with three plates.
    let uploaded = install
        .upload(
            &reference,
            Some(op),
            file_form(b"%PDF-1.4\n% scansione\n".to_vec(), "libretto.pdf"),
        )
        .await;
    assert_eq!(uploaded.status(), 201);
    let saved = browser
        .post_form(
            &format!("{path}/dati"),
            &[
                ("csrf", &csrf),
                ("category", "residenti"),
                ("plates", "AB123CD, CD456EF, EF789GH"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let page = browser.get(&path).await;
    for words in [
        // Category names, not ids, in the select.
        "<option value=\"residenti\" selected>Residenti",
        // The certificate ticks its line, naming the file; the identity card is not there.
        "name=\"documents\" value=\"carta_circolazione\" checked>",
        "<label for=\"doc-carta_circolazione\">Carta di circolazione</label>",
        "soddisfatto da: libretto.pdf",
        "name=\"documents\" value=\"documento_identita\">",
        "<label for=\"doc-documento_identita\">Documento d&#39;identità</label>",
        // Still not confirmed: approve waits, saying why in words.
        "3 targhe, ma la categoria Residenti ne ammette al massimo 2.",
        "richiede documenti non ancora ricevuti: Documento d&#39;identità, Carta di circolazione.",
    ] {
        assert!(page.body.contains(words), "{words}: {}", page.body);
    }
    assert!(!page.body.contains("documento_identita, carta_circolazione"));

    // The operator confirms the ticks, adds the identity card and keeps two plates.
    let saved = browser
        .post_form(
            &format!("{path}/dati"),
            &[
                ("csrf", &csrf),
                ("category", "residenti"),
                ("plates", "AB123CD, CD456EF"),
                ("documents", "carta_circolazione"),
                ("documents", "documento_identita"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let fields = &install.case(op, &reference).await["fields"];
    assert_eq!(
        fields["documents"],
        json!(["carta_circolazione", "documento_identita"])
    );
    let page = browser.get(&path).await;
    assert!(!page.body.contains("approve-missing"), "{}", page.body);
    assert!(page.body.contains("accesskey=\"a\">Approva</button>"));
    let approved = browser
        .post_form(
            &format!("{path}/azioni"),
            &[("csrf", &csrf), ("action", "approve")],
        )
        .await;
    assert_eq!(approved.status, 303, "{}", approved.body);
    assert_eq!(install.case(op, &reference).await["status"], "approved");
}

#[tokio::test]
async fn reject_waits_for_the_notice_and_a_case_is_assigned_to_me_or_a_colleague() {
    let (install, users) = started_with(&[
        ("op", "operator"),
        ("luca", "operator"),
        ("vigile", "police"),
    ])
    .await;
    let op = &users[0].1;
    let (reference, path, mut browser, csrf) = in_review(&install, &users[0]).await;

    let page = browser.get(&path).await;
    assert!(
        page.body
            .contains("<input type=\"hidden\" name=\"action\" value=\"notify_rejection\">")
    );
    assert!(
        !page
            .body
            .contains("<input type=\"hidden\" name=\"action\" value=\"reject\">"),
        "reject offered before the notice: {}",
        page.body
    );
    // Colleagues who handle cases, by name and login; not the police.
    assert!(
        page.body.contains("<option value=\"luca\">"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<option value=\"vigile\">"));
    assert!(page.body.contains("accesskey=\"m\">Assegna a me</button>"));

    // Assign to me: one click (the hidden login is the signed-in user's).
    assert_eq!(hidden(&page, "user"), "op");
    let assigned = browser
        .post_form(
            &format!("{path}/azioni"),
            &[("csrf", &csrf), ("action", "assign"), ("user", "op")],
        )
        .await;
    assert_eq!(assigned.status, 303, "{}", assigned.body);
    assert_eq!(install.case(op, &reference).await["assignee"], "op");
    let page = browser.get(&path).await;
    assert!(!page.body.contains("Assegna a me</button>"), "already mine");
    // And to a colleague from the list.
    let assigned = browser
        .post_form(
            &format!("{path}/azioni"),
            &[("csrf", &csrf), ("action", "assign"), ("user", "luca")],
        )
        .await;
    assert_eq!(assigned.status, 303, "{}", assigned.body);
    assert_eq!(install.case(op, &reference).await["assignee"], "luca");

    // After the notice and the citizen's observations, reject is offered in review.
    install
        .act(
            op,
            &reference,
            json!({"action": "notify_rejection", "reasons": ["Residenza non nel perimetro"]}),
        )
        .await;
    // During the ten days of the notice, reject is not offered either.
    let page = browser.get(&path).await;
    assert!(
        page.body
            .contains("<input type=\"hidden\" name=\"action\" value=\"observations_received\">"),
        "{}",
        page.body
    );
    assert!(
        !page
            .body
            .contains("<input type=\"hidden\" name=\"action\" value=\"reject\">"),
        "reject offered during the notice: {}",
        page.body
    );
    install
        .act(op, &reference, json!({"action": "observations_received"}))
        .await;
    assert_eq!(install.case(op, &reference).await["status"], "in_review");
    let page = browser.get(&path).await;
    assert!(
        page.body
            .contains("<input type=\"hidden\" name=\"action\" value=\"reject\">"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn a_moved_message_is_confirmed_first_and_undone_only_by_the_session_that_moved_it() {
    let (install, users) = started_with(&[("op", "operator"), ("luca", "operator")]).await;
    let (op_password, op) = &users[0];
    let luca_password = &users[1].0;
    let right = install.create_case(op).await;
    let line = install.ingest_mail(
        "docs.eml",
        "From: anna@example.it\r\nSubject: Documenti\r\nMessage-ID: <ws@example.it>\r\n\r\nAllego il libretto.\r\n",
    );
    let wrong = line["case"].as_str().unwrap().to_owned();
    let message = message_ids(&install, op, &wrong).await[0];
    let kinds_right = event_kinds(&install, op, &right).await;
    let (mut browser, csrf) = Browser::signed_in(&install, "op", op_password).await;
    let move_path = format!("/ufficio/pratiche/{wrong}/messaggi/{message}");

    // First the question, naming the message and both cases; nothing moves yet.
    let asked = browser
        .post_form(
            &move_path,
            &[
                ("csrf", &csrf),
                ("to", &right.to_lowercase()),
                ("note", "stessa richiesta"),
            ],
        )
        .await;
    assert_eq!(asked.status, 200);
    let question =
        format!("Sposta il messaggio «Documenti» dalla pratica {wrong} alla pratica {right}?");
    assert!(asked.body.contains(&question), "{}", asked.body);
    assert_eq!(message_ids(&install, op, &wrong).await, [message]);
    // Split into a new case: the question says so.
    let split = browser
        .post_form(
            &move_path,
            &[("csrf", &csrf), ("to", ""), ("note", "altra richiesta")],
        )
        .await;
    assert!(
        split.body.contains("in una nuova pratica?"),
        "{}",
        split.body
    );

    // Confirmed: it moves, and the destination's page offers the undo.
    let moved = browser
        .post_form(
            &move_path,
            &[
                ("csrf", &csrf),
                ("to", &right),
                ("note", "stessa richiesta"),
                ("confirm", "1"),
            ],
        )
        .await;
    assert_eq!(moved.status, 303, "{}", moved.body);
    assert!(
        moved
            .location
            .starts_with(&format!("/ufficio/pratiche/{right}?spostato={message}&")),
        "{}",
        moved.location
    );
    assert_eq!(message_ids(&install, op, &right).await, [message]);
    let landed = browser.get(&moved.location).await;
    assert!(
        landed.body.contains(&format!(
            "Messaggio spostato dalla pratica {wrong} alla pratica {right}."
        )),
        "{}",
        landed.body
    );
    assert!(landed.body.contains(">Annulla</button>"));
    let token = hidden(&landed, "token");
    let undo_path = format!("/ufficio/pratiche/{right}/messaggi/{message}/annulla");

    // Another session sees no undo on the same address and cannot replay the token.
    let (mut other, other_csrf) = Browser::signed_in(&install, "luca", luca_password).await;
    let seen = other.get(&moved.location).await;
    assert_eq!(seen.status, 200);
    assert!(!seen.body.contains(">Annulla</button>"));
    let replayed = other
        .post_form(
            &undo_path,
            &[("csrf", &other_csrf), ("from", &wrong), ("token", &token)],
        )
        .await;
    assert_eq!(replayed.status, 403, "{}", replayed.body);
    assert!(
        replayed
            .body
            .contains("Lo spostamento non può essere annullato da questa sessione.")
    );
    assert_eq!(message_ids(&install, op, &right).await, [message]);
    // The replay is in the security log, under the session that tried it.
    let log = crate::guard::events(&install).await;
    assert!(
        log.iter()
            .any(|(kind, login, _, detail)| kind == "permission_refused"
                && login.as_deref() == Some("luca")
                && detail.contains("undo a message's move")),
        "{log:?}"
    );
    // A forged token from the right session is refused too.
    let forged = browser
        .post_form(
            &undo_path,
            &[("csrf", &csrf), ("from", &wrong), ("token", "00")],
        )
        .await;
    assert_eq!(forged.status, 403);

    // The session that moved it undoes it: back on its case, journaled on both.
    let undone = browser
        .post_form(
            &undo_path,
            &[("csrf", &csrf), ("from", &wrong), ("token", &token)],
        )
        .await;
    assert_eq!(undone.status, 303, "{}", undone.body);
    assert_eq!(
        undone.location,
        format!("/ufficio/pratiche/{wrong}?ripristinato={message}")
    );
    assert!(
        browser
            .get(&undone.location)
            .await
            .body
            .contains("Spostamento annullato")
    );
    assert_eq!(message_ids(&install, op, &wrong).await, [message]);
    assert!(message_ids(&install, op, &right).await.is_empty());
    let kinds = event_kinds(&install, op, &wrong).await;
    let tail: Vec<&str> = kinds.iter().rev().take(2).map(String::as_str).collect();
    assert_eq!(tail, ["message_moved_in", "message_moved_out"], "{kinds:?}");
    let kinds = event_kinds(&install, op, &right).await;
    assert_eq!(
        &kinds[kinds_right.len()..],
        ["message_moved_in", "message_moved_out"]
    );
    // Once used, the token moves nothing more.
    let again = browser
        .post_form(
            &undo_path,
            &[("csrf", &csrf), ("from", &wrong), ("token", &token)],
        )
        .await;
    assert_eq!(again.status, 403);
}

#[tokio::test]
async fn a_document_named_nothing_is_recognised_by_the_text_read_from_it() {
    let (install, users) = started_with(&[("op", "operator")]).await;
    let op = &users[0].1;
    let (reference, path, mut browser, csrf) = in_review(&install, &users[0]).await;
    let saved = browser
        .post_form(
            &format!("{path}/dati"),
            &[
                ("csrf", &csrf),
                ("category", "dimoranti"),
                ("plates", "AB123CD"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let uploaded = install
        .upload(
            &reference,
            Some(op),
            file_form(
                "CONTRATTO DI LOCAZIONE ad uso abitativo\nTra il signor Bianchi e la signora Rossi"
                    .as_bytes()
                    .to_vec(),
                "allegato1.txt",
            ),
        )
        .await;
    assert_eq!(uploaded.status(), 201);
    // The text is read in the background: wait until it is (a failure says so).
    let mut status = Value::Null;
    for _ in 0..200 {
        status = install.case(op, &reference).await["documents"][0]["text_status"].clone();
        if status != "pending" && status != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert_eq!(status, "done");
    let page = browser.get(&path).await;
    for words in [
        "name=\"documents\" value=\"contratto_locazione\" checked>",
        "soddisfatto da: allegato1.txt",
        "name=\"documents\" value=\"carta_circolazione\">",
    ] {
        assert!(page.body.contains(words), "{words}: {}", page.body);
    }
}

/// The desk does the obvious step itself: an integration asked on a case just received
/// starts its review first; what is missing is ticked from the checklist, never typed;
/// the file the citizen brings resumes the clock in the same step; an issued case links
/// to its permit.
#[tokio::test]
async fn the_desk_starts_the_review_asks_from_the_checklist_and_resumes_with_the_upload() {
    let (install, users) = started_with(&[("op", "operator")]).await;
    let (password, op) = &users[0];
    let reference = install.create_case(op).await;
    let (mut browser, csrf) = Browser::signed_in(&install, "op", password).await;
    let path = format!("/ufficio/pratiche/{reference}");

    // Just received: the integration request is offered already, its documents ticked.
    let page = browser.get(&path).await;
    assert!(
        page.body
            .contains("name=\"missing\" value=\"carta_circolazione\""),
        "{}",
        page.body
    );
    let asked = browser
        .post_form(
            &format!("{path}/azioni"),
            &[
                ("csrf", &csrf),
                ("action", "request_integration"),
                ("missing", "carta_circolazione"),
                ("missing", "documento_identita"),
                ("missing", ""),
            ],
        )
        .await;
    assert_eq!(asked.status, 303, "{}", asked.body);
    let case = install.case(op, &reference).await;
    assert_eq!(case["status"], "waiting_citizen", "{case}");
    let kinds = event_kinds(&install, op, &reference).await;
    let actions: Vec<String> = case["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["detail"]["action"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        actions,
        ["request_integration"],
        "the workflow lets a received case wait on the citizen: {kinds:?}"
    );
    let request = case["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["detail"]["action"] == "request_integration")
        .unwrap();
    assert_eq!(
        request["detail"]["missing"],
        json!(["carta_circolazione", "documento_identita"]),
        "{request}"
    );

    // The citizen brings the registration certificate: uploaded, the clock resumes.
    let page = browser.get(&path).await;
    assert!(
        page.body.contains("name=\"resume\" value=\"1\" checked"),
        "{}",
        page.body
    );
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.clone())
        .text("resume", "1")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"%PDF-1.4 libretto".to_vec())
                .file_name("libretto.pdf".to_owned()),
        );
    let uploaded = browser
        .post_multipart(&format!("{path}/documenti"), form)
        .await;
    assert_eq!(uploaded.status, 200, "{}", uploaded.body);
    assert!(
        uploaded.body.contains("Integrazioni ricevute"),
        "{}",
        uploaded.body
    );
    let case = install.case(op, &reference).await;
    assert_eq!(case["status"], "in_review", "{case}");
    assert_eq!(case["documents"].as_array().unwrap().len(), 1);

    // Without the box, a file is only a file: the clock stays paused.
    let other = install.create_case(op).await;
    install
        .act(op, &other, json!({"action": "start_review"}))
        .await;
    install
        .act(
            op,
            &other,
            json!({"action": "request_integration", "missing": ["carta_circolazione"]}),
        )
        .await;
    let plain = reqwest::multipart::Form::new()
        .text("csrf", csrf.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"%PDF-1.4 altro".to_vec()).file_name("altro.pdf"),
        );
    let answer = browser
        .post_multipart(&format!("/ufficio/pratiche/{other}/documenti"), plain)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(install.case(op, &other).await["status"], "waiting_citizen");

    // An art. 10-bis notice needs the case in review: on a case just received, the desk
    // starts the review first, as its own journaled step.
    let fresh = install.create_case(op).await;
    let noticed = browser
        .post_form(
            &format!("/ufficio/pratiche/{fresh}/azioni"),
            &[
                ("csrf", &csrf),
                ("action", "notify_rejection"),
                ("reasons", "Manca la residenza nella ZTL"),
            ],
        )
        .await;
    assert_eq!(noticed.status, 303, "{}", noticed.body);
    let case = install.case(op, &fresh).await;
    assert_eq!(case["status"], "rejection_notice", "{case}");
    let actions: Vec<&str> = case["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["detail"]["action"].as_str())
        .collect();
    assert_eq!(actions, ["start_review", "notify_rejection"], "{case}");
    // The API keeps the workflow as it is: there the same request is refused.
    let other_fresh = install.create_case(op).await;
    let (status, _, refused) = install
        .call(
            "POST",
            &format!("/api/v1/cases/{other_fresh}/actions"),
            Some(op),
            Some(json!({"action": "notify_rejection", "reasons": ["x"]})),
        )
        .await;
    assert_eq!(status, 409, "{refused}");

    // "Save, approve and issue" from the permit form: refused in words while a document
    // is missing (the data saved all the same), then the permit in one step.
    let quick = install.create_case(op).await;
    let data = format!("/ufficio/pratiche/{quick}/dati");
    let short = browser
        .post_form(
            &data,
            &[
                ("csrf", &csrf),
                ("category", "residenti"),
                ("plates", "CD456EF"),
                ("documents", "documento_identita"),
                ("then", "issue"),
            ],
        )
        .await;
    assert_eq!(short.status, 409, "{}", short.body);
    assert!(
        short.body.contains("La pratica non può essere approvata."),
        "{}",
        short.body
    );
    let case = install.case(op, &quick).await;
    assert_eq!(case["status"], "received", "{case}");
    assert_eq!(case["fields"]["category"], "residenti", "saved: {case}");
    let done = browser
        .post_form(
            &data,
            &[
                ("csrf", &csrf),
                ("category", "residenti"),
                ("plates", "CD456EF"),
                ("documents", "documento_identita"),
                ("documents", "carta_circolazione"),
                ("then", "issue"),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.location,
        format!("/ufficio/pratiche/{quick}?esito=issue")
    );
    let case = install.case(op, &quick).await;
    assert_eq!(case["status"], "issued", "{case}");
    let steps: Vec<&str> = case["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["detail"]["action"].as_str())
        .collect();
    assert_eq!(steps, ["start_review", "approve", "issue"], "{case}");

    // An issued case links to its permit from the summary band.
    let (issued, permit) = install.issued_permit(op, &["AB123CD"]).await;
    let page = browser.get(&format!("/ufficio/pratiche/{issued}")).await;
    assert!(
        page.body.contains(&format!(
            "<a href=\"/ufficio/permessi/{permit}\">{permit}</a>"
        )),
        "{}",
        page.body
    );
}
