//! The contact centre and the counter. Citizens without e-mail prefer the
//! phone: the office keeps a queue of calls to make (the citizen has no digital contact,
//! has not answered a request, or an operator asked for it), each call logged with its
//! outcome on the case's timeline; and when the citizen's presence is indispensable, an
//! appointment at the counter, proposed, confirmed or cancelled, listed by Rome day.
//!
//! Rules: a case has at most one open call task (a unique index guards it too); a call
//! not answered keeps the task open, due again the next working day at 9:00 in Rome; a
//! task once done takes no further outcome; an appointment is never set in the past, and
//! once cancelled or held it is not confirmed again.

use chrono::{DateTime, Days, Duration, NaiveDate, Utc};
use serde::Serialize;
use sportello_domain::calendar::{rome_date, rome_start_of_day};
use sportello_domain::refusal::Refusal;
use sqlx::{Any, Transaction};

use crate::journal::{insert_event, touch_case};
use crate::time::rome_rfc3339;
use crate::{
    Result, Store, StoreError, date_text, from_ms, get_i64, get_opt_i64, get_opt_str, get_str,
    to_ms,
};

/// Why a call task is opened: the citizen has no e-mail, PEC, fax or chat to write to
/// (`no_digital_contact`), has not answered what the office asked (`no_answer`), or an
/// operator wants them called (`operator`).
pub const CALL_REASONS: &[&str] = &["no_digital_contact", "no_answer", "operator"];

/// What a call can end with: the citizen was `reached`, was `not_reached` (the task stays
/// open for another attempt), or an `appointment` at the counter was agreed.
pub const CALL_OUTCOMES: &[&str] = &["reached", "not_reached", "appointment"];

/// The hour (Rome) at which a call not answered is due again, on the next working day.
const RETRY_HOUR: i64 = 9;

/// A call to make, as the contact centre sees it: who, which number, why and what to say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CallTaskView {
    /// Its id (the API's `/callbacks/{id}`).
    pub id: i64,
    /// The case's reference.
    pub case: String,
    /// The case's status now (is it still waiting on the citizen?).
    pub case_status: String,
    /// The citizen's name, to greet them.
    pub citizen_name: Option<String>,
    /// The number to call (the task's, else the citizen's).
    pub phone: Option<String>,
    /// `no_digital_contact`, `no_answer` or `operator`.
    pub reason: String,
    /// What to tell the citizen (what is missing, what to bring).
    pub script: String,
    /// `open` or `done`.
    pub status: String,
    /// The last call's outcome: `reached`, `not_reached` or `appointment`.
    pub outcome: Option<String>,
    /// The last call's note.
    pub note: Option<String>,
    /// The telephone system's id of the last call.
    pub call_id: Option<String>,
    /// Calls made so far.
    pub attempts: i64,
    /// When it was opened (RFC 3339, Rome offset).
    pub created_at: String,
    /// When to call (next).
    pub due_at: String,
    /// When it was done.
    pub done_at: Option<String>,
    /// Who closed it.
    pub done_by: Option<String>,
}

/// An appointment at the counter, with what the counter needs to know of the case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AppointmentView {
    /// Its id (the API's `/appointments/{id}`).
    pub id: i64,
    /// The case's reference.
    pub case: String,
    /// The case's status now.
    pub case_status: String,
    /// The citizen expected.
    pub citizen_name: Option<String>,
    /// When (RFC 3339, Rome offset).
    pub starts_at: String,
    /// Where (the counter).
    pub place: String,
    /// Why the citizen must come (what to bring).
    pub reason: String,
    /// `proposed`, `confirmed`, `cancelled` or `done`.
    pub status: String,
    /// Who proposed it.
    pub created_by: String,
    /// When the citizen confirmed it.
    pub confirmed_at: Option<String>,
    /// How the confirmation came (`phone`, `counter`, `email`…).
    pub confirmed_via: Option<String>,
    /// The case's flags: none means the case is ready for the citizen's visit.
    pub case_flags: Vec<String>,
}

const TASK_COLUMNS: &str = "t.id, c.reference, c.status AS case_status, z.name AS citizen_name, \
     COALESCE(t.phone, z.phone) AS phone, t.reason, t.script, t.status, t.outcome, t.note, t.call_id, \
     t.attempts, t.created_at, t.due_at, t.done_at, t.done_by";

const TASK_FROM: &str =
    "call_tasks t JOIN cases c ON c.id = t.case_id LEFT JOIN citizens z ON z.id = c.citizen_id";

const APPOINTMENT_COLUMNS: &str = "a.id, c.reference, c.status AS case_status, c.flags, \
     z.name AS citizen_name, a.starts_at, a.place, a.reason, a.status, a.created_by, a.confirmed_at, \
     a.confirmed_via";

const APPOINTMENT_FROM: &str =
    "appointments a JOIN cases c ON c.id = a.case_id LEFT JOIN citizens z ON z.id = c.citizen_id";

fn time(row: &sqlx::any::AnyRow, col: &str) -> Result<String> {
    Ok(rome_rfc3339(from_ms(get_i64(row, col)?)?))
}

fn opt_time(row: &sqlx::any::AnyRow, col: &str) -> Result<Option<String>> {
    get_opt_i64(row, col)?
        .map(|ms| from_ms(ms).map(rome_rfc3339))
        .transpose()
}

fn task_of(row: &sqlx::any::AnyRow) -> Result<CallTaskView> {
    Ok(CallTaskView {
        id: get_i64(row, "id")?,
        case: get_str(row, "reference")?,
        case_status: get_str(row, "case_status")?,
        citizen_name: get_opt_str(row, "citizen_name")?,
        phone: get_opt_str(row, "phone")?,
        reason: get_str(row, "reason")?,
        script: get_str(row, "script")?,
        status: get_str(row, "status")?,
        outcome: get_opt_str(row, "outcome")?,
        note: get_opt_str(row, "note")?,
        call_id: get_opt_str(row, "call_id")?,
        attempts: get_i64(row, "attempts")?,
        created_at: time(row, "created_at")?,
        due_at: time(row, "due_at")?,
        done_at: opt_time(row, "done_at")?,
        done_by: get_opt_str(row, "done_by")?,
    })
}

fn appointment_of(row: &sqlx::any::AnyRow) -> Result<AppointmentView> {
    Ok(AppointmentView {
        id: get_i64(row, "id")?,
        case: get_str(row, "reference")?,
        case_status: get_str(row, "case_status")?,
        citizen_name: get_opt_str(row, "citizen_name")?,
        starts_at: time(row, "starts_at")?,
        place: get_str(row, "place")?,
        reason: get_str(row, "reason")?,
        status: get_str(row, "status")?,
        created_by: get_str(row, "created_by")?,
        confirmed_at: opt_time(row, "confirmed_at")?,
        confirmed_via: get_opt_str(row, "confirmed_via")?,
        case_flags: serde_json::from_str(&get_str(row, "flags")?).unwrap_or_default(),
    })
}

/// A trimmed optional text, `None` when blank.
fn given(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// An appointment to set, checked before anything is written.
struct NewAppointment<'a> {
    starts_at: DateTime<Utc>,
    place: &'a str,
    reason: &'a str,
}

