//! The contact centre and the counter: citizens without e-mail prefer the phone. The
//! call-back queue (calls to make, each logged with its outcome on the case's timeline)
//! and appointments at the counter (proposed, confirmed, cancelled; the counter's day).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use sportello_domain::calendar::{ROME, rome_date};
use sportello_domain::outbound::choice::OutChannel;
use sportello_domain::refusal::Refusal;
use sportello_store::contact::{AppointmentView, CALL_OUTCOMES, CallTaskView};

use crate::validate::{check_reference, only_text, text};
use crate::{App, AppError, FieldError};

/// The script of a call-back an operator asks for without saying more.
pub const DEFAULT_SCRIPT: &str = "Richiamare il cittadino";

/// An appointment at the counter to propose, as given.
#[derive(Debug, Clone, Default)]
pub struct AppointmentRequest {
    /// When: RFC 3339, or a Rome local time (`2026-12-01T10:30`).
    pub starts_at: String,
    /// Where; "Sportello, {office}" when absent.
    pub place: Option<String>,
    /// Why the citizen must come, and what to bring.
    pub reason: String,
    /// Tell the citizen of the proposal (default `true`): on `channel`, else on their
    /// default channel, else — when the office can only phone them — with a call-back.
    pub notify: Option<bool>,
    /// How to tell the citizen (an outbound channel or `call`); their default when absent.
    pub channel: Option<String>,
}

/// A call made, as logged.
#[derive(Debug, Clone, Default)]
pub struct CallLog {
    /// `reached`, `not_reached` (the task stays open, due again the next working day at
    /// 9:00) or `appointment`.
    pub outcome: String,
    /// What was said.
    pub note: Option<String>,
    /// The telephone system's id of the call.
    pub call_id: Option<String>,
    /// The appointment agreed (only with outcome `appointment`).
    pub appointment: Option<AppointmentRequest>,
}

/// A call logged: the task, and the appointment proposed with it.
#[derive(Debug)]
pub struct LoggedCall {
    /// The task as it is now.
    pub task: CallTaskView,
    /// The appointment proposed with the call, if any.
    pub appointment: Option<AppointmentView>,
}

/// An operator asks for the citizen of `reference` to be called (`note` the script, a
/// default one when blank); refused when the case already has a call to make.
pub async fn open_callback(
    app: &App,
    reference: &str,
    note: Option<&str>,
    actor: &str,
) -> Result<CallTaskView, AppError> {
    check_reference(reference)?;
    let note = only_text("note", note, 2000, true)?;
    let script = note.as_deref().unwrap_or(DEFAULT_SCRIPT);
    match app
        .store
        .open_call_task(reference, "operator", None, script, actor)
        .await?
    {
        Some(task) => Ok(task),
        None => Err(AppError::Refused(
            Refusal::new("refusal.call_open").with("case", reference),
        )),
    }
}

/// An instant given as RFC 3339, or as a Rome local date and time (`YYYY-MM-DDTHH:MM`,
/// seconds optional, `T` or a space).
pub fn parse_instant(value: &str) -> Result<DateTime<Utc>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("is required: a date and time such as 2026-12-01T10:30:00+01:00".into());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(value, f).ok())
    .ok_or_else(|| {
        format!(
            "'{}' is not a date and time: use RFC 3339, e.g. 2026-12-01T10:30:00+01:00",
            value.chars().take(40).collect::<String>()
        )
    })?;
    local
        .and_local_timezone(ROME)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| "that time does not exist in Rome (the clocks moved)".into())
}

/// An appointment's values, checked: (when, where, why).
fn appointment_values(
    app: &App,
    prefix: &str,
    body: &AppointmentRequest,
    errors: &mut Vec<FieldError>,
) -> Option<(DateTime<Utc>, String, String)> {
    let field = |name: &str| format!("{prefix}{name}");
    let now = app.store.clock().now();
    let starts_at = match parse_instant(&body.starts_at) {
        Ok(t) if t <= now => {
            errors.push(FieldError {
                field: field("starts_at"),
                message: "is in the past: an appointment must be later than now".into(),
            });
            None
        }
        Ok(t) => Some(t),
        Err(message) => {
            errors.push(FieldError {
                field: field("starts_at"),
                message,
            });
            None
        }
    };
    let reason = text(&field("reason"), Some(&body.reason), 500, true, errors);
    if body.reason.trim().is_empty() {
        errors.push(FieldError {
            field: field("reason"),
            message: "is required: say why the citizen must come and what to bring".into(),
        });
    }
    let place = match text(&field("place"), body.place.as_deref(), 200, false, errors) {
        Some(place) => place,
        None => default_place(app),
    };
    Some((starts_at?, place, reason?))
}

