//! The throughput report: opened against closed, lead times, first answers and the
//! backlog over a period, grouped by case type, channel or month.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, Duration, NaiveDate};
use sportello_domain::case::Channel;
use sportello_domain::reports::{
    AGE_BUCKETS, age_bucket, first_of_next_month, month_key, week_start,
};

use super::figures::{Accumulator, Groups, OpenAt, RomeDays, fast_date};
use super::model::{AgeBucket, Backlog, GroupBy, Names, Period, ThroughputReport, WeekFigures};
use super::queries::{parse_closed, parse_day_counts};
use crate::time::rome_rfc3339;
use crate::{Result, Store, date_text, to_ms};

impl Store {
    /// The throughput report of a period, grouped as asked (see the module's definitions).
    pub async fn throughput_report(
        &self,
        period: Period,
        group_by: GroupBy,
    ) -> Result<ThroughputReport> {
        let now = self.clock.now();
        let start = period.start();
        let as_of = period.end().min(now).max(start);
        let (as_of_ms, start_ms) = (to_ms(as_of), to_ms(start));
        let mut names = Names::default();
        let (closed_packed, answers_packed, received_packed, open_packed, open_now) = tokio::try_join!(
            self.closed_cases_packed(start_ms, as_of_ms),
            self.first_answers_packed(start_ms, as_of_ms),
            self.received_per_day_packed(period.from, period.to),
            self.open_at_packed(as_of_ms),
            self.open_cases_now(),
        )?;
        let closed = parse_closed(&closed_packed, Some(&answers_packed), &mut names)?;
        let received = parse_day_counts(received_packed.as_deref(), &mut names)?;
        let open_at = parse_day_counts(open_packed.as_deref(), &mut names)?;
        let days = RomeDays::new(
            period.from - Duration::days(7),
            period.to + Duration::days(7),
        );
        let closed_on: Vec<NaiveDate> = closed.iter().map(|c| days.date(c.closed_at)).collect();

        let key = |case_type: u16, channel: u16, names: &Names| -> String {
            match group_by {
                GroupBy::CaseType => names.name(case_type).to_owned(),
                GroupBy::Channel => names.name(channel).to_owned(),
                GroupBy::Month => String::new(),
            }
        };
        let mut groups = Groups::default();
        match group_by {
            GroupBy::CaseType => {
                for t in &self.settings.case_types {
                    groups.slot(&t.id);
                }
            }
            GroupBy::Channel => {
                for c in Channel::ALL {
                    groups.slot(c.as_str());
                }
            }
            GroupBy::Month => {
                let mut month = period.from.with_day(1).unwrap_or(period.from);
                while month <= period.to {
                    groups.slot(&month_key(month));
                    month = first_of_next_month(month);
                }
            }
        }
        let mut totals = Accumulator::default();
        // The group of each closed case, looked up once per case type, channel or month.
        let mut slots: HashMap<(i32, u32), usize> = HashMap::new();
        for (c, &on) in closed.iter().zip(&closed_on) {
            let cache_key = match group_by {
                GroupBy::CaseType => (i32::from(c.case_type), 0),
                GroupBy::Channel => (i32::from(c.channel), 0),
                GroupBy::Month => (on.year(), on.month()),
            };
            let slot = match slots.get(&cache_key) {
                Some(&slot) => slot,
                None => {
                    let k = match group_by {
                        GroupBy::Month => month_key(on),
                        _ => key(c.case_type, c.channel, &names),
                    };
                    let slot = groups.slot(&k);
                    slots.insert(cache_key, slot);
                    slot
                }
            };
            groups.get(slot).add_closed(c, on);
            totals.add_closed(c, on);
        }
        for r in &received {
            let k = match group_by {
                GroupBy::Month => month_key(r.day),
                _ => key(r.case_type, r.channel, &names),
            };
            let slot = groups.slot(&k);
            groups.get(slot).opened += r.count;
            totals.opened += r.count;
        }
        let open_total: i64 = open_at.iter().map(|o| o.count).sum();
        totals.open = open_total;
        let mut closed_at: Vec<i64> = closed.iter().map(|c| c.closed_at).collect();
        closed_at.sort_unstable();
        let mut received_days: BTreeMap<NaiveDate, i64> = BTreeMap::new();
        for r in &received {
            *received_days.entry(r.day).or_default() += r.count;
        }
        let history = OpenAt {
            as_of_ms,
            open_at_as_of: open_total,
            received: received_days.into_iter().collect(),
            closed_at: &closed_at,
        };
        match group_by {
            GroupBy::Month => {
                for (month, acc) in &mut groups.slots {
                    if let Ok(first) = fast_date(&format!("{month}-01")) {
                        acc.open = history.at_start_of(first_of_next_month(first));
                    }
                }
            }
            _ => {
                for o in &open_at {
                    let slot = groups.slot(&key(o.case_type, o.channel, &names));
                    groups.get(slot).open += o.count;
                }
            }
        }

        // Weeks: every ISO week that meets the period.
        let mut weekly = Vec::new();
        let mut monday =
            period.from - Duration::days(i64::from(period.from.weekday().num_days_from_monday()));
        let mut week_opened: BTreeMap<NaiveDate, i64> = BTreeMap::new();
        for (day, n) in &history.received {
            *week_opened.entry(week_start(*day)).or_default() += n;
        }
        let mut week_closed: BTreeMap<NaiveDate, i64> = BTreeMap::new();
        for on in &closed_on {
            *week_closed.entry(week_start(*on)).or_default() += 1;
        }
        while monday <= period.to {
            let iso = monday.iso_week();
            let next = monday + Duration::days(7);
            weekly.push(WeekFigures {
                week: format!("{}-W{:02}", iso.year(), iso.week()),
                starts_on: date_text(monday),
                opened: week_opened.get(&monday).copied().unwrap_or(0),
                closed: week_closed.get(&monday).copied().unwrap_or(0),
                open_at_end: history.at_start_of(next),
            });
            monday = next;
        }

        // The backlog's age at the end of the period.
        let as_of_day = days.date(as_of_ms - 1).min(period.to);
        let mut age: Vec<AgeBucket> = AGE_BUCKETS
            .iter()
            .map(|(label, min, max)| AgeBucket {
                bucket: (*label).to_owned(),
                min_days: *min,
                max_days: *max,
                open: 0,
            })
            .collect();
        for o in &open_at {
            let days_old = (as_of_day - o.day).num_days().max(0);
            if let Some(bucket) = age.get_mut(age_bucket(days_old)) {
                bucket.open += o.count;
            }
        }

        let current = self.current_figures(now, &open_now);
        Ok(ThroughputReport {
            from: date_text(period.from),
            to: date_text(period.to),
            group_by,
            items: groups.finish(),
            totals: totals.finish("total".into()),
            weekly,
            backlog: Backlog {
                as_of: rome_rfc3339(as_of),
                open: open_total,
                age,
            },
            current,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::model::{FirstAnswer, LeadTimes, OrphanCounts};

    use crate::reports::tests::{d, period, seed};
    use crate::testing::with_test_store;

    #[tokio::test]
    async fn throughput_by_case_type() {
        with_test_store(|store, clock| async move {
            seed(&store, &clock).await;
            let r = store
                .throughput_report(period(), GroupBy::CaseType)
                .await
                .unwrap();
            let t = &r.totals;
            assert_eq!((t.opened, t.closed, t.open), (7, 5, 2));
            // Gross 1, 2, 5, 12, 36 days; net 1, 2, 5, 6, 36; first answers 1, 2, 3, 35.
            assert_eq!(
                t.lead_time_days,
                LeadTimes {
                    median: Some(5.0),
                    p90: Some(26.4),
                    median_net: Some(5.0),
                    p90_net: Some(24.0)
                }
            );
            assert_eq!(
                t.first_answer_days,
                FirstAnswer {
                    median: Some(2.5),
                    p90: Some(25.4),
                    answered: 4
                }
            );
            assert_eq!(
                (t.within_legal_term, t.within_legal_term_share),
                (4, Some(0.8))
            );
            assert_eq!((t.within_service, t.within_service_share), (4, Some(0.8)));
            let groups: Vec<(&str, i64, i64, i64)> = r
                .items
                .iter()
                .map(|g| (g.group.as_str(), g.opened, g.closed, g.open))
                .collect();
            assert_eq!(
                groups,
                [("cude", 2, 1, 1), ("seg", 1, 1, 0), ("ztl_permit", 4, 3, 1)]
            );
            let ztl = &r.items[2];
            assert_eq!(ztl.lead_time_days.median, Some(5.0));
            assert_eq!(
                ztl.first_answer_days.answered, 2,
                "C was withdrawn unanswered"
            );
            let cude = &r.items[0];
            assert_eq!(
                (cude.lead_time_days.median, cude.lead_time_days.median_net),
                (Some(12.0), Some(6.0))
            );

            // Week 48 (from Monday 23 November): six received, C and G closed.
            let w48 = r.weekly.iter().find(|w| w.week == "2026-W48").unwrap();
            assert_eq!(
                (
                    w48.starts_on.as_str(),
                    w48.opened,
                    w48.closed,
                    w48.open_at_end
                ),
                ("2026-11-23", 6, 2, 4)
            );
            assert_eq!(r.weekly.first().unwrap().week, "2026-W44");
            assert_eq!(r.weekly.last().unwrap().week, "2027-W01");
            assert_eq!(r.weekly.iter().map(|w| w.opened).sum::<i64>(), 7);
            assert_eq!(r.weekly.iter().map(|w| w.closed).sum::<i64>(), 5);
            assert_eq!(r.weekly.last().unwrap().open_at_end, 2);
            let wip: Vec<i64> = r.weekly.iter().map(|w| w.open_at_end).collect();
            // Week 53 of 2026 takes E in (31 December) and F out (1 January).
            assert_eq!(wip, [0, 0, 0, 0, 4, 3, 2, 2, 2, 2, 2]);

            assert_eq!(r.backlog.open, 2);
            let ages: Vec<(&str, i64)> = r
                .backlog
                .age
                .iter()
                .map(|b| (b.bucket.as_str(), b.open))
                .collect();
            assert_eq!(
                ages,
                [
                    ("0-7", 1),
                    ("8-15", 0),
                    ("16-30", 0),
                    ("31-60", 1),
                    (">60", 0)
                ]
            );

            let now = &r.current;
            assert_eq!((now.open, now.overdue), (2, 1));
            assert_eq!(
                now.orphans,
                OrphanCounts {
                    total: 1,
                    unassigned: 1,
                    idle: 1
                }
            );
            let load: Vec<(Option<&str>, i64, i64, i64)> = now
                .operators
                .iter()
                .map(|o| (o.assignee.as_deref(), o.open, o.overdue, o.orphan))
                .collect();
            assert_eq!(load, [(None, 1, 1, 1), (Some("op2"), 1, 0, 0)]);
            assert_eq!(now.operators[1].name.as_deref(), Some("Otto Secondo"));
        })
        .await;
    }

    #[tokio::test]
    async fn throughput_by_month_and_channel() {
        with_test_store(|store, clock| async move {
            seed(&store, &clock).await;
            let r = store
                .throughput_report(period(), GroupBy::Month)
                .await
                .unwrap();
            let months: Vec<(&str, i64, i64, i64)> = r
                .items
                .iter()
                .map(|g| (g.group.as_str(), g.opened, g.closed, g.open))
                .collect();
            // Open at each month's end: November 6 − 2, December 7 − 4, January now.
            assert_eq!(
                months,
                [
                    ("2026-11", 6, 2, 4),
                    ("2026-12", 1, 2, 3),
                    ("2027-01", 0, 1, 2)
                ]
            );
            assert_eq!(r.items[1].lead_time_days.median, Some(8.5), "A and B");

            let r = store
                .throughput_report(period(), GroupBy::Channel)
                .await
                .unwrap();
            assert_eq!(r.items.len(), Channel::ALL.len());
            let counter = r.items.iter().find(|g| g.group == "counter").unwrap();
            assert_eq!((counter.opened, counter.closed, counter.open), (2, 1, 1));
            let sms = r.items.iter().find(|g| g.group == "sms").unwrap();
            assert_eq!(
                (sms.opened, sms.closed, sms.lead_time_days.median),
                (0, 0, None)
            );

            // A period that ends before the work did: figures as of its last day.
            let early = Period::new(d(2026, 11, 1), d(2026, 11, 30)).unwrap();
            let r = store
                .throughput_report(early, GroupBy::CaseType)
                .await
                .unwrap();
            assert_eq!((r.totals.opened, r.totals.closed, r.totals.open), (6, 2, 4));
            assert_eq!(r.backlog.as_of, "2026-12-01T00:00:00+01:00");
            assert_eq!(r.backlog.age[0].open, 4, "four days old on 30 November");
            assert_eq!(r.current.open, 2, "the present is the present");
            let empty = Period::new(d(2025, 1, 1), d(2025, 1, 31)).unwrap();
            let r = store
                .throughput_report(empty, GroupBy::CaseType)
                .await
                .unwrap();
            assert_eq!((r.totals.opened, r.totals.closed, r.totals.open), (0, 0, 0));
            assert_eq!(r.totals.lead_time_days, LeadTimes::default());
        })
        .await;
    }
}
