//! The messages the office sends to a citizen, in Italian and English, per occasion
//! ([`TemplateKind`]) and per case type, long ([`Length::Full`]: e-mail, PEC, fax, letter)
//! or short ([`Length::Short`]: SMS, WhatsApp, Telegram).
//!
//! # Where the words live
//!
//! `templates/it.toml` and `templates/en.toml`, compiled in and parsed once. Keys are flat:
//!
//! - `"{kind}.subject"`, `"{kind}.body"`, `"{kind}.short"` — the generic templates, where
//!   `{kind}` is a [`TemplateKind::as_str`] id and `short` is the body at [`Length::Short`];
//! - `"{case_type}.{kind}.subject"` etc. — a case type's own version of one part, which wins
//!   over the generic one (`"cude.acknowledgement.body"`);
//! - `"fallback.citizen_name"` — what `{citizen_name}` says when the name is unknown.
//!
//! A test checks that both files have the same keys.
//!
//! # Template syntax
//!
//! - `{name}` is replaced by a value of the [`TemplateContext`]: `{reference}`,
//!   `{case_type_name}`, `{citizen_name}`, `{office_name}`, `{received_on}`, `{due_on}`,
//!   `{term_days}`, `{missing}`, `{reasons}`, `{answer_by}`, `{permit_number}`,
//!   `{permit_valid_to}`, `{appointment}`, `{status_link}`, `{protocol}`. Any other `{…}` is
//!   an error of the file (found by the tests), not of a message.
//! - A value that is `None`, empty or blank makes the render fail with
//!   [`TemplateError::Missing`] naming the field — except on optional lines:
//! - **A line that starts with `?` is optional**: it is dropped when any placeholder on it is
//!   empty, and printed without the `?` (and one space after it, if any) otherwise. A line
//!   that must start with a real question mark starts with `??`.
//! - Blank lines at the start and end are dropped and runs of blank lines become one, so a
//!   dropped optional paragraph leaves no hole.
//! - `{citizen_name}` never fails: without a name it is the rest of a generic salutation
//!   (`"cittadina, gentile cittadino"`, `"citizen"`), so write `Gentile {citizen_name},` /
//!   `Dear {citizen_name},`.
//! - `{missing}` and `{reasons}`: in a Full body one item per line, `- item`, so put them on
//!   a line of their own; in a Short body and in a subject, on one line, missing items
//!   separated by `, `, reasons (which are sentences and may hold commas) by `; `.
//! - Dates: `dd/mm/yyyy` in Italian, `1 December 2026` in English.
//!
//! A Short body longer than [`SHORT_MAX_CHARS`] has its `{missing}`/`{reasons}` list cut,
//! ending in `…`, until it fits (the rest of a short text is short by construction).
//!
//! Rendering is a walk over templates compiled at first use: no parsing and no regex per call.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use chrono::{Datelike, NaiveDate};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// The most characters a Short text may have, reference and link included (about two SMS).
pub const SHORT_MAX_CHARS: usize = 320;

/// Which occasion a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateKind {
    /// Receipt of the application, with the reference and the legal term.
    Acknowledgement,
    /// Request for missing documents; suspends the term (art. 2 c. 7 L. 241/1990).
    IntegrationRequest,
    /// Notice of the reasons against the application (art. 10-bis L. 241/1990).
    RejectionNotice,
    /// The application is accepted (for an error report: the annulment of the fine was
    /// requested from the police).
    Approval,
    /// The application is rejected, with reasons and remedies.
    Rejection,
    /// The permit is issued: number, validity, PDF attached.
    PermitIssued,
    /// The integration deadline is near and documents are still missing.
    Reminder,
    /// An appointment at the counter.
    Appointment,
}

impl TemplateKind {
    /// Every kind, in declaration order.
    pub const ALL: [TemplateKind; 8] = [
        TemplateKind::Acknowledgement,
        TemplateKind::IntegrationRequest,
        TemplateKind::RejectionNotice,
        TemplateKind::Approval,
        TemplateKind::Rejection,
        TemplateKind::PermitIssued,
        TemplateKind::Reminder,
        TemplateKind::Appointment,
    ];

    /// The id used in the template files and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateKind::Acknowledgement => "acknowledgement",
            TemplateKind::IntegrationRequest => "integration_request",
            TemplateKind::RejectionNotice => "rejection_notice",
            TemplateKind::Approval => "approval",
            TemplateKind::Rejection => "rejection",
            TemplateKind::PermitIssued => "permit_issued",
            TemplateKind::Reminder => "reminder",
            TemplateKind::Appointment => "appointment",
        }
    }

    /// The kind with this id, if any.
    pub fn parse(s: &str) -> Option<Self> {
        TemplateKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for TemplateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long the text may be: `Full` for e-mail, PEC, fax, letter; `Short` for SMS,
/// WhatsApp, Telegram (at most [`SHORT_MAX_CHARS`], reference and link included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Length {
    /// A complete letter.
    Full,
    /// A few lines for a phone screen.
    Short,
}

