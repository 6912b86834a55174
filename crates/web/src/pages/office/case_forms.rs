//! The case page's forms: actions, flags, uploads, field edits and moving a message to another case.
//! Each answers with a redirect to the case page and the outcome in words.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sportello_domain::case::Reference;
use sportello_domain::roles::Permission;
use sportello_store::sessions::Session;

use super::case::render_case;
use super::{PageQuery, case_path, refusal, staff, urlencode};
use crate::AppState;
use crate::i18n::Tr;
use crate::pages::{language, same_token};

/// The checks of every form of the case page that changes it: a signed-in user (else the
/// sign-in page), the session's CSRF token and the right to act (else the case page again
/// saying why).
async fn case_form(
    state: &AppState,
    headers: &HeaderMap,
    reference: &str,
    lang: Option<&str>,
    csrf: &str,
) -> Result<(Session, Tr), Response> {
    let session = staff(state, headers, &case_path(reference)).await?;
    let tr = language(lang, headers);
    match refusal(&session, csrf) {
        Some(key) => Err(case_error(state, &session, tr, reference, tr.t(key).to_owned()).await),
        None => Ok((session, tr)),
    }
}

/// The case page again, saying why what was asked was not done.
pub(crate) async fn case_error(
    state: &AppState,
    session: &Session,
    tr: Tr,
    reference: &str,
    message: String,
) -> Response {
    render_case(state, session, tr, reference, None, Some(message)).await
}

/// The action form of the case page, from its fields (a checklist repeats `missing`).
struct ActionForm {
    csrf: String,
    action: String,
    note: Option<String>,
    /// One per line.
    reasons: Option<String>,
    /// Documents ticked in the checklist, and one per line of the free text.
    missing: Vec<String>,
    user: Option<String>,
}

impl ActionForm {
    fn from_pairs(pairs: &[(String, String)]) -> ActionForm {
        let first = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        ActionForm {
            csrf: first("csrf").unwrap_or_default(),
            action: first("action").unwrap_or_default(),
            note: first("note"),
            reasons: first("reasons"),
            missing: pairs
                .iter()
                .filter(|(k, _)| k == "missing")
                .flat_map(|(_, v)| v.lines())
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
            user: first("user"),
        }
    }
}