impl<'a> NewAppointment<'a> {
    fn check(
        starts_at: DateTime<Utc>,
        place: &'a str,
        reason: &'a str,
        now: DateTime<Utc>,
    ) -> Result<NewAppointment<'a>> {
        if starts_at <= now {
            return Err(StoreError::invalid(
                "starts_at",
                "is in the past: an appointment must be later than now",
            ));
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(StoreError::invalid(
                "reason",
                "is empty: say why the citizen must come and what to bring",
            ));
        }
        let place = place.trim();
        if place.is_empty() {
            return Err(StoreError::invalid("place", "is empty"));
        }
        Ok(NewAppointment {
            starts_at,
            place,
            reason,
        })
    }
}

/// Sets the appointment on the locked case `case_id` inside `tx`, journaled; its id.
async fn propose_in(
    tx: &mut Transaction<'static, Any>,
    case_id: i64,
    new: &NewAppointment<'_>,
    now: DateTime<Utc>,
    actor: &str,
) -> Result<i64> {
    let row = sqlx::query(
        "INSERT INTO appointments (case_id, starts_at, place, reason, status, created_at, created_by) \
         VALUES ($1, $2, $3, $4, 'proposed', $5, $6) RETURNING id",
    )
    .bind(case_id)
    .bind(to_ms(new.starts_at))
    .bind(new.place)
    .bind(new.reason)
    .bind(to_ms(now))
    .bind(actor)
    .fetch_one(&mut **tx)
    .await?;
    let id = get_i64(&row, "id")?;
    let detail = serde_json::json!({
        "appointment_id": id,
        "starts_at": rome_rfc3339(new.starts_at),
        "place": new.place,
        "reason": new.reason,
    });
    insert_event(tx, case_id, now, actor, "appointment_proposed", &detail).await?;
    Ok(id)
}

/// Locks the case of the call task or appointment `id` (its version moves on, its last
/// event is now) before the row itself, in the same order as every other write on a case;
/// the case's id. `table` is `call_tasks` or `appointments`; `what` names the row in a 404.
async fn lock_case_of(
    tx: &mut Transaction<'static, Any>,
    table: &'static str,
    what: &str,
    id: i64,
    now: DateTime<Utc>,
) -> Result<i64> {
    let sql = format!(
        "UPDATE cases SET version = version + 1, last_event_at = $1 \
         WHERE id = (SELECT case_id FROM {table} WHERE id = $2) RETURNING id"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(to_ms(now))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("{what} {id}")))?;
    get_i64(&row, "id")
}

/// The open call tasks, due first: the partial index `call_tasks_queue` gives the order.
fn queue_sql() -> String {
    format!(
        "SELECT {TASK_COLUMNS} FROM {TASK_FROM} WHERE t.status = 'open' \
         ORDER BY t.due_at, t.id LIMIT $1 OFFSET $2"
    )
}

/// One Rome day of appointments, by time, from the index `appointments_day`.
fn day_sql() -> String {
    format!(
        "SELECT {APPOINTMENT_COLUMNS} FROM {APPOINTMENT_FROM} \
         WHERE a.starts_at >= $1 AND a.starts_at < $2 ORDER BY a.starts_at, a.id"
    )
}

