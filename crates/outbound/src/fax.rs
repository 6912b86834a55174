//! Fax (`outbound.fax.gateway`): either an e-mail to the fax gateway
//! (`mailto:{number}@gateway`, through the `outbound.email` route) or a HylaFAX-style job
//! written into a spool folder (`spool:DIR`) that the fax server picks up.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use sportello_config::ConfigError;

use crate::smtp::SmtpRoute;
use crate::{Attachment, Envelope, SendError, Sent, bare_id};

/// Where faxes go.
#[derive(Debug, Clone)]
pub(crate) enum FaxGateway {
    /// The address template after `mailto:`, with `{number}` or `{digits}`.
    Mailto(String),
    /// The spool folder.
    Spool(PathBuf),
}

impl FaxGateway {
    /// The gateway, `Err(key)` when none is configured, or a configuration error.
    pub(crate) fn from_config(
        gateway: Option<&str>,
    ) -> Result<Result<FaxGateway, &'static str>, ConfigError> {
        const KEY: &str = "outbound.fax.gateway";
        let Some(gateway) = gateway.map(str::trim).filter(|g| !g.is_empty()) else {
            return Ok(Err(KEY));
        };
        let bad = |message: &str| ConfigError {
            key: KEY.into(),
            message: message.into(),
        };
        if let Some(template) = gateway.strip_prefix("mailto:") {
            if !template.contains('@')
                || !(template.contains("{number}") || template.contains("{digits}"))
            {
                return Err(bad("use mailto:{number}@gateway (or {digits})"));
            }
            Ok(Ok(FaxGateway::Mailto(template.to_owned())))
        } else if let Some(dir) = gateway.strip_prefix("spool:") {
            if dir.trim().is_empty() {
                return Err(bad("use spool:DIR"));
            }
            Ok(Ok(FaxGateway::Spool(PathBuf::from(dir.trim()))))
        } else {
            Err(bad("must be mailto:{number}@gateway or spool:DIR"))
        }
    }

    /// Sends the envelope's PDF(s) to the fax number in `envelope.to`.
    pub(crate) async fn send(
        &self,
        envelope: &Envelope,
        email: Result<&SmtpRoute, &&'static str>,
        date: SystemTime,
    ) -> Result<Sent, SendError> {
        let number = FaxNumber::parse(&envelope.to)?;
        let pdfs: Vec<&Attachment> = envelope.attachments.iter().filter(|a| a.is_pdf()).collect();
        if pdfs.is_empty() {
            return Err(SendError::Permanent(
                "a fax needs the letter as a PDF attachment".into(),
            ));
        }
        match self {
            FaxGateway::Mailto(template) => {
                let route = email.map_err(|k| SendError::NotConfigured(k))?;
                let to = template
                    .replace("{number}", &number.international)
                    .replace("{digits}", &number.digits);
                route.send(envelope, &to, pdfs.into_iter(), date).await
            }
            FaxGateway::Spool(dir) => {
                let job = job_name(&envelope.message_id);
                let dir = dir.clone();
                let subject = envelope.subject.clone();
                let documents: Vec<Vec<u8>> = pdfs.iter().map(|a| a.bytes.clone()).collect();
                let name = job.clone();
                tokio::task::spawn_blocking(move || {
                    write_job(&dir, &name, &number.international, &subject, &documents)
                })
                .await
                .map_err(|e| SendError::Retryable(format!("fax spool task: {e}")))?
                .map_err(|e| SendError::Retryable(format!("fax spool: {e}")))?;
                Ok(Sent {
                    provider_ref: Some(job),
                })
            }
        }
    }
}

/// A fax number in the two forms gateways want.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FaxNumber {
    /// Digits, a leading `+` written as `00` (what a dialler understands).
    international: String,
    /// Digits only.
    digits: String,
}

impl FaxNumber {
    fn parse(raw: &str) -> Result<FaxNumber, SendError> {
        let raw = raw.trim();
        let (plus, rest) = match raw.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        if rest
            .chars()
            .any(|c| !(c.is_ascii_digit() || matches!(c, ' ' | '.' | '-' | '/' | '(' | ')')))
        {
            return Err(SendError::Permanent(format!("not a fax number: {raw:?}")));
        }
        let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
        if digits.len() < 3 || digits.len() > 20 {
            return Err(SendError::Permanent(format!("not a fax number: {raw:?}")));
        }
        let international = if plus {
            format!("00{digits}")
        } else {
            digits.clone()
        };
        Ok(FaxNumber {
            international,
            digits,
        })
    }
}

/// `sportello-<message id>` with everything but letters, digits, `.`, `_` and `-` made `_`.
fn job_name(message_id: &str) -> String {
    let id: String = bare_id(message_id)
        .chars()
        .take(120)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("sportello-{id}")
}

/// Writes the documents and then the job file (the job file's arrival is what the fax
/// server acts on), each atomically; a job already there is left alone.
fn write_job(
    dir: &Path,
    job: &str,
    number: &str,
    subject: &str,
    documents: &[Vec<u8>],
) -> std::io::Result<()> {
    let job_file = format!("{job}.job");
    if dir.join(&job_file).is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let mut names = Vec::new();
    for (i, pdf) in documents.iter().enumerate() {
        let name = if documents.len() == 1 {
            format!("{job}.pdf")
        } else {
            format!("{job}-{}.pdf", i + 1)
        };
        write_atomically(dir, &name, pdf)?;
        names.push(name);
    }
    let subject: String = subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut description = format!("number:{number}\n");
    for name in &names {
        description.push_str(&format!("document:{name}\n"));
    }
    description.push_str(&format!(
        "subject:{}\nmailaddr:\npriority:127\n",
        subject.trim()
    ));
    write_atomically(dir, &job_file, description.as_bytes())?;
    // The renames themselves must survive a crash.
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Writes `name` in `dir` through a hidden temporary file, synced, then renamed.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_normalised() {
        let n = FaxNumber::parse("+39 055 123.456").unwrap();
        assert_eq!(n.international, "0039055123456");
        assert_eq!(n.digits, "39055123456");
        assert_eq!(
            FaxNumber::parse("055/123456").unwrap().international,
            "055123456"
        );
        assert!(FaxNumber::parse("fax@example.it").is_err());
        assert!(FaxNumber::parse("+").is_err());
    }

    #[test]
    fn job_names_are_safe() {
        assert_eq!(
            job_name("<out-42.1a2b@sportello.comune.example.it>"),
            "sportello-out-42.1a2b_sportello.comune.example.it"
        );
        assert_eq!(job_name("../../etc/passwd"), "sportello-.._.._etc_passwd");
    }

    #[test]
    fn gateway_forms() {
        assert!(matches!(
            FaxGateway::from_config(Some("mailto:{number}@fax.example.it")),
            Ok(Ok(FaxGateway::Mailto(_)))
        ));
        assert!(matches!(
            FaxGateway::from_config(Some("spool:/var/spool/fax")),
            Ok(Ok(FaxGateway::Spool(_)))
        ));
        assert!(matches!(
            FaxGateway::from_config(None),
            Ok(Err("outbound.fax.gateway"))
        ));
        assert!(FaxGateway::from_config(Some("mailto:fax@example.it")).is_err());
        assert!(FaxGateway::from_config(Some("ftp://x")).is_err());
    }
}
