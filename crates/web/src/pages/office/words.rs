//! The case page's words: the timeline's entries, the case's data and the evidence of a
//! contested fine, every identifier named in words (statuses, rules, documents,
//! categories) and nested data shown as lists, never as JSON.

use serde_json::Value;
use sportello_domain::ztl::policy::Policy;
use sportello_store::cases::{CaseView, EventView};

use crate::AppState;
use crate::charts::escape;
use crate::i18n::Tr;
use crate::pages::when;

/// One entry of the timeline, in words.
pub(super) struct Entry {
    pub(super) at: String,
    pub(super) actor: String,
    pub(super) what: String,
    pub(super) details: Vec<String>,
    pub(super) link: Option<(String, String)>,
    /// A message's text, shown escaped in its own block.
    pub(super) body: Option<String>,
    /// A message's id, for moving it to the right case.
    pub(super) message: Option<i64>,
}

/// A value of an event's detail or of the case's data, in words: ids of known kinds by
/// their names, instants as dates.
fn scalar(tr: &Tr, policy: &Policy, key: &str, value: &Value) -> String {
    match value {
        Value::String(s) => match key {
            "status" => tr.name("status", s),
            "rule" => tr.name("rule", s),
            "channel" => tr.name("channel", s),
            "category" => category_name(tr, policy, s),
            "documents" | "document" | "missing" => tr.name("document", s),
            "flag" => tr.name("flag", s),
            "template" => tr.name("template", s),
            "timestamp" | "at" | "received_at" | "valid_from" | "valid_to" => when(s),
            _ => s.clone(),
        },
        Value::Bool(true) => tr.t("words.yes").to_owned(),
        Value::Bool(false) => tr.t("words.no").to_owned(),
        Value::Null => "—".to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items
            .iter()
            .map(|v| scalar(tr, policy, key, v))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{}: {}", label(tr, k), scalar(tr, policy, k, v)))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// A category by its name in the policy (its id if the policy no longer has it).
fn category_name(tr: &Tr, policy: &Policy, id: &str) -> String {
    policy
        .categories
        .iter()
        .find(|c| c.id == id)
        .map_or_else(|| tr.name("category", id), |c| c.name.clone())
}

/// The label of a data key (`field` group); a key the office has no word for (data an
/// API client added) is spelt as words rather than shown as an id.
fn label(tr: &Tr, key: &str) -> String {
    let named = tr.name("field", key);
    if named != key {
        return named;
    }
    let spaced = key.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => spaced,
    }
}

/// A category as the permit form offers it: its name and the documents it asks, by name.
pub(super) fn category_choice(
    tr: &Tr,
    category: &sportello_domain::ztl::policy::Category,
) -> String {
    let documents: Vec<String> = category
        .documents
        .iter()
        .map(|d| tr.name("document", d))
        .collect();
    if documents.is_empty() {
        category.name.clone()
    } else {
        format!("{} ({})", category.name, documents.join(", "))
    }
}

/// The timeline entry of one event.
pub(super) fn describe(tr: &Tr, policy: &Policy, event: &EventView) -> Entry {
    let d = &event.detail;
    let text = |k: &str| d.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let mut details = Vec::new();
    let is_action = matches!(event.kind.as_str(), "action" | "assigned");
    let what = if is_action {
        let action = text("action").unwrap_or_default();
        if let (Some(from), Some(to)) = (text("from"), text("to"))
            && from != to
        {
            details.push(format!(
                "{} → {}",
                tr.name("status", &from),
                tr.name("status", &to)
            ));
        }
        tr.name("action", &action)
    } else {
        tr.name("event", &event.kind)
    };
    // An action's statuses are shown above; a call's numbers below; a move names the
    // other case.
    let skipped: &[&str] = match event.kind.as_str() {
        "action" | "assigned" | "call" => &["to"],
        // Its note is the system's English reason, always the same: said in words below.
        "acknowledgement_skipped" => &["note"],
        _ => &[],
    };
    if event.kind == "acknowledgement_skipped" {
        details.push(tr.t("ack.no_channel").to_owned());
    }
    let to_label = match event.kind.as_str() {
        "message_moved_out" => "timeline.moved_to",
        _ => "timeline.to",
    };
    for (key, label) in [
        ("user", "timeline.user"),
        ("note", "timeline.note"),
        ("protocol", "timeline.protocol"),
        ("permit", "timeline.permit"),
        ("filename", "timeline.document"),
        ("rule", "timeline.rule"),
        ("channel", "timeline.channel"),
        ("to", to_label),
        ("subject", "timeline.subject"),
        ("status", "timeline.state"),
        ("error", "timeline.error"),
    ] {
        if skipped.contains(&key) {
            continue;
        }
        if let Some(v) = d.get(key).and_then(|v| v.as_str()) {
            let shown = match key {
                // A message's own state (queued, sent…), not the case's.
                "status" if event.kind.starts_with("message_") => tr.name("out_status", v),
                _ => scalar(tr, policy, key, &Value::String(v.to_owned())),
            };
            details.push(format!("{}: {shown}", tr.t(label)));
        }
    }
    if event.kind == "message_moved_in"
        && let Some(from) = text("from")
    {
        details.push(format!("{}: {from}", tr.t("timeline.moved_from")));
    }
    for (key, label) in [
        ("reasons", "timeline.reasons"),
        ("missing", "timeline.missing"),
    ] {
        if let Some(items) = d.get(key).and_then(|v| v.as_array()) {
            let shown: Vec<String> = items
                .iter()
                .filter_map(|v| v.as_str())
                .map(|s| match key {
                    "missing" => tr.name("document", s),
                    _ => s.to_owned(),
                })
                .collect();
            if !shown.is_empty() {
                details.push(format!("{}: {}", tr.t(label), shown.join("; ")));
            }
        }
    }
    // A PBX call (`POST /inbound/phone`): the caller's page, from the other party's number.
    let caller = match (event.kind.as_str(), text("direction").as_deref()) {
        ("call", Some("in")) => text("from"),
        ("call", Some("out")) => text("to"),
        _ => None,
    };
    if let Some(number) = &caller {
        details.push(format!("{}: {number}", tr.t("timeline.number")));
    }
    let link = text("document_id")
        .map(|id| {
            (
                format!("/api/v1/documents/{id}/view"),
                tr.t("timeline.view").to_owned(),
            )
        })
        .or_else(|| {
            caller.map(|number| {
                (
                    format!("/ufficio/chiamata?numero={}", super::urlencode(&number)),
                    tr.t("call.open_caller").to_owned(),
                )
            })
        });
    Entry {
        at: when(&event.at),
        // The office's own automatic steps are the system's, in words.
        actor: match event.actor.as_str() {
            "system" => tr.t("words.system").to_owned(),
            other => other.to_owned(),
        },
        what,
        details,
        link,
        body: None,
        message: None,
    }
}

/// One value of the case's data as HTML (escaped): text, a list in words, or nested
/// objects as definition lists inside a list.
fn value_html(tr: &Tr, policy: &Policy, key: &str, value: &Value, depth: usize) -> String {
    match value {
        Value::Object(map) if depth < 4 => {
            let items: String = map
                .iter()
                .map(|(k, v)| {
                    format!(
                        "<dt>{}</dt><dd>{}</dd>",
                        escape(&label(tr, k)),
                        value_html(tr, policy, k, v, depth + 1)
                    )
                })
                .collect();
            format!("<dl class=\"nested\">{items}</dl>")
        }
        Value::Array(items) if items.iter().any(|v| v.is_object() || v.is_array()) => {
            let items: String = items
                .iter()
                .map(|v| format!("<li>{}</li>", value_html(tr, policy, key, v, depth + 1)))
                .collect();
            format!("<ul class=\"nested\">{items}</ul>")
        }
        other => escape(&scalar(tr, policy, key, other)),
    }
}

/// An event's detail (a permit's history) as HTML, every key and id in words.
pub(super) fn detail_html(tr: &Tr, policy: &Policy, detail: &Value) -> String {
    match detail {
        Value::Object(map) if map.is_empty() => String::new(),
        other => value_html(tr, policy, "", other, 0),
    }
}

/// The case's data as (label, HTML of the value), every key and id in words.
pub(super) fn fields(tr: &Tr, policy: &Policy, fields: &Value) -> Vec<(String, String)> {
    fields
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (label(tr, k), value_html(tr, policy, k, v, 0)))
                .collect()
        })
        .unwrap_or_default()
}

