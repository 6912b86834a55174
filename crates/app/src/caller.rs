//! The telephone at hand: who is calling (the CTI screen pop and the office's call page
//! share one look-up), and a call logged on a case's timeline by the operator who took it.

use serde::Serialize;
use sportello_store::cases::{CaseFilter, CitizenView};
use utoipa::ToSchema;

use crate::validate::check_text;
use crate::{App, AppError, FieldError};

/// The screen pop for an incoming call.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallerCard {
    /// The citizen known by that number.
    pub citizen: CitizenView,
    /// Their open cases, newest first.
    pub open_cases: Vec<String>,
    /// What each open case waits for (the first ten): what the operator says on the phone.
    pub waiting: Vec<CaseWaiting>,
}

/// An open case on the screen pop: its state and what the office waits for.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseWaiting {
    /// The case.
    pub reference: String,
    /// Its status.
    pub status: String,
    /// The legal due date.
    pub due_at: String,
    /// The documents asked in the last integration request, or the reasons of an
    /// art. 10-bis notice, while the case waits on the citizen.
    pub waiting_for: Vec<String>,
    /// An open call-back task of the case, if any.
    pub call_task: Option<i64>,
}

/// How many open cases the screen pop details (the rest are listed by reference).
const DETAILED: usize = 10;

/// Checks a calling number as the PBX or the operator gives it: no control characters,
/// six digits at least (the look-up matches on the last nine).
pub fn check_number(number: &str) -> Result<(), AppError> {
    check_text("number", number, false).map_err(|e| AppError::Invalid(vec![e]))?;
    if number.chars().filter(char::is_ascii_digit).count() < 6 {
        return Err(AppError::Invalid(vec![FieldError::new(
            "number",
            "needs at least 6 digits",
        )]));
    }
    Ok(())
}

/// The screen pop of `number` read by `login` (audited when someone is found): the CTI
/// look-up and the office's call page (`/ufficio/chiamata`) share it. `Ok(None)`: nobody
/// has that number; `Invalid` when it is not a number.
pub async fn caller_card(
    app: &App,
    login: &str,
    number: &str,
) -> Result<Option<CallerCard>, AppError> {
    check_number(number)?;
    let Some((citizen, open_cases)) = app.store.lookup_caller(number).await? else {
        return Ok(None);
    };
    app.store.record_access(login, "cti_lookup", number).await?;
    // The first open cases: their clocks in one read, what each waits for in another.
    let shown: Vec<String> = open_cases.iter().take(DETAILED).cloned().collect();
    let (summaries, _) = app
        .store
        .list_cases(&CaseFilter {
            references: shown.clone(),
            page: 1,
            per_page: DETAILED as u32,
            ..Default::default()
        })
        .await?;
    let mut asked = app.store.cases_waiting(&shown).await?;
    let waiting = shown
        .iter()
        .filter_map(|reference| summaries.iter().find(|c| &c.reference == reference))
        .map(|case| {
            let (waiting_for, call_task) = asked.remove(&case.reference).unwrap_or_default();
            CaseWaiting {
                reference: case.reference.clone(),
                status: case.status.clone(),
                due_at: case.due_at.clone(),
                waiting_for,
                call_task,
            }
        })
        .collect();
    Ok(Some(CallerCard {
        citizen,
        open_cases,
        waiting,
    }))
}

/// Logs on `reference`'s timeline a call the operator `login` took from `number` (the
/// office's call page, one click): the same `call` event the PBX's `POST /inbound/phone`
/// writes, with who answered and when, and the operator's note if any. The citizen who
/// called has been reached: the case's open call-back, if any, is done (outcome `reached`,
/// the same note), in the same transaction. Returns that call-back's id.
pub async fn log_incoming_call(
    app: &App,
    login: &str,
    reference: &str,
    number: &str,
    note: Option<&str>,
) -> Result<Option<i64>, AppError> {
    check_number(number)?;
    crate::validate::check_reference(reference)?;
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    if let Some(n) = note {
        check_text("note", n, true).map_err(|e| AppError::Invalid(vec![e]))?;
        if n.chars().count() > 2000 {
            return Err(AppError::Invalid(vec![FieldError::new(
                "note",
                "is longer than 2000 characters",
            )]));
        }
    }
    let now = app.store.clock().now();
    let detail = serde_json::json!({
        "direction": "in",
        "from": number,
        "to": "",
        "started_at": now.to_rfc3339(),
        "operator": login,
        "note": note,
        "logged_from": "call_page",
    });
    Ok(app
        .store
        .record_incoming_call(reference, login, &detail, note)
        .await?)
}
