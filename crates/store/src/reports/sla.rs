//! The SLA report: terms met over a period, and the cases late or orphan now, exactly as
//! the case list shows them.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use sportello_domain::calendar::rome_date;
use sportello_domain::case::Status;
use sportello_domain::reports::share;
use sportello_domain::sla::{self, ClockState, OrphanFacts, Pause};
use sportello_domain::workflow::PauseKind;

use super::figures::{Accumulator, RomeDays, fast_date};
use super::model::{
    CurrentFigures, Names, OpenCase, OpenCaseNow, OperatorLoad, OrphanCase, OrphanCounts,
    OverdueCase, Period, SlaReport,
};
use super::queries::parse_closed;
use crate::time::rome_rfc3339;
use crate::{Result, Store, StoreError, date_text, from_ms, get_opt_str, to_ms};

impl Store {
    /// The SLA report: terms met by the cases closed in the period, and the lists of the
    /// cases late or orphan now.
    pub async fn sla_report(&self, period: Period) -> Result<SlaReport> {
        let now = self.clock.now();
        let start = period.start();
        let as_of = period.end().min(now).max(start);
        let (closed_packed, open_now) = tokio::try_join!(
            self.closed_cases_packed(to_ms(start), to_ms(as_of)),
            self.open_cases_now(),
        )?;
        let mut names = Names::default();
        let closed = parse_closed(&closed_packed, None, &mut names)?;
        let days = RomeDays::new(period.from, period.to);
        let mut totals = Accumulator::default();
        for c in &closed {
            totals.add_closed(c, days.date(c.closed_at));
        }
        let cases = self.with_clock(now, open_now);
        let mut overdue: Vec<OverdueCase> = cases
            .iter()
            .filter(|c| c.overdue)
            .map(|c| OverdueCase {
                reference: c.case.reference.clone(),
                subject: c.case.subject.clone(),
                case_type: c.case.case_type.clone(),
                due_at: date_text(c.due_at),
                days_late: -c.days_left,
                assignee: c.case.login.clone(),
            })
            .collect();
        overdue.sort_by(|a, b| {
            b.days_late
                .cmp(&a.days_late)
                .then_with(|| a.reference.cmp(&b.reference))
        });
        let mut orphan_cases: Vec<&OpenCaseNow> = cases.iter().filter(|c| c.orphan).collect();
        orphan_cases.sort_by(|a, b| {
            (a.case.received_at, &a.case.reference).cmp(&(b.case.received_at, &b.case.reference))
        });
        let orphans = orphan_cases
            .into_iter()
            .map(|c| OrphanCase {
                reference: c.case.reference.clone(),
                subject: c.case.subject.clone(),
                case_type: c.case.case_type.clone(),
                received_at: from_ms(c.case.received_at)
                    .map(rome_rfc3339)
                    .unwrap_or_default(),
                assignee: c.case.login.clone(),
                reason: match (c.unassigned_too_long, c.idle) {
                    (true, true) => "unassigned_idle",
                    (true, false) => "unassigned",
                    _ => "idle",
                }
                .into(),
                idle_days: (to_ms(now) - c.case.last_event_at).max(0) / 86_400_000,
            })
            .collect();
        Ok(SlaReport {
            from: date_text(period.from),
            to: date_text(period.to),
            closed: totals.closed,
            on_time: totals.within_legal_term,
            on_time_share: share(totals.within_legal_term, totals.closed),
            within_service: totals.within_service,
            within_service_share: share(totals.within_service, totals.closed),
            as_of: rome_rfc3339(now),
            overdue,
            orphans,
        })
    }

    /// Applies the legal clock and the orphan rule of `now` to the open cases, as the case
    /// list does ([`sla::compute_from_totals`], [`sla::is_orphan`]).
    pub(super) fn with_clock(&self, now: DateTime<Utc>, cases: Vec<OpenCase>) -> Vec<OpenCaseNow> {
        let today = rome_date(now);
        let cal = &self.settings.calendar;
        let idle_since = to_ms(now - Duration::days(sla::IDLE_DAYS));
        cases
            .into_iter()
            .filter_map(|case| {
                let status: Status = case.status.parse().ok()?;
                let received_on = fast_date(&case.received_on).ok()?;
                let received_at = from_ms(case.received_at).ok()?;
                let last_event_at = from_ms(case.last_event_at).ok()?;
                let open_pause = match (&case.pause_kind, &case.pause_started_on) {
                    (Some(kind), Some(started)) => Some(Pause {
                        kind: PauseKind::parse(kind)?,
                        started_on: fast_date(started).ok()?,
                        ended_on: None,
                    }),
                    _ => None,
                };
                let view = sla::compute_from_totals(
                    cal,
                    received_on,
                    u32::try_from(case.term_days).unwrap_or(30),
                    case.paused_days,
                    open_pause.as_ref(),
                    status,
                    today,
                );
                let assigned = case.assignee_id.is_some();
                let orphan = sla::is_orphan(
                    cal,
                    &OrphanFacts {
                        status,
                        assigned,
                        received_at,
                        last_event_at,
                        clock: view.state,
                    },
                    now,
                );
                let unassigned_too_long = !assigned
                    && cal.working_days_between(received_on, today) > sla::UNASSIGNED_WORKING_DAYS;
                let idle = view.state == ClockState::Running && case.last_event_at <= idle_since;
                Some(OpenCaseNow {
                    due_at: view.due_at,
                    days_left: view.days_left,
                    overdue: view.state == ClockState::Running && view.days_left < 0,
                    unassigned_too_long: orphan && unassigned_too_long,
                    idle: orphan && idle,
                    orphan,
                    case,
                })
            })
            .collect()
    }

