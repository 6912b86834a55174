//! Documents on an S3-compatible server (CI starts one). Needs
//! `SPORTELLO_TEST_S3_ENDPOINT`, `SPORTELLO_TEST_S3_BUCKET` and the `AWS_*` credentials.

use crate::harness::{Install, file_form};

#[tokio::test]
async fn documents_on_s3() {
    let (Ok(endpoint), Ok(bucket)) = (
        std::env::var("SPORTELLO_TEST_S3_ENDPOINT"),
        std::env::var("SPORTELLO_TEST_S3_BUCKET"),
    ) else {
        assert!(
            !sportello_store::testing::services_required(),
            "SPORTELLO_REQUIRE_SERVICES=1 but no S3 server (SPORTELLO_TEST_S3_ENDPOINT, SPORTELLO_TEST_S3_BUCKET)"
        );
        eprintln!(
            "skipped: no S3-compatible server configured (set SPORTELLO_TEST_S3_ENDPOINT and SPORTELLO_TEST_S3_BUCKET)"
        );
        return;
    };
    let prefix = format!("test-{:016x}", rand::random::<u64>());
    let mut install = Install::new(&format!(
        "[documents]\nurl = \"s3://{bucket}/{prefix}\"\nendpoint = \"{endpoint}\"\n"
    ))
    .await;
    let op = install.user("op1", "operator");
    install.start(&[]).await;
    let reference = install.create_case(&op).await;
    let bytes = b"%PDF-1.4\n% su S3\n".to_vec();
    let resp = install
        .upload(&reference, Some(&op), file_form(bytes.clone(), "s3.pdf"))
        .await;
    assert_eq!(resp.status(), 201);
    let doc: serde_json::Value = resp.json().await.unwrap();
    let got = install.document(&op, doc["id"].as_str().unwrap()).await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), bytes);
    assert!(
        !install.data_dir().join("documents").exists(),
        "nothing written to the local disk"
    );
    install.stop();
    let out = install.cli(&["documents", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
