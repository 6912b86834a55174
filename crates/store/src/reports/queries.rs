//! The report queries: a year of cases read in a handful of statements, the rows packed
//! into one text per query (the drivers' cost is per row) and unpacked here.

use chrono::NaiveDate;

use super::figures::fast_date;
use super::model::{ClosedCase, DayCount, Names};
use crate::dialect;
use crate::{Result, Store, StoreError, date_text, get_opt_str};

impl Store {
    /// The cases closed in `[start_ms, end_ms)` packed into one text ([`Store::packed_rows`]),
    /// per case `id, case_type, channel, received_at, received_on, closed_at, paused_days,
    /// due_on, service_days`.
    pub(super) async fn closed_cases_packed(&self, start_ms: i64, end_ms: i64) -> Result<String> {
        let row = sqlx::query(sqlx::AssertSqlSafe(self.closed_cases_sql()))
            .bind(start_ms)
            .bind(end_ms)
            .fetch_one(&self.read)
            .await?;
        Ok(get_opt_str(&row, "packed")?.unwrap_or_else(|| "[]".into()))
    }

    /// The first answer ([`ANSWER_ACTIONS`]) of the cases closed in `[start_ms, end_ms)`,
    /// packed as `case_id, at` per case. One pass over the partial index
    /// `case_events_answers`, between the lowest and the highest id of those cases (a few
    /// other cases in that range come too and are ignored): several times cheaper than a
    /// lookup per case.
    pub(super) async fn first_answers_packed(&self, start_ms: i64, end_ms: i64) -> Result<String> {
        let row = sqlx::query(sqlx::AssertSqlSafe(self.first_answers_sql()))
            .bind(start_ms)
            .bind(end_ms)
            .fetch_one(&self.read)
            .await?;
        Ok(get_opt_str(&row, "packed")?.unwrap_or_else(|| "[]".into()))
    }

    pub(super) fn closed_cases_sql(&self) -> String {
        let columns = [
            "c.id",
            "c.case_type",
            "c.channel",
            "c.received_at",
            "c.received_on",
            "c.closed_at",
            "c.paused_days",
            "c.due_on",
            "c.service_days",
        ];
        format!(
            "SELECT {} AS packed FROM cases c WHERE c.closed_at >= $1 AND c.closed_at < $2",
            self.packed_rows(&columns)
        )
    }

    pub(super) fn first_answers_sql(&self) -> String {
        let predicate = dialect::answer_predicate(self.backend);
        format!(
            "SELECT {} AS packed FROM (SELECT e.case_id, MIN(e.at) AS first_at FROM case_events e \
             WHERE e.case_id >= (SELECT MIN(c.id) FROM cases c WHERE c.closed_at >= $1 AND c.closed_at < $2) \
             AND e.case_id <= (SELECT MAX(c.id) FROM cases c WHERE c.closed_at >= $1 AND c.closed_at < $2) \
             AND {predicate} GROUP BY e.case_id) f",
            self.packed_rows(&["f.case_id", "f.first_at"])
        )
    }

    /// The aggregate that packs rows of plain `columns` (numbers, identifiers, dates; no
    /// NULL) into one text, in whichever form the engine builds fastest, both read by
    /// [`Scalars`]: a JSON array of arrays on SQLite (`json_array` is several times
    /// cheaper there than chains of `||`), `v,v;v,v` on PostgreSQL (where `json_agg` of
    /// `json_build_array` costs twice `string_agg`).
    pub(super) fn packed_rows(&self, columns: &[&str]) -> String {
        dialect::packed_rows(self.backend, columns)
    }

    /// The aggregate that turns rows of `columns` into one JSON array of arrays.
    pub(super) fn json_rows(&self, columns: &str) -> String {
        dialect::json_rows(self.backend, columns)
    }

