//! The ZTL commands: permit register import, transit check, whitelist export, policy check
//! (CONTRACT §4, §6).

use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use sportello_app::AppError;
use sportello_config::Config;
use sportello_domain::ztl::permits::{read_register_counted, register_instant};
use sportello_domain::ztl::policy::{EXAMPLE_POLICY, Policy};
use sportello_domain::ztl::transits::{Part, PermitIndex, check_transits, check_transits_in_parts};

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
    let read = read_register_counted(&policy, BufReader::new(input))
        .map_err(|e| UsageError(format!("{}: {e}", file.display())))?;
    let (rows, rejected, blank, lines) = (read.rows, read.rejected, read.blank, read.lines);
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
    // Every physical line accounted for: header + accepted + refused + blank.
    println!(
        "{lines} lines read: 1 header, {} accepted, {} refused, {blank} blank",
        rows.len(),
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
    let index = PermitIndex::new(&policy, rows);
    // A copy of the file goes to the blob store, so a policy draft can later be replayed
    // against the transits actually seen: hashed and staged while the file is checked,
    // stored after (the store's upload buffers would otherwise add to the check's peak).
    let blobs = crate::app::open_blobs(config)?;
    let staging = {
        let staging = config.data_dir.join("tmp");
        let path = file.to_owned();
        tokio::spawn(async move {
            let reader = tokio::fs::File::open(&path)
                .await
                .map_err(|e| sportello_store::StoreError::Blob(e.to_string()))?;
            sportello_app::documents::stage(&staging, reader, u64::MAX).await
        })
    };
    let bar = progress_bar(size, "controllo transiti");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let summary = tokio::task::block_in_place(|| -> anyhow::Result<_> {
        let mut out: Box<dyn Write> = match output {
            Some(path) => Box::new(BufWriter::with_capacity(
                1 << 20,
                std::fs::File::create(path)
                    .with_context(|| format!("cannot write {}", path.display()))?,
            )),
            None => Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout().lock())),
        };
        let summary = match split_at_lines(file, size, threads)? {
            Some(parts) => {
                check_transits_in_parts(&policy, &index, parts, &mut out, &|b| bar.inc(b))
            }
            None => {
                let reader = BufReader::with_capacity(1 << 20, input);
                check_transits(&policy, &index, reader, &mut out, |b| bar.set_position(b))
            }
        };
        out.flush()?;
        summary.map_err(|e| UsageError(format!("{}: {e}", file.display())).into())
    })?;
    bar.finish_and_clear();
    let staged = match staging.await {
        Ok(Ok(staged)) => blobs
            .put_staged(&staged)
            .await
            .map(|()| staged)
            .map_err(AppError::from),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(sportello_store::StoreError::Blob(e.to_string()).into()),
    };
    let kept = match staged {
        Ok(staged) => store
            .record_transit_check(&sportello_store::transits::TransitCheck {
                sha256: staged.sha256.clone(),
                size: staged.size,
                actor: "cli".into(),
                policy_version: Some(version),
                transits: summary.transits,
                in_active_zone: summary.in_active_zone,
                violations: summary.violations,
                rejected: summary.rejected_count,
            })
            .await
            .map_err(AppError::from),
        Err(e) => Err(e),
    };
    store.close().await;
    if let Err(e) = kept {
        eprintln!("warning: the file was checked but no copy was kept for policy checks: {e}");
    }
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
    // Every physical line accounted for: header + accepted + refused + blank.
    eprintln!(
        "{} lines read: 1 header, {} accepted, {} refused, {} blank",
        1 + summary.transits + summary.blank,
        summary.transits - summary.rejected_count,
        summary.rejected_count,
        summary.blank
    );
    Ok(if summary.rejected_count == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_REJECTED)
    })
}

/// A stretch of a transits file on disk.
type FileStretch = Part<std::io::Take<BufReader<std::fs::File>>>;

/// Files smaller than this are checked in one piece.
const PARALLEL_FROM_BYTES: u64 = 4 << 20;

