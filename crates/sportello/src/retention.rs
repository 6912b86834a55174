//! `sportello retention run [--dry-run]` (CONTRACT §8.5): applies `[retention]`. Every
//! closed case past its type's period is anonymised and loses the documents the protocol
//! register does not name, one case per transaction; the bytes of deleted documents go
//! after the commit, and bytes left by a run killed midway are swept at the next start.
//! A second run finds nothing left to do.

use std::process::ExitCode;

use clap::Subcommand;
use sportello_config::Config;

use crate::app::open_blobs;
use crate::app::open_store;

/// Retention of closed cases.
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Anonymises closed cases past their `[retention]` period and deletes their documents
    /// not named by the protocol register; reports counts per case type.
    Run {
        /// Report what would be done, changing nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs a `retention` command.
pub async fn run(config: &Config, command: RetentionCommand) -> anyhow::Result<ExitCode> {
    let RetentionCommand::Run { dry_run } = command;
    let types = config.case_types()?;
    let ids: Vec<&str> = types.iter().map(|t| t.id.as_str()).collect();
    let periods = config.retention.periods(&ids)?;
    if periods.is_empty() {
        println!("no [retention] period configured: nothing to do");
        return Ok(ExitCode::SUCCESS);
    }
    let store = open_store(config).await?;
    let blobs = open_blobs(config)?;
    let mut swept = 0;
    if !dry_run {
        // What a killed run left behind: bytes of documents whose rows are gone.
        swept += store.sweep_deleted_blobs(&blobs).await?;
    }
    let now = store.clock().now();
    let mut report = serde_json::Map::new();
    let (mut total_cases, mut total_deleted) = (0u64, 0u64);
    for (case_type, period) in &periods {
        let cutoff = period.cutoff(now);
        let due = store.retention_candidates(case_type, cutoff).await?;
        let (mut cases, mut deleted, mut kept, mut fields) = (0u64, 0u64, 0u64, 0u64);
        if dry_run {
            cases = due.len() as u64;
            deleted = due.iter().map(|c| c.deletable_documents).sum();
            kept = due.iter().map(|c| c.registered_documents).sum();
        } else {
            let reason = format!("retention {case_type} {period}");
            // On a terminal only (indicatif draws nothing when stderr is not one).
            let progress = indicatif::ProgressBar::new(due.len() as u64);
            progress.set_style(
                indicatif::ProgressStyle::with_template(&format!(
                    "{{spinner}} conservazione {case_type} {{bar:30}} {{pos}}/{{len}} ({{eta}})"
                ))
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            for case in &due {
                progress.inc(1);
                let done = store
                    .anonymise_case(case.id, "retention", "retention", &reason, true)
                    .await?;
                swept += store.sweep_deleted_blobs(&blobs).await?;
                cases += 1;
                deleted += done.documents_deleted;
                kept += done.documents_kept;
                fields += done.fields;
            }
            progress.finish_and_clear();
        }
        total_cases += cases;
        total_deleted += deleted;
        let verb = if dry_run { "would be " } else { "" };
        println!(
            "{case_type} ({period}, closed on or before {}): {cases} cases {verb}anonymised, \
             {deleted} documents {verb}deleted, {kept} kept (named by the protocol register)",
            cutoff.format("%Y-%m-%d")
        );
        report.insert(
            case_type.clone(),
            serde_json::json!({
                "period": period.to_string(),
                "cases": cases,
                "documents_deleted": deleted,
                "documents_kept": kept,
                "fields": fields,
            }),
        );
    }
    if dry_run {
        println!(
            "dry run: nothing changed ({total_cases} cases and {total_deleted} documents are due)"
        );
    } else {
        let detail = serde_json::json!({ "case_types": report, "bytes_swept": swept });
        store
            .journal_privacy_run("retention", "retention_run", "[retention]", &detail)
            .await?;
        println!(
            "retention done: {total_cases} cases anonymised, {total_deleted} documents deleted, \
             {swept} stored objects removed"
        );
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
