//! `sportello register daily`: the day's registrations (DPR 445/2000 art. 53 c. 2) as CSV
//! or PDF, with the SHA-256 of the file so it can be sent to conservation unaltered.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, FixedOffset, NaiveDate};
use sha2::{Digest, Sha256};
use sportello_config::Config;
use sportello_domain::calendar::ROME;
use sportello_domain::clock::{Clock, SystemClock};
use sportello_domain::register::RegisterEntry;
use sportello_store::cases::rome_rfc3339;

use crate::app::{UsageError, open_store};
use sportello_paper::table as pdf;

/// Writes the daily register of `date`.
pub async fn run(config: &Config, date: &str, output: Option<&Path>) -> anyhow::Result<ExitCode> {
    let day = NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map_err(|_| UsageError(format!("--date: '{date}' is not a date YYYY-MM-DD")))?;
    let format = match output
        .and_then(|p| p.extension())
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
    {
        None if output.is_none() => "csv".to_owned(),
        Some(ext) if ext == "csv" || ext == "pdf" => ext,
        _ => return Err(UsageError("-o: the file name must end in .csv or .pdf".into()).into()),
    };
    let store = open_store(config).await?;
    let entries = store.register_entries_on(day).await?;
    store.close().await;
    let bytes = if format == "pdf" {
        let made_at = SystemClock.now().with_timezone(&ROME).fixed_offset();
        let author = format!("{} - {}", config.office.authority, config.office.name);
        to_pdf(day, &entries, &author, made_at)?
    } else {
        to_csv(&entries).into_bytes()
    };
    let digest = hex::encode(Sha256::digest(&bytes));
    match output {
        Some(path) => {
            std::fs::write(path, &bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let sidecar = format!("{}.sha256", path.display());
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            std::fs::write(&sidecar, format!("{digest}  {name}\n"))
                .with_context(|| format!("cannot write {sidecar}"))?;
            println!("{digest}  {}", path.display());
            eprintln!(
                "{} registrations on {day}; SHA-256 also written to {sidecar}",
                entries.len()
            );
        }
        None => {
            print!("{}", String::from_utf8_lossy(&bytes));
            eprintln!("sha256: {digest}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// CSV with the fields of each registration and its hash.
pub fn to_csv(entries: &[(RegisterEntry, String)]) -> String {
    let mut out = String::from(
        "number,registered_at,direction,correspondent,subject,document_sha256,case_reference,prev_hash,entry_hash\r\n",
    );
    for (e, hash) in entries {
        let fields = [
            e.number.to_string(),
            rome_rfc3339(e.registered_at),
            e.direction.as_str().to_owned(),
            e.correspondent.clone(),
            e.subject.clone(),
            e.document_sha256.clone(),
            e.case_reference.clone().unwrap_or_default(),
            e.prev_hash.clone(),
            hash.clone(),
        ];
        out.push_str(
            &fields
                .iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    out
}

/// The register as a PDF/A-2b document (fonts embedded, sRGB output intent), made at
/// `made_at` by the office `author`, for conservation.
pub fn to_pdf(
    day: NaiveDate,
    entries: &[(RegisterEntry, String)],
    author: &str,
    made_at: DateTime<FixedOffset>,
) -> anyhow::Result<Vec<u8>> {
    // Left edges of the columns, in points, wide enough for a full protocol number, case
    // reference and half of the document hash in DejaVu Sans at 8 points.
    const X: [f32; 7] = [40.0, 108.0, 138.0, 160.0, 330.0, 550.0, 634.0];
    let header: pdf::Row = [
        "Numero",
        "Ora",
        "E/U",
        "Mittente / destinatario",
        "Oggetto",
        "Pratica",
        "Impronta SHA-256",
    ]
    .iter()
    .zip(X)
    .map(|(label, x)| (x, (*label).to_owned(), 40))
    .collect();
    let rows: Vec<pdf::Row> = entries
        .iter()
        .map(|(e, _)| {
            let time = rome_rfc3339(e.registered_at)
                .get(11..16)
                .unwrap_or_default()
                .to_owned();
            let direction = if e.direction.as_str() == "in" {
                "E"
            } else {
                "U"
            };
            let hash = e.document_sha256.get(..32).unwrap_or(&e.document_sha256);
            vec![
                (X[0], e.number.to_string(), 14),
                (X[1], time, 8),
                (X[2], direction.to_owned(), 4),
                (X[3], e.correspondent.clone(), 60),
                (X[4], e.subject.clone(), 80),
                (X[5], e.case_reference.clone().unwrap_or_default(), 24),
                (X[6], hash.to_owned(), 40),
            ]
        })
        .collect();
    let last = entries.last().map(|(_, h)| h.as_str()).unwrap_or("-");
    let subtitle = format!(
        "Giorno {} - {} registrazioni\nHash dell'ultima registrazione della catena: {last}",
        day.format("%d/%m/%Y"),
        entries.len()
    );
    Ok(pdf::render_archival(
        "Registro giornaliero di protocollo",
        &subtitle,
        &header,
        &rows,
        pdf::A4_LANDSCAPE,
        author,
        made_at,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use sportello_domain::register::{Direction, GENESIS_HASH, ProtocolNumber};
    use std::process::Command;

    /// A day of registrations, long enough for two pages, with accents and long fields.
    fn entries() -> Vec<(RegisterEntry, String)> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=40u64)
            .map(|seq| {
                let entry = RegisterEntry {
                    number: ProtocolNumber { year: 2026, seq },
                    registered_at: Utc.with_ymd_and_hms(2026, 11, 26, 8, 0, 0).unwrap()
                        + chrono::Duration::minutes(seq as i64 * 7),
                    direction: if seq % 3 == 0 {
                        Direction::Out
                    } else {
                        Direction::In
                    },
                    correspondent: format!("Niccolò Àlvaro Città di Castello n. {seq}"),
                    subject: "Richiesta di permesso ZTL per residenti con autorimessa nel centro \
                              storico, più allegati"
                        .to_owned(),
                    document_sha256: format!("{seq:064x}"),
                    case_reference: Some(format!("ZTL-2026-{seq:06}")),
                    prev_hash: prev.clone(),
                };
                let hash = entry.hash();
                prev = hash.clone();
                (entry, hash)
            })
            .collect()
    }

    /// Runs a poppler tool on `pdf`; `None` (the check is skipped, with a notice) when
    /// poppler-utils is not installed, unless `SPORTELLO_REQUIRE_SERVICES=1`.
    fn poppler(tool: &str, args: &[&str], pdf: &Path) -> Option<String> {
        // pdftotext writes next to the file unless told '-' (standard output).
        let to_stdout: &[&str] = if tool == "pdftotext" { &["-"] } else { &[] };
        match Command::new(tool)
            .args(args)
            .arg(pdf)
            .args(to_stdout)
            .output()
        {
            Ok(out) => {
                assert!(
                    out.status.success(),
                    "{tool}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                Some(String::from_utf8_lossy(&out.stdout).into_owned())
            }
            Err(e) if std::env::var("SPORTELLO_REQUIRE_SERVICES").as_deref() != Ok("1") => {
                println!("skipped: {tool} not available ({e}; Debian package poppler-utils)");
                None
            }
            Err(e) => panic!("SPORTELLO_REQUIRE_SERVICES=1 but {tool} cannot run: {e}"),
        }
    }

    #[test]
    fn the_daily_register_is_pdfa_2b_with_embedded_fonts_and_extractable_text() {
        let made_at = chrono::DateTime::parse_from_rfc3339("2026-11-27T07:45:00+01:00").unwrap();
        let entries = entries();
        let bytes = to_pdf(
            NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(),
            &entries,
            "Comune di Esempio - Ufficio permessi ZTL",
            made_at,
        )
        .unwrap();

        // What the file says about itself, read from its bytes (krilla writes the XMP
        // packet and the catalog uncompressed).
        let raw = String::from_utf8_lossy(&bytes);
        assert!(
            raw.contains("<pdfaid:part>2</pdfaid:part>"),
            "no PDF/A part"
        );
        assert!(raw.contains("<pdfaid:conformance>B</pdfaid:conformance>"));
        assert!(raw.contains("/OutputIntents"), "no output intent");
        assert!(raw.contains("/GTS_PDFA1") && raw.contains("/DestOutputProfile"));
        assert!(raw.contains("/ID["), "no file ID");
        assert!(!raw.contains("/Encrypt"), "encrypted");
        assert!(!raw.contains("/SMask"), "transparency");
        assert!(!raw.contains("/Helvetica"), "a font that is not embedded");
        // The subset keeps the register small.
        assert!(bytes.len() < 150_000, "{} bytes", bytes.len());

        let dir = tempfile::tempdir().unwrap();
        let pdf = dir.path().join("registro.pdf");
        std::fs::write(&pdf, &bytes).unwrap();
        if let Some(meta) = poppler("pdfinfo", &["-meta"], &pdf) {
            assert!(meta.contains("<pdfaid:part>2</pdfaid:part>"), "{meta}");
            assert!(meta.contains("<pdfaid:conformance>B</pdfaid:conformance>"));
        }
        if let Some(info) = poppler("pdfinfo", &[], &pdf) {
            assert!(
                info.contains("Title:           Registro giornaliero di protocollo"),
                "{info}"
            );
            assert!(info.contains("Encrypted:       no"), "{info}");
            assert!(info.contains("Pages:           2"), "{info}");
            assert!(
                info.contains("Author:          Comune di Esempio"),
                "{info}"
            );
        }
        if let Some(fonts) = poppler("pdffonts", &[], &pdf) {
            // name type encoding emb sub uni object ID: emb is the fifth field from the end.
            let rows: Vec<Vec<&str>> = fonts
                .lines()
                .skip(2)
                .map(|l| l.split_whitespace().collect())
                .collect();
            assert!(!rows.is_empty(), "no fonts: {fonts}");
            for row in &rows {
                assert_eq!(
                    row[row.len() - 5],
                    "yes",
                    "a font is not embedded:\n{fonts}"
                );
                assert!(row[0].contains("DejaVuSans"), "{fonts}");
            }
        }
        if let Some(text) = poppler("pdftotext", &["-layout"], &pdf) {
            let text = text.replace("-\n", "");
            assert!(text.contains("2026/0000001"), "{text}");
            assert!(text.contains("2026/0000040"), "{text}");
            assert!(text.contains("Niccolò Àlvaro"), "{text}");
            assert!(text.contains(&entries[39].1), "the last hash: {text}");
            assert!(text.contains("Pagina 2 di 2"), "{text}");
        }
    }
}
