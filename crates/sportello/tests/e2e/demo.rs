//! `serve --demo` seeds a believable office and prints two working logins.

use std::collections::BTreeSet;

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
