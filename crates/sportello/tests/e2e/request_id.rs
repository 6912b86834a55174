//! Every answer carries its request's code (`x-request-id`), every error repeats it (the
//! problem's `request_id`, a line on an error page) and the server's log line of an error
//! names it, so that the code on a citizen's screen leads to the log.

use std::time::{Duration, Instant};

use crate::browser::Browser;
use crate::harness::{Install, started_with};

/// The code an answer carries.
fn code_of(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .expect("every answer carries x-request-id")
        .to_str()
        .unwrap()
        .to_owned()
}

/// Whether a code looks like the UUID the server makes.
fn is_uuid(code: &str) -> bool {
    code.len() == 36
        && code.chars().enumerate().all(|(i, c)| {
            matches!(i, 8 | 13 | 18 | 23) == (c == '-') && (c == '-' || c.is_ascii_hexdigit())
        })
}

/// Waits until the server's log names `code` (it writes the line as the answer leaves).
async fn log_line_naming(install: &Install, code: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = install.server_log();
        if let Some(line) = log.lines().find(|l| l.contains(code)) {
            return line.to_owned();
        }
        assert!(Instant::now() < deadline, "no log line names {code}: {log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_answer_carries_a_request_code_and_a_client_s_sensible_one_is_kept() {
    let (install, _) = started_with(&[]).await;
    let client = &install.client;
    let base = install.base();

    // A 200 gets a fresh code, a new one each time.
    let healthy = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(healthy.status(), 200);
    let first = code_of(&healthy);
    assert!(is_uuid(&first), "{first}");
    let again = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_ne!(code_of(&again), first, "one code per request");

    // A client's sensible code is kept, in the header, the problem and the log line.
    let mine = "portale-7f3a.2026_01";
    let kept = client
        .get(format!("{base}/api/v1/cases/ZTL-2026-999998"))
        .header("x-request-id", mine)
        .send()
        .await
        .unwrap();
    assert_eq!(kept.status(), 401);
    assert_eq!(code_of(&kept), mine);
    let problem: serde_json::Value = kept.json().await.unwrap();
    assert_eq!(problem["request_id"], mine);
    let line = log_line_naming(&install, mine).await;
    assert!(line.contains("status=401"), "{line}");
    assert!(line.contains("/api/v1/cases/ZTL-2026-999998"), "{line}");

    // One that is not a sensible code is replaced by a fresh one.
    for bad in ["two words", &"x".repeat(65), "<b>"] {
        let replaced = client
            .get(format!("{base}/healthz"))
            .header("x-request-id", bad)
            .send()
            .await
            .unwrap();
        let code = code_of(&replaced);
        assert!(is_uuid(&code), "{bad:?} replaced by {code}");
    }
}

#[tokio::test]
async fn a_problem_repeats_the_request_code_of_its_header() {
    let (install, users) = started_with(&[("op", "operator")]).await;
    let token = &users[0].1;
    let client = &install.client;
    let base = install.base();
    // A problem+json 4xx repeats the header's code in its body.
    let missing = client
        .get(format!("{base}/api/v1/cases/ZTL-2026-999999"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let code = code_of(&missing);
    assert!(is_uuid(&code), "{code}");
    let problem: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(problem["request_id"], code.as_str(), "{problem}");
    assert_eq!(problem["type"], "urn:sportello:problem:not-found");
    let invalid = client
        .post(format!("{base}/api/v1/cases"))
        .bearer_auth(token)
        .json(&serde_json::json!({"case_type": "ztl_permit"}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 422);
    let code = code_of(&invalid);
    let problem: serde_json::Value = invalid.json().await.unwrap();
    assert_eq!(problem["request_id"], code.as_str(), "{problem}");
}

#[tokio::test]
async fn error_pages_show_the_request_code_that_the_log_names() {
    let (install, users) = started_with(&[("op", "operator")]).await;
    let password = &users[0].0;
    let client = &install.client;
    let base = install.base();
    // The portal's error page shows the code in the reader's language.
    let unknown_link = client
        .get(format!("{base}/stato/nessun-collegamento"))
        .header("x-request-id", "pagina-404")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_link.status(), 404);
    assert_eq!(code_of(&unknown_link), "pagina-404");
    let page = unknown_link.text().await.unwrap();
    assert!(
        page.contains("Codice della richiesta: <code>pagina-404</code>"),
        "{page}"
    );
    let english = client
        .get(format!("{base}/stato/nessun-collegamento?lang=en"))
        .send()
        .await
        .unwrap();
    let code = code_of(&english);
    let page = english.text().await.unwrap();
    assert!(
        page.contains(&format!("Request code: <code>{code}</code>")),
        "{page}"
    );
    log_line_naming(&install, &code).await;

    // A page that went well does not.
    let home = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(home.status(), 200);
    assert!(
        !home
            .text()
            .await
            .unwrap()
            .contains("Codice della richiesta")
    );

    // The office's "case not found" page too.
    let mut browser = Browser::new(&install);
    assert_eq!(browser.sign_in("op", password).await.status, 303);
    let not_found = browser.get("/ufficio/pratiche/ZTL-2026-999999").await;
    assert_eq!(not_found.status, 404);
    let shown = not_found
        .body
        .split_once("Codice della richiesta: <code>")
        .and_then(|(_, rest)| rest.split_once("</code>"))
        .map(|(code, _)| code.to_owned())
        .expect("the page shows the request code");
    assert!(is_uuid(&shown), "{shown}");
    log_line_naming(&install, &shown).await;
}
