//! The permits desk: the list of permits, a permit's page and its changes (renewal, temporary
//! plates), and the check of a file of transits against the whitelist.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sportello_domain::roles::Permission;
use sportello_store::sessions::Session;

use super::case::NotFoundPage;
use super::refusal;
use super::{PageQuery, staff, urlencode};
use crate::AppState;
use crate::i18n::Tr;
use crate::pages::{Frame, language, page, same_token, when};

/// Query of `/ufficio/permessi`.
#[derive(Debug, Default, Deserialize)]
pub struct PermitQuery {
    lang: Option<String>,
    plate: Option<String>,
    gate: Option<String>,
}

#[derive(Template)]
#[template(path = "office_permits.html")]
struct PermitsPage {
    tr: Tr,
    frame: Frame,
    gates: Vec<String>,
    plate: String,
    gate: String,
    verdict: Option<(bool, String, String)>,
    error: Option<String>,
    /// Rejected lines of an uploaded gate file.
    rejected: Vec<(u64, String)>,
}

/// `GET /ufficio/permessi`: a plate's check at a gate now, and the whitelist downloads.
pub(super) async fn permits(
    State(state): State<AppState>,
    Query(query): Query<PermitQuery>,
    headers: HeaderMap,
) -> Response {
    let session = match staff(&state, &headers, "/ufficio/permessi").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    let gates: Vec<String> = state
        .policy
        .zones
        .iter()
        .flat_map(|z| z.gates.clone())
        .collect();
    let plate = query.plate.clone().unwrap_or_default().trim().to_owned();
    let gate = query.gate.clone().unwrap_or_default();
    let mut verdict = None;
    let mut error = None;
    if !plate.is_empty() {
        match (
            sportello_domain::plate::Plate::parse(&plate, None),
            state.policy.zone_of_gate(&gate),
        ) {
            (Ok(p), Some(zone)) => {
                let rows = state
                    .store
                    .permit_rows_of(&p.number, &p.country)
                    .await
                    .unwrap_or_default();
                let index = sportello_domain::ztl::transits::PermitIndex::new(&state.policy, rows);
                let now = state.store.clock().now();
                use sportello_domain::ztl::transits::Judgement;
                verdict = Some(
                    match sportello_domain::ztl::transits::judge(
                        &state.policy,
                        &index,
                        &p,
                        zone,
                        &now,
                    ) {
                        Judgement::ZoneNotActive => {
                            (true, tr.name("verdict", "zone_not_active"), String::new())
                        }
                        Judgement::Authorised(permit) => {
                            (true, tr.name("verdict", "permit"), permit.to_owned())
                        }
                        Judgement::Violation(reason) => {
                            (false, tr.name("verdict", reason.as_str()), String::new())
                        }
                    },
                );
            }
            (Err(_), _) => error = Some(tr.t("permits.bad_plate").to_owned()),
            (_, None) => error = Some(tr.t("permits.bad_gate").to_owned()),
        }
    }
    let page_ = PermitsPage {
        frame: Frame::staff(&state, "permits", &session).with_language(&tr),
        tr,
        gates,
        plate,
        gate,
        verdict,
        error,
        rejected: Vec::new(),
    };
    page(StatusCode::OK, &page_)
}

