//! Words everywhere (issue #18 §2): every page of the demo office is read as the clerk and
//! the citizen see it, and no identifier (`in_review`, `message_moved_in`, a document id)
//! nor raw JSON may show in its visible text.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::multipart::Form;
use serde_json::{Value, json};

use crate::browser::{Browser, csrf_of};
use crate::harness::Install;

/// Words with an underscore allowed on the pages whose path starts with the first item,
/// each with its reason. Keep it short: an id on a page is a defect to fix, not to allow.
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "/ufficio/accessi",
        "per_page",
        "the audit quotes the query string of a list read, as it was sent",
    ),
    (
        "/ufficio/permessi",
        "transit_id",
        "the column names of the gates' CSV file the operator uploads",
    ),
];

/// Whether `word` is allowed on the page at `path`.
fn allowed(path: &str, word: &str) -> bool {
    ALLOWED
        .iter()
        .any(|(page, w, _)| path.starts_with(page) && *w == word)
}

/// The visible text of a page: no scripts, styles, tags (so no attribute values and no
/// hidden inputs), entities decoded.
fn visible_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        text.push_str(&rest[..start]);
        let after = &rest[start..];
        let lower = after.get(..8).unwrap_or(after).to_ascii_lowercase();
        let skip_to = if lower.starts_with("<script") {
            after.find("</script>").map(|i| i + "</script>".len())
        } else if lower.starts_with("<style") {
            after.find("</style>").map(|i| i + "</style>".len())
        } else if lower.starts_with("<!--") {
            after.find("-->").map(|i| i + 3)
        } else {
            after.find('>').map(|i| i + 1)
        };
        let Some(end) = skip_to else {
            rest = "";
            break;
        };
        // A tag ends a word: the text on either side is not one token.
        text.push(' ');
        rest = &after[end..];
    }
    text.push_str(rest);
    decode_entities(&text)
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(end) = after.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &after[1..];
            continue;
        };
        let name = &after[1..end];
        let decoded = match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            _ => name
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The identifiers in a page's visible text: snake_case tokens (`[a-z]+_[a-z_]+`) outside
/// e-mail addresses, file names and allowed words, and `{"…` JSON-looking blocks.
fn identifiers(path: &str, text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for word in text.split_whitespace() {
        // An e-mail address or a file name is a real name, whatever its spelling.
        let trimmed = word.trim_matches(|c: char| !c.is_alphanumeric());
        if trimmed.contains('@') || is_file_name(trimmed) {
            continue;
        }
        for token in snake_tokens(word) {
            if !allowed(path, &token) {
                found.insert(token);
            }
        }
    }
    let compact: String = text.split_whitespace().collect();
    for (at, _) in compact.match_indices('{') {
        let next = compact[at + 1..].chars().next();
        if matches!(next, Some('"') | Some('}')) {
            let end = compact[at..]
                .char_indices()
                .nth(40)
                .map_or(compact.len(), |(i, _)| at + i);
            found.insert(compact[at..end].to_owned());
        }
    }
    for (at, _) in compact.match_indices("[\"") {
        let end = compact[at..]
            .char_indices()
            .nth(40)
            .map_or(compact.len(), |(i, _)| at + i);
        found.insert(compact[at..end].to_owned());
    }
    found
}

fn is_file_name(word: &str) -> bool {
    word.rsplit_once('.').is_some_and(|(stem, ext)| {
        !stem.is_empty()
            && (2..=4).contains(&ext.len())
            && ext.chars().all(|c| c.is_ascii_alphanumeric())
            && ext.chars().any(|c| c.is_ascii_alphabetic())
    })
}

/// Every maximal run of `[a-z_]` in `word` that has the shape `[a-z]+_[a-z_]+`.
fn snake_tokens(word: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut flush = |current: &mut String| {
        let trimmed = current.trim_end_matches('_');
        let starts_with_letter = trimmed.starts_with(|c: char| c.is_ascii_lowercase());
        if starts_with_letter
            && let Some((head, tail)) = trimmed.split_once('_')
            && !head.is_empty()
            && !tail.is_empty()
        {
            tokens.push(trimmed.to_owned());
        }
        current.clear();
    };
    let mut previous_alnum = false;
    for c in word.chars() {
        if c.is_ascii_lowercase() || (c == '_' && !current.is_empty()) {
            // A run glued to capitals or digits (`ZTL_2026`) is not a snake_case id.
            if current.is_empty() && previous_alnum {
                previous_alnum = true;
                continue;
            }
            current.push(c);
        } else {
            let glued = c.is_alphanumeric();
            if glued {
                current.clear();
            } else {
                flush(&mut current);
            }
            previous_alnum = glued;
            continue;
        }
        previous_alnum = true;
    }
    flush(&mut current);
    tokens
}

