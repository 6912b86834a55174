//! The e-mail intake with the shared fixtures: `sportello ingest` one file at a time in
//! order, then the same corpus through the MTA pipe endpoint on a fresh installation.

use serde_json::Value;

use crate::harness::Install;

const CONFIG: &str = "[fax]\ngateway_senders = [\"fax-gateway@comune.example.it\"]\n";

/// The shared intake fixtures and their expected outcomes, in order.
pub fn corpus() -> Option<(std::path::PathBuf, Vec<Value>)> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/intake");
    let expected = std::fs::read_to_string(dir.join("expected.jsonl")).ok()?;
    Some((
        dir,
        expected
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    ))
}

pub fn tesseract_present() -> bool {
    let present = std::process::Command::new("tesseract")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        assert!(
            !sportello_store::testing::services_required(),
            "SPORTELLO_REQUIRE_SERVICES=1 but tesseract is missing"
        );
        eprintln!("skipped: tesseract is not installed (the fax fixtures need OCR)");
    }
    present
}

fn check(e: &Value, got: &Value) {
    let file = e["file"].as_str().unwrap();
    assert_eq!(got["outcome"], e["outcome"], "{file}: {got}");
    assert_eq!(got["case"], e["case"], "{file}: {got}");
    assert_eq!(got["channel"], e["channel"], "{file}: {got}");
    for flag in e["flags_include"].as_array().into_iter().flatten() {
        assert!(
            got["flags"].as_array().unwrap().contains(flag),
            "{file}: {got}"
        );
    }
    let registered = matches!(e["outcome"].as_str(), Some("new_case" | "attached"));
    assert_eq!(got["protocol"].is_string(), registered, "{file}: {got}");
}

#[tokio::test]
async fn fixtures_through_the_command_line() {
    let Some((dir, expected)) = corpus() else {
        eprintln!("skipped: ../shared/fixtures/intake not present");
        return;
    };
    if !tesseract_present() {
        return;
    }
    let mut install = Install::new(CONFIG).await;
    for e in &expected {
        let path = dir.join(e["file"].as_str().unwrap());
        let out = install.cli(&["ingest", path.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with('{')).collect();
        assert_eq!(lines.len(), 1, "{stdout}");
        check(e, &serde_json::from_str(lines[0]).unwrap());
    }
    // What the office sees: documents attached, HTML never served with scripts, the register intact.
    let op = install.user("op1", "operator");
    install.start(&[]).await;
    let (_, _, first) = install
        .call("GET", "/api/v1/cases/ZTL-2026-000001", Some(&op), None)
        .await;
    let names: Vec<&str> = first["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["filename"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"carta_circolazione.pdf") && names.contains(&"carta_identita.jpg"),
        "{names:?}"
    );
    assert_eq!(
        first["citizen"]["fiscal_code"], "RSSMRA80A01H501U",
        "fiscal code found in the text"
    );
    let (_, _, html_case) = install
        .call("GET", "/api/v1/cases/ZTL-2026-000006", Some(&op), None)
        .await;
    let served = html_case.to_string().to_lowercase();
    assert!(
        !served.contains("<script") && !served.contains("onerror="),
        "{served}"
    );
    install.stop();
    let out = install.cli(&["register", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A missing file is reported and the rest still processed: exit 3.
    let out = install.cli(&[
        "ingest",
        "/no/such.eml",
        dir.join("01_new_request_email.eml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"duplicate\""));
}

#[tokio::test]
async fn fixtures_through_the_mta_pipe() {
    let Some((dir, expected)) = corpus() else {
        eprintln!("skipped: ../shared/fixtures/intake not present");
        return;
    };
    if !tesseract_present() {
        return;
    }
    // With the test provider's CA as trust anchor, the PEC envelope's chain is verified too.
    let ca = dir.join("../pec/pec-test-ca.pem");
    let mut install = Install::new(&format!(
        "{CONFIG}[pec]\ntrust_anchors = \"{}\"\n",
        ca.display()
    ))
    .await;
    let mta = install.user("mta", "integration");
    let op = install.user("op1", "operator");
    install.start(&[]).await;
    for e in &expected {
        let raw = std::fs::read(dir.join(e["file"].as_str().unwrap())).unwrap();
        let resp = install
            .client
            .post(format!("{}/api/v1/inbound/email", install.base()))
            .bearer_auth(&mta)
            .header("content-type", "message/rfc822")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let got: Value = resp.json().await.unwrap();
        check(e, &got);
        if e["channel"] == "pec" {
            assert!(
                !got["flags"]
                    .as_array()
                    .unwrap()
                    .contains(&Value::from("pec_signature_invalid")),
                "{got}"
            );
        }
    }
    let resp = install
        .client
        .post(format!("{}/api/v1/inbound/email", install.base()))
        .bearer_auth(&op)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "operators do not deliver mail");
}
