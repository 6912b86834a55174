//! Walking the rows read into figures: Rome dates by binary search, sums per group, and
//! the open count at any instant of the period. The arithmetic itself is in
//! `sportello_domain::reports`.

use std::collections::HashMap;

use chrono::{Duration, NaiveDate};
use sportello_domain::calendar::{rome_date, rome_start_of_day};
use sportello_domain::reports::{days_between, median_p90, share};

use super::model::{ClosedCase, FirstAnswer, GroupFigures, LeadTimes};
use crate::{Result, StoreError, from_ms, to_ms};

/// A `YYYY-MM-DD` date as stored; anything else is corrupt data.
pub(super) fn fast_date(s: &str) -> Result<NaiveDate> {
    sportello_domain::reports::fast_date(s)
        .ok_or_else(|| StoreError::Corrupt(format!("date {s:?}")))
}

/// Rome dates of instants by binary search over precomputed midnights: a time-zone lookup
/// per case would cost more than the rest of the report.
pub(super) struct RomeDays {
    pub(super) first: NaiveDate,
    pub(super) starts: Vec<i64>,
}

impl RomeDays {
    pub(super) fn new(first: NaiveDate, last: NaiveDate) -> RomeDays {
        let days = (last - first).num_days().max(0) + 2;
        let starts = (0..days)
            .map(|i| to_ms(rome_start_of_day(first + Duration::days(i))))
            .collect();
        RomeDays { first, starts }
    }

    pub(super) fn date(&self, ms: i64) -> NaiveDate {
        let (Some(&lo), Some(&hi)) = (self.starts.first(), self.starts.last()) else {
            return self.first;
        };
        if ms < lo || ms >= hi {
            return from_ms(ms).map(rome_date).unwrap_or(self.first);
        }
        let i = self.starts.partition_point(|&s| s <= ms) - 1;
        self.first + Duration::days(i as i64)
    }
}

/// What is summed per group while the cases are walked.
#[derive(Debug, Default)]
pub(super) struct Accumulator {
    pub(super) opened: i64,
    pub(super) closed: i64,
    pub(super) open: i64,
    pub(super) gross: Vec<f64>,
    pub(super) net: Vec<f64>,
    pub(super) first_answer: Vec<f64>,
    pub(super) within_legal_term: i64,
    pub(super) within_service: i64,
}

impl Accumulator {
    pub(super) fn add_closed(&mut self, c: &ClosedCase, closed_on: NaiveDate) {
        self.closed += 1;
        let gross = days_between(c.received_at, c.closed_at);
        self.gross.push(gross);
        self.net.push((gross - c.paused_days as f64).max(0.0));
        if let Some(at) = c.first_answer_at {
            self.first_answer.push(days_between(c.received_at, at));
        }
        if closed_on <= c.due_on {
            self.within_legal_term += 1;
        }
        if closed_on <= c.received_on + Duration::days(c.service_days + c.paused_days) {
            self.within_service += 1;
        }
    }

    pub(super) fn finish(mut self, group: String) -> GroupFigures {
        let (median, p90) = median_p90(&mut self.gross);
        let (median_net, p90_net) = median_p90(&mut self.net);
        let (fa_median, fa_p90) = median_p90(&mut self.first_answer);
        GroupFigures {
            group,
            opened: self.opened,
            closed: self.closed,
            open: self.open,
            lead_time_days: LeadTimes {
                median,
                p90,
                median_net,
                p90_net,
            },
            first_answer_days: FirstAnswer {
                median: fa_median,
                p90: fa_p90,
                answered: self.first_answer.len() as i64,
            },
            within_legal_term: self.within_legal_term,
            within_legal_term_share: share(self.within_legal_term, self.closed),
            within_service: self.within_service,
            within_service_share: share(self.within_service, self.closed),
        }
    }
}

/// The groups of a report by name, in the order met; sorted by name at the end.
#[derive(Debug, Default)]
pub(super) struct Groups {
    pub(super) slots: Vec<(String, Accumulator)>,
    pub(super) index: HashMap<String, usize>,
}

