//! The one error of the use cases. Each adapter maps it once: the web to problem+json and
//! error pages, the command line to its exit codes.

use sportello_domain::refusal::Refusal;
use sportello_domain::workflow::WorkflowError;
use sportello_store::StoreError;

/// A field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field, dotted for nested ones (`citizen.fiscal_code`).
    pub field: String,
    /// What is wrong, in plain words.
    pub message: String,
}

impl FieldError {
    /// A field error from its parts.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Everything a use case can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input could not be read at all (not a field's value: its form).
    #[error("{0}")]
    BadRequest(String),
    /// What the caller names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Not possible in the current state.
    #[error("{0}")]
    Conflict(String),
    /// A rule of the office refuses it; the adapter says why in the reader's language.
    #[error("refused: {}", .0.key)]
    Refused(Refusal),
    /// One field's value is refused by a rule.
    #[error("{field}: refused: {}", refusal.key)]
    RefusedField {
        /// The field, dotted.
        field: String,
        /// Why.
        refusal: Refusal,
    },
    /// Field errors.
    #[error("{}", describe(.0))]
    Invalid(Vec<FieldError>),
    /// An upload over the limit (bytes).
    #[error("larger than {0} bytes")]
    TooLarge(u64),
    /// Not now: the database is busy or locked, or the disk is full (the detail is for the
    /// log; callers are told to try again).
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// Something broke on our side: logged, never detailed to a citizen.
    #[error("{0}")]
    Internal(String),
}

fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl AppError {
    /// Field errors naming one field.
    pub fn field(field: &str, message: impl Into<String>) -> AppError {
        AppError::Invalid(vec![FieldError::new(field, message)])
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            return AppError::Unavailable(e.to_string());
        }
        match e {
            StoreError::NotFound(what) => AppError::NotFound(format!("{what} not found")),
            StoreError::Workflow(w) => match &w {
                WorkflowError::MissingArgument { field, .. } => AppError::RefusedField {
                    field: (*field).to_owned(),
                    refusal: w.refusal(),
                },
                _ => AppError::Refused(w.refusal()),
            },
            StoreError::Refused(refusal) => AppError::Refused(refusal),
            StoreError::RefusedField { field, refusal } => {
                AppError::RefusedField { field, refusal }
            }
            StoreError::Invalid { field, message } => {
                AppError::Invalid(vec![FieldError { field, message }])
            }
            StoreError::Conflict(msg) => AppError::Conflict(msg),
            StoreError::TooLarge { limit } => AppError::TooLarge(limit),
            StoreError::Database(e) => AppError::Internal(format!("database: {e}")),
            other => AppError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_keep_their_kind() {
        assert!(matches!(
            AppError::from(StoreError::NotFound("case X".into())),
            AppError::NotFound(d) if d == "case X not found"
        ));
        assert!(matches!(
            AppError::from(StoreError::TooLarge { limit: 7 }),
            AppError::TooLarge(7)
        ));
        let invalid = AppError::from(StoreError::Invalid {
            field: "plate".into(),
            message: "too short".into(),
        });
        assert_eq!(invalid.to_string(), "plate: too short");
    }

    #[test]
    fn busy_databases_and_full_disks_are_unavailable() {
        assert!(matches!(
            AppError::from(StoreError::Unavailable("database is locked".into())),
            AppError::Unavailable(_)
        ));
        assert!(matches!(
            AppError::from(StoreError::Blob(
                "staging file: No space left on device (os error 28)".into()
            )),
            AppError::Unavailable(_)
        ));
        assert!(matches!(
            AppError::from(StoreError::Blob("object not found".into())),
            AppError::Internal(_)
        ));
    }
}