/// `POST /ufficio/permessi/transiti`: a gate file (CONTRACT §6.4) checked from the desk;
/// the violations come back as a CSV download, or the page names the refused lines.
pub(super) async fn check_transits_page(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let session = match staff(&state, &headers, "/ufficio/permessi").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    let mut page_ = PermitsPage {
        frame: Frame::staff(&state, "permits", &session).with_language(&tr),
        tr,
        gates: state
            .policy
            .zones
            .iter()
            .flat_map(|z| z.gates.clone())
            .collect(),
        plate: String::new(),
        gate: String::new(),
        verdict: None,
        error: None,
        rejected: Vec::new(),
    };
    if !session.user.role.can(Permission::CheckTransits) {
        crate::guard::permission_refused(&session.user.login, "check transits");
        page_.error = Some(tr.t("case.forbidden").to_owned());
        return page(StatusCode::FORBIDDEN, &page_);
    }
    let (mut csrf, mut file) = (String::new(), None);
    if let Ok(mut multipart) = multipart {
        while let Ok(Some(field)) = multipart.next_field().await {
            match field.name() {
                Some("csrf") => csrf = field.text().await.unwrap_or_default(),
                Some("file") => file = field.bytes().await.ok(),
                _ => {}
            }
        }
    }
    if !same_token(&csrf, &session.csrf_token) {
        page_.error = Some(tr.t("form.expired").to_owned());
        return page(StatusCode::FORBIDDEN, &page_);
    }
    let Some(file) = file.filter(|f| !f.is_empty()) else {
        page_.error = Some(tr.t("permits.no_file").to_owned());
        return page(StatusCode::UNPROCESSABLE_ENTITY, &page_);
    };
    match sportello_app::ztl::run_check(&state, &session.user.login, file).await {
        Ok((summary, _)) if summary.rejected_count > 0 => {
            page_.error = Some(tr.f(
                "permits.rejected",
                &[("n", &summary.rejected_count.to_string())],
            ));
            page_.rejected = summary
                .rejected
                .iter()
                .take(200)
                .map(|r| (r.line, r.reason.clone()))
                .collect();
            page(StatusCode::UNPROCESSABLE_ENTITY, &page_)
        }
        Ok((_, out)) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"violazioni.csv\"",
                ),
                (header::CACHE_CONTROL, "no-store"),
            ],
            out,
        )
            .into_response(),
        Err(e) => {
            page_.error = Some(crate::error::ApiError::from(e).detail_in(tr));
            page(StatusCode::UNPROCESSABLE_ENTITY, &page_)
        }
    }
}

// ----- audit -----

#[derive(Template)]
#[template(path = "office_permit.html")]
struct PermitPage {
    tr: Tr,
    frame: Frame,
    permit: sportello_store::permits::PermitView,
    /// (plate, country, from, to, status, source) per row, in words.
    rows: Vec<(String, String, String, String, String, String)>,
    /// (when, who, what, details) per history entry.
    history: Vec<(String, String, String, String)>,
    can_manage: bool,
    /// Whether the permit's category takes temporary plates (CUDE).
    person_bound: bool,
    /// The category's name in the policy (its id if the policy no longer has it).
    category: String,
    error: Option<String>,
}

async fn render_permit(
    state: &AppState,
    session: &Session,
    tr: Tr,
    number: &str,
    error: Option<String>,
) -> Response {
    let Ok(permit) = state.store.permit(number.trim()).await else {
        let page_ = NotFoundPage {
            frame: Frame::staff(state, "permits", session).with_language(&tr),
            tr,
        };
        return page(StatusCode::NOT_FOUND, &page_);
    };
    // A read that cannot be audited is not answered.
    if state
        .store
        .record_access(&session.user.login, "read_permit", &permit.number)
        .await
        .is_err()
    {
        return crate::pages::temporarily_unavailable();
    }
    let instant = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| {
                t.with_timezone(&sportello_domain::calendar::ROME)
                    .format("%d/%m/%Y %H:%M")
                    .to_string()
            })
            .unwrap_or_default()
    };
    let rows = permit
        .plates
        .iter()
        .map(|r| {
            (
                r.plate.clone(),
                r.country.clone(),
                instant(r.valid_from),
                instant(r.valid_to),
                tr.name("permit_status", &r.status),
                tr.name("permit_source", &r.source),
            )
        })
        .collect();
    let history = permit
        .history
        .iter()
        .map(|e| {
            // In words, escaped: every key and id named (`words::detail_html`).
            let details = super::words::detail_html(&tr, &state.policy, &e.detail);
            (
                when(&e.at),
                e.actor.clone(),
                tr.name("permit_event", &e.kind),
                details,
            )
        })
        .collect();
    let page_ = PermitPage {
        frame: Frame::staff(state, "permits", session).with_language(&tr),
        can_manage: session.user.role.can(Permission::ActOnCase),
        person_bound: state
            .policy
            .category(&permit.category)
            .is_some_and(|c| c.person_bound),
        category: state
            .policy
            .category(&permit.category)
            .map_or_else(|| permit.category.clone(), |c| c.name.clone()),
        tr,
        rows,
        history,
        permit,
        error,
    };
    page(StatusCode::OK, &page_)
}

