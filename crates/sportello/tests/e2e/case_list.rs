//! The case list (`/ufficio/pratiche`, issue 18 §3): every filter narrows the list, the
//! column headers sort it, saved views belong to their user, bulk assignment assigns what
//! it may and names what it may not, and the home page's cards count what their lists show.

use crate::browser::Browser;
use crate::harness::{Install, case_body, started_with};

/// The total the list page states ("Pratiche trovate: N").
fn total_of(body: &str) -> i64 {
    let at = body
        .find("Pratiche trovate: ")
        .unwrap_or_else(|| panic!("no total on the page: {body}"))
        + "Pratiche trovate: ".len();
    body[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

/// The references of the list's rows, in their order.
fn refs_of(body: &str) -> Vec<String> {
    body.split("<td class=\"ref\"><a href=\"/ufficio/pratiche/")
        .skip(1)
        .filter_map(|s| s.split_once('"').map(|(r, _)| r.to_owned()))
        .collect()
}

/// A page's HTML with `&` in attributes unescaped (askama writes `&#38;`).
fn plain(body: &str) -> String {
    body.replace("&#38;", "&").replace("&amp;", "&")
}

/// The list's total and references for a query.
async fn list(browser: &mut Browser, query: &str) -> (i64, Vec<String>) {
    let page = browser.get(&format!("/ufficio/pratiche?{query}")).await;
    assert_eq!(page.status, 200, "{query}: {}", page.body);
    (total_of(&page.body), refs_of(&page.body))
}

#[tokio::test]
async fn filters_sort_saved_views_and_bulk_assignment() {
    let (install, users) = started_with(&[
        ("op", "operator"),
        ("op2", "operator"),
        ("vigile", "police"),
    ])
    .await;
    let (op_password, op) = &users[0];
    let (op2_password, _) = &users[1];
    let (police_password, _) = &users[2];
    // Four cases: a ZTL one at the counter, one by e-mail, a CUDE one, and a withdrawn one.
    let mut refs = Vec::new();
    for (case_type, channel, subject) in [
        ("ztl_permit", "counter", "Bravo"),
        ("ztl_permit", "email", "Alfa"),
        ("cude", "counter", "Charlie"),
        ("ztl_permit", "counter", "Delta"),
    ] {
        let mut body = case_body();
        body["case_type"] = case_type.into();
        body["channel"] = channel.into();
        body["subject"] = subject.into();
        let (status, _, case) = install
            .call("POST", "/api/v1/cases", Some(op), Some(body))
            .await;
        assert_eq!(status, 201, "{case}");
        refs.push(case["reference"].as_str().unwrap().to_owned());
    }
    install
        .act(
            op,
            &refs[0],
            serde_json::json!({"action": "assign", "user": "op"}),
        )
        .await;
    install
        .act(op, &refs[0], serde_json::json!({"action": "start_review"}))
        .await;
    install
        .act(
            op,
            &refs[3],
            serde_json::json!({"action": "withdraw", "note": "ritirata"}),
        )
        .await;

    let (mut browser, csrf) = Browser::signed_in(&install, "op", op_password).await;
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let (n, all) = list(&mut browser, "").await;
    assert_eq!((n, sorted(all)), (4, sorted(refs.clone())));
    // Each filter narrows to what it names.
    // The day the cases were received (from the data, not the wall clock: a run across
    // midnight in Rome stays right).
    let (_, _, first) = install
        .call("GET", &format!("/api/v1/cases/{}", refs[2]), Some(op), None)
        .await;
    let today = chrono::NaiveDate::parse_from_str(
        first["received_at"].as_str().unwrap().get(..10).unwrap(),
        "%Y-%m-%d",
    )
    .unwrap();
    let tomorrow = today + chrono::Duration::days(1);
    let yesterday = today - chrono::Duration::days(1);
    for (query, expected) in [
        ("channel=email".to_owned(), vec![refs[1].clone()]),
        ("case_type=cude".to_owned(), vec![refs[2].clone()]),
        ("status=in_review".to_owned(), vec![refs[0].clone()]),
        ("assignee=me".to_owned(), vec![refs[0].clone()]),
        ("assignee=op".to_owned(), vec![refs[0].clone()]),
        (
            "assignee=none".to_owned(),
            vec![refs[1].clone(), refs[2].clone(), refs[3].clone()],
        ),
        (
            "open=true".to_owned(),
            vec![refs[0].clone(), refs[1].clone(), refs[2].clone()],
        ),
        (
            "open=true&channel=counter&case_type=ztl_permit".to_owned(),
            vec![refs[0].clone()],
        ),
        (format!("received_from={tomorrow}"), vec![]),
        (format!("received_to={yesterday}"), vec![]),
        (
            format!("received_from={today}&received_to={today}&case_type=cude"),
            vec![refs[2].clone()],
        ),
        (format!("due_to={yesterday}"), vec![]),
        (
            format!("due_from={tomorrow}&channel=email"),
            vec![refs[1].clone()],
        ),
        ("q=charlie".to_owned(), vec![refs[2].clone()]),
    ] {
        let (n, found) = list(&mut browser, &query).await;
        assert_eq!(sorted(found), sorted(expected.clone()), "{query}");
        assert_eq!(n as usize, expected.len(), "{query}");
    }
    // The filter form shows colleagues and the words of every choice.
    let page = browser.get("/ufficio/pratiche?channel=email").await;
    for words in [
        "<option value=\"email\" selected>e-mail</option>",
        "<option value=\"cude\">Contrassegno disabili (CUDE)</option>",
        "<option value=\"me\">A me</option>",
        "<option value=\"none\">A nessuno</option>",
        "<option value=\"op2\">",
        "type=\"date\" id=\"received_from\"",
        &format!("aria-label=\"Seleziona la pratica {}\"", refs[1]),
    ] {
        assert!(page.body.contains(words), "{words}: {}", page.body);
    }
    assert!(
        !page.body.contains("<option value=\"vigile\">"),
        "the police do not work cases"
    );

    // Sorting by the column headers, with aria-sort, surviving the pager and the export.
    let (_, by_ref) = list(&mut browser, "sort=reference&dir=asc").await;
    assert_eq!(by_ref, sorted(refs.clone()));
    let (_, by_ref_desc) = list(&mut browser, "sort=reference&dir=desc").await;
    assert_eq!(
        by_ref_desc,
        sorted(refs.clone()).into_iter().rev().collect::<Vec<_>>()
    );
    let (_, by_subject) = list(&mut browser, "sort=subject&dir=asc").await;
    assert_eq!(
        by_subject,
        [&refs[1], &refs[0], &refs[2], &refs[3]].map(String::clone)
    );
    let (_, by_type) = list(&mut browser, "sort=case_type").await;
    assert_eq!(by_type[0], refs[2], "cude first");
    let page = browser
        .get("/ufficio/pratiche?channel=counter&sort=reference&dir=asc")
        .await;
    let body = plain(&page.body);
    assert!(
        body.contains(
            "<th scope=\"col\" aria-sort=\"ascending\"><a href=\"/ufficio/pratiche?channel=counter&sort=reference&dir=desc\">"
        ),
        "{body}"
    );
    assert!(body.contains(
        "aria-sort=\"none\"><a href=\"/ufficio/pratiche?channel=counter&sort=due&dir=asc\">"
    ));
    assert!(body.contains("/ufficio/pratiche?channel=counter&sort=reference&dir=asc&format=csv"));
    let csv = browser
        .get("/ufficio/pratiche?channel=counter&sort=reference&dir=desc&format=csv")
        .await;
    let csv_refs: Vec<&str> = csv
        .body
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .collect();
    let mut counter = vec![refs[0].as_str(), refs[2].as_str(), refs[3].as_str()];
    counter.sort_unstable();
    counter.reverse();
    assert_eq!(csv_refs, counter);

    // A saved view keeps only known keys, opens as a link and belongs to its user.
    let saved = browser
        .post_form(
            "/ufficio/viste",
            &[
                ("csrf", &csrf),
                ("name", "Posta elettronica"),
                (
                    "query",
                    "channel=email&evil=%3Cx%3E&sort=reference&dir=desc",
                ),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(
        saved.location,
        "/ufficio/pratiche?channel=email&sort=reference&dir=desc"
    );
    let forged = browser
        .post_form(
            "/ufficio/viste",
            &[
                ("csrf", "forged"),
                ("name", "Falsa"),
                ("query", "open=true"),
            ],
        )
        .await;
    assert_eq!(forged.status, 200);
    let page = browser.get("/ufficio/pratiche").await;
    assert!(
        plain(&page.body).contains(
            "<a href=\"/ufficio/pratiche?channel=email&sort=reference&dir=desc\">Posta elettronica</a>"
        ),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("Falsa"),
        "no view without the CSRF token"
    );
    let id = page
        .body
        .split("/ufficio/viste/")
        .nth(1)
        .and_then(|s| s.split_once('/'))
        .map(|(id, _)| id.to_owned())
        .unwrap();
    let (mut other, other_csrf) = Browser::signed_in(&install, "op2", op2_password).await;
    let theirs = other.get("/ufficio/pratiche").await;
    assert!(
        !theirs.body.contains("Posta elettronica"),
        "not shown to another user"
    );
    let refused = other
        .post_form(
            &format!("/ufficio/viste/{id}/elimina"),
            &[("csrf", &other_csrf)],
        )
        .await;
    assert_eq!(refused.status, 404);
    assert!(
        browser
            .get("/ufficio/pratiche")
            .await
            .body
            .contains("Posta elettronica"),
        "another user cannot delete it"
    );
    let deleted = browser
        .post_form(&format!("/ufficio/viste/{id}/elimina"), &[("csrf", &csrf)])
        .await;
    assert_eq!(deleted.status, 303);
    assert!(
        !browser
            .get("/ufficio/pratiche")
            .await
            .body
            .contains("Posta elettronica")
    );

    // Bulk assignment: the open cases go to op2, the withdrawn one is named as not assigned.
    let answer = browser
        .post_form(
            "/ufficio/assegna",
            &[
                ("csrf", &csrf),
                ("back", "open=true&sort=reference"),
                ("user", "op2"),
                ("case", &refs[1]),
                ("case", &refs[2]),
                ("case", &refs[3]),
            ],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer.body.contains(&format!(
            "Pratiche assegnate: 2 ({}, {}).",
            refs[1], refs[2]
        )),
        "{}",
        answer.body
    );
    assert!(
        answer
            .body
            .contains("Queste pratiche non sono state assegnate:")
            && answer.body.contains(&format!("<li>{}: ", refs[3])),
        "{}",
        answer.body
    );
    assert_eq!(
        refs_of(&answer.body),
        sorted(refs[..3].to_vec()),
        "the list it came from"
    );
    for reference in &refs[1..3] {
        let (_, _, case) = install
            .call("GET", &format!("/api/v1/cases/{reference}"), Some(op), None)
            .await;
        assert_eq!(case["assignee"], "op2", "{case}");
        let journaled = case["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "assigned" && e["detail"]["user"] == "op2")
            .count();
        assert_eq!(journaled, 1, "assignment journaled on {reference}: {case}");
    }
    let (_, _, closed) = install
        .call("GET", &format!("/api/v1/cases/{}", refs[3]), Some(op), None)
        .await;
    assert!(closed["assignee"].is_null(), "{closed}");
    let (n, _) = list(&mut browser, "assignee=op2").await;
    assert_eq!(n, 2);
    // "Prendi" on one row: that case alone, to whoever pressed it (no colleague chosen,
    // any ticked box ignored); a case already theirs offers no button.
    let taken = browser
        .post_form(
            "/ufficio/assegna",
            &[
                ("csrf", &csrf),
                ("back", "open=true&sort=reference"),
                ("case", &refs[2]),
                ("take", &refs[0]),
            ],
        )
        .await;
    // Done: a redirect back to the list, which says so (a reload assigns nothing again).
    assert_eq!(taken.status, 303, "{}", taken.body);
    assert_eq!(
        taken.location,
        format!(
            "/ufficio/pratiche?open=true&sort=reference&assegnate={}",
            refs[0]
        )
    );
    let taken = browser.get(&taken.location).await;
    assert_eq!(taken.status, 200, "{}", taken.body);
    assert!(
        taken
            .body
            .contains(&format!("Pratiche assegnate: 1 ({}).", refs[0])),
        "{}",
        taken.body
    );
    let (_, _, case) = install
        .call("GET", &format!("/api/v1/cases/{}", refs[0]), Some(op), None)
        .await;
    assert_eq!(case["assignee"], "op", "{case}");
    let (_, _, other) = install
        .call("GET", &format!("/api/v1/cases/{}", refs[2]), Some(op), None)
        .await;
    assert_eq!(other["assignee"], "op2", "the ticked box is ignored");
    assert!(
        !taken
            .body
            .contains(&format!("name=\"take\" value=\"{}\"", refs[0]))
            && taken
                .body
                .contains(&format!("name=\"take\" value=\"{}\"", refs[1])),
        "{}",
        taken.body
    );
    // Without the CSRF token nothing is assigned.
    let forged = browser
        .post_form(
            "/ufficio/assegna",
            &[("csrf", "forged"), ("user", "op"), ("case", &refs[1])],
        )
        .await;
    assert_eq!(forged.status, 200);
    let (_, _, case) = install
        .call("GET", &format!("/api/v1/cases/{}", refs[1]), Some(op), None)
        .await;
    assert_eq!(case["assignee"], "op2");
    // The police read permits, not cases: they assign nothing.
    let (mut vigile, vigile_csrf) = Browser::signed_in(&install, "vigile", police_password).await;
    let answer = vigile
        .post_form(
            "/ufficio/assegna",
            &[("csrf", &vigile_csrf), ("user", "op"), ("case", &refs[1])],
        )
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(answer.location, "/ufficio/permessi");
    let (_, _, case) = install
        .call("GET", &format!("/api/v1/cases/{}", refs[1]), Some(op), None)
        .await;
    assert_eq!(case["assignee"], "op2", "the police did not assign it");
}

/// The cards of the demo office's home page: each card's number is the total of the list
/// its link opens.
#[tokio::test]
async fn the_home_cards_count_what_their_lists_show_on_the_demo_office() {
    let mut install = Install::new("").await;
    let log = install.start(&["--demo"]).await;
    let (login, password) = log
        .lines()
        .map(str::split_whitespace)
        .filter_map(|mut w| {
            let login = w.next()?;
            let words: Vec<&str> = w.collect();
            let at = words.iter().position(|x| *x == "password")?;
            Some((login.to_owned(), words.get(at + 1)?.to_string()))
        })
        .find(|(login, _)| login.starts_with("operatore"))
        .unwrap_or_else(|| panic!("no operator login printed: {log}"));
    let (mut browser, _) = Browser::signed_in(&install, &login, &password).await;
    let home = browser.get("/ufficio").await;
    assert_eq!(home.status, 200);
    let cards: Vec<(String, i64)> = home
        .body
        .split("<a class=\"queue")
        .skip(1)
        .filter_map(|s| {
            let href = s.split_once("href=\"")?.1.split_once('"')?.0;
            let count = s.split_once("<span class=\"count\">")?.1.split_once('<')?.0;
            Some((plain(href), count.parse().ok()?))
        })
        .filter(|(href, _)| href.starts_with("/ufficio/pratiche"))
        .collect();
    assert!(cards.len() >= 11, "{cards:?}");
    assert!(
        cards.iter().any(|(_, n)| *n > 0),
        "the demo fills some queues"
    );
    for (href, count) in cards {
        let page = browser.get(&href).await;
        assert_eq!(page.status, 200, "{href}");
        assert_eq!(total_of(&page.body), count, "{href}");
    }
    install.stop();
}
