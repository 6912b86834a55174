//! The pages' words, Italian first and English complete: every string lives in
//! `locales/it.toml` and `locales/en.toml` (flat `key = "text"`), compiled in. A test
//! checks that both files have the same keys, so no page shows a key instead of words.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::http::HeaderMap;

/// A language of the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Italian, the default.
    It,
    /// English.
    En,
}

impl Lang {
    /// The code used in `lang` attributes and `?lang=`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::It => "it",
            Lang::En => "en",
        }
    }

    /// Parses `it` or `en`.
    pub fn parse(code: &str) -> Option<Lang> {
        match code.trim().to_ascii_lowercase().as_str() {
            "it" => Some(Lang::It),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language asked: `?lang=`, else the `lang` cookie, else the first of
    /// `Accept-Language` we speak, else Italian.
    pub fn negotiate(query_lang: Option<&str>, headers: &HeaderMap) -> Lang {
        if let Some(lang) = query_lang.and_then(Lang::parse) {
            return lang;
        }
        if let Some(lang) = crate::cookies::cookie(headers, "lang").and_then(|c| Lang::parse(&c)) {
            return lang;
        }
        let accept = headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let mut ranked: Vec<(f32, Lang)> = accept
            .split(',')
            .filter_map(|item| {
                let mut parts = item.split(';');
                let tag = parts.next()?.trim();
                let primary = tag.split('-').next()?;
                let lang = Lang::parse(primary)?;
                let q = parts
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                Some((q, lang))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranked.first().map_or(Lang::It, |(_, lang)| *lang)
    }
}

fn load(text: &str) -> HashMap<String, String> {
    let table: toml::Table = toml::from_str(text).unwrap_or_default();
    table
        .into_iter()
        .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
        .collect()
}

static IT: LazyLock<HashMap<String, String>> =
    LazyLock::new(|| load(include_str!("../locales/it.toml")));
static EN: LazyLock<HashMap<String, String>> =
    LazyLock::new(|| load(include_str!("../locales/en.toml")));

/// The words of one language, for a template.
#[derive(Debug, Clone, Copy)]
pub struct Tr {
    /// The language.
    pub lang: Lang,
}

impl Tr {
    /// The text of `key` (the key itself if missing, which the completeness test forbids).
    pub fn t<'a>(&self, key: &'a str) -> &'a str
    where
        'static: 'a,
    {
        let map = match self.lang {
            Lang::It => &*IT,
            Lang::En => &*EN,
        };
        map.get(key).map_or(key, String::as_str)
    }

    /// The text of `key` with `{name}` placeholders filled.
    pub fn f(&self, key: &str, values: &[(&str, &str)]) -> String {
        let mut text = self.t_owned(key);
        for (name, value) in values {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }

    fn t_owned(&self, key: &str) -> String {
        let map = match self.lang {
            Lang::It => &*IT,
            Lang::En => &*EN,
        };
        map.get(key).cloned().unwrap_or_else(|| key.to_owned())
    }

    /// A status, case type, channel or reason named in words (`status.in_review`…).
    pub fn name(&self, group: &str, id: &str) -> String {
        let key = format!("{group}.{id}");
        let text = self.t_owned(&key);
        if text == key { id.to_owned() } else { text }
    }

    /// Why a rule refused something, in this language, identifiers named in words.
    pub fn refusal(&self, refusal: &sportello_domain::refusal::Refusal) -> String {
        let text = refusal.fill(&self.t_owned(refusal.key), |group, id| self.name(group, id));
        // The API's sentences start in lower case; on a page a sentence starts with a capital.
        let mut chars = text.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => text,
        }
    }

    /// The language code.
    pub fn code(&self) -> &'static str {
        self.lang.code()
    }
}

#[cfg(test)]
mod walk;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_have_every_key() {
        let (it, en) = (&*IT, &*EN);
        assert!(it.len() > 50, "the Italian file loads");
        let missing_en: Vec<&String> = it.keys().filter(|k| !en.contains_key(*k)).collect();
        let missing_it: Vec<&String> = en.keys().filter(|k| !it.contains_key(*k)).collect();
        assert!(missing_en.is_empty(), "missing in en.toml: {missing_en:?}");
        assert!(missing_it.is_empty(), "missing in it.toml: {missing_it:?}");
        for (k, v) in it.iter().chain(en.iter()) {
            assert!(!v.trim().is_empty(), "{k} is empty");
        }
    }

    #[test]
    fn the_language_is_negotiated() {
        let mut headers = HeaderMap::new();
        assert_eq!(Lang::negotiate(None, &headers), Lang::It);
        headers.insert(
            axum::http::header::ACCEPT_LANGUAGE,
            "de-DE, en-GB;q=0.8, it;q=0.5".parse().unwrap(),
        );
        assert_eq!(Lang::negotiate(None, &headers), Lang::En);
        assert_eq!(Lang::negotiate(Some("it"), &headers), Lang::It);
        headers.insert(axum::http::header::COOKIE, "a=b; lang=it".parse().unwrap());
        assert_eq!(Lang::negotiate(None, &headers), Lang::It);
        let tr = Tr { lang: Lang::En };
        assert_eq!(
            tr.f("portal.reference_is", &[("reference", "ZTL-1")]),
            "Your case number is ZTL-1"
        );
    }
}
