//! The Italian working-day calendar of the office, in Europe/Rome.
//!
//! Procedural deadlines (L. 241/1990) are counted in calendar days but must not
//! expire on a Sunday or a public holiday, and service-level targets are counted in
//! working days. Both need the same notion of "holiday", which lives here, together
//! with the conversions between UTC instants and Rome calendar dates.

use chrono::{
    DateTime, Datelike, MappedLocalTime, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone,
    Utc, Weekday,
};

/// The office's time zone: every calendar date in the domain is a date in Rome.
pub const ROME: chrono_tz::Tz = chrono_tz::Europe::Rome;

/// The fixed-date Italian national public holidays, as (month, day).
///
/// Easter Sunday and Easter Monday move every year and are handled separately.
const NATIONAL_HOLIDAYS: [(u32, u32); 10] = [
    (1, 1),   // Capodanno
    (1, 6),   // Epifania
    (4, 25),  // Festa della Liberazione
    (5, 1),   // Festa del Lavoro
    (6, 2),   // Festa della Repubblica
    (8, 15),  // Ferragosto
    (11, 1),  // Ognissanti
    (12, 8),  // Immacolata Concezione
    (12, 25), // Natale
    (12, 26), // Santo Stefano
];

/// Why a calendar could not be built from configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CalendarError {
    /// An extra holiday was not a valid "MM-DD" month and day; carries the entry as given,
    /// so the operator can find it in the configuration.
    #[error("extra holiday {0:?} is not a valid month and day in the form MM-DD")]
    BadExtraHoliday(String),
}

/// Italian public holidays plus the office's extra ones (month-day pairs, e.g. patron saint "06-29").
///
/// Kept as data rather than hard-coded so each municipality can add its own patron
/// saint's day without a code change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HolidayCalendar {
    extra: Vec<(u32, u32)>,
}

impl HolidayCalendar {
    /// Builds a calendar with the given extra (month, day) holidays.
    ///
    /// The list is sorted and de-duplicated so that two calendars with the same holidays
    /// compare equal. Pairs that are not a real month and day are kept but never match a
    /// date; use [`HolidayCalendar::from_month_days`] to validate configuration input.
    pub fn new(extra: Vec<(u32, u32)>) -> Self {
        let mut extra = extra;
        extra.sort_unstable();
        extra.dedup();
        Self { extra }
    }

    /// Parses extra holidays written as "MM-DD" (e.g. "06-29"), as they appear in configuration.
    ///
    /// Surrounding whitespace is ignored; month and day must be two digits each and form a
    /// date that exists in some year (so "02-29" is accepted). The first bad entry is
    /// reported as [`CalendarError::BadExtraHoliday`].
    pub fn from_month_days<S: AsRef<str>>(items: &[S]) -> Result<Self, CalendarError> {
        let mut extra = Vec::with_capacity(items.len());
        for item in items {
            let raw = item.as_ref();
            let pair = parse_month_day(raw)
                .ok_or_else(|| CalendarError::BadExtraHoliday(raw.to_owned()))?;
            extra.push(pair);
        }
        Ok(Self::new(extra))
    }

    /// The office's extra holidays as sorted (month, day) pairs, for display and diagnostics.
    pub fn extra(&self) -> &[(u32, u32)] {
        &self.extra
    }

    /// Whether `d` is a public holiday: a national holiday, Easter Sunday, Easter Monday,
    /// or one of the office's extra days.
    pub fn is_holiday(&self, d: NaiveDate) -> bool {
        let md = (d.month(), d.day());
        if NATIONAL_HOLIDAYS.contains(&md) || self.extra.contains(&md) {
            return true;
        }
        match easter_sunday(d.year()) {
            Some(easter) => d == easter || easter.succ_opt() == Some(d),
            None => false,
        }
    }

