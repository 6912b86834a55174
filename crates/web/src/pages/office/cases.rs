//! The case list with its filters, and its export as CSV or XLSX.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sportello_domain::roles::Permission;
use sportello_store::cases::{CaseFilter, CaseSummary};

use super::{staff, urlencode};
use crate::AppState;
use crate::i18n::Tr;
use crate::pages::{Frame, day, language, page};

/// A case in a list, in words.
pub(super) struct Row {
    pub(super) reference: String,
    pub(super) subject: String,
    pub(super) case_type: String,
    pub(super) status: String,
    pub(super) citizen: String,
    pub(super) due: String,
    pub(super) late: bool,
    pub(super) flags: Vec<String>,
}

pub(super) fn row(tr: &Tr, c: &CaseSummary) -> Row {
    Row {
        reference: c.reference.clone(),
        subject: c.subject.clone(),
        case_type: tr.name("case_type", &c.case_type),
        status: tr.name("status", &c.status),
        citizen: c.citizen_name.clone().unwrap_or_default(),
        due: day(&c.due_at),
        late: c.overdue,
        flags: c.flags.iter().map(|f| tr.name("flag", f)).collect(),
    }
}

/// Filters of `/ufficio/pratiche`, as links and the filter form send them.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    lang: Option<String>,
    status: Option<String>,
    case_type: Option<String>,
    assignee: Option<String>,
    overdue: Option<String>,
    orphan: Option<String>,
    open: Option<String>,
    due_within: Option<String>,
    flag: Option<String>,
    q: Option<String>,
    page: Option<u32>,
    /// `csv` or `xlsx`: the whole list (up to [`EXPORT_MAX`] cases) as a file.
    format: Option<String>,
}

/// The most cases one export carries.
const EXPORT_MAX: u32 = 20_000;

#[derive(Template)]
#[template(path = "office_cases.html")]
struct ListPage {
    tr: Tr,
    frame: Frame,
    rows: Vec<Row>,
    total: i64,
    page: u32,
    pages: u32,
    query: String,
    statuses: Vec<(String, String)>,
    status: String,
    q: String,
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
    if !session.user.role.can(Permission::ReadCase) {
        return Redirect::to("/ufficio/permessi").into_response();
    }
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
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
        status: text(&query.status).and_then(|s| s.parse().ok()),
        case_type: text(&query.case_type),
        assignee: text(&query.assignee),
        overdue: query.overdue.as_deref() == Some("true"),
        orphan: query.orphan.as_deref() == Some("true"),
        open: query.open.as_deref() == Some("true"),
        due_within_days: text(&query.due_within).and_then(|d| d.parse().ok()),
        flag: text(&query.flag),
        q: text(&query.q).map(|q| q.chars().take(200).collect()),
        page: page_no,
        per_page,
        ..CaseFilter::default()
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
    let mut kept: Vec<String> = Vec::new();
    for (k, v) in [
        ("status", &query.status),
        ("case_type", &query.case_type),
        ("assignee", &query.assignee),
        ("overdue", &query.overdue),
        ("orphan", &query.orphan),
        ("open", &query.open),
        ("due_within", &query.due_within),
        ("flag", &query.flag),
        ("q", &query.q),
    ] {
        if let Some(v) = text(v) {
            kept.push(format!("{k}={}", urlencode(&v)));
        }
    }
    let statuses = [
        "received",
        "in_review",
        "waiting_citizen",
        "rejection_notice",
        "approved",
        "issued",
        "rejected",
        "closed",
    ]
    .iter()
    .map(|s| ((*s).to_owned(), tr.name("status", s)))
    .collect();
    let page_ = ListPage {
        rows: items.iter().map(|c| row(&tr, c)).collect(),
        total,
        page: page_no,
        pages: u32::try_from((total + i64::from(per_page) - 1) / i64::from(per_page))
            .unwrap_or(1)
            .max(1),
        query: kept.join("&"),
        statuses,
        status: text(&query.status).unwrap_or_default(),
        q: text(&query.q).unwrap_or_default(),
        frame: Frame::staff(&state, "cases", &session).with_language(&tr),
        tr,
    };
    page(StatusCode::OK, &page_)
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
