//! Extractors whose rejections are problem+json with a clear message.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// JSON body; a malformed body is a 400 that says where, a wrong shape a 422.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::JsonDataError(e)) => {
                let text = e.body_text();
                Err(match unknown_field(&text) {
                    Some(field) => ApiError::field(
                        &field,
                        "is not a field of this request (unknown fields are refused)",
                    ),
                    None => ApiError::field("body", text),
                })
            }
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::BadRequest(
                "send the body as JSON with 'Content-Type: application/json'".into(),
            )),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::BodyTooLarge)
            }
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// The field serde names in "unknown field `x`, expected …" (bodies that refuse unknown
/// fields name the offending one, dotted from its path when nested: `citizen.nickname`).
fn unknown_field(message: &str) -> Option<String> {
    let (before, rest) = message.split_once("unknown field `")?;
    let (name, _) = rest.split_once('`')?;
    // serde_path_to_error-style prefix "citizen: unknown field" when axum reports a path.
    let path = before
        .rsplit_once("body into the target type: ")
        .map_or(before, |(_, p)| p)
        .trim()
        .trim_end_matches(':')
        .trim();
    // axum's path already ends with the unknown key itself (`citizen.nick: unknown field
    // `nick``); an older or bare message has only the key.
    Some(if path.is_empty() || path == "." {
        name.to_owned()
    } else if path == name || path.ends_with(&format!(".{name}")) {
        path.to_owned()
    } else {
        format!("{path}.{name}")
    })
}

/// Query string; a wrong value is a 422 naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::field("query", e.body_text()))
            }
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// Path parameters; a value that cannot be read (e.g. bad UTF-8) is a 404 problem.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                Err(ApiError::NotFound(e.body_text()))
            }
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

#[cfg(test)]
mod unknown_field_tests {
    use super::unknown_field;

    #[test]
    fn the_unknown_field_is_named() {
        assert_eq!(
            unknown_field(
                "Failed to deserialize the JSON body into the target type: unknown field `colour`, expected one of `a`, `b` at line 1 column 12"
            ),
            Some("colour".into())
        );
        assert_eq!(
            unknown_field(
                "Failed to deserialize the JSON body into the target type: citizen: unknown field `nick`, expected `name` at line 1 column 40"
            ),
            Some("citizen.nick".into())
        );
        assert_eq!(
            unknown_field(
                "Failed to deserialize the JSON body into the target type: citizen.nick: unknown field `nick`, expected `name` at line 1 column 40"
            ),
            Some("citizen.nick".into())
        );
        assert_eq!(
            unknown_field(
                "Failed to deserialize the JSON body into the target type: colour: unknown field `colour`, expected one of `a` at line 1 column 9"
            ),
            Some("colour".into())
        );
        assert_eq!(unknown_field("missing field `subject`"), None);
    }
}
