//! The legal clock of a case (L. 241/1990) and the orphan rule, as pure functions.
//!
//! `due_at` = received date + term days + paused days, rolled past Sundays and public
//! holidays; a pause counts the calendar days between the date it began and the date it
//! ended (or today, while it lasts), never more than its legal maximum.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::{HolidayCalendar, rome_date};
use crate::case::Status;
use crate::workflow::{PauseKind, clock_stopped_in};

/// One suspension of the clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// Why the clock stopped.
    pub kind: PauseKind,
    /// Local date (Europe/Rome) the suspension began.
    pub started_on: NaiveDate,
    /// Local date it ended; `None` while it lasts.
    pub ended_on: Option<NaiveDate>,
}

impl Pause {
    /// Calendar days this pause adds to the term as of `today`, capped at its legal maximum.
    pub fn counted_days(&self, today: NaiveDate) -> i64 {
        let end = self.ended_on.unwrap_or(today);
        (end - self.started_on)
            .num_days()
            .clamp(0, self.kind.max_days())
    }

    /// Whether the suspension is still in force on `today` (open and within its maximum).
    pub fn in_force(&self, today: NaiveDate) -> bool {
        self.ended_on.is_none() && (today - self.started_on).num_days() < self.kind.max_days()
    }

    /// The date an open pause lapses by law.
    pub fn lapses_on(&self) -> NaiveDate {
        self.started_on + Duration::days(self.kind.max_days())
    }
}

/// State of the legal clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockState {
    /// Days are counting.
    Running,
    /// Suspended (integration or art. 10-bis).
    Paused,
    /// The procedure is concluded.
    Stopped,
}

impl ClockState {
    /// Every state, so that each has its words on the pages.
    pub const ALL: &'static [ClockState] =
        &[ClockState::Running, ClockState::Paused, ClockState::Stopped];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClockState::Running => "running",
            ClockState::Paused => "paused",
            ClockState::Stopped => "stopped",
        }
    }
}

/// What the API shows as `sla` of a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaView {
    /// Clock state.
    pub state: ClockState,
    /// Legal due date.
    pub due_at: NaiveDate,
    /// `due_at` − today, in calendar days (negative when overdue).
    pub days_left: i64,
    /// The legal term in calendar days.
    pub term_days: u32,
    /// Days of suspension counted so far.
    pub paused_days: i64,
}

/// Computes the clock of a case from its list of pauses.
pub fn compute(
    cal: &HolidayCalendar,
    received_on: NaiveDate,
    term_days: u32,
    pauses: &[Pause],
    status: Status,
    today: NaiveDate,
) -> SlaView {
    let paused_days: i64 = pauses.iter().map(|p| p.counted_days(today)).sum();
    let paused_now = pauses.iter().any(|p| p.in_force(today));
    finish(
        cal,
        received_on,
        term_days,
        paused_days,
        paused_now,
        status,
        today,
    )
}

/// Computes the clock from the days of the pauses already ended and the pause still open,
/// as a case row keeps them (no need to load the pause history).
pub fn compute_from_totals(
    cal: &HolidayCalendar,
    received_on: NaiveDate,
    term_days: u32,
    ended_paused_days: i64,
    open_pause: Option<&Pause>,
    status: Status,
    today: NaiveDate,
) -> SlaView {
    let open_days = open_pause.map_or(0, |p| p.counted_days(today));
    let paused_now = open_pause.is_some_and(|p| p.in_force(today));
    finish(
        cal,
        received_on,
        term_days,
        ended_paused_days + open_days,
        paused_now,
        status,
        today,
    )
}

fn finish(
    cal: &HolidayCalendar,
    received_on: NaiveDate,
    term_days: u32,
    paused_days: i64,
    paused_now: bool,
    status: Status,
    today: NaiveDate,
) -> SlaView {
    let due_at = due_date(cal, received_on, term_days, paused_days);
    let state = if clock_stopped_in(status) {
        ClockState::Stopped
    } else if paused_now {
        ClockState::Paused
    } else {
        ClockState::Running
    };
    SlaView {
        state,
        due_at,
        days_left: (due_at - today).num_days(),
        term_days,
        paused_days,
    }
}

