//! The web pages through the real server: the citizen portal (apply, follow the case,
//! enumeration-proof status, uploads that resume the clock) and the back office (sign-in
//! with CSRF and lockout, queues, the case page and its action buttons, the session
//! cookie on the API).

use reqwest::multipart::{Form, Part};
use serde_json::json;

use crate::browser::{Answer, Browser, csrf_of};
use crate::harness::{Install, started_with};

fn text_form(fields: &[(&str, &str)]) -> Form {
    fields.iter().fold(Form::new(), |form, (k, v)| {
        form.text(k.to_string(), v.to_string())
    })
}

fn file(name: &str) -> Part {
    Part::bytes(b"%PDF-1.4 documento di prova".to_vec())
        .file_name(name.to_owned())
        .mime_str("application/pdf")
        .unwrap()
}

#[tokio::test]
async fn the_portal_answers_in_italian_and_english_without_scripts() {
    let mut install = Install::new("[office]\nauthority = \"Comune di Prova\"\n").await;
    install.start(&[]).await;
    let mut browser = Browser::new(&install);
    for path in [
        "/",
        "/domanda",
        "/stato",
        "/contesta",
        "/accessibilita",
        "/privacy",
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(
            page.body.starts_with("<!doctype html>\n<html lang=\"it\">"),
            "{path}"
        );
        assert!(page.body.contains("Comune di Prova"), "{path}");
        assert!(!page.body.contains("<script"), "{path}: no script at all");
        assert!(!page.body.contains(" style="), "{path}: no inline style");
        assert!(
            page.csp.contains("default-src 'self'") && !page.csp.contains("unsafe-inline"),
            "{path}: {}",
            page.csp
        );
        assert!(page.body.contains("href=\"/accessibilita\""), "{path}");
    }
    let english = browser.get("/?lang=en").await;
    assert!(english.body.contains("<html lang=\"en\">"));
    assert!(english.body.contains("Apply for a permit"));
    assert_eq!(browser.cookie("lang").as_deref(), Some("en"));
    // The language is remembered.
    let again = browser.get("/stato").await;
    assert!(again.body.contains("Case status"), "{}", again.body);
    // The other language's link keeps the page's query.
    let list = browser.get("/stato?x=1").await;
    assert!(
        list.body.contains("href=\"/stato?x=1&#38;lang=it\""),
        "{}",
        list.body
    );
    let css = browser.get("/static/sportello.css").await;
    assert_eq!(css.status, 200);
    assert!(css.body.contains(":focus-visible"));
}

/// The application form's fields for Mario Rossi's residents' permit, complete with its
/// two documents.
fn complete_application(csrf: &str) -> Form {
    text_form(&[
        ("csrf", csrf),
        ("category", "residenti"),
        ("name", "Mario Rossi"),
        ("fiscal_code", "RSSMRA80A01H501U"),
        ("email", "mario.rossi@example.it"),
        ("plates", "ab 123 cd"),
        ("privacy", "yes"),
    ])
    .part("doc_documento_identita", file("carta-identita.pdf"))
    .part("doc_carta_circolazione", file("libretto.pdf"))
}

/// The status form for a case reference and a fiscal code.
fn lookup(csrf: &str, reference: &str, code: &str) -> Form {
    text_form(&[
        ("csrf", csrf),
        ("reference", reference),
        ("fiscal_code", code),
    ])
}

/// A citizen who applied online with the complete form: their browser, its form token,
/// the page that answered and the case's reference.
struct Applied {
    browser: Browser,
    csrf: String,
    done: Answer,
    reference: String,
}

impl Applied {
    async fn new(install: &Install) -> Applied {
        let mut browser = Browser::new(install);
        let form = browser.get("/domanda").await;
        let csrf = csrf_of(&form.body);
        let done = browser
            .post_multipart("/domanda", complete_application(&csrf))
            .await;
        assert_eq!(done.status, 201, "{}", done.body);
        let at = done.body.find("ZTL-").expect("the case number is shown");
        let reference = done.body[at..at + 15].to_owned();
        Applied {
            browser,
            csrf,
            done,
            reference,
        }
    }
}

