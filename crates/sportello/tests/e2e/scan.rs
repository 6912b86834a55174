//! The scanner folder end to end, as an office would use it: cover sheets printed from
//! the API, rendered and degraded like a real scan (150 dpi, slight rotation, salt-and-pepper
//! noise, 1-bit Group 4 TIFF), dropped into `scan.watch_dir`; each part lands in its case,
//! registered, read by OCR and found by search; stray pages open an `unsorted_scan` case;
//! an unreadable file is filed, not lost; files still being written are left alone.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Install, tools_present};

fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap();
    assert!(status.success(), "{cmd:?}");
}

/// A text page as a scanner would see it.
fn text_page(out: &Path, lines: &[&str]) {
    let mut cmd = Command::new("convert");
    cmd.args([
        "-size",
        "1700x2200",
        "xc:white",
        "-font",
        "DejaVu-Sans",
        "-pointsize",
        "40",
        "-fill",
        "black",
    ]);
    for (i, line) in lines.iter().enumerate() {
        cmd.arg("-annotate")
            .arg(format!("+150+{}", 200 + 90 * i))
            .arg(line);
    }
    cmd.args([
        "-background",
        "white",
        "-rotate",
        "0.8",
        "+repage",
        "-attenuate",
        "0.2",
        "+noise",
        "Impulse",
        "-monochrome",
    ]);
    run(cmd.arg(out));
}

async fn refs_found(install: &Install, token: &str, word: &str) -> Vec<String> {
    let (status, _, body) = install
        .call(
            "GET",
            &format!("/api/v1/search?q={word}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reference"].as_str().unwrap().to_owned())
        .collect()
}

/// Every case with its flags and its documents' text, to explain a failure.
async fn dump(install: &Install, token: &str) -> String {
    let mut out = String::new();
    let (_, _, list) = install
        .call("GET", "/api/v1/cases?per_page=100", Some(token), None)
        .await;
    for c in list["items"].as_array().into_iter().flatten() {
        let r = c["reference"].as_str().unwrap_or_default();
        let (_, _, case) = install
            .call("GET", &format!("/api/v1/cases/{r}"), Some(token), None)
            .await;
        out.push_str(&format!("\n{r} {} {}", c["flags"], case["documents"]));
        for d in case["documents"].as_array().into_iter().flatten() {
            let id = d["id"].as_str().unwrap_or_default();
            let (_, _, t) = install
                .call(
                    "GET",
                    &format!("/api/v1/documents/{id}/text"),
                    Some(token),
                    None,
                )
                .await;
            out.push_str(&format!("\n    {t}"));
        }
    }
    for entry in std::fs::read_dir(install.dir.path()).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("serve-") {
            let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
            for line in log
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("scan"))
            {
                out.push_str(&format!("\n  log: {line}"));
            }
        }
    }
    out
}

