//! One error type for every handler, turned into RFC 9457 problem+json in one place.

use std::any::Any;

use axum::Json;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sportello_domain::refusal::Refusal;
use sportello_store::StoreError;

use crate::i18n::{Lang, Tr};
use utoipa::ToSchema;

/// A field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field, dotted for nested ones (`citizen.fiscal_code`).
    pub field: String,
    /// What is wrong, in plain words.
    pub message: String,
}

/// The RFC 9457 body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What happened this time.
    pub detail: String,
    /// Field errors, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The request's code, as in its `x-request-id` header: quoted to the office, it finds
    /// the request's log (an extension member of RFC 9457).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Everything a handler can fail with.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request could not be read.
    BadRequest(String),
    /// 401: no or wrong credentials.
    Unauthorized,
    /// 401: a delivery whose signature or secret does not prove its sender (webhooks).
    NotAuthentic(&'static str),
    /// 403: the role does not allow it.
    Forbidden(&'static str),
    /// 404.
    NotFound(String),
    /// 409: not allowed in the current state.
    Conflict(String),
    /// 409: a rule of the office refuses it; the pages say why in the reader's language.
    Refused(Refusal),
    /// 422: one field's value is refused by a rule, said in the reader's language.
    RefusedField {
        /// The field, dotted.
        field: String,
        /// Why.
        refusal: Refusal,
    },
    /// 405.
    MethodNotAllowed,
    /// 413 with the limit.
    TooLarge(u64),
    /// 413 for a request body over the JSON limit.
    BodyTooLarge,
    /// 415: the document cannot be shown that way.
    UnsupportedMediaType(String),
    /// 422: field errors.
    Invalid(Vec<FieldError>),
    /// 429: too many failed attempts.
    TooManyRequests,
    /// 500: logged, never detailed to the client.
    Internal(String),
    /// 503: a dependency is down.
    Unavailable(String),
}

impl ApiError {
    /// What went wrong, in one line for a person (the pages show it; internal errors stay
    /// unexplained, as in the API).
    pub fn detail(&self) -> String {
        match self {
            ApiError::Refused(refusal) => english(refusal),
            ApiError::RefusedField { field, refusal } => format!("{field}: {}", english(refusal)),
            ApiError::BadRequest(d)
            | ApiError::NotFound(d)
            | ApiError::Conflict(d)
            | ApiError::UnsupportedMediaType(d) => d.clone(),
            ApiError::Invalid(errors) => errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            ApiError::Forbidden(what) => format!("your role may not {what}"),
            ApiError::Unauthorized => "not signed in".into(),
            ApiError::NotAuthentic(why) => (*why).to_owned(),
            ApiError::TooManyRequests => "too many attempts: wait a minute".into(),
            ApiError::TooLarge(limit) => format!("larger than {limit} bytes"),
            ApiError::BodyTooLarge => "the request is too large".into(),
            ApiError::MethodNotAllowed => "not allowed".into(),
            ApiError::Unavailable(d) => d.clone(),
            ApiError::Internal(_) => "an internal error occurred".into(),
        }
    }

    /// What went wrong, in the reader's language when a rule refused it (the pages' words);
    /// otherwise as [`ApiError::detail`].
    pub fn detail_in(&self, tr: Tr) -> String {
        match self {
            ApiError::Refused(refusal) | ApiError::RefusedField { refusal, .. } => {
                tr.refusal(refusal)
            }
            other => other.detail(),
        }
    }

    /// The HTTP status of its answer (pages that show the error in their own words).
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::NotAuthentic(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::Refused(_) => StatusCode::CONFLICT,
            ApiError::RefusedField { .. } | ApiError::Invalid(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) | ApiError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A 422 naming one field.
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::Invalid(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        sportello_app::AppError::from(e).into()
    }
}

/// A refusal in the API's language: English words, identifiers as they are.
fn english(refusal: &Refusal) -> String {
    let tr = Tr { lang: Lang::En };
    refusal.fill(tr.t(refusal.key), |_, id| id.to_owned())
}

fn problem(
    status: StatusCode,
    slug: &str,
    title: &str,
    detail: String,
    errors: Vec<FieldError>,
) -> Response {
    let body = Problem {
        kind: format!("urn:sportello:problem:{slug}"),
        title: title.to_owned(),
        status: status.as_u16(),
        detail,
        errors,
        request_id: None,
    };
    let mut response = (status, Json(body.clone())).into_response();
    // Kept for [`stamp_request_id`], which writes the request's code into it.
    response.extensions_mut().insert(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/problem+json"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadRequest(detail) => problem(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "Bad request",
                detail,
                vec![],
            ),
            ApiError::UnsupportedMediaType(detail) => problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Cannot be shown this way",
                detail,
                vec![],
            ),
            ApiError::Unauthorized => {
                let mut r = problem(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "Authentication required",
                    "send a valid API token as 'Authorization: Bearer TOKEN'".into(),
                    vec![],
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                r
            }
            ApiError::NotAuthentic(why) => problem(
                StatusCode::UNAUTHORIZED,
                "not-authentic",
                "The sender is not proven",
                why.to_owned(),
                vec![],
            ),
            ApiError::Forbidden(what) => problem(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Not allowed for your role",
                format!("your role may not {what}"),
                vec![],
            ),
            ApiError::NotFound(detail) => problem(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                detail,
                vec![],
            ),
            ApiError::Conflict(detail) => problem(
                StatusCode::CONFLICT,
                "conflict",
                "Not allowed in the current state",
                detail,
                vec![],
            ),
            ApiError::Refused(refusal) => problem(
                StatusCode::CONFLICT,
                "conflict",
                "Not allowed in the current state",
                english(&refusal),
                vec![],
            ),
            ApiError::RefusedField { field, refusal } => ApiError::Invalid(vec![FieldError {
                field,
                message: english(&refusal),
            }])
            .into_response(),
            ApiError::TooLarge(limit) => problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Too large",
                format!("the upload exceeds the limit of {limit} bytes"),
                vec![],
            ),
            ApiError::MethodNotAllowed => problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "this endpoint does not accept that HTTP method; see /api/openapi.json".into(),
                vec![],
            ),
            ApiError::BodyTooLarge => problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Too large",
                "the request body is larger than allowed (limits.max_json_bytes)".into(),
                vec![],
            ),
            ApiError::Invalid(errors) => {
                let detail = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation",
                    "Invalid request",
                    detail,
                    errors,
                )
            }
            ApiError::TooManyRequests => {
                let mut r = problem(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    "Too many failed attempts",
                    "too many failed authentications from your address; wait a minute".into(),
                    vec![],
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
                r
            }
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "something went wrong on our side; it has been logged".into(),
                    vec![],
                )
            }
            ApiError::Unavailable(detail) => {
                let mut r = problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Service unavailable",
                    detail,
                    vec![],
                );
                r.headers_mut().insert(
                    header::RETRY_AFTER,
                    header::HeaderValue::from_static(RETRY_AFTER_SECONDS),
                );
                r
            }
        }
    }
}

