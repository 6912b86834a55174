//! Running the external tools (poppler-utils) under a time limit.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::process::{Command, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

use crate::error::ScanError;

/// What a finished tool run left behind.
pub(crate) struct Output {
    pub(crate) success: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// The Debian package that ships `tool`, for the operator's message.
fn package_of(tool: &str) -> &'static str {
    match tool {
        "pdfinfo" | "pdftoppm" | "pdfseparate" | "pdfunite" => "poppler-utils",
        "tiffcp" | "tiff2rgba" => "libtiff-tools",
        _ => "the system tools",
    }
}

/// Runs `tool args…` with no stdin, its output going to temporary files (so a chatty tool
/// cannot block on a full pipe), and kills it when it runs past `timeout`.
pub(crate) fn run(
    tool: &str,
    args: &[&std::ffi::OsStr],
    timeout: Duration,
) -> Result<Output, ScanError> {
    let mut stdout = tempfile::tempfile().map_err(|e| ScanError::Tool(format!("{tool}: {e}")))?;
    let mut stderr = tempfile::tempfile().map_err(|e| ScanError::Tool(format!("{tool}: {e}")))?;
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(clone(&stdout, tool)?)
        .stderr(clone(&stderr, tool)?)
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ScanError::ToolMissing(format!("{tool} (Debian package {})", package_of(tool)))
            } else {
                ScanError::Tool(format!("cannot start {tool}: {e}"))
            }
        })?;
    let status = match child.wait_timeout(timeout) {
        Ok(Some(status)) => status,
        Ok(None) => {
            // Kill, then reap, so no zombie is left behind.
            let _ = child.kill();
            let _ = child.wait();
            return Err(ScanError::Tool(format!(
                "{tool} did not finish within {} s and was stopped",
                timeout.as_secs_f32()
            )));
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ScanError::Tool(format!("waiting for {tool}: {e}")));
        }
    };
    // 127 is what a wrapper script exits with when the program it runs is not there.
    if status.code() == Some(127) {
        return Err(ScanError::ToolMissing(format!(
            "{tool} (Debian package {}): {}",
            package_of(tool),
            tail(&read_back(&mut stderr, 16 << 10, true))
        )));
    }
    Ok(Output {
        success: status.success(),
        stdout: read_back(&mut stdout, 64 << 20, false),
        stderr: read_back(&mut stderr, 16 << 10, true),
    })
}

fn clone(file: &File, tool: &str) -> Result<File, ScanError> {
    file.try_clone()
        .map_err(|e| ScanError::Tool(format!("{tool}: {e}")))
}

/// Reads back at most `cap` bytes of what a tool wrote, as lossy UTF-8: the first ones (the
/// tool's answer), or the last ones when `tail` (where the reason for a failure is).
fn read_back(file: &mut File, cap: u64, tail: bool) -> String {
    let mut bytes = Vec::new();
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = if tail { len.saturating_sub(cap) } else { 0 };
    if file.seek(SeekFrom::Start(start)).is_ok() {
        let _ = file.take(cap).read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The last few lines of a tool's complaint, for an error message.
pub(crate) fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(3);
    let joined = lines[start..].join("; ");
    if joined.is_empty() {
        "no message".to_owned()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tool_is_named() {
        match run("sportello-no-such-tool", &[], Duration::from_secs(5)) {
            Err(ScanError::ToolMissing(name)) => assert!(name.contains("sportello-no-such-tool")),
            Err(other) => panic!("expected ToolMissing, got {other:?}"),
            Ok(_) => panic!("expected ToolMissing, got success"),
        }
    }

    #[test]
    fn slow_tool_is_killed_at_the_time_limit() {
        match run(
            "sleep",
            &[std::ffi::OsStr::new("30")],
            Duration::from_millis(200),
        ) {
            Err(ScanError::Tool(msg)) => assert!(msg.contains("did not finish"), "{msg}"),
            Err(other) => panic!("expected a time-out, got {other:?}"),
            Ok(_) => panic!("expected a time-out, got success"),
        }
    }

    #[test]
    fn output_is_captured() {
        let out = run(
            "sh",
            &[
                std::ffi::OsStr::new("-c"),
                std::ffi::OsStr::new("echo out; echo err >&2; exit 3"),
            ],
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(!out.success);
        assert_eq!(out.stdout.trim(), "out");
        assert_eq!(tail(&out.stderr), "err");
        assert_eq!(tail(""), "no message");
    }
}
