//! Why a rule refuses what was asked, as data rather than a sentence: a message key and its
//! values, so the API can answer in English and the pages in the reader's language from
//! the same refusal.

use std::fmt;

/// One value of a refusal's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalValue {
    /// Shown as it is (a plate, a permit number, a count).
    Text(String),
    /// An identifier of a named group (`status`, `action`, …): the API shows the id, the
    /// pages its name in the reader's language.
    Named {
        /// The group of names (`status`, `action`, `category`).
        group: &'static str,
        /// The identifier.
        id: String,
    },
    /// Several identifiers of one group, shown as a list.
    NamedList {
        /// The group of names.
        group: &'static str,
        /// The identifiers, in order.
        ids: Vec<String>,
    },
}

/// A refusal by a rule of the office: `key` names the message in the locale files
/// (`refusal.*`), `values` fill its `{placeholders}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The message's key.
    pub key: &'static str,
    /// The placeholders' values, by name.
    pub values: Vec<(&'static str, RefusalValue)>,
}

impl Refusal {
    /// A refusal with no values yet.
    pub fn new(key: &'static str) -> Refusal {
        Refusal {
            key,
            values: Vec::new(),
        }
    }

    /// Adds a value shown as it is.
    pub fn with(mut self, name: &'static str, value: impl fmt::Display) -> Refusal {
        self.values
            .push((name, RefusalValue::Text(value.to_string())));
        self
    }

    /// Adds an identifier that the pages name in words.
    pub fn named(
        mut self,
        name: &'static str,
        group: &'static str,
        id: impl Into<String>,
    ) -> Refusal {
        self.values.push((
            name,
            RefusalValue::Named {
                group,
                id: id.into(),
            },
        ));
        self
    }

    /// Adds a list of identifiers that the pages name in words.
    pub fn named_list(
        mut self,
        name: &'static str,
        group: &'static str,
        ids: impl IntoIterator<Item = impl Into<String>>,
    ) -> Refusal {
        let ids = ids.into_iter().map(Into::into).collect();
        self.values
            .push((name, RefusalValue::NamedList { group, ids }));
        self
    }

    /// Fills `template`'s `{name}` placeholders; `name_of(group, id)` gives a named
    /// value's words.
    pub fn fill(&self, template: &str, name_of: impl Fn(&str, &str) -> String) -> String {
        let mut text = template.to_owned();
        for (name, value) in &self.values {
            let shown = match value {
                RefusalValue::Text(t) => t.clone(),
                RefusalValue::Named { group, id } => name_of(group, id),
                RefusalValue::NamedList { group, ids } => ids
                    .iter()
                    .map(|id| name_of(group, id))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            text = text.replace(&format!("{{{name}}}"), &shown);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_by_name() {
        let refusal = Refusal::new("refusal.x")
            .with("plate", "AB123CD")
            .named("status", "status", "closed")
            .named_list("docs", "document", ["a", "b"]);
        let text = refusal.fill("{plate} in {status}; {plate} {docs}", |g, id| {
            format!("<{g}:{id}>")
        });
        assert_eq!(
            text,
            "AB123CD in <status:closed>; AB123CD <document:a>, <document:b>"
        );
    }
}