/// The due date: received date + term + paused days, rolled forward past Sundays and holidays.
pub fn due_date(
    cal: &HolidayCalendar,
    received_on: NaiveDate,
    term_days: u32,
    paused_days: i64,
) -> NaiveDate {
    cal.roll_deadline(received_on + Duration::days(i64::from(term_days) + paused_days.max(0)))
}

/// Facts for the orphan rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanFacts {
    /// Current status.
    pub status: Status,
    /// Whether someone is assigned.
    pub assigned: bool,
    /// When the case was received.
    pub received_at: DateTime<Utc>,
    /// The last timeline event.
    pub last_event_at: DateTime<Utc>,
    /// Clock state now.
    pub clock: ClockState,
}

/// Days without events after which a running case is orphan.
pub const IDLE_DAYS: i64 = 10;
/// Working days a case may stay unassigned before it is orphan.
pub const UNASSIGNED_WORKING_DAYS: i64 = 2;

/// A case is orphan when it is open and unassigned for more than 2 working days, or has had
/// no timeline event for 10 days while its clock runs (CONTRACT §7.2).
pub fn is_orphan(cal: &HolidayCalendar, facts: &OrphanFacts, now: DateTime<Utc>) -> bool {
    if !facts.status.is_open() {
        return false;
    }
    let unassigned_too_long = !facts.assigned
        && cal.working_days_between(rome_date(facts.received_at), rome_date(now))
            > UNASSIGNED_WORKING_DAYS;
    let idle = facts.clock == ClockState::Running
        && now - facts.last_event_at >= Duration::days(IDLE_DAYS);
    unassigned_too_long || idle
}

