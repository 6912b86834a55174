//! The office's measurements as a page (`/ufficio/report`): charts drawn on the server as
//! accessible SVG, each with its data table, the figures by case type, channel or month,
//! the overdue and orphan lists, the operators' load, and the exports (CSV, XLSX).

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use sportello_domain::roles::Permission;
use sportello_store::reports::{GroupBy, Period, SlaReport, ThroughputReport};

use crate::AppState;
use crate::charts::{
    ChartData, NumberStyle, Series, bar_chart, data_table, format_number, line_chart,
};
use crate::i18n::{Lang, Tr};
use crate::pages::{Frame, day, language, page};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/ufficio/report", get(reports))
}

/// Query of the page: the period and the grouping.
#[derive(Debug, Default, Deserialize)]
pub struct ReportQuery {
    lang: Option<String>,
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
}

/// A chart and its table, rendered.
struct Chart {
    title: String,
    svg: String,
    table: String,
}

/// One row of the figures table, already in words.
struct GroupRow {
    group: String,
    cells: Vec<String>,
}

#[derive(Template)]
#[template(path = "office_reports.html")]
struct ReportsPage {
    tr: Tr,
    frame: Frame,
    from: String,
    to: String,
    group_by: String,
    error: Option<String>,
    charts: Vec<Chart>,
    rows: Vec<GroupRow>,
    sla: Option<SlaReport>,
    sla_shares: (String, String),
    operators: Vec<(String, i64, i64, i64)>,
    export: String,
}

fn share(x: Option<f64>, style: NumberStyle) -> String {
    x.map_or_else(
        || "—".to_owned(),
        |v| format!("{} %", format_number(v * 100.0, style)),
    )
}

fn days(x: Option<f64>, style: NumberStyle) -> String {
    x.map_or_else(|| "—".to_owned(), |v| format_number(v, style))
}

/// `GET /ufficio/report`: the supervisor's page of the reports.
async fn reports(
    State(state): State<AppState>,
    Query(query): Query<ReportQuery>,
    headers: HeaderMap,
) -> Response {
    let session = match super::staff(&state, &headers, "/ufficio/report").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    if !session.user.role.can(Permission::ReadReports) {
        crate::guard::permission_refused(&session.user.login, "read reports");
        return Redirect::to("/ufficio").into_response();
    }
    let style = if tr.lang == Lang::It {
        NumberStyle::Comma
    } else {
        NumberStyle::Point
    };
    let today = sportello_domain::calendar::rome_date(state.store.clock().now());
    let date = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .and_then(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
    };
    let default = Period::ending(today, 365);
    let (from, to) = (
        date(&query.from).unwrap_or_else(|| default.from()),
        date(&query.to).unwrap_or_else(|| default.to()),
    );
    let group_by = query
        .group_by
        .as_deref()
        .and_then(GroupBy::parse)
        .unwrap_or(GroupBy::CaseType);
    let mut page_ = ReportsPage {
        frame: Frame::staff(&state, "reports", &session).with_language(&tr),
        tr,
        from: from.to_string(),
        to: to.to_string(),
        group_by: group_by.as_str().to_owned(),
        error: None,
        charts: Vec::new(),
        rows: Vec::new(),
        sla: None,
        sla_shares: (String::new(), String::new()),
        operators: Vec::new(),
        export: format!("from={from}&to={to}&group_by={}", group_by.as_str()),
    };
    let period = match Period::new(from, to) {
        Ok(p) => p,
        Err(e) => {
            page_.error = Some(crate::error::ApiError::from(e).detail_in(tr));
            return page(StatusCode::UNPROCESSABLE_ENTITY, &page_);
        }
    };
    let (throughput, sla) = match (
        state.store.throughput_report(period, group_by).await,
        state.store.sla_report(period).await,
    ) {
        (Ok(t), Ok(s)) => (t, s),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "reports");
            page_.error = Some(tr.t("form.failed").to_owned());
            let status = if e.is_unavailable() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            return page(status, &page_);
        }
    };
    // A read that cannot be audited is not answered.
    if state
        .store
        .record_access(&session.user.login, "reports", "ufficio/report")
        .await
        .is_err()
    {
        return crate::pages::temporarily_unavailable();
    }
    page_.charts = charts(&tr, style, &throughput, group_by);
    let history = state
        .store
        .gauge_history(from, to)
        .await
        .unwrap_or_default();
    if !history.is_empty() {
        let over_time = ChartData {
            id: "gauges".into(),
            title: tr.t("reports.chart.gauges").to_owned(),
            description: tr.f(
                "reports.chart.gauges_desc",
                &[("days", &history.len().to_string())],
            ),
            x_label: tr.t("reports.day").to_owned(),
            y_label: tr.t("reports.cases").to_owned(),
            categories: history.iter().map(|g| day(&g.day)).collect(),
            series: vec![
                Series {
                    name: tr.t("queue.orphan").to_owned(),
                    values: history.iter().map(|g| Some(g.orphan as f64)).collect(),
                },
                Series {
                    name: tr.t("queue.overdue").to_owned(),
                    values: history.iter().map(|g| Some(g.overdue as f64)).collect(),
                },
            ],
            numbers: style,
        };
        page_.charts.push(Chart {
            title: over_time.title.clone(),
            svg: line_chart(&over_time),
            table: data_table(&over_time),
        });
    }
    let name = |g: &str| match group_by {
        GroupBy::CaseType => tr.name("case_type", g),
        GroupBy::Channel => tr.name("channel", g),
        GroupBy::Month => g.to_owned(),
    };
    page_.rows = throughput
        .items
        .iter()
        .chain(std::iter::once(&throughput.totals))
        .map(|g| GroupRow {
            group: if g.group == "total" {
                tr.t("reports.total").to_owned()
            } else {
                name(&g.group)
            },
            cells: vec![
                g.opened.to_string(),
                g.closed.to_string(),
                g.open.to_string(),
                days(g.lead_time_days.median, style),
                days(g.lead_time_days.p90, style),
                days(g.lead_time_days.median_net, style),
                days(g.lead_time_days.p90_net, style),
                days(g.first_answer_days.median, style),
                share(g.within_legal_term_share, style),
                share(g.within_service_share, style),
            ],
        })
        .collect();
    page_.operators = throughput
        .current
        .operators
        .iter()
        .map(|o| {
            (
                o.name
                    .clone()
                    .or_else(|| o.assignee.clone())
                    .unwrap_or_else(|| tr.t("case.nobody").to_owned()),
                o.open,
                o.overdue,
                o.orphan,
            )
        })
        .collect();
    page_.sla_shares = (
        share(sla.on_time_share, style),
        share(sla.within_service_share, style),
    );
    page_.sla = Some(sla);
    page(StatusCode::OK, &page_)
}

