//! `sportello citizen export|anonymise` (CONTRACT §8.5, GDPR art. 15 and 17): a person's
//! copy of everything the office holds about them, and the replacement of their identifying
//! data with a pseudonym once none of their cases is open (the store's `privacy` module
//! says what is rewritten, what is kept and why).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use sha2::{Digest, Sha256};
use sportello_config::Config;
use sportello_domain::fiscal_code::FiscalCode;

use crate::app::{UsageError, open_blobs, open_store};

/// Exit status of a refusal: finished, but the request could not be carried out (§4).
const EXIT_REFUSED: u8 = 3;

/// The citizen's data rights.
#[derive(Debug, Subcommand)]
pub enum CitizenCommand {
    /// Writes everything held about a person (art. 15 GDPR) into a zip: cases with their
    /// timelines, messages, documents, permits, payments and who read their data.
    Export {
        /// The person's codice fiscale.
        #[arg(value_name = "FISCAL_CODE")]
        fiscal_code: String,
        /// The zip file to write.
        #[arg(short = 'o', long = "output", value_name = "FILE.zip")]
        output: PathBuf,
    },
    /// Replaces the person's identifying data with a pseudonym in cases, messages,
    /// documents' text and the search index (art. 17 GDPR); refused (exit 3) while any of
    /// their cases is open.
    Anonymise {
        /// The person's codice fiscale.
        #[arg(value_name = "FISCAL_CODE")]
        fiscal_code: String,
        /// Why (journaled): e.g. the request's protocol number.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

/// Runs a `citizen` command.
pub async fn run(config: &Config, command: CitizenCommand) -> anyhow::Result<ExitCode> {
    match command {
        CitizenCommand::Export {
            fiscal_code,
            output,
        } => export(config, &fiscal_code, &output).await,
        CitizenCommand::Anonymise {
            fiscal_code,
            reason,
        } => anonymise(config, &fiscal_code, &reason).await,
    }
}

fn parse_code(s: &str) -> anyhow::Result<FiscalCode> {
    FiscalCode::parse(s)
        .map_err(|e| UsageError(format!("'{s}' is not a valid fiscal code: {e}")).into())
}

/// The README inside the export, in Italian and English.
const README: &str = "\
COPIA DEI DATI PERSONALI (art. 15 Regolamento UE 2016/679)
==========================================================
Questo archivio contiene tutti i dati che l'ufficio conserva su di Lei:
- index.json: i dati anagrafici e di contatto, le pratiche con la loro cronologia, i messaggi
  ricevuti e inviati, le telefonate e gli appuntamenti, gli elenchi dei documenti, i
  permessi, i pagamenti e il registro di chi
  ha consultato i Suoi dati (chi, quando, che cosa);
- documents/<pratica>/: i documenti delle pratiche, cosi' come sono stati ricevuti o prodotti;
- messages/<pratica>/: i messaggi ricevuti (e-mail, PEC, fax), byte per byte.
Ogni file e' elencato in index.json con la sua impronta SHA-256.
Per la rettifica o la cancellazione si rivolga all'ufficio citando il numero di protocollo.

COPY OF PERSONAL DATA (art. 15 GDPR)
====================================
This archive holds everything the office keeps about you:
- index.json: your identity and contact details, your cases with their timelines, the
  messages received and sent, calls and appointments, the lists of documents, permits,
  payments and the log of who
  read your data (who, when, what);
- documents/<case>/: the cases' documents, as received or produced;
- messages/<case>/: the messages received (e-mail, PEC, fax), byte for byte.
Every file is listed in index.json with its SHA-256.
To have data corrected or erased, write to the office quoting the protocol number.
";

/// `sportello citizen export FISCAL_CODE -o FILE.zip`.
async fn export(config: &Config, code: &str, output: &Path) -> anyhow::Result<ExitCode> {
    let code = parse_code(code)?;
    let store = open_store(config).await?;
    let blobs = open_blobs(config)?;
    let Some(person) = store.person_by_fiscal_code(code.as_str()).await? else {
        store.close().await;
        eprintln!(
            "error: no person with fiscal code {} is known to the office (no citizen record)",
            code.as_str()
        );
        return Ok(ExitCode::FAILURE);
    };
    let cases = store.person_cases(&person).await?;
    let mut files: Vec<(String, bytes::Bytes)> = Vec::new();
    let mut file_index = Vec::new();
    let mut add_file =
        |path: String, data: bytes::Bytes, files: &mut Vec<(String, bytes::Bytes)>| {
            file_index.push(serde_json::json!({
                "path": path,
                "sha256": hex::encode(Sha256::digest(&data)),
                "size": data.len(),
            }));
            files.push((path, data));
        };
    let mut cases_json = Vec::new();
    let mut targets: Vec<String> = vec![code.as_str().to_owned()];
    let (mut documents, mut messages) = (0usize, 0usize);
    for case in &cases {
        let view = store.get_case(&case.reference).await?;
        targets.push(case.reference.clone());
        for doc in &view.documents {
            targets.push(doc.id.clone());
            let data = blobs
                .get(&doc.sha256)
                .await
                .with_context(|| format!("reading document {} of {}", doc.id, case.reference))?;
            let name = format!(
                "documents/{}/{}-{}",
                case.reference,
                doc.id,
                safe_name(&doc.filename)
            );
            add_file(name, data, &mut files);
            documents += 1;
        }
        let inbound = store.case_messages_full(case.id).await?;
        for m in &inbound {
            if let (Some(id), Some(sha)) = (m["id"].as_i64(), m["raw_sha256"].as_str()) {
                // The bytes as received; a message whose bytes are gone is still listed.
                if let Ok(data) = blobs.get(sha).await {
                    add_file(
                        format!("messages/{}/{id}.eml", case.reference),
                        data,
                        &mut files,
                    );
                }
            }
        }
        messages += inbound.len();
        let outbound = store.outbound_of_case(&case.reference).await?;
        messages += outbound.len();
        let appointments = store.appointments_of_case(&case.reference).await?;
        let calls = store.case_calls_full(case.id).await?;
        cases_json.push(serde_json::json!({
            "case": view,
            "messages_received": inbound,
            "messages_sent": outbound,
            "appointments": appointments,
            "calls": calls,
        }));
    }
    let mut permits = Vec::new();
    for number in store.person_permits(&person, &cases).await? {
        targets.push(number.clone());
        permits.push(serde_json::to_value(store.permit(&number).await?)?);
    }
    let mut reads = Vec::new();
    for target in &targets {
        for (at, actor, action) in store.accesses_of(target).await? {
            reads.push(serde_json::json!({
                "at": at.to_rfc3339(),
                "actor": actor,
                "action": action,
                "target": target,
            }));
        }
    }
    reads.sort_by(|a, b| a["at"].as_str().cmp(&b["at"].as_str()));
    let index = serde_json::json!({
        "generated_at": store.clock().now().to_rfc3339(),
        "office": config.office.name,
        "person": person,
        "cases": cases_json,
        "permits": permits,
        // No table of the office holds payments yet (pagoPA, CONTRACT §8.2, is not built):
        // there is nothing to list, and the key says so rather than being absent.
        "payments": [],
        "reads": reads,
        "files": file_index,
    });
    write_zip(output, &index, &files).with_context(|| format!("writing {}", output.display()))?;
    // The export is itself a read of the person's data.
    for case in &cases {
        store
            .record_access("cli", "export_citizen", &case.reference)
            .await?;
    }
    if cases.is_empty() {
        store
            .record_access("cli", "export_citizen", code.as_str())
            .await?;
    }
    let detail = serde_json::json!({
        "cases": cases.len(), "documents": documents, "messages": messages, "reads": reads.len(),
    });
    store
        .journal_privacy_run("cli", "citizen_export", "art. 15", &detail)
        .await?;
    store.close().await;
    let digest = hex::encode(Sha256::digest(std::fs::read(output)?));
    println!(
        "export written: {} ({} cases, {} documents, {} messages, {} permits, {} reads); sha256 {digest}",
        output.display(),
        cases.len(),
        documents,
        messages,
        permits.len(),
        reads.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// A file name safe inside a zip: no folders, no control characters.
fn safe_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '/' | '\\' | ':') {
                '_'
            } else {
                c
            }
        })
        .collect();
    match cleaned.trim_matches('.') {
        "" => "documento".into(),
        s => s.to_owned(),
    }
}