#[tokio::test]
async fn an_incomplete_or_forged_application_names_each_problem_and_registers_nothing() {
    let (install, users) = started_with(&[("op", "operator")]).await;
    let op = &users[0].1;
    let mut browser = Browser::new(&install);
    let form = browser.get("/domanda").await;
    let csrf = csrf_of(&form.body);
    assert_eq!(browser.cookie("csrf").as_deref(), Some(csrf.as_str()));
    assert!(
        form.body.contains("Residenti"),
        "categories from the policy"
    );

    // Incomplete: each problem named, nothing registered.
    let incomplete = text_form(&[
        ("csrf", &csrf),
        ("category", "residenti"),
        ("name", "Mario Rossi"),
        ("fiscal_code", "RSSMRA80A01H501X"),
        ("plates", "AB123CD, A*B"),
    ])
    .part("doc_documento_identita", file("ci.pdf"));
    let page = browser.post_multipart("/domanda", incomplete).await;
    assert_eq!(page.status, 422);
    for text in [
        "Il codice fiscale non è valido.",
        "La targa A*B non è valida.",
        "Manca il documento: Carta di circolazione.",
        "devi dichiarare di aver letto",
    ] {
        assert!(page.body.contains(text), "{text}");
    }
    assert!(
        page.body.contains("value=\"Mario Rossi\""),
        "typed values kept"
    );
    // A blank fiscal code is missing, not wrong.
    let blank = text_form(&[
        ("csrf", &csrf),
        ("category", "residenti"),
        ("name", "Mario Rossi"),
        ("fiscal_code", "  "),
        ("plates", "AB123CD"),
    ]);
    let page = browser.post_multipart("/domanda", blank).await;
    assert_eq!(page.status, 422);
    assert!(
        page.body.contains("Indica il codice fiscale."),
        "{}",
        page.body
    );
    assert!(!page.body.contains("Il codice fiscale non è valido."));
    let (_, _, list) = install.call("GET", "/api/v1/cases", Some(op), None).await;
    assert_eq!(list["total"], 0);
    // A forged form (no CSRF cookie match) is refused.
    let forged = text_form(&[("csrf", "0".repeat(32).as_str())]);
    assert_eq!(browser.post_multipart("/domanda", forged).await.status, 403);
}

#[tokio::test]
async fn a_complete_application_registers_a_web_case_and_shows_a_private_link_once() {
    let (install, users) = started_with(&[("op", "operator")]).await;
    let op = &users[0].1;
    let Applied {
        mut browser,
        done,
        reference,
        ..
    } = Applied::new(&install).await;
    let (_, _, case) = install
        .call("GET", &format!("/api/v1/cases/{reference}"), Some(op), None)
        .await;
    assert_eq!(case["channel"], "web");
    assert_eq!(
        case["fields"],
        json!({"category": "residenti", "plates": ["AB123CD"], "documents": ["documento_identita", "carta_circolazione"]})
    );
    assert_eq!(case["documents"].as_array().unwrap().len(), 2);
    assert!(case["protocol"].is_string());

    // The private link shown once opens the case without typing anything.
    let at = done.body.find("/stato/").expect("a private link");
    let link = done.body[at..at + 7 + 48].to_owned();
    let linked = browser.get(&link).await;
    assert_eq!(linked.status, 200);
    assert!(linked.body.contains(&reference));
    let unknown_link = browser.get(&format!("/stato/{}", "ab".repeat(24))).await;
    assert_eq!(unknown_link.status, 404);
    assert!(!unknown_link.body.contains(&reference));
    assert!(
        unknown_link
            .body
            .contains("non corrisponde ad alcuna pratica")
    );
}

#[tokio::test]
async fn the_status_page_shows_the_case_only_for_the_right_pair_and_limits_guessing() {
    let (install, _) = started_with(&[]).await;
    let Applied {
        mut browser,
        csrf,
        reference,
        ..
    } = Applied::new(&install).await;
    let lookup = |reference: &str, code: &str| lookup(&csrf, reference, code);
    // Following it: the right pair shows the case; any wrong pair gets one answer.
    let status = browser
        .post_multipart("/stato", lookup(&reference, "rssmra80a01h501u"))
        .await;
    assert_eq!(status.status, 200);
    assert!(status.body.contains(&reference) && status.body.contains("ricevuta"));
    let wrong_code = browser
        .post_multipart("/stato", lookup(&reference, "BNCGNN75C12F205K"))
        .await;
    let unknown = browser
        .post_multipart("/stato", lookup("ZTL-2026-999999", "RSSMRA80A01H501U"))
        .await;
    let malformed = browser.post_multipart("/stato", lookup("boh", "boh")).await;
    for answer in [&wrong_code, &unknown, &malformed] {
        assert_eq!(answer.status, 200);
        assert!(
            answer
                .body
                .contains("Non troviamo una pratica con questi dati")
        );
        assert!(!answer.body.contains("Mario"), "nothing of the case");
    }

    // Guessing is rate limited per reference.
    let mut limited = false;
    for _ in 0..12 {
        let answer = browser
            .post_multipart("/stato", lookup(&reference, "BNCGNN75C12F205K"))
            .await;
        if answer.status == 429 {
            assert!(answer.body.contains("Troppi tentativi"));
            limited = true;
            break;
        }
    }
    assert!(limited, "lookups of one reference are limited");
}