/// Splits a transits file into `parts` stretches at line ends, for a check on several
/// cores; `None` for a small file or one with any quote (a quoted field may hold a line
/// end, so only the CSV reader can tell where its records end). One pass over the file,
/// counting lines so that every stretch knows its first line number.
fn split_at_lines(
    path: &Path,
    size: u64,
    parts: usize,
) -> anyhow::Result<Option<Vec<FileStretch>>> {
    use std::io::{Read, Seek, SeekFrom};
    if parts < 2 || size < PARALLEL_FROM_BYTES {
        return Ok(None);
    }
    let mut targets: Vec<u64> = (1..parts as u64).map(|k| size * k / parts as u64).collect();
    targets.reverse();
    // (start offset, first line) of each stretch.
    let mut starts: Vec<(u64, u64)> = vec![(0, 1)];
    let mut reader = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut offset, mut lines) = (0u64, 0u64);
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        if memchr::memchr(b'"', chunk).is_some() {
            return Ok(None);
        }
        for at in memchr::memchr_iter(b'\n', chunk) {
            lines += 1;
            let end = offset + at as u64 + 1;
            if targets.last().is_some_and(|&t| end > t) {
                targets.pop();
                starts.push((end, lines + 1));
            }
        }
        offset += n as u64;
    }
    let mut stretches = Vec::with_capacity(starts.len());
    for (i, &(start, first_line)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(offset, |next| next.0);
        let mut file = std::fs::File::open(path)?;
        file.seek(SeekFrom::Start(start))?;
        stretches.push(Part {
            input: BufReader::with_capacity(1 << 20, file).take(end - start),
            header: i == 0,
            first_line,
        });
    }
    Ok(Some(stretches))
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
    permit_impact(&current, &draft, &rows);
    // The transits of the last 30 days, judged under both policies.
    let files = store.transit_files_checked_since(REPLAY_DAYS).await?;
    let blobs = crate::app::open_blobs(config)?;
    let current_index = PermitIndex::new(&current, rows.clone());
    let draft_index = PermitIndex::new(&draft, rows);
    let mut replay = Replay::default();
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    for (sha256, _) in &files {
        let bytes = match blobs.get(sha256).await {
            Ok(bytes) => bytes,
            Err(e) => {
                eprintln!("warning: checked file {sha256} cannot be read: {e}");
                replay.unreadable += 1;
                continue;
            }
        };
        tokio::task::block_in_place(|| {
            replay.file(&bytes, (&current, &current_index), (&draft, &draft_index))
        })?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    store.close().await;
    replay.report(files.len());
    Ok(ExitCode::SUCCESS)
}

/// How far back `policy check` replays checked transits.
const REPLAY_DAYS: i64 = 30;
/// Examples listed per kind of change.
const EXAMPLES: usize = 10;

