//! The inbound messages of a case, and moving one to the right case (or splitting it off)
//! when intake linked it wrongly.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use sportello_domain::case::Reference;
use sportello_domain::roles::Permission;
use sportello_store::messages::{MessageView, MoveTarget, MovedMessage};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use sportello_app::validate::{check_reference, check_text};

/// `GET /api/v1/cases/{ref}/messages`: the case's inbound messages and the rule that
/// linked each; the read is audited.
#[utoipa::path(get, path = "/api/v1/cases/{reference}/messages", tag = "cases",
    params(("reference" = String, Path, description = "Case reference")),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<MessageView>), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn case_messages(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(reference): ApiPath<String>,
) -> Result<Json<Vec<MessageView>>, ApiError> {
    let user = caller.require(Permission::ReadCase)?;
    check_reference(&reference)?;
    let messages = state.store.case_messages(&reference).await?;
    state
        .store
        .record_access(&user.login, "read_messages", &reference)
        .await?;
    Ok(Json(messages))
}

/// Body of a move.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    /// The case the message belongs to.
    #[serde(default)]
    #[schema(pattern = r"^[A-Z]{2,5}-[0-9]{4}-[0-9]{5}[1-9]$")]
    #[schema(required = true)]
    pub to: String,
    /// Why (kept in both journals).
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
    )]
    #[schema(required = true)]
    pub note: String,
}

/// Body of a split.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitBody {
    /// Type of the new case (default: the type of the case the message leaves).
    #[serde(default)]
    #[schema(value_type = Option<crate::vocabulary::CaseTypeId>)]
    pub case_type: Option<String>,
    /// Why (kept in both journals).
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
    )]
    #[schema(required = true)]
    pub note: String,
}

fn check_note(note: &str) -> Result<(), ApiError> {
    if note.trim().is_empty() {
        return Err(ApiError::field("note", "say why the message moves"));
    }
    if note.chars().count() > 2000 {
        return Err(ApiError::field("note", "must be at most 2000 characters"));
    }
    check_text("note", note, true).map_err(|e| ApiError::Invalid(vec![e.into()]))
}

/// `POST /api/v1/messages/{id}/move`: moves a message, with its attachments, to another case.
#[utoipa::path(post, path = "/api/v1/messages/{id}/move", tag = "cases", request_body = MoveBody,
    params(("id" = i64, Path, description = "Message id (from the case's messages)")),
    security(("bearer" = [])),
    responses((status = 200, body = MovedMessage), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn move_message(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<MoveBody>,
) -> Result<Json<MovedMessage>, ApiError> {
    let user = caller.require(Permission::ActOnCase)?;
    if Reference::parse(body.to.trim()).is_none() {
        return Err(ApiError::field(
            "to",
            "must be a case reference (e.g. ZTL-2026-000123)",
        ));
    }
    check_note(&body.note)?;
    let moved = state
        .store
        .move_message(
            id,
            MoveTarget::Case(body.to.trim().to_owned()),
            &body.note,
            &user.login,
        )
        .await?;
    Ok(Json(moved))
}

/// `POST /api/v1/messages/{id}/split`: opens a new case for a message (which keeps its
/// protocol entry) and moves it there with its attachments.
#[utoipa::path(post, path = "/api/v1/messages/{id}/split", tag = "cases", request_body = SplitBody,
    params(("id" = i64, Path, description = "Message id (from the case's messages)")),
    security(("bearer" = [])),
    responses((status = 200, body = MovedMessage), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn split_message(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<SplitBody>,
) -> Result<Json<MovedMessage>, ApiError> {
    let user = caller.require(Permission::ActOnCase)?;
    check_note(&body.note)?;
    let case_type = body
        .case_type
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let moved = state
        .store
        .move_message(id, MoveTarget::NewCase(case_type), &body.note, &user.login)
        .await?;
    Ok(Json(moved))
}
