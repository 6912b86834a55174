//! The endpoints of CONTRACT §5 that exist so far, one module per resource.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::AppState;

pub mod audit;
pub mod cases;
pub mod contact;
pub mod documents;
pub mod health;
pub mod inbound;
pub mod messages;
pub mod outbound;
pub mod permits;
pub mod remedy;
pub mod reports;
pub mod search;
pub mod ztl;

/// Every API route; `upload_limit` bounds multipart bodies.
pub fn routes(upload_limit: usize) -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/openapi.json", get(crate::openapi::openapi_json))
        .route(
            "/api/v1/cases",
            post(cases::create_case).get(cases::list_cases),
        )
        .route("/api/v1/cases/{reference}", get(cases::get_case))
        .route(
            "/api/v1/cases/{reference}/actions",
            post(cases::act_on_case),
        )
        .route(
            "/api/v1/cases/{reference}/fields",
            axum::routing::patch(cases::patch_fields),
        )
        .route(
            "/api/v1/cases/{reference}/documents",
            post(documents::upload_document).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/api/v1/cases/{reference}/evidence", get(remedy::evidence))
        .route("/api/v1/transits/contest", post(remedy::contest))
        .route("/api/v1/transits/checks", get(ztl::checks))
        .route(
            "/api/v1/cases/{reference}/cover-sheet",
            get(documents::cover_sheet),
        )
        .route(
            "/api/v1/cases/{reference}/messages",
            get(messages::case_messages).post(outbound::send_message),
        )
        .route(
            "/api/v1/cases/{reference}/messages/preview",
            post(outbound::preview_message),
        )
        .route(
            "/api/v1/cases/{reference}/outbound",
            get(outbound::case_outbound),
        )
        .route(
            "/api/v1/cases/{reference}/channels",
            get(outbound::case_channels),
        )
        .route(
            "/api/v1/cases/{reference}/contact",
            axum::routing::put(outbound::put_contact),
        )
        .route("/api/v1/outbound/{id}/pdf", get(outbound::outbound_pdf))
        .route("/api/v1/callbacks", get(contact::call_queue))
        .route("/api/v1/callbacks/{id}", post(contact::log_call))
        .route(
            "/api/v1/cases/{reference}/callbacks",
            post(contact::open_callback),
        )
        .route("/api/v1/appointments", get(contact::appointments_of_day))
        .route(
            "/api/v1/cases/{reference}/appointments",
            post(contact::propose_appointment).get(contact::case_appointments),
        )
        .route(
            "/api/v1/appointments/{id}/confirm",
            post(contact::confirm_appointment),
        )
        .route(
            "/api/v1/appointments/{id}/cancel",
            post(contact::cancel_appointment),
        )
        .route("/api/v1/messages/{id}/move", post(messages::move_message))
        .route("/api/v1/messages/{id}/split", post(messages::split_message))
        .route("/api/v1/search", get(search::search))
        .route("/api/v1/audit/security", get(audit::security_events))
        .route("/api/v1/audit/reads", get(audit::case_reads))
        .route("/api/v1/reports/throughput", get(reports::throughput))
        .route("/api/v1/reports/sla", get(reports::sla))
        .route("/permits/v/{token}", get(ztl::public_verification))
        .route("/api/v1/permits/verify", get(ztl::verify))
        .route("/api/v1/permits/{number}", get(permits::permit))
        .route(
            "/api/v1/permits/{number}/temporary-plates",
            post(permits::temporary_plate),
        )
        .route(
            "/api/v1/permits/{number}/status",
            post(permits::permit_status),
        )
        .route("/api/v1/permits/{number}/renew", post(permits::renew))
        .route("/api/v1/whitelist", get(ztl::whitelist))
        .route(
            "/api/v1/transits/check",
            post(ztl::check).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/api/v1/documents/{id}", get(documents::download_document))
        .route("/api/v1/documents/{id}/info", get(documents::document_info))
        .route("/api/v1/documents/{id}/view", get(documents::view_document))
        .route(
            "/api/v1/documents/{id}/text",
            get(documents::document_text).post(documents::retry_document_text),
        )
        .route(
            "/api/v1/inbound/whatsapp",
            get(inbound::whatsapp_handshake).post(inbound::whatsapp_notification),
        )
        .route("/api/v1/inbound/telegram", post(inbound::telegram_update))
        .route(
            "/api/v1/inbound/email",
            post(inbound::email_pipe).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/api/v1/inbound/phone", post(inbound::phone_event))
        .route("/api/v1/cti/lookup", get(inbound::cti_lookup))
}