/// The latest received date for which an unassigned open case is orphan on `today`
/// (for list filters in SQL: `received_on <= cutoff`).
pub fn unassigned_orphan_cutoff(cal: &HolidayCalendar, today: NaiveDate) -> NaiveDate {
    let mut day = today;
    // Walk back until more than two working days lie between `day` and today.
    for _ in 0..60 {
        if cal.working_days_between(day, today) > UNASSIGNED_WORKING_DAYS {
            return day;
        }
        day -= Duration::days(1);
    }
    day
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn contract_example_due_date() {
        // 26/11 + 30 days = 26/12 (Santo Stefano), then Sunday 27/12 → Monday 28/12.
        let cal = HolidayCalendar::default();
        let view = compute(
            &cal,
            d(2026, 11, 26),
            30,
            &[],
            Status::Received,
            d(2026, 11, 26),
        );
        assert_eq!(view.due_at, d(2026, 12, 28));
        assert_eq!(view.days_left, 32);
        assert_eq!(view.state, ClockState::Running);
        assert_eq!(view.paused_days, 0);
    }

    #[test]
    fn pauses_extend_the_term_and_are_capped() {
        let cal = HolidayCalendar::default();
        let integration = Pause {
            kind: PauseKind::Integration,
            started_on: d(2026, 1, 10),
            ended_on: Some(d(2026, 1, 20)),
        };
        let view = compute(
            &cal,
            d(2026, 1, 5),
            30,
            std::slice::from_ref(&integration),
            Status::InReview,
            d(2026, 1, 21),
        );
        assert_eq!(view.paused_days, 10);
        assert_eq!(view.due_at, d(2026, 2, 14)); // 5/1 + 40 = 14/2, a Saturday: stays
        assert_eq!(view.state, ClockState::Running);

        let open = Pause {
            kind: PauseKind::Integration,
            started_on: d(2026, 1, 10),
            ended_on: None,
        };
        let during = compute(
            &cal,
            d(2026, 1, 5),
            30,
            std::slice::from_ref(&open),
            Status::WaitingCitizen,
            d(2026, 1, 15),
        );
        assert_eq!((during.state, during.paused_days), (ClockState::Paused, 5));
        let lapsed = compute(
            &cal,
            d(2026, 1, 5),
            30,
            std::slice::from_ref(&open),
            Status::WaitingCitizen,
            d(2026, 3, 1),
        );
        assert_eq!(
            (lapsed.state, lapsed.paused_days),
            (ClockState::Running, 30)
        );

        let notice = Pause {
            kind: PauseKind::RejectionNotice,
            started_on: d(2026, 1, 10),
            ended_on: Some(d(2026, 2, 10)),
        };
        assert_eq!(notice.counted_days(d(2026, 3, 1)), 10);
    }

    #[test]
    fn totals_agree_with_the_pause_list() {
        let cal = HolidayCalendar::default();
        let ended = Pause {
            kind: PauseKind::Integration,
            started_on: d(2026, 1, 10),
            ended_on: Some(d(2026, 1, 20)),
        };
        let open = Pause {
            kind: PauseKind::RejectionNotice,
            started_on: d(2026, 2, 1),
            ended_on: None,
        };
        for today in [d(2026, 2, 3), d(2026, 2, 20)] {
            let a = compute(
                &cal,
                d(2026, 1, 5),
                30,
                &[ended.clone(), open.clone()],
                Status::RejectionNotice,
                today,
            );
            let b = compute_from_totals(
                &cal,
                d(2026, 1, 5),
                30,
                10,
                Some(&open),
                Status::RejectionNotice,
                today,
            );
            assert_eq!(a, b);
        }
    }

    #[test]
    fn stopped_after_decision() {
        let cal = HolidayCalendar::default();
        let view = compute(&cal, d(2026, 1, 5), 30, &[], Status::Issued, d(2026, 1, 21));
        assert_eq!(view.state, ClockState::Stopped);
    }

    #[test]
    fn orphan_rule() {
        let cal = HolidayCalendar::default();
        // Received Monday 23/11/2026 10:00 Rome.
        let received = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
        let facts = OrphanFacts {
            status: Status::Received,
            assigned: false,
            received_at: received,
            last_event_at: received,
            clock: ClockState::Running,
        };
        let wed = Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap();
        let thu = Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap();
        assert!(!is_orphan(&cal, &facts, wed));
        assert!(is_orphan(&cal, &facts, thu));
        let assigned = OrphanFacts {
            assigned: true,
            ..facts.clone()
        };
        assert!(!is_orphan(&cal, &assigned, thu));
        let idle_at = received + Duration::days(10);
        assert!(is_orphan(&cal, &assigned, idle_at));
        assert!(!is_orphan(&cal, &assigned, idle_at - Duration::minutes(1)));
        let paused = OrphanFacts {
            clock: ClockState::Paused,
            ..assigned.clone()
        };
        assert!(!is_orphan(&cal, &paused, idle_at + Duration::days(5)));
        let closed = OrphanFacts {
            status: Status::Closed,
            ..facts
        };
        assert!(!is_orphan(&cal, &closed, idle_at));
        // The SQL cutoff agrees: on Thursday 26/11 a case received on Monday 23/11 is orphan, Tuesday's is not.
        assert_eq!(
            unassigned_orphan_cutoff(&cal, d(2026, 11, 26)),
            d(2026, 11, 23)
        );
    }

    proptest! {
        #[test]
        fn due_date_is_monotonic_and_never_a_sunday(days in 0i64..3000, term in 1u32..200, paused in 0i64..60, extra in 0i64..60) {
            let cal = HolidayCalendar::default();
            let start = d(2024, 1, 1) + Duration::days(days);
            let due = due_date(&cal, start, term, paused);
            prop_assert!(due >= start + Duration::days(i64::from(term) + paused));
            prop_assert!(due.format("%a").to_string() != "Sun");
            prop_assert!(!cal.is_holiday(due));
            prop_assert!(due_date(&cal, start, term, paused + extra) >= due);
            prop_assert!(due_date(&cal, start + Duration::days(extra), term, paused) >= due);
        }

        #[test]
        fn cutoff_matches_the_rule(days in 0i64..3000, back in 0i64..15) {
            let cal = HolidayCalendar::default();
            let today = d(2024, 1, 1) + Duration::days(days);
            let cutoff = unassigned_orphan_cutoff(&cal, today);
            let received = today - Duration::days(back);
            let orphan = cal.working_days_between(received, today) > UNASSIGNED_WORKING_DAYS;
            prop_assert_eq!(orphan, received <= cutoff);
        }
    }
}
