//! The reports through the real server: a small office history is written with a clock
//! set in the past (the store with a fixed clock, before the server starts), then the
//! throughput and SLA reports must give its exact figures, as JSON, CSV and XLSX.

use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use serde_json::Value;
use sportello_domain::calendar::{HolidayCalendar, rome_date, rome_start_of_day};
use sportello_domain::case::Channel;
use sportello_domain::clock::{Clock, FixedClock, SystemClock};
use sportello_domain::sla;
use sportello_domain::workflow::Action;
use sportello_store::cases::{CitizenInput, NewCase};
use sportello_store::{Store, StoreSettings};

use crate::harness::Install;

fn request(case_type: &str, channel: Channel, subject: &str) -> NewCase {
    NewCase {
        case_type: case_type.into(),
        subject: subject.into(),
        description: String::new(),
        channel,
        citizen: CitizenInput {
            name: Some("Mario Rossi".into()),
            ..CitizenInput::default()
        },
        fields: serde_json::Map::new(),
        flags: Vec::new(),
        actor: "system".into(),
        document_sha256: None,
        registered_as: None,
        terms: None,
    }
}

/// Five cases received 50 days ago at 10:00 (Rome), each moved by the clock:
/// - A ztl/counter: review, approve on day 3, issue 4, close 5;
/// - B cude/web: integration asked on day 2, received on day 8 (6 days suspended),
///   approve and issue 10, close 12;
/// - C ztl/email: withdrawn on day 1, never answered;
/// - D ztl/counter: never touched — late and orphan now;
/// - E ztl/counter: approve and issue on day 40, close 41 — past its legal term.
///
/// Returns the day received and D's reference.
async fn seed(install: &Install) -> (NaiveDate, String) {
    let today = rome_date(SystemClock.now());
    let received_on = today - Duration::days(50);
    let t0 = rome_start_of_day(received_on) + Duration::hours(10);
    let clock = FixedClock::new(t0);
    let store = Store::connect(
        &install.database_url,
        Arc::new(clock.clone()),
        StoreSettings::default(),
    )
    .await
    .unwrap();
    let at = |days: i64, hours: i64| clock.set(t0 + Duration::days(days) + Duration::hours(hours));
    let mut refs = Vec::new();
    for (t, ch, subject) in [
        ("ztl_permit", Channel::Counter, "Permesso A"),
        ("cude", Channel::Web, "Contrassegno B"),
        ("ztl_permit", Channel::Email, "Permesso C"),
        ("ztl_permit", Channel::Counter, "=Permesso D, centro"),
        ("ztl_permit", Channel::Counter, "Permesso E"),
    ] {
        refs.push(
            store
                .create_case(request(t, ch, subject))
                .await
                .unwrap()
                .summary
                .reference,
        );
    }
    let act = |r: &String, action: Action, who: &'static str| {
        let (store, r) = (store.clone(), r.clone());
        async move {
            store
                .apply_action(&r, &action, Some("nota"), who)
                .await
                .unwrap();
        }
    };
    let assign = |user: &str| Action::Assign { user: user.into() };
    let (a, b, c, d, e) = (&refs[0], &refs[1], &refs[2], &refs[3], &refs[4]);
    at(0, 1);
    act(a, assign("op1"), "sup").await;
    act(b, assign("op1"), "sup").await;
    act(e, assign("op2"), "sup").await;
    at(1, 0);
    for r in [a, b, e] {
        let who = if r == e { "op2" } else { "op1" };
        act(r, Action::StartReview, who).await;
    }
    act(c, Action::Withdraw, "op2").await;
    at(2, 0);
    let missing = Action::RequestIntegration {
        missing: vec!["libretto".into()],
    };
    act(b, missing, "op1").await;
    at(3, 0);
    act(a, Action::Approve, "op1").await;
    at(4, 0);
    act(a, Action::Issue, "op1").await;
    at(5, 0);
    act(a, Action::Close, "op1").await;
    at(8, 0);
    act(b, Action::IntegrationReceived, "op1").await;
    at(10, 0);
    act(b, Action::Approve, "op1").await;
    act(b, Action::Issue, "op1").await;
    at(12, 0);
    act(b, Action::Close, "op1").await;
    at(40, 0);
    act(e, Action::Approve, "op2").await;
    act(e, Action::Issue, "op2").await;
    at(41, 0);
    act(e, Action::Close, "op2").await;
    store.close().await;
    (received_on, d.clone())
}

