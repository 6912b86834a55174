//! `serve --demo` seeds a believable office through the product's own paths and prints two
//! working logins.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::harness::Install;

#[tokio::test]
async fn demo_office_is_seeded_once_with_working_logins() {
    let mut install = Install::new("").await;
    let log = install.start(&["--demo"]).await;
    let tokens: Vec<String> = log
        .lines()
        .filter(|l| {
            l.trim_start().starts_with("supervisore") || l.trim_start().starts_with("operatore")
        })
        .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
        .collect();
    assert_eq!(tokens.len(), 2, "two logins printed: {log}");
    let (status, _, list) = install
        .call("GET", "/api/v1/cases?per_page=200", Some(&tokens[0]), None)
        .await;
    assert_eq!(status, 200);
    let total = list["total"].as_i64().unwrap();
    assert!((250..=300).contains(&total), "about 300 cases, got {total}");
    let mut statuses = BTreeSet::new();
    let mut channels = BTreeSet::new();
    let mut types = BTreeSet::new();
    for page in 1..=2 {
        let (_, _, list) = install
            .call(
                "GET",
                &format!("/api/v1/cases?per_page=200&page={page}"),
                Some(&tokens[1]),
                None,
            )
            .await;
        for c in list["items"].as_array().unwrap() {
            statuses.insert(c["status"].as_str().unwrap().to_owned());
            channels.insert(c["channel"].as_str().unwrap().to_owned());
            types.insert(c["case_type"].as_str().unwrap().to_owned());
        }
    }
    assert!(statuses.len() >= 7, "statuses {statuses:?}");
    assert!(channels.len() >= 8, "channels {channels:?}");
    assert_eq!(types.len(), 3, "types {types:?}");
    let (_, _, orphans) = install
        .call("GET", "/api/v1/cases?orphan=true", Some(&tokens[0]), None)
        .await;
    assert!(
        orphans["total"].as_i64().unwrap() > 0,
        "some orphans to find"
    );
    the_demo_shows_the_product(&install, &tokens[0]).await;
    install.stop();

    // A second start keeps the data and prints fresh credentials.
    let log = install.start(&["--demo"]).await;
    let token = log
        .lines()
        .find(|l| l.trim_start().starts_with("operatore"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .to_owned();
    let (_, _, list) = install
        .call("GET", "/api/v1/cases?per_page=1", Some(&token), None)
        .await;
    assert_eq!(list["total"].as_i64().unwrap(), total);
    install.stop();
    let out = install.cli(&["register", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Every reference of the cases matching `filter`, newest first.
async fn references(install: &Install, token: &str, filter: &str) -> Vec<String> {
    let mut found = Vec::new();
    for page in 1.. {
        let (status, _, list) = install
            .call(
                "GET",
                &format!("/api/v1/cases?per_page=200&page={page}&{filter}"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(status, 200, "{list}");
        let items = list["items"].as_array().unwrap();
        found.extend(
            items
                .iter()
                .map(|c| c["reference"].as_str().unwrap().to_owned()),
        );
        if items.len() < 200 {
            break;
        }
    }
    found
}

async fn get(install: &Install, token: &str, path: &str) -> Value {
    let (status, _, body) = install.call("GET", path, Some(token), None).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// What the demo must show a newcomer: permits the police can see, every channel on the
/// cases' timelines, a contested fine annulled on its evidence, the contact centre's
/// calls and the counter's appointments, messages out with their receipts.
async fn the_demo_shows_the_product(install: &Install, supervisor: &str) {
    // The police's whitelist has the plates of the permits issued.
    let (status, ctype, whitelist) = install
        .call(
            "GET",
            "/api/v1/whitelist?format=json",
            Some(supervisor),
            None,
        )
        .await;
    assert_eq!(status, 200, "{whitelist}");
    assert!(ctype.starts_with("application/json"), "{ctype}");
    let rows = whitelist.as_array().expect("the whitelist as a JSON array");
    assert!(rows.len() >= 20, "whitelist rows: {}", rows.len());
    assert!(
        rows.iter()
            .all(|r| r["plate"].is_string() && r["permit"].is_string()),
        "{whitelist}"
    );

    // An issued case carries its printed permit, and the permit answers.
    let issued = references(install, supervisor, "status=issued").await;
    assert!(!issued.is_empty(), "issued cases");
    let case = get(install, supervisor, &format!("/api/v1/cases/{}", issued[0])).await;
    let printed = case["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| {
            d["filename"]
                .as_str()
                .is_some_and(|f| f.starts_with("permesso-") && f.ends_with(".pdf"))
        })
        .unwrap_or_else(|| panic!("the printed permit of {}: {case}", issued[0]));
    let number = printed["filename"]
        .as_str()
        .unwrap()
        .trim_start_matches("permesso-")
        .trim_end_matches(".pdf")
        .to_owned();
    let permit = get(install, supervisor, &format!("/api/v1/permits/{number}")).await;
    assert_eq!(permit["number"], number.as_str(), "{permit}");
    assert!(!permit["plates"].as_array().unwrap().is_empty(), "{permit}");
    assert!(
        rows.iter().any(|r| r["permit"] == number.as_str()),
        "permit {number} on the whitelist"
    );

    // The cases' timelines show messages from every kind of channel.
    let mut channels = BTreeSet::new();
    let mut rules = BTreeSet::new();
    for reference in references(install, supervisor, "").await {
        let messages = get(
            install,
            supervisor,
            &format!("/api/v1/cases/{reference}/messages"),
        )
        .await;
        for m in messages.as_array().unwrap() {
            channels.insert(m["channel"].as_str().unwrap().to_owned());
            rules.insert(m["rule"].as_str().unwrap().to_owned());
        }
        if channels.len() >= 5 && rules.len() >= 2 {
            break;
        }
    }
    assert!(channels.len() >= 4, "inbound channels {channels:?}");
    assert!(
        rules.contains("new") && rules.iter().any(|r| r.starts_with("reference_in")),
        "messages that opened cases and messages that attached: {rules:?}"
    );

    // A contested fine annulled on its evidence, with the request to the police.
    let mut annulled = None;
    for reference in references(install, supervisor, "case_type=seg").await {
        let case = get(install, supervisor, &format!("/api/v1/cases/{reference}")).await;
        let request = case["documents"].as_array().unwrap().iter().any(|d| {
            d["filename"]
                .as_str()
                .is_some_and(|f| f.starts_with("richiesta-annullamento-"))
        });
        if request {
            annulled = Some(reference);
            break;
        }
    }
    let annulled = annulled.expect("an SEG case annulled with its request to the police");
    let evidence = get(
        install,
        supervisor,
        &format!("/api/v1/cases/{annulled}/evidence"),
    )
    .await;
    assert!(
        !evidence["transits"].as_array().unwrap().is_empty(),
        "{evidence}"
    );

    // The contact centre's calls and the counter's day.
    let callbacks = get(install, supervisor, "/api/v1/callbacks").await;
    assert!(callbacks["total"].as_i64().unwrap() > 0, "{callbacks}");
    let today = get(install, supervisor, "/api/v1/appointments").await;
    assert!(
        !today.as_array().unwrap().is_empty(),
        "appointments today: {today}"
    );

    // Messages to citizens went out, and the PEC provider's receipts came back.
    let mut statuses = BTreeSet::new();
    for reference in references(install, supervisor, "channel=pec").await {
        let outbound = get(
            install,
            supervisor,
            &format!("/api/v1/cases/{reference}/outbound"),
        )
        .await;
        for m in outbound.as_array().unwrap() {
            statuses.insert(m["status"].as_str().unwrap().to_owned());
        }
        if statuses.contains("delivered") {
            break;
        }
    }
    assert!(
        statuses.contains("delivered") || statuses.contains("accepted"),
        "outbound statuses {statuses:?}"
    );
}