/// What a template may say: all owned data, filled by the caller, already in the
/// message's language where it is words.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateContext {
    /// The case reference, e.g. `ZTL-2026-000123`; every subject and short text shows it.
    pub reference: String,
    /// The case type id (`ztl_permit`, `cude`, `seg`, …), which selects per-type templates.
    pub case_type: String,
    /// The case type in words, in the message's language.
    pub case_type_name: String,
    /// The citizen's name; without it the salutation is a generic polite one.
    pub citizen_name: Option<String>,
    /// The office that writes, e.g. `Ufficio Permessi ZTL – Comune di …`.
    pub office_name: String,
    /// When the application was received (Rome date).
    pub received_on: NaiveDate,
    /// The end of the legal term.
    pub due_on: Option<NaiveDate>,
    /// The legal term in days (e.g. 30).
    pub term_days: Option<u32>,
    /// What is missing, already in words, one item each.
    pub missing: Vec<String>,
    /// The reasons of a rejection notice or a rejection, one each.
    pub reasons: Vec<String>,
    /// The date by which the citizen must answer (integration: 30 days; art. 10-bis: 10 days).
    pub answer_by: Option<NaiveDate>,
    /// The number of the issued permit.
    pub permit_number: Option<String>,
    /// The last day the permit is valid.
    pub permit_valid_to: Option<NaiveDate>,
    /// The appointment in words: `martedì 1 dicembre 2026, ore 10:30, sportello 2`.
    pub appointment: Option<String>,
    /// The citizen's private link to the case.
    pub status_link: Option<String>,
    /// The protocol number of the message being answered.
    pub protocol: Option<String>,
}

/// A rendered message, ready for a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendered {
    /// The subject (e-mail, PEC, letter object); always holds the case reference.
    pub subject: String,
    /// The text.
    pub body: String,
}

/// Why a message could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// No template for this occasion in this language (a gap in the template files).
    #[error("no template '{kind}' in language '{lang}'")]
    Unknown {
        /// The template's key, `kind.part` (`acknowledgement.short`).
        kind: String,
        /// The language looked in (`it` or `en`).
        lang: String,
    },
    /// The template needs a value the context does not have; names the context field.
    #[error("the message needs '{0}', which is not known")]
    Missing(&'static str),
}

/// Renders `kind` for `ctx.case_type` in `lang` (`"it"` or `"en"`, also `en-GB` and the
/// like; anything else is Italian) at `length`: the case type's own template if it has one,
/// else the generic one.
pub fn render(
    kind: TemplateKind,
    lang: &str,
    length: Length,
    ctx: &TemplateContext,
) -> Result<Rendered, TemplateError> {
    catalogue(Lang::pick(lang)).render(kind, length, ctx)
}

// ---------------------------------------------------------------------------------------
// The compiled templates.

static IT: LazyLock<Catalogue> =
    LazyLock::new(|| Catalogue::parse(Lang::It, include_str!("templates/it.toml")));
static EN: LazyLock<Catalogue> =
    LazyLock::new(|| Catalogue::parse(Lang::En, include_str!("templates/en.toml")));

fn catalogue(lang: Lang) -> &'static Catalogue {
    match lang {
        Lang::It => &IT,
        Lang::En => &EN,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    It,
    En,
}

impl Lang {
    /// `en`, `EN`, `en-GB`, `en_US` are English; everything else Italian.
    fn pick(code: &str) -> Lang {
        let b = code.trim().as_bytes();
        let english = b.len() >= 2
            && b[..2].eq_ignore_ascii_case(b"en")
            && (b.len() == 2 || matches!(b[2], b'-' | b'_'));
        if english { Lang::En } else { Lang::It }
    }

    fn code(self) -> &'static str {
        match self {
            Lang::It => "it",
            Lang::En => "en",
        }
    }
}

/// Which part of a message a template is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Part {
    Subject,
    Body,
    Short,
}

impl Part {
    fn as_str(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Body => "body",
            Part::Short => "short",
        }
    }

    fn parse(s: &str) -> Option<Part> {
        [Part::Subject, Part::Body, Part::Short]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// A placeholder: a field of the [`TemplateContext`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Reference,
    CaseTypeName,
    CitizenName,
    OfficeName,
    ReceivedOn,
    DueOn,
    TermDays,
    Missing,
    Reasons,
    AnswerBy,
    PermitNumber,
    PermitValidTo,
    Appointment,
    StatusLink,
    Protocol,
}

impl Field {
    const ALL: [Field; 15] = [
        Field::Reference,
        Field::CaseTypeName,
        Field::CitizenName,
        Field::OfficeName,
        Field::ReceivedOn,
        Field::DueOn,
        Field::TermDays,
        Field::Missing,
        Field::Reasons,
        Field::AnswerBy,
        Field::PermitNumber,
        Field::PermitValidTo,
        Field::Appointment,
        Field::StatusLink,
        Field::Protocol,
    ];

    /// The placeholder's name, which is also the context field's name.
    fn name(self) -> &'static str {
        match self {
            Field::Reference => "reference",
            Field::CaseTypeName => "case_type_name",
            Field::CitizenName => "citizen_name",
            Field::OfficeName => "office_name",
            Field::ReceivedOn => "received_on",
            Field::DueOn => "due_on",
            Field::TermDays => "term_days",
            Field::Missing => "missing",
            Field::Reasons => "reasons",
            Field::AnswerBy => "answer_by",
            Field::PermitNumber => "permit_number",
            Field::PermitValidTo => "permit_valid_to",
            Field::Appointment => "appointment",
            Field::StatusLink => "status_link",
            Field::Protocol => "protocol",
        }
    }

    fn parse(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    fn is_list(self) -> bool {
        matches!(self, Field::Missing | Field::Reasons)
    }
}

