//! The contact centre and the counter through the real server (issue #7): the call-back
//! queue (open, log not reached, log an appointment), the counter's day and its
//! confirmations, the case's timeline, the role matrix, bad input, and the back-office
//! pages' one-click buttons.

use chrono::{Duration, TimeZone};
use serde_json::{Value, json};
use sportello_domain::calendar::{ROME, rome_date};
use sportello_domain::clock::{Clock, SystemClock};

use crate::browser::{Browser, csrf_of};
use crate::harness::{Install, started_with};

/// A case of a citizen who has only a phone.
async fn phone_case(install: &Install, token: &str) -> String {
    let body = json!({"case_type": "ztl_permit", "subject": "Permesso residenti", "channel": "phone",
        "citizen": {"name": "Anna Neri", "phone": "+39 06 1234567"}});
    let (status, case) = post(install, token, "/api/v1/cases", Some(body)).await;
    assert_eq!(status, 201, "{case}");
    case["reference"].as_str().unwrap().to_owned()
}

/// 10:30 in Rome, `days` days from today: (RFC 3339, the Rome day).
fn rome_morning(days: i64) -> (String, String) {
    let day = rome_date(SystemClock.now()) + Duration::days(days);
    let at = ROME
        .from_local_datetime(&day.and_hms_opt(10, 30, 0).unwrap())
        .earliest()
        .unwrap();
    (at.to_rfc3339(), day.format("%Y-%m-%d").to_string())
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect()
}

/// `method path` as `token`, with an optional JSON body: (status, JSON).
async fn send(
    install: &Install,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, _, json) = install.call(method, path, Some(token), body).await;
    (status, json)
}

