//! The ZTL commands: permit register import, transit check, whitelist export, policy check
//! (CONTRACT §4, §6).

use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use sportello_config::Config;
use sportello_domain::ztl::permits::{read_register, register_instant};
use sportello_domain::ztl::policy::{EXAMPLE_POLICY, Policy};
use sportello_domain::ztl::transits::{PermitIndex, check_transits};

use crate::app::{UsageError, open_store};

/// Exit status when some input rows were refused (CONTRACT §4).
const EXIT_REJECTED: u8 = 3;

/// The configured policy, or the built-in example; a policy that does not load is a
/// configuration error naming its line and field.
pub fn load_policy(config: &Config) -> anyhow::Result<Policy> {
    load_policy_text(config).map(|(policy, _)| policy)
}

/// The policy and its text (whose hash names its version).
pub fn load_policy_text(config: &Config) -> anyhow::Result<(Policy, String)> {
    match &config.policy.file {
        None => Policy::parse(EXAMPLE_POLICY)
            .map(|p| (p, EXAMPLE_POLICY.to_owned()))
            .map_err(|e| anyhow::anyhow!("built-in policy: {e}")),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| UsageError(format!("policy.file {}: {e}", path.display())))?;
            let policy =
                Policy::parse(&text).map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
            Ok((policy, text))
        }
    }
}

fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {what} {{bar:30}} {{bytes}}/{{total_bytes}} ({{eta}})"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// `sportello permits import FILE.csv`.
pub async fn permits_import(config: &Config, file: &Path) -> anyhow::Result<ExitCode> {
    let (policy, text) = load_policy_text(config)?;
    let input =
        std::fs::File::open(file).map_err(|e| UsageError(format!("{}: {e}", file.display())))?;
    let (rows, rejected) = read_register(&policy, BufReader::new(input))
        .map_err(|e| UsageError(format!("{}: {e}", file.display())))?;
    let store = open_store(config).await?;
    let version = store.record_policy_version(&text, "import").await?;
    let counts = store
        .import_permit_rows(&rows, Some(version), "import")
        .await?;
    store.close().await;
    for r in &rejected {
        eprintln!("{}: line {}: {}", file.display(), r.line, r.reason);
    }
    println!(
        "{} rows added, {} already present, {} refused",
        counts.added,
        counts.already_present,
        rejected.len()
    );
    Ok(if rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_REJECTED)
    })
}

/// `sportello transits check FILE.csv [-o FILE]`.
pub async fn transits_check(
    config: &Config,
    file: &Path,
    output: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let (policy, text) = load_policy_text(config)?;
    let input =
        std::fs::File::open(file).map_err(|e| UsageError(format!("{}: {e}", file.display())))?;
    let size = input.metadata().map(|m| m.len()).unwrap_or(0);
    let store = open_store(config).await?;
    let version = store.record_policy_version(&text, "transits check").await?;
    let rows = store.permit_rows().await?;
    store.close().await;
    let index = PermitIndex::new(&policy, rows);
    let bar = progress_bar(size, "controllo transiti");
    let summary = tokio::task::block_in_place(|| -> anyhow::Result<_> {
        let reader = BufReader::with_capacity(1 << 20, input);
        let summary = match output {
            Some(path) => {
                let out = std::fs::File::create(path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                let mut out = BufWriter::with_capacity(1 << 20, out);
                let s = check_transits(&policy, &index, reader, &mut out, |b| bar.set_position(b));
                out.flush()?;
                s
            }
            None => {
                let stdout = std::io::stdout();
                let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
                let s = check_transits(&policy, &index, reader, &mut out, |b| bar.set_position(b));
                out.flush()?;
                s
            }
        };
        summary.map_err(|e| UsageError(format!("{}: {e}", file.display())).into())
    })?;
    bar.finish_and_clear();
    for r in &summary.rejected {
        eprintln!("{}: line {}: {}", file.display(), r.line, r.reason);
    }
    if summary.rejected_count > summary.rejected.len() as u64 {
        eprintln!(
            "{}: … and {} more refused lines",
            file.display(),
            summary.rejected_count - summary.rejected.len() as u64
        );
    }
    eprintln!(
        "{} transits read, {} in an active zone, {} violations, {} refused (policy version {version})",
        summary.transits, summary.in_active_zone, summary.violations, summary.rejected_count
    );
    Ok(if summary.rejected_count == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_REJECTED)
    })
}

