//! Contesting a fine of a gate camera (`/contesta`): the plate, the transit and the reasons, filed
//! as a case of its own with the documents sent.

use askama::Template;
use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use sportello_domain::fiscal_code::FiscalCode;
use sportello_domain::plate::Plate;

use super::form::{FormState, checked_form, refusal_words, register_web_case};
use super::{LangQuery, fiscal_code_error, portal_frame, with_cookies};
use crate::AppState;
use crate::i18n::Tr;
use crate::pages::{Frame, page};

#[derive(Template)]
#[template(path = "portal_contest.html")]
struct ContestPage {
    tr: Tr,
    frame: Frame,
    gates: Vec<(String, String)>,
    f: FormState,
    done: Option<(String, String)>,
}

fn contest_page(state: &AppState, tr: Tr, frame: Frame) -> ContestPage {
    let gates = state
        .policy
        .zones
        .iter()
        .flat_map(|z| {
            z.gates
                .iter()
                .map(move |g| (g.clone(), format!("{g} — {}", z.name)))
        })
        .collect();
    ContestPage {
        tr,
        frame,
        gates,
        f: FormState::default(),
        done: None,
    }
}

pub(super) async fn contest_form(
    State(state): State<AppState>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let (tr, frame, cookies) = portal_frame(&state, "contest", &query, &headers);
    with_cookies(
        page(StatusCode::OK, &contest_page(&state, tr, frame)),
        cookies,
    )
}

/// `POST /contesta`: a citizen contests a fine: an `SEG` case with the plate, the
/// passage (gate and local date and time) and the fine number, and their reasons.
pub(super) async fn contest(
    State(state): State<AppState>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let (tr, frame, cookies) = portal_frame(&state, "contest", &query, &headers);
    let mut page_ = contest_page(&state, tr, frame);
    let form = match checked_form(&state, multipart, &page_.frame.csrf).await {
        Ok(form) => form,
        Err((status, key)) => {
            page_
                .f
                .errors
                .push(("form".into(), refusal_words(&state, tr, key)));
            return with_cookies(page(status, &page_), cookies);
        }
    };
    page_.f.keep(
        &form,
        &[
            "plate",
            "fine",
            "gate",
            "date",
            "time",
            "name",
            "fiscal_code",
            "email",
            "reasons",
        ],
    );
    let mut errors: Vec<(String, String)> = Vec::new();
    let plate = Plate::parse(form.text("plate"), None);
    if plate.is_err() {
        errors.push(("plate".into(), tr.t("contest.error.plate").to_owned()));
    }
    let fine = form.text("fine").trim();
    if fine.is_empty() || fine.chars().count() > 64 {
        errors.push(("fine".into(), tr.t("contest.error.fine").to_owned()));
    }
    if state.policy.zone_of_gate(form.text("gate")).is_none() {
        errors.push(("gate".into(), tr.t("contest.error.gate").to_owned()));
    }
    let at = chrono::NaiveDateTime::parse_from_str(
        &format!("{} {}", form.text("date").trim(), form.text("time").trim()),
        "%Y-%m-%d %H:%M",
    )
    .ok()
    .and_then(|local| local.and_local_timezone(state.policy.timezone).earliest());
    if at.is_none() {
        errors.push(("date".into(), tr.t("contest.error.when").to_owned()));
    }
    if let Err(e) = FiscalCode::parse(form.text("fiscal_code").trim()) {
        errors.push(("fiscal_code".into(), tr.t(fiscal_code_error(&e)).to_owned()));
    }
    let name = form.text("name").trim();
    if name.is_empty() {
        errors.push(("name".into(), tr.t("apply.error.name").to_owned()));
    }
    if form.text("reasons").trim().is_empty() {
        errors.push(("reasons".into(), tr.t("contest.error.reasons").to_owned()));
    }
    let (Ok(plate), Some(at), true) = (plate, at, errors.is_empty()) else {
        page_.f.errors = errors;
        return with_cookies(page(StatusCode::UNPROCESSABLE_ENTITY, &page_), cookies);
    };
    let email = form.text("email").trim();
    let request = sportello_app::cases::CaseRequest {
        case_type: Some("seg".into()),
        subject: Some(format!(
            "Contestazione verbale {fine}, targa {}",
            plate.number
        )),
        description: Some(form.text("reasons").trim().to_owned()),
        channel: Some("web".into()),
        citizen: Some(sportello_app::cases::CitizenRequest {
            fiscal_code: Some(form.text("fiscal_code").trim().to_owned()),
            name: Some(name.to_owned()),
            email: (!email.is_empty()).then(|| email.to_owned()),
            ..Default::default()
        }),
        fields: Some(serde_json::json!({
            "plate": plate.number, "country": plate.country, "fine": fine,
            "transits": [{"transit_id": format!("verbale {fine}"), "gate": form.text("gate").trim(),
                          "timestamp": at.to_rfc3339()}],
        })),
    };
    match register_web_case(&state, request, form.files).await {
        Ok((case, link)) => {
            let reference = case.summary.reference.clone();
            page_.done = Some((reference, link));
            with_cookies(page(StatusCode::CREATED, &page_), cookies)
        }
        Err(e) => {
            tracing::warn!(error = %e, "a contest was refused");
            page_
                .f
                .errors
                .push(("form".into(), tr.t("form.failed").to_owned()));
            with_cookies(page(StatusCode::UNPROCESSABLE_ENTITY, &page_), cookies)
        }
    }
}
