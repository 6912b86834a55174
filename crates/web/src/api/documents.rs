//! Documents: multipart upload (streamed to disk while hashed) and download.

use axum::Json;
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde::Serialize;
use sportello_domain::case::Reference;
use sportello_domain::roles::Permission;
use tokio_util::io::StreamReader;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::extract::ApiPath;

/// What an upload returns.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadedDocument {
    /// Document id.
    pub id: String,
    /// SHA-256 (hex).
    pub sha256: String,
    /// File name as given, cleaned.
    pub filename: String,
    /// Media type sniffed from the content.
    pub media_type: String,
    /// Size in bytes.
    pub size: i64,
}

/// The multipart form of an upload (for the OpenAPI description).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// `POST /api/v1/cases/{ref}/documents`: attaches the first file of a multipart form.
#[utoipa::path(post, path = "/api/v1/cases/{reference}/documents", tag = "documents",
    params(("reference" = String, Path, description = "Case reference")),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    security(("bearer" = [])),
    responses((status = 201, body = UploadedDocument), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem)))]
pub async fn upload_document(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(reference): ApiPath<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<UploadedDocument>), ApiError> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::BadRequest(format!(
            "send the file as multipart/form-data: {}",
            e.body_text()
        ))
    })?;
    let user = caller.require(Permission::UploadDocument)?;
    if Reference::parse(&reference).is_none() {
        return Err(ApiError::NotFound(format!(
            "'{}' is not a case reference",
            reference.chars().take(40).collect::<String>()
        )));
    }
    // Fail before reading the body when the case does not exist.
    state.store.get_case(&reference).await?;
    loop {
        let field = multipart.next_field().await.map_err(|e| {
            ApiError::BadRequest(format!("malformed multipart body: {}", e.body_text()))
        })?;
        let Some(field) = field else {
            return Err(ApiError::field("file", "the form has no file part"));
        };
        let Some(filename) = field.file_name().map(str::to_owned) else {
            continue;
        };
        let stream = StreamReader::new(field.map_err(std::io::Error::other));
        let Some(doc) = sportello_app::documents::store_upload(
            &state,
            &reference,
            stream,
            &filename,
            &user.login,
        )
        .await?
        else {
            return Err(ApiError::field("file", "the file is empty"));
        };
        return Ok((
            StatusCode::CREATED,
            Json(UploadedDocument {
                id: doc.id,
                sha256: doc.sha256,
                filename: doc.filename,
                media_type: doc.media_type,
                size: doc.size,
            }),
        ));
    }
}

