//! Crash safety: the server is killed (SIGKILL) while clients create cases; after a
//! restart the register verifies and references and protocol numbers have no gaps.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::harness::{Install, case_body};

#[tokio::test]
async fn killed_mid_creation_leaves_no_gap_and_no_half_case() {
    let mut install = Install::new("").await;
    let op = install.user("op1", "operator");
    install.start(&[]).await;
    let created = Arc::new(AtomicUsize::new(0));
    let base = install.base();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (client, base, op, created) = (
            install.client.clone(),
            base.clone(),
            op.clone(),
            created.clone(),
        );
        clients.push(tokio::spawn(async move {
            loop {
                let sent = client
                    .post(format!("{base}/api/v1/cases"))
                    .bearer_auth(&op)
                    .json(&case_body())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 201 => {
                        created.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => break, // the server is gone
                }
            }
        }));
    }
    // Let some cases through, then pull the plug in the middle of the traffic.
    while created.load(Ordering::SeqCst) < 60 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    install.kill();
    for c in clients {
        c.await.unwrap();
    }
    let acknowledged = created.load(Ordering::SeqCst);

    let out = install.cli(&["register", "verify"]);
    assert!(
        out.status.success(),
        "register after the crash: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    install.start(&[]).await;
    let (status, _, list) = install
        .call("GET", "/api/v1/cases?per_page=200", Some(&op), None)
        .await;
    assert_eq!(status, 200);
    let total = list["total"].as_i64().unwrap() as usize;
    assert!(
        total >= acknowledged,
        "every acknowledged case survived ({total} < {acknowledged})"
    );
    let items = list["items"].as_array().unwrap();
    let mut seqs: Vec<u64> = items
        .iter()
        .map(|c| {
            c["reference"]
                .as_str()
                .unwrap()
                .rsplit('-')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let mut protocols: Vec<u64> = items
        .iter()
        .map(|c| {
            c["protocol"]
                .as_str()
                .expect("every case has its protocol number")
                .rsplit('/')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    seqs.sort();
    protocols.sort();
    let expected: Vec<u64> = (1..=total as u64).collect();
    assert_eq!(seqs, expected, "references without gaps");
    assert_eq!(protocols, expected, "protocol numbers without gaps");
    for c in items {
        let (_, _, full) = install
            .call(
                "GET",
                &format!("/api/v1/cases/{}", c["reference"].as_str().unwrap()),
                Some(&op),
                None,
            )
            .await;
        assert_eq!(
            full["timeline"][0]["kind"], "created",
            "no case without its journal"
        );
    }
    let (status, _, next) = install
        .call("POST", "/api/v1/cases", Some(&op), Some(case_body()))
        .await;
    assert_eq!(status, 201);
    assert!(
        next["reference"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{:06}", total + 1))
    );
}