/// The verdict on each contested transit of an SEG case, for its page.
pub(super) async fn seg_evidence(
    state: &AppState,
    tr: &Tr,
    case: &CaseView,
) -> Vec<(String, String, String, String)> {
    let Ok(evidence) = sportello_app::remedy::gather(state, case).await else {
        return Vec::new();
    };
    evidence
        .transits
        .iter()
        .map(|t| {
            (
                t.transit_id.clone(),
                format!("{} {}", t.gate, when(&t.timestamp)),
                tr.name("verdict", &t.verdict),
                t.permit.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Lang;
    use serde_json::json;

    fn policy() -> Policy {
        Policy::parse(sportello_domain::ztl::policy::EXAMPLE_POLICY).unwrap()
    }

    #[test]
    fn a_contested_fine_reads_as_lists_in_words() {
        let tr = Tr { lang: Lang::It };
        let data = json!({
            "plate": "AB123CD", "fine": "V-1 <b>",
            "transits": [{"transit_id": "T1", "gate": "V04", "timestamp": "2026-09-27T10:00:00Z"}],
            "documents": ["documento_identita"],
        });
        let shown = fields(&tr, &policy(), &data);
        let all: String = shown.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        assert!(!all.contains("transit_id") && !all.contains('{'), "{all}");
        assert!(
            all.contains("<ul class=\"nested\"><li><dl class=\"nested\">"),
            "{all}"
        );
        assert!(all.contains("27/09/2026 12:00"), "{all}");
        assert!(
            all.contains("Documento d'identità") || all.contains("Documento d&#39;identità"),
            "{all}"
        );
        assert!(
            all.contains("V-1 &lt;b&gt;"),
            "the citizen's text is escaped: {all}"
        );
        let own = fields(&tr, &policy(), &json!({"numero_pratica_comune": true}));
        assert_eq!(
            own,
            vec![("Numero pratica comune".to_owned(), "sì".to_owned())]
        );
    }

    #[test]
    fn statuses_and_rules_of_the_timeline_are_named() {
        let tr = Tr { lang: Lang::It };
        let event = EventView {
            at: "2026-09-27T10:00:00Z".into(),
            actor: "op".into(),
            kind: "action".into(),
            detail: json!({"action": "start_review", "from": "received", "to": "in_review"}),
        };
        let entry = describe(&tr, &policy(), &event);
        let all = entry.details.join("\n");
        assert!(
            !all.contains("in_review") && all.contains("in istruttoria"),
            "{all}"
        );
        let moved = EventView {
            kind: "message_moved_in".into(),
            detail: json!({"rule": "reference_in_subject", "from": "ZTL-2026-000001"}),
            ..event
        };
        let entry = describe(&tr, &policy(), &moved);
        let all = format!("{} {}", entry.what, entry.details.join("\n"));
        assert!(
            !all.contains('_') && all.contains("ZTL-2026-000001"),
            "{all}"
        );
        let queued = EventView {
            kind: "message_queued".into(),
            detail: json!({"status": "queued", "template": "integration_request"}),
            ..moved
        };
        let entry = describe(&tr, &policy(), &queued);
        let all = entry.details.join("\n");
        assert!(all.contains("in coda") && !all.contains('_'), "{all}");
    }
}