/// POST `path` as `token`, with an optional JSON body: (status, JSON).
/// Proposes an appointment for a case; the appointment.
async fn propose(install: &Install, token: &str, reference: &str, body: Value) -> Value {
    let (status, appointment) = post(
        install,
        token,
        &format!("/api/v1/cases/{reference}/appointments"),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{appointment}");
    appointment
}

async fn post(install: &Install, token: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    send(install, "POST", path, token, body).await
}

/// GET `path` as `token`: the JSON of its 200.
async fn get_ok(install: &Install, token: &str, path: &str) -> Value {
    let (status, json) = send(install, "GET", path, token, None).await;
    assert_eq!(status, 200, "GET {path}: {json}");
    json
}

/// The events of a case's timeline.
async fn timeline(install: &Install, token: &str, reference: &str) -> Vec<Value> {
    let case = get_ok(install, token, &format!("/api/v1/cases/{reference}")).await;
    case["timeline"].as_array().unwrap().clone()
}

/// The kinds of a case's timeline's events.
async fn timeline_kinds(install: &Install, token: &str, reference: &str) -> Vec<String> {
    timeline(install, token, reference)
        .await
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_call_back_ends_in_an_appointment_at_the_counter() {
    let mut install = Install::new("[office]\nname = \"Ufficio Mobilità\"\n").await;
    let op = install.user("op", "operator");
    install.start(&[]).await;
    let reference = install.create_case(&op).await;

    let path = format!("/api/v1/cases/{reference}/callbacks");
    let (status, task) = post(
        &install,
        &op,
        &path,
        Some(json!({"note": "Manca il libretto"})),
    )
    .await;
    assert_eq!(status, 201, "{task}");
    assert_eq!(task["status"], "open");
    assert_eq!(task["reason"], "operator");
    assert_eq!(task["script"], "Manca il libretto");
    assert_eq!(task["case"], reference.as_str());
    let id = task["id"].as_i64().unwrap();
    let (status, again) = post(&install, &op, &path, None).await;
    assert_eq!(status, 409, "one open call per case: {again}");

    let queue = get_ok(&install, &op, "/api/v1/callbacks").await;
    assert_eq!(ids(&queue["items"]), [id]);
    assert_eq!(queue["total"], 1);

    let call = format!("/api/v1/callbacks/{id}");
    let (status, once) = post(
        &install,
        &op,
        &call,
        Some(json!({"outcome": "not_reached", "note": "segreteria"})),
    )
    .await;
    assert_eq!(status, 200, "{once}");
    assert_eq!(
        (once["status"].as_str(), once["attempts"].as_i64()),
        (Some("open"), Some(1))
    );
    assert!(
        once["due_at"].as_str() > once["created_at"].as_str(),
        "{once}"
    );
    assert!(once.get("appointment").is_none());
    let queue = get_ok(&install, &op, "/api/v1/callbacks").await;
    assert_eq!(ids(&queue["items"]), [id], "still to call");

    let (starts_at, day) = rome_morning(3);
    let (status, done) = post(
        &install,
        &op,
        &call,
        Some(json!({"outcome": "appointment", "call_id": "pbx-42",
                "appointment": {"starts_at": starts_at, "reason": "Firma e ritiro del permesso"}})),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        (done["status"].as_str(), done["attempts"].as_i64()),
        (Some("done"), Some(2))
    );
    assert_eq!(done["outcome"], "appointment");
    assert_eq!(done["call_id"], "pbx-42");
    assert_eq!(done["done_by"], "op");
    let appointment = done["appointment"].clone();
    assert_eq!(appointment["status"], "proposed");
    assert_eq!(appointment["place"], "Sportello, Ufficio Mobilità");
    assert_eq!(appointment["case"], reference.as_str());
    let aid = appointment["id"].as_i64().unwrap();
    let queue = get_ok(&install, &op, "/api/v1/callbacks").await;
    assert_eq!(queue["total"], 0, "done: out of the queue");
    let (status, refused) = post(&install, &op, &call, Some(json!({"outcome": "reached"}))).await;
    assert_eq!(
        status, 409,
        "a done call takes no further outcome: {refused}"
    );

    let list = get_ok(&install, &op, &format!("/api/v1/appointments?day={day}")).await;
    assert_eq!(ids(&list), [aid]);
    assert_eq!(list[0]["case_flags"], json!([]));
    assert_eq!(list[0]["case_status"], "received");
    let other_day = get_ok(&install, &op, "/api/v1/appointments").await;
    assert_eq!(ids(&other_day), Vec::<i64>::new(), "today has none");

    let confirm = format!("/api/v1/appointments/{aid}/confirm");
    let (status, confirmed) = post(&install, &op, &confirm, Some(json!({"via": "phone"}))).await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["status"], "confirmed");
    assert_eq!(confirmed["confirmed_via"], "phone");
    let (status, same) = post(&install, &op, &confirm, None).await;
    assert_eq!(
        (status, &same),
        (200, &confirmed),
        "again, without a body: unchanged"
    );

    let kinds = timeline_kinds(&install, &op, &reference).await;
    for kind in [
        "call_task_opened",
        "call_logged",
        "appointment_proposed",
        "appointment_confirmed",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    assert_eq!(kinds.iter().filter(|k| *k == "call_logged").count(), 2);
}

#[tokio::test]
async fn an_appointment_set_directly_and_cancelled_cannot_be_confirmed_any_more() {
    let (install, users) = started_with(&[("op", "operator")]).await;
    let op = &users[0].1;
    let reference = install.create_case(op).await;
    // The case's first appointment, proposed directly.
    let (starts_at, _) = rome_morning(3);
    let first = propose(
        &install,
        op,
        &reference,
        json!({"starts_at": starts_at, "reason": "Firma e ritiro del permesso"}),
    )
    .await;
    let aid = first["id"].as_i64().unwrap();
    // An appointment set directly, then cancelled: it cannot be confirmed any more.
    let (later, _) = rome_morning(4);
    let (status, second) = post(
        &install,
        op,
        &format!("/api/v1/cases/{reference}/appointments"),
        Some(json!({"starts_at": later, "place": "Sportello 3", "reason": "Documento d'identità"})),
    )
    .await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["place"], "Sportello 3");
    let second_id = second["id"].as_i64().unwrap();
    let (status, cancelled) = post(
        &install,
        op,
        &format!("/api/v1/appointments/{second_id}/cancel"),
        Some(json!({"note": "il cittadino non può"})),
    )
    .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("cancelled"))
    );
    let (status, _) = post(
        &install,
        op,
        &format!("/api/v1/appointments/{second_id}/confirm"),
        None,
    )
    .await;
    assert_eq!(status, 409);
    let of_case = get_ok(
        &install,
        op,
        &format!("/api/v1/cases/{reference}/appointments"),
    )
    .await;
    assert_eq!(ids(&of_case), [aid, second_id]);
    assert!(
        timeline_kinds(&install, op, &reference)
            .await
            .iter()
            .any(|k| k == "appointment_cancelled")
    );
}

