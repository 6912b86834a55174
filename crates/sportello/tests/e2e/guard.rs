//! Throttling that strangers cannot turn against users (issue 16 §2) and the security
//! events it produces: device cookies, counters that survive a restart, wrong tokens
//! counted per client, `trusted_proxies` for `X-Forwarded-For`, anonymous writes limited
//! before they are read.

use std::sync::Arc;

use chrono::Duration;
use reqwest::multipart::{Form, Part};
use sportello_domain::clock::{Clock, SystemClock};
use sportello_store::{Store, StoreSettings};

use crate::browser::{Browser, csrf_of};
use crate::harness::Install;

/// `(kind, login, address, detail)` of every security event so far, read from the database.
pub(crate) async fn events(install: &Install) -> Vec<(String, Option<String>, String, String)> {
    let store = Store::connect(
        &install.database_url,
        Arc::new(SystemClock),
        StoreSettings::default(),
    )
    .await
    .unwrap();
    let now = SystemClock.now();
    let list = store
        .security_events(now - Duration::days(1), now + Duration::days(1), 10_000)
        .await
        .unwrap();
    store.close().await;
    list.into_iter()
        .map(|e| (e.kind.as_str().to_owned(), e.login, e.address, e.detail))
        .collect()
}

fn count(events: &[(String, Option<String>, String, String)], kind: &str) -> usize {
    events.iter().filter(|e| e.0 == kind).count()
}

/// A signed-in attempt through the form: the status answered.
async fn sign_in(browser: &mut Browser, login: &str, password: &str) -> u16 {
    browser.sign_in(login, password).await.status
}

#[tokio::test]
async fn a_strangers_failures_do_not_lock_out_the_owners_browser_and_survive_a_restart() {
    let mut install = Install::new("").await;
    let (password, _) = install.user_with_password("anna", "operator");
    install.start(&[]).await;

    // The owner signs in once from her browser: it gets a device cookie.
    let mut owner = Browser::new(&install);
    assert_eq!(sign_in(&mut owner, "anna", &password).await, 303);
    let device = owner.cookie("sportello_device").expect("a device cookie");
    assert_eq!(device.len(), 32);

    // A stranger (same address even: the owner's browser is still told apart) fails 20 times.
    let mut stranger = Browser::new(&install);
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(sign_in(&mut stranger, "anna", "guess").await);
    }
    assert!(statuses[..5].iter().all(|s| *s == 200), "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // The right password from a browser without the device cookie waits too…
    let mut fresh = Browser::new(&install);
    assert_eq!(sign_in(&mut fresh, "anna", &password).await, 429);
    // …but the owner's browser signs in.
    assert_eq!(sign_in(&mut owner, "anna", &password).await, 303);
    // A wrong password from the owner's browser is counted on that browser alone.
    assert_eq!(sign_in(&mut owner, "anna", "typo").await, 200);
    assert_eq!(sign_in(&mut owner, "anna", &password).await, 303);

    // The counters are in the database: a restart does not forgive the stranger.
    install.stop();
    install.start(&[]).await;
    assert_eq!(sign_in(&mut stranger, "anna", &password).await, 429);
    assert_eq!(sign_in(&mut owner, "anna", &password).await, 303);

    let log = events(&install).await;
    assert_eq!(count(&log, "sign_in_failed"), 6, "{log:?}");
    assert!(count(&log, "signed_in") >= 4, "{log:?}");
    let throttled = count(&log, "sign_in_throttled");
    assert!(
        (1..=3).contains(&throttled),
        "one per client and minute, not one per refusal: {log:?}"
    );
    for (kind, login, address, detail) in &log {
        if kind.starts_with("sign") {
            assert_eq!(login.as_deref(), Some("anna"), "{kind}");
            assert_eq!(address, "127.0.0.1");
        }
        assert!(
            !detail.contains("guess") && !detail.contains(&password),
            "no password in the log: {detail}"
        );
    }
}

