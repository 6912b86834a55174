//! Mailbox polling against a real Dovecot: the fixtures in order, IMAPS with a verified
//! certificate, a changed UIDVALIDITY, two instances sharing one database (one polls, the
//! other takes over when it dies), and SIGKILLs in the middle of 2,000 messages.

use std::time::{Duration, Instant};

use sqlx::AnyPool;
use sqlx::Row;
use sqlx::any::AnyPoolOptions;

use crate::dovecot::Dovecot;
use crate::harness::Install;

/// One inbound message as the database recorded it.
#[derive(Debug, Clone)]
struct Row_ {
    source: String,
    message_id: Option<String>,
    outcome: String,
    channel: String,
    case: Option<String>,
    protocol: Option<String>,
}

async fn pool(install: &Install) -> AnyPool {
    sqlx::any::install_default_drivers();
    AnyPoolOptions::new()
        .max_connections(1)
        .connect(&install.database_url)
        .await
        .unwrap()
}

async fn inbound(pool: &AnyPool) -> Vec<Row_> {
    sqlx::query(
        "SELECT m.source, m.message_id, m.outcome, m.channel, c.reference, m.protocol \
         FROM inbound_messages m LEFT JOIN cases c ON c.id = m.case_id ORDER BY m.id",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default()
    .iter()
    .map(|r| Row_ {
        source: r.get(0),
        message_id: r.get(1),
        outcome: r.get(2),
        channel: r.get(3),
        case: r.get(4),
        protocol: r.get(5),
    })
    .collect()
}

/// Waits until the database holds `n` inbound messages and the server has none unseen.
async fn wait_for(
    pool: &AnyPool,
    dovecot: &Dovecot,
    n: usize,
    within: Duration,
    what: &str,
) -> Vec<Row_> {
    let deadline = Instant::now() + within;
    loop {
        let rows = inbound(pool).await;
        if rows.len() >= n && dovecot.unseen().await.is_empty() {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {n} messages after {within:?}; unseen {:?}",
            rows.len(),
            dovecot.unseen().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A plain request from a citizen; `reply_to` makes it an answer to an earlier one.
fn message(i: usize, tag: &str, reply_to: Option<usize>) -> Vec<u8> {
    let threading = reply_to
        .map(|r| format!("In-Reply-To: <m{r}.{tag}@cittadini.example.it>\r\n"))
        .unwrap_or_default();
    format!(
        "From: Cittadino {i} <cittadino{i}@cittadini.example.it>\r\n\
         To: protocollo@comune.example.it\r\n\
         Subject: {}permesso ZTL numero {i}\r\n\
         Message-ID: <m{i}.{tag}@cittadini.example.it>\r\n{threading}\
         Date: Thu, 26 Nov 2026 10:00:00 +0100\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n\
         Buongiorno, chiedo il permesso per la mia auto. Messaggio {i}.\r\n",
        if reply_to.is_some() { "Re: " } else { "" }
    )
    .into_bytes()
}

fn mailbox_config(url: &str, extra: &str) -> String {
    format!(
        "[fax]\ngateway_senders = [\"fax-gateway@comune.example.it\"]\n\
         [[mailbox]]\nname = \"protocollo\"\nchannel = \"email\"\nimap_url = \"{url}\"\npoll_seconds = 1\n{extra}"
    )
}

#[tokio::test]
async fn the_fixtures_arrive_over_imap_in_order_and_are_marked_seen_only_once_done() {
    let Some((dir, expected)) = crate::intake::corpus() else {
        eprintln!("skipped: ../shared/fixtures/intake not present");
        return;
    };
    if !crate::intake::tesseract_present() {
        return;
    }
    let Some(dovecot) = Dovecot::start().await else {
        return;
    };
    let messages: Vec<Vec<u8>> = expected
        .iter()
        .map(|e| std::fs::read(dir.join(e["file"].as_str().unwrap())).unwrap())
        .collect();
    // The first half as a clerk left it: already opened in a mail client (\Seen), which
    // must not hide it from Sportello.
    dovecot.deliver(&messages[..6], true).await;
    dovecot.deliver(&messages[6..], false).await;
    let ca = dir.join("../pec/pec-test-ca.pem");
    let mut install = Install::new(&mailbox_config(
        &dovecot.url(),
        &format!("[pec]\ntrust_anchors = \"{}\"\n", ca.display()),
    ))
    .await;
    let out = install.start(&[]).await;
    assert!(out.contains("Mailbox 'protocollo'"), "{out}");
    let pool = pool(&install).await;
    let recorded = expected
        .iter()
        .filter(|e| e["outcome"] != "duplicate")
        .count();
    let rows = wait_for(
        &pool,
        &dovecot,
        recorded,
        Duration::from_secs(180),
        "fixtures",
    )
    .await;
    let mut rows_iter = rows.iter();
    for (uid, e) in (1..).zip(&expected) {
        let file = e["file"].as_str().unwrap();
        if e["outcome"] == "duplicate" {
            continue; // recognised, nothing recorded twice
        }
        let row = rows_iter.next().unwrap();
        assert!(
            row.source.ends_with(&format!(";UID={uid}")),
            "{file}: {row:?}"
        );
        assert!(
            row.source.starts_with("imap://protocollo@127.0.0.1:"),
            "no password in sources: {row:?}"
        );
        assert_eq!(
            row.outcome,
            e["outcome"].as_str().unwrap(),
            "{file}: {row:?}"
        );
        assert_eq!(
            row.channel,
            e["channel"].as_str().unwrap(),
            "{file}: {row:?}"
        );
        assert_eq!(row.case.as_deref(), e["case"].as_str(), "{file}: {row:?}");
        let registered = matches!(e["outcome"].as_str(), Some("new_case" | "attached"));
        assert_eq!(row.protocol.is_some(), registered, "{file}: {row:?}");
    }
    assert_eq!(rows.len(), recorded);

    // A later answer quoting the reference joins its case.
    let reply = b"From: mario.rossi@example.it\r\nTo: protocollo@comune.example.it\r\n\
Subject: R: I: Re: pratica ZTL-2026-000001\r\nMessage-ID: <later@example.it>\r\n\r\nEcco il libretto.\r\n";
    dovecot.deliver(&[reply.to_vec()], false).await;
    let rows = wait_for(
        &pool,
        &dovecot,
        recorded + 1,
        Duration::from_secs(60),
        "reply",
    )
    .await;
    let last = rows.last().unwrap();
    assert_eq!(
        (last.outcome.as_str(), last.case.as_deref()),
        ("attached", Some("ZTL-2026-000001"))
    );

    // A restart reads nothing twice: the cursor is where it was left.
    install.stop();
    install.start(&[]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(inbound(&pool).await.len(), recorded + 1);
    let last_uid: i64 =
        sqlx::query("SELECT last_uid FROM mailbox_state WHERE mailbox = 'protocollo'")
            .fetch_one(&pool)
            .await
            .unwrap()
            .get(0);
    assert_eq!(last_uid, messages.len() as i64 + 1);
    install.stop();
    let out = install.cli(&["register", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A message that waited in the mailbox is received when our IMAP server received it (its
/// INTERNALDATE), not when it was read, and not when its sender's Date says: the case's
/// legal term runs from that day.
#[tokio::test]
async fn a_mailbox_message_is_received_when_the_server_received_it() {
    use chrono::{DateTime, Duration as Days, Utc};
    use sportello_domain::clock::{Clock, SystemClock};
    let Some(dovecot) = Dovecot::start().await else {
        return;
    };
    // Eleven days before the server's own clock (the binary runs on the system clock).
    let arrived =
        DateTime::from_timestamp((SystemClock.now() - Days::days(11)).timestamp(), 0).unwrap();
    let mut session = dovecot.session().await;
    session
        .append(
            "INBOX",
            None,
            Some(&arrived.format("\"%d-%b-%Y %H:%M:%S +0000\"").to_string()),
            message(1, "waited", None),
        )
        .await
        .unwrap();
    let _ = session.logout().await;
    let mut install = Install::new(&mailbox_config(&dovecot.url(), "")).await;
    let op = install.user("op1", "operator");
    install.start(&[]).await;
    let pool = pool(&install).await;
    let rows = wait_for(&pool, &dovecot, 1, Duration::from_secs(60), "waited").await;
    let reference = rows[0].case.clone().unwrap();
    let (status, _, case) = install
        .call(
            "GET",
            &format!("/api/v1/cases/{reference}"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, 200, "{case}");
    let instant = |v: &serde_json::Value| {
        DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc)
    };
    assert_eq!(instant(&case["received_at"]), arrived, "{case}");
    assert!(
        instant(&case["ingested_at"]) >= arrived + Days::days(11),
        "{case}"
    );
    let received_on =
        chrono::NaiveDate::parse_from_str(&case["received_at"].as_str().unwrap()[..10], "%Y-%m-%d")
            .unwrap();
    let term = u32::try_from(case["sla"]["term_days"].as_u64().unwrap()).unwrap();
    let due = sportello_domain::sla::due_date(
        &sportello_domain::calendar::HolidayCalendar::new(Vec::new()),
        received_on,
        term,
        0,
    );
    assert_eq!(case["due_at"], due.to_string(), "{case}");
    let (_, _, messages) = install
        .call(
            "GET",
            &format!("/api/v1/cases/{reference}/messages"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(instant(&messages[0]["received_at"]), arrived, "{messages}");
}

#[tokio::test]
async fn imaps_with_a_verified_certificate_and_a_changed_uidvalidity() {
    let Some(dovecot) = Dovecot::start().await else {
        return;
    };
    let tag = "tls";
    dovecot
        .deliver(
            &(1..=3).map(|i| message(i, tag, None)).collect::<Vec<_>>(),
            false,
        )
        .await;
    let mut install = Install::new(&mailbox_config(&dovecot.url_tls(), "")).await;
    let ca = dovecot.ca_file();
    install
        .start_with_env(&[], &[("SSL_CERT_FILE", ca.to_str().unwrap())])
        .await;
    let pool = pool(&install).await;
    let rows = wait_for(&pool, &dovecot, 3, Duration::from_secs(60), "over TLS").await;
    assert!(
        rows.iter()
            .all(|r| r.source.starts_with("imaps://") && r.outcome == "new_case")
    );

    // The server renumbers the folder: everything is read again, recognised, and only the
    // new message makes a new case.
    let out = std::process::Command::new("doveadm")
        .arg("-c")
        .arg(dovecot.config_file())
        .args([
            "mailbox",
            "update",
            "-u",
            crate::dovecot::USER,
            "--uid-validity",
            "4242",
            "INBOX",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dovecot.deliver(&[message(4, tag, Some(1))], false).await;
    let rows = wait_for(
        &pool,
        &dovecot,
        4,
        Duration::from_secs(60),
        "after UIDVALIDITY",
    )
    .await;
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(rows[3].outcome, "attached", "{rows:?}");
    assert_eq!(rows[3].case, rows[0].case);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = sqlx::query("SELECT uidvalidity, last_uid FROM mailbox_state")
            .fetch_one(&pool)
            .await
            .unwrap();
        let (v, last): (Option<i64>, i64) = (row.get(0), row.get(1));
        if v == Some(4242) && last == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "cursor {v:?}/{last}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(inbound(&pool).await.len(), 4, "nothing recorded twice");
}

#[tokio::test]
async fn two_instances_poll_a_mailbox_one_at_a_time_and_the_survivor_takes_over() {
    let Some(dovecot) = Dovecot::start().await else {
        return;
    };
    let install = Install::new(&mailbox_config(&dovecot.url(), "lease_seconds = 3\n")).await;
    if install.database_url.starts_with("sqlite") {
        eprintln!(
            "skipped: several instances share a PostgreSQL database; a second serve on one SQLite file is refused"
        );
        return;
    }
    let mut a = install.start_instance(&[]).await;
    let mut b = install.start_instance(&[]).await;
    let tag = "two";
    dovecot
        .deliver(
            &(1..=5).map(|i| message(i, tag, None)).collect::<Vec<_>>(),
            false,
        )
        .await;
    let pool = pool(&install).await;
    wait_for(&pool, &dovecot, 5, Duration::from_secs(60), "first five").await;
    const POLLING: &str = "polling this mailbox";
    let (a_polls, b_polls) = (a.output().contains(POLLING), b.output().contains(POLLING));
    assert!(
        a_polls ^ b_polls,
        "exactly one instance polls:\nA: {}\nB: {}",
        a.output(),
        b.output()
    );
    let (holder, survivor) = if a_polls {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    holder.kill();
    dovecot
        .deliver(
            &(6..=10).map(|i| message(i, tag, None)).collect::<Vec<_>>(),
            false,
        )
        .await;
    let rows = wait_for(
        &pool,
        &dovecot,
        10,
        Duration::from_secs(60),
        "after the take-over",
    )
    .await;
    assert!(survivor.output().contains(POLLING), "{}", survivor.output());
    assert_eq!(rows.len(), 10, "{rows:?}");
    let mut cases: Vec<_> = rows.iter().filter_map(|r| r.case.clone()).collect();
    cases.sort();
    cases.dedup();
    assert_eq!(cases.len(), 10, "one case per request: {rows:?}");
}

/// Run by `.ci/run` (`--ignored`): 2,000 messages, the server SIGKILLed at random moments.
#[tokio::test]
#[ignore = "slow: run by .ci/run with --ignored"]
async fn killed_again_and_again_while_reading_2000_messages_loses_and_doubles_nothing() {
    let Some(dovecot) = Dovecot::start().await else {
        return;
    };
    const N: usize = 2000;
    let tag = "crash";
    // One in four answers an earlier message (threaded by In-Reply-To).
    let messages: Vec<Vec<u8>> = (1..=N)
        .map(|i| message(i, tag, i.is_multiple_of(4).then(|| i - 1)))
        .collect();
    dovecot.deliver(&messages, false).await;
    // A short lease, so that each restart takes over from its killed predecessor quickly.
    let mut install = Install::new(&mailbox_config(&dovecot.url(), "lease_seconds = 3\n")).await;
    // The database exists once the server has run once (and been killed at once).
    install.start(&[]).await;
    install.kill();
    let pool = pool(&install).await;
    let mut kills = 0;
    let mut previous = 0;
    while kills < 6 {
        install.start(&[]).await;
        // Kill it while it works: once it has made progress, at a random moment after.
        let deadline = Instant::now() + Duration::from_secs(60);
        while inbound(&pool).await.len() <= previous && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let wait = Duration::from_millis(rand::random_range(0..1500));
        tokio::time::sleep(wait).await;
        install.kill();
        kills += 1;
        let now = inbound(&pool).await.len();
        eprintln!("kill {kills} after {wait:?}: {now} messages recorded");
        assert!(now >= previous);
        previous = now;
        if now == N {
            break;
        }
    }
    install.start(&[]).await;
    let rows = wait_for(
        &pool,
        &dovecot,
        N,
        Duration::from_secs(600),
        "after the crashes",
    )
    .await;
    install.stop();

    assert_eq!(rows.len(), N, "every message recorded once");
    let mut ids: Vec<_> = rows.iter().map(|r| r.message_id.clone().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), N, "no message recorded twice");
    for row in &rows {
        let i: usize = row.message_id.as_deref().unwrap()[1..]
            .split('.')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let expected = if i.is_multiple_of(4) {
            "attached"
        } else {
            "new_case"
        };
        assert_eq!(row.outcome, expected, "{row:?}");
    }
    let case_of: std::collections::HashMap<_, _> = rows
        .iter()
        .map(|r| (r.message_id.clone().unwrap(), r.case.clone().unwrap()))
        .collect();
    for i in (4..=N).step_by(4) {
        assert_eq!(
            case_of[&format!("m{i}.{tag}@cittadini.example.it")],
            case_of[&format!("m{}.{tag}@cittadini.example.it", i - 1)],
            "answer {i} joined its request's case"
        );
    }
    let cases: i64 = sqlx::query("SELECT COUNT(*) FROM cases")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        cases as usize,
        N - N / 4,
        "one case per request, none per answer"
    );
    let mut protocols: Vec<u64> = rows
        .iter()
        .map(|r| {
            r.protocol
                .as_deref()
                .unwrap()
                .rsplit(['/', '-'])
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    protocols.sort_unstable();
    assert_eq!(
        protocols,
        (1..=N as u64).collect::<Vec<_>>(),
        "register gap-free"
    );
    let out = install.cli(&["register", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