/// A started installation with an operator, a police user and an integration client, and a
/// case with a call-back task and an appointment proposed for a morning two days ahead.
struct CallAndAppointment {
    install: Install,
    op: String,
    police: String,
    integration: String,
    reference: String,
    /// The call-back task.
    id: i64,
    /// The appointment.
    aid: i64,
    /// When the appointment starts, RFC 3339, and its day.
    future: String,
    day: String,
}

impl CallAndAppointment {
    async fn new() -> CallAndAppointment {
        let mut install = Install::new("").await;
        let op = install.user("op", "operator");
        let police = install.user("vigile", "police");
        let integration = install.user("pbx", "integration");
        install.start(&[]).await;
        let reference = install.create_case(&op).await;
        let (_, task) = post(
            &install,
            &op,
            &format!("/api/v1/cases/{reference}/callbacks"),
            None,
        )
        .await;
        assert_eq!(task["script"], "Richiamare il cittadino");
        let id = task["id"].as_i64().unwrap();
        let (future, day) = rome_morning(2);
        let (_, appointment) = post(
            &install,
            &op,
            &format!("/api/v1/cases/{reference}/appointments"),
            Some(json!({"starts_at": future, "reason": "Firma"})),
        )
        .await;
        let aid = appointment["id"].as_i64().unwrap();
        CallAndAppointment {
            install,
            op,
            police,
            integration,
            reference,
            id,
            aid,
            future,
            day,
        }
    }
}

