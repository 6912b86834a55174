//! The case list with its filters, and its export as CSV or XLSX.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::NaiveDate;
use serde::Deserialize;
use sportello_domain::case::{Channel, Status};
use sportello_domain::roles::Permission;
use sportello_store::cases::{CaseFilter, CaseSummary, SortKey};
use sportello_store::sessions::Session;

use super::{PageQuery, staff, urlencode};
use crate::AppState;
use crate::i18n::Tr;
use crate::pages::{Frame, day, language, page, same_token};

/// A case in a list, in words.
pub(super) struct Row {
    pub(super) reference: String,
    pub(super) subject: String,
    pub(super) case_type: String,
    pub(super) status: String,
    pub(super) citizen: String,
    pub(super) received: String,
    pub(super) due: String,
    pub(super) late: bool,
    pub(super) flags: Vec<String>,
    /// The assignee's login, when someone has it.
    pub(super) assignee: Option<String>,
}

pub(super) fn row(tr: &Tr, c: &CaseSummary) -> Row {
    Row {
        reference: c.reference.clone(),
        subject: c.subject.clone(),
        case_type: tr.name("case_type", &c.case_type),
        status: tr.name("status", &c.status),
        citizen: c.citizen_name.clone().unwrap_or_default(),
        received: day(c.received_at.get(..10).unwrap_or_default()),
        due: day(&c.due_at),
        late: c.overdue,
        flags: c.flags.iter().map(|f| tr.name("flag", f)).collect(),
        assignee: c.assignee.clone(),
    }
}

/// Filters of `/ufficio/pratiche`, as links and the filter form send them.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ListQuery {
    lang: Option<String>,
    status: Option<String>,
    case_type: Option<String>,
    channel: Option<String>,
    /// A login, `none` (nobody) or `me` (the signed-in user).
    assignee: Option<String>,
    overdue: Option<String>,
    orphan: Option<String>,
    open: Option<String>,
    due_within: Option<String>,
    flag: Option<String>,
    q: Option<String>,
    received_from: Option<String>,
    received_to: Option<String>,
    due_from: Option<String>,
    due_to: Option<String>,
    /// A column: `reference`, `subject`, `case_type`, `status`, `received`, `due`.
    sort: Option<String>,
    /// `asc` or `desc`.
    dir: Option<String>,
    page: Option<u32>,
    /// `csv` or `xlsx`: the whole list (up to [`EXPORT_MAX`] cases) as a file.
    format: Option<String>,
    /// The references an assignment just took (comma-separated), to say so after its
    /// redirect (so that reloading the page does not send the form again).
    assegnate: Option<String>,
}

impl ListQuery {
    /// The query of a link or a saved view (`status=received&sort=due`); unknown keys and
    /// values that do not parse are left out.
    pub(super) fn parse(query: &str) -> ListQuery {
        let uri = format!("/?{query}")
            .parse::<axum::http::Uri>()
            .unwrap_or_default();
        Query::<ListQuery>::try_from_uri(&uri).map_or_else(|_| ListQuery::default(), |q| q.0)
    }