/// The counter, as the office's name says it.
pub fn default_place(app: &App) -> String {
    let office = app.config.office.name.trim();
    if office.is_empty() {
        "Sportello".to_owned()
    } else {
        format!("Sportello, {office}")
    }
}

/// Logs a call for `actor` (the pages' buttons use it too): the outcome, and with
/// `appointment` the appointment proposed in the same change.
pub async fn log_call(
    app: &App,
    actor: &str,
    id: i64,
    body: CallLog,
) -> Result<LoggedCall, AppError> {
    let mut errors = Vec::new();
    let outcome = body.outcome.trim();
    if !CALL_OUTCOMES.contains(&outcome) {
        errors.push(FieldError {
            field: "outcome".into(),
            message: "must be reached, not_reached or appointment".into(),
        });
    }
    let note = text("note", body.note.as_deref(), 2000, true, &mut errors);
    let call_id = text("call_id", body.call_id.as_deref(), 200, false, &mut errors);
    let appointment = match &body.appointment {
        Some(_) if outcome != "appointment" => {
            errors.push(FieldError {
                field: "appointment".into(),
                message: "comes only with outcome 'appointment'".into(),
            });
            None
        }
        Some(a) if a.channel.as_deref().is_some_and(|c| !c.trim().is_empty()) => {
            errors.push(FieldError {
                field: "appointment.channel".into(),
                message: "an appointment agreed on the phone is not written to the citizen".into(),
            });
            None
        }
        Some(a) => appointment_values(app, "appointment.", a, &mut errors),
        None => None,
    };
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let (task, appointment) = match appointment {
        Some((starts_at, place, reason)) => {
            let (task, appointment) = app
                .store
                .log_call_with_appointment(
                    id,
                    note.as_deref(),
                    call_id.as_deref(),
                    starts_at,
                    &place,
                    &reason,
                    actor,
                )
                .await?;
            (task, Some(appointment))
        }
        None => (
            app.store
                .log_call(id, outcome, note.as_deref(), call_id.as_deref(), actor)
                .await?,
            None,
        ),
    };
    Ok(LoggedCall { task, appointment })
}

/// Confirms an appointment for `actor` (the pages use it too).
pub async fn confirm_appointment(
    app: &App,
    actor: &str,
    id: i64,
    via: Option<&str>,
) -> Result<AppointmentView, AppError> {
    let via = via
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or("phone");
    if via.len() > 30 || !via.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(AppError::field(
            "via",
            "must be a channel name such as phone, counter or email",
        ));
    }
    Ok(app.store.confirm_appointment(id, via, actor).await?)
}

/// Cancels an appointment for `actor` (the pages use it too).
pub async fn cancel_appointment(
    app: &App,
    actor: &str,
    id: i64,
    note: Option<&str>,
) -> Result<AppointmentView, AppError> {
    let note = only_text("note", note, 2000, true)?;
    Ok(app
        .store
        .cancel_appointment(id, note.as_deref(), actor)
        .await?)
}

/// A `YYYY-MM-DD` day, or today in Rome when absent.
pub fn day_or_today(app: &App, day: Option<&str>) -> Result<NaiveDate, AppError> {
    match day.filter(|d| !d.is_empty()) {
        None => Ok(rome_date(app.store.clock().now())),
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| AppError::field("day", "must be a date as YYYY-MM-DD")),
    }
}