/// Query of the permit-number box.
#[derive(Debug, Default, Deserialize)]
pub struct OpenPermitQuery {
    numero: Option<String>,
}

/// `GET /ufficio/permessi/apri?numero=`: the permit-number box of the desk.
pub(super) async fn open_permit(Query(query): Query<OpenPermitQuery>) -> Response {
    let number = query.numero.unwrap_or_default().trim().to_ascii_uppercase();
    Redirect::to(&format!("/ufficio/permessi/{}", urlencode(&number))).into_response()
}

/// `GET /ufficio/permessi/{number}`: a permit with its plates, state and history.
pub(super) async fn permit_page(
    State(state): State<AppState>,
    Path(number): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let here = format!("/ufficio/permessi/{}", urlencode(&number));
    let session = match staff(&state, &headers, &here).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    render_permit(&state, &session, tr, &number, None).await
}

/// The permit page's forms: a change of status with its reason, or a renewal.
#[derive(Debug, Deserialize)]
pub struct PermitForm {
    csrf: String,
    /// `suspended`, `revoked`, `active`, `renew` or `temporary_plate`.
    change: String,
    reason: Option<String>,
    /// A temporary plate (person-bound permits) and its period, local date and time.
    plate: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `POST /ufficio/permessi/{number}`: suspends, revokes or reinstates the permit with a
/// reason (journaled), or opens its renewal case and goes there.
pub(super) async fn permit_change(
    State(state): State<AppState>,
    Path(number): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<PermitForm>,
) -> Response {
    let here = format!("/ufficio/permessi/{}", urlencode(&number));
    let session = match staff(&state, &headers, &here).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    if let Some(key) = refusal(&session, &form.csrf) {
        return render_permit(&state, &session, tr, &number, Some(tr.t(key).to_owned())).await;
    }
    if form.change == "renew" {
        return match sportello_app::permits::open_renewal(
            &state,
            &session.user.login,
            number.trim(),
            None,
            None,
        )
        .await
        {
            Ok(case) => Redirect::to(&format!("/ufficio/pratiche/{}", case.summary.reference))
                .into_response(),
            Err(e) => {
                let message = crate::error::ApiError::from(e).detail_in(tr);
                render_permit(&state, &session, tr, &number, Some(message)).await
            }
        };
    }
    if form.change == "temporary_plate" {
        let local = |v: &Option<String>| {
            chrono::NaiveDateTime::parse_from_str(
                v.as_deref().unwrap_or_default().trim(),
                "%Y-%m-%dT%H:%M",
            )
            .ok()
            .and_then(|t| t.and_local_timezone(state.policy.timezone).earliest())
        };
        let plate =
            sportello_domain::plate::Plate::parse(form.plate.as_deref().unwrap_or_default(), None);
        let (Ok(plate), Some(from), Some(to)) = (plate, local(&form.from), local(&form.to)) else {
            return render_permit(
                &state,
                &session,
                tr,
                &number,
                Some(tr.t("permit.temporary_invalid").to_owned()),
            )
            .await;
        };
        let added = sportello_app::permits::add_temporary(
            &state,
            number.trim(),
            plate,
            (from.timestamp_millis(), to.timestamp_millis()),
            &session.user.login,
        )
        .await;
        return match added {
            Ok(_) => Redirect::to(&here).into_response(),
            Err(e) => {
                let message = crate::error::ApiError::from(e).detail_in(tr);
                render_permit(&state, &session, tr, &number, Some(message)).await
            }
        };
    }
    let reason: String = form.reason.unwrap_or_default().chars().take(1000).collect();
    match state
        .store
        .set_permit_status(
            number.trim(),
            form.change.trim(),
            &reason,
            &session.user.login,
        )
        .await
    {
        Ok(_) => Redirect::to(&here).into_response(),
        Err(e) => {
            let message = crate::error::ApiError::from(e).detail_in(tr);
            render_permit(&state, &session, tr, &number, Some(message)).await
        }
    }
}
