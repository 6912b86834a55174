//! The messaging webhooks and the PBX, with the shared fixtures, through the real server.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::harness::Install;

const CONFIG: &str = "[webhooks.whatsapp]\nverify_token = \"test-verify-token\"\napp_secret = \"test-app-secret\"\n\
                      [webhooks.telegram]\nsecret_token = \"test-telegram-secret\"\n";

fn fixtures() -> Option<std::path::PathBuf> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/webhooks");
    dir.join("expected.jsonl").exists().then_some(dir)
}

#[tokio::test]
async fn fixtures_produce_their_expected_outcomes() {
    let Some(dir) = fixtures() else {
        eprintln!("skipped: ../shared/fixtures/webhooks not present");
        return;
    };
    let mut install = Install::new(CONFIG).await;
    let op = install.user("op1", "operator");
    let pbx = install.user("pbx", "integration");
    install.start(&[]).await;
    let expected = std::fs::read_to_string(dir.join("expected.jsonl")).unwrap();
    let mut checked = 0;
    for line in expected.lines().filter(|l| !l.trim().is_empty()) {
        let e: Value = serde_json::from_str(line).unwrap();
        let endpoint = e["endpoint"].as_str().unwrap();
        let (method, path) = endpoint.split_once(' ').unwrap();
        let url = format!("{}{}", install.base(), path);
        let mut req = install.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            &url,
        );
        if let Some(headers) = e["headers"].as_object() {
            for (k, v) in headers {
                req = req.header(k, v.as_str().unwrap());
            }
        }
        if path.ends_with("/phone") {
            req = req.bearer_auth(&pbx);
        }
        if let Some(file) = e["file"].as_str() {
            req = req
                .header("content-type", "application/json")
                .body(std::fs::read(dir.join(file)).unwrap());
        }
        let (_, _, before) = install.call("GET", "/api/v1/cases", Some(&op), None).await;
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        if let Some(want) = e["status"].as_u64() {
            assert_eq!(u64::from(status), want, "{line}: {text}");
            if let Some(body) = e["body"].as_str() {
                assert_eq!(text.trim(), body, "{line}");
            }
            if want == 401 {
                // The refusal names what failed: a signature or a secret, not an API token.
                assert!(
                    !text.contains("API token")
                        && (text.contains("signature") || text.contains("token")),
                    "{line}: {text}"
                );
                let (_, _, after) = install.call("GET", "/api/v1/cases", Some(&op), None).await;
                assert_eq!(
                    before["total"], after["total"],
                    "a forged delivery stores nothing"
                );
            }
        } else {
            assert_eq!(status, 200, "{line}: {text}");
            let body: Value = serde_json::from_str(&text).unwrap();
            let result = &body["results"][0];
            assert_eq!(result["outcome"], e["outcome"], "{line}: {text}");
            assert_eq!(result["case"], e["case"], "{line}: {text}");
            assert_eq!(result["channel"], e["channel"], "{line}: {text}");
            for flag in e["flags_include"].as_array().into_iter().flatten() {
                assert!(
                    result["flags"].as_array().unwrap().contains(flag),
                    "{line}: {text}"
                );
            }
            let registered = matches!(e["outcome"].as_str(), Some("new_case" | "attached"));
            assert_eq!(
                result["protocol"].is_string(),
                registered,
                "protocol only when registered: {text}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 8);
    // The call was logged on the case's timeline, and the reply by reference attached there too.
    let (_, _, case) = install
        .call("GET", "/api/v1/cases/ZTL-2026-000001", Some(&op), None)
        .await;
    let kinds: Vec<&str> = case["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"call"), "{kinds:?}");
    assert!(kinds.contains(&"message_received"), "{kinds:?}");
    assert_eq!(case["channel"], "whatsapp");
}

#[tokio::test]
async fn a_reply_resumes_the_clock_and_the_caller_is_found() {
    let mut install = Install::new(CONFIG).await;
    let op = install.user("op1", "operator");
    install.start(&[]).await;
    let body = |text: &str, id: &str| {
        serde_json::json!({"entry": [{"changes": [{"field": "messages", "value": {
            "contacts": [{"profile": {"name": "Rita Serra"}, "wa_id": "393400000001"}],
            "messages": [{"from": "393400000001", "id": id, "timestamp": "1764150000", "type": "text", "text": {"body": text}}]}}]}]})
        .to_string()
    };
    let post = |payload: String| {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"test-app-secret").unwrap();
        mac.update(payload.as_bytes());
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        install
            .client
            .post(format!("{}/api/v1/inbound/whatsapp", install.base()))
            .header("X-Hub-Signature-256", sig)
            .header("content-type", "application/json")
            .body(payload)
            .send()
    };
    let first: Value = post(body("Vorrei il permesso carico e scarico", "wamid.A"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reference = first["results"][0]["case"].as_str().unwrap().to_owned();
    let actions = format!("/api/v1/cases/{reference}/actions");
    install
        .call(
            "POST",
            &actions,
            Some(&op),
            Some(serde_json::json!({"action": "start_review"})),
        )
        .await;
    let (_, _, waiting) = install
        .call(
            "POST",
            &actions,
            Some(&op),
            Some(serde_json::json!({"action": "request_integration", "missing": ["libretto"]})),
        )
        .await;
    assert_eq!(waiting["sla"]["state"], "paused");
    let reply: Value = post(body(
        &format!("Ecco il libretto\nper la pratica {reference}"),
        "wamid.B",
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(reply["results"][0]["outcome"], "attached");
    assert_eq!(reply["results"][0]["rule"], "reference_in_text");
    let (_, _, case) = install
        .call(
            "GET",
            &format!("/api/v1/cases/{reference}"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(
        (case["status"].as_str(), case["sla"]["state"].as_str()),
        (Some("in_review"), Some("running"))
    );
    // The screen pop finds the citizen by the number, whatever its format.
    let (status, _, card) = install
        .call(
            "GET",
            "/api/v1/cti/lookup?number=%2B39%20340%20000%200001",
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, 200, "{card}");
    assert_eq!(card["citizen"]["name"], "Rita Serra");
    assert_eq!(card["open_cases"][0], reference);
    let (status, _, _) = install
        .call(
            "GET",
            "/api/v1/cti/lookup?number=0000000000",
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, 404);
}
