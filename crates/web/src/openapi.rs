//! `/api/openapi.json`, generated from the handlers' annotations.

use axum::Json;
use axum::extract::State;
use sportello_domain::case::{Channel, Status};
use sportello_domain::workflow::Action;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;
use crate::vocabulary::{
    ActionName, CaseStatus, CaseTypeId, CategoryId, ChannelName, Flag, GateId, InstantOrDate,
    MailboxName, OptionalDate, TextLines,
};

use crate::api::{
    audit, cases, contact, documents, health, inbound, messages, outbound, permits, remedy,
    reports, search, ztl,
};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Sportello API", description = "Case desk of a city permit office (CONTRACT §5)."),
    paths(
        health::healthz,
        health::readyz,
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
        audit::security_events,
        audit::case_reads,
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
    components(schemas(crate::error::Problem, crate::error::FieldError, CaseTypeId, CategoryId,
        GateId, CaseStatus, ChannelName, ActionName, TextLines, InstantOrDate, OptionalDate, Flag, MailboxName)),
    modifiers(&BearerAuth, &ErrorResponses),
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

/// Every operation lists the errors it can answer, each as `application/problem+json`
/// (RFC 9457) with the [`Problem`](crate::error::Problem) schema, so that a generated client
/// knows them: which ones follow from the operation's shape (a token, a path parameter, a
/// body, a query) is decided here once instead of in 50 annotations.
struct ErrorResponses;

const PROBLEM_MEDIA_TYPE: &str = "application/problem+json";

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        for (path, item) in openapi.paths.paths.iter_mut() {
            let webhook = path.starts_with("/api/v1/inbound/")
                && !path.ends_with("/email")
                && !path.ends_with("/phone");
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                let signed = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let params = operation.parameters.as_deref().unwrap_or_default();
                let has_path = params.iter().any(|p| p.parameter_in == ParameterIn::Path);
                let has_query = params.iter().any(|p| p.parameter_in == ParameterIn::Query);
                let has_body = operation.request_body.is_some();
                let mut statuses: Vec<(&str, &str)> = Vec::new();
                if signed {
                    statuses.push(("401", "No valid API token or session"));
                    statuses.push(("403", "The caller's role does not allow it"));
                    statuses.push((
                        "429",
                        "Too many failed attempts from this client: wait and retry",
                    ));
                }
                if webhook {
                    statuses.push(("401", "The delivery's signature or secret is wrong"));
                    statuses.push(("403", "This channel is not configured"));
                }
                if has_path {
                    statuses.push(("404", "No such resource"));
                }
                if has_body {
                    statuses.push(("400", "The body cannot be read"));
                    statuses.push(("413", "The body is larger than the limit"));
                    statuses.push(("415", "The body's media type is not the one documented"));
                    statuses.push(("422", "A field's value is refused; `errors` names it"));
                }
                if has_query {
                    statuses.push(("400", "The query string cannot be read"));
                    statuses.push(("422", "A parameter's value is refused; `errors` names it"));
                }
                if path != "/healthz" && path != "/readyz" && path != "/metrics" {
                    statuses.push(("503", "A dependency (database, storage) is not available"));
                }
                let responses = &mut operation.responses.responses;
                for (status, description) in statuses {
                    responses.entry(status.to_owned()).or_insert_with(|| {
                        utoipa::openapi::RefOr::T(utoipa::openapi::Response::new(description))
                    });
                }
                for (status, response) in responses.iter_mut() {
                    let is_error = status.starts_with('4') || status.starts_with('5');
                    if let (true, utoipa::openapi::RefOr::T(response)) = (is_error, response) {
                        response.content.shift_remove("application/json");
                        response.content.insert(
                            PROBLEM_MEDIA_TYPE.to_owned(),
                            utoipa::openapi::ContentBuilder::new()
                                .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
                                .build(),
                        );
                    }
                }
            }
        }
    }
}

/// `GET /api/openapi.json`: the static description, with this office's vocabularies
/// filled in (its case types, the policy's categories and gates), so that a client — or a
/// test generator — knows exactly which values the server accepts.
pub async fn openapi_json(State(state): State<AppState>) -> Json<serde_json::Value> {
    let mut doc = ApiDoc::openapi();
    let case_types = state
        .store
        .settings()
        .case_types
        .iter()
        .map(|t| t.id.clone());
    let categories = state.policy.categories.iter().map(|c| c.id.clone());
    let gates = state
        .policy
        .zones
        .iter()
        .flat_map(|z| z.gates.iter().cloned());
    let statuses = Status::ALL.iter().map(|s| s.as_str().to_owned());
    let channels = Channel::ALL.iter().map(|c| c.as_str().to_owned());
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, description, values) in [
        (
            "CaseTypeId",
            "A case type of this office",
            case_types.collect::<Vec<_>>(),
        ),
        (
            "CategoryId",
            "A permit category of the policy in force",
            categories.collect(),
        ),
        ("GateId", "A gate of the policy in force", gates.collect()),
        (
            "CaseStatus",
            "A case's status (CONTRACT §7.2)",
            statuses.collect(),
        ),
        (
            "ChannelName",
            "A channel a message comes or goes by",
            channels.collect(),
        ),
        (
            "MailboxName",
            "A `[[mailbox]]` of the configuration (empty: a plain e-mail)",
            state
                .config
                .mailbox
                .iter()
                .map(|m| m.name.clone())
                .chain([String::new()])
                .collect(),
        ),
        (
            "Flag",
            "Yes (`true`, `1`) or no (`false`, `0`, empty)",
            ["true", "false", "1", "0", ""].map(String::from).to_vec(),
        ),
        (
            "ActionName",
            "A workflow action (CONTRACT §7.2); whether it is allowed now depends on the case",
            Action::NAMES.iter().map(|a| (*a).to_owned()).collect(),
        ),
    ] {
        components
            .schemas
            .insert(name.to_owned(), vocabulary(description, values));
    }
    components.schemas.insert(
        "InstantOrDate".to_owned(),
        any_of(
            "An RFC 3339 instant, or a date meaning its local midnight (empty: not given)",
            &[
                (utoipa::openapi::KnownFormat::DateTime, INSTANT),
                (utoipa::openapi::KnownFormat::Date, DATE),
            ],
        ),
    );
    components.schemas.insert(
        "OptionalDate".to_owned(),
        any_of(
            "A date, YYYY-MM-DD (empty: not given)",
            &[(utoipa::openapi::KnownFormat::Date, DATE)],
        ),
    );
    components.schemas.insert(
        "TextLines".to_owned(),
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "Text of one or more lines: no control characters but tabs and line breaks",
            ))
            .pattern(Some(TEXT_LINES))
            .into(),
    );
    let mut value = serde_json::to_value(&doc).unwrap_or_default();
    finish(&mut value);
    Json(value)
}

