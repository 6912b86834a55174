//! The office's measurements: throughput over a period — lead times, time to
//! first answer, opened against closed per week, backlog, terms met — and the SLA report
//! with the lists of late and orphan cases.
//!
//! Both reports read a year of cases in a handful of queries whatever the number of cases
//! (no query per case): the rows come aggregated or packed into one text per query (the
//! drivers' cost is per row), the percentiles are computed here from the fetched values
//! (SQLite and PostgreSQL have no common percentile function), and the indexes of
//! migration 0014 let SQLite answer from indexes alone.
//!
//! Definitions, all in calendar days and Europe/Rome dates:
//! - a case is *closed in the period* when its `closed_at` falls in it; a case is *open at*
//!   an instant when it was received before it and not closed before it. A reopened case
//!   counts as open from its reception (the case row keeps only its last closing);
//! - *lead time*: `closed_at − received_at`; *net* lead time: that minus the days the legal
//!   clock was suspended (`paused_days`), never below zero;
//! - *first answer*: see [`ANSWER_ACTIONS`];
//! - *within the legal term*: closed on or before its due date (`due_on`, which already
//!   includes the suspensions); *within the service standard*: closed on or before
//!   received date + the office's `service_days` + the suspended days;
//! - overdue and orphan cases follow [`sportello_domain::sla`], exactly as the case list
//!   shows them.
//!
//! Percentiles interpolate linearly between the closest ranks (PostgreSQL's
//! `percentile_cont`), so the median of an even number of values is the mean of the two in
//! the middle.
//!
//! Split by capability: [`model`] holds the types, [`queries`] reads, [`figures`] walks the
//! rows, and each report has its own module; the arithmetic is in `sportello_domain::reports`.

mod figures;
mod model;
mod queries;
mod sla;
mod throughput;

pub use model::{
    ANSWER_ACTIONS, AgeBucket, Backlog, CurrentFigures, FirstAnswer, GroupBy, GroupFigures,
    LeadTimes, MAX_PERIOD_DAYS, OperatorLoad, OrphanCase, OrphanCounts, OverdueCase, Period,
    SlaReport, ThroughputReport, WeekFigures,
};

#[cfg(test)]
pub(crate) mod tests {
    use chrono::{Duration, NaiveDate};

    use super::Period;
    use crate::Store;
    use crate::cases::tests::request;
    use crate::documents::OutgoingDocument;
    use crate::testing::fixture_now;
    use sportello_domain::case::Channel;
    use sportello_domain::roles::Role;
    use sportello_domain::workflow::Action;

    pub(crate) fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// Seven cases over forty days (fixture start: Thursday 26 November 2026):
    /// - A ztl/counter: answered (approve) after 3 days, closed after 5;
    /// - B cude/web: integration asked after 2 days, received after 8 (6 days suspended),
    ///   closed after 12;
    /// - C ztl/email: withdrawn after 1 day, no answer;
    /// - D ztl/counter: never touched (late and orphan at the end);
    /// - E cude/web: received on day 35, assigned, open;
    /// - F ztl/phone: approved on day 35, closed on day 36 (past its due date, 28 December);
    /// - G seg/pec: a letter registered outgoing on day 1, withdrawn on day 2.
    pub(crate) async fn seed(store: &Store, clock: &sportello_domain::clock::FixedClock) {
        store
            .add_user("op1", "Olga Prima", Role::Operator)
            .await
            .unwrap();
        store
            .add_user("op2", "Otto Secondo", Role::Operator)
            .await
            .unwrap();
        let t0 = fixture_now();
        let at =
            |days: i64, hours: i64| clock.set(t0 + Duration::days(days) + Duration::hours(hours));
        let open = |case_type: &str, channel: Channel| {
            let mut r = request(case_type);
            r.channel = channel;
            r
        };
        let act = |r: String, action: Action, actor: &'static str| async move {
            store
                .apply_action(&r, &action, Some("nota"), actor)
                .await
                .unwrap();
        };
        let assign = |user: &str| Action::Assign { user: user.into() };
        at(0, 0);
        let mut refs = Vec::new();
        for (t, ch) in [
            ("ztl_permit", Channel::Counter),
            ("cude", Channel::Web),
            ("ztl_permit", Channel::Email),
            ("ztl_permit", Channel::Counter),
            ("ztl_permit", Channel::Phone),
            ("seg", Channel::Pec),
        ] {
            refs.push(
                store
                    .create_case(open(t, ch))
                    .await
                    .unwrap()
                    .summary
                    .reference,
            );
        }
        let [a, b, c, _d, f, g] = <[String; 6]>::try_from(refs).unwrap();
        at(0, 1);
        for r in [&a, &b, &f] {
            act(r.clone(), assign("op1"), "sup").await;
        }
        act(g.clone(), assign("op2"), "sup").await;
        at(1, 0);
        act(a.clone(), Action::StartReview, "op1").await;
        act(c.clone(), Action::Withdraw, "op2").await;
        let letter = OutgoingDocument {
            sha256: "ab".repeat(32),
            size: 10,
            filename: "lettera.pdf".into(),
            media_type: "application/pdf".into(),
            register: Some(("Mario Rossi".into(), "Comunicazione".into())),
        };
        store
            .apply_action_with(&g, &Action::StartReview, None, "op2", &[letter])
            .await
            .unwrap();
        at(2, 0);
        act(
            b.clone(),
            Action::RequestIntegration {
                missing: vec!["libretto".into()],
            },
            "op1",
        )
        .await;
        act(g.clone(), Action::Withdraw, "op2").await;
        at(3, 0);
        act(a.clone(), Action::Approve, "op1").await;
        at(4, 0);
        act(a.clone(), Action::Issue, "op1").await;
        at(5, 0);
        act(a.clone(), Action::Close, "op1").await;
        at(8, 0);
        act(b.clone(), Action::IntegrationReceived, "op1").await;
        at(10, 0);
        act(b.clone(), Action::Approve, "op1").await;
        act(b.clone(), Action::Issue, "op1").await;
        at(12, 0);
        act(b.clone(), Action::Close, "op1").await;
        at(20, 0);
        act(f.clone(), Action::StartReview, "op1").await;
        at(35, 0);
        let e = store
            .create_case(open("cude", Channel::Web))
            .await
            .unwrap()
            .summary
            .reference;
        act(e, assign("op2"), "sup").await;
        act(f.clone(), Action::Approve, "op1").await;
        act(f.clone(), Action::Issue, "op1").await;
        at(36, 0);
        act(f, Action::Close, "op1").await;
        at(40, 0);
    }

    pub(crate) fn period() -> Period {
        Period::new(d(2026, 11, 1), d(2027, 1, 5)).unwrap()
    }
}