    /// The filters and the order, each checked, as (key, value) in a fixed order: the one
    /// reading of a query the list, its links, its exports, saved views and the home
    /// page's cards share.
    fn clean(&self) -> Vec<(&'static str, String)> {
        let text = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let day = |v: &Option<String>| {
            text(v).filter(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok())
        };
        let yes = |v: &Option<String>| text(v).filter(|v| v == "true");
        let mut kept = Vec::new();
        let mut keep = |key: &'static str, value: Option<String>| {
            if let Some(value) = value {
                kept.push((key, value));
            }
        };
        keep(
            "status",
            text(&self.status).filter(|s| s.parse::<Status>().is_ok()),
        );
        keep(
            "case_type",
            text(&self.case_type).filter(|t| is_name(t, 40)),
        );
        keep(
            "channel",
            text(&self.channel).filter(|c| c.parse::<Channel>().is_ok()),
        );
        keep(
            "assignee",
            text(&self.assignee).filter(|a| {
                is_name(a, 64)
                    || a.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
                        && a.len() <= 64
            }),
        );
        keep("flag", text(&self.flag).filter(|f| is_name(f, 64)));
        keep("received_from", day(&self.received_from));
        keep("received_to", day(&self.received_to));
        keep("due_from", day(&self.due_from));
        keep("due_to", day(&self.due_to));
        keep("open", yes(&self.open));
        keep("overdue", yes(&self.overdue));
        keep("orphan", yes(&self.orphan));
        keep(
            "due_within",
            text(&self.due_within)
                .filter(|d| d.parse::<i64>().is_ok_and(|d| (0..=366).contains(&d))),
        );
        keep(
            "q",
            text(&self.q).map(|q| q.chars().take(200).collect::<String>()),
        );
        keep(
            "sort",
            text(&self.sort).filter(|s| SortKey::parse(s).is_some()),
        );
        keep("dir", text(&self.dir).filter(|d| d == "asc" || d == "desc"));
        kept
    }

    /// The query string of [`Self::clean`], for links.
    pub(super) fn canonical(&self) -> String {
        self.clean()
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The store's filter for `login` (who `me` is), without paging.
    pub(super) fn filter(&self, login: &str) -> CaseFilter {
        let mut filter = CaseFilter::default();
        let date = |v: &str| NaiveDate::parse_from_str(v, "%Y-%m-%d").ok();
        for (key, value) in self.clean() {
            match key {
                "status" => filter.status = value.parse().ok(),
                "case_type" => filter.case_type = Some(value),
                "channel" => filter.channel = value.parse().ok(),
                "assignee" if value == "me" => filter.assignee = Some(login.to_owned()),
                "assignee" => filter.assignee = Some(value),
                "flag" => filter.flag = Some(value),
                "received_from" => filter.received_from = date(&value),
                "received_to" => filter.received_to = date(&value),
                "due_from" => filter.due_from = date(&value),
                "due_to" => filter.due_to = date(&value),
                "open" => filter.open = true,
                "overdue" => filter.overdue = true,
                "orphan" => filter.orphan = true,
                "due_within" => filter.due_within_days = value.parse().ok(),
                "q" => filter.q = Some(value),
                "sort" => {
                    filter.sort.key = SortKey::parse(&value).unwrap_or_default();
                    // A new column starts ascending, except the dates: newest first.
                    filter.sort.descending = filter.sort.key == SortKey::Received;
                }
                _ => {}
            }
        }
        if let Some(dir) = self.dir.as_deref() {
            match dir.trim() {
                "asc" => filter.sort.descending = false,
                "desc" => filter.sort.descending = true,
                _ => {}
            }
        }
        filter
    }
}

/// An id of lowercase letters, digits and underscores (case types, flags, `none`, `me`).
fn is_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The most cases one export carries.
const EXPORT_MAX: u32 = 20_000;

/// A sortable column's header: its words, the link that sorts by it, and `aria-sort`.
struct Column {
    label: String,
    href: String,
    /// `ascending`, `descending` or `none`.
    aria_sort: &'static str,
}

/// A saved view as a link, with its delete form.
struct ViewLink {
    id: i64,
    name: String,
    href: String,
}

/// What a bulk assignment did, in words.
#[derive(Default)]
pub(super) struct Outcome {
    done: Vec<String>,
    refused: Vec<String>,
    error: Option<String>,
}

impl Outcome {
    /// Nothing done, for this reason.
    fn error(message: String) -> Outcome {
        Outcome {
            error: Some(message),
            ..Outcome::default()
        }
    }
}

#[derive(Template)]
#[template(path = "office_cases.html")]
struct ListPage {
    tr: Tr,
    frame: Frame,
    rows: Vec<Row>,
    total: i64,
    page: u32,
    pages: u32,
    /// The filters and order, for the pager, exports and saving a view.
    query: String,
    columns: Vec<Column>,
    statuses: Vec<(String, String)>,
    case_types: Vec<(String, String)>,
    channels: Vec<(String, String)>,
    flags: Vec<(String, String)>,
    colleagues: Vec<(String, String)>,
    /// Current values of the form's fields, by key.
    current: Vec<(&'static str, String)>,
    views: Vec<ViewLink>,
    can_assign: bool,
    outcome: Option<Outcome>,
    /// The signed-in login: a case already theirs offers no "take".
    me: String,
}

impl ListPage {
    /// The current value of a filter field (empty when not set).
    fn cur(&self, key: &str) -> &str {
        self.current
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, v)| v.as_str())
    }
}

