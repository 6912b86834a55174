//! `sportello import redmine --url URL --key KEY --project IDENT [--map FILE] [--dry-run]`
//! (CONTRACT §8.4): a progress bar on a terminal, a line for each issue that failed or
//! came with bad data, and the JSON summary as the last line on stdout; exit 3 when an
//! issue could not be imported, 2 when Redmine cannot be used (unreachable, wrong key, no
//! such project) or the map file is wrong. The key is never printed.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use sportello_app::AppError;
use sportello_app::import_redmine::{
    ImportContext, ImportOptions, IssueReport, RedmineClient, import,
};
use sportello_config::Config;
use sportello_domain::redmine::ImportMap;

use crate::app::{UsageError, open_blobs, open_store};

/// Exit status when some issues could not be imported.
const EXIT_FAILED: u8 = 3;

/// `sportello import …`.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Takes over a Redmine project's issues as cases (CONTRACT §8.4); idempotent, resumable.
    Redmine(RedmineArgs),
}

/// The options of `import redmine`.
#[derive(Args)]
pub struct RedmineArgs {
    /// Redmine's base URL (http or https).
    #[arg(long, value_name = "URL")]
    url: String,
    /// An API key of a Redmine administrator (or the environment's SPORTELLO_REDMINE_KEY).
    #[arg(
        long,
        value_name = "KEY",
        env = "SPORTELLO_REDMINE_KEY",
        hide_env_values = true
    )]
    key: String,
    /// The project's identifier.
    #[arg(long, value_name = "IDENT")]
    project: String,
    /// The map file (TOML: [trackers], [citizen], [fields]).
    #[arg(long, value_name = "FILE")]
    map: Option<PathBuf>,
    /// Say what would be imported; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Issues read from Redmine at the same time.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
}

impl std::fmt::Debug for RedmineArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedmineArgs")
            .field("url", &self.url)
            .field("key", &"(hidden)")
            .field("project", &self.project)
            .field("map", &self.map)
            .field("dry_run", &self.dry_run)
            .finish()
    }
}

fn read_map(path: Option<&Path>, case_types: &[&str]) -> anyhow::Result<ImportMap> {
    let Some(path) = path else {
        return Ok(ImportMap::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
    ImportMap::parse(&text, case_types)
        .map_err(|e| UsageError(format!("{}: {e}", path.display())).into())
}

/// Runs `sportello import …`.
pub async fn run(config: &Config, command: ImportCommand) -> anyhow::Result<ExitCode> {
    let ImportCommand::Redmine(args) = command;
    let case_types: Vec<String> = config.case_types()?.into_iter().map(|t| t.id).collect();
    let types: Vec<&str> = case_types.iter().map(String::as_str).collect();
    let map = read_map(args.map.as_deref(), &types)?;
    let client = RedmineClient::new(&args.url, &args.key).map_err(|e| UsageError(e.to_string()))?;
    let (policy, _) = crate::ztl::load_policy_text(config)?;
    let store = open_store(config).await?;
    let blobs = open_blobs(config)?;
    let options = ImportOptions {
        dry_run: args.dry_run,
        concurrency: usize::from(args.concurrency),
        max_attachment_bytes: config.documents.max_upload_bytes,
    };
    let target = if std::io::stderr().is_terminal() {
        indicatif::ProgressDrawTarget::stderr()
    } else {
        indicatif::ProgressDrawTarget::hidden()
    };
    let bar = indicatif::ProgressBar::with_draw_target(None, target);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} import Redmine {bar:30} {pos}/{len} ({per_sec}, {eta}) {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let dry = args.dry_run;
    let report = |r: IssueReport| match r {
        IssueReport::Listed(n) => bar.set_length(n),
        IssueReport::Created {
            issue,
            reference,
            flags,
        } => {
            if !flags.is_empty() {
                bar.suspend(|| eprintln!("#{issue} → {reference}: flagged {}", flags.join(", ")));
            }
            bar.inc(1);
        }
        IssueReport::Updated { .. } | IssueReport::Unchanged { .. } => bar.inc(1),
        IssueReport::WouldImport { issue, what } => {
            bar.suspend(|| println!("#{issue}: would {what}"));
            bar.inc(1);
        }
        IssueReport::Failed { issue, error } => {
            bar.suspend(|| eprintln!("#{issue}: not imported: {error}"));
            bar.inc(1);
        }
    };
    let ctx = ImportContext {
        store: &store,
        blobs: &blobs,
        policy: &policy,
        map: &map,
    };
    let result = import(&ctx, &client, &args.project, &options, &report).await;
    bar.finish_and_clear();
    store.close().await;
    let summary = match result {
        Ok(s) => s,
        Err(AppError::BadRequest(m) | AppError::NotFound(m)) => {
            return Err(UsageError(format!("{m} (project '{}')", args.project)).into());
        }
        Err(e) => return Err(anyhow::anyhow!("import stopped: {e}")),
    };
    if dry {
        println!("dry run: nothing written");
    }
    println!("{}", serde_json::to_string(&summary)?);
    Ok(if summary.failed > 0 {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