#[derive(Debug)]
enum Segment {
    Text(Box<str>),
    Field(Field),
}

#[derive(Debug)]
struct Line {
    /// Dropped when a placeholder on it is empty (`?` in the file).
    optional: bool,
    /// Nothing but whitespace.
    blank: bool,
    segments: Vec<Segment>,
}

#[derive(Debug)]
struct Template {
    lines: Vec<Line>,
    /// Uses `{missing}` or `{reasons}`, which a Short text may cut.
    has_list: bool,
}

type Parts = FxHashMap<(TemplateKind, Part), Template>;

/// The templates of one language.
#[derive(Debug)]
struct Catalogue {
    lang: Lang,
    generic: Parts,
    by_case_type: FxHashMap<String, Parts>,
    citizen_fallback: String,
    /// Every key of the file, flattened.
    keys: Vec<String>,
    /// What is wrong with the file (the tests require none).
    problems: Vec<String>,
}

const FALLBACK_CITIZEN: &str = "fallback.citizen_name";

impl Catalogue {
    fn parse(lang: Lang, source: &str) -> Catalogue {
        let mut cat = Catalogue {
            lang,
            generic: FxHashMap::default(),
            by_case_type: FxHashMap::default(),
            citizen_fallback: String::new(),
            keys: Vec::new(),
            problems: Vec::new(),
        };
        let table: toml::Table = match toml::from_str(source) {
            Ok(table) => table,
            Err(e) => {
                cat.problems.push(format!("not TOML: {e}"));
                return cat;
            }
        };
        let mut flat = Vec::new();
        flatten("", &table, &mut flat, &mut cat.problems);
        for (key, text) in flat {
            cat.keys.push(key.clone());
            if key == FALLBACK_CITIZEN {
                cat.citizen_fallback = text.trim().to_owned();
                continue;
            }
            let pieces: Vec<&str> = key.split('.').collect();
            let (case_type, kind, part) = match pieces.as_slice() {
                [kind, part] => (None, *kind, *part),
                [case_type, kind, part] => (Some(*case_type), *kind, *part),
                _ => {
                    cat.problems
                        .push(format!("{key}: not kind.part or case_type.kind.part"));
                    continue;
                }
            };
            let (Some(kind), Some(part)) = (TemplateKind::parse(kind), Part::parse(part)) else {
                cat.problems.push(format!("{key}: unknown kind or part"));
                continue;
            };
            let template = compile(&key, &text, &mut cat.problems);
            if part == Part::Subject && template.lines.len() > 1 {
                cat.problems.push(format!("{key}: a subject is one line"));
            }
            let parts = match case_type {
                Some(case_type) => cat.by_case_type.entry(case_type.to_owned()).or_default(),
                None => &mut cat.generic,
            };
            parts.insert((kind, part), template);
        }
        if cat.citizen_fallback.is_empty() {
            cat.problems.push(format!("{FALLBACK_CITIZEN} is missing"));
        }
        cat
    }

    fn find(
        &self,
        case_type: &str,
        kind: TemplateKind,
        part: Part,
    ) -> Result<&Template, TemplateError> {
        self.by_case_type
            .get(case_type)
            .and_then(|parts| parts.get(&(kind, part)))
            .or_else(|| self.generic.get(&(kind, part)))
            .ok_or_else(|| TemplateError::Unknown {
                kind: format!("{}.{}", kind.as_str(), part.as_str()),
                lang: self.lang.code().to_owned(),
            })
    }

    fn render(
        &self,
        kind: TemplateKind,
        length: Length,
        ctx: &TemplateContext,
    ) -> Result<Rendered, TemplateError> {
        let subject_template = self.find(&ctx.case_type, kind, Part::Subject)?;
        let body_part = match length {
            Length::Full => Part::Body,
            Length::Short => Part::Short,
        };
        let body_template = self.find(&ctx.case_type, kind, body_part)?;
        let subject = self.fill(subject_template, ctx, Length::Short, None)?;
        let mut body = self.fill(body_template, ctx, length, None)?;
        if length == Length::Short && body_template.has_list {
            let list_chars = [Field::Missing, Field::Reasons]
                .into_iter()
                .filter_map(|f| self.value(f, ctx, Length::Short, None))
                .map(|v| v.chars().count())
                .max()
                .unwrap_or(0);
            let mut budget = list_chars;
            loop {
                let chars = body.chars().count();
                if chars <= SHORT_MAX_CHARS || budget <= 1 {
                    break;
                }
                budget = budget.saturating_sub(chars - SHORT_MAX_CHARS).max(1);
                body = self.fill(body_template, ctx, length, Some(budget))?;
            }
        }
        Ok(Rendered { subject, body })
    }

