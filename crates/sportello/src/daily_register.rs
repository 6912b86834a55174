//! `sportello register daily`: the day's registrations (DPR 445/2000 art. 53 c. 2) as CSV
//! or PDF, with the SHA-256 of the file so it can be sent to conservation unaltered.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use sportello_config::Config;
use sportello_domain::register::RegisterEntry;
use sportello_store::cases::rome_rfc3339;

use crate::app::{UsageError, open_store};
use crate::pdf;

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
        to_pdf(day, &entries)
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

fn to_pdf(day: NaiveDate, entries: &[(RegisterEntry, String)]) -> Vec<u8> {
    let header: pdf::Row = vec![
        (40.0, "Numero".into(), 14),
        (100.0, "Ora".into(), 8),
        (135.0, "E/U".into(), 4),
        (160.0, "Mittente / destinatario".into(), 34),
        (320.0, "Oggetto".into(), 48),
        (540.0, "Pratica".into(), 16),
        (615.0, "Impronta SHA-256".into(), 40),
    ];
    let rows: Vec<pdf::Row> = entries
        .iter()
        .map(|(e, _)| {
            let time = rome_rfc3339(e.registered_at)
                .get(11..16)
                .unwrap_or_default()
                .to_owned();
            vec![
                (40.0, e.number.to_string(), 14),
                (100.0, time, 8),
                (
                    135.0,
                    if e.direction.as_str() == "in" {
                        "E".into()
                    } else {
                        "U".into()
                    },
                    4,
                ),
                (160.0, e.correspondent.clone(), 34),
                (320.0, e.subject.clone(), 48),
                (540.0, e.case_reference.clone().unwrap_or_default(), 16),
                (
                    615.0,
                    e.document_sha256
                        .get(..32)
                        .unwrap_or(&e.document_sha256)
                        .to_owned(),
                    40,
                ),
            ]
        })
        .collect();
    let last = entries.last().map(|(_, h)| h.as_str()).unwrap_or("-");
    let subtitle = format!(
        "Giorno {} - {} registrazioni - hash dell'ultima registrazione della catena: {last}",
        day.format("%d/%m/%Y"),
        entries.len()
    );
    pdf::render(
        "Registro giornaliero di protocollo",
        &subtitle,
        &header,
        &rows,
        pdf::A4_LANDSCAPE,
    )
}