#[test]
fn the_reader_finds_identifiers_and_spares_words() {
    let html = r#"<p>Destinatario: in_review <input type="hidden" name="csrf_token" value="a_b">
        <script>var x_y = {"a": 1};</script> mario_rossi@example.it permesso_1.pdf
        <b>message</b>_moved {"category":"residenti"} l&#39;ufficio ["a"]</p>"#;
    let found = identifiers("/x", &visible_text(html));
    assert!(found.contains("in_review"), "{found:?}");
    assert!(
        found.iter().any(|f| f.starts_with("{\"category")),
        "{found:?}"
    );
    assert!(found.iter().any(|f| f.starts_with("[\"a")), "{found:?}");
    assert!(!found.iter().any(|f| f.contains("csrf")), "{found:?}");
    assert!(!found.iter().any(|f| f.contains("x_y")), "{found:?}");
    assert!(!found.iter().any(|f| f.contains("mario")), "{found:?}");
    assert!(!found.iter().any(|f| f.contains("permesso")), "{found:?}");
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(
        visible_text("l&#39;ufficio &amp; co").trim(),
        "l'ufficio & co"
    );
}

fn text_form(fields: &[(&str, &str)]) -> Form {
    fields.iter().fold(Form::new(), |form, (k, v)| {
        form.text(k.to_string(), v.to_string())
    })
}

/// The pages read so far and what each showed that is not a word.
#[derive(Default)]
struct Reading {
    pages: usize,
    found: BTreeMap<String, BTreeSet<String>>,
}

impl Reading {
    async fn read(&mut self, browser: &mut Browser, path: &str) -> String {
        let mut answer = browser.get(path).await;
        // A redirect is followed (a page after its form), unless it sends the reader away:
        // to the sign-in or to the permits desk, the page asked was not read.
        if answer.status == 303 && answer.location.starts_with('/') {
            assert!(
                !answer.location.starts_with("/ufficio/login")
                    && answer.location != "/ufficio/permessi",
                "GET {path} sent the reader to {}",
                answer.location
            );
            answer = browser.get(&answer.location.clone()).await;
        }
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.body);
        self.note(path, &answer.body);
        answer.body
    }

    fn note(&mut self, path: &str, body: &str) {
        self.pages += 1;
        let found = identifiers(path, &visible_text(body));
        if !found.is_empty() {
            // To read a page as the test read it: SPORTELLO_WORDS_DUMP=/some/dir.
            if let Ok(dir) = std::env::var("SPORTELLO_WORDS_DUMP") {
                let name: String = path
                    .chars()
                    .map(|c| if c.is_alphanumeric() { c } else { '-' })
                    .collect();
                std::fs::write(format!("{dir}/{name}.txt"), visible_text(body)).unwrap();
            }
            self.found.entry(path.to_owned()).or_default().extend(found);
        }
    }

    fn verdict(&self) {
        let report: Vec<String> = self
            .found
            .iter()
            .map(|(page, words)| {
                format!(
                    "{page}: {}",
                    words.iter().cloned().collect::<Vec<_>>().join(" | ")
                )
            })
            .collect();
        assert!(
            report.is_empty(),
            "identifiers shown as text on {} of {} pages:\n{}",
            report.len(),
            self.pages,
            report.join("\n")
        );
    }
}