/// How long a client should wait before trying again after a 503 (seconds): a busy
/// SQLite writer or a full disk is seldom over in less.
pub const RETRY_AFTER_SECONDS: &str = "5";

/// What a client is told when the database is busy or locked or the disk is full.
pub const BUSY: &str =
    "the service is busy (database locked or storage full); try again in a few seconds";

/// A known path with a method it does not accept.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Unknown paths get a problem too.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no such endpoint: {}", uri.path()))
}

/// A panic in a handler becomes a plain 500 problem, never a stack trace.
pub fn panic_response(_err: Box<dyn Any + Send + 'static>) -> Response {
    ApiError::Internal("a request handler panicked".into()).into_response()
}

/// Writes the request's code into an error's answer: the `request_id` member of a
/// problem+json, and a line ("Codice della richiesta: …") on an HTML error page, in the
/// page's language. Answers that went well pass untouched.
pub async fn stamp_request_id(request: Request, next: Next) -> Response {
    let Some(id) = crate::request_id::of(&request).map(str::to_owned) else {
        return next.run(request).await;
    };
    let response = next.run(request).await;
    if let Some(problem) = response.extensions().get::<Problem>() {
        let stamped = Problem {
            request_id: Some(id),
            ..problem.clone()
        };
        return match serde_json::to_vec(&stamped) {
            Ok(body) => with_body(response, body),
            Err(_) => response,
        };
    }
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !(response.status().is_client_error() || response.status().is_server_error()) || !is_html {
        return response;
    }
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => {
            let page = String::from_utf8_lossy(&bytes);
            let body = with_request_code(&page, &id).unwrap_or_else(|| page.into_owned());
            with_body(
                Response::from_parts(parts, Body::empty()),
                body.into_bytes(),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "an error page could not be read");
            Response::from_parts(parts, Body::empty())
        }
    }
}

/// The answer with another body (and no stale length).
fn with_body(response: Response, body: Vec<u8>) -> Response {
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// An error page with the request's code shown at the end of its main content, in the
/// page's own language (its `<html lang>`); `None` when the page has no main content.
fn with_request_code(page: &str, id: &str) -> Option<String> {
    let end_of_main = page.rfind("</main>")?;
    let lang = page
        .split_once("<html lang=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .and_then(|(code, _)| Lang::parse(code))
        .unwrap_or(Lang::It);
    let label = Tr { lang }.t("error.request_code");
    let id = escape_html(id);
    Some(format!(
        "{}<p class=\"request-code\">{label}: <code>{id}</code></p>\n{}",
        &page[..end_of_main],
        &page[end_of_main..]
    ))
}

/// Text safe inside an HTML element.
fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_page_shows_the_request_code_in_its_language() {
        let page = "<!doctype html>\n<html lang=\"en\">\n<body><main id=\"main\">\n<h1>Case not found</h1>\n</main>\n<footer></footer></body></html>";
        let shown = with_request_code(page, "abc-123").unwrap();
        assert!(
            shown.contains(
                "<h1>Case not found</h1>\n<p class=\"request-code\">Request code: <code>abc-123</code></p>\n</main>"
            ),
            "{shown}"
        );
        let italian = with_request_code(&page.replace("lang=\"en\"", "lang=\"it\""), "abc-123");
        assert!(
            italian
                .unwrap()
                .contains("Codice della richiesta: <code>abc-123</code>")
        );
    }

    #[test]
    fn a_page_without_main_content_is_left_alone() {
        assert_eq!(
            with_request_code("<html lang=\"it\"><p>x</p></html>", "a"),
            None
        );
    }

    #[test]
    fn the_code_is_escaped_on_the_page() {
        assert_eq!(escape_html("<a&\"b>"), "&lt;a&amp;&quot;b&gt;");
    }
}