    /// One template with the context's values; lists cut to `list_budget` characters.
    fn fill(
        &self,
        template: &Template,
        ctx: &TemplateContext,
        length: Length,
        list_budget: Option<usize>,
    ) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(1024);
        let mut started = false;
        let mut pending_blank = false;
        for line in &template.lines {
            if line.blank {
                pending_blank = started;
                continue;
            }
            if line.optional
                && line.segments.iter().any(|s| match s {
                    Segment::Field(f) => self.value(*f, ctx, length, list_budget).is_none(),
                    Segment::Text(_) => false,
                })
            {
                continue;
            }
            if started {
                out.push('\n');
                if pending_blank {
                    out.push('\n');
                }
            }
            started = true;
            pending_blank = false;
            for segment in &line.segments {
                match segment {
                    Segment::Text(text) => out.push_str(text),
                    Segment::Field(f) => {
                        let value = self
                            .value(*f, ctx, length, list_budget)
                            .ok_or(TemplateError::Missing(f.name()))?;
                        out.push_str(&value);
                    }
                }
            }
        }
        let end = out.trim_end().len();
        out.truncate(end);
        Ok(out)
    }

    /// A placeholder's text, `None` when the context has nothing for it.
    fn value<'a>(
        &'a self,
        field: Field,
        ctx: &'a TemplateContext,
        length: Length,
        list_budget: Option<usize>,
    ) -> Option<Cow<'a, str>> {
        fn text(s: &str) -> Option<Cow<'_, str>> {
            let s = s.trim();
            (!s.is_empty()).then_some(Cow::Borrowed(s))
        }
        fn opt(s: &Option<String>) -> Option<Cow<'_, str>> {
            s.as_deref().and_then(text)
        }
        match field {
            Field::Reference => text(&ctx.reference),
            Field::CaseTypeName => text(&ctx.case_type_name),
            Field::CitizenName => {
                opt(&ctx.citizen_name).or(Some(Cow::Borrowed(self.citizen_fallback.as_str())))
            }
            Field::OfficeName => text(&ctx.office_name),
            Field::ReceivedOn => Some(Cow::Owned(self.date(ctx.received_on))),
            Field::DueOn => ctx.due_on.map(|d| Cow::Owned(self.date(d))),
            Field::TermDays => ctx.term_days.map(|d| Cow::Owned(d.to_string())),
            Field::Missing => list(&ctx.missing, length, ", ", list_budget),
            Field::Reasons => list(&ctx.reasons, length, "; ", list_budget),
            Field::AnswerBy => ctx.answer_by.map(|d| Cow::Owned(self.date(d))),
            Field::PermitNumber => opt(&ctx.permit_number),
            Field::PermitValidTo => ctx.permit_valid_to.map(|d| Cow::Owned(self.date(d))),
            Field::Appointment => opt(&ctx.appointment),
            Field::StatusLink => opt(&ctx.status_link),
            Field::Protocol => opt(&ctx.protocol),
        }
    }

    fn date(&self, d: NaiveDate) -> String {
        match self.lang {
            Lang::It => format!("{:02}/{:02}/{:04}", d.day(), d.month(), d.year()),
            Lang::En => {
                const MONTHS: [&str; 12] = [
                    "January",
                    "February",
                    "March",
                    "April",
                    "May",
                    "June",
                    "July",
                    "August",
                    "September",
                    "October",
                    "November",
                    "December",
                ];
                let month = MONTHS.get(d.month0() as usize).copied().unwrap_or_default();
                format!("{} {} {}", d.day(), month, d.year())
            }
        }
    }
}

/// A list in words: `- item` lines in Full, `sep`-separated in Short, cut to `budget`
/// characters (ending in `…`) when asked. `None` when there is no item.
fn list<'a>(
    items: &'a [String],
    length: Length,
    sep: &str,
    budget: Option<usize>,
) -> Option<Cow<'a, str>> {
    let mut items = items
        .iter()
        .map(|i| i.trim())
        .filter(|i| !i.is_empty())
        .peekable();
    items.peek()?;
    let mut out = String::new();
    for (n, item) in items.enumerate() {
        match length {
            Length::Full => {
                if n > 0 {
                    out.push('\n');
                }
                out.push_str("- ");
            }
            Length::Short => {
                if n > 0 {
                    out.push_str(sep);
                }
            }
        }
        // An item is one line, whatever the caller gave.
        if item.contains(['\n', '\r']) {
            out.push_str(&item.split_whitespace().collect::<Vec<_>>().join(" "));
        } else {
            out.push_str(item);
        }
    }
    if let Some(budget) = budget {
        clip(&mut out, budget);
    }
    Some(Cow::Owned(out))
}

/// Cuts `s` to at most `budget` characters, the last being `…`.
fn clip(s: &mut String, budget: usize) {
    if s.chars().count() <= budget {
        return;
    }
    let keep = budget.saturating_sub(1);
    let end = s.char_indices().nth(keep).map_or(s.len(), |(i, _)| i);
    s.truncate(end);
    let trimmed = s
        .trim_end_matches(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .len();
    s.truncate(trimmed);
    s.push('…');
}

/// Flattens nested tables into `a.b.c` keys; every leaf must be a string.
fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut Vec<(String, String)>,
    problems: &mut Vec<String>,
) {
    for (key, value) in table {
        let key = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::String(text) => out.push((key, text.clone())),
            toml::Value::Table(inner) => flatten(&key, inner, out, problems),
            _ => problems.push(format!("{key}: not a string")),
        }
    }
}

