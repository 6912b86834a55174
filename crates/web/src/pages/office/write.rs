//! Writing to the citizen from the back office: the channels the office can use for this
//! citizen, the default and why; a template of the occasion or free text; a preview;
//! then the same queueing as the API (`POST /api/v1/cases/{ref}/messages`).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sportello_domain::outbound::templates::TemplateKind;
use sportello_domain::roles::Permission;

use super::staff;
use crate::AppState;
use crate::error::ApiError;
use crate::i18n::Tr;
use crate::pages::{Frame, language, page, same_token};
use sportello_app::outbound::{MessageDraft, Reach, preview, queue, reach};
use sportello_app::validate::given;
use sportello_domain::outbound::choice::reason_text;
use sportello_store::cases::CaseView;

/// The page's data.
#[derive(Template)]
#[template(path = "office_write.html")]
struct WritePage {
    tr: Tr,
    frame: Frame,
    reference: String,
    /// `(channel, label, address, available, why, selected)`.
    channels: Vec<(String, String, String, bool, String, bool)>,
    default_reason: String,
    /// `(id, label, selected)`.
    templates: Vec<(String, String, bool)>,
    to: String,
    subject: String,
    body: String,
    previewed: bool,
    error: Option<String>,
    key: String,
}

/// The form.
#[derive(Debug, Default, Deserialize)]
pub struct WriteForm {
    csrf: String,
    channel: Option<String>,
    template: Option<String>,
    to: Option<String>,
    subject: Option<String>,
    body: Option<String>,
    /// `preview` or `send`.
    #[serde(rename = "do")]
    act: Option<String>,
    /// Made when the form is shown: a second press of Send queues nothing more.
    key: Option<String>,
}

/// `?lang=`.
#[derive(Debug, Default, Deserialize)]
pub struct WriteQuery {
    lang: Option<String>,
}

/// The form's idempotency key: the one it was shown with (hex, at most 64), else a new one.
fn form_key(form: &WriteForm) -> String {
    given(&form.key)
        .filter(|k| k.len() <= 64 && k.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()))
}

fn path_of(reference: &str) -> String {
    format!("/ufficio/pratiche/{reference}/scrivi")
}

/// What the page shows: the signed-in user, the language, the case and how its citizen
/// can be reached.
struct View {
    session: sportello_store::sessions::Session,
    tr: Tr,
    case: CaseView,
    reach: Reach,
}

fn render(
    state: &AppState,
    view: &View,
    form: &WriteForm,
    previewed: bool,
    error: Option<String>,
) -> Response {
    let View {
        session,
        tr,
        case,
        reach,
    } = view;
    let tr = *tr;
    let choice = &reach.choice;
    let reference = case.summary.reference.as_str();
    let chosen = given(&form.channel).unwrap_or_else(|| choice.default.as_str().to_owned());
    let channels = choice
        .options
        .iter()
        .filter(|o| o.channel.as_str() != "call")
        .map(|o| {
            let id = o.channel.as_str().to_owned();
            (
                id.clone(),
                tr.name("out_channel", &id),
                o.to.clone().unwrap_or_default(),
                o.available || id == "letter",
                reason_text(o.reason, tr.code()).to_owned(),
                id == chosen,
            )
        })
        .collect();
    let template = given(&form.template).unwrap_or_default();
    let templates = TemplateKind::ALL
        .iter()
        .map(|k| {
            (
                k.as_str().to_owned(),
                tr.name("template", k.as_str()),
                k.as_str() == template,
            )
        })
        .collect();
    let frame = Frame::staff(state, "cases", session).with_language(&tr);
    page(
        if error.is_some() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        },
        &WritePage {
            tr,
            frame,
            reference: reference.to_owned(),
            channels,
            default_reason: format!(
                "{}: {}",
                tr.name("out_channel", choice.default.as_str()),
                reason_text(choice.reason, tr.code())
            ),
            templates,
            to: form.to.clone().unwrap_or_default(),
            subject: form.subject.clone().unwrap_or_default(),
            body: form.body.clone().unwrap_or_default(),
            previewed,
            error,
            key: form_key(form),
        },
    )
}