pub(super) async fn case_list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let session = match staff(&state, &headers, "/ufficio/pratiche").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    let assigned: Vec<String> = query
        .assegnate
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|r| sportello_domain::case::Reference::parse(r).is_some())
        .take(200)
        .map(str::to_owned)
        .collect();
    let outcome = (!assigned.is_empty()).then(|| Outcome {
        done: assigned,
        ..Outcome::default()
    });
    render_list(&state, &session, tr, &query, outcome).await
}

/// The list page for `query`, with what a bulk assignment just did when there was one.
pub(super) async fn render_list(
    state: &AppState,
    session: &Session,
    tr: Tr,
    query: &ListQuery,
    outcome: Option<Outcome>,
) -> Response {
    if !session.user.role.can(Permission::ReadCase) {
        return Redirect::to("/ufficio/permessi").into_response();
    }
    let export = query
        .format
        .as_deref()
        .filter(|f| matches!(*f, "csv" | "xlsx"))
        .map(str::to_owned);
    let per_page = if export.is_some() { EXPORT_MAX } else { 50 };
    let page_no = if export.is_some() {
        1
    } else {
        query.page.unwrap_or(1).clamp(1, 100_000)
    };
    let filter = CaseFilter {
        page: page_no,
        per_page,
        ..query.filter(&session.user.login)
    };
    let (items, total) = match state.store.list_cases(&filter).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "case list");
            (Vec::new(), 0)
        }
    };
    // A read that cannot be audited is not answered.
    if state
        .store
        .record_access(&session.user.login, "list_cases", "ufficio/pratiche")
        .await
        .is_err()
    {
        return crate::pages::temporarily_unavailable();
    }
    if let Some(format) = export {
        return export_cases(&tr, &items, &format);
    }
    let current = query.clean();
    let filters_only = current
        .iter()
        .filter(|(k, _)| *k != "sort" && *k != "dir")
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let columns = [
        (SortKey::Reference, "list.reference"),
        (SortKey::Subject, "list.subject"),
        (SortKey::CaseType, "list.type"),
        (SortKey::Status, "list.status"),
        (SortKey::Received, "list.received"),
        (SortKey::Due, "list.due"),
    ]
    .iter()
    .map(|(key, label)| {
        let here = filter.sort.key == *key;
        // The sorted column's link turns the order round; another starts ascending.
        let descending = here && !filter.sort.descending;
        let sep = if filters_only.is_empty() { "" } else { "&" };
        Column {
            label: tr.t(label).to_owned(),
            href: format!(
                "/ufficio/pratiche?{filters_only}{sep}sort={}&dir={}",
                key.as_str(),
                if descending { "desc" } else { "asc" }
            ),
            aria_sort: match (here, filter.sort.descending) {
                (false, _) => "none",
                (true, true) => "descending",
                (true, false) => "ascending",
            },
        }
    })
    .collect();
    let named = |group: &str, ids: Vec<String>| -> Vec<(String, String)> {
        ids.into_iter()
            .map(|id| {
                let label = tr.name(group, &id);
                (id, label)
            })
            .collect()
    };
    let statuses = named(
        "status",
        Status::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
    );
    let case_types = super::case_types(state, &tr);
    let channels = named(
        "channel",
        Channel::ALL.iter().map(|c| c.as_str().to_owned()).collect(),
    );
    let flags = named(
        "flag",
        sportello_domain::case::flags::ALL
            .iter()
            .map(|f| (*f).to_owned())
            .collect(),
    );
    let colleagues = super::workspace::colleagues(state).await;
    let views = state
        .store
        .saved_views(session.user.id)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|v| ViewLink {
            id: v.id,
            href: format!("/ufficio/pratiche?{}", v.query),
            name: v.name,
        })
        .collect();
    let page_ = ListPage {
        rows: items.iter().map(|c| row(&tr, c)).collect(),
        total,
        page: page_no,
        pages: u32::try_from((total + i64::from(per_page) - 1) / i64::from(per_page))
            .unwrap_or(1)
            .max(1),
        query: query.canonical(),
        columns,
        statuses,
        case_types,
        channels,
        flags,
        colleagues,
        current,
        views,
        can_assign: session.user.role.can(Permission::ActOnCase),
        me: session.user.login.clone(),
        outcome,
        frame: Frame::staff(state, "cases", session).with_language(&tr),
        tr,
    };
    page(StatusCode::OK, &page_)
}