    /// Cases received per day, case type and channel from `from` to `to` (Rome dates),
    /// packed as `day,case_type,channel,count;…`.
    pub(super) async fn received_per_day_packed(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Option<String>> {
        let sql = format!(
            "SELECT {} AS packed FROM (SELECT c.received_on AS d, c.case_type AS t, c.channel AS ch, COUNT(*) AS n \
             FROM cases c WHERE c.received_on >= $1 AND c.received_on <= $2 \
             GROUP BY c.received_on, c.case_type, c.channel) g",
            self.pack_day_counts()
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(date_text(from))
            .bind(date_text(to))
            .fetch_one(&self.read)
            .await?;
        get_opt_str(&row, "packed")
    }

    /// Cases open at `at_ms` (received before, not closed before) per day received, case
    /// type and channel, packed as [`Store::received_per_day_packed`]. Two index ranges
    /// (never closed, closed later) rather than an `OR` the planners may scan the table for.
    pub(super) async fn open_at_packed(&self, at_ms: i64) -> Result<Option<String>> {
        let sql = format!(
            "SELECT {} AS packed FROM (SELECT o.received_on AS d, o.case_type AS t, o.channel AS ch, COUNT(*) AS n FROM (\
             SELECT c.received_on, c.case_type, c.channel FROM cases c WHERE c.closed_at IS NULL AND c.received_at < $1 \
             UNION ALL \
             SELECT c.received_on, c.case_type, c.channel FROM cases c WHERE c.closed_at >= $1 AND c.received_at < $1\
             ) o GROUP BY o.received_on, o.case_type, o.channel) g",
            self.pack_day_counts()
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(at_ms)
            .fetch_one(&self.read)
            .await?;
        get_opt_str(&row, "packed")
    }

    pub(super) fn pack_day_counts(&self) -> &'static str {
        dialect::pack_day_counts(self.backend)
    }
}

pub(super) fn int(s: &str) -> Result<i64> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("number {s:?}")))
}

/// The scalars of rows packed by [`Store::packed_rows`] — a JSON array of arrays of
/// numbers and plain strings, or `v,v;v,v` — in order, quotes removed. Their strings (case
/// types, channels, dates) never need escaping nor hold a separator. A general JSON parser
/// costs several times more on a hundred thousand cases; anything unexpected is refused.
pub(super) struct Scalars<'a> {
    pub(super) text: &'a str,
    pub(super) at: usize,
}

impl<'a> Scalars<'a> {
    pub(super) fn new(text: &'a str) -> Scalars<'a> {
        Scalars { text, at: 0 }
    }

    pub(super) fn next(&mut self) -> Result<Option<&'a str>> {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.at) {
            if matches!(b, b'[' | b']' | b',' | b';' | b' ' | b'\n' | b'\r' | b'\t') {
                self.at += 1;
                continue;
            }
            let start = self.at;
            if b == b'"' {
                let len = bytes[start + 1..]
                    .iter()
                    .position(|&c| c == b'"' || c == b'\\')
                    .ok_or_else(|| StoreError::Corrupt("unterminated text in a report".into()))?;
                if bytes[start + 1 + len] != b'"' {
                    return Err(StoreError::Corrupt("escaped text in a report".into()));
                }
                self.at = start + len + 2;
                return Ok(Some(&self.text[start + 1..start + 1 + len]));
            }
            let len = bytes[start..]
                .iter()
                .position(|&c| matches!(c, b']' | b',' | b';' | b' ' | b'\n' | b'\r' | b'\t'))
                .unwrap_or(bytes.len() - start);
            self.at = start + len;
            return Ok(Some(&self.text[start..start + len]));
        }
        Ok(None)
    }

    /// The next `N` scalars (one row); `None` at the end, an error for a short row.
    pub(super) fn row<const N: usize>(&mut self) -> Result<Option<[&'a str; N]>> {
        let mut out = [""; N];
        for (i, slot) in out.iter_mut().enumerate() {
            match self.next()? {
                Some(v) => *slot = v,
                None if i == 0 => return Ok(None),
                None => return Err(StoreError::Corrupt("a short row in a report".into())),
            }
        }
        Ok(Some(out))
    }
}

pub(super) fn parse_closed(
    json: &str,
    answers: Option<&str>,
    names: &mut Names,
) -> Result<Vec<ClosedCase>> {
    // By case id (the database groups them so, but that order is not promised).
    let mut first: Vec<(i64, i64)> = Vec::new();
    if let Some(text) = answers {
        let mut scalars = Scalars::new(text);
        first.reserve(text.len() / 24);
        while let Some([id, at]) = scalars.row::<2>()? {
            first.push((int(id)?, int(at)?));
        }
    }
    if !first.is_sorted() {
        first.sort_unstable();
    }
    let first_answer = |id: i64| {
        first
            .binary_search_by_key(&id, |(case, _)| *case)
            .ok()
            .map(|i| first[i].1)
    };
    let mut out = Vec::with_capacity(json.len() / 80);
    let mut scalars = Scalars::new(json);
    while let Some(
        [
            id,
            case_type,
            channel,
            received_at,
            received_on,
            closed_at,
            paused_days,
            due_on,
            service_days,
        ],
    ) = scalars.row::<9>()?
    {
        out.push(ClosedCase {
            case_type: names.id(case_type)?,
            channel: names.id(channel)?,
            received_at: int(received_at)?,
            received_on: fast_date(received_on)?,
            closed_at: int(closed_at)?,
            paused_days: int(paused_days)?,
            due_on: fast_date(due_on)?,
            service_days: int(service_days)?,
            first_answer_at: first_answer(int(id)?),
        });
    }
    Ok(out)
}