/// The page's prologue: a signed-in user with `permission` (else the sign-in page, or the
/// permits desk), the read of the citizen's addresses audited, the case and its reach.
async fn open(
    state: &AppState,
    headers: &HeaderMap,
    reference: &str,
    lang: Option<&str>,
    permission: Permission,
) -> Result<View, Response> {
    let session = staff(state, headers, &path_of(reference)).await?;
    let tr = language(lang, headers);
    if !session.user.role.can(permission) {
        return Err(Redirect::to("/ufficio/permessi").into_response());
    }
    if let Err(e) = state
        .store
        .record_access(&session.user.login, "read_contacts", reference)
        .await
    {
        tracing::warn!(error = %e, "read of contacts not recorded");
        return Err(StatusCode::SERVICE_UNAVAILABLE.into_response());
    }
    let Ok(case) = state.store.get_case(reference).await else {
        return Err((StatusCode::NOT_FOUND, tr.t("case.not_found")).into_response());
    };
    match reach(state, &case).await {
        Ok(reach) => Ok(View {
            session,
            tr,
            case,
            reach,
        }),
        Err(e) => {
            let e = ApiError::from(e);
            Err((e.status(), e.detail()).into_response())
        }
    }
}

/// `GET /ufficio/pratiche/{ref}/scrivi` (case readers: the page shows the citizen's
/// addresses).
pub async fn write_page(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Query(query): Query<WriteQuery>,
    headers: HeaderMap,
) -> Response {
    match open(
        &state,
        &headers,
        &reference,
        query.lang.as_deref(),
        Permission::ReadCase,
    )
    .await
    {
        Ok(view) => render(&state, &view, &WriteForm::default(), false, None),
        Err(r) => r,
    }
}

/// `POST /ufficio/pratiche/{ref}/scrivi`: a preview (the form again, filled from the
/// template) or the message queued (back to the case page).
pub async fn write_submit(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Query(query): Query<WriteQuery>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<WriteForm>,
) -> Response {
    let view = match open(
        &state,
        &headers,
        &reference,
        query.lang.as_deref(),
        Permission::SendMessage,
    )
    .await
    {
        Ok(view) => view,
        Err(r) => return r,
    };
    let (session, tr, case, reach) = (&view.session, view.tr, &view.case, &view.reach);
    if !same_token(&form.csrf, &session.csrf_token) {
        let message = tr.t("form.expired").to_owned();
        return render(&state, &view, &form, false, Some(message));
    }
    let draft = MessageDraft {
        channel: given(&form.channel),
        to: given(&form.to),
        subject: given(&form.subject),
        body: given(&form.body),
        template: given(&form.template),
        lang: Some(tr.code().to_owned()),
        idempotency_key: Some(format!("page:{reference}:{}", form_key(&form))),
        appointment: None,
    };
    if form.act.as_deref() == Some("preview") {
        let lang = sportello_app::Lang::parse(tr.code()).unwrap_or_default();
        return match preview(&state, case, reach, &draft, lang).await {
            Ok(p) => {
                let filled = WriteForm {
                    csrf: form.csrf.clone(),
                    channel: Some(p.channel),
                    template: form.template.clone(),
                    to: Some(p.to),
                    subject: Some(p.subject),
                    body: Some(p.body),
                    act: None,
                    key: form.key.clone(),
                };
                render(&state, &view, &filled, true, None)
            }
            Err(e) => {
                let message = ApiError::from(e).detail_in(tr);
                render(&state, &view, &form, false, Some(message))
            }
        };
    }
    match queue(&state, case, reach, &draft, &session.user.login).await {
        Ok(_) => {
            Redirect::to(&format!("/ufficio/pratiche/{reference}?esito=message")).into_response()
        }
        Err(e) => {
            let message = ApiError::from(e).detail_in(tr);
            render(&state, &view, &form, false, Some(message))
        }
    }
}