/// The cover sheets of `refs`, printed, scanned at 150 dpi, slightly rotated and noisy,
/// as PNG files in `work`.
async fn scanned_cover_sheets(
    install: &Install,
    token: &str,
    refs: &[String],
    work: &Path,
) -> Vec<std::path::PathBuf> {
    let mut covers = Vec::new();
    for r in refs {
        let resp = install
            .client
            .get(format!("{}/api/v1/cases/{r}/cover-sheet", install.base()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/pdf");
        let pdf = work.join(format!("cover-{r}.pdf"));
        std::fs::write(&pdf, resp.bytes().await.unwrap()).unwrap();
        let png = work.join(format!("cover-{r}"));
        run(Command::new("pdftoppm")
            .args(["-r", "150", "-png", "-singlefile"])
            .arg(&pdf)
            .arg(&png));
        let noisy = work.join(format!("cover-{r}-noisy.png"));
        run(Command::new("convert")
            .arg(png.with_extension("png"))
            .args([
                "-background",
                "white",
                "-rotate",
                "0.7",
                "+repage",
                "-attenuate",
                "0.15",
                "+noise",
                "Impulse",
                "-monochrome",
            ])
            .arg(&noisy));
        covers.push(noisy);
    }
    covers
}

/// A batch of six pages: a stray page, cover 1, two pages, cover 2, one page; the words
/// "ornitorinco" after cover 1 and "pangolino" after cover 2.
fn batch_of_six_pages(work: &Path, covers: &[std::path::PathBuf]) -> std::path::PathBuf {
    let p = |n: &str| work.join(n);
    text_page(
        &p("p0.png"),
        &["Pagina vagante senza copertina", "Parola chiave: armadillo"],
    );
    text_page(
        &p("p1.png"),
        &["Carta di circolazione", "Parola chiave: ornitorinco"],
    );
    text_page(&p("p2.png"), &["Documento di identita"]);
    text_page(
        &p("p3.png"),
        &["Contratto di locazione", "Parola chiave: pangolino"],
    );
    let batch = work.join("batch.tif");
    run(Command::new("convert")
        .arg(p("p0.png"))
        .arg(&covers[0])
        .arg(p("p1.png"))
        .arg(p("p2.png"))
        .arg(&covers[1])
        .arg(p("p3.png"))
        .args(["-compress", "Group4"])
        .arg(&batch));
    batch
}

/// Each part of the batch is registered in the protocol and linked to its case by its
/// cover sheet.
async fn assert_each_part_is_registered_by_its_cover(install: &Install, op: &str, refs: &[String]) {
    // Each part is registered and linked by its cover sheet.
    for r in refs {
        let (_, _, messages) = install
            .call(
                "GET",
                &format!("/api/v1/cases/{r}/messages"),
                Some(op),
                None,
            )
            .await;
        let scans: Vec<&Value> = messages
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["channel"] == "scan")
            .collect();
        assert_eq!(scans.len(), 1, "{messages}");
        assert_eq!(scans[0]["rule"], "cover_sheet");
        assert!(scans[0]["protocol"].is_string(), "{messages}");
    }
    let (_, _, case) = install
        .call("GET", &format!("/api/v1/cases/{}", refs[0]), Some(op), None)
        .await;
    assert_eq!(case["documents"].as_array().unwrap().len(), 1, "{case}");
    assert!(
        case["documents"][0]["filename"]
            .as_str()
            .unwrap()
            .ends_with(".pdf")
    );
    let part = case["documents"][0]["id"].as_str().unwrap();
    let (_, _, info) = install
        .call(
            "GET",
            &format!("/api/v1/documents/{part}/info"),
            Some(op),
            None,
        )
        .await;
    assert_eq!(info["protocol"].as_array().unwrap().len(), 1, "{info}");
    assert_eq!(info["protocol"][0]["direction"], "in");
}

/// The stray page and the broken file each opened a case for triage.
async fn assert_stray_page_and_broken_file_open_cases_for_triage(install: &Install, op: &str) {
    let (_, _, list) = install
        .call("GET", "/api/v1/cases?per_page=100", Some(op), None)
        .await;
    let unsorted: Vec<&Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["flags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "unsorted_scan")
        })
        .collect();
    assert_eq!(unsorted.len(), 2, "{list}");
    assert!(
        unsorted.iter().any(|c| c["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "scan_unreadable")),
        "{list}"
    );
    let stray = unsorted
        .iter()
        .find(|c| {
            !c["flags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "scan_unreadable")
        })
        .unwrap();
    assert_eq!(stray["channel"], "scan");
}

#[tokio::test]
async fn a_scanned_batch_is_split_at_its_cover_sheets_and_found_by_ocr() {
    if !tools_present(&["convert", "pdftoppm", "tesseract", "pdftotext"]) {
        return;
    }
    let watch = tempfile::tempdir().unwrap();
    let mut install = Install::new(&format!(
        "[scan]\nwatch_dir = \"{}\"\npoll_seconds = 1\n",
        watch.path().display()
    ))
    .await;
    let op = install.user("op", "operator");
    install.start(&[]).await;
    let refs = [
        install.create_case(&op).await,
        install.create_case(&op).await,
    ];
    let work = tempfile::tempdir().unwrap();
    let covers = scanned_cover_sheets(&install, &op, &refs, work.path()).await;
    let batch = batch_of_six_pages(work.path(), &covers);
    // A batch being written is left alone until it is renamed into place.
    let partial = watch.path().join("batch-0001.tif.part");
    std::fs::copy(&batch, &partial).unwrap();
    // A broken file next to it.
    std::fs::write(watch.path().join("rotto.pdf"), b"%PDF-1.4\n troncato").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(partial.exists(), "a .part file is never taken");
    std::fs::rename(&partial, watch.path().join("batch-0001.tif")).unwrap();

    // Generous: OCR of every page on a loaded two-core machine.
    let deadline = Instant::now() + Duration::from_secs(400);
    while Instant::now() < deadline
        && !(refs_found(&install, &op, "ornitorinco")
            .await
            .contains(&refs[0])
            && refs_found(&install, &op, "pangolino")
                .await
                .contains(&refs[1]))
    {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let state = dump(&install, &op).await;
    assert_eq!(
        refs_found(&install, &op, "ornitorinco").await,
        vec![refs[0].clone()],
        "page after cover 1; {state}"
    );
    assert_eq!(
        refs_found(&install, &op, "pangolino").await,
        vec![refs[1].clone()],
        "page after cover 2"
    );

    assert_each_part_is_registered_by_its_cover(&install, &op, &refs).await;
    assert_stray_page_and_broken_file_open_cases_for_triage(&install, &op).await;
    // Processed files leave the folder for processed/.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && watch.path().join("batch-0001.tif").exists() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(watch.path().join("processed/batch-0001.tif").exists());
    assert!(watch.path().join("processed/rotto.pdf").exists());
    assert!(!watch.path().join("rotto.pdf").exists());
}

/// A scanner share that is missing at start (or goes away) is reported, not fatal: the
/// server runs, and batches are taken as soon as the folder is back.
#[tokio::test]
async fn a_missing_scanner_folder_is_waited_for() {
    if !tools_present(&["convert"]) {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let watch = base.path().join("scanner");
    let mut install = Install::new(&format!(
        "[scan]\nwatch_dir = \"{}\"\npoll_seconds = 1\n",
        watch.display()
    ))
    .await;
    let op = install.user("op", "operator");
    install.start(&[]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, _, _) = install.call("GET", "/healthz", None, None).await;
    assert_eq!(status, 200);
    std::fs::create_dir(&watch).unwrap();
    let page = base.path().join("page.png");
    text_page(&page, &["Lettera senza copertina"]);
    std::fs::copy(&page, watch.join("lettera.png")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, _, list) = install
            .call("GET", "/api/v1/cases?per_page=10", Some(&op), None)
            .await;
        let unsorted = list["items"].as_array().into_iter().flatten().any(|c| {
            c["channel"] == "scan"
                && c["flags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f == "unsorted_scan")
        });
        if unsorted {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the batch was never taken: {list}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(watch.join("processed/lettera.png").exists());
}