    /// Whether the office is open on `d`: Monday to Friday and not a holiday.
    ///
    /// Saturday is not a working day for the office (it matters for working-day SLAs),
    /// even though it does not stop a legal deadline; see [`HolidayCalendar::roll_deadline`].
    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && !self.is_holiday(d)
    }

    /// L. 241/1990 deadline roll-forward: a deadline falling on a Sunday or a public holiday moves
    /// to the next day that is neither (Saturday is NOT skipped).
    ///
    /// With no extra holidays the longest possible move is 3 days (e.g. 25 December when the
    /// 27th is a Sunday). At the very end of the representable date range, where there is
    /// no next day, the date is returned unchanged rather than panicking.
    pub fn roll_deadline(&self, d: NaiveDate) -> NaiveDate {
        let mut day = d;
        while day.weekday() == Weekday::Sun || self.is_holiday(day) {
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        day
    }

    /// Count of working days strictly after `from` up to and including `to` (0 if to <= from).
    ///
    /// This is the "n working days later" arithmetic for SLAs. It is computed per year rather
    /// than per day, so even absurdly long spans are cheap.
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        if to <= from {
            return 0;
        }
        let weekdays = weekdays_in(from, to);
        let mut holidays_on_weekdays = 0_i64;
        for year in from.year()..=to.year() {
            for h in self.holidays_in_year(year) {
                if h > from && h <= to && !matches!(h.weekday(), Weekday::Sat | Weekday::Sun) {
                    holidays_on_weekdays += 1;
                }
            }
        }
        weekdays - holidays_on_weekdays
    }

    /// Every distinct holiday date of `year`, sorted.
    fn holidays_in_year(&self, year: i32) -> Vec<NaiveDate> {
        let mut days: Vec<NaiveDate> = NATIONAL_HOLIDAYS
            .iter()
            .chain(self.extra.iter())
            .filter_map(|&(m, d)| NaiveDate::from_ymd_opt(year, m, d))
            .collect();
        if let Some(easter) = easter_sunday(year) {
            days.push(easter);
            if let Some(monday) = easter.succ_opt() {
                days.push(monday);
            }
        }
        days.sort_unstable();
        days.dedup();
        days
    }
}

/// Parses a "MM-DD" entry into a (month, day) pair that exists in a leap year.
fn parse_month_day(raw: &str) -> Option<(u32, u32)> {
    let (m, d) = raw.trim().split_once('-')?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(m) || !two_digits(d) {
        return None;
    }
    let month: u32 = m.parse().ok()?;
    let day: u32 = d.parse().ok()?;
    // 2000 is a leap year, so 29 February is accepted.
    NaiveDate::from_ymd_opt(2000, month, day).map(|_| (month, day))
}

/// Number of Monday–Friday days in the half-open interval (`from`, `to`]; `from < to`.
fn weekdays_in(from: NaiveDate, to: NaiveDate) -> i64 {
    let days = (to - from).num_days();
    let full_weeks = days / 7;
    let mut count = full_weeks * 5;
    // The leftover (< 7) days are the last ones of the interval; walk them back from `to`.
    let mut day = to;
    for _ in 0..days % 7 {
        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            count += 1;
        }
        match day.pred_opt() {
            Some(prev) => day = prev,
            None => break,
        }
    }
    count
}

/// Easter Sunday of `year` by the Gregorian computus (anonymous/Meeus algorithm).
///
/// Easter and Easter Monday are public holidays, so the calendar needs the date every year.
/// Returns `None` for years before 1583 (the Gregorian rule did not apply yet) and for years
/// whose Easter cannot be represented as a date.
pub fn easter_sunday(year: i32) -> Option<NaiveDate> {
    if year < 1583 {
        return None;
    }
    let y = i64::from(year);
    let a = y % 19;
    let b = y / 100;
    let c = y % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let n = h + l - 7 * m + 114;
    let month = u32::try_from(n / 31).ok()?;
    let day = u32::try_from(n % 31 + 1).ok()?;
    NaiveDate::from_ymd_opt(year, month, day)
}