/// Compiles a template's text into lines of text and placeholders.
fn compile(key: &str, text: &str, problems: &mut Vec<String>) -> Template {
    let mut lines = Vec::new();
    let mut has_list = false;
    for raw in text.lines() {
        let (optional, rest) = if let Some(literal) = raw.strip_prefix("??") {
            (false, &raw[raw.len() - literal.len() - 1..])
        } else if let Some(rest) = raw.strip_prefix('?') {
            (true, rest.strip_prefix(' ').unwrap_or(rest))
        } else {
            (false, raw)
        };
        let segments = segments(key, rest, problems);
        let fields = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Field(f) => Some(*f),
                Segment::Text(_) => None,
            })
            .collect::<Vec<_>>();
        if optional && fields.is_empty() {
            problems.push(format!(
                "{key}: optional line without a placeholder: {raw:?}"
            ));
        }
        has_list |= fields.iter().any(|f| f.is_list());
        lines.push(Line {
            optional,
            blank: rest.trim().is_empty(),
            segments,
        });
    }
    Template { lines, has_list }
}

fn segments(key: &str, line: &str, problems: &mut Vec<String>) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut text = String::new();
    let mut rest = line;
    while let Some(open) = rest.find('{') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let field = after
            .find('}')
            .and_then(|close| Field::parse(&after[..close]).map(|f| (f, close)));
        match field {
            Some((field, close)) => {
                if !text.is_empty() {
                    segments.push(Segment::Text(std::mem::take(&mut text).into()));
                }
                segments.push(Segment::Field(field));
                rest = &after[close + 1..];
            }
            None => {
                problems.push(format!(
                    "{key}: unknown or unclosed placeholder in {line:?}"
                ));
                text.push('{');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        segments.push(Segment::Text(text.into()));
    }
    segments
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;

    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// A realistic context with every value, for a ZTL permit.
    fn full_context() -> TemplateContext {
        TemplateContext {
            reference: "ZTL-2026-000123".into(),
            case_type: "ztl_permit".into(),
            case_type_name: "Permesso di accesso alla ZTL".into(),
            citizen_name: Some("Maria Giovanna Bianchi".into()),
            office_name: "Ufficio Permessi ZTL – Comune di Bergamo".into(),
            received_on: date(2026, 11, 2),
            due_on: Some(date(2026, 12, 2)),
            term_days: Some(30),
            missing: vec![
                "copia della carta di circolazione del veicolo".into(),
                "contratto di locazione registrato".into(),
            ],
            reasons: vec![
                "il veicolo non risulta intestato al richiedente né a un suo familiare convivente"
                    .into(),
                "la residenza indicata è fuori dal perimetro della ZTL".into(),
            ],
            answer_by: Some(date(2026, 12, 10)),
            permit_number: Some("P-2026-004512".into()),
            permit_valid_to: Some(date(2028, 11, 30)),
            appointment: Some("martedì 1 dicembre 2026, ore 10:30, sportello 2".into()),
            status_link: Some(
                "https://sportello.comune.bergamo.it/pratiche/ZTL-2026-000123?t=3f9a2c7e1b5d4a6f8e0c9b7a"
                    .into(),
            ),
            protocol: Some("2026/0045678".into()),
        }
    }

    const LANGS: [&str; 2] = ["it", "en"];
    const LENGTHS: [Length; 2] = [Length::Full, Length::Short];
    const CASE_TYPES: [&str; 3] = ["ztl_permit", "cude", "seg"];

    fn assert_clean(what: &str, r: &Rendered, ctx: &TemplateContext, length: Length) {
        assert!(
            r.subject.contains(&ctx.reference),
            "{what}: subject {:?}",
            r.subject
        );
        assert!(!r.subject.contains('\n'), "{what}: subject on one line");
        assert!(
            r.body.contains(&ctx.reference),
            "{what}: body lacks the reference"
        );
        for text in [&r.subject, &r.body] {
            assert!(
                !text.contains(['{', '}']),
                "{what}: a placeholder survives:\n{text}"
            );
            assert!(
                !text.contains("\n\n\n"),
                "{what}: a hole of blank lines:\n{text}"
            );
            assert_eq!(text.trim(), text.as_str(), "{what}: trimmed");
        }
        if length == Length::Short {
            let n = r.body.chars().count();
            assert!(n <= SHORT_MAX_CHARS, "{what}: {n} characters:\n{}", r.body);
        }
    }

    #[test]
    fn the_template_files_are_clean_and_have_the_same_keys() {
        for cat in [&*IT, &*EN] {
            assert!(
                cat.problems.is_empty(),
                "{:?}: {:?}",
                cat.lang,
                cat.problems
            );
            for kind in TemplateKind::ALL {
                for part in [Part::Subject, Part::Body, Part::Short] {
                    assert!(
                        cat.generic.contains_key(&(kind, part)),
                        "{kind}.{}",
                        part.as_str()
                    );
                }
            }
        }
        let it: BTreeSet<&String> = IT.keys.iter().collect();
        let en: BTreeSet<&String> = EN.keys.iter().collect();
        let missing_en: Vec<_> = it.difference(&en).collect();
        let missing_it: Vec<_> = en.difference(&it).collect();
        assert!(missing_en.is_empty(), "missing in en.toml: {missing_en:?}");
        assert!(missing_it.is_empty(), "missing in it.toml: {missing_it:?}");
        assert!(
            it.len() > 8 * 3,
            "every kind's three parts and the fallback"
        );
    }

    #[test]
    fn every_kind_renders_in_both_languages_at_both_lengths() {
        for case_type in CASE_TYPES {
            let ctx = TemplateContext {
                case_type: case_type.into(),
                ..full_context()
            };
            for kind in TemplateKind::ALL {
                for lang in LANGS {
                    for length in LENGTHS {
                        let what = format!("{case_type} {kind} {lang} {length:?}");
                        let r = render(kind, lang, length, &ctx).unwrap();
                        assert_clean(&what, &r, &ctx, length);
                        if length == Length::Full {
                            assert!(r.body.contains(&ctx.office_name), "{what}: signed");
                            assert!(
                                r.body.contains("Maria Giovanna Bianchi"),
                                "{what}: salutation"
                            );
                            assert!(r.body.contains(ctx.status_link.as_deref().unwrap()));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_contents_say_what_the_law_asks() {
        let ctx = full_context();
        let it = |kind| render(kind, "it", Length::Full, &ctx).unwrap().body;
        let en = |kind| render(kind, "en", Length::Full, &ctx).unwrap().body;

        let ack = it(TemplateKind::Acknowledgement);
        assert!(
            ack.contains("02/11/2026") && ack.contains("02/12/2026") && ack.contains("30 giorni")
        );
        assert!(ack.contains("241"), "{ack}");
        assert!(ack.contains("2026/0045678"), "the protocol line");
        let ack_en = en(TemplateKind::Acknowledgement);
        assert!(ack_en.contains("2 November 2026") && ack_en.contains("2 December 2026"));

        let integration = it(TemplateKind::IntegrationRequest);
        assert!(integration.contains(
            "- copia della carta di circolazione del veicolo\n- contratto di locazione registrato"
        ));
        assert!(integration.contains("comma 7") && integration.contains("10/12/2026"));

        let notice = it(TemplateKind::RejectionNotice);
        assert!(notice.contains("10-bis") && notice.contains("10 giorni"));
        assert!(notice.contains("- la residenza indicata è fuori dal perimetro della ZTL"));

        let rejection = it(TemplateKind::Rejection);
        assert!(rejection.contains("TAR") && rejection.contains("60 giorni"));
        assert!(rejection.contains("Presidente della Repubblica") && rejection.contains("120"));
        let rejection_en = en(TemplateKind::Rejection);
        assert!(rejection_en.contains("60 days") && rejection_en.contains("120 days"));

        let issued = it(TemplateKind::PermitIssued);
        assert!(issued.contains("P-2026-004512") && issued.contains("30/11/2028"));
        assert!(issued.contains("PDF") && issued.contains("varchi"));

        let reminder = it(TemplateKind::Reminder);
        assert!(reminder.contains("10/12/2026") && reminder.contains("- contratto di locazione"));

        let appointment = it(TemplateKind::Appointment);
        assert!(appointment.contains("martedì 1 dicembre 2026, ore 10:30, sportello 2"));
        assert!(appointment.contains("original"));

        let short = render(TemplateKind::IntegrationRequest, "it", Length::Short, &ctx).unwrap();
        assert!(
            short
                .body
                .contains("\ncopia della carta di circolazione del veicolo, "),
            "{}",
            short.body
        );
        let no_link = TemplateContext {
            status_link: None,
            ..ctx.clone()
        };
        let short = render(TemplateKind::RejectionNotice, "en", Length::Short, &no_link).unwrap();
        assert!(
            short.body.contains("convivente; la residenza"),
            "{}",
            short.body
        );
    }

    #[test]
    fn a_case_type_override_wins_over_the_generic_template() {
        let ztl = full_context();
        let cude = TemplateContext {
            case_type: "cude".into(),
            ..full_context()
        };
        let seg = TemplateContext {
            case_type: "seg".into(),
            ..full_context()
        };
        for lang in LANGS {
            let generic = render(TemplateKind::Acknowledgement, lang, Length::Full, &ztl).unwrap();
            let special = render(TemplateKind::Acknowledgement, lang, Length::Full, &cude).unwrap();
            assert_ne!(generic.body, special.body);
            let word = if lang == "it" {
                "priorità"
            } else {
                "priority"
            };
            assert!(special.body.contains(word), "{lang}: {}", special.body);
            assert!(!generic.body.contains(word));
            let short = render(TemplateKind::Acknowledgement, lang, Length::Short, &cude).unwrap();
            assert!(short.body.contains(word), "{}", short.body);

            for kind in [
                TemplateKind::Acknowledgement,
                TemplateKind::Approval,
                TemplateKind::Rejection,
            ] {
                let generic = render(kind, lang, Length::Full, &ztl).unwrap();
                let special = render(kind, lang, Length::Full, &seg).unwrap();
                assert_ne!(generic.body, special.body, "seg {kind} {lang}");
                assert_ne!(generic.subject, special.subject, "seg {kind} {lang}");
            }
            // An upheld report: the request to the police was sent; the fine is not said
            // to be annulled (that is the police's decision), in any length.
            let (sent, annulled) = if lang == "it" {
                ("Polizia Locale", "annullat")
            } else {
                ("municipal police", "cancelled")
            };
            for length in [Length::Full, Length::Short] {
                let upheld = render(TemplateKind::Approval, lang, length, &seg).unwrap();
                let text = format!("{}\n{}", upheld.subject, upheld.body);
                assert!(text.contains(sent), "{lang} {length:?}: {text}");
                assert!(!text.contains(annulled), "{lang} {length:?}: {text}");
            }
            // The acknowledgement promises only what the office does: it asks the police.
            let ack = render(TemplateKind::Acknowledgement, lang, Length::Full, &seg).unwrap();
            assert!(ack.body.contains(sent), "{lang}: {}", ack.body);
            assert!(
                !ack.body.contains(if lang == "it" {
                    "sarà annullata"
                } else {
                    "will be cancelled"
                }),
                "{lang}: {}",
                ack.body
            );
            // A case type without overrides uses the generic templates.
            let other = TemplateContext {
                case_type: "passo_carrabile".into(),
                ..full_context()
            };
            assert_eq!(
                render(TemplateKind::Approval, lang, Length::Full, &other).unwrap(),
                render(TemplateKind::Approval, lang, Length::Full, &ztl).unwrap()
            );
        }
    }

    #[test]
    fn a_missing_value_names_the_field() {
        type Spoil = fn(&mut TemplateContext);
        let cases: Vec<(TemplateKind, Spoil, &str)> = vec![
            (
                TemplateKind::IntegrationRequest,
                |c| c.answer_by = None,
                "answer_by",
            ),
            (
                TemplateKind::IntegrationRequest,
                |c| c.missing.clear(),
                "missing",
            ),
            (
                TemplateKind::IntegrationRequest,
                |c| c.missing = vec!["  ".into()],
                "missing",
            ),
            (
                TemplateKind::RejectionNotice,
                |c| c.reasons.clear(),
                "reasons",
            ),
            (TemplateKind::Rejection, |c| c.reasons.clear(), "reasons"),
            (
                TemplateKind::PermitIssued,
                |c| c.permit_number = None,
                "permit_number",
            ),
            (
                TemplateKind::PermitIssued,
                |c| c.permit_valid_to = None,
                "permit_valid_to",
            ),
            (
                TemplateKind::Appointment,
                |c| c.appointment = Some(" ".into()),
                "appointment",
            ),
            (TemplateKind::Acknowledgement, |c| c.due_on = None, "due_on"),
            (
                TemplateKind::Acknowledgement,
                |c| c.term_days = None,
                "term_days",
            ),
            (
                TemplateKind::Acknowledgement,
                |c| c.reference.clear(),
                "reference",
            ),
            (
                TemplateKind::Approval,
                |c| c.office_name.clear(),
                "office_name",
            ),
            (TemplateKind::Reminder, |c| c.answer_by = None, "answer_by"),
        ];
        for (kind, spoil, field) in cases {
            let mut ctx = full_context();
            spoil(&mut ctx);
            for lang in LANGS {
                let err = render(kind, lang, Length::Full, &ctx).unwrap_err();
                assert_eq!(err, TemplateError::Missing(field), "{kind} {lang}");
            }
        }
    }

    #[test]
    fn optional_lines_are_dropped_without_their_value() {
        let ctx = TemplateContext {
            status_link: None,
            protocol: Some(String::new()),
            citizen_name: None,
            ..full_context()
        };
        for kind in TemplateKind::ALL {
            for lang in LANGS {
                for length in LENGTHS {
                    let r = render(kind, lang, length, &ctx).unwrap();
                    assert_clean(&format!("{kind} {lang} {length:?}"), &r, &ctx, length);
                    assert!(!r.body.contains("https://"), "{}", r.body);
                    assert!(!r.body.contains("prot."), "{}", r.body);
                    if length == Length::Full {
                        let hello = if lang == "it" {
                            "Gentile cittadina, gentile cittadino,"
                        } else {
                            "Dear citizen,"
                        };
                        assert!(r.body.starts_with(hello), "{}", r.body);
                    }
                }
            }
        }
        let with = render(
            TemplateKind::Acknowledgement,
            "it",
            Length::Full,
            &full_context(),
        )
        .unwrap();
        let without = render(TemplateKind::Acknowledgement, "it", Length::Full, &ctx).unwrap();
        assert!(
            with.body
                .contains(full_context().status_link.as_deref().unwrap())
        );
        assert!(with.body.lines().count() > without.body.lines().count());
    }

    #[test]
    fn short_texts_fit_even_with_ten_long_items() {
        let long_items = |what: &str| -> Vec<String> {
            (1..=10)
                .map(|i| {
                    format!(
                        "{what} n. {i}: copia conforme del documento richiesto dal regolamento comunale, firmata e datata"
                    )
                })
                .collect()
        };
        let ctx = TemplateContext {
            missing: long_items("documento"),
            reasons: long_items("motivo"),
            citizen_name: Some("Maria Giovanna Bianchi Della Valle".into()),
            ..full_context()
        };
        for case_type in CASE_TYPES {
            let ctx = TemplateContext {
                case_type: case_type.into(),
                ..ctx.clone()
            };
            for kind in TemplateKind::ALL {
                for lang in LANGS {
                    let r = render(kind, lang, Length::Short, &ctx).unwrap();
                    assert_clean(
                        &format!("{case_type} {kind} {lang}"),
                        &r,
                        &ctx,
                        Length::Short,
                    );
                    if matches!(
                        kind,
                        TemplateKind::IntegrationRequest | TemplateKind::Reminder
                    ) {
                        assert!(r.body.contains('…'), "{}", r.body);
                        assert!(r.body.contains("documento n. 1"), "{}", r.body);
                        assert!(r.body.contains(ctx.status_link.as_deref().unwrap()));
                    }
                }
            }
        }
    }

    #[test]
    fn the_language_falls_back_to_italian() {
        let ctx = full_context();
        let it = render(TemplateKind::Approval, "it", Length::Full, &ctx).unwrap();
        for lang in ["", "fr", "de-DE", "english", "e"] {
            assert_eq!(
                render(TemplateKind::Approval, lang, Length::Full, &ctx).unwrap(),
                it
            );
        }
        let en = render(TemplateKind::Approval, "en", Length::Full, &ctx).unwrap();
        assert_ne!(en, it);
        for lang in ["EN", "en-GB", "en_US", " en "] {
            assert_eq!(
                render(TemplateKind::Approval, lang, Length::Full, &ctx).unwrap(),
                en
            );
        }
    }

    #[test]
    fn kinds_have_stable_ids() {
        for kind in TemplateKind::ALL {
            assert_eq!(TemplateKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(
            TemplateKind::parse("integration_request"),
            Some(TemplateKind::IntegrationRequest)
        );
        assert_eq!(TemplateKind::parse("Approval"), None);
        let ids: BTreeSet<&str> = TemplateKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(ids.len(), 8);
    }

    #[test]
    fn the_syntax_works_on_a_small_catalogue() {
        let cat = Catalogue::parse(
            Lang::En,
            r#"
"fallback.citizen_name" = "citizen"
"approval.subject" = "[{reference}] Approved"
"approval.body" = """

Dear {citizen_name},
?Link: {status_link}
??Really?

?Protocol {protocol} of {reference}.

Bye


"""
"approval.short" = "{reference}: {missing}"
"seg.approval.subject" = "[{reference}] Fine cancelled"
"#,
        );
        assert!(cat.problems.is_empty(), "{:?}", cat.problems);
        let mut ctx = full_context();
        ctx.case_type = "seg".into();
        ctx.citizen_name = None;
        ctx.status_link = None;
        ctx.protocol = None;
        let r = cat
            .render(TemplateKind::Approval, Length::Full, &ctx)
            .unwrap();
        assert_eq!(r.subject, "[ZTL-2026-000123] Fine cancelled");
        assert_eq!(r.body, "Dear citizen,\n?Really?\n\nBye");
        ctx.protocol = Some("7".into());
        let r = cat
            .render(TemplateKind::Approval, Length::Full, &ctx)
            .unwrap();
        assert_eq!(
            r.body,
            "Dear citizen,\n?Really?\n\nProtocol 7 of ZTL-2026-000123.\n\nBye"
        );

        let err = cat
            .render(TemplateKind::Rejection, Length::Full, &ctx)
            .unwrap_err();
        assert_eq!(
            err,
            TemplateError::Unknown {
                kind: "rejection.subject".into(),
                lang: "en".into()
            }
        );
        let err = cat.render(
            TemplateKind::Approval,
            Length::Full,
            &TemplateContext::default(),
        );
        assert_eq!(err.unwrap_err(), TemplateError::Missing("reference"));

        // Cutting a short list.
        ctx.missing = vec!["x".repeat(200), "y".repeat(200)];
        let r = cat
            .render(TemplateKind::Approval, Length::Short, &ctx)
            .unwrap();
        assert_eq!(r.body.chars().count(), SHORT_MAX_CHARS);
        assert!(r.body.ends_with("yyy…"), "{}", r.body);

        let bad = Catalogue::parse(
            Lang::It,
            r#""approval.body" = "{nobody} {reference"
"approvall.body" = "x"
"a.b.c.d" = "x"
"reminder.body" = "?no placeholder"
"reminder.short" = 3
"#,
        );
        assert_eq!(bad.problems.len(), 7, "{:?}", bad.problems);
        assert!(Catalogue::parse(Lang::It, "not = = toml").problems.len() == 1);
    }

    #[test]
    fn clip_cuts_at_a_character_boundary() {
        let mut s = String::from("città, perché, lì");
        clip(&mut s, 8);
        assert_eq!(s, "città…");
        let mut s = String::from("abc");
        clip(&mut s, 3);
        assert_eq!(s, "abc");
        let mut s = String::from("abcdef");
        clip(&mut s, 1);
        assert_eq!(s, "…");
    }
}
