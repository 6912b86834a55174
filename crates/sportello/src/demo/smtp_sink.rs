//! An SMTP server inside the process, for seeding only: while the demo replays its months,
//! the office's e-mail and PEC routes point at it, so the real sending worker delivers
//! every message over SMTP, and what it delivered is what the PEC provider's receipts are
//! made from. It keeps the messages in memory and stops when seeding ends; `serve` itself
//! sends nothing anywhere unless `[outbound]` is configured.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A message as the server received it.
#[derive(Debug, Clone)]
pub(super) struct Delivered {
    /// `RCPT TO` addresses.
    pub to: Vec<String>,
    /// The message, dot-unstuffed, with CRLF line ends.
    pub data: Vec<u8>,
}

/// The running server; stopped when dropped.
pub(super) struct SmtpSink {
    port: u16,
    delivered: Arc<Mutex<Vec<Delivered>>>,
    task: JoinHandle<()>,
}

impl SmtpSink {
    /// Listens on a free port of 127.0.0.1.
    pub async fn start() -> std::io::Result<SmtpSink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let delivered: Arc<Mutex<Vec<Delivered>>> = Arc::default();
        let sink = delivered.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    if let Err(e) = converse(stream, &sink).await {
                        tracing::debug!(error = %e, "demo SMTP connection ended");
                    }
                });
            }
        });
        Ok(SmtpSink {
            port,
            delivered,
            task,
        })
    }

    /// The `smtp_url` of a route that delivers here (plain text, on the loopback).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?starttls=false", self.port)
    }

    /// The messages received since the last call.
    pub fn take(&self) -> Vec<Delivered> {
        std::mem::take(
            &mut *self
                .delivered
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One SMTP session: greeting, EHLO (with 8BITMIME and SMTPUTF8, which the office's
/// client asks for), MAIL, RCPT, DATA, RSET, NOOP, QUIT.
async fn converse(stream: TcpStream, sink: &Mutex<Vec<Delivered>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sportello-demo ESMTP\r\n").await?;
    let mut to: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let command = String::from_utf8_lossy(&line).trim_end().to_owned();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let answer: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sportello-demo\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "HELO" | "NOOP" => b"250 OK\r\n",
            "MAIL" | "RSET" => {
                to.clear();
                b"250 OK\r\n"
            }
            "RCPT" => {
                let address = command
                    .split_once('<')
                    .and_then(|(_, rest)| rest.split_once('>'))
                    .map(|(address, _)| address.to_owned())
                    .unwrap_or_default();
                to.push(address);
                b"250 OK\r\n"
            }
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = Vec::new();
                loop {
                    line.clear();
                    if lines.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
                    data.extend_from_slice(unstuffed);
                }
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Delivered {
                        to: std::mem::take(&mut to),
                        data,
                    });
                b"250 OK queued\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 Command not implemented\r\n",
        };
        write.write_all(answer).await?;
    }
}