/// `sportello whitelist export [--at T] [--format csv|json] [-o FILE]`.
pub async fn whitelist_export(
    config: &Config,
    (at, since): (Option<&str>, Option<&str>),
    format: &str,
    output: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let policy = load_policy(config)?;
    let store = open_store(config).await?;
    let at_ms = match at {
        Some(text) => {
            register_instant(&policy, text, false).map_err(|e| UsageError(format!("--at: {e}")))?
        }
        None => store.clock().now().timestamp_millis(),
    };
    if !matches!(format, "csv" | "json") {
        return Err(UsageError(format!("--format must be csv or json, not {format:?}")).into());
    }
    let rows = match since {
        Some(text) => {
            let since_ms = register_instant(&policy, text, false)
                .map_err(|e| UsageError(format!("--since: {e}")))?;
            store.whitelist_delta(since_ms, at_ms).await?
        }
        None => store.whitelist_at(at_ms).await?,
    };
    store.close().await;
    let mut out: Box<dyn Write> = match output {
        Some(path) => Box::new(BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    sportello_store::permits::write_whitelist(
        &policy,
        &rows,
        format == "json",
        since.is_some(),
        &mut out,
    )?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `sportello policy check FILE`: validates a draft and says what it would change for the
/// permits on record.
pub async fn policy_check(config: &Config, file: &Path) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| UsageError(format!("{}: {e}", file.display())))?;
    let draft = Policy::parse(&text).map_err(|e| UsageError(format!("{}: {e}", file.display())))?;
    println!(
        "{}: valid — {} zones, {} gates, {} categories",
        file.display(),
        draft.zones.len(),
        draft.zones.iter().map(|z| z.gates.len()).sum::<usize>(),
        draft.categories.len()
    );
    let current = load_policy(config)?;
    for c in &current.categories {
        match draft.category(&c.id) {
            None => println!("  category {} removed", c.id),
            Some(d) => {
                if d.zones != c.zones {
                    println!("  category {}: zones {:?} -> {:?}", c.id, c.zones, d.zones);
                }
                let (old, new): (Vec<&str>, Vec<&str>) = (
                    c.windows.iter().map(|w| w.as_str()).collect(),
                    d.windows.iter().map(|w| w.as_str()).collect(),
                );
                if old != new {
                    println!("  category {}: windows {old:?} -> {new:?}", c.id);
                }
            }
        }
    }
    for d in &draft.categories {
        if current.category(&d.id).is_none() {
            println!("  category {} added", d.id);
        }
    }
    for z in &current.zones {
        match draft.zones.iter().find(|d| d.id == z.id) {
            None => println!("  zone {} removed", z.id),
            Some(d) => {
                let (old, new): (Vec<&str>, Vec<&str>) = (
                    z.active.iter().map(|w| w.as_str()).collect(),
                    d.active.iter().map(|w| w.as_str()).collect(),
                );
                if old != new {
                    println!("  zone {}: active {old:?} -> {new:?}", z.id);
                }
                if d.gates != z.gates {
                    println!("  zone {}: gates {:?} -> {:?}", z.id, z.gates, d.gates);
                }
            }
        }
    }
    let store = open_store(config).await?;
    let rows = store.permit_rows().await?;
    store.close().await;
    let orphaned = rows
        .iter()
        .filter(|r| draft.category(&r.category).is_none())
        .count();
    println!(
        "  permit rows on record: {}; whose category the draft no longer has: {orphaned}",
        rows.len()
    );
    Ok(ExitCode::SUCCESS)
}