/// Writes the zip next to its final name and renames it, so a crash leaves no half file.
fn write_zip(
    output: &Path,
    index: &serde_json::Value,
    files: &[(String, bytes::Bytes)],
) -> anyhow::Result<()> {
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let partial = dir.join(format!(
        ".{}.partial",
        output
            .file_name()
            .map_or_else(|| "export.zip".into(), |n| n.to_string_lossy().into_owned())
    ));
    let file = std::fs::File::create(&partial)?;
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("README.txt", options)?;
    zip.write_all(README.as_bytes())?;
    zip.start_file("index.json", options)?;
    zip.write_all(serde_json::to_string_pretty(index)?.as_bytes())?;
    for (path, data) in files {
        zip.start_file(path.as_str(), options)?;
        zip.write_all(data)?;
    }
    let file = zip.finish()?;
    file.sync_all()?;
    std::fs::rename(&partial, output)?;
    Ok(())
}

/// `sportello citizen anonymise FISCAL_CODE --reason TEXT`.
async fn anonymise(config: &Config, code: &str, reason: &str) -> anyhow::Result<ExitCode> {
    let code = parse_code(code)?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(UsageError("--reason must say why (it is journaled)".into()).into());
    }
    let store = open_store(config).await?;
    let Some(person) = store.person_by_fiscal_code(code.as_str()).await? else {
        store.close().await;
        eprintln!(
            "error: no person with fiscal code {} is known to the office (no citizen record, or already anonymised)",
            code.as_str()
        );
        return Ok(ExitCode::FAILURE);
    };
    let cases = store.person_cases(&person).await?;
    let open: Vec<String> = cases
        .iter()
        .filter(|c| c.status != "closed")
        .map(|c| format!("{} ({})", c.reference, c.status))
        .collect();
    if !open.is_empty() {
        store.close().await;
        eprintln!(
            "refused: the person has open cases; close them first: {}",
            open.join(", ")
        );
        return Ok(ExitCode::from(EXIT_REFUSED));
    }
    let mut fields = 0;
    let mut pseudonym = String::new();
    for case in &cases {
        match store
            .anonymise_case(case.id, "cli", "anonymise", reason, false)
            .await
        {
            Ok(done) => {
                println!("{}: {} fields rewritten", done.reference, done.fields);
                fields += done.fields;
                pseudonym = done.pseudonym;
            }
            // Reopened meanwhile: what is done stays done; the rest waits.
            Err(sportello_store::StoreError::Conflict(why)) => {
                store.close().await;
                eprintln!("refused: {why}");
                return Ok(ExitCode::from(EXIT_REFUSED));
            }
            Err(e) => return Err(e.into()),
        }
    }
    store.forget_person(&person).await?;
    let detail =
        serde_json::json!({ "cases": cases.len(), "fields": fields, "pseudonym": pseudonym });
    store
        .journal_privacy_run("cli", "citizen_anonymise", reason, &detail)
        .await?;
    store.close().await;
    if pseudonym.is_empty() {
        println!("anonymised: no cases; the citizen record was deleted");
    } else {
        println!(
            "anonymised: {} cases, {fields} fields rewritten, pseudonym {pseudonym}",
            cases.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
