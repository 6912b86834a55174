//! Throw-away installations of Sportello: a data folder, a configuration, the CLI and
//! the server process.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sportello_store::testing::test_database_url;

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_sportello")
}

/// One installation.
pub struct Install {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub database_url: String,
    pub port: u16,
    server: Option<Child>,
    /// Where the last `serve` started by [`Install::start`] writes its output.
    server_log: Option<PathBuf>,
    pub client: reqwest::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18_999)
}

impl Install {
    /// A fresh installation with `extra` appended to its configuration file.
    pub async fn new(extra: &str) -> Install {
        let dir = tempfile::tempdir().unwrap();
        let database_url = test_database_url(dir.path()).await;
        let port = free_port();
        let config = dir.path().join("sportello.toml");
        let text = format!(
            "data_dir = \"{}\"\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n[database]\nurl = \"{database_url}\"\n{extra}",
            dir.path().join("data").display()
        );
        std::fs::write(&config, text).unwrap();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Install {
            dir,
            config,
            database_url,
            port,
            server: None,
            server_log: None,
            client,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs a CLI command against this installation.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_env(args, &[])
    }

    /// Runs a CLI command with configuration overridden by environment variables.
    pub fn cli_with_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        Command::new(binary())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("SPORTELLO_CONFIG")
            .envs(envs.iter().copied())
            .output()
            .unwrap()
    }

    /// Adds a user and returns its API token.
    pub fn user(&self, login: &str, role: &str) -> String {
        self.user_with_password(login, role).1
    }

    /// Adds a user and returns its password and API token.
    pub fn user_with_password(&self, login: &str, role: &str) -> (String, String) {
        let out = self.cli(&["user", "add", login, "--role", role]);
        assert!(
            out.status.success(),
            "user add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = |prefix: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .map(str::to_owned)
                .expect("the line")
        };
        (line("password: "), line("token: "))
    }

    /// Starts `serve` (with extra arguments) and waits until `/healthz` answers.
    pub async fn start(&mut self, args: &[&str]) -> String {
        self.start_with_env(args, &[]).await
    }

    /// Starts `serve` with extra environment variables; returns its output so far.
    pub async fn start_with_env(&mut self, args: &[&str], envs: &[(&str, &str)]) -> String {
        let (child, log) = self.launch(args, envs);
        self.server = Some(child);
        self.server_log = Some(log.clone());
        let base = self.base();
        wait_healthy(&self.client, &base, self.server.as_mut().unwrap(), &log).await
    }

    /// Starts one more `serve` process of this installation (same configuration and
    /// database) listening on another port, as a second instance would.
    pub async fn start_instance(&self, envs: &[(&str, &str)]) -> Instance {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let (mut child, log) = self.launch(&["--listen", &listen], envs);
        wait_healthy(&self.client, &format!("http://{listen}"), &mut child, &log).await;
        Instance { child, log }
    }

