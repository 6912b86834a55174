//! Reading a portal form (fields and files in one multipart body), checking its CSRF token and
//! storing its files before anything else, so nothing a citizen sent is lost.

use std::collections::HashMap;

use axum::extract::Multipart;
use axum::http::StatusCode;
use sportello_app::outbound::private_link;
use sportello_store::cases::CaseView;
use sportello_store::documents::StagedBlob;

use crate::AppState;
use crate::pages::same_token;

/// Files one form may carry.
const MAX_FILES: usize = 10;

/// What a form page shows again after a refusal: the values typed and an error per
/// field (`form` for the whole form).
#[derive(Debug, Default)]
pub(super) struct FormState {
    pub(super) values: HashMap<String, String>,
    pub(super) errors: Vec<(String, String)>,
}

impl FormState {
    pub(super) fn value(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }

    pub(super) fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    pub(super) fn checked(&self, name: &str, value: &str) -> bool {
        self.value(name) == value
    }

    /// Keeps the submitted `names` (trimmed) to show them again.
    pub(super) fn keep(&mut self, form: &Form, names: &[&str]) {
        for name in names {
            self.values
                .insert((*name).to_owned(), form.text(name).trim().to_owned());
        }
    }
}

// ----- /stato -----

/// A submitted form: its text fields, and its files already staged (hashed, on disk).
pub(super) struct Form {
    pub(super) fields: HashMap<String, String>,
    pub(super) files: Vec<(String, String, StagedBlob)>,
}

impl Form {
    pub(super) fn text(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

/// Reads a multipart form: text fields (at most 64 KiB each) and up to [`MAX_FILES`]
/// files, each staged within the upload limit; empty file inputs are skipped.
async fn read_form(
    state: &AppState,
    mut multipart: Multipart,
) -> Result<Form, (StatusCode, &'static str)> {
    use futures::TryStreamExt;
    let mut form = Form {
        fields: HashMap::new(),
        files: Vec::new(),
    };
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => return Ok(form),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err((StatusCode::PAYLOAD_TOO_LARGE, "upload.too_large"));
            }
            Err(_) => return Err((StatusCode::BAD_REQUEST, "form.unreadable")),
        };
        let name = field.name().unwrap_or_default().to_owned();
        match field.file_name().map(str::to_owned) {
            Some(filename) => {
                if filename.is_empty() {
                    continue;
                }
                if form.files.len() >= MAX_FILES {
                    return Err((StatusCode::BAD_REQUEST, "form.too_many_files"));
                }
                let stream = field.map_err(std::io::Error::other);
                let staged = sportello_app::documents::stage(
                    &state.staging_dir,
                    tokio_util::io::StreamReader::new(stream),
                    state.config.documents.max_upload_bytes,
                )
                .await
                .map_err(|e| match e {
                    sportello_app::AppError::TooLarge(_) => {
                        (StatusCode::PAYLOAD_TOO_LARGE, "upload.too_large")
                    }
                    sportello_app::AppError::Unavailable(_) => {
                        (StatusCode::SERVICE_UNAVAILABLE, "form.upload_failed")
                    }
                    sportello_app::AppError::BadRequest(m)
                        if m.to_ascii_lowercase().contains("limit") =>
                    {
                        (StatusCode::PAYLOAD_TOO_LARGE, "upload.too_large")
                    }
                    _ => (StatusCode::BAD_REQUEST, "form.unreadable"),
                })?;
                if staged.size > 0 {
                    form.files.push((name, filename, staged));
                }
            }
            None => {
                let text = field.text().await.map_err(|e| {
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        (StatusCode::PAYLOAD_TOO_LARGE, "upload.too_large")
                    } else {
                        (StatusCode::BAD_REQUEST, "form.unreadable")
                    }
                })?;
                if text.len() > 64 * 1024 {
                    return Err((StatusCode::BAD_REQUEST, "form.unreadable"));
                }
                form.fields.entry(name).or_insert(text);
            }
        }
    }
}

/// Stores staged files and attaches them to a case; returns how many.
pub(super) async fn attach_files(
    state: &AppState,
    reference: &str,
    files: Vec<(String, String, StagedBlob)>,
    actor: &str,
) -> Result<usize, sportello_app::AppError> {
    let n = files.len();
    for (_, filename, staged) in files {
        sportello_app::documents::attach(state, reference, &staged, &filename, actor).await?;
    }
    Ok(n)
}

// ----- /domanda -----

/// Reads a submitted form and checks its CSRF token against the page's; the status and
/// the words' key of a refusal.
pub(super) async fn checked_form(
    state: &AppState,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
    csrf: &str,
) -> Result<Form, (StatusCode, &'static str)> {
    let Ok(multipart) = multipart else {
        return Err((StatusCode::BAD_REQUEST, "form.unreadable"));
    };
    let form = read_form(state, multipart).await?;
    if same_token(form.text("csrf"), csrf) {
        Ok(form)
    } else {
        Err((StatusCode::FORBIDDEN, "form.expired"))
    }
}

/// Registers a case the citizen submitted online, with its files, and makes its private
/// link; the error is logged and only said to the citizen as a failure.
pub(super) async fn register_web_case(
    state: &AppState,
    request: sportello_app::cases::CaseRequest,
    files: Vec<(String, String, StagedBlob)>,
) -> Result<(CaseView, String), String> {
    let case = sportello_app::cases::create(state, request, "portale", true)
        .await
        .map_err(|e| e.to_string())?;
    let reference = case.summary.reference.clone();
    // A case registered without the files the citizen sent must not look like a success.
    if let Err(e) = attach_files(state, &reference, files, "portale").await {
        tracing::warn!(error = %e, %reference, "documents sent online not stored");
        return Err(format!(
            "case {reference} registered, but its documents were not stored: {e}"
        ));
    }
    let link = private_link(state, &reference).await;
    Ok((case, link))
}

/// The words of a form's refusal key; an upload over the limit names the limit.
pub(super) fn refusal_words(state: &AppState, tr: crate::i18n::Tr, key: &str) -> String {
    if key == "upload.too_large" {
        crate::hygiene::too_large(tr, state.config.documents.max_upload_bytes)
    } else {
        tr.t(key).to_owned()
    }
}