/// The cases waiting on a silent citizen with a phone: the open pauses (their index
/// `case_pauses_open`), each case's last workflow action (the journal's index, backwards),
/// no task open (`call_tasks_open`) nor opened since the pause (every opening is
/// journaled, so the journal's index answers) — one query, whatever the number of cases.
/// What a waiting case's last action asked of the citizen (its journal detail): the
/// documents missing, or the reasons of an art. 10-bis notice.
fn asked_of(detail: Option<&str>) -> Vec<String> {
    let detail: serde_json::Value = detail
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default();
    let key = match detail.get("action").and_then(|a| a.as_str()) {
        Some("notify_rejection") => "reasons",
        _ => "missing",
    };
    detail
        .get(key)
        .and_then(|m| m.as_array())
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

impl Store {
    /// What each of these cases waits for from the citizen (the documents asked, or the
    /// reasons of an art. 10-bis notice, while it waits on them) and its open call-back
    /// task, in one read: `reference → (waiting_for, call_task)` (the screen pop of a call).
    pub async fn cases_waiting(
        &self,
        references: &[String],
    ) -> Result<std::collections::HashMap<String, (Vec<String>, Option<i64>)>> {
        let mut found = std::collections::HashMap::new();
        if references.is_empty() {
            return Ok(found);
        }
        let placeholders = (1..=references.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT c.reference, c.status, \
             (SELECT e.detail FROM case_events e WHERE e.case_id = c.id AND e.kind = 'action' \
              ORDER BY e.id DESC LIMIT 1) AS detail, \
             (SELECT t.id FROM call_tasks t WHERE t.case_id = c.id AND t.status = 'open') AS call_task \
             FROM cases c WHERE c.reference IN ({placeholders})"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for reference in references {
            query = query.bind(reference);
        }
        for row in query.fetch_all(&self.read).await? {
            let waits = matches!(
                get_str(&row, "status")?.as_str(),
                "waiting_citizen" | "rejection_notice"
            );
            let waiting_for = if waits {
                asked_of(get_opt_str(&row, "detail")?.as_deref())
            } else {
                Vec::new()
            };
            found.insert(
                get_str(&row, "reference")?,
                (waiting_for, get_opt_i64(&row, "call_task")?),
            );
        }
        Ok(found)
    }
}

const WITHOUT_ANSWER_SQL: &str = "SELECT c.reference, z.phone, \
             (SELECT e.detail FROM case_events e WHERE e.case_id = c.id AND e.kind = 'action' \
              ORDER BY e.id DESC LIMIT 1) AS detail \
             FROM case_pauses p JOIN cases c ON c.id = p.case_id JOIN citizens z ON z.id = c.citizen_id \
             WHERE p.ended_on IS NULL AND p.started_on <= $1 \
             AND c.status IN ('waiting_citizen', 'rejection_notice') \
             AND z.phone IS NOT NULL AND z.phone <> '' \
             AND NOT EXISTS (SELECT 1 FROM call_tasks t WHERE t.case_id = c.id AND t.status = 'open') \
             AND NOT EXISTS (SELECT 1 FROM case_events o WHERE o.case_id = c.id \
                             AND o.kind = 'call_task_opened' AND o.at >= p.started_at) \
             ORDER BY p.started_on, c.id";

impl Store {
    /// Opens a call task unless the case has one open; Ok(None) when one was open already.
    /// Journals `call_task_opened`. Without a `phone` the citizen's number is taken.
    pub async fn open_call_task(
        &self,
        reference: &str,
        reason: &str,
        phone: Option<&str>,
        script: &str,
        actor: &str,
    ) -> Result<Option<CallTaskView>> {
        if !CALL_REASONS.contains(&reason) {
            return Err(StoreError::invalid(
                "reason",
                "must be no_digital_contact, no_answer or operator",
            ));
        }
        let script = script.trim();
        if script.is_empty() {
            return Err(StoreError::invalid(
                "script",
                "is empty: say what to tell the citizen",
            ));
        }
        let now = self.clock.now();
        let mut tx = self.write.begin().await?;
        let case_id = touch_case(&mut tx, reference, now).await?;
        let open = sqlx::query("SELECT id FROM call_tasks WHERE case_id = $1 AND status = 'open'")
            .bind(case_id)
            .fetch_optional(&mut *tx)
            .await?;
        if open.is_some() {
            // Nothing changes: the version bump is rolled back with the transaction.
            drop(tx);
            return Ok(None);
        }
        let phone = match given(phone) {
            Some(p) => Some(p.to_owned()),
            None => sqlx::query(
                "SELECT z.phone FROM cases c JOIN citizens z ON z.id = c.citizen_id WHERE c.id = $1",
            )
            .bind(case_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| get_opt_str(&row, "phone"))
            .transpose()?
            .flatten()
            .filter(|p| !p.trim().is_empty()),
        };
        let row = sqlx::query(
            "INSERT INTO call_tasks (case_id, reason, phone, script, status, attempts, created_at, due_at) \
             VALUES ($1, $2, $3, $4, 'open', 0, $5, $5) RETURNING id",
        )
        .bind(case_id)
        .bind(reason)
        .bind(phone.as_deref())
        .bind(script)
        .bind(to_ms(now))
        .fetch_one(&mut *tx)
        .await?;
        let id = get_i64(&row, "id")?;
        let detail = serde_json::json!({
            "call_task_id": id,
            "reason": reason,
            "phone": phone,
            "script": script,
        });
        insert_event(&mut tx, case_id, now, actor, "call_task_opened", &detail).await?;
        tx.commit().await?;
        Ok(Some(self.call_task(id).await?))
    }

    /// The open call tasks, due first (limit/offset), and their count.
    pub async fn call_queue(&self, limit: i64, offset: i64) -> Result<(Vec<CallTaskView>, i64)> {
        let items = sqlx::query(sqlx::AssertSqlSafe(queue_sql()))
            .bind(limit.clamp(0, 1000))
            .bind(offset.max(0))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(task_of)
            .collect::<Result<Vec<_>>>()?;
        let row = sqlx::query("SELECT COUNT(*) AS n FROM call_tasks WHERE status = 'open'")
            .fetch_one(&self.read)
            .await?;
        Ok((items, get_i64(&row, "n")?))
    }

    /// Every call-back of a citizen's cases, open ones first, then the newest: the
    /// citizen's record shows what is still to be called and what was.
    pub async fn call_tasks_of_citizen(&self, citizen_id: i64) -> Result<Vec<CallTaskView>> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM {TASK_FROM} WHERE c.citizen_id = $1 \
             ORDER BY CASE WHEN t.status = 'open' THEN 0 ELSE 1 END, t.created_at DESC, t.id DESC"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(citizen_id)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(task_of)
            .collect()
    }

    /// One call task.
    pub async fn call_task(&self, id: i64) -> Result<CallTaskView> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM {TASK_FROM} WHERE t.id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.write)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("call task {id}")))?;
        task_of(&row)
    }

    /// When a call not answered now is due again: the next working day at 9:00 in Rome.
    pub fn next_call_due(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut day = rome_date(now);
        // A year of holidays in a row cannot happen; the bound only keeps the loop finite.
        for _ in 0..366 {
            day = day.checked_add_days(Days::new(1)).unwrap_or(day);
            if self.settings.calendar.is_working_day(day) {
                break;
            }
        }
        rome_start_of_day(day) + Duration::hours(RETRY_HOUR)
    }

    /// Logs a call's outcome: `reached` → done; `not_reached` → stays open, attempts+1,
    /// due again the next working day at 9:00 Rome; `appointment` → done (the appointment
    /// itself is proposed separately, or with [`Store::log_call_with_appointment`]).
    /// Journals `call_logged` with outcome, note and call id. An unknown outcome is
    /// invalid; a task already done refuses (`refusal.call_done`).
    pub async fn log_call(
        &self,
        id: i64,
        outcome: &str,
        note: Option<&str>,
        call_id: Option<&str>,
        actor: &str,
    ) -> Result<CallTaskView> {
        check_outcome(outcome)?;
        let now = self.clock.now();
        let mut tx = self.write.begin().await?;
        self.log_call_in(&mut tx, id, outcome, note, call_id, actor, now)
            .await?;
        tx.commit().await?;
        self.call_task(id).await
    }

    /// A call the office took from the citizen of `reference`, logged by `actor` (the
    /// office's call page): the `call` event and, the citizen being reached, the case's open
    /// call-back done as `reached` with the same note, in one transaction. The id of the
    /// call-back it closed, if any.
    pub async fn record_incoming_call(
        &self,
        reference: &str,
        actor: &str,
        detail: &serde_json::Value,
        note: Option<&str>,
    ) -> Result<Option<i64>> {
        let now = self.clock.now();
        let mut tx = self.write.begin().await?;
        let case_id = touch_case(&mut tx, reference, now).await?;
        insert_event(&mut tx, case_id, now, actor, "call", detail).await?;
        let open = sqlx::query("SELECT id FROM call_tasks WHERE case_id = $1 AND status = 'open'")
            .bind(case_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| get_i64(&row, "id"))
            .transpose()?;
        if let Some(id) = open {
            self.log_call_in(&mut tx, id, "reached", note, None, actor, now)
                .await?;
        }
        tx.commit().await?;
        Ok(open)
    }

    /// A call that ended with an appointment at the counter: the task is done and the
    /// appointment proposed, in one transaction (nothing is written if either is refused).
    #[allow(clippy::too_many_arguments)]
    pub async fn log_call_with_appointment(
        &self,
        id: i64,
        note: Option<&str>,
        call_id: Option<&str>,
        starts_at: DateTime<Utc>,
        place: &str,
        reason: &str,
        actor: &str,
    ) -> Result<(CallTaskView, AppointmentView)> {
        let now = self.clock.now();
        let new = NewAppointment::check(starts_at, place, reason, now)?;
        let mut tx = self.write.begin().await?;
        let case_id = self
            .log_call_in(&mut tx, id, "appointment", note, call_id, actor, now)
            .await?;
        let appointment = propose_in(&mut tx, case_id, &new, now, actor).await?;
        tx.commit().await?;
        Ok((
            self.call_task(id).await?,
            self.appointment(appointment).await?,
        ))
    }

    /// [`Store::log_call`] inside `tx`; the case's id.
    #[allow(clippy::too_many_arguments)]
    async fn log_call_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: i64,
        outcome: &str,
        note: Option<&str>,
        call_id: Option<&str>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        check_outcome(outcome)?;
        let (note, call_id) = (given(note), given(call_id));
        let case_id = lock_case_of(tx, "call_tasks", "call task", id, now).await?;
        let again = (outcome == "not_reached").then(|| self.next_call_due(now));
        let row = match again {
            Some(due) => sqlx::query(
                "UPDATE call_tasks SET attempts = attempts + 1, outcome = $1, note = $2, call_id = $3, \
                 due_at = $4 WHERE id = $5 AND status = 'open' RETURNING attempts",
            )
            .bind(outcome)
            .bind(note)
            .bind(call_id)
            .bind(to_ms(due))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?,
            None => sqlx::query(
                "UPDATE call_tasks SET status = 'done', attempts = attempts + 1, outcome = $1, note = $2, \
                 call_id = $3, done_at = $4, done_by = $5 WHERE id = $6 AND status = 'open' RETURNING attempts",
            )
            .bind(outcome)
            .bind(note)
            .bind(call_id)
            .bind(to_ms(now))
            .bind(actor)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?,
        };
        let Some(row) = row else {
            return Err(StoreError::Refused(
                Refusal::new("refusal.call_done").with("id", id),
            ));
        };
        let mut detail = serde_json::json!({
            "call_task_id": id,
            "outcome": outcome,
            "note": note,
            "call_id": call_id,
            "attempts": get_i64(&row, "attempts")?,
        });
        if let Some(due) = again {
            detail["due_at"] = rome_rfc3339(due).into();
        }
        insert_event(tx, case_id, now, actor, "call_logged", &detail).await?;
        Ok(case_id)
    }

    /// Cases waiting on the citizen (status `waiting_citizen` or `rejection_notice`) whose
    /// pause started at least `days` days ago, whose citizen has a phone, and which have
    /// had no call task since the pause started (nor have one open): (reference, phone,
    /// what is missing — the pausing request's `missing`, or the notice's `reasons`).
    pub async fn cases_without_answer(
        &self,
        days: i64,
    ) -> Result<Vec<(String, String, Vec<String>)>> {
        let today = rome_date(self.clock.now());
        let since = today
            .checked_sub_days(Days::new(u64::try_from(days.max(0)).unwrap_or(0)))
            .unwrap_or(today);
        let rows = sqlx::query(WITHOUT_ANSWER_SQL)
            .bind(date_text(since))
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|row| {
                let missing = asked_of(get_opt_str(row, "detail")?.as_deref());
                Ok((
                    get_str(row, "reference")?,
                    get_str(row, "phone")?.trim().to_owned(),
                    missing,
                ))
            })
            .collect()
    }

    /// Proposes an appointment at the counter to the case's citizen, journaled
    /// (`appointment_proposed`); a time not later than now, an empty reason or place are
    /// invalid.
    pub async fn propose_appointment(
        &self,
        reference: &str,
        starts_at: DateTime<Utc>,
        place: &str,
        reason: &str,
        actor: &str,
    ) -> Result<AppointmentView> {
        let now = self.clock.now();
        let new = NewAppointment::check(starts_at, place, reason, now)?;
        let mut tx = self.write.begin().await?;
        let case_id = touch_case(&mut tx, reference, now).await?;
        let id = propose_in(&mut tx, case_id, &new, now, actor).await?;
        tx.commit().await?;
        self.appointment(id).await
    }

    /// One appointment.
    pub async fn appointment(&self, id: i64) -> Result<AppointmentView> {
        let sql = format!("SELECT {APPOINTMENT_COLUMNS} FROM {APPOINTMENT_FROM} WHERE a.id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.write)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("appointment {id}")))?;
        appointment_of(&row)
    }

    /// The citizen confirmed the appointment (`via` says how): proposed → confirmed,
    /// journaled (`appointment_confirmed`); confirming again changes nothing; a cancelled
    /// or held appointment refuses (`refusal.appointment_closed`).
    pub async fn confirm_appointment(
        &self,
        id: i64,
        via: &str,
        actor: &str,
    ) -> Result<AppointmentView> {
        let via = via.trim();
        if via.is_empty() {
            return Err(StoreError::invalid(
                "via",
                "is empty: say how the citizen confirmed",
            ));
        }
        let now = self.clock.now();
        let update = sqlx::query(
            "UPDATE appointments SET status = 'confirmed', confirmed_at = $1, confirmed_via = $2 WHERE id = $3",
        )
        .bind(to_ms(now))
        .bind(via)
        .bind(id);
        let change = Transition {
            from: &["proposed"],
            to: "confirmed",
            kind: "appointment_confirmed",
            journal_from: false,
            detail: serde_json::json!({ "via": via }),
        };
        self.move_appointment(id, change, update, now, actor).await
    }

    /// Cancels a proposed or confirmed appointment, journaled (`appointment_cancelled`,
    /// with the note); cancelling again changes nothing; a held one refuses.
    pub async fn cancel_appointment(
        &self,
        id: i64,
        note: Option<&str>,
        actor: &str,
    ) -> Result<AppointmentView> {
        let note = given(note);
        let update =
            sqlx::query("UPDATE appointments SET status = 'cancelled' WHERE id = $1").bind(id);
        let change = Transition {
            from: &["proposed", "confirmed"],
            to: "cancelled",
            kind: "appointment_cancelled",
            journal_from: true,
            detail: serde_json::json!({ "note": note }),
        };
        self.move_appointment(id, change, update, self.clock.now(), actor)
            .await
    }

    /// Moves appointment `id` along `change` with `update` (its `UPDATE`), journaled with
    /// the appointment's id and time, the status it came `from` and the change's detail;
    /// the target status again changes nothing; any other status refuses as closed.
    async fn move_appointment(
        &self,
        id: i64,
        change: Transition,
        update: sqlx::query::Query<'_, Any, sqlx::any::AnyArguments>,
        now: DateTime<Utc>,
        actor: &str,
    ) -> Result<AppointmentView> {
        let mut tx = self.write.begin().await?;
        let case_id = lock_case_of(&mut tx, "appointments", "appointment", id, now).await?;
        let row = sqlx::query("SELECT status, starts_at FROM appointments WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let status = get_str(&row, "status")?;
        if status == change.to {
            drop(tx);
            return self.appointment(id).await;
        }
        if !change.from.contains(&status.as_str()) {
            return Err(closed(id, status));
        }
        update.execute(&mut *tx).await?;
        let mut detail = serde_json::json!({
            "appointment_id": id,
            "starts_at": rome_rfc3339(from_ms(get_i64(&row, "starts_at")?)?),
        });
        if change.journal_from {
            detail["from"] = status.into();
        }
        if let (Some(all), Some(extra)) = (detail.as_object_mut(), change.detail.as_object()) {
            all.extend(extra.clone());
        }
        insert_event(&mut tx, case_id, now, actor, change.kind, &detail).await?;
        tx.commit().await?;
        self.appointment(id).await
    }

    /// The day's appointments (Rome day), by time, with the case's status and flags (is
    /// the case ready?); cancelled ones included, so the counter knows who will not come.
    pub async fn appointments_on(&self, day: NaiveDate) -> Result<Vec<AppointmentView>> {
        let start = rome_start_of_day(day);
        let end = day
            .checked_add_days(Days::new(1))
            .map_or(start + Duration::days(1), rome_start_of_day);
        sqlx::query(sqlx::AssertSqlSafe(day_sql()))
            .bind(to_ms(start))
            .bind(to_ms(end))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(appointment_of)
            .collect()
    }

    /// A case's appointments, by time (every status).
    pub async fn appointments_of_case(&self, reference: &str) -> Result<Vec<AppointmentView>> {
        let sql = format!(
            "SELECT {APPOINTMENT_COLUMNS} FROM {APPOINTMENT_FROM} \
             WHERE c.reference = $1 ORDER BY a.starts_at, a.id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(reference)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(appointment_of)
            .collect()
    }

    /// Every appointment of a citizen's cases, by time (every status): one query for the
    /// citizen's record rather than one per case.
    pub async fn appointments_of_citizen(&self, citizen_id: i64) -> Result<Vec<AppointmentView>> {
        let sql = format!(
            "SELECT {APPOINTMENT_COLUMNS} FROM {APPOINTMENT_FROM} \
             WHERE c.citizen_id = $1 ORDER BY a.starts_at, a.id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(citizen_id)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(appointment_of)
            .collect()
    }

    /// The case's next proposed or confirmed appointment from now: (starts_at, place) —
    /// used by the message templates. `None` also for a reference that is no case.
    pub async fn next_appointment_of_case(
        &self,
        reference: &str,
    ) -> Result<Option<(DateTime<Utc>, String)>> {
        let row = sqlx::query(
            "SELECT a.starts_at, a.place FROM appointments a JOIN cases c ON c.id = a.case_id \
             WHERE c.reference = $1 AND a.status IN ('proposed', 'confirmed') AND a.starts_at >= $2 \
             ORDER BY a.starts_at, a.id LIMIT 1",
        )
        .bind(reference)
        .bind(to_ms(self.clock.now()))
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| Ok((from_ms(get_i64(&r, "starts_at")?)?, get_str(&r, "place")?)))
            .transpose()
    }
}

fn check_outcome(outcome: &str) -> Result<()> {
    if CALL_OUTCOMES.contains(&outcome) {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "outcome",
            "must be reached, not_reached or appointment",
        ))
    }
}

