//! The citizen's record (`/ufficio/cittadini/{id}`): who they are, how to reach them and
//! the channel they prefer, every case of theirs whatever the channel, and the permits
//! issued on those cases. Reading it is audited like reading each case it shows.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use sportello_domain::roles::Permission;
use sportello_store::cases::{CaseFilter, CitizenRecord};

use super::case::NotFoundPage;
use super::citizen_path;
use super::{PageQuery, staff};
use crate::AppState;
use crate::i18n::Tr;
use crate::pages::{Frame, language, page, when};

/// One case of the citizen, in words.
struct CaseLine {
    reference: String,
    case_type: String,
    status: String,
    received: String,
}

/// One permit of the citizen: number, state, and each plate with its validity.
struct PermitLine {
    number: String,
    state: String,
    plates: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "office_citizen.html")]
struct CitizenPage {
    tr: Tr,
    frame: Frame,
    record: CitizenRecord,
    /// The preferred channel in words, when given.
    preferred: Option<String>,
    cases: Vec<CaseLine>,
    permits: Vec<PermitLine>,
    /// Appointments at the counter: (when, case, place, status in words, reason).
    appointments: Vec<(String, String, String, String, String)>,
    /// Messages received and sent, newest first (the latest [`MESSAGES_SHOWN`]).
    messages: Vec<MessageLine>,
    /// Call-backs, open ones first.
    calls: Vec<CallLine>,
}

/// How many of the citizen's messages the record shows (each case page has them all).
const MESSAGES_SHOWN: i64 = 50;

/// A message to or from the citizen, in words.
struct MessageLine {
    at: String,
    /// "Ricevuto" / "Inviato".
    direction: String,
    channel: String,
    case: String,
    subject: String,
    party: String,
    /// A sent message's delivery state, in words.
    state: String,
}

/// A call-back of one of the citizen's cases, in words.
struct CallLine {
    case: String,
    reason: String,
    status: String,
    due: String,
    /// The last call's outcome and note, in words.
    outcome: String,
}

pub(super) async fn citizen_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let here = format!("/ufficio/cittadini/{}", super::urlencode(&id));
    let session = match staff(&state, &headers, &here).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    if !session.user.role.can(Permission::ReadCase) {
        return Redirect::to("/ufficio/permessi").into_response();
    }
    let found = match id.parse::<i64>() {
        Ok(n) if n > 0 => state.store.citizen_record(n).await,
        _ => Ok(None),
    };
    let record = match found {
        Ok(Some(r)) => r,
        Ok(None) => {
            let page_ = NotFoundPage {
                frame: Frame::staff(&state, "cases", &session).with_language(&tr),
                tr,
            };
            return page(StatusCode::NOT_FOUND, &page_);
        }
        Err(_) => return crate::pages::temporarily_unavailable(),
    };
    // A read that cannot be audited is not answered: the record itself, and each case it
    // shows (so that the case's own trail names this read).
    let target = record
        .citizen
        .fiscal_code
        .clone()
        .unwrap_or_else(|| citizen_path(record.id));
    let audited = state
        .store
        .record_access(&session.user.login, "read_citizen", &target)
        .await
        .is_ok()
        && state
            .store
            .record_accesses(&session.user.login, "read_case", &record.references)
            .await
            .is_ok();
    if !audited {
        return crate::pages::temporarily_unavailable();
    }
    let cases = if record.references.is_empty() {
        Vec::new()
    } else {
        match state
            .store
            .list_cases(&CaseFilter {
                references: record.references.clone(),
                page: 1,
                per_page: 200,
                ..CaseFilter::default()
            })
            .await
        {
            Ok((mut items, _)) => {
                let at = |r: &str| record.references.iter().position(|x| x == r);
                items.sort_by_key(|c| at(&c.reference));
                items
                    .iter()
                    .map(|c| CaseLine {
                        reference: c.reference.clone(),
                        case_type: tr.name("case_type", &c.case_type),
                        status: tr.name("status", &c.status),
                        received: when(&c.received_at),
                    })
                    .collect()
            }
            Err(_) => return crate::pages::temporarily_unavailable(),
        }
    };
    let (Ok(numbers), Ok(booked), Ok(messages), Ok(calls)) = (
        state.store.permits_issued_to_citizen(record.id).await,
        state.store.appointments_of_citizen(record.id).await,
        state
            .store
            .citizen_messages(record.id, MESSAGES_SHOWN)
            .await,
        state.store.call_tasks_of_citizen(record.id).await,
    ) else {
        return crate::pages::temporarily_unavailable();
    };
    let mut permits = Vec::with_capacity(numbers.len());
    for number in &numbers {
        let Ok(permit) = state.store.permit(number).await else {
            return crate::pages::temporarily_unavailable();
        };
        permits.push(PermitLine {
            number: permit.number.clone(),
            state: tr.name("permit_state", &permit.state),
            plates: permit
                .plates
                .iter()
                .map(|p| (p.plate.clone(), ms_day(p.valid_from), ms_day(p.valid_to)))
                .collect(),
        });
    }
    let appointments = booked
        .into_iter()
        .map(|a| {
            (
                when(&a.starts_at),
                a.case,
                a.place,
                tr.name("appointment_status", &a.status),
                a.reason,
            )
        })
        .collect();
    let messages = messages
        .into_iter()
        .map(|m| MessageLine {
            at: when(&m.at),
            direction: tr.name("direction", m.direction),
            channel: tr.name("channel", &m.channel),
            state: m
                .state
                .as_deref()
                .map(|s| tr.name("outbound_status", s))
                .unwrap_or_default(),
            case: m.case,
            subject: m.subject,
            party: m.party,
        })
        .collect();
    let calls = calls
        .into_iter()
        .map(|c| CallLine {
            reason: tr.name("call_reason", &c.reason),
            status: tr.name("call_status", &c.status),
            due: when(&c.due_at),
            outcome: [
                c.outcome.as_deref().map(|o| tr.name("call_outcome", o)),
                c.note.clone().filter(|n| !n.trim().is_empty()),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": "),
            case: c.case,
        })
        .collect();
    let page_ = CitizenPage {
        messages,
        calls,
        appointments,
        preferred: record
            .preferred_channel
            .as_deref()
            .map(|c| tr.name("channel", c)),
        record,
        cases,
        permits,
        frame: Frame::staff(&state, "cases", &session).with_language(&tr),
        tr,
    };
    page(StatusCode::OK, &page_)
}

/// A stored instant (milliseconds) as the day it falls on in Rome.
fn ms_day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&sportello_domain::calendar::ROME)
                .format("%d/%m/%Y")
                .to_string()
        })
        .unwrap_or_default()
}
