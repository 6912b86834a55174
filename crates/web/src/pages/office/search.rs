//! Search that jumps straight to a reference or a plate's case, else lists what matched.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sportello_domain::case::Reference;
use sportello_domain::roles::Permission;

use super::{staff, urlencode};
use crate::AppState;
use crate::i18n::Tr;
use crate::pages::{Frame, language, page};

/// Query of `/ufficio/cerca`.
#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    lang: Option<String>,
    q: Option<String>,
}

#[derive(Template)]
#[template(path = "office_search.html")]
struct SearchPage {
    tr: Tr,
    frame: Frame,
    q: String,
    hits: Vec<sportello_store::search::SearchHit>,
    /// Citizens the words name: (their record's address, name or fiscal code, fiscal code).
    citizens: Vec<(String, String, String)>,
}

/// `GET /ufficio/cerca?q=`: a reference, or a plate with exactly one case, opens that
/// case; anything else is a full-text search.
pub(super) async fn search(
    State(state): State<AppState>,
    Query(query): Query<SearchQuery>,
    headers: HeaderMap,
) -> Response {
    let q = query
        .q
        .clone()
        .unwrap_or_default()
        .trim()
        .chars()
        .take(200)
        .collect::<String>();
    let session = match staff(
        &state,
        &headers,
        &format!("/ufficio/cerca?q={}", urlencode(&q)),
    )
    .await
    {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    if !session.user.role.can(Permission::ReadCase) {
        return Redirect::to("/ufficio/permessi").into_response();
    }
    let upper = q.to_ascii_uppercase();
    if Reference::parse(&upper).is_some() && state.store.get_case(&upper).await.is_ok() {
        return Redirect::to(&format!("/ufficio/pratiche/{upper}")).into_response();
    }
    let hits = if q.is_empty() {
        Vec::new()
    } else {
        state
            .store
            .search(&sportello_store::search::SearchQuery {
                q: q.clone(),
                case_type: None,
                status: None,
                from: None,
                to: None,
                include_documents: session.user.role.can(Permission::ReadDocument),
                limit: 50,
                offset: 0,
            })
            .await
            .unwrap_or_default()
    };
    // A fiscal code, a contact or a part of a name: links to the citizens' records.
    let citizens = if q.is_empty() {
        Vec::new()
    } else {
        state
            .store
            .find_citizens(&q, 10)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|(id, c)| {
                let code = c.fiscal_code.clone().unwrap_or_default();
                let shown = c
                    .name
                    .clone()
                    .or_else(|| c.fiscal_code.clone())
                    .or(c.email)
                    .or(c.pec)
                    .or(c.phone)
                    .unwrap_or_default();
                (super::citizen_path(id), shown, code)
            })
            .collect()
    };
    // A read that cannot be audited is not answered.
    if state
        .store
        .record_access(&session.user.login, "search", &q)
        .await
        .is_err()
    {
        return crate::pages::temporarily_unavailable();
    }
    if let Ok(plate) = sportello_domain::plate::Plate::parse(&q, None) {
        let mut cases: Vec<&str> = hits.iter().map(|h| h.reference.as_str()).collect();
        cases.dedup();
        if cases.len() == 1 && plate.number.len() >= 5 && q.chars().any(|c| c.is_ascii_digit()) {
            return Redirect::to(&format!("/ufficio/pratiche/{}", cases[0])).into_response();
        }
    }
    let hits = hits
        .into_iter()
        .map(|mut h| {
            h.snippet = ids_in_words(&tr, &h.snippet);
            h
        })
        .collect();
    let page_ = SearchPage {
        frame: Frame::staff(&state, "", &session).with_language(&tr),
        tr,
        q,
        hits,
        citizens,
    };
    page(StatusCode::OK, &page_)
}

// ----- permits desk -----

/// A snippet quotes the text indexed for a case, whose data holds ids (`carta_circolazione`):
/// each `snake_case` word that names a document, a category, a field, a status, a flag or a
/// channel is given in words. The snippet is already HTML-escaped; the words are escaped too.
fn ids_in_words(tr: &Tr, snippet: &str) -> String {
    const GROUPS: [&str; 6] = ["document", "category", "field", "status", "flag", "channel"];
    let mut out = String::with_capacity(snippet.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let named = word
            .contains('_')
            .then(|| GROUPS.iter().map(|g| tr.name(g, word)).find(|w| w != word));
        match named.flatten() {
            Some(w) => out.push_str(&crate::charts::escape(&w)),
            None => out.push_str(word),
        }
        word.clear();
    };
    for c in snippet.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_a_snippet_are_given_in_words_and_the_rest_is_kept() {
        let tr = Tr {
            lang: crate::i18n::Lang::It,
        };
        let shown = ids_in_words(
            &tr,
            "documents <mark>carta_circolazione</mark> e altro_ignoto &amp; testo",
        );
        assert!(
            shown.contains("<mark>Carta di circolazione</mark>"),
            "{shown}"
        );
        assert!(
            shown.contains("altro_ignoto"),
            "an unknown id stays: {shown}"
        );
        assert!(shown.contains("&amp; testo"), "{shown}");
    }
}