/// The bulk assignment form above the list: `csrf`, `user`, `back` (the list's query)
/// and one `case` per ticked row.
pub(super) async fn bulk_assign(
    State(state): State<AppState>,
    Query(lang): Query<PageQuery>,
    headers: HeaderMap,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Response {
    let session = match staff(&state, &headers, "/ufficio/pratiche").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(lang.lang.as_deref(), &headers);
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let back = ListQuery::parse(&field("back"));
    if let Some(key) = super::refusal(&session, &field("csrf")) {
        let outcome = Outcome::error(tr.t(key).to_owned());
        return render_list(&state, &session, tr, &back, Some(outcome)).await;
    }
    // "Prendi" on one row: that case, to whoever pressed it (the selection is ignored).
    let take = field("take");
    let (user, cases): (String, Vec<String>) = if take.is_empty() {
        let selected = pairs
            .iter()
            .filter(|(k, v)| k == "case" && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .take(200)
            .collect();
        (field("user"), selected)
    } else {
        (session.user.login.clone(), vec![take])
    };
    if user.is_empty() || cases.is_empty() {
        let outcome = Outcome::error(tr.t("list.bulk_empty").to_owned());
        return render_list(&state, &session, tr, &back, Some(outcome)).await;
    }
    let mut outcome = Outcome::default();
    for reference in cases {
        // The same use case as one assignment from the case page, journaled per case.
        let request = sportello_app::cases::ActionRequest {
            action: Some("assign".into()),
            note: None,
            user: Some(user.clone()),
            missing: None,
            reasons: None,
            notify: None,
            notify_channel: None,
            lang: None,
        };
        match sportello_app::cases::perform_action(&state, &session.user.login, &reference, request)
            .await
        {
            Ok(_) => outcome.done.push(reference),
            Err(e) => {
                let why = crate::error::ApiError::from(e).detail_in(tr);
                outcome.refused.push(format!("{reference}: {why}"));
            }
        }
    }
    // All done: back to the list by a redirect, which says what was assigned (a reload
    // does not assign again). Anything refused is said on this answer, with its reasons.
    if outcome.refused.is_empty() && outcome.error.is_none() {
        let filters = back.canonical();
        let sep = if filters.is_empty() { "" } else { "&" };
        return Redirect::to(&format!(
            "/ufficio/pratiche?{filters}{sep}assegnate={}",
            urlencode(&outcome.done.join(","))
        ))
        .into_response();
    }
    render_list(&state, &session, tr, &back, Some(outcome)).await
}

/// The form that saves the list's current filters and order under a name.
#[derive(Debug, Deserialize)]
pub struct SaveViewForm {
    csrf: String,
    name: String,
    query: String,
}

/// `POST /ufficio/viste`: saves a view (only known filter keys are kept) and opens it.
pub(super) async fn save_view(
    State(state): State<AppState>,
    Query(lang): Query<PageQuery>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<SaveViewForm>,
) -> Response {
    let session = match staff(&state, &headers, "/ufficio/pratiche").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(lang.lang.as_deref(), &headers);
    let back = ListQuery::parse(&form.query);
    let problem = if !same_token(&form.csrf, &session.csrf_token) {
        Some(tr.t("form.expired").to_owned())
    } else if !session.user.role.can(Permission::ReadCase) {
        Some(tr.t("case.forbidden").to_owned())
    } else {
        match state
            .store
            .save_view(session.user.id, &form.name, &back.canonical())
            .await
        {
            Ok(view) => {
                return Redirect::to(&format!("/ufficio/pratiche?{}", view.query)).into_response();
            }
            Err(_) => Some(tr.t("list.view_invalid").to_owned()),
        }
    };
    let outcome = Outcome {
        error: problem,
        ..Outcome::default()
    };
    render_list(&state, &session, tr, &back, Some(outcome)).await
}

/// The form that deletes a saved view.
#[derive(Debug, Deserialize)]
pub struct DeleteViewForm {
    csrf: String,
}

/// `POST /ufficio/viste/{id}/elimina`: deletes one of the user's own views; another
/// user's view is not found.
pub(super) async fn delete_view(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(lang): Query<PageQuery>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<DeleteViewForm>,
) -> Response {
    let session = match staff(&state, &headers, "/ufficio/pratiche").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(lang.lang.as_deref(), &headers);
    if !same_token(&form.csrf, &session.csrf_token) {
        let outcome = Outcome::error(tr.t("form.expired").to_owned());
        return render_list(&state, &session, tr, &ListQuery::default(), Some(outcome)).await;
    }
    match state.store.delete_view(session.user.id, id).await {
        Ok(true) => Redirect::to("/ufficio/pratiche").into_response(),
        Ok(false) => (
            StatusCode::NOT_FOUND,
            tr.t("list.view_not_found").to_owned(),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "saved view");
            crate::pages::temporarily_unavailable()
        }
    }
}

/// The case list as CSV or XLSX (subjects and names are never taken for formulas).
fn export_cases(tr: &Tr, items: &[CaseSummary], format: &str) -> Response {
    use crate::tables::{Cell, Table};
    let table = Table {
        name: "pratiche",
        columns: vec![
            "reference",
            "case_type",
            "status",
            "subject",
            "channel",
            "citizen",
            "assignee",
            "protocol",
            "received_at",
            "due_at",
            "days_left",
            "overdue",
            "orphan",
            "flags",
        ],
        rows: items
            .iter()
            .map(|c| {
                vec![
                    Cell::Text(c.reference.clone()),
                    Cell::Text(tr.name("case_type", &c.case_type)),
                    Cell::Text(tr.name("status", &c.status)),
                    Cell::Text(c.subject.clone()),
                    Cell::Text(c.channel.clone()),
                    Cell::Text(c.citizen_name.clone().unwrap_or_default()),
                    Cell::Text(c.assignee.clone().unwrap_or_default()),
                    Cell::Text(c.protocol.clone().unwrap_or_default()),
                    Cell::Text(c.received_at.clone()),
                    Cell::Text(c.due_at.clone()),
                    Cell::Int(c.sla.days_left),
                    Cell::Int(i64::from(c.overdue)),
                    Cell::Int(i64::from(c.orphan)),
                    Cell::Text(c.flags.join(";")),
                ]
            })
            .collect(),
    };
    let result = if format == "xlsx" {
        crate::tables::xlsx_response(std::slice::from_ref(&table), "pratiche")
    } else {
        crate::tables::csv_response(&table, "pratiche")
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

// ----- case page -----

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_keeps_known_keys_with_valid_values_only() {
        let q = ListQuery::parse(
            "status=received&evil=1&channel=carrier_pigeon&case_type=cude&assignee=me\
             &received_from=2026-11-01&due_to=31/12/2026&open=yes&orphan=true&sort=due&dir=up&q=%20rossi%20&page=3",
        );
        assert_eq!(
            q.canonical(),
            "status=received&case_type=cude&assignee=me&received_from=2026-11-01&orphan=true&q=rossi&sort=due"
        );
        let filter = q.filter("anna");
        assert_eq!(
            filter.assignee.as_deref(),
            Some("anna"),
            "me is who is signed in"
        );
        assert_eq!(filter.status, Some(Status::Received));
        assert_eq!(filter.channel, None);
        assert_eq!(filter.received_from, NaiveDate::from_ymd_opt(2026, 11, 1));
        assert_eq!(filter.due_to, None);
        assert!(filter.orphan && !filter.open);
        assert_eq!(filter.sort.key, SortKey::Due);
        assert!(!filter.sort.descending, "a new column starts ascending");
        let newest = ListQuery::parse("sort=received&dir=asc")
            .filter("anna")
            .sort;
        assert_eq!((newest.key, newest.descending), (SortKey::Received, false));
        assert_eq!(
            ListQuery::parse("assignee=x%27%20OR%201%3D1").canonical(),
            "",
            "a login has no quotes or spaces"
        );
    }

    #[test]
    fn every_queue_card_links_to_its_own_query_unchanged() {
        for (key, link, _) in super::super::home::QUEUES {
            assert_eq!(ListQuery::parse(link).canonical(), link, "{key}");
        }
    }
}