/// `GET /api/v1/documents/{id}`: the bytes with their media type; the read is audited.
#[utoipa::path(get, path = "/api/v1/documents/{id}", tag = "documents",
    params(("id" = String, Path, description = "Document id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The document's bytes, with its own media type", content_type = "*/*"),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn download_document(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let user = caller.require(Permission::ReadDocument)?;
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::NotFound("no such document".into()));
    }
    let (doc, _case) = state.store.document(&id).await?;
    let stream = state.blobs.get_stream(&doc.sha256).await?;
    state
        .store
        .record_access(&user.login, "read_document", &id)
        .await?;
    let ascii_name: String = doc
        .filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!(
        "attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{}",
        percent_encode(&doc.filename)
    );
    Ok((
        [
            (header::CONTENT_TYPE, doc.media_type.clone()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
            (header::CONTENT_LENGTH, doc.size.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One page of a document's text.
#[derive(Debug, Serialize, ToSchema)]
pub struct TextPage {
    /// 1-based page number.
    pub page: i64,
    /// `text_layer` (the file's own text), `ocr`, `plain` or `message`.
    pub method: String,
    /// The text.
    pub text: String,
}

/// A document's text and where reading it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentText {
    /// Document id.
    pub id: String,
    /// `pending`, `running`, `done`, `none` or `failed`.
    pub status: String,
    /// Why reading failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The pages read so far (all of them once `done`).
    pub pages: Vec<TextPage>,
}

fn check_document_id(id: &str) -> Result<(), ApiError> {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::NotFound("no such document".into()));
    }
    Ok(())
}

/// `GET /api/v1/documents/{id}/text`: the text read from a document (its own text layer
/// or OCR), page by page, and whether reading it is pending, done or failed; audited.
#[utoipa::path(get, path = "/api/v1/documents/{id}/text", tag = "documents",
    params(("id" = String, Path, description = "Document id")),
    security(("bearer" = [])),
    responses((status = 200, body = DocumentText), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn document_text(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DocumentText>, ApiError> {
    let user = caller.require(Permission::ReadDocument)?;
    check_document_id(&id)?;
    let (doc, _case) = state.store.document(&id).await?;
    let pages = if doc.text_status == "done" {
        state
            .store
            .known_text(&doc.sha256)
            .await?
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    state
        .store
        .record_access(&user.login, "read_document_text", &id)
        .await?;
    Ok(Json(DocumentText {
        id: doc.id,
        status: doc.text_status,
        error: doc.text_error,
        pages: pages
            .into_iter()
            .map(|p| TextPage {
                page: p.page,
                method: p.method,
                text: p.text,
            })
            .collect(),
    }))
}

/// `POST /api/v1/documents/{id}/text`: reads the document again (after a failure, or a
/// poor OCR); journaled on its case. Answers 202: the reading happens in the background.
#[utoipa::path(post, path = "/api/v1/documents/{id}/text", tag = "documents",
    params(("id" = String, Path, description = "Document id")),
    security(("bearer" = [])),
    responses((status = 202, body = DocumentText), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn retry_document_text(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<DocumentText>), ApiError> {
    let user = caller.require(Permission::ActOnCase)?;
    check_document_id(&id)?;
    state.store.retry_text(&id, &user.login).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DocumentText {
            id,
            status: "pending".into(),
            error: None,
            pages: Vec::new(),
        }),
    ))
}

/// `GET /api/v1/cases/{ref}/cover-sheet`: the PDF cover sheet of a case, with the QR code
/// the scanner folder recognises, to lay on top of the case's papers before scanning.
#[utoipa::path(get, path = "/api/v1/cases/{reference}/cover-sheet", tag = "documents",
    params(("reference" = String, Path, description = "Case reference")),
    security(("bearer" = [])),
    responses((status = 200, description = "The cover sheet", content_type = "application/pdf"),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn cover_sheet(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(reference): ApiPath<String>,
) -> Result<Response, ApiError> {
    let user = caller.require(Permission::ReadCase)?;
    if Reference::parse(&reference).is_none() {
        return Err(ApiError::NotFound(format!(
            "'{}' is not a case reference",
            reference.chars().take(40).collect::<String>()
        )));
    }
    let case = state.store.get_case(&reference).await?;
    let type_name = state
        .store
        .case_type(&case.summary.case_type)
        .map_or_else(|| case.summary.case_type.clone(), |t| t.name.clone());
    let now = state.store.clock().now();
    let printed_at = sportello_store::cases::rome_rfc3339(now);
    let printed_at = chrono::DateTime::parse_from_rfc3339(&printed_at)
        .map_or(printed_at, |t| t.format("%d/%m/%Y %H:%M").to_string());
    let pdf = sportello_paper::cover_sheet_pdf(&sportello_paper::CoverSheet {
        reference: &case.summary.reference,
        case_type: &type_name,
        subject: &case.summary.subject,
        printed_at: &printed_at,
    });
    state
        .store
        .record_access(&user.login, "print_cover_sheet", &reference)
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "inline; filename=\"copertina-{}.pdf\"",
                    case.summary.reference
                ),
            ),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        pdf,
    )
        .into_response())
}

/// A protocol register entry naming a document.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProtocolEntry {
    /// Protocol number.
    pub number: String,
    /// When it was registered (RFC 3339, Europe/Rome).
    pub registered_at: String,
    /// `in` or `out`.
    pub direction: String,
    /// Sender or addressee.
    pub correspondent: String,
    /// Subject.
    pub subject: String,
    /// The SHA-256 the entry registers.
    pub document_sha256: String,
}

/// What staff see about a document beside its view.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentInfo {
    /// The document.
    #[serde(flatten)]
    pub document: sportello_store::documents::DocumentView,
    /// Its case.
    pub case: Option<String>,
    /// The protocol entries naming it (its own bytes, or the message it came with).
    pub protocol: Vec<ProtocolEntry>,
    /// Where to view it in the browser.
    pub view_url: String,
    /// Where to download the original.
    pub download_url: String,
}

