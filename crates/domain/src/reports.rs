//! The arithmetic of the office's reports, on values already read: percentiles, shares,
//! lead times in days, weeks and months, backlog age buckets. Apart from the queries so
//! that the definitions can be read (and tested) on their own.

use chrono::{Datelike, Duration, NaiveDate};

/// Milliseconds in a day, for lead times in (fractional) days.
pub const DAY_MS: f64 = 86_400_000.0;

/// Backlog age buckets: label, youngest, oldest (in days).
pub const AGE_BUCKETS: &[(&str, i64, Option<i64>)] = &[
    ("0-7", 0, Some(7)),
    ("8-15", 8, Some(15)),
    ("16-30", 16, Some(30)),
    ("31-60", 31, Some(60)),
    (">60", 61, None),
];

/// The index in [`AGE_BUCKETS`] of a case `days_old` days old: the oldest bucket whose
/// youngest age it reaches (a negative age counts as new).
pub fn age_bucket(days_old: i64) -> usize {
    AGE_BUCKETS
        .iter()
        .rposition(|(_, min, _)| days_old >= *min)
        .unwrap_or(0)
}

/// Linear interpolation between closest ranks of sorted values (`percentile_cont`).
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = p.clamp(0.0, 1.0) * last as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let (a, b) = (sorted[lo], sorted[hi.min(last)]);
    Some(a + (b - a) * (rank - lo as f64))
}

/// Rounded to two decimals, as the reports show days.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `part` of `whole` as a fraction rounded to four decimals; `None` when there is no whole.
pub fn share(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0)
}

/// Median and 90th percentile, rounded to two decimals; sorts `values`.
pub fn median_p90(values: &mut [f64]) -> (Option<f64>, Option<f64>) {
    values.sort_by(f64::total_cmp);
    (
        percentile(values, 0.5).map(round2),
        percentile(values, 0.9).map(round2),
    )
}

/// Days from one instant (Unix ms) to a later one, never below zero.
pub fn days_between(from_ms: i64, to_ms: i64) -> f64 {
    ((to_ms - from_ms) as f64 / DAY_MS).max(0.0)
}

/// The Monday of a date's ISO week.
pub fn week_start(d: NaiveDate) -> NaiveDate {
    d - Duration::days(i64::from(d.weekday().num_days_from_monday()))
}

/// `YYYY-MM`, the key of a date's month.
pub fn month_key(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

/// The first day of the month after a date's.
pub fn first_of_next_month(d: NaiveDate) -> NaiveDate {
    let (y, m) = if d.month() == 12 {
        (d.year() + 1, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(d)
}

/// A `YYYY-MM-DD` date, without the cost of a format parser (reports read a date per case).
pub fn fast_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b.get(r)?.iter().try_fold(0_u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    (b.len() == 10 && b[4] == b'-' && b[7] == b'-')
        .then(|| {
            NaiveDate::from_ymd_opt(
                i32::try_from(digits(0..4)?).ok()?,
                digits(5..7)?,
                digits(8..10)?,
            )
        })
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn percentiles_interpolate_between_ranks() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[4.0], 0.9), Some(4.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.0), Some(1.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 1.0), Some(4.0));
        assert_eq!(
            percentile(&[1.0, 2.0, 5.0, 12.0, 36.0], 0.9).map(round2),
            Some(26.4)
        );
        let mut v = vec![36.0, 1.0, 5.0, 12.0, 2.0];
        assert_eq!(median_p90(&mut v), (Some(5.0), Some(26.4)));
        assert_eq!(v, [1.0, 2.0, 5.0, 12.0, 36.0], "sorted in place");
        assert_eq!(median_p90(&mut []), (None, None));
    }

    #[test]
    fn shares_round_to_four_decimals_and_need_a_whole() {
        assert_eq!(share(3, 4), Some(0.75));
        assert_eq!(share(1, 3), Some(0.3333));
        assert_eq!(share(2, 3), Some(0.6667));
        assert_eq!(share(0, 0), None);
        assert_eq!(round2(1.005_1), 1.01);
    }

    #[test]
    fn lead_times_are_days_and_never_negative() {
        assert_eq!(days_between(0, 36 * 3_600_000), 1.5);
        assert_eq!(days_between(5_000, 1_000), 0.0);
    }

    #[test]
    fn weeks_start_on_monday_and_months_roll_over_the_year() {
        // 26 November 2026 is a Thursday.
        assert_eq!(week_start(d(2026, 11, 26)), d(2026, 11, 23));
        assert_eq!(week_start(d(2026, 11, 23)), d(2026, 11, 23));
        assert_eq!(week_start(d(2026, 11, 29)), d(2026, 11, 23));
        // An ISO week across the new year.
        assert_eq!(week_start(d(2027, 1, 1)), d(2026, 12, 28));
        assert_eq!(month_key(d(2026, 3, 9)), "2026-03");
        assert_eq!(first_of_next_month(d(2026, 12, 31)), d(2027, 1, 1));
        assert_eq!(first_of_next_month(d(2026, 2, 10)), d(2026, 3, 1));
    }

    #[test]
    fn ages_fall_in_their_bucket() {
        let label = |days| AGE_BUCKETS[age_bucket(days)].0;
        assert_eq!(label(-3), "0-7");
        assert_eq!(label(0), "0-7");
        assert_eq!(label(7), "0-7");
        assert_eq!(label(8), "8-15");
        assert_eq!(label(30), "16-30");
        assert_eq!(label(31), "31-60");
        assert_eq!(label(60), "31-60");
        assert_eq!(label(61), ">60");
        assert_eq!(label(10_000), ">60");
    }

    #[test]
    fn dates_parse_only_in_their_exact_shape() {
        assert_eq!(fast_date("2026-02-28"), Some(d(2026, 2, 28)));
        for bad in ["2026-02-30", "2026-2-28", "20260228xx", "", "abcd-ef-gh"] {
            assert_eq!(fast_date(bad), None, "{bad}");
        }
    }
}
