//! Tables of figures as the office takes them into a spreadsheet: the reports' tables and
//! the case list's export, written as CSV (formula-looking text defused) or XLSX, and served as
//! attachments. Shared by the API and the pages.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use sportello_store::reports::{SlaReport, ThroughputReport};

use crate::error::ApiError;

/// One cell of an exported table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A measure; `None` is an empty cell (no case to measure).
    Num(Option<f64>),
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_owned())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}

impl From<Option<String>> for Cell {
    fn from(s: Option<String>) -> Cell {
        Cell::Text(s.unwrap_or_default())
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Cell {
        Cell::Int(n)
    }
}

impl From<Option<f64>> for Cell {
    fn from(n: Option<f64>) -> Cell {
        Cell::Num(n)
    }
}

/// A table of a report, as exported: a name (CSV `table=`, XLSX sheet), its column names
/// and its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Name.
    pub name: &'static str,
    /// Column names.
    pub columns: Vec<&'static str>,
    /// Rows, each as long as `columns`.
    pub rows: Vec<Vec<Cell>>,
}

/// The throughput report's tables: groups (with the totals last), weeks, backlog ages and
/// operators.
pub fn throughput_tables(r: &ThroughputReport) -> Vec<Table> {
    let group_row = |g: &sportello_store::reports::GroupFigures| -> Vec<Cell> {
        vec![
            g.group.clone().into(),
            g.opened.into(),
            g.closed.into(),
            g.open.into(),
            g.lead_time_days.median.into(),
            g.lead_time_days.p90.into(),
            g.lead_time_days.median_net.into(),
            g.lead_time_days.p90_net.into(),
            g.first_answer_days.median.into(),
            g.first_answer_days.p90.into(),
            g.first_answer_days.answered.into(),
            g.within_legal_term.into(),
            g.within_legal_term_share.into(),
            g.within_service.into(),
            g.within_service_share.into(),
        ]
    };
    vec![
        Table {
            name: "groups",
            columns: vec![
                r.group_by.as_str(),
                "opened",
                "closed",
                "open",
                "lead_time_median_days",
                "lead_time_p90_days",
                "lead_time_median_net_days",
                "lead_time_p90_net_days",
                "first_answer_median_days",
                "first_answer_p90_days",
                "answered",
                "within_legal_term",
                "within_legal_term_share",
                "within_service",
                "within_service_share",
            ],
            rows: r
                .items
                .iter()
                .chain(std::iter::once(&r.totals))
                .map(group_row)
                .collect(),
        },
        Table {
            name: "weekly",
            columns: vec!["week", "starts_on", "opened", "closed", "open_at_end"],
            rows: r
                .weekly
                .iter()
                .map(|w| {
                    vec![
                        w.week.clone().into(),
                        w.starts_on.clone().into(),
                        w.opened.into(),
                        w.closed.into(),
                        w.open_at_end.into(),
                    ]
                })
                .collect(),
        },
        Table {
            name: "backlog",
            columns: vec!["age_days", "min_days", "max_days", "open", "as_of"],
            rows: r
                .backlog
                .age
                .iter()
                .map(|b| {
                    vec![
                        b.bucket.clone().into(),
                        b.min_days.into(),
                        b.max_days.map_or(Cell::Num(None), Cell::Int),
                        b.open.into(),
                        r.backlog.as_of.clone().into(),
                    ]
                })
                .collect(),
        },
        Table {
            name: "operators",
            columns: vec!["assignee", "name", "open", "overdue", "orphan", "as_of"],
            rows: r
                .current
                .operators
                .iter()
                .map(|o| {
                    vec![
                        o.assignee.clone().into(),
                        o.name.clone().into(),
                        o.open.into(),
                        o.overdue.into(),
                        o.orphan.into(),
                        r.current.as_of.clone().into(),
                    ]
                })
                .collect(),
        },
    ]
}

/// The SLA report's tables: the late cases, the orphan cases and a one-row summary.
pub fn sla_tables(r: &SlaReport) -> Vec<Table> {
    vec![
        Table {
            name: "overdue",
            columns: vec![
                "reference",
                "subject",
                "case_type",
                "due_at",
                "days_late",
                "assignee",
            ],
            rows: r
                .overdue
                .iter()
                .map(|c| {
                    vec![
                        c.reference.clone().into(),
                        c.subject.clone().into(),
                        c.case_type.clone().into(),
                        c.due_at.clone().into(),
                        c.days_late.into(),
                        c.assignee.clone().into(),
                    ]
                })
                .collect(),
        },
        Table {
            name: "orphans",
            columns: vec![
                "reference",
                "subject",
                "case_type",
                "received_at",
                "assignee",
                "reason",
                "idle_days",
            ],
            rows: r
                .orphans
                .iter()
                .map(|c| {
                    vec![
                        c.reference.clone().into(),
                        c.subject.clone().into(),
                        c.case_type.clone().into(),
                        c.received_at.clone().into(),
                        c.assignee.clone().into(),
                        c.reason.clone().into(),
                        c.idle_days.into(),
                    ]
                })
                .collect(),
        },
        Table {
            name: "summary",
            columns: vec![
                "from",
                "to",
                "closed",
                "on_time",
                "on_time_share",
                "within_service",
                "within_service_share",
                "overdue",
                "orphans",
                "as_of",
            ],
            rows: vec![vec![
                r.from.clone().into(),
                r.to.clone().into(),
                r.closed.into(),
                r.on_time.into(),
                r.on_time_share.into(),
                r.within_service.into(),
                r.within_service_share.into(),
                (r.overdue.len() as i64).into(),
                (r.orphans.len() as i64).into(),
                r.as_of.clone().into(),
            ]],
        },
    ]
}