impl Groups {
    pub(super) fn slot(&mut self, key: &str) -> usize {
        if let Some(&slot) = self.index.get(key) {
            return slot;
        }
        self.slots.push((key.to_owned(), Accumulator::default()));
        self.index.insert(key.to_owned(), self.slots.len() - 1);
        self.slots.len() - 1
    }

    pub(super) fn get(&mut self, slot: usize) -> &mut Accumulator {
        &mut self.slots[slot].1
    }

    pub(super) fn finish(mut self) -> Vec<GroupFigures> {
        self.slots.sort_by(|a, b| a.0.cmp(&b.0));
        self.slots
            .into_iter()
            .map(|(group, acc)| acc.finish(group))
            .collect()
    }
}

/// Open cases at any instant of the period from the open count at its `as_of` and the
/// receptions and closings in between: open(E) = open(as_of) − received in [E, as_of) +
/// closed in [E, as_of). Cheaper than asking the database once per week or month.
pub(super) struct OpenAt<'a> {
    pub(super) as_of_ms: i64,
    pub(super) open_at_as_of: i64,
    /// Receptions per day, sorted by day.
    pub(super) received: Vec<(NaiveDate, i64)>,
    /// Closing instants, sorted.
    pub(super) closed_at: &'a [i64],
}

impl OpenAt<'_> {
    /// Open cases at the start of `day` (or at `as_of`, when earlier).
    pub(super) fn at_start_of(&self, day: NaiveDate) -> i64 {
        let e = to_ms(rome_start_of_day(day));
        if e >= self.as_of_ms {
            return self.open_at_as_of;
        }
        let received_since: i64 = self
            .received
            .iter()
            .skip(self.received.partition_point(|(d, _)| *d < day))
            .map(|(_, n)| n)
            .sum();
        let closed_since =
            (self.closed_at.len() - self.closed_at.partition_point(|&c| c < e)) as i64;
        self.open_at_as_of - received_since + closed_since
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::model::{GroupBy, Period};
    use chrono::Utc;
    use sportello_domain::reports::first_of_next_month;

    use crate::reports::tests::d;

    use chrono::TimeZone;

    #[test]
    pub(super) fn dates_and_periods() {
        assert_eq!(fast_date("2026-02-28").unwrap(), d(2026, 2, 28));
        for bad in ["2026-02-30", "2026-2-28", "20260228xx", "", "abcd-ef-gh"] {
            assert!(fast_date(bad).is_err(), "{bad}");
        }
        let days = RomeDays::new(d(2026, 3, 20), d(2026, 4, 2));
        // 29 March 2026: clocks go forward; 23:30 UTC on the 28th is already the 29th in Rome.
        for ms in [
            to_ms(Utc.with_ymd_and_hms(2026, 3, 28, 23, 30, 0).unwrap()),
            to_ms(Utc.with_ymd_and_hms(2026, 3, 29, 22, 30, 0).unwrap()),
            to_ms(Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()),
            to_ms(rome_start_of_day(d(2026, 3, 25))),
            to_ms(rome_start_of_day(d(2026, 3, 25))) - 1,
        ] {
            assert_eq!(days.date(ms), rome_date(from_ms(ms).unwrap()), "{ms}");
        }
        assert!(Period::new(d(2026, 2, 1), d(2026, 1, 31)).is_err());
        assert!(Period::new(d(2020, 1, 1), d(2026, 1, 31)).is_err());
        let p = Period::ending(d(2026, 11, 26), 365);
        assert_eq!((p.from(), p.to()), (d(2025, 11, 27), d(2026, 11, 26)));
        assert_eq!(GroupBy::parse("month"), Some(GroupBy::Month));
        assert_eq!(GroupBy::parse("week"), None);
        assert_eq!(first_of_next_month(d(2026, 12, 31)), d(2027, 1, 1));
    }
}