pub(super) fn parse_day_counts(packed: Option<&str>, names: &mut Names) -> Result<Vec<DayCount>> {
    let Some(packed) = packed.filter(|p| !p.is_empty()) else {
        return Ok(Vec::new());
    };
    packed
        .split(';')
        .map(|record| {
            let f: Vec<&str> = record.split(',').collect();
            let [day, case_type, channel, count] = f[..] else {
                return Err(StoreError::Corrupt(format!("report record {record:?}")));
            };
            Ok(DayCount {
                day: fast_date(day)?,
                case_type: names.id(case_type)?,
                channel: names.id(channel)?,
                count: int(count)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backend;
    use crate::reports::model::ANSWER_ACTIONS;

    use crate::testing::with_test_store;

    #[test]
    pub(super) fn packed_rows_are_read_in_both_dialects() {
        // SQLite writes `[[1,"a"],[2,"b"]]`, PostgreSQL `[[1, "a"], [2, "b"]]`.
        for text in [
            r#"[[1,"ztl_permit",-3],[2,"cude",4]]"#,
            r#"[[1, "ztl_permit", -3], [2, "cude", 4]]"#,
        ] {
            let mut s = Scalars::new(text);
            assert_eq!(s.row::<3>().unwrap(), Some(["1", "ztl_permit", "-3"]));
            assert_eq!(s.row::<3>().unwrap(), Some(["2", "cude", "4"]));
            assert_eq!(s.row::<3>().unwrap(), None);
        }
        assert_eq!(Scalars::new("[]").row::<2>().unwrap(), None);
        assert!(Scalars::new("[[1]]").row::<2>().is_err(), "short row");
        assert!(
            Scalars::new(r#"[["a\"b"]]"#).row::<1>().is_err(),
            "escapes are refused"
        );
        assert!(Scalars::new(r#"[["ab"#).row::<1>().is_err());
    }

    /// The answer list, the two predicates and the two partial indexes must say the same,
    /// or the reports would count other answers or stop using the indexes.
    #[test]
    pub(super) fn answer_predicates_match_the_list_and_the_migrations() {
        let normal = |s: &str| {
            s.replace("e.", "")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .replace("( ", "(")
        };
        let list = ANSWER_ACTIONS
            .iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(", ");
        for (predicate, migration) in [
            (
                crate::dialect::ANSWER_PREDICATE_SQLITE,
                include_str!("../../migrations/sqlite/0014_reports.sql"),
            ),
            (
                crate::dialect::ANSWER_PREDICATE_POSTGRES,
                include_str!("../../migrations/postgres/0014_reports.sql"),
            ),
        ] {
            assert!(predicate.contains(&format!("IN ({list})")), "{predicate}");
            assert!(
                normal(migration).contains(&normal(predicate)),
                "migration 0014 and reports.rs differ: {}",
                normal(predicate)
            );
        }
    }

    /// The first-answer lookup must come from the partial index alone on SQLite; if the
    /// predicate here and in migration 0014 drift apart, this fails (the report would
    /// still be right, but read the journal row by row).
    #[tokio::test]
    async fn sqlite_reads_the_reports_from_indexes() {
        with_test_store(|store, _clock| async move {
            if store.backend() != Backend::Sqlite {
                return;
            }
            let mut plans = Vec::new();
            for sql in [store.closed_cases_sql(), store.first_answers_sql()] {
                let explain = format!("EXPLAIN QUERY PLAN {sql}");
                let rows = sqlx::query(sqlx::AssertSqlSafe(explain))
                    .bind(0_i64)
                    .bind(1_i64)
                    .fetch_all(&store.read)
                    .await
                    .unwrap();
                for r in rows {
                    plans.push(crate::get_str(&r, "detail").unwrap());
                }
            }
            let plan = plans.join("\n");
            assert!(plan.contains("COVERING INDEX cases_closed"), "{plan}");
            assert!(
                !plan.contains("SCAN c\n") && !plan.contains("SCAN e\n"),
                "{plan}"
            );
            assert!(
                plan.contains("COVERING INDEX case_events_answers"),
                "{plan}"
            );
        })
        .await;
    }
}