    fn launch(&self, args: &[&str], envs: &[(&str, &str)]) -> (Child, PathBuf) {
        static LAUNCHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = LAUNCHES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log = self.dir.path().join(format!("serve-{n}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(binary())
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("SPORTELLO_CONFIG")
            .envs(envs.iter().copied())
            .stdout(Stdio::from(log_file.try_clone().unwrap()))
            .stderr(Stdio::from(log_file))
            .spawn()
            .unwrap();
        (child, log)
    }

    /// What the server printed and logged so far.
    pub fn server_log(&self) -> String {
        self.server_log
            .as_ref()
            .and_then(|log| std::fs::read_to_string(log).ok())
            .unwrap_or_default()
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server gracefully (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A JSON request; returns status, content type and parsed body (Null when not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, String, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base(), path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = resp.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if let Some(found) = numeric_instant(&value, "$") {
            panic!("{path}: an instant as a number at {found} (RFC 3339 everywhere): {text}");
        }
        (status, ctype, value)
    }
}

/// Where a JSON answer carries a number that looks like an instant (CONTRACT §5 wants
/// RFC 3339 strings): Unix milliseconds between 2000 and 2100 anywhere, or Unix seconds
/// in that span under a name that speaks of time.
pub fn numeric_instant(value: &Value, at: &str) -> Option<String> {
    const MS: std::ops::Range<i64> = 946_684_800_000..4_102_444_800_000;
    const SECONDS: std::ops::Range<i64> = 946_684_800..4_102_444_800;
    match value {
        Value::Object(map) => map.iter().find_map(|(key, v)| {
            let here = format!("{at}.{key}");
            match v.as_i64() {
                Some(n) if MS.contains(&n) || (SECONDS.contains(&n) && is_time_name(key)) => {
                    Some(here)
                }
                _ => numeric_instant(v, &here),
            }
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| match v.as_i64() {
                Some(n) if MS.contains(&n) => Some(format!("{at}[{i}]")),
                _ => numeric_instant(v, &format!("{at}[{i}]")),
            }),
        _ => None,
    }
}

/// Whether a member's name says it holds a time.
pub fn is_time_name(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["_at", "_on", "_from", "_to", "_until", "_since"]
        .iter()
        .any(|end| key.ends_with(end))
        || ["time", "date", "instant", "when", "valid"]
            .iter()
            .any(|word| key.contains(word))
        || key == "at"
}

impl Install {
    /// Opens a case with the contract's example body and returns its reference.
    pub async fn create_case(&self, token: &str) -> String {
        let (status, _, case) = self
            .call("POST", "/api/v1/cases", Some(token), Some(case_body()))
            .await;
        assert_eq!(status, 201, "{case}");
        case["reference"].as_str().unwrap().to_owned()
    }

    /// A case as the API shows it (it must exist).
    pub async fn case(&self, token: &str, reference: &str) -> Value {
        let (status, _, case) = self
            .call(
                "GET",
                &format!("/api/v1/cases/{reference}"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(status, 200, "{case}");
        case
    }

    /// Posts a multipart form to a case's documents (`reference` need not exist).
    pub async fn upload(
        &self,
        reference: &str,
        token: Option<&str>,
        form: reqwest::multipart::Form,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!(
                "{}/api/v1/cases/{reference}/documents",
                self.base()
            ))
            .multipart(form);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    /// Downloads a document by its id, as `token`.
    pub async fn document(&self, token: &str, id: &str) -> reqwest::Response {
        self.client
            .get(format!("{}/api/v1/documents/{id}", self.base()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

/// A form with one file part, as the upload endpoint expects.
pub fn file_form(bytes: Vec<u8>, filename: &str) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(filename.to_owned()),
    )
}

/// Waits until a server answers `/healthz`; returns its output so far.
async fn wait_healthy(
    client: &reqwest::Client,
    base: &str,
    child: &mut Child,
    log: &PathBuf,
) -> String {
    // `serve --demo` seeds its office before it answers: a debug build on a loaded
    // two-core machine has taken over a minute. A server that dies ends the wait at once.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            return std::fs::read_to_string(log).unwrap_or_default();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "server exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "server not healthy in time: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A further server process of an installation; killed when dropped.
pub struct Instance {
    child: Child,
    log: PathBuf,
}

impl Instance {
    /// What it printed and logged so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills it at once (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Drop for Install {
    fn drop(&mut self) {
        self.kill();
        sportello_store::testing::drop_test_database_blocking(&self.database_url);
    }
}

/// The citizen used throughout the contract's examples.
pub fn citizen() -> Value {
    serde_json::json!({"fiscal_code": "RSSMRA80A01H501U", "name": "Mario Rossi", "email": "mario.rossi@example.it"})
}

/// A valid case body.
pub fn case_body() -> Value {
    serde_json::json!({"case_type": "ztl_permit", "subject": "Permesso residenti", "channel": "counter", "citizen": citizen()})
}

pub use sportello_store::testing::tools_present;

/// A started installation with the users asked (login, role), each with its password and
/// API token, in the order asked.
pub async fn started_with(users: &[(&str, &str)]) -> (Install, Vec<(String, String)>) {
    let mut install = Install::new("").await;
    let credentials = users
        .iter()
        .map(|(login, role)| install.user_with_password(login, role))
        .collect();
    install.start(&[]).await;
    (install, credentials)
}

impl Install {
    /// Performs a workflow action on a case through the API and expects it done.
    pub async fn act(&self, token: &str, reference: &str, action: Value) {
        let (status, _, body) = self
            .call(
                "POST",
                &format!("/api/v1/cases/{reference}/actions"),
                Some(token),
                Some(action),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Ingests one e-mail (its raw text) through the CLI; the JSON line it printed.
    pub fn ingest_mail(&self, name: &str, raw: &str) -> Value {
        let eml = self.dir.path().join(name);
        std::fs::write(&eml, raw).unwrap();
        let out = self.cli(&["ingest", eml.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Install {
    /// A residents' permit for `plates`, issued through the API from a complete case of the
    /// contract's citizen: the case's reference and the permit's number.
    pub async fn issued_permit(&self, token: &str, plates: &[&str]) -> (String, String) {
        let mut body = case_body();
        body["fields"] = serde_json::json!({"category": "residenti", "plates": plates,
            "documents": ["documento_identita", "carta_circolazione"]});
        let (status, _, case) = self
            .call("POST", "/api/v1/cases", Some(token), Some(body))
            .await;
        assert_eq!(status, 201, "{case}");
        let reference = case["reference"].as_str().unwrap().to_owned();
        for action in ["start_review", "approve", "issue"] {
            self.act(token, &reference, serde_json::json!({ "action": action }))
                .await;
        }
        let (_, _, case) = self
            .call(
                "GET",
                &format!("/api/v1/cases/{reference}"),
                Some(token),
                None,
            )
            .await;
        let number = case["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "permit_issued")
            .and_then(|e| e["detail"]["permit"].as_str())
            .expect("the issued permit in the journal")
            .to_owned();
        (reference, number)
    }
}

impl Install {
    /// Imports a permit register of these CSV rows (under the §6.2 header) through the CLI,
    /// every row accepted.
    pub fn import_register(&self, rows: &str) {
        let register = self.dir.path().join("register.csv");
        std::fs::write(
            &register,
            format!(
                "permit,category,holder_fiscal_code,holder_name,plate,country,valid_from,valid_to,status\n{rows}"
            ),
        )
        .unwrap();
        let out = self.cli(&["permits", "import", register.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