/// The local calendar date in Europe/Rome of a UTC instant.
///
/// Deadlines and working days are about Rome dates, while instants are stored in UTC; a
/// filing at 00:30 in Rome belongs to that Rome day even though it is still "yesterday" in UTC.
pub fn rome_date(instant: DateTime<Utc>) -> NaiveDate {
    instant.with_timezone(&ROME).date_naive()
}

/// The UTC instant of local midnight at the start of date `d` in Europe/Rome (handle DST gaps
/// sensibly; Rome's DST changes at 02:00/03:00 so midnight always exists, but don't panic
/// anyway — return the earliest valid instant).
///
/// Used to turn a Rome date into a range of instants for queries. Precisely, the result is
/// the earliest instant whose Rome local time is at or after `d` 00:00. Italy did move its
/// clocks at midnight in 1966–1979, so the gap case is real for historical dates. For dates
/// at the very edge of the representable range the nearest representable instant is returned.
pub fn rome_start_of_day(d: NaiveDate) -> DateTime<Utc> {
    let midnight = d.and_time(chrono::NaiveTime::MIN);
    match ROME.from_local_datetime(&midnight) {
        MappedLocalTime::Single(t) => t.with_timezone(&Utc),
        MappedLocalTime::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
        MappedLocalTime::None => earliest_at_or_after_local(midnight),
    }
}