    pub(super) fn current_figures(
        &self,
        now: DateTime<Utc>,
        open_now: &[OpenCase],
    ) -> CurrentFigures {
        let cases = self.with_clock(now, open_now.to_vec());
        let mut orphans = OrphanCounts::default();
        let mut operators: BTreeMap<Option<String>, OperatorLoad> = BTreeMap::new();
        let mut overdue = 0;
        for c in &cases {
            let load = operators
                .entry(c.case.login.clone())
                .or_insert_with(|| OperatorLoad {
                    assignee: c.case.login.clone(),
                    name: c.case.name.clone(),
                    open: 0,
                    overdue: 0,
                    orphan: 0,
                });
            load.open += 1;
            if c.overdue {
                load.overdue += 1;
                overdue += 1;
            }
            if c.orphan {
                load.orphan += 1;
                orphans.total += 1;
                orphans.unassigned += i64::from(c.unassigned_too_long);
                orphans.idle += i64::from(c.idle);
            }
        }
        let mut operators: Vec<OperatorLoad> = operators.into_values().collect();
        operators.sort_by(|a, b| {
            b.open
                .cmp(&a.open)
                .then_with(|| a.assignee.cmp(&b.assignee))
        });
        CurrentFigures {
            as_of: rome_rfc3339(now),
            open: cases.len() as i64,
            overdue,
            orphans,
            operators,
        }
    }

    /// Every open case now, with what the clock, the orphan rule and the lists need,
    /// aggregated to one JSON text by the database (subjects may hold any character).
    pub(super) async fn open_cases_now(&self) -> Result<Vec<OpenCase>> {
        let columns = "c.reference, c.subject, c.case_type, c.status, c.received_at, c.received_on, c.term_days, \
            c.paused_days, c.pause_kind, c.pause_started_on, c.last_event_at, c.assignee_id, u.login, u.name";
        let sql = format!(
            "SELECT {} AS packed FROM cases c LEFT JOIN users u ON u.id = c.assignee_id \
             WHERE c.closed_at IS NULL AND c.status <> 'closed'",
            self.json_rows(columns)
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.read)
            .await?;
        let packed = get_opt_str(&row, "packed")?.unwrap_or_else(|| "[]".into());
        serde_json::from_str(&packed)
            .map_err(|e| StoreError::Corrupt(format!("open cases for the reports: {e}")))
    }
}

#[cfg(test)]
mod tests {

    use crate::reports::tests::{period, seed};
    use crate::testing::with_test_store;

    #[tokio::test]
    async fn sla_shares_and_lists() {
        with_test_store(|store, clock| async move {
            seed(&store, &clock).await;
            let r = store.sla_report(period()).await.unwrap();
            assert_eq!((r.closed, r.on_time, r.on_time_share), (5, 4, Some(0.8)));
            assert_eq!((r.within_service, r.within_service_share), (4, Some(0.8)));
            assert_eq!(r.overdue.len(), 1);
            let late = &r.overdue[0];
            assert_eq!(
                (
                    late.case_type.as_str(),
                    late.due_at.as_str(),
                    late.days_late,
                    late.assignee.as_deref()
                ),
                ("ztl_permit", "2026-12-28", 8, None)
            );
            assert_eq!(r.orphans.len(), 1);
            let orphan = &r.orphans[0];
            assert_eq!(orphan.reference, late.reference);
            assert_eq!(
                (orphan.reason.as_str(), orphan.idle_days),
                ("unassigned_idle", 40)
            );
            assert_eq!(orphan.received_at, "2026-11-26T10:30:00+01:00");
            assert_eq!(r.as_of, "2027-01-05T10:30:00+01:00");
            // The lists agree with the case list's filters.
            let listed = |overdue, orphan| crate::cases::CaseFilter {
                overdue,
                orphan,
                page: 1,
                per_page: 50,
                ..Default::default()
            };
            assert_eq!(store.list_cases(&listed(true, false)).await.unwrap().1, 1);
            assert_eq!(store.list_cases(&listed(false, true)).await.unwrap().1, 1);
        })
        .await;
    }
}
