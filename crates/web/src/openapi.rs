//! `/api/openapi.json`, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::{
    cases, contact, documents, health, inbound, messages, outbound, permits, remedy, reports,
    search, ztl,
};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Sportello API", description = "Case desk of a city permit office (CONTRACT §5)."),
    paths(
        health::healthz,
        health::metrics,
        cases::create_case,
        cases::list_cases,
        cases::get_case,
        cases::act_on_case,
        cases::patch_fields,
        messages::case_messages,
        messages::move_message,
        messages::split_message,
        outbound::send_message,
        outbound::preview_message,
        outbound::case_outbound,
        outbound::case_channels,
        outbound::outbound_pdf,
        outbound::put_contact,
        contact::call_queue,
        contact::log_call,
        contact::open_callback,
        contact::appointments_of_day,
        contact::propose_appointment,
        contact::case_appointments,
        contact::confirm_appointment,
        contact::cancel_appointment,
        documents::upload_document,
        documents::download_document,
        documents::document_text,
        documents::cover_sheet,
        documents::document_info,
        documents::view_document,
        documents::retry_document_text,
        search::search,
        reports::throughput,
        reports::sla,
        ztl::verify,
        permits::permit,
        permits::temporary_plate,
        permits::permit_status,
        permits::renew,
        remedy::evidence,
        remedy::contest,
        ztl::whitelist,
        ztl::check,
        ztl::checks,
        inbound::whatsapp_handshake,
        inbound::whatsapp_notification,
        inbound::telegram_update,
        inbound::email_pipe,
        inbound::phone_event,
        inbound::cti_lookup,
    ),
    components(schemas(crate::error::Problem, crate::error::FieldError)),
    modifiers(&BearerAuth),
    tags((name = "cases", description = "Cases (pratiche) and their workflow"),
         (name = "messages", description = "Writing to the citizen on their channel"),
         (name = "documents", description = "Documents attached to cases"),
         (name = "ztl", description = "Permits, whitelist and transits, for the municipal police"),
         (name = "inbound", description = "Messages and calls arriving from the channels"),
         (name = "reports", description = "The office's measurements: throughput, lead times, terms met"),
         (name = "system", description = "Health and metrics"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /api/openapi.json`.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
