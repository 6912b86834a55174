//! The locale walk: every value of an enumeration a clerk or a citizen can read has its
//! words in both languages. The values come from the domain's own lists, so a new variant
//! without a label fails here; a scan of the sources checks that the lists are whole (a
//! timeline kind, a read or a refusal key written in the code but missing from them).

use std::collections::BTreeSet;
use std::path::Path;

use sportello_domain::case::{CaseType, Channel, Priority, Status, flags};
use sportello_domain::outbound::choice::OutChannel;
use sportello_domain::outbound::templates::TemplateKind;
use sportello_domain::read_audit::READ_ACTIONS;
use sportello_domain::roles::Role;
use sportello_domain::security::SecurityEventKind;
use sportello_domain::sla::ClockState;
use sportello_domain::timeline::{EVENT_KINDS, INTAKE_OUTCOMES, INTAKE_RULES, MESSAGE_STATES};
use sportello_domain::workflow::Action;
use sportello_domain::ztl::policy::{EXAMPLE_POLICY, Policy};
use sportello_domain::ztl::transits::{OTHER_VERDICTS, Reason};

use super::{EN, IT};

/// The wire names of an enumeration's values.
fn listed<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<String> {
    all.iter().map(|v| name(*v).to_owned()).collect()
}

/// (group, values) of every vocabulary the pages name.
fn vocabularies() -> Vec<(&'static str, Vec<String>)> {
    let owned = |values: &[&str]| values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
    let policy = Policy::parse(EXAMPLE_POLICY).expect("the example policy parses");
    let documents: BTreeSet<String> = policy
        .categories
        .iter()
        .flat_map(|c| c.documents.iter().cloned())
        .collect();
    let mut verdicts = listed(Reason::ALL, Reason::as_str);
    verdicts.extend(owned(OTHER_VERDICTS));
    vec![
        ("status", listed(Status::ALL, Status::as_str)),
        ("action", owned(Action::NAMES)),
        ("flag", owned(flags::ALL)),
        ("channel", listed(Channel::ALL, Channel::as_str)),
        ("priority", listed(Priority::ALL, Priority::as_str)),
        (
            "case_type",
            CaseType::builtin().into_iter().map(|t| t.id).collect(),
        ),
        ("document", documents.into_iter().collect()),
        ("event", owned(EVENT_KINDS)),
        ("rule", owned(INTAKE_RULES)),
        ("outcome", owned(INTAKE_OUTCOMES)),
        ("verdict", verdicts),
        ("clock", listed(ClockState::ALL, ClockState::as_str)),
        ("role", listed(Role::ALL, Role::as_str)),
        (
            "security",
            listed(SecurityEventKind::ALL, SecurityEventKind::as_str),
        ),
        ("out_status", owned(MESSAGE_STATES)),
        ("out_channel", listed(&OutChannel::ALL, OutChannel::as_str)),
        ("template", listed(&TemplateKind::ALL, TemplateKind::as_str)),
        ("access", owned(READ_ACTIONS)),
    ]
}

#[test]
fn every_value_a_reader_sees_has_words_in_both_languages() {
    let mut missing = Vec::new();
    let mut checked = 0;
    for (group, values) in vocabularies() {
        assert!(!values.is_empty(), "the {group} list is empty");
        for value in values {
            let key = format!("{group}.{value}");
            checked += 1;
            for (lang, map) in [("it", &*IT), ("en", &*EN)] {
                match map.get(&key) {
                    Some(text) if !text.trim().is_empty() && !text.contains('_') => {}
                    _ => missing.push(format!("{lang}: {key}")),
                }
            }
        }
    }
    assert!(checked > 150, "the walk read {checked} values");
    assert!(missing.is_empty(), "no words for:\n{}", missing.join("\n"));
}

/// The non-test part of every Rust source of the workspace's crates.
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let code = text
                    .split("#[cfg(test)]")
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                out.push((path.display().to_string(), code));
            }
        }
    }
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = Vec::new();
    for name in [
        "domain",
        "app",
        "store",
        "web",
        "intake",
        "outbound",
        "sportello",
    ] {
        walk(&crates.join(name).join("src"), &mut out);
    }
    assert!(out.len() > 50, "the sources are read: {}", out.len());
    out
}

/// The first `"snake_case"` literal argument of every call to `function` that is not an
/// actor (`system`, `cli`): the kind, the read or the key the call writes.
fn literals_of(function: &str) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (file, code) in sources() {
        for (at, _) in code.match_indices(function) {
            let call = &code[at + function.len()..];
            let call = &call[..call.find(';').unwrap_or(call.len())];
            let parts: Vec<&str> = call.split('"').collect();
            let first = parts.iter().enumerate().find(|(i, part)| {
                // An argument, not a key of a JSON detail (`"id": …`) nor a column read
                // by a nested call (`get_i64(&row, "id")?`).
                let is_key = parts.get(i + 1).is_some_and(|next| {
                    let next = next.trim_start();
                    next.starts_with(':') || next.starts_with(")?")
                });
                i % 2 == 1
                    && !is_key
                    && !part.is_empty()
                    && !["system", "cli"].contains(part)
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
            });
            if let Some((_, part)) = first {
                found.insert(((*part).to_owned(), file.clone()));
            }
        }
    }
    found
}

/// Whether a value found in the code is known (listed, or with words).
type Known = dyn Fn(&str) -> bool;

#[test]
fn the_lists_hold_every_value_the_code_writes() {
    let has_words = |k: &str| IT.contains_key(k) && EN.contains_key(k);
    let in_events = |k: &str| EVENT_KINDS.contains(&k);
    let in_reads = |k: &str| READ_ACTIONS.contains(&k);
    let checks: [(&str, usize, &Known, &str); 3] = [
        (
            "insert_event(",
            15,
            &in_events,
            "timeline kinds missing from EVENT_KINDS",
        ),
        (
            "record_access(",
            15,
            &in_reads,
            "reads missing from READ_ACTIONS",
        ),
        ("Refusal::new(", 20, &has_words, "refusals without words"),
    ];
    for (function, at_least, known, problem) in checks {
        let found = literals_of(function);
        // The scan finds the calls (else it would pass on nothing).
        assert!(
            found.len() >= at_least,
            "{function}: {} values found",
            found.len()
        );
        let unknown: Vec<_> = found.into_iter().filter(|(k, _)| !known(k)).collect();
        assert!(unknown.is_empty(), "{problem}: {unknown:?}");
    }
}