/// The earliest instant whose Rome local time is at or after `local`, for a `local` that does
/// not exist (it falls in a gap or outside the representable range).
fn earliest_at_or_after_local(local: NaiveDateTime) -> DateTime<Utc> {
    let reaches = |utc: NaiveDateTime| {
        Utc.from_utc_datetime(&utc)
            .with_timezone(&ROME)
            .naive_local()
            >= local
    };
    let day = TimeDelta::days(1);
    // Offsets in force a day before and a day after bracket the (single) transition.
    let (Some(before), Some(after)) =
        (local.checked_sub_signed(day), local.checked_add_signed(day))
    else {
        return edge_instant(local);
    };
    let off_before = ROME.offset_from_utc_datetime(&before).fix();
    let off_after = ROME.offset_from_utc_datetime(&after).fix();
    // In a gap the clock jumps forward, so off_after > off_before and
    // local - off_after < transition <= local - off_before.
    let (Some(mut lo), Some(mut hi)) = (
        local.checked_sub_offset(off_after),
        local.checked_sub_offset(off_before),
    ) else {
        return edge_instant(local);
    };
    if !reaches(hi) || lo >= hi {
        return edge_instant(local);
    }
    // Invariant: `hi` reaches `local`; bisect to the second (transitions are whole seconds).
    loop {
        let gap = (hi - lo).num_seconds();
        if gap <= 1 {
            break;
        }
        let Some(mid) = TimeDelta::try_seconds(gap / 2).and_then(|h| lo.checked_add_signed(h))
        else {
            break;
        };
        if reaches(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    if reaches(lo) {
        Utc.from_utc_datetime(&lo)
    } else {
        Utc.from_utc_datetime(&hi)
    }
}

/// Fallback for local times that cannot be mapped at all: the closest representable instant.
fn edge_instant(local: NaiveDateTime) -> DateTime<Utc> {
    if local.date().year() < 0 {
        DateTime::<Utc>::MIN_UTC
    } else if local.date() >= NaiveDate::MAX.pred_opt().unwrap_or(NaiveDate::MAX) {
        DateTime::<Utc>::MAX_UTC
    } else {
        // Not reached with the Rome tz data; treat the local time as UTC as a last resort.
        Utc.from_utc_datetime(&local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn easter_known_years() {
        let known = [
            (1818, 3, 22),
            (1886, 4, 25),
            (1943, 4, 25),
            (1961, 4, 2),
            (2000, 4, 23),
            (2008, 3, 23),
            (2011, 4, 24),
            (2019, 4, 21),
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2038, 4, 25),
            (2285, 3, 22),
        ];
        for (y, m, d) in known {
            assert_eq!(easter_sunday(y), Some(date(y, m, d)), "Easter {y}");
        }
    }

    #[test]
    fn easter_is_always_a_sunday_in_its_window() {
        for y in 1583..=3000 {
            let e = easter_sunday(y).unwrap();
            assert_eq!(e.weekday(), Weekday::Sun, "{e}");
            assert!(e >= date(y, 3, 22) && e <= date(y, 4, 25), "{e}");
        }
    }

    #[test]
    fn easter_before_gregorian_reform_is_none() {
        assert_eq!(easter_sunday(1582), None);
        assert_eq!(easter_sunday(-4), None);
        assert!(easter_sunday(1583).is_some());
    }

    #[test]
    fn national_holidays() {
        let cal = HolidayCalendar::default();
        for (m, d) in [
            (1, 1),
            (1, 6),
            (4, 25),
            (5, 1),
            (6, 2),
            (8, 15),
            (11, 1),
            (12, 8),
            (12, 25),
            (12, 26),
        ] {
            assert!(cal.is_holiday(date(2026, m, d)), "{m}-{d}");
        }
        // Easter Sunday and Pasquetta 2026.
        assert!(cal.is_holiday(date(2026, 4, 5)));
        assert!(cal.is_holiday(date(2026, 4, 6)));
        // Ordinary days, including the days around Easter and Good Friday.
        for d in [
            date(2026, 4, 3),
            date(2026, 4, 4),
            date(2026, 4, 7),
            date(2026, 6, 29),
            date(2026, 12, 24),
        ] {
            assert!(!cal.is_holiday(d), "{d}");
        }
        // Easter moves: 5 April 2025 is not Easter.
        assert!(!cal.is_holiday(date(2025, 4, 5)));
        assert!(cal.is_holiday(date(2025, 4, 21)));
    }

    #[test]
    fn working_days() {
        let cal = HolidayCalendar::default();
        assert!(cal.is_working_day(date(2026, 3, 2))); // Monday
        assert!(cal.is_working_day(date(2026, 3, 6))); // Friday
        assert!(!cal.is_working_day(date(2026, 3, 7))); // Saturday
        assert!(!cal.is_working_day(date(2026, 3, 8))); // Sunday
        assert!(!cal.is_working_day(date(2026, 4, 6))); // Pasquetta, a Monday
        assert!(!cal.is_working_day(date(2026, 6, 2))); // Tuesday, Festa della Repubblica
    }

    #[test]
    fn roll_deadline_examples() {
        let cal = HolidayCalendar::default();
        // 26 Dec holiday, 27 Dec Sunday.
        assert_eq!(cal.roll_deadline(date(2026, 12, 26)), date(2026, 12, 28));
        // 25 Dec 2026 is a Friday: 25, 26 (Sat, holiday), 27 (Sun) → Monday 28.
        assert_eq!(cal.roll_deadline(date(2026, 12, 25)), date(2026, 12, 28));
        // An ordinary Saturday stays.
        assert_eq!(cal.roll_deadline(date(2026, 3, 7)), date(2026, 3, 7));
        // An ordinary Sunday moves to Monday.
        assert_eq!(cal.roll_deadline(date(2026, 3, 8)), date(2026, 3, 9));
        // Easter Sunday → skip Pasquetta → Tuesday.
        assert_eq!(cal.roll_deadline(date(2026, 4, 5)), date(2026, 4, 7));
        // A working day stays.
        assert_eq!(cal.roll_deadline(date(2026, 3, 4)), date(2026, 3, 4));
        // A holiday on a Friday moves to the Saturday (only Sundays and holidays move).
        assert_eq!(cal.roll_deadline(date(2026, 5, 1)), date(2026, 5, 2));
        // No panic at the end of time: the last representable day is returned as it is.
        assert!(cal.roll_deadline(NaiveDate::MAX) >= NaiveDate::MAX.pred_opt().unwrap());
    }

    #[test]
    fn extra_holiday_respected() {
        let cal = HolidayCalendar::from_month_days(&["06-29"]).unwrap();
        assert_eq!(cal.extra(), &[(6, 29)]);
        assert!(cal.is_holiday(date(2026, 6, 29)));
        assert!(!cal.is_working_day(date(2026, 6, 29))); // a Monday
        assert!(!HolidayCalendar::default().is_holiday(date(2026, 6, 29)));
        // 29 June 2025 is a Sunday; 28 June 2025 is a Saturday.
        assert_eq!(cal.roll_deadline(date(2025, 6, 29)), date(2025, 6, 30));
        assert_eq!(cal.roll_deadline(date(2026, 6, 29)), date(2026, 6, 30));
        assert_eq!(
            HolidayCalendar::default().roll_deadline(date(2026, 6, 29)),
            date(2026, 6, 29)
        );
        // Monday 29 June 2026 is skipped when counting working days.
        assert_eq!(
            cal.working_days_between(date(2026, 6, 26), date(2026, 6, 30)),
            1
        );
        assert_eq!(
            HolidayCalendar::default().working_days_between(date(2026, 6, 26), date(2026, 6, 30)),
            2
        );
    }

    #[test]
    fn from_month_days_validation() {
        for bad in [
            "13-01", "02-30", "abc", "00-10", "04-31", "6-29", "06-29-01", "", "06/29", "+6-29",
        ] {
            assert_eq!(
                HolidayCalendar::from_month_days(&[bad]),
                Err(CalendarError::BadExtraHoliday(bad.to_owned())),
                "{bad:?}"
            );
        }
        // The error names the offending entry, not the first one.
        assert_eq!(
            HolidayCalendar::from_month_days(&["06-29", "13-01"]),
            Err(CalendarError::BadExtraHoliday("13-01".to_owned()))
        );
        let leap = HolidayCalendar::from_month_days(&["02-29", " 12-31 "]).unwrap();
        assert_eq!(leap.extra(), &[(2, 29), (12, 31)]);
        assert!(leap.is_holiday(date(2028, 2, 29)));
        assert!(!leap.is_holiday(date(2027, 2, 28)));
        let empty: [&str; 0] = [];
        assert_eq!(
            HolidayCalendar::from_month_days(&empty),
            Ok(HolidayCalendar::default())
        );
        let msg = CalendarError::BadExtraHoliday("13-01".into()).to_string();
        assert!(msg.contains("13-01"), "{msg}");
    }

    #[test]
    fn new_normalises_order_and_duplicates() {
        assert_eq!(
            HolidayCalendar::new(vec![(12, 7), (6, 29), (12, 7)]),
            HolidayCalendar::new(vec![(6, 29), (12, 7)])
        );
    }

    #[test]
    fn working_days_between_examples() {
        let cal = HolidayCalendar::default();
        // Mon 2 Mar 2026 → Mon 9 Mar: Tue..Fri + Mon = 5.
        assert_eq!(
            cal.working_days_between(date(2026, 3, 2), date(2026, 3, 9)),
            5
        );
        assert_eq!(
            cal.working_days_between(date(2026, 3, 2), date(2026, 3, 2)),
            0
        );
        assert_eq!(
            cal.working_days_between(date(2026, 3, 9), date(2026, 3, 2)),
            0
        );
        // Fri → Sat → Sun: none.
        assert_eq!(
            cal.working_days_between(date(2026, 3, 6), date(2026, 3, 8)),
            0
        );
        // Holy week 2026: Thu 2 Apr → Tue 7 Apr: Fri 3, Tue 7 (Mon 6 is Pasquetta).
        assert_eq!(
            cal.working_days_between(date(2026, 4, 2), date(2026, 4, 7)),
            2
        );
        // Whole year 2026: 261 weekdays minus holidays on weekdays:
        // 1 Jan Thu, 6 Jan Tue, Pasquetta, 25 Apr Sat(no), 1 May Fri, 2 Jun Tue,
        // 15 Aug Sat(no), 1 Nov Sun(no), 8 Dec Tue, 25 Dec Fri, 26 Dec Sat(no) → 7.
        assert_eq!(
            cal.working_days_between(date(2025, 12, 31), date(2026, 12, 31)),
            254
        );
    }

    #[test]
    fn working_days_between_extreme_span_is_fast_and_sane() {
        let cal = HolidayCalendar::default();
        let n = cal.working_days_between(NaiveDate::MIN, NaiveDate::MAX);
        let days = (NaiveDate::MAX - NaiveDate::MIN).num_days();
        assert!(n > 0 && n < days);
    }

    /// The true maximum roll with no extra holidays, found by brute force: 3 days
    /// (Christmas Eve on a Sunday, or Christmas when the 27th is a Sunday).
    #[test]
    fn roll_deadline_max_is_three_days() {
        let cal = HolidayCalendar::default();
        let mut max = 0;
        let mut d = date(1600, 1, 1);
        while d < date(2400, 1, 1) {
            max = max.max((cal.roll_deadline(d) - d).num_days());
            d = d.succ_opt().unwrap();
        }
        assert_eq!(max, 3);
        // Sunday 24 Dec 2023 → Wednesday 27 Dec.
        assert_eq!(cal.roll_deadline(date(2023, 12, 24)), date(2023, 12, 27));
    }

    #[test]
    fn rome_date_around_midnight_and_dst() {
        // Winter (UTC+1).
        assert_eq!(rome_date(utc("2026-01-15T22:59:59Z")), date(2026, 1, 15));
        assert_eq!(rome_date(utc("2026-01-15T23:00:00Z")), date(2026, 1, 16));
        // Summer (UTC+2).
        assert_eq!(rome_date(utc("2026-07-15T21:59:59Z")), date(2026, 7, 15));
        assert_eq!(rome_date(utc("2026-07-15T22:00:00Z")), date(2026, 7, 16));
        // The nights of the DST changes.
        assert_eq!(rome_date(utc("2026-03-28T22:59:59Z")), date(2026, 3, 28));
        assert_eq!(rome_date(utc("2026-03-28T23:30:00Z")), date(2026, 3, 29));
        assert_eq!(rome_date(utc("2026-03-29T21:59:59Z")), date(2026, 3, 29));
        assert_eq!(rome_date(utc("2026-03-29T22:00:00Z")), date(2026, 3, 30));
        assert_eq!(rome_date(utc("2026-10-24T21:59:59Z")), date(2026, 10, 24));
        assert_eq!(rome_date(utc("2026-10-24T22:30:00Z")), date(2026, 10, 25));
        assert_eq!(rome_date(utc("2026-10-25T22:59:59Z")), date(2026, 10, 25));
        assert_eq!(rome_date(utc("2026-10-25T23:00:00Z")), date(2026, 10, 26));
    }

    #[test]
    fn rome_start_of_day_examples() {
        assert_eq!(
            rome_start_of_day(date(2026, 1, 15)),
            utc("2026-01-14T23:00:00Z")
        );
        assert_eq!(
            rome_start_of_day(date(2026, 7, 15)),
            utc("2026-07-14T22:00:00Z")
        );
        // DST starts at 02:00 on 29 March: that day starts at UTC+1, the next at UTC+2.
        assert_eq!(
            rome_start_of_day(date(2026, 3, 29)),
            utc("2026-03-28T23:00:00Z")
        );
        assert_eq!(
            rome_start_of_day(date(2026, 3, 30)),
            utc("2026-03-29T22:00:00Z")
        );
        // DST ends at 03:00 on 25 October: that day starts at UTC+2, the next at UTC+1.
        assert_eq!(
            rome_start_of_day(date(2026, 10, 25)),
            utc("2026-10-24T22:00:00Z")
        );
        assert_eq!(
            rome_start_of_day(date(2026, 10, 26)),
            utc("2026-10-25T23:00:00Z")
        );
    }

    /// In 1966–1979 Italy moved its clocks forward at midnight, so local midnight did not exist
    /// on those days; the day starts at the transition, 01:00 CEST.
    #[test]
    fn rome_start_of_day_in_a_midnight_gap() {
        let d = date(1966, 5, 22);
        assert!(matches!(
            ROME.from_local_datetime(&d.and_time(chrono::NaiveTime::MIN)),
            MappedLocalTime::None
        ));
        let start = rome_start_of_day(d);
        assert_eq!(start, utc("1966-05-21T23:00:00Z"));
        assert_eq!(rome_date(start), d);
        assert_eq!(rome_date(start - TimeDelta::seconds(1)), date(1966, 5, 21));
    }

    #[test]
    fn rome_start_of_day_at_range_edges_does_not_panic() {
        let s = rome_start_of_day(NaiveDate::MIN);
        assert_eq!(rome_date(s), NaiveDate::MIN);
        let e = rome_start_of_day(NaiveDate::MAX);
        assert_eq!(rome_date(e), NaiveDate::MAX);
    }

    /// A naive day-by-day count, to check the per-year arithmetic against.
    fn naive_working_days(cal: &HolidayCalendar, from: NaiveDate, to: NaiveDate) -> i64 {
        let mut n = 0;
        let mut d = from;
        while d < to {
            d = d.succ_opt().unwrap();
            if cal.is_working_day(d) {
                n += 1;
            }
        }
        n
    }

    fn any_date() -> impl Strategy<Value = NaiveDate> {
        // 1900-01-01 .. ~2199.
        (0_i64..109_500).prop_map(|n| date(1900, 1, 1) + TimeDelta::days(n))
    }

    fn any_calendar() -> impl Strategy<Value = HolidayCalendar> {
        prop::collection::vec((1_u32..=12, 1_u32..=31), 0..4).prop_map(HolidayCalendar::new)
    }

    proptest! {
        #[test]
        fn prop_roll_deadline(d in any_date()) {
            let cal = HolidayCalendar::default();
            let r = cal.roll_deadline(d);
            prop_assert!(r >= d);
            prop_assert_ne!(r.weekday(), Weekday::Sun);
            prop_assert!(!cal.is_holiday(r));
            prop_assert_eq!(cal.roll_deadline(r), r);
            prop_assert!((r - d).num_days() <= 3);
            // Nothing in between was a valid deadline day.
            let mut x = d;
            while x < r {
                prop_assert!(x.weekday() == Weekday::Sun || cal.is_holiday(x));
                x = x.succ_opt().unwrap();
            }
        }

        #[test]
        fn prop_roll_deadline_with_extras(d in any_date(), cal in any_calendar()) {
            let r = cal.roll_deadline(d);
            prop_assert!(r >= d);
            prop_assert_ne!(r.weekday(), Weekday::Sun);
            prop_assert!(!cal.is_holiday(r));
            prop_assert_eq!(cal.roll_deadline(r), r);
        }

        #[test]
        fn prop_working_days_additive(a in any_date(), b in any_date(), c in any_date(), cal in any_calendar()) {
            let mut v = [a, b, c];
            v.sort();
            let [a, b, c] = v;
            prop_assert_eq!(
                cal.working_days_between(a, c),
                cal.working_days_between(a, b) + cal.working_days_between(b, c)
            );
            prop_assert!(cal.working_days_between(a, c) <= (c - a).num_days());
            prop_assert!(cal.working_days_between(a, c) >= 0);
            prop_assert_eq!(cal.working_days_between(c, a), 0);
        }

        #[test]
        fn prop_working_days_matches_naive_count(a in any_date(), len in 0_i64..800, cal in any_calendar()) {
            let b = a + TimeDelta::days(len);
            prop_assert_eq!(cal.working_days_between(a, b), naive_working_days(&cal, a, b));
        }

        #[test]
        fn prop_rome_start_of_day_is_first_instant_of_the_day(d in any_date()) {
            let s = rome_start_of_day(d);
            prop_assert_eq!(rome_date(s), d);
            prop_assert!(rome_date(s - TimeDelta::seconds(1)) < d);
        }
    }
}