/// What the server's text check allows in a multi-line text (`sportello_app::validate::check_text`).
const TEXT_LINES: &str = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$";

/// The shape the server parses for an instant (`chrono`'s RFC 3339) and a date: stated as
/// patterns as well as formats, so that a generator never takes an empty or partial text
/// for one.
const INSTANT: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$";
const DATE: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$";

/// A query value that is one of `formats` (each with its pattern), or empty (a form's
/// blank field, taken as "not given").
fn any_of(
    description: &str,
    formats: &[(utoipa::openapi::KnownFormat, &str)],
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    let mut any = utoipa::openapi::schema::AnyOfBuilder::new().description(Some(description));
    for (format, pattern) in formats {
        any = any.item(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::String)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    format.clone(),
                )))
                .pattern(Some(*pattern)),
        );
    }
    any.item(
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .max_length(Some(0)),
    )
    .into()
}

/// What the annotations cannot say, said on the document itself: every date and instant
/// gets the pattern of its format ([`INSTANT`], [`DATE`]); the MTA pipe takes raw bytes;
/// `PATCH …/fields` takes field names of a given shape; `PUT …/contact` needs an address
/// or a preferred channel.
fn finish(value: &mut serde_json::Value) {
    add_format_patterns(value);
    if let Some(content) =
        value.pointer_mut("/paths/~1api~1v1~1inbound~1email/post/requestBody/content")
    {
        // The raw message as the MTA hands it over; any media type is read as bytes.
        let raw =
            serde_json::json!({"schema": {"type": "string", "format": "binary", "minLength": 1}});
        *content = serde_json::json!({"message/rfc822": raw, "application/octet-stream": raw});
    }
    if let Some(patch) = value.pointer_mut(
        "/paths/~1api~1v1~1cases~1{reference}~1fields/patch/requestBody/content/application~1json/schema",
    ) {
        *patch = serde_json::json!({
            "type": "object",
            "maxProperties": 50,
            "propertyNames": {"pattern": "^[A-Za-z0-9_-]{1,64}$"},
            "description": "Merge patch of the fields: a name set to null is removed"
        });
    }
    if let Some(contact) = value.pointer_mut("/components/schemas/ContactBody") {
        contact["anyOf"] = serde_json::json!([
            {"required": ["address"], "properties": {"address": {"type": "string", "pattern": r"\S"}}},
            {"required": ["preferred_channel"], "properties": {"preferred_channel": {"type": "string", "minLength": 1}}}
        ]);
    }
}

/// Adds the pattern of `date-time` and `date` wherever a string schema names that format.
fn add_format_patterns(node: &mut serde_json::Value) {
    match node {
        serde_json::Value::Object(map) => {
            let pattern = match map.get("format").and_then(|f| f.as_str()) {
                Some("date-time") => Some(INSTANT),
                Some("date") => Some(DATE),
                _ => None,
            };
            if let Some(pattern) = pattern
                && !map.contains_key("pattern")
            {
                map.insert("pattern".into(), pattern.into());
            }
            for child in map.values_mut() {
                add_format_patterns(child);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(add_format_patterns),
        _ => {}
    }
}

/// A string schema allowing exactly `values`.
fn vocabulary(
    description: &str,
    values: Vec<String>,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some(description))
        .enum_values(Some(values))
        .into()
}

#[cfg(test)]
mod optional_bodies {
    use utoipa::OpenApi;

    /// Handlers reading their body with `optional_body` declare it `Option<…>`, so the
    /// document says a client may leave it out.
    #[test]
    fn bodies_read_as_optional_are_documented_as_not_required() {
        let doc = serde_json::to_value(super::ApiDoc::openapi()).unwrap();
        for path in [
            "/paths/~1api~1v1~1appointments~1{id}~1confirm/post/requestBody",
            "/paths/~1api~1v1~1appointments~1{id}~1cancel/post/requestBody",
            "/paths/~1api~1v1~1cases~1{reference}~1callbacks/post/requestBody",
        ] {
            let body = doc.pointer(path).unwrap_or_else(|| panic!("{path}"));
            assert_ne!(
                body.get("required"),
                Some(&serde_json::Value::Bool(true)),
                "{path}: {body}"
            );
        }
        let create = doc
            .pointer("/paths/~1api~1v1~1cases/post/requestBody/required")
            .cloned();
        assert_eq!(
            create,
            Some(serde_json::Value::Bool(true)),
            "a required body stays required"
        );
    }
}
