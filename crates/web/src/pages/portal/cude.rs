//! Adding a plate to a CUDE (disabled person's permit) from the portal.

use std::time::Instant;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use sportello_domain::fiscal_code::FiscalCode;
use sportello_domain::plate::Plate;

use super::form::FormState;
use super::status::{STATUS_ANSWER_TIME, STATUS_LOOKUPS};
use super::{LangQuery, portal_frame, with_cookies};
use crate::AppState;
use crate::i18n::Tr;
use crate::pages::{Frame, page, same_token};

#[derive(Template)]
#[template(path = "portal_cude.html")]
struct CudePage {
    tr: Tr,
    frame: Frame,
    f: FormState,
    done: Option<String>,
}

pub(super) async fn cude_form(
    State(state): State<AppState>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let (tr, frame, cookies) = portal_frame(&state, "cude", &query, &headers);
    let page_ = CudePage {
        tr,
        frame,
        f: FormState::default(),
        done: None,
    };
    with_cookies(page(StatusCode::OK, &page_), cookies)
}

/// The temporary-plate form.
#[derive(Debug, Deserialize)]
pub struct CudeForm {
    csrf: String,
    permit: String,
    fiscal_code: String,
    plate: String,
    date_from: String,
    time_from: String,
    date_to: String,
    time_to: String,
}

/// `POST /cude`: a CUDE holder communicates the plate of the vehicle they travel in
/// (the permit number and the holder's fiscal code prove it is theirs); the category's
/// limits apply (48 hours back, 24 forward in the example policy), with clear errors.
pub(super) async fn cude_plate(
    State(state): State<AppState>,
    Query(query): Query<LangQuery>,
    client: crate::client::ClientAddress,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CudeForm>,
) -> Response {
    let started = Instant::now();
    let (tr, frame, cookies) = portal_frame(&state, "cude", &query, &headers);
    let mut page_ = CudePage {
        tr,
        frame,
        f: FormState::default(),
        done: None,
    };
    for (k, v) in [
        ("permit", &form.permit),
        ("fiscal_code", &form.fiscal_code),
        ("plate", &form.plate),
        ("date_from", &form.date_from),
        ("time_from", &form.time_from),
        ("date_to", &form.date_to),
        ("time_to", &form.time_to),
    ] {
        page_.f.values.insert(k.to_owned(), v.trim().to_owned());
    }
    if !same_token(&form.csrf, &page_.frame.csrf) {
        page_
            .f
            .errors
            .push(("form".into(), tr.t("form.expired").to_owned()));
        return with_cookies(page(StatusCode::FORBIDDEN, &page_), cookies);
    }
    let number = form.permit.trim().to_ascii_uppercase();
    if !crate::guard::lookup_allowed(&state, client, "cude", STATUS_LOOKUPS).await
        || !crate::guard::lookup_allowed(
            &state,
            client,
            &format!("cude-permit:{number}"),
            STATUS_LOOKUPS,
        )
        .await
    {
        page_
            .f
            .errors
            .push(("form".into(), tr.t("status.too_many").to_owned()));
        return with_cookies(page(StatusCode::TOO_MANY_REQUESTS, &page_), cookies);
    }
    let local = |date: &str, time: &str| {
        chrono::NaiveDateTime::parse_from_str(
            &format!("{} {}", date.trim(), time.trim()),
            "%Y-%m-%d %H:%M",
        )
        .ok()
        .and_then(|t| t.and_local_timezone(state.policy.timezone).earliest())
    };
    let from = local(&form.date_from, &form.time_from);
    let to = local(&form.date_to, &form.time_to);
    let plate = Plate::parse(&form.plate, None);
    if plate.is_err() {
        page_
            .f
            .errors
            .push(("plate".into(), tr.t("contest.error.plate").to_owned()));
    }
    if from.is_none() {
        page_
            .f
            .errors
            .push(("date_from".into(), tr.t("cude.error.when").to_owned()));
    }
    if to.is_none() {
        page_
            .f
            .errors
            .push(("date_to".into(), tr.t("cude.error.when").to_owned()));
    }
    let owner = match state.store.permit(&number).await {
        Ok(p) => FiscalCode::parse(form.fiscal_code.trim())
            .is_ok_and(|f| f.as_str().eq_ignore_ascii_case(&p.holder_fiscal_code)),
        Err(_) => false,
    };
    if !owner {
        page_
            .f
            .errors
            .push(("permit".into(), tr.t("cude.error.permit").to_owned()));
    }
    let (Ok(plate), Some(from), Some(to), true) = (plate, from, to, page_.f.errors.is_empty())
    else {
        if let Some(rest) = STATUS_ANSWER_TIME.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
        return with_cookies(page(StatusCode::UNPROCESSABLE_ENTITY, &page_), cookies);
    };
    let result = sportello_app::permits::add_temporary(
        &state,
        &number,
        plate.clone(),
        (from.timestamp_millis(), to.timestamp_millis()),
        "cittadino",
    )
    .await;
    match result {
        Ok(_) => {
            page_.done = Some(plate.number);
            with_cookies(page(StatusCode::CREATED, &page_), cookies)
        }
        Err(e) => {
            // The category's rules, said as the store says them (which limit, which field).
            let field = match &e {
                sportello_app::AppError::Invalid(errors) if errors.len() == 1 => {
                    errors[0].field.clone()
                }
                sportello_app::AppError::RefusedField { field, .. } => field.clone(),
                _ => "form".into(),
            };
            let message = crate::error::ApiError::from(e).detail_in(tr);
            page_.f.errors.push((field, message));
            with_cookies(page(StatusCode::UNPROCESSABLE_ENTITY, &page_), cookies)
        }
    }
}

// ----- forms with files -----
