//! Search through the real API: documents are read in the background (text layer or OCR,
//! with real tesseract), found by their words with highlighted snippets, filtered; the
//! reading queue survives a killed server.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Install, file_form, tools_present};

/// A scanned-looking page with `lines` of text.
fn page(dir: &Path, name: &str, lines: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut cmd = std::process::Command::new("convert");
    cmd.args([
        "-size",
        "1240x1754",
        "xc:white",
        "-font",
        "DejaVu-Sans",
        "-pointsize",
        "36",
        "-fill",
        "black",
    ]);
    for (i, line) in lines.iter().enumerate() {
        cmd.arg("-annotate")
            .arg(format!("+120+{}", 200 + 80 * i))
            .arg(line);
    }
    assert!(cmd.arg(&out).status().unwrap().success());
    out
}

async fn search(install: &Install, token: &str, query: &str) -> Value {
    let (status, _, body) = install
        .call("GET", &format!("/api/v1/search?{query}"), Some(token), None)
        .await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

/// Waits until the search finds something (documents are read in the background).
async fn until_found(install: &Install, token: &str, query: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let body = search(install, token, query).await;
        if body["items"].as_array().is_some_and(|i| !i.is_empty()) || Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Uploads a file to a case and returns the document's id.
async fn upload(
    install: &Install,
    token: &str,
    reference: &str,
    bytes: Vec<u8>,
    name: &str,
) -> String {
    let resp = install
        .upload(reference, Some(token), file_form(bytes, name))
        .await;
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A started installation with an operator and a police user, and two cases: the first
/// with a text file about a lease ("locazione"), the second with a scanned page (PNG) whose
/// key word is "ornitorinco".
struct TwoDocuments {
    install: Install,
    op: String,
    police: String,
    first: String,
    second: String,
    text_doc: String,
    scan_doc: String,
    /// The scanned page's image.
    scan: PathBuf,
}

impl TwoDocuments {
    async fn new() -> TwoDocuments {
        let mut install = Install::new("").await;
        let op = install.user("op", "operator");
        let police = install.user("vigile", "police");
        install.start(&[]).await;
        let first = install.create_case(&op).await;
        let second = install.create_case(&op).await;
        let text_doc = upload(
            &install,
            &op,
            &first,
            "Contratto di locazione: l'inquilino è il signor Pangolini."
                .as_bytes()
                .to_vec(),
            "contratto.txt",
        )
        .await;
        let scan = page(
            install.dir.path(),
            "scan.png",
            &["Carta di circolazione", "Parola chiave: ornitorinco"],
        );
        let scan_doc = upload(
            &install,
            &op,
            &second,
            std::fs::read(&scan).unwrap(),
            "libretto.png",
        )
        .await;
        TwoDocuments {
            install,
            op,
            police,
            first,
            second,
            text_doc,
            scan_doc,
            scan,
        }
    }
}

#[tokio::test]
async fn documents_are_read_in_the_background_and_found() {
    if !tools_present(&["tesseract", "pdftotext", "convert"]) {
        return;
    }
    let TwoDocuments {
        install,
        op,
        first,
        second,
        text_doc,
        scan_doc,
        ..
    } = TwoDocuments::new().await;

    // Found by a form of the word, with the word marked in the snippet.
    let found = until_found(&install, &op, "q=locazioni", Duration::from_secs(30)).await;
    let hit = &found["items"][0];
    assert_eq!(hit["kind"], "document", "{found}");
    assert_eq!(hit["reference"], first.as_str());
    assert_eq!(hit["document_id"], text_doc.as_str());
    assert!(
        hit["snippet"]
            .as_str()
            .unwrap()
            .contains("<mark>locazione</mark>"),
        "{hit}"
    );
    // Read by OCR.
    let found = until_found(&install, &op, "q=ornitorinco", Duration::from_secs(90)).await;
    assert_eq!(found["items"][0]["reference"], second.as_str(), "{found}");
    assert_eq!(found["items"][0]["document_id"], scan_doc.as_str());
    let (status, _, text) = install
        .call(
            "GET",
            &format!("/api/v1/documents/{scan_doc}/text"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(text["status"], "done");
    assert_eq!(text["pages"][0]["method"], "ocr");
    // The case shows where reading stands.
    let (_, _, case) = install
        .call("GET", &format!("/api/v1/cases/{second}"), Some(&op), None)
        .await;
    assert_eq!(case["documents"][0]["text_status"], "done", "{case}");

    // Filters and paging.
    let none = search(&install, &op, "q=ornitorinco&status=closed").await;
    assert_eq!(none["items"].as_array().unwrap().len(), 0);
    let typed = search(
        &install,
        &op,
        "q=ornitorinco&case_type=ztl_permit&from=2020-01-01",
    )
    .await;
    assert_eq!(typed["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn documents_are_viewed_inline_as_images_or_pdf_or_sent_to_their_download() {
    if !tools_present(&["tesseract", "pdftotext", "convert"]) {
        return;
    }
    let TwoDocuments {
        install,
        op,
        police,
        second,
        text_doc,
        scan_doc,
        scan,
        ..
    } = TwoDocuments::new().await;
    // Viewed inline: images as they are (sandboxed), TIFF faxes as PDF, text sent to its download.
    let view = |id: String, token: String| {
        let install = &install;
        async move {
            install
                .client
                .get(format!("{}/api/v1/documents/{id}/view", install.base()))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let png = view(scan_doc.clone(), op.clone()).await;
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    assert!(
        png.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline")
    );
    assert!(
        png.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    // (The client follows the 303 with the same token: it lands on the download.)
    let text_view = view(text_doc.clone(), op.clone()).await;
    assert_eq!(text_view.status(), 200);
    assert_eq!(
        text_view.url().path(),
        format!("/api/v1/documents/{text_doc}"),
        "sent to the download"
    );
    assert_eq!(view(scan_doc.clone(), police.clone()).await.status(), 403);
    let tiff = install.dir.path().join("fax.tif");
    assert!(
        std::process::Command::new("convert")
            .arg(&scan)
            .args(["-monochrome", "-compress", "Group4"])
            .arg(&tiff)
            .status()
            .unwrap()
            .success()
    );
    let tiff_doc = upload(
        &install,
        &op,
        &second,
        std::fs::read(&tiff).unwrap(),
        "fax.tif",
    )
    .await;
    let pdf = view(tiff_doc.clone(), op.clone()).await;
    assert_eq!(pdf.status(), 200);
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF"));
    // Its facts: hash, size, case, where to view and download it.
    let (status, _, info) = install
        .call(
            "GET",
            &format!("/api/v1/documents/{tiff_doc}/info"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["case"], second.as_str());
    assert_eq!(info["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(
        info["download_url"],
        format!("/api/v1/documents/{tiff_doc}")
    );
}

#[tokio::test]
async fn bad_search_input_is_a_clear_422_and_the_police_may_not_search_case_files() {
    let (install, users) =
        crate::harness::started_with(&[("op", "operator"), ("vigile", "police")]).await;
    let (op, police) = (&users[0].1, &users[1].1);
    // Bad input is a clear 422; the police may not search case files.
    for bad in [
        "q=",
        "q=x&from=ieri",
        "q=x&status=boh",
        "q=x&case_type=nope",
        "q=x&per_page=1000",
    ] {
        let (status, ctype, body) = install
            .call("GET", &format!("/api/v1/search?{bad}"), Some(op), None)
            .await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(ctype.starts_with("application/problem+json"));
    }
    let (status, _, _) = install
        .call("GET", "/api/v1/search?q=ornitorinco", Some(police), None)
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn the_reading_queue_survives_a_killed_server() {
    if !tools_present(&["tesseract", "convert"]) {
        return;
    }
    // The first server's OCR hangs: it is killed while reading.
    let slow = {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("slow-ocr.sh");
        std::fs::write(&script, "#!/bin/sh\nsleep 20\n").unwrap();
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(&script)
            .status()
            .unwrap();
        (dir, script)
    };
    let mut install = Install::new(&format!("[ocr]\ncommand = \"{}\"\n", slow.1.display())).await;
    let op = install.user("op", "operator");
    install.start(&[]).await;
    let reference = install.create_case(&op).await;
    let scan = page(
        install.dir.path(),
        "scan.png",
        &["Parola chiave: pangolino"],
    );
    let resp = install
        .upload(
            &reference,
            Some(&op),
            file_form(std::fs::read(&scan).unwrap(), "scan.png"),
        )
        .await;
    let doc = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, _, text) = install
            .call(
                "GET",
                &format!("/api/v1/documents/{doc}/text"),
                Some(&op),
                None,
            )
            .await;
        if text["status"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "never claimed: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    install.kill();
    // Restarted with a working OCR: the document is read (at once on SQLite, after the
    // dead claim lapses on PostgreSQL).
    let config = std::fs::read_to_string(&install.config).unwrap();
    std::fs::write(
        &install.config,
        config.replace(&slow.1.display().to_string(), "tesseract"),
    )
    .unwrap();
    install.start(&[]).await;
    let found = until_found(&install, &op, "q=pangolino", Duration::from_secs(150)).await;
    assert_eq!(found["items"][0]["document_id"], doc.as_str(), "{found}");
}
