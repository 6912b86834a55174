//! Where the use-case layer meets HTTP: its one error mapped once to the API's problems
//! (and, through [`ApiError`], to the pages' messages), and the words its messages to
//! citizens take from the pages' locale files.

use sportello_app::{AppError, Lang, Names};

use crate::error::{ApiError, FieldError};
use crate::i18n::{self, Tr};

impl From<sportello_app::FieldError> for FieldError {
    fn from(e: sportello_app::FieldError) -> Self {
        FieldError {
            field: e.field,
            message: e.message,
        }
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::BadRequest(detail) => ApiError::BadRequest(detail),
            AppError::NotFound(detail) => ApiError::NotFound(detail),
            AppError::Conflict(detail) => ApiError::Conflict(detail),
            AppError::Refused(refusal) => ApiError::Refused(refusal),
            AppError::RefusedField { field, refusal } => ApiError::RefusedField { field, refusal },
            AppError::Invalid(errors) => {
                ApiError::Invalid(errors.into_iter().map(FieldError::from).collect())
            }
            AppError::TooLarge(limit) => ApiError::TooLarge(limit),
            AppError::Internal(detail) => ApiError::Internal(detail),
            AppError::Unavailable(detail) => {
                tracing::warn!(%detail, "temporarily unavailable: answered 503");
                ApiError::Unavailable(crate::error::BUSY.into())
            }
        }
    }
}

/// The pages' words for the office's vocabulary.
#[derive(Debug, Clone, Copy)]
pub struct PageNames;

impl Names for PageNames {
    fn name(&self, lang: Lang, group: &str, id: &str) -> String {
        let lang = match lang {
            Lang::It => i18n::Lang::It,
            Lang::En => i18n::Lang::En,
        };
        Tr { lang }.name(group, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;
    use sportello_domain::refusal::Refusal;

    #[test]
    fn every_kind_keeps_its_status() {
        let status = |e: AppError| ApiError::from(e).into_response().status().as_u16();
        assert_eq!(status(AppError::BadRequest("x".into())), 400);
        assert_eq!(status(AppError::NotFound("x".into())), 404);
        assert_eq!(status(AppError::Conflict("x".into())), 409);
        assert_eq!(
            status(AppError::Refused(Refusal::new("refusal.no_plates"))),
            409
        );
        assert_eq!(
            status(AppError::RefusedField {
                field: "plate".into(),
                refusal: Refusal::new("refusal.no_plates"),
            }),
            422
        );
        assert_eq!(status(AppError::field("plate", "bad")), 422);
        assert_eq!(status(AppError::TooLarge(10)), 413);
        assert_eq!(status(AppError::Internal("x".into())), 500);
        let busy = ApiError::from(AppError::Unavailable("database is locked".into()));
        assert_eq!(busy.status().as_u16(), 503);
        assert_eq!(
            busy.detail(),
            crate::error::BUSY,
            "the cause stays in the log"
        );
        let response = busy.into_response();
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(response.headers()["retry-after"], "5");
        for e in [
            AppError::BadRequest("x".into()),
            AppError::NotFound("x".into()),
            AppError::field("plate", "bad"),
            AppError::TooLarge(10),
            AppError::Internal("x".into()),
        ] {
            let api = ApiError::from(e);
            let expected = api.status();
            assert_eq!(api.into_response().status(), expected);
        }
    }

    #[test]
    fn messages_name_things_as_the_pages_do() {
        assert_eq!(
            PageNames.name(Lang::It, "case_type", "ztl_permit"),
            Tr {
                lang: i18n::Lang::It
            }
            .name("case_type", "ztl_permit")
        );
        assert_eq!(
            PageNames.name(Lang::En, "document", "no-such-id"),
            "no-such-id"
        );
    }
}