/// `GET /api/v1/documents/{id}/info`: hash, size, type, case, text status and the
/// protocol entries of a document; audited.
#[utoipa::path(get, path = "/api/v1/documents/{id}/info", tag = "documents",
    params(("id" = String, Path, description = "Document id")),
    security(("bearer" = [])),
    responses((status = 200, body = DocumentInfo), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn document_info(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DocumentInfo>, ApiError> {
    let user = caller.require(Permission::ReadDocument)?;
    check_document_id(&id)?;
    let (doc, case) = state.store.document(&id).await?;
    let protocol = state
        .store
        .register_entries_of_document(&id, &doc.sha256)
        .await?
        .into_iter()
        .map(|(e, _)| ProtocolEntry {
            number: e.number.to_string(),
            registered_at: sportello_store::cases::rome_rfc3339(e.registered_at),
            direction: e.direction.as_str().to_owned(),
            correspondent: e.correspondent,
            subject: e.subject,
            document_sha256: e.document_sha256,
        })
        .collect();
    state
        .store
        .record_access(&user.login, "read_document_info", &id)
        .await?;
    Ok(Json(DocumentInfo {
        view_url: format!("/api/v1/documents/{id}/view"),
        download_url: format!("/api/v1/documents/{id}"),
        document: doc,
        case,
        protocol,
    }))
}

/// Media types a browser shows inline without running anything of the document's.
const INLINE_TYPES: &[&str] = &[
    "application/pdf",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
];

/// `GET /api/v1/documents/{id}/view`: the document in a form a browser shows inline: PDF
/// and common images as they are, TIFF (scans, faxes) converted to PDF; anything else is
/// a 303 to its download. Served sandboxed, never sniffed; audited.
#[utoipa::path(get, path = "/api/v1/documents/{id}/view", tag = "documents",
    params(("id" = String, Path, description = "Document id")),
    security(("bearer" = [])),
    responses((status = 200, description = "PDF or image, inline"),
              (status = 303, description = "Not shown inline: the download, in `Location`"),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn view_document(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let user = caller.require(Permission::ReadDocument)?;
    check_document_id(&id)?;
    let (doc, _case) = state.store.document(&id).await?;
    let inline_headers = |media_type: &str, length: Option<u64>| {
        let mut headers = vec![
            (header::CONTENT_TYPE, media_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename*=UTF-8''{}", percent_encode(&doc.filename)),
            ),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'; img-src 'self'; object-src 'self'".to_owned(),
            ),
        ];
        if let Some(n) = length {
            headers.push((header::CONTENT_LENGTH, n.to_string()));
        }
        headers
    };
    let response = if INLINE_TYPES.contains(&doc.media_type.as_str()) {
        let stream = state.blobs.get_stream(&doc.sha256).await?;
        let headers = inline_headers(&doc.media_type, Some(doc.size as u64));
        let mut response = Body::from_stream(stream).into_response();
        for (name, value) in headers {
            if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    } else if doc.media_type == "image/tiff" {
        let pdf = tiff_to_pdf(&state, &doc.sha256).await?;
        let headers = inline_headers("application/pdf", Some(pdf.len() as u64));
        let mut response = Body::from(pdf).into_response();
        for (name, value) in headers {
            if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    } else {
        // Not something a browser shows safely inline: send the reader to the download.
        return Ok((
            StatusCode::SEE_OTHER,
            [(header::LOCATION, format!("/api/v1/documents/{id}"))],
        )
            .into_response());
    };
    state
        .store
        .record_access(&user.login, "view_document", &id)
        .await?;
    Ok(response)
}

/// A TIFF (every page) as a PDF, with libtiff's `tiff2pdf`, which keeps fax compression
/// as it is, so the PDF is about the size of the TIFF.
async fn tiff_to_pdf(state: &AppState, sha256: &str) -> Result<Vec<u8>, ApiError> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let dir =
        tempfile::tempdir().map_err(|e| ApiError::Internal(format!("temporary folder: {e}")))?;
    let input = dir.path().join("document.tif");
    let output = dir.path().join("document.pdf");
    let mut file = tokio::fs::File::create(&input)
        .await
        .map_err(|e| ApiError::Internal(format!("temporary file: {e}")))?;
    let mut stream = state.blobs.get_stream(sha256).await?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::Internal(format!("document content: {e}")))?;
        file.write_all(&chunk)
            .await
            .map_err(|e| ApiError::Internal(format!("temporary file: {e}")))?;
    }
    file.flush()
        .await
        .map_err(|e| ApiError::Internal(format!("temporary file: {e}")))?;
    let run = tokio::process::Command::new("tiff2pdf")
        .arg("-o")
        .arg(&output)
        .arg(&input)
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(std::time::Duration::from_secs(60), run).await {
        Ok(Ok(out)) if out.status.success() => tokio::fs::read(&output)
            .await
            .map_err(|e| ApiError::Internal(format!("converted file: {e}"))),
        Ok(Ok(out)) => Err(ApiError::UnsupportedMediaType(format!(
            "this TIFF cannot be converted for the browser ({}): download it",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
        ))),
        Ok(Err(e)) => Err(ApiError::Internal(format!(
            "tiff2pdf (libtiff-tools) is not available: {e}"
        ))),
        Err(_) => Err(ApiError::Internal(
            "converting the TIFF took too long".into(),
        )),
    }
}
