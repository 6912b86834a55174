//! The minute tick's work on cases: suspensions that reached their legal maximum end,
//! and the office's gauges (open, overdue, orphan) are counted and kept once a day.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sportello_domain::calendar::rome_date;
use sportello_domain::case::flags;
use sportello_domain::sla::Pause;
use sportello_domain::workflow::PauseKind;
use utoipa::ToSchema;

use super::model::{CaseFilter, json_text};
use crate::journal::insert_event;
use crate::{Result, Store, date_text, get_i64, get_opt_str, get_str, parse_date, to_ms};

impl Store {
    /// Ends suspensions that have reached their legal maximum (integration: 30 days, then
    /// flag `integration_expired`; art. 10-bis: 10 days), so lists and reports see the
    /// clock running again. Idempotent; returns how many cases changed.
    pub async fn sla_tick(&self) -> Result<usize> {
        let now = self.clock.now();
        let today = rome_date(now);
        let open = sqlx::query("SELECT reference, pause_kind, pause_started_on FROM cases WHERE pause_kind IS NOT NULL")
            .fetch_all(&self.read)
            .await?;
        let mut changed = 0;
        for row in open {
            let (Some(kind), Some(started)) = (
                get_opt_str(&row, "pause_kind")?,
                get_opt_str(&row, "pause_started_on")?,
            ) else {
                continue;
            };
            let Some(kind) = PauseKind::parse(&kind) else {
                continue;
            };
            let pause = Pause {
                kind,
                started_on: parse_date(&started)?,
                ended_on: None,
            };
            if pause.in_force(today) {
                continue;
            }
            let reference = get_str(&row, "reference")?;
            if self.lapse_pause(&reference, &pause, now).await? {
                changed += 1;
            }
        }
        Ok(changed)
    }

    pub(super) async fn lapse_pause(
        &self,
        reference: &str,
        expected: &Pause,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(
            "UPDATE cases SET version = version + 1 WHERE reference = $1 RETURNING id, pause_kind, pause_started_on, \
             paused_days, received_on, term_days, flags",
        )
        .bind(reference)
        .fetch_one(&mut *tx)
        .await?;
        // Someone may have resumed the clock meanwhile.
        if get_opt_str(&row, "pause_kind")?.as_deref() != Some(expected.kind.as_str())
            || get_opt_str(&row, "pause_started_on")? != Some(date_text(expected.started_on))
        {
            return Ok(false);
        }
        let case_id = get_i64(&row, "id")?;
        let lapsed_on = expected.lapses_on();
        let days = self
            .end_pause(&mut tx, case_id, &row, lapsed_on, now)
            .await?
            .unwrap_or(0);
        let mut detail = serde_json::json!({ "pause": expected.kind.as_str(), "lapsed_on": date_text(lapsed_on), "paused_days": days });
        if expected.kind == PauseKind::Integration {
            let mut case_flags: Vec<String> =
                serde_json::from_str(&get_str(&row, "flags")?).unwrap_or_default();
            if !case_flags.iter().any(|f| f == flags::INTEGRATION_EXPIRED) {
                case_flags.push(flags::INTEGRATION_EXPIRED.to_owned());
            }
            sqlx::query("UPDATE cases SET flags = $1 WHERE id = $2")
                .bind(json_text(&case_flags))
                .bind(case_id)
                .execute(&mut *tx)
                .await?;
            detail["flag"] = flags::INTEGRATION_EXPIRED.into();
        }
        sqlx::query("UPDATE cases SET last_event_at = $1 WHERE id = $2")
            .bind(to_ms(now))
            .bind(case_id)
            .execute(&mut *tx)
            .await?;
        insert_event(&mut tx, case_id, now, "system", "pause_lapsed", &detail).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Counts for `/metrics`: open, overdue and orphan cases.
    pub async fn case_gauges(&self) -> Result<BTreeMap<&'static str, i64>> {
        let mut out = BTreeMap::new();
        let open = sqlx::query("SELECT COUNT(*) AS n FROM cases WHERE status <> 'closed'")
            .fetch_one(&self.read)
            .await?;
        out.insert("open", get_i64(&open, "n")?);
        for (name, filter) in [
            (
                "overdue",
                CaseFilter {
                    overdue: true,
                    per_page: 0,
                    ..CaseFilter::default()
                },
            ),
            (
                "orphan",
                CaseFilter {
                    orphan: true,
                    per_page: 0,
                    ..CaseFilter::default()
                },
            ),
        ] {
            out.insert(name, self.list_cases(&filter).await?.1);
        }
        Ok(out)
    }
}

/// The office's gauges of one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DailyGauges {
    /// The day (Europe/Rome).
    pub day: String,
    /// Open cases.
    pub open: i64,
    /// Open cases past their legal term.
    pub overdue: i64,
    /// Orphan cases.
    pub orphan: i64,
}

impl Store {
    /// Records today's gauges the first time it is called on a day (the minute tick calls
    /// it); later calls that day change nothing. Returns whether it recorded.
    pub async fn record_daily_gauges(&self) -> Result<bool> {
        let now = self.clock.now();
        let day = date_text(rome_date(now));
        let seen = sqlx::query("SELECT 1 AS seen FROM daily_gauges WHERE day = $1")
            .bind(&day)
            .fetch_optional(&self.read)
            .await?;
        if seen.is_some() {
            return Ok(false);
        }
        let gauges = self.case_gauges().await?;
        let done = sqlx::query(
            "INSERT INTO daily_gauges (day, open, overdue, orphan, recorded_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (day) DO NOTHING",
        )
        .bind(&day)
        .bind(gauges.get("open").copied().unwrap_or_default())
        .bind(gauges.get("overdue").copied().unwrap_or_default())
        .bind(gauges.get("orphan").copied().unwrap_or_default())
        .bind(to_ms(now))
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The recorded gauges of the days `from`..=`to`, in order.
    pub async fn gauge_history(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<DailyGauges>> {
        let rows = sqlx::query(
            "SELECT day, open, overdue, orphan FROM daily_gauges WHERE day >= $1 AND day <= $2 ORDER BY day",
        )
        .bind(date_text(from))
        .bind(date_text(to))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DailyGauges {
                    day: get_str(r, "day")?,
                    open: get_i64(r, "open")?,
                    overdue: get_i64(r, "overdue")?,
                    orphan: get_i64(r, "orphan")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::tests::request;
    use crate::testing::with_test_store;
    use chrono::Duration;

    #[tokio::test]
    async fn the_gauges_are_recorded_once_a_day() {
        use sportello_domain::clock::Clock;
        with_test_store(|store, clock| async move {
            store.create_case(request("ztl_permit")).await.unwrap();
            assert!(store.record_daily_gauges().await.unwrap());
            assert!(!store.record_daily_gauges().await.unwrap(), "once a day");
            clock.advance(Duration::days(40));
            store.create_case(request("ztl_permit")).await.unwrap();
            assert!(store.record_daily_gauges().await.unwrap());
            let today = rome_date(clock.now());
            let history = store
                .gauge_history(today - Duration::days(60), today)
                .await
                .unwrap();
            let figures: Vec<(i64, i64, i64)> = history
                .iter()
                .map(|g| (g.open, g.overdue, g.orphan))
                .collect();
            // 40 days on, the first case is late and orphan (unassigned, no news).
            assert_eq!(figures, [(1, 0, 0), (2, 1, 1)]);
            assert_eq!(history[1].day, date_text(today));
        })
        .await;
    }
}
