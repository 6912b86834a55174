//! Reading cases: one case whole (documents and journal in one query), and pages of cases
//! with filters and counts, each with today's legal clock applied.

use chrono::Duration;
use sportello_domain::calendar::rome_date;
use sportello_domain::sla::{self, ClockState, OrphanFacts};

use super::model::{
    Arg, CASE_COLUMNS, CASE_FROM, CaseFilter, CaseRecord, CaseSummary, CaseView, DocumentTuple,
    EventTuple, EventView, SlaJson, SortKey, json_text,
};
use crate::dialect;
use crate::documents::DocumentView;
use crate::time::rome_rfc3339;
use crate::{Result, Store, StoreError, date_text, from_ms, get_i64, get_str, to_ms};

impl Store {
    /// The whole case with documents and journal, read in one query (the journal and the
    /// documents are aggregated to JSON by the database).
    pub async fn get_case(&self, reference: &str) -> Result<CaseView> {
        let aggregates = dialect::case_aggregates(self.backend);
        let sql =
            format!("SELECT {CASE_COLUMNS}, {aggregates} FROM {CASE_FROM} WHERE c.reference = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(reference)
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("case {reference}")))?;
        let record = CaseRecord::from_row(&row)?;
        let mut events: Vec<EventTuple> = serde_json::from_str(&get_str(&row, "events_json")?)
            .map_err(|e| StoreError::Corrupt(format!("journal of {reference}: {e}")))?;
        events.sort_by_key(|e| e.0);
        let timeline = events
            .into_iter()
            .map(|(_, at, actor, kind, detail)| {
                Ok(EventView {
                    at: rome_rfc3339(from_ms(at)?),
                    actor,
                    kind,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut docs: Vec<DocumentTuple> = serde_json::from_str(&get_str(&row, "documents_json")?)
            .map_err(|e| StoreError::Corrupt(format!("documents of {reference}: {e}")))?;
        docs.sort_by(|a, b| (a.5, &a.0).cmp(&(b.5, &b.0)));
        let documents = docs
            .into_iter()
            .map(
                |(
                    id,
                    sha256,
                    filename,
                    media_type,
                    size,
                    uploaded_at,
                    uploaded_by,
                    text_status,
                    text_error,
                )| {
                    Ok(DocumentView {
                        id,
                        sha256,
                        filename,
                        media_type,
                        size,
                        uploaded_at: rome_rfc3339(from_ms(uploaded_at)?),
                        uploaded_by,
                        text_status,
                        text_error,
                    })
                },
            )
            .collect::<Result<Vec<_>>>()?;
        Ok(self.full_view(record, timeline, documents))
    }

    /// Applies today's clock to a stored case: due date, clock state, overdue, orphan.
    pub(super) fn summarise(&self, rec: &CaseRecord) -> CaseSummary {
        let now = self.clock.now();
        let today = rome_date(now);
        let view = sla::compute_from_totals(
            &self.settings.calendar,
            rec.received_on,
            rec.term_days,
            rec.paused_days,
            rec.open_pause.as_ref(),
            rec.status,
            today,
        );
        let orphan = sla::is_orphan(
            &self.settings.calendar,
            &OrphanFacts {
                status: rec.status,
                assigned: rec.assigned,
                received_at: rec.received_at,
                last_event_at: rec.last_event_at,
                clock: view.state,
            },
            now,
        );
        let state = match view.state {
            ClockState::Running => "running",
            ClockState::Paused => "paused",
            ClockState::Stopped => "stopped",
        };
        CaseSummary {
            reference: rec.reference.clone(),
            case_type: rec.case_type.clone(),
            status: rec.status.as_str().to_owned(),
            subject: rec.subject.clone(),
            channel: rec.channel.clone(),
            citizen_name: rec.citizen.name.clone(),
            assignee: rec.assignee.clone(),
            priority: rec.priority.clone(),
            protocol: rec.protocol.clone(),
            received_at: rome_rfc3339(rec.received_at),
            due_at: date_text(view.due_at),
            overdue: view.state == ClockState::Running && view.days_left < 0,
            sla: SlaJson {
                state: state.to_owned(),
                days_left: view.days_left,
                term_days: view.term_days,
                paused_days: view.paused_days,
                service_due_at: date_text(
                    rec.received_on + Duration::days(rec.service_days + view.paused_days),
                ),
            },
            orphan,
            flags: rec.flags.clone(),
        }
    }

    /// The whole view of a case from its record, journal and documents.
    pub(super) fn full_view(
        &self,
        rec: CaseRecord,
        timeline: Vec<EventView>,
        documents: Vec<DocumentView>,
    ) -> CaseView {
        let summary = self.summarise(&rec);
        CaseView {
            summary,
            description: rec.description,
            citizen: rec.citizen,
            fields: rec.fields,
            documents,
            timeline,
            ingested_at: rome_rfc3339(rec.ingested_at),
        }
    }

    /// A page of cases, newest first, with the total count for the filter.
    pub async fn list_cases(&self, filter: &CaseFilter) -> Result<(Vec<CaseSummary>, i64)> {
        let now = self.clock.now();
        let today = rome_date(now);
        let mut clauses: Vec<String> = Vec::new();
        let mut args: Vec<Arg> = Vec::new();
        let bind = |args: &mut Vec<Arg>, value: Arg| {
            args.push(value);
            format!("${}", args.len())
        };
        if let Some(status) = filter.status {
            clauses.push(format!(
                "c.status = {}",
                bind(&mut args, Arg::Text(status.as_str().into()))
            ));
        }
        if let Some(case_type) = &filter.case_type {
            clauses.push(format!(
                "c.case_type = {}",
                bind(&mut args, Arg::Text(case_type.clone()))
            ));
        }
        if let Some(channel) = filter.channel {
            clauses.push(format!(
                "c.channel = {}",
                bind(&mut args, Arg::Text(channel.as_str().into()))
            ));
        }
        match filter.assignee.as_deref() {
            Some("none") => clauses.push("c.assignee_id IS NULL".into()),
            Some(login) => clauses.push(format!(
                "u.login = {}",
                bind(&mut args, Arg::Text(login.into()))
            )),
            None => {}
        }
        // The clock runs: not decided, and no suspension in force.
        // (`c.status || ''` keeps the engines from choosing the status index, which holds
        // nearly every open case, over the selective due-date and idle-time ones.)
        let running = "(c.status || '') IN ('received', 'in_review', 'waiting_citizen', 'rejection_notice') AND c.pause_kind IS NULL";
        if filter.overdue {
            clauses.push(format!(
                "{running} AND c.due_on < {}",
                bind(&mut args, Arg::Text(date_text(today)))
            ));
        }
        if filter.orphan {
            let cutoff = sla::unassigned_orphan_cutoff(&self.settings.calendar, today);
            let idle = now - Duration::days(sla::IDLE_DAYS);
            clauses.push(format!(
                "c.status <> 'closed' AND ((c.assignee_id IS NULL AND c.received_on <= {}) OR ({running} AND c.last_event_at <= {}))",
                bind(&mut args, Arg::Text(date_text(cutoff))),
                bind(&mut args, Arg::Int(to_ms(idle)))
            ));
        }
        if filter.open {
            clauses.push("c.status <> 'closed'".into());
        }
        if let Some(days) = filter.due_within_days {
            clauses.push(format!(
                "{running} AND c.due_on >= {} AND c.due_on <= {}",
                bind(&mut args, Arg::Text(date_text(today))),
                bind(
                    &mut args,
                    Arg::Text(date_text(today + Duration::days(days)))
                )
            ));
        }
        if let Some(flag) = filter.flag.as_deref() {
            // Flags are a JSON array of names; a name is matched with its quotes.
            let quoted = json_text(&flag)
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            // `flags <> '[]'` lets the engines read the small index of flagged cases.
            clauses.push(format!(
                "c.flags <> '[]' AND c.flags LIKE {} ESCAPE '\\'",
                bind(&mut args, Arg::Text(format!("%{quoted}%")))
            ));
        }
        // Dates are stored as `YYYY-MM-DD` text: they compare as they sort.
        for (column, op, day) in [
            ("c.received_on", ">=", filter.received_from),
            ("c.received_on", "<=", filter.received_to),
            ("c.due_on", ">=", filter.due_from),
            ("c.due_on", "<=", filter.due_to),
        ] {
            if let Some(day) = day {
                clauses.push(format!(
                    "{column} {op} {}",
                    bind(&mut args, Arg::Text(date_text(day)))
                ));
            }
        }
        if let Some(code) = filter.citizen_fiscal_code.as_deref() {
            clauses.push(format!(
                "c.citizen_id = (SELECT id FROM citizens WHERE fiscal_code = {})",
                bind(&mut args, Arg::Text(code.to_owned()))
            ));
        }
        if !filter.references.is_empty() {
            let placeholders: Vec<String> = filter
                .references
                .iter()
                .map(|r| bind(&mut args, Arg::Text(r.clone())))
                .collect();
            clauses.push(format!("c.reference IN ({})", placeholders.join(", ")));
        }
        if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            let pattern = format!(
                "%{}%",
                q.to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            let p = bind(&mut args, Arg::Text(pattern));
            clauses.push(format!(
                "(LOWER(c.reference) LIKE {p} ESCAPE '\\' OR LOWER(c.subject) LIKE {p} ESCAPE '\\' \
                 OR LOWER(ci.name) LIKE {p} ESCAPE '\\' OR LOWER(ci.fiscal_code) LIKE {p} ESCAPE '\\')"
            ));
        }
        let where_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        // Counting needs the joins only when a filter looks at the citizen or the assignee's login.
        let joins_needed = filter.q.as_deref().is_some_and(|q| !q.trim().is_empty())
            || filter.assignee.as_deref().is_some_and(|a| a != "none");
        let count_from = if joins_needed { CASE_FROM } else { "cases c" };
        let count_sql = format!("SELECT COUNT(*) AS n FROM {count_from} {where_sql}");
        let mut count_query = sqlx::query(sqlx::AssertSqlSafe(count_sql));
        for a in &args {
            count_query = a.bind_to(count_query);
        }
        let total = get_i64(&count_query.fetch_one(&self.read).await?, "n")?;
        if filter.per_page == 0 {
            // Only the count was asked (a queue's number).
            return Ok((Vec::new(), total));
        }
        let per_page = filter.per_page.max(1);
        let offset = i64::from(filter.page.max(1) - 1) * i64::from(per_page);
        // With a selective filter (late, due soon, flagged, orphan) the few matches are
        // found by their own index and sorted; ordering by the bare column would walk the
        // whole reception index looking for them.
        let selective = filter.overdue
            || filter.orphan
            || filter.due_within_days.is_some()
            || filter.flag.is_some();
        let dir = if filter.sort.descending {
            "DESC"
        } else {
            "ASC"
        };
        // Each order reads an index in its order (`cases_received`, the unique reference,
        // `cases_type`, `cases_status_type`, `cases_due_sort`); the id breaks ties.
        let order = match filter.sort.key {
            SortKey::Received if selective => format!("c.received_at + 0 {dir}, c.id {dir}"),
            SortKey::Received => format!("c.received_at {dir}, c.id {dir}"),
            SortKey::Reference => format!("c.reference {dir}"),
            SortKey::Subject => format!("c.subject {dir}, c.id {dir}"),
            SortKey::CaseType => {
                format!("c.case_type {dir}, c.received_at {dir}, c.id {dir}")
            }
            SortKey::Status => {
                format!("c.status {dir}, c.case_type {dir}, c.received_at {dir}, c.id {dir}")
            }
            SortKey::Due => format!("c.due_on {dir}, c.id {dir}"),
        };
        let list_sql = format!(
            "SELECT {CASE_COLUMNS} FROM {CASE_FROM} {where_sql} ORDER BY {order} LIMIT {per_page} OFFSET {offset}"
        );
        let mut list_query = sqlx::query(sqlx::AssertSqlSafe(list_sql));
        for a in &args {
            list_query = a.bind_to(list_query);
        }
        let rows = list_query.fetch_all(&self.read).await?;
        let items = rows
            .iter()
            .map(|r| CaseRecord::from_row(r).map(|rec| self.summarise(&rec)))
            .collect::<Result<Vec<_>>>()?;
        Ok((items, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::tests::request;
    use crate::citizens::CitizenInput;
    use crate::testing::with_test_store;
    use sportello_domain::roles::Role;
    use sportello_domain::workflow::Action;

    #[tokio::test]
    async fn queues_filter_by_flag_open_and_coming_due_date() {
        with_test_store(|store, clock| async move {
            let mut flagged = request("ztl_permit");
            flagged.flags = vec!["unsorted_scan".into()];
            let flagged = store.create_case(flagged).await.unwrap().summary.reference;
            clock.advance(Duration::days(27));
            let young = store
                .create_case(request("ztl_permit"))
                .await
                .unwrap()
                .summary
                .reference;
            let closed = store
                .create_case(request("ztl_permit"))
                .await
                .unwrap()
                .summary
                .reference;
            store
                .apply_action(&closed, &Action::Withdraw, Some("ritirata"), "op1")
                .await
                .unwrap();
            let refs = |filter: CaseFilter| {
                let store = store.clone();
                async move {
                    let (items, total) = store
                        .list_cases(&CaseFilter {
                            per_page: 50,
                            ..filter
                        })
                        .await
                        .unwrap();
                    assert_eq!(total as usize, items.len());
                    let mut refs: Vec<String> = items.into_iter().map(|c| c.reference).collect();
                    refs.sort();
                    refs
                }
            };
            let flag = |f: &str| CaseFilter {
                flag: Some(f.into()),
                ..CaseFilter::default()
            };
            assert_eq!(
                refs(flag("unsorted_scan")).await,
                std::slice::from_ref(&flagged)
            );
            assert!(refs(flag("unsorted")).await.is_empty(), "whole names only");
            assert!(refs(flag("unsorted%scan")).await.is_empty(), "no wildcards");
            let open = CaseFilter {
                open: true,
                ..CaseFilter::default()
            };
            assert_eq!(refs(open).await, [flagged.clone(), young.clone()]);
            // The first case is due in 3 days (its 30 days end on a working day or later).
            let soon = CaseFilter {
                due_within_days: Some(5),
                ..CaseFilter::default()
            };
            let due_soon = refs(soon).await;
            assert!(
                due_soon.contains(&flagged) && !due_soon.contains(&young),
                "{due_soon:?}"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn lists_filter_count_and_page() {
        with_test_store(|store, clock| async move {
            store.add_user("op1", "Op", Role::Operator).await.unwrap();
            for i in 0..7 {
                let mut req = request(if i % 2 == 0 { "ztl_permit" } else { "cude" });
                req.subject = format!("Domanda numero {i}");
                if i == 3 {
                    req.citizen = CitizenInput {
                        name: Some("Giulia Bianchi".into()),
                        ..CitizenInput::default()
                    };
                }
                store.create_case(req).await.unwrap();
                clock.advance(Duration::hours(1));
            }
            let all = CaseFilter {
                page: 1,
                per_page: 3,
                ..CaseFilter::default()
            };
            let (items, total) = store.list_cases(&all).await.unwrap();
            assert_eq!((items.len(), total), (3, 7));
            assert_eq!(items[0].reference, "ZTL-2026-000004", "newest first");
            let (page3, _) = store
                .list_cases(&CaseFilter {
                    page: 3,
                    ..all.clone()
                })
                .await
                .unwrap();
            assert_eq!(page3.len(), 1);
            let cude = CaseFilter {
                case_type: Some("cude".into()),
                per_page: 50,
                page: 1,
                ..CaseFilter::default()
            };
            assert_eq!(store.list_cases(&cude).await.unwrap().1, 3);
            let text = CaseFilter {
                q: Some("bianchi".into()),
                per_page: 50,
                page: 1,
                ..CaseFilter::default()
            };
            let (found, n) = store.list_cases(&text).await.unwrap();
            assert_eq!(
                (n, found[0].citizen_name.as_deref()),
                (1, Some("Giulia Bianchi"))
            );
            let wildcard = CaseFilter {
                q: Some("%".into()),
                per_page: 50,
                page: 1,
                ..CaseFilter::default()
            };
            assert_eq!(
                store.list_cases(&wildcard).await.unwrap().1,
                0,
                "LIKE wildcards are escaped"
            );
            store
                .apply_action(
                    "ZTL-2026-000001",
                    &Action::Assign { user: "op1".into() },
                    None,
                    "sup",
                )
                .await
                .unwrap();
            let orphan = CaseFilter {
                orphan: true,
                per_page: 50,
                page: 1,
                ..CaseFilter::default()
            };
            assert_eq!(store.list_cases(&orphan).await.unwrap().1, 0);
            // Three working days later (Thu 26/11 → Tue 1/12) the six unassigned cases are orphan.
            clock.advance(Duration::days(5));
            let (orphans, n) = store.list_cases(&orphan).await.unwrap();
            assert_eq!(n, 6);
            assert!(orphans.iter().all(|c| c.orphan && c.assignee.is_none()));
            // Ten days without events: the assigned one too.
            clock.advance(Duration::days(6));
            assert_eq!(store.list_cases(&orphan).await.unwrap().1, 7);
            let overdue = CaseFilter {
                overdue: true,
                per_page: 50,
                page: 1,
                ..CaseFilter::default()
            };
            assert_eq!(store.list_cases(&overdue).await.unwrap().1, 0);
            clock.advance(Duration::days(30));
            let (late, n) = store.list_cases(&overdue).await.unwrap();
            assert_eq!(n, 7);
            assert!(late.iter().all(|c| c.overdue && c.sla.days_left < 0));
            let gauges = store.case_gauges().await.unwrap();
            assert_eq!(
                (gauges["open"], gauges["overdue"], gauges["orphan"]),
                (7, 7, 7)
            );
        })
        .await;
    }

    #[tokio::test]
    async fn lists_filter_by_channel_and_dates_and_sort_by_each_column() {
        use crate::cases::{CaseSort, SortKey};
        use chrono::NaiveDate;
        use sportello_domain::case::Channel;
        with_test_store(|store, clock| async move {
            // Three cases a day apart: 26, 27, 28 November; the middle one by e-mail, the
            // last with a 10-day term of its own.
            let mut refs = Vec::new();
            for (i, subject) in ["Bravo", "Alfa", "Charlie"].iter().enumerate() {
                let mut req = request(if i == 1 { "cude" } else { "ztl_permit" });
                req.subject = (*subject).into();
                if i == 1 {
                    req.channel = Channel::Email;
                }
                if i == 2 {
                    req.terms = Some(crate::cases::CaseTerms {
                        term_days: 10,
                        service_days: 5,
                    });
                }
                refs.push(store.create_case(req).await.unwrap().summary.reference);
                clock.advance(Duration::days(1));
            }
            let list = |filter: CaseFilter| {
                let store = store.clone();
                async move {
                    let (items, total) = store
                        .list_cases(&CaseFilter {
                            page: 1,
                            per_page: 50,
                            ..filter
                        })
                        .await
                        .unwrap();
                    assert_eq!(total as usize, items.len());
                    items.into_iter().map(|c| c.reference).collect::<Vec<_>>()
                }
            };
            let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d);
            assert_eq!(
                list(CaseFilter {
                    channel: Some(Channel::Email),
                    ..CaseFilter::default()
                })
                .await,
                [refs[1].clone()]
            );
            assert_eq!(
                list(CaseFilter {
                    received_from: day(27),
                    ..CaseFilter::default()
                })
                .await,
                [refs[2].clone(), refs[1].clone()]
            );
            assert_eq!(
                list(CaseFilter {
                    received_from: day(26),
                    received_to: day(27),
                    ..CaseFilter::default()
                })
                .await,
                [refs[1].clone(), refs[0].clone()]
            );
            assert!(
                list(CaseFilter {
                    received_from: day(29),
                    ..CaseFilter::default()
                })
                .await
                .is_empty()
            );
            // The 10-day case is due first (early December), the others on Christmas week.
            let due = store.get_case(&refs[2]).await.unwrap().summary.due_at;
            let due = NaiveDate::parse_from_str(&due, "%Y-%m-%d").unwrap();
            assert_eq!(
                list(CaseFilter {
                    due_to: Some(due),
                    ..CaseFilter::default()
                })
                .await,
                [refs[2].clone()]
            );
            assert_eq!(
                list(CaseFilter {
                    due_from: Some(due + Duration::days(1)),
                    ..CaseFilter::default()
                })
                .await,
                [refs[1].clone(), refs[0].clone()]
            );
            let sorted = |key: SortKey, descending: bool| CaseFilter {
                sort: CaseSort { key, descending },
                ..CaseFilter::default()
            };
            assert_eq!(
                list(sorted(SortKey::Received, false)).await,
                [refs[0].clone(), refs[1].clone(), refs[2].clone()]
            );
            assert_eq!(
                list(sorted(SortKey::Subject, false)).await,
                [refs[1].clone(), refs[0].clone(), refs[2].clone()]
            );
            assert_eq!(
                list(sorted(SortKey::Due, false)).await[0],
                refs[2],
                "the shortest term first"
            );
            assert_eq!(
                list(sorted(SortKey::CaseType, false)).await[0],
                refs[1],
                "cude before ztl_permit"
            );
            let by_ref = list(sorted(SortKey::Reference, true)).await;
            let mut expected = refs.clone();
            expected.sort();
            expected.reverse();
            assert_eq!(by_ref, expected);
        })
        .await;
    }

    /// The date ranges are searched through an index on SQLite, and each order of the list
    /// reads an index in its order (no sort of every case).
    #[tokio::test]
    async fn date_ranges_and_orders_use_an_index_on_sqlite() {
        with_test_store(|store, _clock| async move {
            if store.backend != crate::Backend::Sqlite {
                return;
            }
            for (sql, index) in [
                (
                    "SELECT c.id FROM cases c WHERE c.received_on >= '2026-11-01' AND c.received_on <= '2026-11-30' ORDER BY c.received_at DESC, c.id DESC",
                    "cases_",
                ),
                (
                    "SELECT c.id FROM cases c WHERE c.due_on >= '2026-12-01' AND c.due_on <= '2026-12-31' ORDER BY c.received_at DESC, c.id DESC",
                    "cases_due",
                ),
                (
                    "SELECT c.id FROM cases c ORDER BY c.due_on ASC, c.id ASC LIMIT 50",
                    // `cases_due` or `cases_due_sort` (SQLite's rowid is the id already).
                    "cases_due",
                ),
                (
                    "SELECT c.id FROM cases c ORDER BY c.reference DESC LIMIT 50",
                    "autoindex_cases",
                ),
                (
                    "SELECT c.id FROM cases c ORDER BY c.case_type ASC, c.received_at ASC, c.id ASC LIMIT 50",
                    "cases_type",
                ),
                (
                    "SELECT c.id FROM cases c ORDER BY c.status DESC, c.case_type DESC, c.received_at DESC, c.id DESC LIMIT 50",
                    "cases_status_type",
                ),
            ] {
                let plan = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                    .fetch_all(&store.read)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| get_str(r, "detail").unwrap())
                    .collect::<Vec<_>>()
                    .join(" | ");
                assert!(
                    plan.contains("INDEX")
                        && plan.contains(index)
                        && (sql.contains("WHERE") || !plan.contains("TEMP B-TREE")),
                    "{sql}: {plan}"
                );
            }
        })
        .await;
    }
}
