//! Applying for a permit (`/domanda`): the form with the categories of the policy, and the case it opens.

use askama::Template;
use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use sportello_domain::fiscal_code::FiscalCode;
use sportello_domain::plate::Plate;

use super::form::{FormState, checked_form, refusal_words, register_web_case};
use super::{LangQuery, fiscal_code_error, portal_frame, with_cookies};
use crate::AppState;
use crate::i18n::Tr;
use crate::pages::{Frame, day, page};

/// A permit category as the application form offers it.
struct CategoryChoice {
    id: String,
    name: String,
    documents: Vec<String>,
    max_vehicles: u32,
}

#[derive(Template)]
#[template(path = "portal_apply.html")]
struct ApplyPage {
    tr: Tr,
    frame: Frame,
    categories: Vec<CategoryChoice>,
    document_kinds: Vec<String>,
    f: FormState,
    done: Option<(String, String, String)>,
}

fn apply_page(state: &AppState, tr: Tr, frame: Frame) -> ApplyPage {
    let categories: Vec<CategoryChoice> = state
        .policy
        .categories
        .iter()
        .map(|c| CategoryChoice {
            id: c.id.clone(),
            name: c.name.clone(),
            documents: c.documents.clone(),
            max_vehicles: c.max_vehicles,
        })
        .collect();
    let mut document_kinds: Vec<String> = categories
        .iter()
        .flat_map(|c| c.documents.iter().cloned())
        .collect();
    document_kinds.sort();
    document_kinds.dedup();
    ApplyPage {
        tr,
        frame,
        categories,
        document_kinds,
        f: FormState::default(),
        done: None,
    }
}

pub(super) async fn apply_form(
    State(state): State<AppState>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let (tr, frame, cookies) = portal_frame(&state, "apply", &query, &headers);
    with_cookies(
        page(StatusCode::OK, &apply_page(&state, tr, frame)),
        cookies,
    )
}

/// `POST /domanda`: checks the application field by field (category, holder and fiscal
/// code, plates, the category's documents, the privacy notice); a complete one becomes a
/// `web` case with its documents, registered, and the page shows its reference.
pub(super) async fn apply(
    State(state): State<AppState>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let (tr, frame, cookies) = portal_frame(&state, "apply", &query, &headers);
    let mut page_ = apply_page(&state, tr, frame);
    let form = match checked_form(&state, multipart, &page_.frame.csrf).await {
        Ok(form) => form,
        Err((status, key)) => {
            page_
                .f
                .errors
                .push(("form".into(), refusal_words(&state, tr, key)));
            return with_cookies(page(status, &page_), cookies);
        }
    };
    page_.f.keep(
        &form,
        &[
            "category",
            "name",
            "fiscal_code",
            "email",
            "phone",
            "plates",
        ],
    );
    let mut errors: Vec<(String, String)> = Vec::new();
    let category = state.policy.category(form.text("category"));
    if category.is_none() {
        errors.push(("category".into(), tr.t("apply.error.category").to_owned()));
    }
    let name = form.text("name").trim();
    if name.is_empty() || name.chars().count() > 200 {
        errors.push(("name".into(), tr.t("apply.error.name").to_owned()));
    }
    let fiscal_code = FiscalCode::parse(form.text("fiscal_code").trim());
    if let Err(e) = &fiscal_code {
        errors.push(("fiscal_code".into(), tr.t(fiscal_code_error(e)).to_owned()));
    }
    let email = form.text("email").trim();
    if !email.is_empty() && (!email.contains('@') || email.len() > 254) {
        errors.push(("email".into(), tr.t("apply.error.email").to_owned()));
    }
    let mut plates = Vec::new();
    for text in form
        .text("plates")
        .split([',', ';', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        match Plate::parse(text, None) {
            Ok(plate) => plates.push(plate.number),
            Err(_) => errors.push((
                "plates".into(),
                tr.f("apply.error.plate", &[("plate", text)]),
            )),
        }
    }
    if let Some(c) = category {
        if !c.admits_plates(plates.len()) {
            errors.push((
                "plates".into(),
                tr.f(
                    "apply.error.plates_count",
                    &[("max", &c.max_vehicles.to_string())],
                ),
            ));
        }
        for kind in &c.documents {
            if !form
                .files
                .iter()
                .any(|(field, _, _)| field == &format!("doc_{kind}"))
            {
                errors.push((
                    format!("doc_{kind}"),
                    tr.f(
                        "apply.error.document",
                        &[("document", &tr.name("document", kind))],
                    ),
                ));
            }
        }
    }
    if form.text("privacy") != "yes" {
        errors.push(("privacy".into(), tr.t("apply.error.privacy").to_owned()));
    }
    if !errors.is_empty() {
        page_.f.errors = errors;
        return with_cookies(page(StatusCode::UNPROCESSABLE_ENTITY, &page_), cookies);
    }
    let Some(category) = category else {
        return with_cookies(page(StatusCode::UNPROCESSABLE_ENTITY, &page_), cookies);
    };
    let documents: Vec<String> = category
        .documents
        .iter()
        .filter(|kind| {
            form.files
                .iter()
                .any(|(f, _, _)| f == &format!("doc_{kind}"))
        })
        .cloned()
        .collect();
    let request = sportello_app::cases::CaseRequest {
        case_type: Some(
            if category.person_bound {
                "cude"
            } else {
                "ztl_permit"
            }
            .into(),
        ),
        subject: Some(format!("Domanda di permesso ZTL: {}", category.name)),
        description: None,
        channel: Some("web".into()),
        citizen: Some(sportello_app::cases::CitizenRequest {
            fiscal_code: Some(form.text("fiscal_code").trim().to_owned()),
            name: Some(name.to_owned()),
            email: (!email.is_empty()).then(|| email.to_owned()),
            phone: Some(form.text("phone").trim().to_owned()).filter(|p| !p.is_empty()),
            ..Default::default()
        }),
        fields: Some(serde_json::json!({
            "category": category.id, "plates": plates, "documents": documents,
        })),
    };
    match register_web_case(&state, request, form.files).await {
        Ok((case, link)) => {
            let reference = case.summary.reference.clone();
            page_.done = Some((reference, day(&case.summary.due_at), link));
            with_cookies(page(StatusCode::CREATED, &page_), cookies)
        }
        Err(e) => {
            tracing::warn!(error = %e, "an application was refused");
            page_
                .f
                .errors
                .push(("form".into(), tr.t("form.failed").to_owned()));
            with_cookies(page(StatusCode::UNPROCESSABLE_ENTITY, &page_), cookies)
        }
    }
}

// ----- /contesta -----