/// A change of an appointment's status: from which statuses, to which, the journal's kind
/// and what the journal adds to the appointment's id and time.
struct Transition {
    from: &'static [&'static str],
    to: &'static str,
    kind: &'static str,
    /// Whether the journal says the status it came from.
    journal_from: bool,
    detail: serde_json::Value,
}

/// The refusal of a change to an appointment that is over (cancelled or held).
fn closed(id: i64, status: String) -> StoreError {
    StoreError::Refused(
        Refusal::new("refusal.appointment_closed")
            .with("id", id)
            .named("status", "appointment_status", status),
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use sportello_domain::workflow::Action;

    use super::*;
    use crate::cases::tests::request;
    use crate::testing::with_test_store;

    /// A case whose citizen has a phone (or not).
    async fn case_with_phone(store: &Store, phone: Option<&str>) -> String {
        let mut new = request("ztl_permit");
        // No fiscal code nor e-mail: a citizen of its own (the phone is their key).
        new.citizen.fiscal_code = None;
        new.citizen.email = None;
        new.citizen.phone = phone.map(str::to_owned);
        store.create_case(new).await.unwrap().summary.reference
    }

    fn kinds(case: &crate::cases::CaseView) -> Vec<&str> {
        case.timeline.iter().map(|e| e.kind.as_str()).collect()
    }

    fn rome(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        sportello_domain::calendar::ROME
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    #[tokio::test]
    async fn a_call_taken_answers_the_open_call_back_in_the_same_step() {
        with_test_store(|store, _clock| async move {
            let r = case_with_phone(&store, Some("06 1234567")).await;
            let detail = serde_json::json!({"direction": "in", "from": "061234567"});
            // No call-back open: only the call is logged.
            let none = store
                .record_incoming_call(&r, "op1", &detail, Some("prima"))
                .await
                .unwrap();
            assert_eq!(none, None);
            let task = store
                .open_call_task(&r, "operator", None, "Richiamare", "op1")
                .await
                .unwrap()
                .expect("opened");
            let closed = store
                .record_incoming_call(&r, "op2", &detail, Some("spiegato"))
                .await
                .unwrap();
            assert_eq!(closed, Some(task.id));
            let done = store.call_task(task.id).await.unwrap();
            assert_eq!(
                (
                    done.status.as_str(),
                    done.outcome.as_deref(),
                    done.note.as_deref()
                ),
                ("done", Some("reached"), Some("spiegato"))
            );
            assert_eq!(done.done_by.as_deref(), Some("op2"));
            let kinds: Vec<String> = store
                .get_case(&r)
                .await
                .unwrap()
                .timeline
                .iter()
                .map(|e| e.kind.clone())
                .collect();
            assert_eq!(
                kinds.iter().filter(|k| *k == "call").count(),
                2,
                "{kinds:?}"
            );
            assert!(kinds.contains(&"call_logged".to_owned()), "{kinds:?}");
            // A case that does not exist: nothing written, an error.
            assert!(
                store
                    .record_incoming_call("ZTL-2026-999999", "op1", &detail, None)
                    .await
                    .is_err()
            );
        })
        .await;
    }

    #[tokio::test]
    async fn one_open_call_task_per_case_with_the_citizens_phone() {
        with_test_store(|store, _clock| async move {
            let r = case_with_phone(&store, Some(" 06 1234567 ")).await;
            let task = store
                .open_call_task(&r, "operator", None, "  Richiamare il cittadino ", "op1")
                .await
                .unwrap()
                .expect("opened");
            assert_eq!(task.case, r);
            assert_eq!(
                task.phone.as_deref(),
                Some("06 1234567"),
                "the citizen's number, trimmed"
            );
            assert_eq!(task.script, "Richiamare il cittadino");
            assert_eq!((task.status.as_str(), task.attempts), ("open", 0));
            assert_eq!(task.citizen_name.as_deref(), Some("Mario Rossi"));
            assert_eq!(task.case_status, "received");
            assert_eq!(task.due_at, task.created_at, "due at once");
            assert!(task.outcome.is_none() && task.done_at.is_none());

            let version = store.get_case(&r).await.unwrap();
            let again = store
                .open_call_task(&r, "no_answer", Some("333"), "altro", "op2")
                .await
                .unwrap();
            assert!(again.is_none(), "one open task per case");
            let after = store.get_case(&r).await.unwrap();
            assert_eq!(
                after.timeline.len(),
                version.timeline.len(),
                "nothing journaled"
            );
            let opened: Vec<_> = after
                .timeline
                .iter()
                .filter(|e| e.kind == "call_task_opened")
                .collect();
            assert_eq!(opened.len(), 1);
            assert_eq!(opened[0].actor, "op1");
            assert_eq!(opened[0].detail["call_task_id"], task.id);
            assert_eq!(opened[0].detail["reason"], "operator");
            assert_eq!(opened[0].detail["phone"], "06 1234567");

            // A number given wins over the citizen's; no number at all is allowed.
            let other = case_with_phone(&store, None).await;
            let given = store
                .open_call_task(
                    &other,
                    "no_digital_contact",
                    Some("+39 333 1"),
                    "x",
                    "system",
                )
                .await
                .unwrap()
                .unwrap();
            assert_eq!(given.phone.as_deref(), Some("+39 333 1"));
            let third = case_with_phone(&store, None).await;
            let none = store
                .open_call_task(&third, "operator", None, "x", "op1")
                .await
                .unwrap()
                .unwrap();
            assert!(none.phone.is_none());
            assert_eq!(store.call_task(none.id).await.unwrap(), none);
        })
        .await;
    }

    #[tokio::test]
    async fn bad_call_tasks_are_refused() {
        with_test_store(|store, _clock| async move {
            let r = case_with_phone(&store, Some("06 1")).await;
            for (reason, script, field) in [("boh", "x", "reason"), ("operator", "  ", "script")] {
                match store.open_call_task(&r, reason, None, script, "op1").await {
                    Err(StoreError::Invalid { field: f, .. }) => assert_eq!(f, field),
                    other => panic!("{other:?}"),
                }
            }
            assert!(matches!(
                store
                    .open_call_task("ZTL-2026-999999", "operator", None, "x", "op1")
                    .await,
                Err(StoreError::NotFound(_))
            ));
            assert!(matches!(
                store.call_task(999).await,
                Err(StoreError::NotFound(_))
            ));
            assert_eq!(store.call_queue(10, 0).await.unwrap().1, 0);
        })
        .await;
    }

    #[tokio::test]
    async fn the_queue_is_due_first_and_pages() {
        with_test_store(|store, clock| async move {
            let a = case_with_phone(&store, Some("1")).await;
            let b = case_with_phone(&store, Some("2")).await;
            let c = case_with_phone(&store, Some("3")).await;
            let ta = store
                .open_call_task(&a, "operator", None, "a", "op1")
                .await
                .unwrap()
                .unwrap();
            clock.advance(Duration::minutes(1));
            let tb = store
                .open_call_task(&b, "operator", None, "b", "op1")
                .await
                .unwrap()
                .unwrap();
            clock.advance(Duration::minutes(1));
            let tc = store
                .open_call_task(&c, "operator", None, "c", "op1")
                .await
                .unwrap()
                .unwrap();
            let ids =
                |items: Vec<CallTaskView>| items.into_iter().map(|t| t.id).collect::<Vec<_>>();
            let (items, total) = store.call_queue(10, 0).await.unwrap();
            assert_eq!((ids(items), total), (vec![ta.id, tb.id, tc.id], 3));
            // Not answered: due tomorrow, so behind the others.
            store
                .log_call(ta.id, "not_reached", None, None, "op1")
                .await
                .unwrap();
            let (items, total) = store.call_queue(10, 0).await.unwrap();
            assert_eq!((ids(items), total), (vec![tb.id, tc.id, ta.id], 3));
            let (page, total) = store.call_queue(1, 1).await.unwrap();
            assert_eq!((ids(page), total), (vec![tc.id], 3));
            // Done: out of the queue.
            store
                .log_call(tb.id, "reached", None, None, "op1")
                .await
                .unwrap();
            let (items, total) = store.call_queue(10, 0).await.unwrap();
            assert_eq!((ids(items), total), (vec![tc.id, ta.id], 2));
        })
        .await;
    }

    #[tokio::test]
    async fn a_call_not_answered_is_due_again_the_next_working_day_at_nine() {
        with_test_store(|store, clock| async move {
            // Thursday 26 November 2026, 10:30 in Rome.
            let r = case_with_phone(&store, Some("06 1")).await;
            let task = store
                .open_call_task(&r, "no_answer", None, "x", "system")
                .await
                .unwrap()
                .unwrap();
            let once = store
                .log_call(
                    task.id,
                    "not_reached",
                    Some(" segreteria "),
                    Some("pbx-1"),
                    "op1",
                )
                .await
                .unwrap();
            assert_eq!((once.status.as_str(), once.attempts), ("open", 1));
            assert_eq!(once.outcome.as_deref(), Some("not_reached"));
            assert_eq!(once.note.as_deref(), Some("segreteria"));
            assert_eq!(once.call_id.as_deref(), Some("pbx-1"));
            assert_eq!(
                once.due_at,
                rome_rfc3339(rome(2026, 11, 27, 9, 0)),
                "Friday 9:00"
            );
            assert!(once.done_at.is_none() && once.done_by.is_none());
            // On Friday: Monday, past the weekend.
            clock.set(rome(2026, 11, 27, 16, 0));
            let twice = store
                .log_call(task.id, "not_reached", None, None, "op2")
                .await
                .unwrap();
            assert_eq!(twice.attempts, 2);
            assert_eq!(
                twice.due_at,
                rome_rfc3339(rome(2026, 11, 30, 9, 0)),
                "Monday 9:00"
            );
            assert_eq!(twice.note, None, "each call has its own note");
            // Before 8 December (a holiday, Tuesday): Wednesday.
            assert_eq!(
                store.next_call_due(rome(2026, 12, 7, 18, 0)),
                rome(2026, 12, 9, 9, 0)
            );
            let logged: Vec<_> = store
                .get_case(&r)
                .await
                .unwrap()
                .timeline
                .into_iter()
                .filter(|e| e.kind == "call_logged")
                .collect();
            assert_eq!(logged.len(), 2);
            assert_eq!(logged[0].detail["outcome"], "not_reached");
            assert_eq!(logged[0].detail["note"], "segreteria");
            assert_eq!(logged[0].detail["call_id"], "pbx-1");
            assert_eq!(logged[0].detail["attempts"], 1);
            assert_eq!(logged[0].detail["due_at"], once.due_at);
            assert_eq!(logged[1].actor, "op2");
        })
        .await;
    }

    #[tokio::test]
    async fn a_call_reached_closes_the_task_for_good() {
        with_test_store(|store, _clock| async move {
            let r = case_with_phone(&store, Some("06 1")).await;
            let task = store
                .open_call_task(&r, "operator", None, "x", "op1")
                .await
                .unwrap()
                .unwrap();
            match store.log_call(task.id, "busy", None, None, "op1").await {
                Err(StoreError::Invalid { field, .. }) => assert_eq!(field, "outcome"),
                other => panic!("{other:?}"),
            }
            let done = store
                .log_call(task.id, "reached", Some("ok"), None, "op2")
                .await
                .unwrap();
            assert_eq!((done.status.as_str(), done.attempts), ("done", 1));
            assert_eq!(done.done_by.as_deref(), Some("op2"));
            assert_eq!(
                done.done_at,
                Some(rome_rfc3339(crate::testing::fixture_now()))
            );
            match store
                .log_call(task.id, "not_reached", None, None, "op1")
                .await
            {
                Err(StoreError::Refused(refusal)) => {
                    assert_eq!(refusal.key, "refusal.call_done");
                }
                other => panic!("{other:?}"),
            }
            assert!(matches!(
                store.log_call(999, "reached", None, None, "op1").await,
                Err(StoreError::NotFound(_))
            ));
            assert_eq!(
                store.call_task(task.id).await.unwrap(),
                done,
                "the refusal changed nothing"
            );
            // Done, the case may have a new task.
            let next = store
                .open_call_task(&r, "no_answer", None, "y", "system")
                .await
                .unwrap();
            assert!(next.is_some());
            // An appointment agreed also closes it.
            let next = next.unwrap();
            let done = store
                .log_call(next.id, "appointment", None, None, "op1")
                .await
                .unwrap();
            assert_eq!(
                (done.status.as_str(), done.outcome.as_deref()),
                ("done", Some("appointment"))
            );
        })
        .await;
    }

    #[tokio::test]
    async fn cases_waiting_on_a_silent_citizen_with_a_phone_are_found_once() {
        with_test_store(|store, clock| async move {
            let waiting = case_with_phone(&store, Some("06 1")).await;
            let noticed = case_with_phone(&store, Some("06 2")).await;
            let no_phone = case_with_phone(&store, None).await;
            let in_review = case_with_phone(&store, Some("06 3")).await;
            for r in [&waiting, &noticed, &no_phone, &in_review] {
                store
                    .apply_action(r, &Action::StartReview, None, "op1")
                    .await
                    .unwrap();
            }
            let missing = Action::RequestIntegration {
                missing: vec!["carta_circolazione".into(), "documento_identita".into()],
            };
            store
                .apply_action(&waiting, &missing, None, "op1")
                .await
                .unwrap();
            store
                .apply_action(&no_phone, &missing, None, "op1")
                .await
                .unwrap();
            let reasons = Action::NotifyRejection {
                reasons: vec!["residenza fuori ZTL".into()],
            };
            store
                .apply_action(&noticed, &reasons, None, "op1")
                .await
                .unwrap();
            assert!(
                store.cases_without_answer(7).await.unwrap().is_empty(),
                "too early"
            );
            clock.advance(Duration::days(7));
            let found = store.cases_without_answer(7).await.unwrap();
            assert_eq!(
                found,
                vec![
                    (
                        waiting.clone(),
                        "06 1".to_owned(),
                        vec![
                            "carta_circolazione".to_owned(),
                            "documento_identita".to_owned()
                        ]
                    ),
                    (
                        noticed.clone(),
                        "06 2".to_owned(),
                        vec!["residenza fuori ZTL".to_owned()]
                    ),
                ]
            );
            // A call since the pause (even done) takes the case out.
            let task = store
                .open_call_task(&waiting, "no_answer", None, "x", "system")
                .await
                .unwrap()
                .unwrap();
            store
                .log_call(task.id, "reached", None, None, "op1")
                .await
                .unwrap();
            let found = store.cases_without_answer(7).await.unwrap();
            assert_eq!(
                found.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
                [noticed.as_str()]
            );
            // Back from the citizen: no longer waiting.
            store
                .apply_action(&noticed, &Action::ObservationsReceived, None, "op1")
                .await
                .unwrap();
            assert!(store.cases_without_answer(7).await.unwrap().is_empty());
        })
        .await;
    }

    #[tokio::test]
    async fn a_call_task_opened_before_the_pause_does_not_hide_a_later_silence_once_done() {
        with_test_store(|store, clock| async move {
            let r = case_with_phone(&store, Some("06 1")).await;
            let early = store
                .open_call_task(&r, "operator", None, "x", "op1")
                .await
                .unwrap()
                .unwrap();
            store
                .apply_action(&r, &Action::StartReview, None, "op1")
                .await
                .unwrap();
            let missing = Action::RequestIntegration {
                missing: vec!["documento_identita".into()],
            };
            clock.advance(Duration::hours(1));
            store.apply_action(&r, &missing, None, "op1").await.unwrap();
            clock.advance(Duration::days(10));
            assert!(
                store.cases_without_answer(7).await.unwrap().is_empty(),
                "a task is open"
            );
            store
                .log_call(early.id, "reached", None, None, "op1")
                .await
                .unwrap();
            assert_eq!(store.cases_without_answer(7).await.unwrap().len(), 1);
        })
        .await;
    }

    #[tokio::test]
    async fn appointments_are_proposed_confirmed_and_cancelled() {
        with_test_store(|store, _clock| async move {
            let r = case_with_phone(&store, Some("06 1")).await;
            let at = rome(2026, 12, 1, 10, 30);
            let a = store
                .propose_appointment(&r, at, " Sportello 2 ", " Firma del permesso ", "op1")
                .await
                .unwrap();
            assert_eq!(a.case, r);
            assert_eq!(a.starts_at, "2026-12-01T10:30:00+01:00");
            assert_eq!(
                (a.place.as_str(), a.reason.as_str()),
                ("Sportello 2", "Firma del permesso")
            );
            assert_eq!(
                (a.status.as_str(), a.created_by.as_str()),
                ("proposed", "op1")
            );
            assert_eq!(a.citizen_name.as_deref(), Some("Mario Rossi"));
            assert!(a.case_flags.is_empty());
            assert!(a.confirmed_at.is_none());

            let c = store
                .confirm_appointment(a.id, "phone", "op2")
                .await
                .unwrap();
            assert_eq!(c.status, "confirmed");
            assert_eq!(c.confirmed_via.as_deref(), Some("phone"));
            assert_eq!(
                c.confirmed_at,
                Some(rome_rfc3339(crate::testing::fixture_now()))
            );
            assert_eq!(
                store
                    .confirm_appointment(a.id, "counter", "op2")
                    .await
                    .unwrap(),
                c,
                "again: unchanged"
            );
            let x = store
                .cancel_appointment(a.id, Some("malato"), "op3")
                .await
                .unwrap();
            assert_eq!(x.status, "cancelled");
            assert_eq!(
                store.cancel_appointment(a.id, None, "op3").await.unwrap(),
                x
            );
            match store.confirm_appointment(a.id, "phone", "op2").await {
                Err(StoreError::Refused(refusal)) => {
                    assert_eq!(refusal.key, "refusal.appointment_closed")
                }
                other => panic!("{other:?}"),
            }
            let case = store.get_case(&r).await.unwrap();
            let k = kinds(&case);
            for kind in [
                "appointment_proposed",
                "appointment_confirmed",
                "appointment_cancelled",
            ] {
                assert_eq!(k.iter().filter(|x| **x == kind).count(), 1, "{kind}: {k:?}");
            }
            let proposed = case
                .timeline
                .iter()
                .find(|e| e.kind == "appointment_proposed")
                .unwrap();
            assert_eq!(proposed.detail["starts_at"], "2026-12-01T10:30:00+01:00");
            assert_eq!(proposed.detail["reason"], "Firma del permesso");
            let confirmed = case
                .timeline
                .iter()
                .find(|e| e.kind == "appointment_confirmed")
                .unwrap();
            assert_eq!(
                (confirmed.actor.as_str(), &confirmed.detail["via"]),
                ("op2", &serde_json::json!("phone"))
            );
            let cancelled = case
                .timeline
                .iter()
                .find(|e| e.kind == "appointment_cancelled")
                .unwrap();
            assert_eq!(cancelled.detail["note"], "malato");
            assert_eq!(store.appointments_of_case(&r).await.unwrap(), vec![x]);
        })
        .await;
    }

    #[tokio::test]
    async fn bad_appointments_are_refused() {
        with_test_store(|store, _clock| async move {
            let r = case_with_phone(&store, None).await;
            let now = crate::testing::fixture_now();
            let later = now + Duration::days(1);
            for (at, place, reason, field) in [
                (now, "Sportello", "x", "starts_at"),
                (now - Duration::hours(1), "Sportello", "x", "starts_at"),
                (later, "Sportello", " ", "reason"),
                (later, "", "x", "place"),
            ] {
                match store
                    .propose_appointment(&r, at, place, reason, "op1")
                    .await
                {
                    Err(StoreError::Invalid { field: f, .. }) => assert_eq!(f, field),
                    other => panic!("{other:?}"),
                }
            }
            assert!(matches!(
                store
                    .propose_appointment("ZTL-2026-999999", later, "S", "x", "op1")
                    .await,
                Err(StoreError::NotFound(_))
            ));
            assert!(matches!(
                store.confirm_appointment(999, "phone", "op1").await,
                Err(StoreError::NotFound(_))
            ));
            assert!(matches!(
                store.cancel_appointment(999, None, "op1").await,
                Err(StoreError::NotFound(_))
            ));
            let a = store
                .propose_appointment(&r, later, "S", "x", "op1")
                .await
                .unwrap();
            assert!(matches!(
                store.confirm_appointment(a.id, " ", "op1").await,
                Err(StoreError::Invalid { .. })
            ));
            assert_eq!(store.appointments_of_case(&r).await.unwrap().len(), 1);
        })
        .await;
    }

    #[tokio::test]
    async fn the_counters_day_is_a_rome_day_by_time_with_the_cases_readiness() {
        with_test_store(|store, _clock| async move {
            let ready = case_with_phone(&store, Some("1")).await;
            let mut flagged = request("ztl_permit");
            flagged.flags = vec!["ocr_failed".into()];
            let flagged = store.create_case(flagged).await.unwrap().summary.reference;
            // 23:30 on 1 December in Rome is 22:30 UTC: still the 1st.
            let late = store
                .propose_appointment(&ready, rome(2026, 12, 1, 23, 30), "S", "tardi", "op1")
                .await
                .unwrap();
            let early = store
                .propose_appointment(&flagged, rome(2026, 12, 1, 0, 15), "S", "presto", "op1")
                .await
                .unwrap();
            let noon = store
                .propose_appointment(&ready, rome(2026, 12, 1, 12, 0), "S", "mezzogiorno", "op1")
                .await
                .unwrap();
            store
                .propose_appointment(&ready, rome(2026, 12, 2, 0, 0), "S", "dopo", "op1")
                .await
                .unwrap();
            store
                .cancel_appointment(noon.id, None, "op1")
                .await
                .unwrap();
            let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
            let list = store.appointments_on(day).await.unwrap();
            let ids: Vec<i64> = list.iter().map(|a| a.id).collect();
            assert_eq!(ids, [early.id, noon.id, late.id]);
            assert_eq!(list[0].case_flags, ["ocr_failed"], "not ready");
            assert!(list[2].case_flags.is_empty(), "ready");
            assert_eq!(
                list[1].status, "cancelled",
                "the counter sees who will not come"
            );
            assert_eq!(list[0].case_status, "received");
            let next = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
            assert_eq!(store.appointments_on(next).await.unwrap().len(), 1);
            let before = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
            assert!(store.appointments_on(before).await.unwrap().is_empty());
        })
        .await;
    }

    #[tokio::test]
    async fn the_next_appointment_is_the_first_still_ahead() {
        with_test_store(|store, clock| async move {
            let r = case_with_phone(&store, Some("1")).await;
            assert_eq!(store.next_appointment_of_case(&r).await.unwrap(), None);
            let first = rome(2026, 11, 30, 9, 0);
            let second = rome(2026, 12, 3, 11, 0);
            let a = store
                .propose_appointment(&r, second, "Sportello 2", "x", "op1")
                .await
                .unwrap();
            store
                .propose_appointment(&r, first, "Sportello 1", "x", "op1")
                .await
                .unwrap();
            assert_eq!(
                store.next_appointment_of_case(&r).await.unwrap(),
                Some((first, "Sportello 1".to_owned()))
            );
            clock.set(rome(2026, 12, 1, 8, 0));
            assert_eq!(
                store.next_appointment_of_case(&r).await.unwrap(),
                Some((second, "Sportello 2".to_owned())),
                "the one gone by is skipped"
            );
            store.cancel_appointment(a.id, None, "op1").await.unwrap();
            assert_eq!(
                store.next_appointment_of_case(&r).await.unwrap(),
                None,
                "cancelled"
            );
            assert_eq!(
                store
                    .next_appointment_of_case("ZTL-2026-999999")
                    .await
                    .unwrap(),
                None
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_call_ending_with_an_appointment_is_one_change() {
        with_test_store(|store, _clock| async move {
            let r = case_with_phone(&store, Some("06 1")).await;
            let task = store
                .open_call_task(&r, "operator", None, "x", "op1")
                .await
                .unwrap()
                .unwrap();
            let before = store.get_case(&r).await.unwrap().timeline.len();
            let past = crate::testing::fixture_now() - Duration::hours(1);
            assert!(matches!(
                store
                    .log_call_with_appointment(task.id, None, None, past, "S", "firma", "op1")
                    .await,
                Err(StoreError::Invalid { .. })
            ));
            assert_eq!(
                store.call_task(task.id).await.unwrap().status,
                "open",
                "nothing written"
            );
            assert_eq!(store.get_case(&r).await.unwrap().timeline.len(), before);
            let at = rome(2026, 12, 1, 10, 0);
            let (done, appointment) = store
                .log_call_with_appointment(
                    task.id,
                    Some("viene martedì"),
                    Some("c-9"),
                    at,
                    "S",
                    "firma",
                    "op1",
                )
                .await
                .unwrap();
            assert_eq!(
                (done.status.as_str(), done.outcome.as_deref()),
                ("done", Some("appointment"))
            );
            assert_eq!(
                (appointment.case.as_str(), appointment.status.as_str()),
                (r.as_str(), "proposed")
            );
            let case = store.get_case(&r).await.unwrap();
            assert_eq!(
                &kinds(&case)[before..],
                ["call_logged", "appointment_proposed"]
            );
            // A task already done refuses, and no appointment is added.
            assert!(matches!(
                store
                    .log_call_with_appointment(task.id, None, None, at, "S", "firma", "op1")
                    .await,
                Err(StoreError::Refused(_))
            ));
            assert_eq!(store.appointments_of_case(&r).await.unwrap().len(), 1);
        })
        .await;
    }

    /// The queue, the counter's day and the silent cases must come from their indexes on
    /// SQLite (PostgreSQL's planner decides by the table's size).
    #[tokio::test]
    async fn sqlite_reads_the_queues_from_their_indexes() {
        with_test_store(|store, _clock| async move {
            if store.backend() != crate::Backend::Sqlite {
                return;
            }
            let plan = |sql: String, binds: usize| {
                let store = store.clone();
                async move {
                    let mut query =
                        sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
                    for _ in 0..binds {
                        query = query.bind(0_i64);
                    }
                    query
                        .fetch_all(&store.read)
                        .await
                        .unwrap()
                        .iter()
                        .map(|r| get_str(r, "detail").unwrap())
                        .collect::<Vec<_>>()
                        .join("\n")
                }
            };
            let queue = plan(queue_sql(), 2).await;
            assert!(queue.contains("INDEX call_tasks_queue"), "{queue}");
            assert!(!queue.contains("TEMP B-TREE"), "no sort: {queue}");
            let day = plan(day_sql(), 2).await;
            assert!(day.contains("INDEX appointments_day"), "{day}");
            assert!(!day.contains("TEMP B-TREE"), "no sort: {day}");
            let silent = plan(WITHOUT_ANSWER_SQL.to_owned(), 1).await;
            assert!(silent.contains("INDEX case_pauses_open"), "{silent}");
            assert!(
                !silent.contains("SCAN c\n")
                    && !silent.contains("SCAN e\n")
                    && !silent.contains("SCAN t\n"),
                "{silent}"
            );
        })
        .await;
    }
}