/// The server behind a reverse proxy on this machine (the tests' own address).
const TRUST_LOCALHOST: (&str, &str) = ("SPORTELLO_TRUSTED_PROXIES", "[\"127.0.0.1/32\"]");

/// A request through a reverse proxy on 127.0.0.1 that saw the client at `client`.
async fn api_as(install: &Install, token: &str, client: Option<&str>) -> u16 {
    let mut req = install
        .client
        .get(format!("{}/api/v1/cases", install.base()))
        .bearer_auth(token);
    if let Some(address) = client {
        req = req.header("x-forwarded-for", format!("1.1.1.1, {address}"));
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_valid_token_works_while_another_client_sends_bad_ones() {
    let mut install = Install::new("").await;
    let token = install.user("vigili", "operator");
    install.start_with_env(&[], &[TRUST_LOCALHOST]).await;
    let mut statuses = Vec::new();
    for i in 0..50 {
        statuses.push(api_as(&install, &format!("spt_guess{i}"), Some("198.51.100.9")).await);
    }
    assert!(statuses[..30].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[30..].iter().all(|s| *s == 429), "{statuses:?}");
    // The police office's token, never used before (not cached), from its own address.
    assert_eq!(api_as(&install, &token, Some("203.0.113.5")).await, 200);
    // The proxy itself is a client of its own too.
    assert_eq!(api_as(&install, &token, None).await, 200);
    // The guesser stays blocked.
    assert_eq!(
        api_as(&install, "spt_more", Some("198.51.100.9")).await,
        429
    );

    let log = events(&install).await;
    let invalid: Vec<_> = log.iter().filter(|e| e.0 == "token_invalid").collect();
    assert_eq!(invalid.len(), 30, "{log:?}");
    for (_, _, address, detail) in &invalid {
        assert_eq!(address, "198.51.100.9");
        assert!(!detail.contains("spt_guess"), "never the token: {detail}");
        assert!(detail.contains("sha256"), "{detail}");
    }
    assert!(
        log.iter()
            .any(|e| e.0 == "sign_in_throttled" && e.2 == "198.51.100.9"),
        "{log:?}"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_clients_are_counted_apart_and_otherwise_the_header_is_ignored() {
    for trusted in [true, false] {
        let proxies = if trusted {
            TRUST_LOCALHOST
        } else {
            ("SPORTELLO_TRUSTED_PROXIES", "[\"10.0.0.0/8\"]")
        };
        let mut install = Install::new("").await;
        install.start_with_env(&[], &[proxies]).await;
        for i in 0..31 {
            api_as(&install, &format!("spt_a{i}"), Some("198.51.100.1")).await;
        }
        assert_eq!(
            api_as(&install, "spt_a", Some("198.51.100.1")).await,
            429,
            "trusted: {trusted}"
        );
        let other = api_as(&install, "spt_b", Some("198.51.100.2")).await;
        if trusted {
            assert_eq!(other, 401, "another client behind the proxy is not blocked");
        } else {
            assert_eq!(other, 429, "from an untrusted peer the header is ignored");
        }
        let log = events(&install).await;
        let mut addresses: Vec<&str> = log
            .iter()
            .filter(|e| e.0 == "token_invalid")
            .map(|e| e.2.as_str())
            .collect();
        addresses.dedup();
        let expected: &[&str] = if trusted {
            &["198.51.100.1", "198.51.100.2"]
        } else {
            &["127.0.0.1"]
        };
        assert_eq!(addresses, expected, "{log:?}");
    }
}

fn application(csrf: &str) -> Form {
    let pdf = |name: &str| {
        Part::bytes(b"%PDF-1.4 documento di prova".to_vec())
            .file_name(name.to_owned())
            .mime_str("application/pdf")
            .unwrap()
    };
    [
        ("csrf", csrf),
        ("category", "residenti"),
        ("name", "Mario Rossi"),
        ("fiscal_code", "RSSMRA80A01H501U"),
        ("email", "mario.rossi@example.it"),
        ("plates", "ab 123 cd"),
        ("privacy", "yes"),
    ]
    .iter()
    .fold(Form::new(), |form, (k, v)| {
        form.text(k.to_string(), v.to_string())
    })
    .part("doc_documento_identita", pdf("carta-identita.pdf"))
    .part("doc_carta_circolazione", pdf("libretto.pdf"))
}

#[tokio::test]
async fn a_flood_of_applications_from_one_client_is_refused_before_it_is_read() {
    let mut install = Install::new("").await;
    let op = install.user("op", "operator");
    install.start(&[]).await;
    let mut browser = Browser::new(&install);
    let form = browser.get("/domanda").await;
    let csrf = csrf_of(&form.body);
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..16 {
        let answer = browser.post_multipart("/domanda", application(&csrf)).await;
        statuses.push(answer.status);
        last = Some(answer);
    }
    assert!(statuses[..10].iter().all(|s| *s == 201), "{statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
    let last = last.unwrap();
    assert!(last.body.contains("Troppe richieste"), "{}", last.body);
    assert!(!last.body.contains("ZTL-"), "no case number");
    // No case was created by the refused ones.
    let (status, _, list) = install
        .call("GET", "/api/v1/cases?per_page=100", Some(&op), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["total"], 10, "{list}");
    // The budget is the client's, in the database: Retry-After says when to come back.
    let refused = install
        .client
        .post(format!("{}/contesta", install.base()))
        .header("accept-language", "en")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=x")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&retry), "{retry}");
    assert!(refused.text().await.unwrap().contains("Too many requests"));

    let log = events(&install).await;
    let limited = count(&log, "rate_limited");
    assert!(
        (1..=2).contains(&limited),
        "once per client and minute: {log:?}"
    );
}

#[tokio::test]
async fn csrf_and_permission_refusals_are_recorded() {
    let mut install = Install::new("").await;
    let (password, op) = install.user_with_password("op", "operator");
    install.start(&[]).await;
    // A role that may not read reports.
    let (status, _, _) = install
        .call("GET", "/api/v1/reports/throughput", Some(&op), None)
        .await;
    assert_eq!(status, 403);
    // A form of the office without its CSRF token.
    let (mut browser, _) = Browser::signed_in(&install, "op", &password).await;
    let refused = browser
        .post_form("/ufficio/logout", &[("csrf", "forged")])
        .await;
    assert_eq!(refused.status, 303);
    let forged = browser
        .post_form(
            "/ufficio/login",
            &[("login", "op"), ("password", &password), ("csrf", "forged")],
        )
        .await;
    assert_eq!(forged.status, 403);
    let log = events(&install).await;
    let permission: Vec<_> = log.iter().filter(|e| e.0 == "permission_refused").collect();
    assert_eq!(permission.len(), 1, "{log:?}");
    assert_eq!(permission[0].1.as_deref(), Some("op"));
    assert!(
        permission[0].3.contains("read reports"),
        "{:?}",
        permission[0]
    );
    assert!(permission[0].3.contains("/api/v1/reports/throughput"));
    assert!(count(&log, "csrf_refused") >= 2, "{log:?}");
    assert!(
        log.iter()
            .any(|e| e.0 == "signed_in" && e.1.as_deref() == Some("op")),
        "{log:?}"
    );
}

#[test]
fn a_bad_trusted_proxy_stops_start_up_naming_the_key() {
    let install = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(Install::new(""));
    let out = install.cli_with_env(
        &["serve"],
        &[(
            "SPORTELLO_TRUSTED_PROXIES",
            "[\"127.0.0.1/32\", \"10.0.0.0/33\"]",
        )],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("trusted_proxies[1]") && stderr.contains("10.0.0.0/33"),
        "{stderr}"
    );
}