/// Proposes an appointment for `actor` (the case page's form uses it too) and tells the
/// citizen: everything is checked first — the time, the reason and, when one is asked,
/// that the citizen has an address for the channel — so that a refusal proposes nothing.
pub async fn propose_appointment(
    app: &App,
    actor: &str,
    reference: &str,
    body: &AppointmentRequest,
) -> Result<AppointmentView, AppError> {
    check_reference(reference)?;
    let mut errors = Vec::new();
    let values = appointment_values(app, "", body, &mut errors);
    let notify = body.notify.unwrap_or(true);
    let channel = match body.channel.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(_) if !notify => {
            errors.push(FieldError {
                field: "channel".into(),
                message: "comes only when the citizen is told (notify)".into(),
            });
            None
        }
        Some(name) => match OutChannel::parse(name) {
            Some(channel) => Some(channel),
            None => {
                errors.push(FieldError {
                    field: "channel".into(),
                    message: "one of email, pec, fax, sms, letter, whatsapp, telegram, call".into(),
                });
                None
            }
        },
    };
    let Some((starts_at, place, reason)) = values.filter(|_| errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    if let Some(channel) = channel {
        let case = app.store.get_case(reference).await?;
        let reach = crate::outbound::reach(app, &case).await?;
        if reach.choice.option(channel).is_none_or(|o| o.to.is_none()) {
            return Err(AppError::field(
                "channel",
                format!("no {} address is known for this citizen", channel.as_str()),
            ));
        }
    }
    let appointment = app
        .store
        .propose_appointment(reference, starts_at, &place, &reason, actor)
        .await?;
    // The appointment stands: a message that cannot be written is logged, not an error
    // (a retry would propose a second appointment).
    if notify && let Err(e) = tell_citizen(app, actor, &appointment, channel).await {
        tracing::warn!(%reference, error = %e, "appointment not told to the citizen");
    }
    Ok(appointment)
}

/// Tells the citizen of a proposed appointment like every other message: on `channel`
/// when asked, else on their default channel; a citizen the office can only phone (or
/// `channel` `call`) gets a call-back whose script says when, where and why.
async fn tell_citizen(
    app: &App,
    actor: &str,
    appointment: &AppointmentView,
    channel: Option<OutChannel>,
) -> Result<(), AppError> {
    use crate::outbound::{Written, write_occasion};
    use sportello_domain::outbound::templates::TemplateKind;
    let reference = appointment.case.as_str();
    let (phone, reason) = match channel {
        Some(OutChannel::Call) => {
            let case = app.store.get_case(reference).await?;
            (case.citizen.phone, "operator")
        }
        _ => {
            let written = write_occasion(
                app,
                reference,
                TemplateKind::Appointment,
                &format!("appointment:{}", appointment.id),
                actor,
                Some(appointment.id),
                channel,
            )
            .await?;
            match written {
                Written::Queued => return Ok(()),
                Written::Unreachable(case) => (case.citizen.phone, "no_digital_contact"),
            }
        }
    };
    let Some(phone) = phone.filter(|p| !p.trim().is_empty()) else {
        tracing::info!(%reference, "the citizen has no channel and no telephone: the appointment is not told");
        return Ok(());
    };
    let when = DateTime::parse_from_rfc3339(&appointment.starts_at)
        .map(|t| {
            t.with_timezone(&ROME)
                .format("%d/%m/%Y, ore %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| appointment.starts_at.clone());
    let script = format!(
        "Pratica {reference}: comunicare l'appuntamento allo sportello del {when}, {}.\nMotivo: {}",
        appointment.place, appointment.reason
    );
    let opened = app
        .store
        .open_call_task(reference, reason, Some(&phone), &script, actor)
        .await?;
    if opened.is_none() {
        tracing::info!(%reference, "a call-back is already open: the appointment is told with it");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_read_as_rfc3339_or_rome_local_time() {
        let utc = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            parse_instant("2026-12-01T10:30:00+01:00"),
            Ok(utc("2026-12-01T09:30:00Z"))
        );
        assert_eq!(
            parse_instant(" 2026-12-01T10:30 "),
            Ok(utc("2026-12-01T09:30:00Z"))
        );
        assert_eq!(
            parse_instant("2026-07-01 10:30:15"),
            Ok(utc("2026-07-01T08:30:15Z")),
            "summer time"
        );
        assert!(parse_instant("").is_err());
        assert!(parse_instant("domani alle 10").is_err());
        assert!(parse_instant("2026-13-01T10:30").is_err());
        // 02:30 on the last Sunday of March does not exist in Rome.
        assert!(parse_instant("2026-03-29T02:30").is_err());
    }
}