/// Text that a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, tab, carriage
/// return first) gets a leading apostrophe: subjects come from citizens, and a CSV opened
/// in a spreadsheet must not run what they wrote (OWASP "CSV injection").
fn csv_text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}").into()
    } else {
        s.into()
    }
}

/// A table as CSV (RFC 4180, UTF-8, a header line, numbers with a decimal point).
pub fn write_csv(t: &Table) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&t.columns)?;
    for row in &t.rows {
        let fields: Vec<String> = row
            .iter()
            .map(|c| match c {
                Cell::Text(s) => csv_text(s).into_owned(),
                Cell::Int(n) => n.to_string(),
                Cell::Num(Some(x)) => x.to_string(),
                Cell::Num(None) => String::new(),
            })
            .collect();
        w.write_record(&fields)?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

/// The tables as an XLSX workbook, one sheet each (named as the table), header in bold
/// and frozen, numbers as numbers, text always as text (never a formula).
pub fn write_xlsx(tables: &[Table]) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    for t in tables {
        let sheet = book.add_worksheet();
        sheet.set_name(t.name)?;
        for (c, name) in t.columns.iter().enumerate() {
            sheet.write_string_with_format(0, col(c), *name, &bold)?;
        }
        for (r, row) in t.rows.iter().enumerate() {
            let r = u32::try_from(r + 1).unwrap_or(u32::MAX);
            for (c, cell) in row.iter().enumerate() {
                match cell {
                    Cell::Text(s) => {
                        sheet.write_string(r, col(c), s.as_str())?;
                    }
                    Cell::Int(n) => {
                        sheet.write_number(r, col(c), *n as f64)?;
                    }
                    Cell::Num(Some(x)) => {
                        sheet.write_number(r, col(c), *x)?;
                    }
                    Cell::Num(None) => {}
                }
            }
        }
        sheet.set_freeze_panes(1, 0)?;
        sheet.autofit();
    }
    book.save_to_buffer()
}

fn col(c: usize) -> u16 {
    u16::try_from(c).unwrap_or(u16::MAX)
}

fn attachment(media: &'static str, filename: &str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, media.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// A table as a CSV download.
pub fn csv_response(t: &Table, name: &str) -> Result<Response, ApiError> {
    let body = write_csv(t).map_err(|e| ApiError::Internal(format!("report CSV: {e}")))?;
    Ok(attachment(
        "text/csv; charset=utf-8",
        &format!("{name}.csv"),
        body,
    ))
}

/// Tables as an XLSX download.
pub fn xlsx_response(tables: &[Table], name: &str) -> Result<Response, ApiError> {
    let body = write_xlsx(tables).map_err(|e| ApiError::Internal(format!("report XLSX: {e}")))?;
    Ok(attachment(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        &format!("{name}.xlsx"),
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_is_quoted_and_defused() {
        let t = Table {
            name: "overdue",
            columns: vec!["reference", "subject", "days_late", "share"],
            rows: vec![
                vec![
                    "ZTL-2026-000001".into(),
                    "=HYPERLINK(\"http://x\")".into(),
                    3.into(),
                    Some(0.75).into(),
                ],
                vec![
                    "ZTL-2026-000002".into(),
                    "Permesso, residenti \"centro\"".into(),
                    (-1).into(),
                    Cell::Num(None),
                ],
            ],
        };
        let text = String::from_utf8(write_csv(&t).unwrap()).unwrap();
        assert_eq!(
            text,
            "reference,subject,days_late,share\n\
             ZTL-2026-000001,\"'=HYPERLINK(\"\"http://x\"\")\",3,0.75\n\
             ZTL-2026-000002,\"Permesso, residenti \"\"centro\"\"\",-1,\n"
        );
    }

    #[test]
    fn xlsx_is_a_workbook_with_one_sheet_per_table() {
        let t = |name| Table {
            name,
            columns: vec!["a", "b"],
            rows: vec![vec!["=1+1".into(), Some(1.5).into()]],
        };
        let bytes = write_xlsx(&[t("overdue"), t("orphans")]).unwrap();
        assert_eq!(&bytes[..2], b"PK", "a zip container");
        // The sheet names are stored uncompressed in the workbook part's name list only
        // after inflating; the zip's directory names one part per sheet.
        let names = String::from_utf8_lossy(&bytes);
        assert!(names.contains("xl/worksheets/sheet1.xml"));
        assert!(names.contains("xl/worksheets/sheet2.xml"));
        assert!(!names.contains("xl/worksheets/sheet3.xml"));
    }
}