/// `POST /ufficio/pratiche/{ref}/azioni`: the same action as the API, from a button; on
/// success back to the case page (so a reload does not act twice), else the page again
/// with the reason.
pub(super) async fn act(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Response {
    let form = ActionForm::from_pairs(&pairs);
    let here = case_path(&reference);
    let (session, tr) = match case_form(
        &state,
        &headers,
        &reference,
        query.lang.as_deref(),
        &form.csrf,
    )
    .await
    {
        Ok(found) => found,
        Err(r) => return r,
    };
    let lines = |v: &Option<String>| {
        v.as_deref().map(|s| {
            s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
    };
    // Approving a permit request that `issue` would refuse is refused here, in the same
    // words the page showed next to the disabled button (the API keeps its own rules).
    if form.action == "approve"
        && let Ok(case) = state.store.get_case(&reference).await
    {
        let gaps = super::workspace::approval_gaps(&state, &tr, &case).await;
        if !gaps.is_empty() {
            let message = format!("{} {}", tr.t("workspace.approve_refused"), gaps.join(" "));
            return with_status(
                StatusCode::CONFLICT,
                case_error(&state, &session, tr, &reference, message).await,
            );
        }
    }
    let request = sportello_app::cases::ActionRequest {
        action: Some(form.action.clone()),
        note: form.note.clone().filter(|n| !n.trim().is_empty()),
        user: form.user.clone().filter(|u| !u.trim().is_empty()),
        missing: (!form.missing.is_empty()).then(|| form.missing.clone()),
        reasons: lines(&form.reasons),
        // The citizen is told on their default channel, in Italian.
        notify: None,
        notify_channel: None,
        lang: None,
    };
    match sportello_app::cases::perform_from_desk(&state, &session.user.login, &reference, request)
        .await
    {
        Ok(_) => Redirect::to(&format!("{here}?esito={}", urlencode(&form.action))).into_response(),
        Err(e) => {
            let message = crate::error::ApiError::from(e).detail_in(tr);
            case_error(&state, &session, tr, &reference, message).await
        }
    }
}

/// The form that clears a flag.
#[derive(Debug, Deserialize)]
pub struct FlagForm {
    csrf: String,
    flag: String,
    note: Option<String>,
}

/// `POST /ufficio/pratiche/{ref}/segnalazioni`: a flag dealt with leaves the case (and
/// its queue), journaled.
pub(super) async fn clear_flag(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<FlagForm>,
) -> Response {
    let here = case_path(&reference);
    let (session, tr) = match case_form(
        &state,
        &headers,
        &reference,
        query.lang.as_deref(),
        &form.csrf,
    )
    .await
    {
        Ok(found) => found,
        Err(r) => return r,
    };
    match state
        .store
        .clear_flag(
            &reference,
            form.flag.trim(),
            form.note.as_deref(),
            &session.user.login,
        )
        .await
    {
        Ok(_) => Redirect::to(&here).into_response(),
        Err(e) => {
            let message = crate::error::ApiError::from(e).detail_in(tr);
            case_error(&state, &session, tr, &reference, message).await
        }
    }
}

/// `POST /ufficio/pratiche/{ref}/documenti`: documents brought to the counter or received
/// on paper, attached from the case page (multipart: `csrf`, one or more `file`).
pub(super) async fn upload_document(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    use futures::TryStreamExt;
    let here = case_path(&reference);
    let session = match staff(&state, &headers, &here).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    let refuse = |status: StatusCode, message: String| {
        let (state, session) = (&state, &session);
        let reference = reference.as_str();
        async move {
            with_status(
                status,
                case_error(state, session, tr, reference, message).await,
            )
        }
    };
    if !session.user.role.can(Permission::UploadDocument) {
        crate::guard::permission_refused(&session.user.login, "upload documents");
        return refuse(StatusCode::FORBIDDEN, tr.t("case.forbidden").to_owned()).await;
    }
    let Ok(mut multipart) = multipart else {
        return refuse(StatusCode::BAD_REQUEST, tr.t("form.unreadable").to_owned()).await;
    };
    let mut csrf_ok = false;
    let mut added = 0;
    // "This is the integration asked for": the clock resumes once the files are in.
    let mut resume = false;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => {
                let (status, message) = multipart_refusal(&e, tr, &state);
                return refuse(status, message).await;
            }
        };
        match (
            field.name().map(str::to_owned),
            field.file_name().map(str::to_owned),
        ) {
            (Some(name), None) if name == "csrf" => {
                csrf_ok = same_token(&field.text().await.unwrap_or_default(), &session.csrf_token);
            }
            (Some(name), None) if name == "resume" => resume = true,
            (_, Some(filename)) if !filename.is_empty() => {
                if !csrf_ok {
                    return refuse(StatusCode::FORBIDDEN, tr.t("form.expired").to_owned()).await;
                }
                let stream = field.map_err(std::io::Error::other);
                let stored = async {
                    let staged = sportello_store::documents::BlobStore::stage(
                        &state.staging_dir,
                        tokio_util::io::StreamReader::new(stream),
                        state.config.documents.max_upload_bytes,
                    )
                    .await?;
                    if staged.size == 0 {
                        return Ok(false);
                    }
                    state.blobs.put_staged(&staged).await?;
                    state
                        .store
                        .add_document(
                            &reference,
                            &staged.sha256,
                            staged.size,
                            &filename,
                            &staged.media_type,
                            &session.user.login,
                        )
                        .await?;
                    Ok::<bool, sportello_store::StoreError>(true)
                }
                .await;
                match stored {
                    Ok(true) => added += 1,
                    Ok(false) => {}
                    Err(e) => {
                        let e = crate::error::ApiError::from(e);
                        let message = match &e {
                            crate::error::ApiError::TooLarge(limit) => {
                                crate::hygiene::too_large(tr, *limit)
                            }
                            other => other.detail_in(tr),
                        };
                        return refuse(e.status(), message).await;
                    }
                }
            }
            _ => {}
        }
    }
    if !csrf_ok {
        return refuse(StatusCode::FORBIDDEN, tr.t("form.expired").to_owned()).await;
    }
    let mut notice = tr.f("status.uploaded", &[("n", &added.to_string())]);
    if resume && added > 0 && session.user.role.can(Permission::ActOnCase) {
        let request = sportello_app::cases::ActionRequest {
            action: Some("integration_received".into()),
            ..Default::default()
        };
        match sportello_app::cases::perform_action(&state, &session.user.login, &reference, request)
            .await
        {
            Ok(_) => {
                notice.push(' ');
                notice.push_str(&tr.f(
                    "case.done",
                    &[("action", &tr.name("action", "integration_received"))],
                ));
            }
            Err(e) => {
                let why = crate::error::ApiError::from(e).detail_in(tr);
                return render_case(&state, &session, tr, &reference, Some(notice), Some(why))
                    .await;
            }
        }
    }
    render_case(&state, &session, tr, &reference, Some(notice), None).await
}

/// `POST /ufficio/pratiche/{ref}/dati`: the permit request's category, plates and the
/// documents received, as the operator checked them (a journaled change of the fields).
/// The form's pairs as sent: `csrf`, `category`, `plates`, and `documents` once per ticked
/// box of the checklist (or once as a comma-separated list of ids, as an older form sent it).
pub(super) async fn edit_fields(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Response {
    let here = case_path(&reference);
    let first = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let csrf = first("csrf").unwrap_or_default();
    let (session, tr) =
        match case_form(&state, &headers, &reference, query.lang.as_deref(), &csrf).await {
            Ok(found) => found,
            Err(r) => return r,
        };
    let list = |text: &str| -> Vec<serde_json::Value> {
        text.split([',', ';', '\n'])
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(|x| serde_json::Value::String(x.to_owned()))
            .collect()
    };
    let mut documents: Vec<serde_json::Value> = Vec::new();
    for (_, value) in pairs.iter().filter(|(k, _)| k == "documents") {
        for id in list(value) {
            if !documents.contains(&id) {
                documents.push(id);
            }
        }
    }
    let category = first("category");
    let mut patch = serde_json::Map::new();
    if let Some(category) = category.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        if state.policy.category(category).is_none() {
            return case_error(
                &state,
                &session,
                tr,
                &reference,
                tr.t("apply.error.category").to_owned(),
            )
            .await;
        }
        patch.insert("category".into(), category.into());
    }
    patch.insert(
        "plates".into(),
        list(&first("plates").unwrap_or_default()).into(),
    );
    patch.insert("documents".into(), documents.into());
    if let Err(e) = state
        .store
        .update_case_fields(&reference, &patch, &session.user.login)
        .await
    {
        let message = crate::error::ApiError::from(e).detail_in(tr);
        return case_error(&state, &session, tr, &reference, message).await;
    }
    if first("then").as_deref() != Some("issue") {
        return Redirect::to(&here).into_response();
    }
    // "Save, approve and issue": the data saved, then approval (refused in words while
    // something is missing, as the approve button is) and the permit, each its own step.
    let gaps = match state.store.get_case(&reference).await {
        Ok(case) => super::workspace::approval_gaps(&state, &tr, &case).await,
        Err(_) => return crate::pages::temporarily_unavailable(),
    };
    if !gaps.is_empty() {
        let message = format!("{} {}", tr.t("workspace.approve_refused"), gaps.join(" "));
        return with_status(
            StatusCode::CONFLICT,
            case_error(&state, &session, tr, &reference, message).await,
        );
    }
    for action in ["approve", "issue"] {
        let request = sportello_app::cases::ActionRequest {
            action: Some(action.into()),
            ..Default::default()
        };
        if let Err(e) = sportello_app::cases::perform_from_desk(
            &state,
            &session.user.login,
            &reference,
            request,
        )
        .await
        {
            let message = crate::error::ApiError::from(e).detail_in(tr);
            return case_error(&state, &session, tr, &reference, message).await;
        }
    }
    Redirect::to(&format!("{here}?esito=issue")).into_response()
}

/// The form that moves a message: to an existing case (`to`), or to a new one (`to`
/// empty), with a note saying why.
#[derive(Debug, Deserialize)]
pub struct MoveForm {
    csrf: String,
    to: Option<String>,
    note: String,
    /// Set by the confirmation step: without it the page asks first.
    confirm: Option<String>,
}

/// `POST /ufficio/pratiche/{ref}/messaggi/{id}`: a message linked to the wrong case goes
/// where it belongs, with its attachments and its protocol entry (journaled on both).
pub(super) async fn move_message(
    State(state): State<AppState>,
    Path((reference, id)): Path<(String, i64)>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<MoveForm>,
) -> Response {
    let (session, tr) = match case_form(
        &state,
        &headers,
        &reference,
        query.lang.as_deref(),
        &form.csrf,
    )
    .await
    {
        Ok(found) => found,
        Err(r) => return r,
    };
    let to = form
        .to
        .as_deref()
        .map(|t| t.trim().to_ascii_uppercase())
        .filter(|t| !t.is_empty());
    let target = match &to {
        Some(to) if Reference::parse(to).is_none() => {
            return case_error(
                &state,
                &session,
                tr,
                &reference,
                tr.t("case.bad_reference").to_owned(),
            )
            .await;
        }
        Some(to) => sportello_store::messages::MoveTarget::Case(to.clone()),
        None => sportello_store::messages::MoveTarget::NewCase(None),
    };
    if form.confirm.is_none() {
        return confirm_move(&state, &session, tr, &reference, id, to, form.note).await;
    }
    match state
        .store
        .move_message(id, target, &form.note, &session.user.login)
        .await
    {
        Ok(moved) => {
            let token = super::workspace::undo_token(
                &session.csrf_token,
                moved.message,
                &moved.from,
                &moved.to,
            );
            Redirect::to(&format!(
                "{}?spostato={}&da={}&annulla={token}",
                case_path(&moved.to),
                moved.message,
                urlencode(&moved.from)
            ))
            .into_response()
        }
        Err(e) => {
            let message = crate::error::ApiError::from(e).detail_in(tr);
            case_error(&state, &session, tr, &reference, message).await
        }
    }
}

/// The confirmation step of a move: the case page again, asking "move the message … from
/// case A to case B (or a new case)?" with the same form, confirmed.
async fn confirm_move(
    state: &AppState,
    session: &Session,
    tr: Tr,
    reference: &str,
    id: i64,
    to: Option<String>,
    note: String,
) -> Response {
    if note.trim().is_empty() {
        let message = tr.t("workspace.move_note_needed").to_owned();
        return case_error(state, session, tr, reference, message).await;
    }
    let messages = state
        .store
        .case_messages(reference)
        .await
        .unwrap_or_default();
    let Some(message) = messages.iter().find(|m| m.id == id) else {
        let message = tr.t("workspace.message_not_here").to_owned();
        return case_error(state, session, tr, reference, message).await;
    };
    let name = if message.subject.trim().is_empty() {
        tr.f("workspace.message_of", &[("sender", &message.sender)])
    } else {
        format!("«{}»", message.subject)
    };
    let question = match &to {
        Some(to) => {
            if state.store.get_case(to).await.is_err() {
                let message = tr.f("workspace.no_such_case", &[("reference", to)]);
                return case_error(state, session, tr, reference, message).await;
            }
            tr.f(
                "workspace.move_question",
                &[("message", &name), ("from", reference), ("to", to)],
            )
        }
        None => tr.f(
            "workspace.split_question",
            &[("message", &name), ("from", reference)],
        ),
    };
    let confirm = super::case::MoveConfirm {
        message: id,
        question,
        to: to.unwrap_or_default(),
        note,
    };
    let extras = super::case::Extras {
        confirm_move: Some(confirm),
        ..super::case::Extras::default()
    };
    super::case::render_workspace(state, session, tr, reference, extras).await
}

/// The form that moves a message back where it came from.
#[derive(Debug, Deserialize)]
pub struct UndoForm {
    csrf: String,
    /// The case it came from.
    from: String,
    /// The token the move gave this session.
    token: String,
}

/// `POST /ufficio/pratiche/{ref}/messaggi/{id}/annulla`: undoes a move, for the session
/// that made it and while it lives (the token is keyed by that session's secret), as long
/// as the message is still on this case; the move back is journaled like any move.
pub(super) async fn undo_move(
    State(state): State<AppState>,
    Path((reference, id)): Path<(String, i64)>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<UndoForm>,
) -> Response {
    let (session, tr) = match case_form(
        &state,
        &headers,
        &reference,
        query.lang.as_deref(),
        &form.csrf,
    )
    .await
    {
        Ok(found) => found,
        Err(r) => return r,
    };
    let from = form.from.trim().to_ascii_uppercase();
    let expected = super::workspace::undo_token(&session.csrf_token, id, &from, &reference);
    let here = state
        .store
        .case_messages(&reference)
        .await
        .unwrap_or_default()
        .iter()
        .any(|m| m.id == id);
    let ours = crate::cookies::same_token(&form.token, &expected);
    if !ours {
        // A token not made for this session: replayed from another one, or forged.
        crate::guard::permission_refused(
            &session.user.login,
            "undo a message's move with a token not of this session",
        );
    }
    if Reference::parse(&from).is_none() || !ours || !here {
        let message = tr.t("workspace.undo_refused").to_owned();
        return with_status(
            StatusCode::FORBIDDEN,
            case_error(&state, &session, tr, &reference, message).await,
        );
    }
    let note = tr.f("workspace.undo_note", &[("to", &reference)]);
    match state
        .store
        .move_message(
            id,
            sportello_store::messages::MoveTarget::Case(from.clone()),
            &note,
            &session.user.login,
        )
        .await
    {
        Ok(_) => Redirect::to(&format!("{}?ripristinato={id}", case_path(&from))).into_response(),
        Err(e) => {
            let message = crate::error::ApiError::from(e).detail_in(tr);
            case_error(&state, &session, tr, &reference, message).await
        }
    }
}

// ----- search -----

/// A page answered with another status (a refused upload is never a 200).
fn with_status(status: StatusCode, mut response: Response) -> Response {
    if response.status().is_success() {
        *response.status_mut() = status;
    }
    response
}

/// The status and the words of a multipart body that could not be read: over the body
/// limit (413, naming the limit), else unreadable (400).
pub(crate) fn multipart_refusal(
    e: &axum::extract::multipart::MultipartError,
    tr: Tr,
    state: &AppState,
) -> (StatusCode, String) {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            crate::hygiene::too_large(tr, state.config.documents.max_upload_bytes),
        )
    } else {
        (StatusCode::BAD_REQUEST, tr.t("form.unreadable").to_owned())
    }
}
