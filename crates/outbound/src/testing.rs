//! Real services for tests of this and other crates (feature `testing`):
//!
//! - [`SmtpSink`]: an `aiosmtpd` SMTP server (PyPI package `aiosmtpd`) writing what it
//!   receives into a Maildir, started on a free port of 127.0.0.1 and stopped on drop.
//!   Recipients whose local part starts with `refuse` are refused permanently (`550`),
//!   those starting with `defer` temporarily (`451`), to exercise error handling.
//! - [`HttpStub`]: an HTTP server recording every request and answering as told, standing
//!   in for the SMS gateway, WhatsApp Cloud API and Telegram Bot API.
//!
//! When `python3 -m aiosmtpd` is missing, [`SmtpSink::start`] returns `None` and the test
//! should return early; with `SPORTELLO_REQUIRE_SERVICES=1` (CI) it panics instead.

// Test support (feature `testing`): a failed set-up stops the test that asked for it.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Whether tests must fail (rather than skip) when an outside service is missing.
pub fn services_required() -> bool {
    std::env::var("SPORTELLO_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// The aiosmtpd handler: the stock Maildir handler, refusing some recipients on request.
const HANDLER: &str = r#"
from aiosmtpd.handlers import Mailbox


class Sink(Mailbox):
    """Maildir sink; refuses recipients whose local part starts with refuse/defer."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("refuse"):
            return "550 5.1.1 <%s>: Recipient address rejected" % address
        if local.startswith("defer"):
            return "451 4.3.0 <%s>: Try again later" % address
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"
"#;

/// A real SMTP server (aiosmtpd) on 127.0.0.1, storing messages in a Maildir.
pub struct SmtpSink {
    child: Child,
    port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts the server on a free port and waits until it accepts connections; `None`
    /// (with a line saying so) when aiosmtpd is not installed, unless
    /// `SPORTELLO_REQUIRE_SERVICES=1`, where that panics.
    pub fn start() -> Option<SmtpSink> {
        let available = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !available {
            assert!(
                !services_required(),
                "SPORTELLO_REQUIRE_SERVICES=1 but aiosmtpd is missing: pip install aiosmtpd"
            );
            eprintln!("skipping: aiosmtpd not available");
            return None;
        }
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        std::fs::write(dir.path().join("sportello_sink.py"), HANDLER)
            .unwrap_or_else(|e| panic!("writing the aiosmtpd handler: {e}"));
        let maildir = dir.path().join("maildir");
        let log = dir.path().join("aiosmtpd.log");
        let mut last_failure = String::new();
        for _ in 0..5 {
            let port = free_port();
            let log_file =
                std::fs::File::create(&log).unwrap_or_else(|e| panic!("aiosmtpd log: {e}"));
            let err_file = log_file
                .try_clone()
                .unwrap_or_else(|e| panic!("aiosmtpd log: {e}"));
            let mut child = Command::new("python3")
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "sportello_sink.Sink"])
                .arg(&maildir)
                .env("PYTHONPATH", dir.path())
                .stdin(Stdio::null())
                .stdout(log_file)
                .stderr(err_file)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start python3 -m aiosmtpd: {e}"));
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(SmtpSink {
                        child,
                        port,
                        maildir,
                        _dir: dir,
                    });
                }
                if let Ok(Some(status)) = child.try_wait() {
                    last_failure = format!(
                        "aiosmtpd exited ({status}): {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_failure = "aiosmtpd did not open its port within 15 s".into();
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        panic!("cannot start the SMTP sink: {last_failure}");
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:PORT`, for `outbound.*.smtp_url`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The Maildir it writes to.
    pub fn maildir(&self) -> &Path {
        &self.maildir
    }

    /// The raw bytes of every message received so far, oldest first. aiosmtpd adds
    /// `X-Peer`, `X-MailFrom` and `X-RcptTo` headers with the SMTP envelope.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut files = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let modified = entry.metadata().and_then(|m| m.modified()).ok();
                files.push((modified, entry.file_name(), path));
            }
        }
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, _, path)| std::fs::read(path).ok())
            .collect()
    }

    /// Waits until at least `n` messages arrived or `timeout` passed, and returns them all.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n || Instant::now() > deadline {
                return messages;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now (also what a test wants for "server down").
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// One request the stub received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// `POST`, `GET`…
    pub method: String,
    /// Path and query, e.g. `/bot123:abc/sendMessage`.
    pub path: String,
    /// Headers, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Default)]
struct StubState {
    requests: Mutex<Vec<RecordedRequest>>,
    answers: Mutex<HashMap<String, VecDeque<(u16, Value)>>>,
    counter: Mutex<u64>,
}

/// An HTTP server on 127.0.0.1 that records requests and answers as told: queued answers
/// per path first, else a success in the shape of the provider the path looks like
/// (Telegram `…/sendMessage`, WhatsApp `…/messages`, an SMS gateway otherwise).
pub struct HttpStub {
    addr: SocketAddr,
    state: Arc<StubState>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpStub {
    /// Starts the stub on a free port, inside the current Tokio runtime.
    pub async fn start() -> HttpStub {
        let state = Arc::new(StubState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("HTTP stub bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("HTTP stub address: {e}"));
        let app = Router::new().fallback(record).with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HttpStub { addr, state, task }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).clone()
    }

    /// Queues one answer for the next request to `path` (path without query).
    pub fn push_answer(&self, path: &str, status: u16, body: Value) {
        lock(&self.state.answers)
            .entry(path.to_owned())
            .or_default()
            .push_back((status, body));
    }
}

impl Drop for HttpStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn record(
    State(state): State<Arc<StubState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    lock(&state.requests).push(RecordedRequest {
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map_or_else(|| path.clone(), |p| p.as_str().to_owned()),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    });
    let queued = lock(&state.answers)
        .get_mut(&path)
        .and_then(VecDeque::pop_front);
    let (status, answer) = queued.unwrap_or_else(|| {
        let n = {
            let mut counter = lock(&state.counter);
            *counter += 1;
            *counter
        };
        let answer = if path.ends_with("/sendMessage") {
            let chat = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("chat_id").cloned())
                .unwrap_or(Value::Null);
            json!({"ok": true, "result": {"message_id": n, "chat": {"id": chat}}})
        } else if path.ends_with("/messages") {
            json!({
                "messaging_product": "whatsapp",
                "messages": [{"id": format!("wamid.{n}")}],
            })
        } else {
            json!({"id": format!("sms-{n}")})
        };
        (200, answer)
    });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(answer)).into_response()
}