/// What a draft changes for the permits on record: rows of a category it drops or whose
/// zones or windows it changes, and permits with more plates than it allows.
fn permit_impact(
    current: &Policy,
    draft: &Policy,
    rows: &[sportello_domain::ztl::transits::PermitRow],
) {
    use std::collections::{BTreeMap, BTreeSet};
    let mut orphaned = 0;
    let mut reshaped = 0;
    let mut plates: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for r in rows {
        match (current.category(&r.category), draft.category(&r.category)) {
            (_, None) => orphaned += 1,
            (Some(c), Some(d)) if c.zones != d.zones || c.windows != d.windows => reshaped += 1,
            _ => {}
        }
        if r.active {
            plates
                .entry((&r.permit, &r.category))
                .or_default()
                .insert(&r.plate);
        }
    }
    let over: Vec<&str> = plates
        .iter()
        .filter(|((_, category), set)| {
            draft
                .category(category)
                .is_some_and(|d| !d.admits_plates(set.len()))
        })
        .map(|((permit, _), _)| *permit)
        .collect();
    println!(
        "  permit rows on record: {}; whose category the draft no longer has: {orphaned}; \
         whose zones or windows it changes: {reshaped}",
        rows.len()
    );
    println!(
        "  permits with more plates than the draft allows: {}{}",
        over.len(),
        if over.is_empty() {
            String::new()
        } else {
            format!(
                " (e.g. {})",
                over.iter()
                    .take(EXAMPLES)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
}

/// One violation of a replayed file: its row, and the reason.
type Violation = (String, String);

/// The outcome of replaying checked files under the policy in force and the draft.
#[derive(Default)]
struct Replay {
    transits: u64,
    current_violations: u64,
    draft_violations: u64,
    current_rejected: u64,
    draft_rejected: u64,
    unreadable: usize,
    /// (transit, reason now) that the draft would no longer fine.
    cleared: Vec<Violation>,
    cleared_count: u64,
    /// (transit, reason under the draft) that the draft would fine anew.
    added: Vec<Violation>,
    added_count: u64,
    /// (transit, "reason now -> reason under the draft").
    changed: Vec<Violation>,
    changed_count: u64,
}

/// The violations a file yields under one policy, by transit id.
fn violations_of(
    policy: &Policy,
    index: &PermitIndex,
    bytes: &[u8],
) -> anyhow::Result<(std::collections::HashMap<String, Violation>, u64, u64)> {
    let mut out = Vec::new();
    let summary = check_transits(policy, index, bytes, &mut out, |_| {})?;
    let mut reader = csv::Reader::from_reader(out.as_slice());
    let mut found = std::collections::HashMap::with_capacity(summary.violations as usize);
    for record in reader.records() {
        let record = record?;
        let (id, reason) = (&record[0], &record[6]);
        let row = format!("{id} {} {} {}", &record[1], &record[3], &record[5]);
        found.insert(id.to_owned(), (row, reason.to_owned()));
    }
    Ok((found, summary.transits, summary.rejected_count))
}

impl Replay {
    fn file(
        &mut self,
        bytes: &[u8],
        (current, current_index): (&Policy, &PermitIndex),
        (draft, draft_index): (&Policy, &PermitIndex),
    ) -> anyhow::Result<()> {
        let (now, transits, rejected_now) = violations_of(current, current_index, bytes)?;
        let (then, _, rejected_then) = violations_of(draft, draft_index, bytes)?;
        self.transits += transits;
        self.current_violations += now.len() as u64;
        self.draft_violations += then.len() as u64;
        self.current_rejected += rejected_now;
        self.draft_rejected += rejected_then;
        // In transit id order, so the examples are the same from one run to the next.
        let mut ids: Vec<&String> = now.keys().chain(then.keys()).collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            let Some((row, reason)) = now.get(id) else {
                if let Some((row, reason)) = then.get(id) {
                    self.added_count += 1;
                    if self.added.len() < EXAMPLES {
                        self.added.push((row.clone(), reason.clone()));
                    }
                }
                continue;
            };
            match then.get(id) {
                None => {
                    self.cleared_count += 1;
                    if self.cleared.len() < EXAMPLES {
                        self.cleared.push((row.clone(), reason.clone()));
                    }
                }
                Some((_, other)) if other != reason => {
                    self.changed_count += 1;
                    if self.changed.len() < EXAMPLES {
                        self.changed
                            .push((row.clone(), format!("{reason} -> {other}")));
                    }
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn report(&self, files: usize) {
        println!(
            "  transits checked in the last {REPLAY_DAYS} days: {} in {files} file(s){}",
            self.transits,
            if self.unreadable > 0 {
                format!(" ({} file(s) unreadable)", self.unreadable)
            } else {
                String::new()
            }
        );
        if files == 0 {
            return;
        }
        println!(
            "  violations: {} under the policy in force, {} under the draft; refused rows: {} -> {}",
            self.current_violations,
            self.draft_violations,
            self.current_rejected,
            self.draft_rejected
        );
        for (title, count, examples) in [
            (
                "would no longer be violations",
                self.cleared_count,
                &self.cleared,
            ),
            ("would become violations", self.added_count, &self.added),
            ("would change reason", self.changed_count, &self.changed),
        ] {
            println!("  {title}: {count}");
            for (row, reason) in examples {
                println!("    {row}: {reason}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sportello_domain::ztl::transits::PermitRow;

    /// A transits file above the parallel threshold, with bad rows in every stretch: the
    /// split check must give the same bytes and the same rejected lines as one piece.
    #[test]
    fn a_file_checked_in_parts_gives_the_same_result_as_in_one_piece() {
        let policy = Policy::parse(EXAMPLE_POLICY).unwrap();
        let rows = (0..500).map(|i| PermitRow {
            permit: format!("P{i}"),
            category: if i % 2 == 0 { "residenti" } else { "cude" }.into(),
            plate: format!("AB{i:03}CD"),
            country: "IT".into(),
            valid_from: 1_767_225_600_000,
            valid_to: 1_798_761_600_000,
            active: i % 7 != 0,
        });
        let index = PermitIndex::new(&policy, rows);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transits.csv");
        let mut text = String::from("transit_id,gate,plate,country,timestamp\n");
        let gates = ["V01", "V04", "N01", "V02"];
        let mut i = 0u64;
        while (text.len() as u64) < PARALLEL_FROM_BYTES + (1 << 20) {
            let line = match i % 25_013 {
                17 => format!("T{i},V99,AB001CD,IT,2026-03-02T09:00:00+01:00\n"),
                18 => format!("T{i},V01,A*B,IT,2026-03-02T09:00:00+01:00\n"),
                _ => format!(
                    "T{i},{},ab {:03} cd,,2026-{:02}-{:02}T{:02}:{:02}:00+0{}:00\n",
                    gates[(i % 4) as usize],
                    i % 600,
                    1 + i % 12,
                    1 + i % 28,
                    i % 24,
                    i % 60,
                    1 + i % 2
                ),
            };
            text.push_str(&line);
            i += 1;
        }
        std::fs::write(&path, &text).unwrap();
        let size = text.len() as u64;

        let mut whole = Vec::new();
        let one = check_transits(&policy, &index, text.as_bytes(), &mut whole, |_| {}).unwrap();
        let parts = split_at_lines(&path, size, 3).unwrap().expect("split");
        assert_eq!(parts.len(), 3);
        let mut split = Vec::new();
        let read = std::sync::atomic::AtomicU64::new(0);
        let many = check_transits_in_parts(&policy, &index, parts, &mut split, &|b| {
            read.fetch_add(b, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
        assert!(one.violations > 1000 && one.rejected_count >= 8, "{one:?}");
        assert_eq!(whole, split);
        assert_eq!(
            (
                one.transits,
                one.in_active_zone,
                one.violations,
                one.rejected_count
            ),
            (
                many.transits,
                many.in_active_zone,
                many.violations,
                many.rejected_count
            )
        );
        assert_eq!(one.rejected, many.rejected, "same lines, same reasons");
        assert_eq!(read.into_inner(), size, "progress covers the file");
        // A quote anywhere: one piece.
        std::fs::write(&path, text.replacen("T1,", "\"T1\",", 1)).unwrap();
        assert!(split_at_lines(&path, size + 2, 3).unwrap().is_none());
    }
}