#[tokio::test]
async fn bad_call_and_appointment_input_is_a_clear_422_and_writes_nothing() {
    let CallAndAppointment {
        install,
        op,
        reference,
        id,
        aid,
        future,
        day,
        ..
    } = CallAndAppointment::new().await;
    let field_of = |body: &Value| body["errors"][0]["field"].as_str().unwrap_or("").to_owned();
    let call = format!("/api/v1/callbacks/{id}");
    let propose = format!("/api/v1/cases/{reference}/appointments");
    let past = (SystemClock.now() - Duration::hours(1)).to_rfc3339();
    for (method, path, body, field) in [
        ("POST", call.as_str(), json!({"outcome": "busy"}), "outcome"),
        ("POST", call.as_str(), json!({}), "outcome"),
        (
            "POST",
            call.as_str(),
            json!({"outcome": "reached", "appointment": {"starts_at": future, "reason": "x"}}),
            "appointment",
        ),
        (
            "POST",
            call.as_str(),
            json!({"outcome": "appointment", "appointment": {"starts_at": "domani", "reason": "x"}}),
            "appointment.starts_at",
        ),
        (
            "POST",
            propose.as_str(),
            json!({"starts_at": "2026-13-45T10:00", "reason": "x"}),
            "starts_at",
        ),
        (
            "POST",
            propose.as_str(),
            json!({"starts_at": past, "reason": "x"}),
            "starts_at",
        ),
        (
            "POST",
            propose.as_str(),
            json!({"starts_at": future, "reason": "  "}),
            "reason",
        ),
        (
            "POST",
            propose.as_str(),
            json!({"starts_at": future}),
            "reason",
        ),
    ] {
        let (status, ctype, problem) = install
            .call(method, path, Some(&op), Some(body.clone()))
            .await;
        assert_eq!(status, 422, "{body} → {problem}");
        assert_eq!(ctype, "application/problem+json");
        assert_eq!(field_of(&problem), field, "{problem}");
    }
    // A day that is neither a date nor empty is refused, whitespace too (not read as "today").
    for day in ["31-12-2026", "%0B", "%20"] {
        let (status, problem) = send(
            &install,
            "GET",
            &format!("/api/v1/appointments?day={day}"),
            &op,
            None,
        )
        .await;
        assert_eq!(
            (status, field_of(&problem).as_str()),
            (422, "day"),
            "{day}: {problem}"
        );
    }
    let (status, _) = post(
        &install,
        &op,
        &format!("/api/v1/appointments/{aid}/confirm"),
        Some(json!({"via": "piccione viaggiatore"})),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = post(
        &install,
        &op,
        "/api/v1/callbacks/999999",
        Some(json!({"outcome": "reached"})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = post(&install, &op, "/api/v1/appointments/999999/cancel", None).await;
    assert_eq!(status, 404);
    let (status, _) = post(
        &install,
        &op,
        "/api/v1/cases/ZTL-2026-999999/callbacks",
        None,
    )
    .await;
    assert_eq!(status, 404);
    // Nothing of the refused requests was written.
    let queue = get_ok(&install, &op, "/api/v1/callbacks").await;
    assert_eq!(queue["items"][0]["attempts"], 0);
    let list = get_ok(&install, &op, &format!("/api/v1/appointments?day={day}")).await;
    assert_eq!(ids(&list), [aid]);
}

#[tokio::test]
async fn other_roles_neither_read_nor_change_calls_and_appointments() {
    let CallAndAppointment {
        install,
        op,
        police,
        integration,
        reference,
        id,
        aid,
        future,
        day,
    } = CallAndAppointment::new().await;
    let call = format!("/api/v1/callbacks/{id}");
    let propose = format!("/api/v1/cases/{reference}/appointments");
    // Neither the police nor a machine client reads or changes any of it.
    let endpoints = [
        ("GET", "/api/v1/callbacks".to_owned(), None),
        (
            "POST",
            format!("/api/v1/cases/{reference}/callbacks"),
            Some(json!({})),
        ),
        ("POST", call.clone(), Some(json!({"outcome": "reached"}))),
        ("GET", format!("/api/v1/appointments?day={day}"), None),
        ("GET", propose.clone(), None),
        (
            "POST",
            propose.clone(),
            Some(json!({"starts_at": future, "reason": "x"})),
        ),
        (
            "POST",
            format!("/api/v1/appointments/{aid}/confirm"),
            Some(json!({})),
        ),
        (
            "POST",
            format!("/api/v1/appointments/{aid}/cancel"),
            Some(json!({})),
        ),
    ];
    for token in [&police, &integration] {
        for (method, path, body) in &endpoints {
            let (status, _, problem) = install.call(method, path, Some(token), body.clone()).await;
            assert_eq!(status, 403, "{method} {path}: {problem}");
        }
    }
    for (method, path, body) in &endpoints {
        let (status, _, _) = install.call(method, path, None, body.clone()).await;
        assert_eq!(status, 401, "{method} {path}");
    }
    let queue = get_ok(&install, &op, "/api/v1/callbacks").await;
    assert_eq!(
        (
            queue["items"][0]["status"].as_str(),
            queue["items"][0]["attempts"].as_i64()
        ),
        (Some("open"), Some(0))
    );
}

#[tokio::test]
async fn the_queue_page_closes_a_call_with_one_click() {
    let (install, users) = started_with(&[("op", "operator")]).await;
    let (password, op) = &users[0];
    let reference = phone_case(&install, op).await;
    let (status, task) = post(
        &install,
        op,
        &format!("/api/v1/cases/{reference}/callbacks"),
        Some(json!({"note": "Manca la carta di circolazione"})),
    )
    .await;
    assert_eq!(status, 201, "{task}");
    let id = task["id"].as_i64().unwrap();

    let mut browser = Browser::new(&install);
    let gate = browser.get("/ufficio/richiamate").await;
    assert_eq!(
        (gate.status, gate.location.as_str()),
        (303, "/ufficio/login?next=/ufficio/richiamate")
    );
    assert_eq!(browser.sign_in("op", password).await.status, 303);
    let queue = browser.get("/ufficio/richiamate").await;
    assert_eq!(queue.status, 200, "{}", queue.body);
    for needle in [
        reference.as_str(),
        "Anna Neri",
        "href=\"tel:+39061234567\"",
        "Manca la carta di circolazione",
        &format!("href=\"/ufficio/pratiche/{reference}\""),
        &format!("action=\"/ufficio/richiamate/{id}\""),
        "value=\"reached\"",
        "Raggiunto",
        "Non raggiunto",
        "Fissato appuntamento",
        "type=\"datetime-local\"",
        &format!("<label for=\"when-{id}\">"),
    ] {
        assert!(queue.body.contains(needle), "{needle}: {}", queue.body);
    }
    assert!(!queue.body.contains("<script") && !queue.body.contains(" style="));
    assert!(queue.csp.contains("default-src 'self'"), "{}", queue.csp);
    let csrf = csrf_of(&queue.body);
    let form = format!("/ufficio/richiamate/{id}");

    let forged = browser
        .post_form(&form, &[("csrf", "forged"), ("outcome", "reached")])
        .await;
    assert_eq!(forged.status, 403);
    let missing = browser
        .post_form(&form, &[("csrf", &csrf), ("outcome", "appointment")])
        .await;
    assert_eq!(missing.status, 422, "an appointment needs its time");
    assert!(missing.body.contains("role=\"alert\""), "{}", missing.body);

    let done = browser
        .post_form(
            &form,
            &[
                ("csrf", &csrf),
                ("outcome", "reached"),
                ("note", "tutto chiaro"),
                ("call_id", ""),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(
        done.location.starts_with("/ufficio/richiamate"),
        "{}",
        done.location
    );
    let after = browser.get(&done.location).await;
    assert_eq!(after.status, 200);
    assert!(
        !after.body.contains(&format!("action=\"{form}\"")),
        "the task left the queue"
    );
    assert!(after.body.contains("role=\"status\""), "{}", after.body);
    let queue = get_ok(&install, op, "/api/v1/callbacks").await;
    assert_eq!(queue["total"], 0);
    let logged = timeline(&install, op, &reference)
        .await
        .into_iter()
        .find(|e| e["kind"] == "call_logged")
        .unwrap();
    assert_eq!(logged["detail"]["outcome"], "reached");
    assert_eq!(logged["detail"]["note"], "tutto chiaro");
    assert_eq!(logged["actor"], "op");
    let twice = browser
        .post_form(&form, &[("csrf", &csrf), ("outcome", "reached")])
        .await;
    assert_eq!(twice.status, 409, "a done call is not logged again");
}

#[tokio::test]
async fn the_counter_day_shows_the_appointment_and_confirms_it_with_one_click() {
    let (install, users) = started_with(&[("op", "operator")]).await;
    let (password, op) = &users[0];
    let reference = phone_case(&install, op).await;
    let (mut browser, csrf) = Browser::signed_in(&install, "op", password).await;
    // The counter's day: the appointment, whether the case is ready, one-click confirm.
    let (starts_at, day) = rome_morning(2);
    let appointment = propose(
        &install,
        op,
        &reference,
        json!({"starts_at": starts_at, "reason": "Firma del permesso"}),
    )
    .await;
    let aid = appointment["id"].as_i64().unwrap();
    let counter = browser
        .get(&format!("/ufficio/appuntamenti?giorno={day}"))
        .await;
    assert_eq!(counter.status, 200, "{}", counter.body);
    for needle in [
        "10:30",
        reference.as_str(),
        "Anna Neri",
        "Firma del permesso",
        "proposto",
        "<caption>",
        "scope=\"col\"",
        "<label for=\"giorno\">",
        &format!("<label for=\"via-{aid}\">"),
    ] {
        assert!(counter.body.contains(needle), "{needle}: {}", counter.body);
    }
    let confirmed = browser
        .post_form(
            &format!("/ufficio/appuntamenti/{aid}"),
            &[
                ("csrf", &csrf),
                ("action", "confirm"),
                ("via", "counter"),
                ("giorno", &day),
            ],
        )
        .await;
    assert_eq!(confirmed.status, 303, "{}", confirmed.body);
    assert_eq!(
        confirmed.location,
        format!("/ufficio/appuntamenti?giorno={day}&esito=confirm")
    );
    let list = get_ok(&install, op, &format!("/api/v1/appointments?day={day}")).await;
    assert_eq!(list[0]["status"], "confirmed");
    assert_eq!(list[0]["confirmed_via"], "counter");
    let today = browser.get("/ufficio/appuntamenti?giorno=ieri").await;
    assert_eq!(today.status, 200, "a wrong day shows today, saying so");
    assert!(today.body.contains("role=\"alert\""));
}

#[tokio::test]
async fn the_police_have_no_business_on_the_call_and_counter_pages() {
    let (install, users) = started_with(&[("vigile", "police")]).await;
    let police_password = &users[0].0;
    // The police have no business here.
    let mut police = Browser::new(&install);
    assert_eq!(police.sign_in("vigile", police_password).await.status, 303);
    for path in ["/ufficio/richiamate", "/ufficio/appuntamenti"] {
        let page = police.get(path).await;
        assert_eq!(
            (page.status, page.location.as_str()),
            (303, "/ufficio/permessi")
        );
    }
}

#[tokio::test]
async fn the_citizen_confirms_the_appointment_on_the_portal() {
    let mut install = Install::new("").await;
    let op = install.user("op", "operator");
    install.start(&[]).await;
    let reference = install.create_case(&op).await;
    let (starts_at, _) = rome_morning(2);
    let (status, appointment) = post(
        &install,
        &op,
        &format!("/api/v1/cases/{reference}/appointments"),
        Some(json!({"starts_at": starts_at, "reason": "Mostrare il libretto originale"})),
    )
    .await;
    assert_eq!(status, 201, "{appointment}");
    let id = appointment["id"].as_i64().unwrap();
    let mut browser = Browser::new(&install);
    let form = browser.get("/stato").await;
    let csrf = csrf_of(&form.body);
    let lookup = |confirm: Option<i64>| {
        let form = reqwest::multipart::Form::new()
            .text("csrf", csrf.clone())
            .text("reference", reference.clone())
            .text("fiscal_code", "RSSMRA80A01H501U");
        match confirm {
            Some(id) => form.text("confirm_appointment", id.to_string()),
            None => form,
        }
    };
    let shown = browser.post_multipart("/stato", lookup(None)).await;
    assert!(
        shown.body.contains("Mostrare il libretto originale")
            && shown
                .body
                .contains(&format!("name=\"confirm_appointment\" value=\"{id}\"")),
        "{}",
        shown.body
    );
    let confirmed = browser.post_multipart("/stato", lookup(Some(id))).await;
    assert!(
        confirmed.body.contains("appuntamento è confermato"),
        "{}",
        confirmed.body
    );
    let list = get_ok(
        &install,
        &op,
        &format!("/api/v1/cases/{reference}/appointments"),
    )
    .await;
    assert_eq!(list[0]["status"], "confirmed", "{list}");
    assert_eq!(list[0]["confirmed_via"], "portal");
}

#[tokio::test]
async fn an_appointment_reaches_a_citizen_known_only_by_phone_with_a_call() {
    let mut install = Install::new("").await;
    let op = install.user("op", "operator");
    install.start(&[]).await;
    let (starts_at, _) = rome_morning(3);
    let local = ROME
        .from_utc_datetime(
            &chrono::DateTime::parse_from_rfc3339(&starts_at)
                .unwrap()
                .naive_utc(),
        )
        .format("%d/%m/%Y, ore %H:%M")
        .to_string();

    // No channel chosen, and the citizen has only a landline: a call-back says when.
    let reference = phone_case(&install, &op).await;
    let propose = format!("/api/v1/cases/{reference}/appointments");
    let (status, appointment) = post(
        &install,
        &op,
        &propose,
        Some(json!({"starts_at": starts_at, "reason": "Firma del permesso"})),
    )
    .await;
    assert_eq!(status, 201, "{appointment}");
    let queue = get_ok(&install, &op, "/api/v1/callbacks").await;
    let task = queue["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["case"] == reference.as_str())
        .unwrap_or_else(|| panic!("no call about the appointment: {queue}"))
        .clone();
    assert_eq!(task["reason"], "no_digital_contact", "{task}");
    assert_eq!(task["phone"], "+39 06 1234567", "{task}");
    let script = task["script"].as_str().unwrap();
    assert!(
        script.contains(&local) && script.contains("Firma del permesso"),
        "{script}"
    );

    // A channel asked for: `call` opens the call even for a citizen with an e-mail.
    let body = json!({"case_type": "ztl_permit", "subject": "Permesso residenti", "channel": "counter",
        "citizen": {"name": "Mario Rossi", "email": "mario.rossi@example.it", "phone": "+39 333 1234567"}});
    let (status, case) = post(&install, &op, "/api/v1/cases", Some(body)).await;
    assert_eq!(status, 201, "{case}");
    let with_email = case["reference"].as_str().unwrap().to_owned();
    let propose_email = format!("/api/v1/cases/{with_email}/appointments");
    // A channel without an address, an unknown one, or one without telling: refused, and
    // nothing proposed.
    for body in [
        json!({"starts_at": starts_at, "reason": "Firma", "channel": "fax"}),
        json!({"starts_at": starts_at, "reason": "Firma", "channel": "piccione"}),
        json!({"starts_at": starts_at, "reason": "Firma", "channel": "email", "notify": false}),
    ] {
        let (status, problem) = post(&install, &op, &propose_email, Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "channel", "{problem}");
    }
    let none = get_ok(&install, &op, &propose_email).await;
    assert_eq!(ids(&none), Vec::<i64>::new(), "nothing proposed: {none}");
    let (status, appointment) = post(
        &install,
        &op,
        &propose_email,
        Some(json!({"starts_at": starts_at, "reason": "Firma", "channel": "call"})),
    )
    .await;
    assert_eq!(status, 201, "{appointment}");
    let queue = get_ok(&install, &op, "/api/v1/callbacks").await;
    let task = queue["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["case"] == with_email.as_str())
        .unwrap_or_else(|| panic!("no call asked for: {queue}"))
        .clone();
    assert_eq!(
        (task["reason"].as_str(), task["phone"].as_str()),
        (Some("operator"), Some("+39 333 1234567")),
        "{task}"
    );
}

#[tokio::test]
async fn the_case_page_proposes_an_appointment_and_the_citizen_is_told_by_email() {
    let Some(sink) = sportello_outbound::testing::SmtpSink::start() else {
        return;
    };
    let mut install = Install::new(&format!(
        "[outbound]\nacknowledge = false\n[outbound.email]\nsmtp_url = \"{}\"\nfrom = \"protocollo@comune.example.it\"\n",
        sink.url()
    ))
    .await;
    let (password, op) = install.user_with_password("op", "operator");
    install.start(&[]).await;
    let reference = install.create_case(&op).await;
    let mut browser = Browser::new(&install);
    assert_eq!(browser.sign_in("op", &password).await.status, 303);
    let here = format!("/ufficio/pratiche/{reference}");
    let page = browser.get(&here).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let form = format!("{here}/appuntamento");
    for needle in [
        format!("action=\"{form}\""),
        "type=\"datetime-local\"".to_owned(),
        "<label for=\"appointment-when\">".to_owned(),
        "<label for=\"appointment-reason\">".to_owned(),
        "<label for=\"appointment-channel\">".to_owned(),
        "Proponi un appuntamento".to_owned(),
    ] {
        assert!(page.body.contains(&needle), "{needle}: {}", page.body);
    }
    let csrf = csrf_of(&page.body);
    let (_, day) = rome_morning(3);
    let when = format!("{day}T10:30");
    let fields = |csrf: &'static str| {
        [
            ("csrf", csrf),
            ("starts_at", when.as_str()),
            ("reason", "Firma del permesso"),
            ("channel", ""),
        ]
    };
    let refused = browser.post_form(&form, &fields("forged")).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("role=\"alert\""), "{}", refused.body);
    let appointments = format!("/api/v1/cases/{reference}/appointments");
    assert_eq!(
        ids(&get_ok(&install, &op, &appointments).await),
        Vec::<i64>::new(),
        "a forged form proposes nothing"
    );

    let mut good = fields("");
    good[0].1 = &csrf;
    let done = browser.post_form(&form, &good).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location, format!("{here}?esito=appointment"));
    let after = browser.get(&done.location).await;
    assert!(after.body.contains("role=\"status\""), "{}", after.body);
    let list = get_ok(&install, &op, &appointments).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["reason"], "Firma del permesso");
    assert_eq!(list[0]["status"], "proposed");

    // No channel was chosen: the citizen is written to on their default channel, e-mail.
    let received = sink.wait_for(1, std::time::Duration::from_secs(20));
    assert_eq!(received.len(), 1);
    let message = mail_parser::MessageParser::default()
        .parse(received[0].as_slice())
        .unwrap();
    assert_eq!(
        message.header_raw("To").map(str::trim),
        Some("mario.rossi@example.it")
    );
    let text = message.body_text(0).unwrap();
    let shown = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d")
        .unwrap()
        .format("%d/%m/%Y, ore 10:30")
        .to_string();
    assert!(text.contains(&shown), "{text}");
}
