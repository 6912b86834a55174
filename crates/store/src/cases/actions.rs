//! Changing cases: workflow actions with the legal clock, flags, and the fields staff edit.
//! Each change locks the case row, lets the domain decide, and journals what it did.

use chrono::{DateTime, NaiveDate, Utc};
use sportello_domain::calendar::rome_date;
use sportello_domain::case::Status;
use sportello_domain::sla::{self, Pause};
use sportello_domain::workflow::{self, Action, CaseFacts, ClockChange, PauseKind};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::model::{CaseView, clean_list, json_text};
use crate::documents::{OutgoingDocument, attach_outgoing};
use crate::journal::insert_event;
use crate::{
    Result, Store, StoreError, date_text, get_i64, get_opt_str, get_str, parse_date, to_ms,
};

impl Store {
    /// The workflow's facts about a case now (what [`workflow::plan`] decides on), for a
    /// page that offers only the actions the workflow would take (no note given).
    pub async fn case_facts(&self, reference: &str) -> Result<CaseFacts> {
        let row = sqlx::query(
            "SELECT case_type, status, integration_requested, rejection_notified, pause_kind, \
             pause_started_on FROM cases WHERE reference = $1",
        )
        .bind(reference)
        .fetch_optional(&self.read)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("case {reference}")))?;
        self.facts_of(&row, false, rome_date(self.clock.now()))
    }

    /// A case row's workflow facts (columns `case_type`, `status`, `integration_requested`,
    /// `rejection_notified`, `pause_kind`, `pause_started_on`) on `today`.
    fn facts_of(&self, row: &AnyRow, has_note: bool, today: NaiveDate) -> Result<CaseFacts> {
        let case_type_id = get_str(row, "case_type")?;
        let workflow_kind = self
            .case_type(&case_type_id)
            .map(|t| t.workflow)
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "case type {case_type_id:?} is no longer configured"
                ))
            })?;
        let status_text = get_str(row, "status")?;
        let status: Status = status_text
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("status {status_text:?}")))?;
        Ok(CaseFacts {
            status,
            workflow: workflow_kind,
            integration_requested: get_i64(row, "integration_requested")? != 0,
            rejection_notified: get_i64(row, "rejection_notified")? != 0,
            notice_period_open: match (
                get_opt_str(row, "pause_kind")?,
                get_opt_str(row, "pause_started_on")?,
            ) {
                (Some(kind), Some(started)) if kind == PauseKind::RejectionNotice.as_str() => {
                    Pause {
                        kind: PauseKind::RejectionNotice,
                        started_on: parse_date(&started)?,
                        ended_on: None,
                    }
                    .in_force(today)
                }
                _ => false,
            },
            has_note,
        })
    }

    /// Applies a workflow action in one transaction: the case row is locked first, the
    /// domain decides, then status, clock and journal change together.
    pub async fn apply_action(
        &self,
        reference: &str,
        action: &Action,
        note: Option<&str>,
        actor: &str,
    ) -> Result<CaseView> {
        self.apply_action_with(reference, action, note, actor, &[])
            .await
    }

    /// [`Store::apply_action`] for an action that produces documents (an annulment
    /// request, a letter): they are attached to the case, and registered outgoing in the
    /// protocol register when asked, in the same transaction as the change of status, so
    /// the outcome never exists without its documents nor the documents without it. The
    /// bytes must already be in the blob store.
    pub async fn apply_action_with(
        &self,
        reference: &str,
        action: &Action,
        note: Option<&str>,
        actor: &str,
        outgoing: &[OutgoingDocument],
    ) -> Result<CaseView> {
        self.apply_action_writing(reference, action, note, actor, outgoing, &[])
            .await
            .map(|(case, _)| case)
    }

    /// [`Store::apply_action_with`], also queueing messages to the citizen in the same
    /// transaction (a message without an idempotency key gets one naming this change of
    /// the case, so a retried request cannot queue it twice). Returns the case and the
    /// messages' ids.
    pub async fn apply_action_writing(
        &self,
        reference: &str,
        action: &Action,
        note: Option<&str>,
        actor: &str,
        outgoing: &[OutgoingDocument],
        messages: &[crate::outbound::NewOutbound],
    ) -> Result<(CaseView, Vec<i64>)> {
        let now = self.clock.now();
        let today = rome_date(now);
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(
            "UPDATE cases SET version = version + 1 WHERE reference = $1 RETURNING id, case_type, status, \
             integration_requested, rejection_notified, pause_kind, pause_started_on, paused_days, received_on, term_days, flags, version",
        )
        .bind(reference)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("case {reference}")))?;
        let case_id = get_i64(&row, "id")?;
        let note = note.map(str::trim).filter(|n| !n.is_empty());
        let facts = self.facts_of(&row, note.is_some(), today)?;
        let transition = workflow::plan(&facts, action)?;
        let mut detail = serde_json::json!({
            "action": action.name(),
            "from": transition.from.as_str(),
            "to": transition.to.as_str(),
        });
        if let Some(note) = note {
            detail["note"] = note.into();
        }
        match action {
            Action::Assign { user } => {
                let assignee =
                    sqlx::query("SELECT id, role FROM users WHERE login = $1 AND active = 1")
                        .bind(user.trim())
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or_else(|| {
                            StoreError::invalid("user", format!("no active user '{}'", user.trim()))
                        })?;
                let role = get_str(&assignee, "role")?;
                if !["admin", "supervisor", "operator"].contains(&role.as_str()) {
                    return Err(StoreError::invalid(
                        "user",
                        format!("'{}' ({role}) cannot work cases", user.trim()),
                    ));
                }
                sqlx::query("UPDATE cases SET assignee_id = $1 WHERE id = $2")
                    .bind(get_i64(&assignee, "id")?)
                    .bind(case_id)
                    .execute(&mut *tx)
                    .await?;
                detail["user"] = user.trim().into();
            }
            Action::RequestIntegration { missing } => {
                detail["missing"] = clean_list(missing).into()
            }
            Action::NotifyRejection { reasons }
            | Action::Reject { reasons }
            | Action::Confirm { reasons }
            | Action::Annul { reasons } => detail["reasons"] = clean_list(reasons).into(),
            _ => {}
        }
        match transition.clock {
            ClockChange::None => {}
            ClockChange::Pause(kind) => {
                sqlx::query("INSERT INTO case_pauses (case_id, kind, started_on, started_at) VALUES ($1, $2, $3, $4)")
                    .bind(case_id)
                    .bind(kind.as_str())
                    .bind(date_text(today))
                    .bind(to_ms(now))
                    .execute(&mut *tx)
                    .await?;
                let marker = match kind {
                    PauseKind::Integration => "integration_requested",
                    PauseKind::RejectionNotice => "rejection_notified",
                };
                let sql = format!(
                    "UPDATE cases SET pause_kind = $1, pause_started_on = $2, {marker} = 1 WHERE id = $3"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(kind.as_str())
                    .bind(date_text(today))
                    .bind(case_id)
                    .execute(&mut *tx)
                    .await?;
                detail["clock"] = "paused".into();
            }
            ClockChange::Resume => {
                if let Some(days) = self.end_pause(&mut tx, case_id, &row, today, now).await? {
                    detail["clock"] = "resumed".into();
                    detail["paused_days"] = days.into();
                }
            }
        }
        sqlx::query(
            "UPDATE cases SET status = $1, last_event_at = $2, closed_at = $3 WHERE id = $4",
        )
        .bind(transition.to.as_str())
        .bind(to_ms(now))
        .bind((transition.to == Status::Closed).then_some(to_ms(now)))
        .bind(case_id)
        .execute(&mut *tx)
        .await?;
        let kind = if matches!(action, Action::Assign { .. }) {
            "assigned"
        } else {
            "action"
        };
        insert_event(&mut tx, case_id, now, actor, kind, &detail).await?;
        let documents = attach_outgoing(&mut tx, case_id, reference, now, actor, outgoing).await?;
        let version = get_i64(&row, "version")?;
        let mut queued = Vec::with_capacity(messages.len());
        for (i, message) in messages.iter().enumerate() {
            let mut message = message.clone();
            if message.idempotency_key.is_empty() {
                message.idempotency_key = format!("{reference}/v{version}/{i}");
            }
            if message.with_outgoing_documents {
                message.attachments.extend(documents.iter().cloned());
            }
            let (id, _) =
                crate::outbound::queue_in(&mut tx, case_id, reference, now, actor, &message)
                    .await?;
            queued.push(id);
        }
        tx.commit().await?;
        Ok((self.get_case(reference).await?, queued))
    }

    /// Removes a flag once staff have dealt with it (a message that arrived for a closed
    /// case, a failed OCR), journaled with who and why; removing an absent flag changes
    /// nothing.
    pub async fn clear_flag(
        &self,
        reference: &str,
        flag: &str,
        note: Option<&str>,
        actor: &str,
    ) -> Result<CaseView> {
        let now = self.clock.now();
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(
            "UPDATE cases SET version = version + 1 WHERE reference = $1 RETURNING id, flags",
        )
        .bind(reference)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("case {reference}")))?;
        let mut flags: Vec<String> =
            serde_json::from_str(&get_str(&row, "flags")?).unwrap_or_default();
        let before = flags.len();
        flags.retain(|f| f != flag);
        if flags.len() == before {
            drop(tx);
            return self.get_case(reference).await;
        }
        let case_id = get_i64(&row, "id")?;
        sqlx::query("UPDATE cases SET flags = $1, last_event_at = $2 WHERE id = $3")
            .bind(json_text(&flags))
            .bind(to_ms(now))
            .bind(case_id)
            .execute(&mut *tx)
            .await?;
        let mut detail = serde_json::json!({ "flag": flag });
        if let Some(note) = note.map(str::trim).filter(|n| !n.is_empty()) {
            detail["note"] = note.into();
        }
        insert_event(&mut tx, case_id, now, actor, "flag_cleared", &detail).await?;
        tx.commit().await?;
        self.get_case(reference).await
    }

    /// Changes a case's type-specific fields (JSON merge patch: `null` removes a key),
    /// journaling each change with its old and new value and re-indexing the case for
    /// search, in one transaction. A closed case is not changed (reopen it first).
    pub async fn update_case_fields(
        &self,
        reference: &str,
        patch: &serde_json::Map<String, serde_json::Value>,
        actor: &str,
    ) -> Result<CaseView> {
        let before = self.get_case(reference).await?;
        let now = self.clock.now();
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(
            "UPDATE cases SET version = version + 1 WHERE reference = $1 RETURNING id, status, fields",
        )
        .bind(reference)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("case {reference}")))?;
        if get_str(&row, "status")? == Status::Closed.as_str() {
            return Err(StoreError::Refused(
                sportello_domain::refusal::Refusal::new("refusal.closed_fields")
                    .with("reference", reference),
            ));
        }
        let case_id = get_i64(&row, "id")?;
        let mut fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&get_str(&row, "fields")?).unwrap_or_default();
        let mut changes = serde_json::Map::new();
        for (key, value) in patch {
            let old = fields.get(key).cloned().unwrap_or(serde_json::Value::Null);
            if &old == value {
                continue;
            }
            if value.is_null() {
                fields.remove(key);
            } else {
                fields.insert(key.clone(), value.clone());
            }
            changes.insert(key.clone(), serde_json::json!({ "from": old, "to": value }));
        }
        if changes.is_empty() {
            return Ok(before);
        }
        sqlx::query("UPDATE cases SET fields = $1, last_event_at = $2 WHERE id = $3")
            .bind(json_text(&fields))
            .bind(to_ms(now))
            .bind(case_id)
            .execute(&mut *tx)
            .await?;
        let detail = serde_json::json!({ "changes": changes });
        insert_event(&mut tx, case_id, now, actor, "fields_changed", &detail).await?;
        let text = crate::search::case_text(
            reference,
            &before.summary.subject,
            &before.description,
            &serde_json::Value::Object(fields),
            &before.citizen,
        );
        crate::search::insert_case_entries(&mut tx, &[(case_id, text)]).await?;
        tx.commit().await?;
        self.get_case(reference).await
    }

    /// Ends the open pause of a locked case row; returns the days it counted.
    pub(super) async fn end_pause(
        &self,
        tx: &mut Transaction<'static, Any>,
        case_id: i64,
        row: &AnyRow,
        ended_on: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>> {
        let (Some(kind), Some(started)) = (
            get_opt_str(row, "pause_kind")?,
            get_opt_str(row, "pause_started_on")?,
        ) else {
            return Ok(None);
        };
        let kind = PauseKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("pause kind {kind:?}")))?;
        let pause = Pause {
            kind,
            started_on: parse_date(&started)?,
            ended_on: Some(ended_on),
        };
        let days = pause.counted_days(ended_on);
        let paused_total = get_i64(row, "paused_days")? + days;
        let received_on = parse_date(&get_str(row, "received_on")?)?;
        let term_days = u32::try_from(get_i64(row, "term_days")?).unwrap_or(30);
        let due_on = sla::due_date(
            &self.settings.calendar,
            received_on,
            term_days,
            paused_total,
        );
        sqlx::query(
            "UPDATE case_pauses SET ended_on = $1, ended_at = $2, counted_days = $3 WHERE case_id = $4 AND ended_on IS NULL",
        )
        .bind(date_text(ended_on))
        .bind(to_ms(now))
        .bind(days)
        .bind(case_id)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE cases SET pause_kind = NULL, pause_started_on = NULL, paused_days = $1, due_on = $2 WHERE id = $3",
        )
        .bind(paused_total)
        .bind(date_text(due_on))
        .bind(case_id)
        .execute(&mut **tx)
        .await?;
        Ok(Some(days))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::tests::request;
    use crate::testing::with_test_store;
    use chrono::Duration;
    use sportello_domain::roles::Role;
    use sportello_domain::workflow::WorkflowError;

    #[tokio::test]
    async fn a_flag_dealt_with_is_cleared_and_journaled() {
        with_test_store(|store, _clock| async move {
            let mut flagged = request("ztl_permit");
            flagged.flags = vec!["needs_attention".into(), "ocr_failed".into()];
            let reference = store.create_case(flagged).await.unwrap().summary.reference;
            let case = store
                .clear_flag(&reference, "needs_attention", Some("risposto"), "op1")
                .await
                .unwrap();
            assert_eq!(case.summary.flags, ["ocr_failed"]);
            let last = case.timeline.last().unwrap();
            assert_eq!(
                (last.kind.as_str(), last.actor.as_str()),
                ("flag_cleared", "op1")
            );
            assert_eq!(last.detail["note"], "risposto");
            let again = store
                .clear_flag(&reference, "needs_attention", None, "op1")
                .await
                .unwrap();
            assert_eq!(
                again.timeline.len(),
                case.timeline.len(),
                "nothing to clear"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn integration_pauses_once_and_moves_the_due_date() {
        with_test_store(|store, clock| async move {
            let r = store
                .create_case(request("ztl_permit"))
                .await
                .unwrap()
                .summary
                .reference;
            let err = store
                .apply_action(&r, &Action::Issue, None, "op1")
                .await
                .unwrap_err();
            assert!(matches!(
                err,
                StoreError::Workflow(WorkflowError::NotAllowed { .. })
            ));
            store
                .apply_action(&r, &Action::StartReview, None, "op1")
                .await
                .unwrap();
            let missing = Action::RequestIntegration {
                missing: vec!["carta_circolazione".into()],
            };
            let c = store
                .apply_action(&r, &missing, Some("manca il libretto"), "op1")
                .await
                .unwrap();
            assert_eq!(
                (c.summary.status.as_str(), c.summary.sla.state.as_str()),
                ("waiting_citizen", "paused")
            );
            clock.advance(Duration::days(5));
            let c = store.get_case(&r).await.unwrap();
            assert_eq!(
                (c.summary.sla.paused_days, c.summary.due_at.as_str()),
                (5, "2026-12-31")
            );
            let c = store
                .apply_action(&r, &Action::IntegrationReceived, None, "op1")
                .await
                .unwrap();
            assert_eq!(
                (
                    c.summary.status.as_str(),
                    c.summary.sla.state.as_str(),
                    c.summary.sla.paused_days
                ),
                ("in_review", "running", 5)
            );
            assert_eq!(c.summary.due_at, "2026-12-31"); // 26/11 + 30 + 5 paused days
            let again = store
                .apply_action(&r, &missing, None, "op1")
                .await
                .unwrap_err();
            assert!(matches!(
                again,
                StoreError::Workflow(WorkflowError::IntegrationAlreadyRequested)
            ));
            let kinds: Vec<&str> = c.timeline.iter().map(|e| e.kind.as_str()).collect();
            assert_eq!(kinds, vec!["created", "action", "action", "action"]);
            assert_eq!(c.timeline[2].detail["missing"][0], "carta_circolazione");
            assert_eq!(c.timeline[2].detail["note"], "manca il libretto");
        })
        .await;
    }

    #[tokio::test]
    async fn rejection_needs_notice_and_lapsed_pauses_are_closed_by_the_tick() {
        with_test_store(|store, clock| async move {
            let r = store
                .create_case(request("ztl_permit"))
                .await
                .unwrap()
                .summary
                .reference;
            let reasons = vec!["residenza non nella ZTL".to_string()];
            store
                .apply_action(&r, &Action::StartReview, None, "op1")
                .await
                .unwrap();
            let err = store
                .apply_action(
                    &r,
                    &Action::Reject {
                        reasons: reasons.clone(),
                    },
                    None,
                    "op1",
                )
                .await
                .unwrap_err();
            assert!(matches!(
                err,
                StoreError::Workflow(WorkflowError::NoRejectionNotice)
            ));
            store
                .apply_action(
                    &r,
                    &Action::NotifyRejection {
                        reasons: reasons.clone(),
                    },
                    None,
                    "op1",
                )
                .await
                .unwrap();
            let early = store
                .apply_action(
                    &r,
                    &Action::Reject {
                        reasons: reasons.clone(),
                    },
                    None,
                    "op1",
                )
                .await
                .unwrap_err();
            assert!(
                matches!(early, StoreError::Workflow(WorkflowError::NoticePeriodOpen)),
                "{early}"
            );
            // The facts a page reads say the same before the workflow is asked.
            let facts = store.case_facts(&r).await.unwrap();
            assert!(
                facts.rejection_notified && facts.notice_period_open,
                "{facts:?}"
            );
            clock.advance(Duration::days(12));
            assert_eq!(store.sla_tick().await.unwrap(), 1);
            assert_eq!(store.sla_tick().await.unwrap(), 0, "the tick is idempotent");
            let c = store.get_case(&r).await.unwrap();
            assert_eq!(
                (c.summary.sla.state.as_str(), c.summary.sla.paused_days),
                ("running", 10)
            );
            assert_eq!(
                c.timeline.last().map(|e| e.kind.as_str()),
                Some("pause_lapsed")
            );
            let facts = store.case_facts(&r).await.unwrap();
            assert!(!facts.notice_period_open, "{facts:?}");
            let c = store
                .apply_action(&r, &Action::Reject { reasons }, None, "op1")
                .await
                .unwrap();
            assert_eq!(
                (c.summary.status.as_str(), c.summary.sla.state.as_str()),
                ("rejected", "stopped")
            );

            let r2 = store
                .create_case(request("ztl_permit"))
                .await
                .unwrap()
                .summary
                .reference;
            let missing = Action::RequestIntegration {
                missing: vec!["documento_identita".into()],
            };
            store
                .apply_action(&r2, &missing, None, "op1")
                .await
                .unwrap();
            clock.advance(Duration::days(31));
            store.sla_tick().await.unwrap();
            let c = store.get_case(&r2).await.unwrap();
            assert!(
                c.summary.flags.contains(&"integration_expired".to_string()),
                "{:?}",
                c.summary.flags
            );
            assert_eq!(
                (
                    c.summary.status.as_str(),
                    c.summary.sla.state.as_str(),
                    c.summary.sla.paused_days
                ),
                ("waiting_citizen", "running", 30)
            );
        })
        .await;
    }

    #[tokio::test]
    async fn assignment_checks_the_user() {
        with_test_store(|store, _clock| async move {
            store.add_user("op1", "Op", Role::Operator).await.unwrap();
            store
                .add_user("vigile", "Vigile", Role::Police)
                .await
                .unwrap();
            let r = store
                .create_case(request("ztl_permit"))
                .await
                .unwrap()
                .summary
                .reference;
            for user in ["ghost", "vigile"] {
                let err = store
                    .apply_action(&r, &Action::Assign { user: user.into() }, None, "sup")
                    .await
                    .unwrap_err();
                assert!(
                    matches!(err, StoreError::Invalid { ref field, .. } if field == "user"),
                    "{user}: {err}"
                );
            }
            let c = store
                .apply_action(&r, &Action::Assign { user: "op1".into() }, None, "sup")
                .await
                .unwrap();
            assert_eq!(
                (c.summary.assignee.as_deref(), c.summary.status.as_str()),
                (Some("op1"), "received")
            );
            assert_eq!(c.timeline.last().map(|e| e.kind.as_str()), Some("assigned"));
        })
        .await;
    }

    #[tokio::test]
    async fn the_journal_is_append_only() {
        with_test_store(|store, _clock| async move {
            store.create_case(request("ztl_permit")).await.unwrap();
            assert!(
                sqlx::query("UPDATE case_events SET actor = 'x'")
                    .execute(&store.write)
                    .await
                    .is_err()
            );
            assert!(
                sqlx::query("DELETE FROM case_events")
                    .execute(&store.write)
                    .await
                    .is_err()
            );
        })
        .await;
    }
}
