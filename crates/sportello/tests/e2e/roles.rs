//! The role matrix, endpoint by endpoint, through the real API: every role is tried on
//! every endpoint and must get 403 exactly when its role lacks the permission.

use serde_json::{Value, json};
use sportello_domain::roles::{Permission, Role};

use crate::harness::{Install, case_body, file_form};

/// An endpoint of the API, how to call it and the permission it needs.
type Endpoint = (&'static str, String, Option<Value>, Permission);

/// A started installation with one user per role (`u-{role}`) and what the endpoints act
/// on: a case with a document, a case opened by an e-mail message, and a contested fine.
struct Matrix {
    install: Install,
    tokens: Vec<(Role, String)>,
    reference: String,
    doc_id: String,
    message_case: String,
    message: i64,
    seg: String,
    contest: Value,
}

fn form() -> reqwest::multipart::Form {
    file_form(b"ciao".to_vec(), "n.txt")
}

impl Matrix {
    async fn new() -> Matrix {
        let mut install = Install::new("").await;
        let tokens: Vec<(Role, String)> = Role::ALL
            .iter()
            .map(|r| (*r, install.user(&format!("u-{}", r.as_str()), r.as_str())))
            .collect();
        let admin = tokens
            .iter()
            .find(|(r, _)| *r == Role::Admin)
            .map(|(_, t)| t.clone())
            .unwrap();
        install.start(&[]).await;
        let reference = install.create_case(&admin).await;
        let resp = install.upload(&reference, Some(&admin), form()).await;
        let doc_id = resp.json::<serde_json::Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();

        // A message arriving by e-mail, for the message endpoints.
        let eml = install.dir.path().join("request.eml");
        std::fs::write(
            &eml,
            "From: anna@example.it\r\nSubject: Richiesta\r\nMessage-ID: <roles@example.it>\r\n\r\nCiao\r\n",
        )
        .unwrap();
        let out = install.cli(&["ingest", eml.to_str().unwrap()]);
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let message_case = line["case"].as_str().unwrap().to_owned();
        let (_, _, messages) = install
            .call(
                "GET",
                &format!("/api/v1/cases/{message_case}/messages"),
                Some(&admin),
                None,
            )
            .await;
        let message = messages[0]["id"].as_i64().unwrap();
        // A contested fine, for the remedy endpoints.
        let contest = json!({"plate": "AB123CD", "fine": "V-1",
            "transits": [{"transit_id": "T1", "gate": "V01", "timestamp": "2026-03-02T09:00:00+01:00"}]});
        let (status, _, receipt) = install
            .call(
                "POST",
                "/api/v1/transits/contest",
                Some(&admin),
                Some(contest.clone()),
            )
            .await;
        assert_eq!(status, 201, "{receipt}");
        let seg = receipt["reference"].as_str().unwrap().to_owned();
        Matrix {
            install,
            tokens,
            reference,
            doc_id,
            message_case,
            message,
            seg,
            contest,
        }
    }

    /// Every JSON endpoint that needs a token.
    fn json_endpoints(&self) -> Vec<Endpoint> {
        let Matrix {
            reference,
            doc_id,
            message_case,
            message,
            seg,
            contest,
            ..
        } = self;
        let contest = contest.clone();
        vec![
            (
                "POST",
                "/api/v1/cases".to_owned(),
                Some(case_body()),
                Permission::CreateCase,
            ),
            (
                "GET",
                "/api/v1/cases".to_owned(),
                None,
                Permission::ReadCase,
            ),
            (
                "GET",
                format!("/api/v1/cases/{reference}"),
                None,
                Permission::ReadCase,
            ),
            (
                "POST",
                format!("/api/v1/cases/{reference}/actions"),
                Some(json!({"action": "assign", "user": "u-operator"})),
                Permission::ActOnCase,
            ),
            (
                "GET",
                format!("/api/v1/documents/{doc_id}"),
                None,
                Permission::ReadDocument,
            ),
            (
                "GET",
                format!("/api/v1/cases/{message_case}/messages"),
                None,
                Permission::ReadCase,
            ),
            (
                "GET",
                "/api/v1/search?q=richiesta".to_owned(),
                None,
                Permission::ReadCase,
            ),
            (
                "GET",
                "/api/v1/reports/throughput?group_by=channel".to_owned(),
                None,
                Permission::ReadReports,
            ),
            (
                "GET",
                "/api/v1/reports/sla?format=csv".to_owned(),
                None,
                Permission::ReadReports,
            ),
            (
                "GET",
                format!("/api/v1/documents/{doc_id}/info"),
                None,
                Permission::ReadDocument,
            ),
            (
                "GET",
                format!("/api/v1/cases/{reference}/cover-sheet"),
                None,
                Permission::ReadCase,
            ),
            (
                "GET",
                format!("/api/v1/documents/{doc_id}/text"),
                None,
                Permission::ReadDocument,
            ),
            (
                "POST",
                format!("/api/v1/documents/{doc_id}/text"),
                None,
                Permission::ActOnCase,
            ),
            (
                "GET",
                "/api/v1/permits/verify?plate=AB123CD&gate=V04".to_owned(),
                None,
                Permission::VerifyPermit,
            ),
            (
                "GET",
                "/api/v1/whitelist?format=json".to_owned(),
                None,
                Permission::ReadWhitelist,
            ),
            (
                "GET",
                "/api/v1/transits/checks".to_owned(),
                None,
                Permission::CheckTransits,
            ),
            (
                "PATCH",
                format!("/api/v1/cases/{reference}/fields"),
                Some(json!({"documents": ["documento_identita"]})),
                Permission::ActOnCase,
            ),
            (
                "POST",
                "/api/v1/transits/contest".to_owned(),
                Some(contest),
                Permission::ContestTransit,
            ),
            (
                "GET",
                format!("/api/v1/cases/{seg}/evidence"),
                None,
                Permission::ReadCase,
            ),
            // Each allowed role splits the message off into yet another case.
            (
                "POST",
                format!("/api/v1/messages/{message}/split"),
                Some(json!({"note": "richiesta separata"})),
                Permission::ActOnCase,
            ),
        ]
    }
}

#[tokio::test]
async fn every_endpoint_enforces_the_matrix() {
    let matrix = Matrix::new().await;
    let (install, tokens) = (&matrix.install, &matrix.tokens);
    let json_endpoints = matrix.json_endpoints();
    let mut checked = 0;
    for (method, path, body, permission) in &json_endpoints {
        let (status, _, _) = install.call(method, path, None, body.clone()).await;
        assert_eq!(status, 401, "{method} {path} without a token");
        let (status, _, _) = install
            .call(method, path, Some("spt_forged"), body.clone())
            .await;
        assert_eq!(status, 401, "{method} {path} with a forged token");
        for (role, token) in tokens {
            let (status, _, answer) = install.call(method, path, Some(token), body.clone()).await;
            if role.can(*permission) {
                assert!(
                    (200..300).contains(&status),
                    "{role:?} {method} {path} -> {status} {answer}"
                );
            } else {
                assert_eq!(status, 403, "{role:?} {method} {path} -> {status} {answer}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 20 * Role::ALL.len());
}

#[tokio::test]
async fn uploads_enforce_the_matrix_and_public_endpoints_need_no_token() {
    let Matrix {
        install,
        tokens,
        reference,
        ..
    } = Matrix::new().await;
    let mut checked = 0;
    let resp = install.upload(&reference, None, form()).await;
    assert_eq!(resp.status(), 401);
    for (role, token) in &tokens {
        let status = install
            .upload(&reference, Some(token), form())
            .await
            .status()
            .as_u16();
        if role.can(Permission::UploadDocument) {
            assert_eq!(status, 201, "{role:?} upload");
        } else {
            assert_eq!(status, 403, "{role:?} upload");
        }
        checked += 1;
    }
    assert_eq!(checked, Role::ALL.len());
    // Public endpoints need no token; the metrics do (issue 16 §5).
    for path in ["/healthz", "/readyz", "/api/openapi.json"] {
        let (status, _, _) = install.call("GET", path, None, None).await;
        assert_eq!(status, 200, "{path}");
    }
    let (status, _, _) = install.call("GET", "/metrics", None, None).await;
    assert_eq!(status, 401, "/metrics without a token");
}

#[tokio::test]
async fn guessing_tokens_is_rate_limited() {
    let mut install = Install::new("").await;
    let op = install.user("op1", "operator");
    let other = install.user("op2", "operator");
    install.start(&[]).await;
    let (status, _, _) = install.call("GET", "/api/v1/cases", Some(&op), None).await;
    assert_eq!(status, 200);
    let mut statuses = Vec::new();
    for i in 0..40 {
        let (status, _, _) = install
            .call("GET", "/api/v1/cases", Some(&format!("spt_guess{i}")), None)
            .await;
        statuses.push(status);
    }
    assert!(statuses[..30].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[30..].iter().all(|s| *s == 429), "{statuses:?}");
    let (status, ctype, problem) = install
        .call("GET", "/api/v1/cases", Some(&other), None)
        .await;
    assert_eq!(
        status, 429,
        "a blocked address cannot try tokens for a minute"
    );
    assert!(ctype.starts_with("application/problem+json") && problem["status"] == 429);
    let (status, _, _) = install.call("GET", "/api/v1/cases", Some(&op), None).await;
    assert_eq!(status, 200, "a token already proven valid keeps working");
}