/// The charts of the page: opened and closed per week, work in progress per week, lead
/// times by group, and the backlog by age.
fn charts(tr: &Tr, style: NumberStyle, t: &ThroughputReport, group_by: GroupBy) -> Vec<Chart> {
    let weeks: Vec<String> = t.weekly.iter().map(|w| day(&w.starts_on)).collect();
    let weekly = ChartData {
        id: "weekly".into(),
        title: tr.t("reports.chart.weekly").to_owned(),
        description: tr.f(
            "reports.chart.weekly_desc",
            &[
                (
                    "opened",
                    &t.weekly.iter().map(|w| w.opened).sum::<i64>().to_string(),
                ),
                (
                    "closed",
                    &t.weekly.iter().map(|w| w.closed).sum::<i64>().to_string(),
                ),
            ],
        ),
        x_label: tr.t("reports.week").to_owned(),
        y_label: tr.t("reports.cases").to_owned(),
        categories: weeks.clone(),
        series: vec![
            Series {
                name: tr.t("reports.opened").to_owned(),
                values: t.weekly.iter().map(|w| Some(w.opened as f64)).collect(),
            },
            Series {
                name: tr.t("reports.closed").to_owned(),
                values: t.weekly.iter().map(|w| Some(w.closed as f64)).collect(),
            },
        ],
        numbers: style,
    };
    let wip = ChartData {
        id: "wip".into(),
        title: tr.t("reports.chart.wip").to_owned(),
        description: tr.f(
            "reports.chart.wip_desc",
            &[("open", &t.backlog.open.to_string())],
        ),
        x_label: tr.t("reports.week").to_owned(),
        y_label: tr.t("reports.cases").to_owned(),
        categories: weeks,
        series: vec![Series {
            name: tr.t("reports.open").to_owned(),
            values: t
                .weekly
                .iter()
                .map(|w| Some(w.open_at_end as f64))
                .collect(),
        }],
        numbers: style,
    };
    let group_name = |g: &str| match group_by {
        GroupBy::CaseType => tr.name("case_type", g),
        GroupBy::Channel => tr.name("channel", g),
        GroupBy::Month => g.to_owned(),
    };
    let lead = ChartData {
        id: "lead".into(),
        title: tr.t("reports.chart.lead").to_owned(),
        description: tr.f(
            "reports.chart.lead_desc",
            &[("median", &days(t.totals.lead_time_days.median, style))],
        ),
        x_label: tr.name("group_by", group_by.as_str()),
        y_label: tr.t("reports.days").to_owned(),
        categories: t.items.iter().map(|g| group_name(&g.group)).collect(),
        series: vec![
            Series {
                name: tr.t("reports.median").to_owned(),
                values: t.items.iter().map(|g| g.lead_time_days.median).collect(),
            },
            Series {
                name: tr.t("reports.median_net").to_owned(),
                values: t
                    .items
                    .iter()
                    .map(|g| g.lead_time_days.median_net)
                    .collect(),
            },
            Series {
                name: tr.t("reports.p90").to_owned(),
                values: t.items.iter().map(|g| g.lead_time_days.p90).collect(),
            },
        ],
        numbers: style,
    };
    let backlog = ChartData {
        id: "backlog".into(),
        title: tr.t("reports.chart.backlog").to_owned(),
        description: tr.f(
            "reports.chart.backlog_desc",
            &[("open", &t.backlog.open.to_string())],
        ),
        x_label: tr.t("reports.age").to_owned(),
        y_label: tr.t("reports.cases").to_owned(),
        categories: t.backlog.age.iter().map(|a| a.bucket.clone()).collect(),
        series: vec![Series {
            name: tr.t("reports.open").to_owned(),
            values: t.backlog.age.iter().map(|a| Some(a.open as f64)).collect(),
        }],
        numbers: style,
    };
    vec![
        Chart {
            title: weekly.title.clone(),
            svg: bar_chart(&weekly),
            table: data_table(&weekly),
        },
        Chart {
            title: wip.title.clone(),
            svg: line_chart(&wip),
            table: data_table(&wip),
        },
        Chart {
            title: lead.title.clone(),
            svg: bar_chart(&lead),
            table: data_table(&lead),
        },
        Chart {
            title: backlog.title.clone(),
            svg: bar_chart(&backlog),
            table: data_table(&backlog),
        },
    ]
}