#[tokio::test]
async fn the_citizen_sees_what_is_missing_and_sending_it_resumes_the_clock() {
    let (install, users) = started_with(&[("op", "operator")]).await;
    let op = &users[0].1;
    let Applied {
        mut browser,
        csrf,
        reference,
        ..
    } = Applied::new(&install).await;
    let lookup = |reference: &str, code: &str| lookup(&csrf, reference, code);
    // The office asks for a document; the citizen sees what is missing and sends it,
    // which resumes the clock.
    for body in [
        json!({"action": "start_review"}),
        json!({"action": "request_integration", "missing": ["Carta di circolazione leggibile"]}),
    ] {
        let (status, _, answer) = install
            .call(
                "POST",
                &format!("/api/v1/cases/{reference}/actions"),
                Some(op),
                Some(body),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    let waiting = browser
        .post_multipart("/stato", lookup(&reference, "RSSMRA80A01H501U"))
        .await;
    assert!(waiting.body.contains("Carta di circolazione leggibile"));
    let upload = lookup(&reference, "RSSMRA80A01H501U").part("file", file("libretto-nuovo.pdf"));
    let sent = browser.post_multipart("/stato", upload).await;
    assert!(
        sent.body.contains("Abbiamo ricevuto 1 documenti"),
        "{}",
        sent.body
    );
    let (_, _, case) = install
        .call("GET", &format!("/api/v1/cases/{reference}"), Some(op), None)
        .await;
    assert_eq!(case["status"], "in_review", "the clock runs again");
    assert_eq!(case["documents"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn staff_sign_in_refuses_forged_and_wrong_attempts_with_one_message() {
    let (install, users) = started_with(&[("op", "operator")]).await;
    let op_password = &users[0].0;
    let mut browser = Browser::new(&install);

    let gate = browser.get("/ufficio").await;
    assert_eq!(
        (gate.status, gate.location.as_str()),
        (303, "/ufficio/login?next=/ufficio")
    );
    let login = browser.get("/ufficio/login?next=/ufficio").await;
    assert_eq!(
        browser.cookie("csrf_login").as_deref(),
        Some(csrf_of(&login.body).as_str()),
        "the form's token is also its cookie"
    );
    // Without the form's token: refused.
    let forged = browser
        .post_form(
            "/ufficio/login",
            &[("login", "op"), ("password", "x"), ("csrf", "0000")],
        )
        .await;
    assert_eq!(forged.status, 403);
    // Every answer of the form carries a fresh token for the next attempt.
    let csrf = csrf_of(&forged.body);
    assert_eq!(browser.cookie("csrf_login").as_deref(), Some(csrf.as_str()));
    let wrong = browser
        .post_form(
            "/ufficio/login",
            &[("login", "op"), ("password", "sbagliata"), ("csrf", &csrf)],
        )
        .await;
    assert!(wrong.body.contains("Nome utente o password non corretti."));
    let unknown = browser
        .post_form(
            "/ufficio/login",
            &[
                ("login", "nessuno"),
                ("password", "sbagliata"),
                ("csrf", &csrf_of(&wrong.body)),
            ],
        )
        .await;
    assert!(
        unknown
            .body
            .contains("Nome utente o password non corretti."),
        "one message whatever was wrong"
    );
    let signed_in = browser
        .post_form(
            "/ufficio/login",
            &[
                ("login", "op"),
                ("password", op_password),
                ("csrf", &csrf_of(&unknown.body)),
                ("next", "/ufficio"),
            ],
        )
        .await;
    assert_eq!(
        (signed_in.status, signed_in.location.as_str()),
        (303, "/ufficio")
    );
    let session = browser
        .cookie("sportello_session")
        .expect("a session cookie");
    assert!(session.starts_with("spt_"));
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_sign_in() {
    let (install, users) = started_with(&[("op", "operator")]).await;
    let op_password = &users[0].0;
    let mut guesser = Browser::new(&install);
    let mut page = guesser.get("/ufficio/login").await;
    for _ in 0..5 {
        page = guesser
            .post_form(
                "/ufficio/login",
                &[
                    ("login", "op"),
                    ("password", "no"),
                    ("csrf", &csrf_of(&page.body)),
                ],
            )
            .await;
    }
    let locked = guesser
        .post_form(
            "/ufficio/login",
            &[
                ("login", "op"),
                ("password", op_password),
                ("csrf", &csrf_of(&page.body)),
            ],
        )
        .await;
    assert_eq!(locked.status, 429);
    assert!(locked.body.contains("Troppi tentativi di accesso"));
}

#[tokio::test]
async fn an_operator_works_a_case_from_its_page_lists_it_and_finds_it() {
    let (install, users) = started_with(&[("op", "operator")]).await;
    let (op_password, op) = &users[0];
    let reference = install.create_case(op).await;
    let (mut browser, _) = Browser::signed_in(&install, "op", op_password).await;

    let home = browser.get("/ufficio").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("Nuove non assegnate"));
    assert!(
        home.body
            .contains("<span class=\"count\">1</span><span class=\"label\">Nuove non assegnate"),
        "{}",
        home.body
    );
    let page = browser.get(&format!("/ufficio/pratiche/{reference}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Avvia l&#39;istruttoria") || page.body.contains("Avvia l'istruttoria")
    );
    let token = csrf_of(&page.body);
    // A button without the session's token changes nothing.
    let forged = browser
        .post_form(
            &format!("/ufficio/pratiche/{reference}/azioni"),
            &[("csrf", "x"), ("action", "start_review")],
        )
        .await;
    assert!(forged.body.contains("Il modulo è scaduto"));
    let acted = browser
        .post_form(
            &format!("/ufficio/pratiche/{reference}/azioni"),
            &[("csrf", &token), ("action", "start_review")],
        )
        .await;
    assert_eq!(acted.status, 303);
    assert_eq!(
        acted.location,
        format!("/ufficio/pratiche/{reference}?esito=start_review")
    );
    let (_, _, case) = install
        .call("GET", &format!("/api/v1/cases/{reference}"), Some(op), None)
        .await;
    assert_eq!(case["status"], "in_review");
    assert_eq!(
        case["timeline"].as_array().unwrap().last().unwrap()["actor"],
        "op"
    );
    // The list as a file, subjects as text (a citizen's "=..." is not a formula).
    let export = browser
        .get("/ufficio/pratiche?status=in_review&format=csv")
        .await;
    assert_eq!(export.status, 200);
    let lines: Vec<&str> = export.body.lines().collect();
    assert!(
        lines[0].starts_with("reference,case_type,status,subject"),
        "{}",
        export.body
    );
    assert_eq!(lines.len(), 2, "one case in review: {}", export.body);
    assert!(lines[1].starts_with(&format!("{reference},Permesso ZTL,in istruttoria,")));
    let xlsx = browser.get("/ufficio/pratiche?format=xlsx").await;
    assert_eq!(xlsx.status, 200);
    // A refused action shows why.
    let refused = browser
        .post_form(
            &format!("/ufficio/pratiche/{reference}/azioni"),
            &[("csrf", &token), ("action", "issue")],
        )
        .await;
    assert_eq!(refused.status, 200);
    assert!(refused.body.contains("notice error"), "{}", refused.body);
    // Search jumps to a reference.
    let jump = browser
        .get(&format!("/ufficio/cerca?q={}", reference.to_lowercase()))
        .await;
    assert_eq!(jump.location, format!("/ufficio/pratiche/{reference}"));
}

#[tokio::test]
async fn a_message_shows_as_text_and_moves_to_another_case_from_its_page() {
    let (install, users) = started_with(&[("op", "operator")]).await;
    let (op_password, op) = &users[0];
    let reference = install.create_case(op).await;
    let (mut browser, token) = Browser::signed_in(&install, "op", op_password).await;
    // A message's text is on the timeline, as text: markup from outside never runs.
    let line = install.ingest_mail(
        "hostile.eml",
        "From: anna@example.it\r\nSubject: Documenti\r\nMessage-ID: <pages@example.it>\r\n\
         Content-Type: text/html; charset=utf-8\r\n\r\n\
         <p>Allego il libretto <b>richiesto</b> &lt;script&gt;alert(1)&lt;/script&gt;</p><script>alert(2)</script>\r\n",
    );
    let hostile = browser
        .get(&format!(
            "/ufficio/pratiche/{}",
            line["case"].as_str().unwrap()
        ))
        .await;
    assert!(
        hostile.body.contains("Allego il libretto"),
        "{}",
        hostile.body
    );
    assert!(
        !hostile.body.contains("<script"),
        "no script from a message"
    );
    assert!(
        !hostile.body.contains("<b>richiesto"),
        "no markup from a message"
    );
    // It belongs to the first case: moved there from its page, with a note.
    let hostile_case = line["case"].as_str().unwrap().to_owned();
    let (_, _, messages) = install
        .call(
            "GET",
            &format!("/api/v1/cases/{hostile_case}/messages"),
            Some(op),
            None,
        )
        .await;
    let message = messages[0]["id"].as_i64().unwrap();
    let moved = browser
        .post_form(
            &format!("/ufficio/pratiche/{hostile_case}/messaggi/{message}"),
            &[
                ("csrf", &token),
                ("to", &reference.to_lowercase()),
                ("note", "stessa richiesta"),
                ("confirm", "1"),
            ],
        )
        .await;
    assert!(
        moved
            .location
            .starts_with(&format!("/ufficio/pratiche/{reference}?spostato=")),
        "{}",
        moved.location
    );
    let (_, _, messages) = install
        .call(
            "GET",
            &format!("/api/v1/cases/{reference}/messages"),
            Some(op),
            None,
        )
        .await;
    assert!(
        messages
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == message),
        "{messages}"
    );
}

#[tokio::test]
async fn a_message_for_a_closed_case_waits_in_its_queue_until_someone_deals_with_it() {
    let (install, users) = started_with(&[("op", "operator")]).await;
    let (op_password, op) = &users[0];
    let (mut browser, token) = Browser::signed_in(&install, "op", op_password).await;
    let closed = install.create_case(op).await;
    install
        .act(
            op,
            &closed,
            json!({"action": "withdraw", "note": "rinuncia"}),
        )
        .await;
    install.ingest_mail(
        "late.eml",
        &format!("From: anna@example.it\r\nSubject: Re: {closed}\r\nMessage-ID: <late@example.it>\r\n\r\nAncora io\r\n"),
    );
    let attention = "<span class=\"count\">1</span><span class=\"label\">Messaggi da verificare";
    assert!(browser.get("/ufficio").await.body.contains(attention));
    let cleared = browser
        .post_form(
            &format!("/ufficio/pratiche/{closed}/segnalazioni"),
            &[("csrf", &token), ("flag", "needs_attention")],
        )
        .await;
    assert_eq!(cleared.status, 303);
    assert!(
        browser
            .get("/ufficio")
            .await
            .body
            .contains("<span class=\"count\">0</span><span class=\"label\">Messaggi da verificare")
    );
}

#[tokio::test]
async fn the_session_cookie_reads_the_api_changes_only_with_the_csrf_header_and_ends_at_sign_out() {
    let (install, users) = started_with(&[("op", "operator")]).await;
    let (op_password, op) = &users[0];
    let reference = install.create_case(op).await;
    install
        .act(op, &reference, json!({"action": "start_review"}))
        .await;
    let (mut browser, token) = Browser::signed_in(&install, "op", op_password).await;
    let session = browser.cookie("sportello_session").unwrap();

    // The API from the pages: reads with the cookie; changes only with the CSRF header.
    let api = format!("{}/api/v1/cases/{reference}/actions", install.base());
    let cookie = format!("sportello_session={session}");
    let read = install
        .client
        .get(format!("{}/api/v1/cases/{reference}", install.base()))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let no_token = install
        .client
        .post(&api)
        .header("cookie", &cookie)
        .json(&json!({"action": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 403);
    let with_token = install
        .client
        .post(&api)
        .header("cookie", &cookie)
        .header("x-csrf-token", &token)
        .json(&json!({"action": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status(), 200);

    // Signing out ends the session everywhere.
    browser
        .post_form("/ufficio/logout", &[("csrf", &token)])
        .await;
    assert!(browser.cookie("sportello_session").is_none());
    let after = install
        .client
        .get(format!("{}/api/v1/cases/{reference}", install.base()))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
}

#[tokio::test]
async fn the_police_land_on_the_permits_desk_and_check_a_gate_file_there() {
    let (install, users) = started_with(&[("op", "operator"), ("vigile", "police")]).await;
    let op = &users[0].1;
    let police_password = &users[1].0;
    let reference = install.create_case(op).await;
    // The police land on the permits desk.
    let mut police = Browser::new(&install);
    let signed = police.sign_in("vigile", police_password).await;
    assert_eq!(signed.status, 303);
    let home = police.get("/ufficio").await;
    assert_eq!(home.location, "/ufficio/permessi");
    let check = police.get("/ufficio/permessi?plate=AB123CD&gate=V04").await;
    assert!(check.body.contains("Non autorizzato"), "{}", check.body);
    // The desk checks a gate file: the violations come back as a file; bad lines are named.
    let desk = police.get("/ufficio/permessi").await;
    let desk_csrf = csrf_of(&desk.body);
    let upload = |body: &'static str| {
        Form::new().text("csrf", desk_csrf.clone()).part(
            "file",
            Part::bytes(body.as_bytes().to_vec()).file_name("varchi.csv"),
        )
    };
    let checked = police
        .post_multipart(
            "/ufficio/permessi/transiti",
            upload("transit_id,gate,plate,country,timestamp\nT1,V04,ab 123 cd,,2026-03-02T09:00:00+01:00\n"),
        )
        .await;
    assert_eq!(checked.status, 200);
    assert_eq!(
        checked.body,
        "transit_id,gate,zone,plate,country,timestamp,reason\nT1,V04,B,AB123CD,IT,2026-03-02T09:00:00+01:00,no_permit\n"
    );
    let refused = police
        .post_multipart(
            "/ufficio/permessi/transiti",
            upload("transit_id,gate,plate,country,timestamp\nT1,V99,AB123CD,,2026-03-02T09:00:00+01:00\n"),
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("riga 2"), "{}", refused.body);
    let case = police.get(&format!("/ufficio/pratiche/{reference}")).await;
    assert_eq!(
        case.location, "/ufficio/permessi",
        "no case files for the police"
    );
}

/// Posts the CUDE temporary-plate form for permit CUD-7 and plate ZZ 123 ZZ.
async fn send_cude(
    browser: &mut Browser,
    csrf: &str,
    fiscal_code: &str,
    (date_from, time_from): (String, String),
    (date_to, time_to): (String, String),
) -> Answer {
    browser
        .post_form(
            "/cude",
            &[
                ("csrf", csrf),
                ("permit", "cud-7"),
                ("fiscal_code", fiscal_code),
                ("plate", "ZZ 123 ZZ"),
                ("date_from", &date_from),
                ("time_from", &time_from),
                ("date_to", &date_to),
                ("time_to", &time_to),
            ],
        )
        .await
}

/// An installation whose register holds the CUDE permit CUD-7 of the contract's citizen
/// (plate AA111AA), with a supervisor `capo` (its password) and an operator `op` (its
/// token), started; and the time in Rome.
struct CudeHolder {
    install: Install,
    supervisor_password: String,
    op: String,
    now: chrono::DateTime<chrono::Utc>,
}

impl CudeHolder {
    async fn new() -> CudeHolder {
        let mut install = Install::new("").await;
        install.import_register(
            "CUD-7,cude,RSSMRA80A01H501U,Mario Rossi,AA111AA,IT,2020-01-01,2099-12-31,active\n",
        );
        let (supervisor_password, _) = install.user_with_password("capo", "supervisor");
        let op = install.user("op", "operator");
        install.start(&[]).await;
        let now = sportello_domain::clock::Clock::now(&sportello_domain::clock::SystemClock);
        CudeHolder {
            install,
            supervisor_password,
            op,
            now,
        }
    }

    /// The date and the time `hours` from now, as the portal's form takes them.
    fn at(&self, hours: i64) -> (String, String) {
        let t = (self.now + chrono::Duration::hours(hours))
            .with_timezone(&sportello_domain::calendar::ROME);
        (
            t.format("%Y-%m-%d").to_string(),
            t.format("%H:%M").to_string(),
        )
    }

    /// The portal's CUDE form, opened in a new browser: the browser and its form token.
    async fn portal(&self) -> (Browser, String) {
        let mut browser = Browser::new(&self.install);
        let form = browser.get("/cude").await;
        let csrf = csrf_of(&form.body);
        (browser, csrf)
    }
}

#[tokio::test]
async fn a_cude_holder_communicates_a_temporary_plate_on_the_portal() {
    let holder = CudeHolder::new().await;
    let (install, op) = (&holder.install, &holder.op);
    let (mut browser, csrf) = holder.portal().await;
    let at = |hours| holder.at(hours);
    let wrong_holder = send_cude(&mut browser, &csrf, "BNCGNN75C12F205K", at(-2), at(2)).await;
    assert_eq!(wrong_holder.status, 422);
    assert!(wrong_holder.body.contains("non corrispondono"));
    let too_early = send_cude(&mut browser, &csrf, "RSSMRA80A01H501U", at(-60), at(1)).await;
    assert_eq!(too_early.status, 422);
    assert!(
        too_early.body.contains("48"),
        "the limit is named: {}",
        too_early.body
    );
    let done = send_cude(&mut browser, &csrf, "RSSMRA80A01H501U", at(-3), at(5)).await;
    assert_eq!(done.status, 201, "{}", done.body);
    assert!(done.body.contains("ZZ123ZZ"));
    let (_, _, permit) = install
        .call("GET", "/api/v1/permits/CUD-7", Some(op), None)
        .await;
    let temporary = permit["plates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["source"] == "temporary")
        .expect("the plate is on the permit");
    assert_eq!(temporary["plate"], "ZZ123ZZ");
    assert_eq!(temporary["recorded_by"], "cittadino");
}

#[tokio::test]
async fn the_supervisor_sees_who_read_a_case_and_operators_see_neither_log_nor_reports() {
    let (install, users) = started_with(&[("capo", "supervisor"), ("op", "operator")]).await;
    let (supervisor_password, op) = (&users[0].0, &users[1].1);
    // Someone reads a case; the supervisor's log says who.
    let reference = install.create_case(op).await;
    install
        .call("GET", &format!("/api/v1/cases/{reference}"), Some(op), None)
        .await;
    let mut supervisor = Browser::new(&install);
    supervisor.sign_in("capo", supervisor_password).await;
    let log = supervisor
        .get(&format!("/ufficio/accessi?target={reference}"))
        .await;
    assert_eq!(log.status, 200);
    assert!(
        log.body
            .contains("<td>op</td><td>ha aperto la pratica</td>"),
        "{}",
        log.body
    );
    assert!(
        log.body.contains("href=\"/ufficio/accessi\""),
        "in the supervisor's menu"
    );
    let mut operator = Browser::new(&install);
    let (op_password, _) = install.user_with_password("op2", "operator");
    operator.sign_in("op2", &op_password).await;
    assert_eq!(operator.get("/ufficio/report").await.location, "/ufficio");
    assert_eq!(operator.get("/ufficio/accessi").await.location, "/ufficio");
}

#[tokio::test]
async fn staff_register_a_temporary_plate_from_the_permit_page_within_the_category_limit() {
    let holder = CudeHolder::new().await;
    let (install, op) = (&holder.install, &holder.op);
    let now = holder.now.with_timezone(&sportello_domain::calendar::ROME);
    // The holder has communicated ZZ123ZZ on the portal, from three hours ago for eight.
    let (mut browser, csrf) = holder.portal().await;
    let done = send_cude(
        &mut browser,
        &csrf,
        "RSSMRA80A01H501U",
        holder.at(-3),
        holder.at(5),
    )
    .await;
    assert_eq!(done.status, 201, "{}", done.body);
    let (mut supervisor, _) =
        Browser::signed_in(install, "capo", &holder.supervisor_password).await;
    // Staff register a temporary plate from the permit's page too.
    let permit_page = supervisor.get("/ufficio/permessi/CUD-7").await;
    assert!(permit_page.body.contains("Targa temporanea (CUDE)"));
    let token = csrf_of(&permit_page.body);
    let local = |hours: i64| {
        (now + chrono::Duration::hours(hours))
            .format("%Y-%m-%dT%H:%M")
            .to_string()
    };
    // AA111AA and ZZ123ZZ are authorised until ZZ123ZZ ends: at most two plates at once
    // (CUDE), so a third over those hours is refused, naming them; one after it passes.
    let (from, to) = (local(1), local(2));
    let crowded = supervisor
        .post_form(
            "/ufficio/permessi/CUD-7",
            &[
                ("csrf", &token),
                ("change", "temporary_plate"),
                ("plate", "yy 333 yy"),
                ("from", &from),
                ("to", &to),
            ],
        )
        .await;
    assert!(
        crowded.body.contains("notice error")
            && crowded.body.contains("autorizzerebbe 3 targhe insieme")
            && crowded.body.contains("si sovrappone a AA111AA, ZZ123ZZ"),
        "{}",
        crowded.body
    );
    let (from, to) = (local(6), local(9));
    let added = supervisor
        .post_form(
            "/ufficio/permessi/CUD-7",
            &[
                ("csrf", &token),
                ("change", "temporary_plate"),
                ("plate", "yy 111 yy"),
                ("from", &from),
                ("to", &to),
            ],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    let (_, _, permit) = install
        .call("GET", "/api/v1/permits/CUD-7", Some(op), None)
        .await;
    assert!(
        permit["plates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["plate"] == "YY111YY" && p["recorded_by"] == "capo"),
        "{permit}"
    );
    let far = local(-100);
    let refused = supervisor
        .post_form(
            "/ufficio/permessi/CUD-7",
            &[
                ("csrf", &token),
                ("change", "temporary_plate"),
                ("plate", "yy 222 yy"),
                ("from", &far),
                ("to", &to),
            ],
        )
        .await;
    assert!(refused.body.contains("notice error"), "{}", refused.body);
}

#[tokio::test]
async fn the_reports_page_draws_its_charts_with_their_data_and_refuses_a_backward_period() {
    let (install, users) = started_with(&[("capo", "supervisor")]).await;
    let (mut supervisor, _) = Browser::signed_in(&install, "capo", &users[0].0).await;
    // The reports as a page: charts with their data, the figures, the exports.
    let reports = supervisor.get("/ufficio/report?group_by=channel").await;
    assert_eq!(reports.status, 200);
    for needle in [
        "<svg",
        "role=\"img\"",
        "Pratiche aperte e chiuse per settimana",
        "<caption>",
        "format=xlsx",
        "<th scope=\"row\">Totale</th>",
        // The day's gauges, recorded by the server's tick at start.
        "Pratiche orfane e scadute nel tempo",
    ] {
        assert!(reports.body.contains(needle), "{needle}");
    }
    assert!(!reports.body.contains("<script"));
    let backwards = supervisor
        .get("/ufficio/report?from=2026-05-01&to=2026-04-01")
        .await;
    assert_eq!(backwards.status, 422);
}

/// The whole job from the browser: a request from the counter gets its document, its
/// permit data, the review, the approval and the permit, with buttons only.
#[tokio::test]
async fn an_operator_issues_a_permit_from_the_pages_alone() {
    let mut install = Install::new("").await;
    let (password, op) = install.user_with_password("op", "operator");
    install.start(&[]).await;
    let reference = install.create_case(&op).await;
    let mut browser = Browser::new(&install);
    browser.sign_in("op", &password).await;
    let case_path = format!("/ufficio/pratiche/{reference}");
    let token = csrf_of(&browser.get(&case_path).await.body);
    let upload = Form::new()
        .text("csrf", token.clone())
        .part("file", file("carta-identita.pdf"))
        .part("file", file("libretto.pdf"));
    let uploaded = browser
        .post_multipart(&format!("{case_path}/documenti"), upload)
        .await;
    assert!(
        uploaded.body.contains("Abbiamo ricevuto 2 documenti"),
        "{}",
        uploaded.body
    );
    let data_path = format!("{case_path}/dati");
    let save_documents = |documents: &'static str| {
        [
            ("csrf", token.clone()),
            ("category", "residenti".to_owned()),
            ("plates", "AB123CD".to_owned()),
            ("documents", documents.to_owned()),
        ]
    };
    let form = save_documents("documento_identita");
    let saved = browser
        .post_form(&data_path, &form.each_ref().map(|(k, v)| (*k, v.as_str())))
        .await;
    assert_eq!(saved.status, 303);
    let actions = format!("{case_path}/azioni");
    let started = browser
        .post_form(&actions, &[("csrf", &token), ("action", "start_review")])
        .await;
    assert_eq!(started.status, 303, "{}", started.body);
    // The rules' refusals are said in the page's language, names in words.
    let early = browser
        .post_form(&actions, &[("csrf", &token), ("action", "issue")])
        .await;
    assert!(
        early.body.contains(
            "L&#39;azione «Rilascia» non è consentita quando la pratica è «in istruttoria»"
        ),
        "{}",
        early.body
    );
    // Approving with a document missing is refused by the page, in words (issue 18 §1).
    let approve = [("csrf", token.as_str()), ("action", "approve")];
    let incomplete = browser
        .post_form(&format!("{actions}?lang=en"), &approve)
        .await;
    assert!(
        incomplete.body.contains(
            "The category Residenti requires documents not yet received: Vehicle registration"
        ),
        "{}",
        incomplete.body
    );
    let incomplete = browser
        .post_form(&format!("{actions}?lang=it"), &approve)
        .await;
    assert!(
        incomplete
            .body
            .contains("richiede documenti non ancora ricevuti: Carta di circolazione")
            && incomplete
                .body
                .contains("<dd>Documento d&#39;identità</dd>"),
        "{}",
        incomplete.body
    );
    let form = save_documents("documento_identita, carta_circolazione");
    let saved = browser
        .post_form(&data_path, &form.each_ref().map(|(k, v)| (*k, v.as_str())))
        .await;
    assert_eq!(saved.status, 303);
    for action in ["approve", "issue"] {
        let done = browser
            .post_form(
                &format!("{case_path}/azioni"),
                &[("csrf", &token), ("action", action)],
            )
            .await;
        assert_eq!(done.status, 303, "{action}: {}", done.body);
    }
    let (_, _, case) = install
        .call(
            "GET",
            &format!("/api/v1/cases/{reference}"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(case["status"], "issued", "{case}");
    assert_eq!(
        case["fields"]["documents"],
        json!(["documento_identita", "carta_circolazione"])
    );
    let names: Vec<&str> = case["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["filename"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("permesso-RES2")),
        "{names:?}"
    );
    // Without the session's token nothing is stored.
    let forged = browser
        .post_multipart(
            &format!("{case_path}/documenti"),
            Form::new()
                .text("csrf", "x")
                .part("file", file("altro.pdf")),
        )
        .await;
    assert!(forged.body.contains("Il modulo è scaduto"));
}

#[tokio::test]
async fn the_permit_page_shows_its_state_suspends_with_a_reason_and_opens_a_renewal() {
    let (install, users) = started_with(&[("op", "operator")]).await;
    let (password, op) = &users[0];
    let (_, number) = install.issued_permit(op, &["AB123CD"]).await;
    let (mut browser, token) = Browser::signed_in(&install, "op", password).await;
    // The permit's page: its state and history, suspension with a reason, renewal.
    let permit_path = format!("/ufficio/permessi/{number}");
    let permit_page = browser.get(&permit_path).await;
    assert_eq!(permit_page.status, 200);
    assert!(permit_page.body.contains("attivo") && permit_page.body.contains("AB123CD"));
    let suspended = browser
        .post_form(
            &permit_path,
            &[
                ("csrf", &token),
                ("change", "suspended"),
                ("reason", "veicolo venduto"),
            ],
        )
        .await;
    assert_eq!(suspended.status, 303);
    let (_, _, permit) = install
        .call("GET", &format!("/api/v1/permits/{number}"), Some(op), None)
        .await;
    assert_eq!(permit["state"], "suspended");
    assert_eq!(
        permit["history"].as_array().unwrap().last().unwrap()["detail"]["reason"],
        "veicolo venduto"
    );
    let renewal = browser
        .post_form(&permit_path, &[("csrf", &token), ("change", "renew")])
        .await;
    assert_eq!(renewal.status, 303);
    assert!(
        renewal.location.starts_with("/ufficio/pratiche/ZTL-"),
        "{}",
        renewal.location
    );
    let opened = browser
        .get(&format!(
            "/ufficio/permessi/apri?numero={}",
            number.to_lowercase()
        ))
        .await;
    assert_eq!(opened.location, permit_path);
}