async fn get_bytes(install: &Install, path: &str, token: &str) -> (u16, String, String, Vec<u8>) {
    let resp = install
        .client
        .get(format!("{}{path}", install.base()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (status, ctype, disposition) = (
        resp.status().as_u16(),
        header("content-type"),
        header("content-disposition"),
    );
    (
        status,
        ctype,
        disposition,
        resp.bytes().await.unwrap().to_vec(),
    )
}

/// A started installation seeded with the five cases of [`seed`], a supervisor `sup` and
/// the operators `op1` and `op2`; the report period runs from the day before the cases
/// were received to today.
struct Seeded {
    install: Install,
    sup: String,
    op: String,
    received_on: NaiveDate,
    /// The overdue case D.
    late: String,
    today: NaiveDate,
    from: NaiveDate,
    /// `from=…&to=…`
    range: String,
}

impl Seeded {
    async fn new() -> Seeded {
        let mut install = Install::new("").await;
        let sup = install.user("sup", "supervisor");
        let op = install.user("op1", "operator");
        install.user("op2", "operator");
        let (received_on, late) = seed(&install).await;
        install.start(&[]).await;
        let today = rome_date(SystemClock.now());
        let from = received_on - Duration::days(1);
        let range = format!("from={from}&to={today}");
        Seeded {
            install,
            sup,
            op,
            received_on,
            late,
            today,
            from,
            range,
        }
    }
}

#[tokio::test]
async fn the_throughput_report_gives_totals_lead_times_groups_and_backlog() {
    let Seeded {
        install,
        sup,
        from,
        range,
        ..
    } = Seeded::new().await;

    let (status, _, r) = install
        .call(
            "GET",
            &format!("/api/v1/reports/throughput?{range}&group_by=case_type"),
            Some(&sup),
            None,
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (r["from"].as_str(), r["group_by"].as_str()),
        (Some(from.to_string().as_str()), Some("case_type"))
    );
    let t = &r["totals"];
    assert_eq!(
        (
            t["opened"].as_i64(),
            t["closed"].as_i64(),
            t["open"].as_i64()
        ),
        (Some(5), Some(4), Some(1))
    );
    // Lead times 1, 5, 12, 41 days; net of B's 6 suspended days 1, 5, 6, 41; first
    // answers 2 (B's request), 3 (A's approval), 40 (E's); C was never answered.
    assert_eq!(
        t["lead_time_days"],
        serde_json::json!({"median": 8.5, "p90": 32.3, "median_net": 5.5, "p90_net": 30.5})
    );
    assert_eq!(
        t["first_answer_days"],
        serde_json::json!({"median": 3.0, "p90": 32.6, "answered": 3})
    );
    assert_eq!(t["within_legal_term_share"], 0.75);
    assert_eq!(t["within_service_share"], 0.75);
    let groups: Vec<(String, i64, i64, i64)> = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["group"].as_str().unwrap().to_owned(),
                g["opened"].as_i64().unwrap(),
                g["closed"].as_i64().unwrap(),
                g["open"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("cude".to_owned(), 1, 1, 0),
            ("seg".to_owned(), 0, 0, 0),
            ("ztl_permit".to_owned(), 4, 3, 1)
        ]
    );
    assert_eq!(r["items"][0]["lead_time_days"]["median_net"], 6.0);
    let weekly = r["weekly"].as_array().unwrap();
    let sum = |key: &str| weekly.iter().map(|w| w[key].as_i64().unwrap()).sum::<i64>();
    assert_eq!((sum("opened"), sum("closed")), (5, 4));
    assert_eq!(weekly.last().unwrap()["open_at_end"], 1);
    assert_eq!(r["backlog"]["open"], 1);
    let ages: Vec<i64> = r["backlog"]["age"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["open"].as_i64().unwrap())
        .collect();
    assert_eq!(ages, [0, 0, 0, 1, 0], "D is 50 days old");
    assert_eq!(
        r["current"]["orphans"],
        serde_json::json!({"total": 1, "unassigned": 1, "idle": 1})
    );
    assert_eq!(r["current"]["operators"][0]["assignee"], Value::Null);
    assert_eq!(r["current"]["operators"][0]["overdue"], 1);

    let (status, _, by_month) = install
        .call(
            "GET",
            &format!("/api/v1/reports/throughput?{range}&group_by=month"),
            Some(&sup),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let months = by_month["items"].as_array().unwrap();
    assert!(months.len() >= 2, "{by_month}");
    assert_eq!(
        months
            .iter()
            .map(|m| m["closed"].as_i64().unwrap())
            .sum::<i64>(),
        4
    );
    assert_eq!(months.last().unwrap()["open"], 1);
}

#[tokio::test]
async fn the_sla_report_lists_the_overdue_and_orphan_cases_also_as_csv() {
    let Seeded {
        install,
        sup,
        received_on,
        late,
        today,
        from,
        range,
        ..
    } = Seeded::new().await;
    // The SLA report: D's due date is 30 days after reception, rolled past holidays.
    let due = sla::due_date(&HolidayCalendar::default(), received_on, 30, 0);
    let (status, _, s) = install
        .call(
            "GET",
            &format!("/api/v1/reports/sla?{range}"),
            Some(&sup),
            None,
        )
        .await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(
        (s["closed"].as_i64(), s["on_time"].as_i64()),
        (Some(4), Some(3))
    );
    assert_eq!(
        (
            s["on_time_share"].as_f64(),
            s["within_service_share"].as_f64()
        ),
        (Some(0.75), Some(0.75))
    );
    assert_eq!(s["overdue"].as_array().unwrap().len(), 1);
    assert_eq!(
        s["overdue"][0],
        serde_json::json!({"reference": late, "subject": "=Permesso D, centro", "case_type": "ztl_permit",
            "due_at": due.to_string(), "days_late": (today - due).num_days(), "assignee": null})
    );
    assert_eq!(s["orphans"][0]["reference"], late.as_str());
    assert_eq!(s["orphans"][0]["reason"], "unassigned_idle");
    // 50 days since its only journal entry, give or take the hour of the day the test runs.
    let idle = s["orphans"][0]["idle_days"].as_i64().unwrap();
    assert!((49..=51).contains(&idle), "{idle}");

    // The same tables as CSV and XLSX.
    let (status, ctype, disposition, body) = get_bytes(
        &install,
        &format!("/api/v1/reports/sla?{range}&format=csv"),
        &sup,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ctype, "text/csv; charset=utf-8");
    assert_eq!(
        disposition,
        format!("attachment; filename=\"sla-{from}-{today}-overdue.csv\"")
    );
    let text = String::from_utf8(body).unwrap();
    assert_eq!(
        text,
        format!(
            "reference,subject,case_type,due_at,days_late,assignee\n{late},\"'=Permesso D, centro\",ztl_permit,{due},{},\n",
            (today - due).num_days()
        )
    );
}

#[tokio::test]
async fn the_throughput_tables_come_as_csv_and_xlsx() {
    let Seeded {
        install,
        sup,
        range,
        ..
    } = Seeded::new().await;
    let (status, _, _, body) = get_bytes(
        &install,
        &format!("/api/v1/reports/throughput?{range}&format=csv&table=groups"),
        &sup,
    )
    .await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("case_type,opened,closed,open,lead_time_median_days,"));
    assert!(
        lines[4].starts_with("total,5,4,1,8.5,32.3,5.5,30.5,3,32.6,3,3,0.75,3,0.75"),
        "{text}"
    );
    let (status, ctype, _, body) = get_bytes(
        &install,
        &format!("/api/v1/reports/throughput?{range}&format=xlsx"),
        &sup,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        ctype,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert_eq!(&body[..2], b"PK");
}

#[tokio::test]
async fn wrong_report_parameters_are_field_errors_operators_are_refused_and_a_year_is_the_default()
{
    let Seeded {
        install,
        sup,
        op,
        today,
        ..
    } = Seeded::new().await;
    // Wrong parameters are field errors; operators may not read reports.
    for (query, field) in [
        ("from=2026-13-01", "from"),
        ("from=2026-02-01&to=2026-01-01", "to"),
        ("group_by=week", "group_by"),
        ("format=pdf", "format"),
        ("table=weekly", "table"),
        ("format=csv&table=everything", "table"),
        ("from=2019-01-01&to=2026-01-01", "to"),
    ] {
        let (status, ctype, problem) = install
            .call(
                "GET",
                &format!("/api/v1/reports/throughput?{query}"),
                Some(&sup),
                None,
            )
            .await;
        assert_eq!(status, 422, "{query}: {problem}");
        assert!(ctype.starts_with("application/problem+json"));
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
    }
    let (status, _, _) = install
        .call("GET", "/api/v1/reports/sla", Some(&op), None)
        .await;
    assert_eq!(status, 403);
    // The default period is the last 365 days.
    let (status, _, default) = install
        .call("GET", "/api/v1/reports/sla", Some(&sup), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(default["to"], today.to_string());
    assert_eq!(default["from"], (today - Duration::days(364)).to_string());
    assert_eq!(default["closed"], 4);
    let (_, _, api) = install.call("GET", "/api/openapi.json", None, None).await;
    assert!(api["paths"]["/api/v1/reports/throughput"]["get"].is_object());
    assert!(api["paths"]["/api/v1/reports/sla"]["get"].is_object());
}