async fn get(install: &Install, token: &str, path: &str) -> Value {
    let (status, _, body) = install.call("GET", path, Some(token), None).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Every case of the demo (summaries), through the API.
async fn all_cases(install: &Install, token: &str) -> Vec<Value> {
    let mut cases = Vec::new();
    for page in 1.. {
        let list = get(
            install,
            token,
            &format!("/api/v1/cases?per_page=200&page={page}"),
        )
        .await;
        let items = list["items"].as_array().unwrap().clone();
        let done = items.len() < 200;
        cases.extend(items);
        if done {
            break;
        }
    }
    cases
}

/// One case of each status, case type and channel, the contested fines and a case with
/// a message moved in and one moved out.
async fn sample(install: &Install, token: &str, cases: &[Value]) -> BTreeSet<String> {
    let mut chosen = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for c in cases {
        let reference = c["reference"].as_str().unwrap().to_owned();
        for key in ["status", "case_type", "channel"] {
            let value = format!("{key}={}", c[key].as_str().unwrap_or_default());
            if seen.insert(value) {
                chosen.insert(reference.clone());
            }
        }
        // Every contested fine: their evidence and fields are the richest.
        if c["case_type"] == "seg" && chosen.iter().filter(|r| r.starts_with("SEG")).count() < 6 {
            chosen.insert(reference.clone());
        }
        // Cases with flags.
        if c["flags"].as_array().is_some_and(|f| !f.is_empty()) {
            let flags = c["flags"].to_string();
            if seen.insert(format!("flags={flags}")) {
                chosen.insert(reference.clone());
            }
        }
    }
    // A message moved from one case to another, as an operator corrects the intake.
    let mut moved = false;
    for c in cases.iter().filter(|c| c["channel"] == "email") {
        let reference = c["reference"].as_str().unwrap();
        let messages = get(
            install,
            token,
            &format!("/api/v1/cases/{reference}/messages"),
        )
        .await;
        let Some(message) = messages.as_array().and_then(|m| m.first()) else {
            continue;
        };
        let target = cases
            .iter()
            .map(|c| c["reference"].as_str().unwrap())
            .find(|r| *r != reference && r.starts_with("ZTL"))
            .unwrap();
        let (status, _, body) = install
            .call(
                "POST",
                &format!("/api/v1/messages/{}/move", message["id"]),
                Some(token),
                Some(json!({"to": target, "note": "è la pratica giusta"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        chosen.insert(reference.to_owned());
        chosen.insert(target.to_owned());
        moved = true;
        break;
    }
    assert!(moved, "a message moved between two cases");
    chosen
}

#[tokio::test]
async fn no_page_of_the_demo_shows_an_identifier() {
    let mut install = Install::new("").await;
    // Users of the test's own, added before the demo seeds (it seeds an office with no case).
    let (op_password, op_token) = install.user_with_password("parole-op", "operator");
    let (admin_password, _) = install.user_with_password("parole-admin", "admin");
    install.start(&["--demo"]).await;
    let cases = all_cases(&install, &op_token).await;
    assert!(cases.len() > 200, "the demo office: {} cases", cases.len());
    let chosen = sample(&install, &op_token, &cases).await;

    let mut reading = Reading::default();
    for (login, password) in [
        ("parole-op", &op_password),
        ("parole-admin", &admin_password),
    ] {
        let (mut browser, _) = Browser::signed_in(&install, login, password).await;
        for lang in ["it", "en"] {
            for path in [
                "/ufficio",
                "/ufficio/pratiche",
                "/ufficio/pratiche?status=in_review",
                "/ufficio/report",
                "/ufficio/permessi",
                "/ufficio/richiamate",
                "/ufficio/appuntamenti",
                "/ufficio/cerca?q=rossi",
                "/ufficio/password",
            ] {
                reading
                    .read(&mut browser, &format!("{path}{}lang={lang}", sep(path)))
                    .await;
            }
            if login == "parole-admin" {
                for path in ["/ufficio/accessi", "/ufficio/utenti"] {
                    reading
                        .read(&mut browser, &format!("{path}?lang={lang}"))
                        .await;
                }
            }
        }
    }

    // Every sampled case, its write page, its citizen and the caller's page.
    let (mut browser, _) = Browser::signed_in(&install, "parole-op", &op_password).await;
    let mut citizens = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    let mut permits = BTreeSet::new();
    for reference in &chosen {
        for lang in ["it", "en"] {
            let body = reading
                .read(
                    &mut browser,
                    &format!("/ufficio/pratiche/{reference}?lang={lang}"),
                )
                .await;
            if let Some(at) = body.find("href=\"/ufficio/cittadini/") {
                let rest = &body[at + 6..];
                citizens.insert(rest[..rest.find('"').unwrap()].to_owned());
            }
            if let Some(at) = body.find("href=\"/ufficio/permessi/") {
                let rest = &body[at + 6..];
                let link = &rest[..rest.find('"').unwrap()];
                if !link.contains('?') && !link.ends_with("/apri") {
                    permits.insert(link.to_owned());
                }
            }
        }
        let case = get(&install, &op_token, &format!("/api/v1/cases/{reference}")).await;
        if let Some(phone) = case["citizen"]["phone"].as_str() {
            numbers.insert(phone.to_owned());
        }
    }
    let writable: Vec<&String> = chosen
        .iter()
        .filter(|r| r.starts_with("ZTL"))
        .take(3)
        .collect();
    assert!(!writable.is_empty(), "permit requests to write about");
    for reference in writable {
        for lang in ["it", "en"] {
            reading
                .read(
                    &mut browser,
                    &format!("/ufficio/pratiche/{reference}/scrivi?lang={lang}"),
                )
                .await;
        }
    }
    assert!(
        !citizens.is_empty(),
        "citizens' records linked from the cases"
    );
    for path in citizens.iter().take(8) {
        for lang in ["it", "en"] {
            reading
                .read(&mut browser, &format!("{path}?lang={lang}"))
                .await;
        }
    }
    assert!(!permits.is_empty(), "permits linked from the cases");
    for path in permits.iter().take(4) {
        reading.read(&mut browser, &format!("{path}?lang=it")).await;
    }
    assert!(!numbers.is_empty(), "callers' numbers on the cases");
    for number in numbers.iter().take(4) {
        let encoded: String = number
            .chars()
            .map(|c| {
                if c == '+' {
                    "%2B".to_owned()
                } else {
                    c.to_string()
                }
            })
            .collect();
        for lang in ["it", "en"] {
            reading
                .read(
                    &mut browser,
                    &format!("/ufficio/chiamata?numero={encoded}&lang={lang}"),
                )
                .await;
        }
    }

    // The citizen's portal: its forms name categories, documents and gates in words.
    let mut citizen = Browser::new(&install);
    for path in [
        "/",
        "/domanda",
        "/contesta",
        "/cude",
        "/stato",
        "/accessibilita",
        "/privacy",
    ] {
        for lang in ["it", "en"] {
            reading
                .read(&mut citizen, &format!("{path}?lang={lang}"))
                .await;
        }
    }

    // The citizen's status page, for cases with documents, in both languages.
    let mut citizen_pages = 0;
    let waiting: Vec<String> = cases
        .iter()
        .filter(|c| c["status"] == "waiting_citizen")
        .take(3)
        .map(|c| c["reference"].as_str().unwrap().to_owned())
        .collect();
    assert!(!waiting.is_empty(), "cases waiting for the citizen");
    for reference in waiting.iter().chain(&chosen) {
        let case = get(&install, &op_token, &format!("/api/v1/cases/{reference}")).await;
        let Some(code) = case["citizen"]["fiscal_code"].as_str() else {
            continue;
        };
        for lang in ["it", "en"] {
            let mut citizen = Browser::new(&install);
            let form = citizen.get(&format!("/stato?lang={lang}")).await;
            let csrf = csrf_of(&form.body);
            let shown = citizen
                .post_multipart(
                    &format!("/stato?lang={lang}"),
                    text_form(&[
                        ("csrf", &csrf),
                        ("reference", reference),
                        ("fiscal_code", code),
                    ]),
                )
                .await;
            assert_eq!(shown.status, 200, "/stato {reference}: {}", shown.body);
            assert!(shown.body.contains(reference.as_str()), "{}", shown.body);
            reading.note(&format!("/stato ({reference}, {lang})"), &shown.body);
        }
        citizen_pages += 1;
        if citizen_pages >= 8 {
            break;
        }
    }
    assert!(citizen_pages > 0, "status pages read");
    install.stop();
    reading.verdict();
}

fn sep(path: &str) -> &'static str {
    if path.contains('?') { "&" } else { "?" }
}
