//! Two `sportello serve` on one PostgreSQL database and one S3 bucket, behind a real
//! nginx (round robin), through a day's work: a staff session valid on both, an upload
//! stored by one and served by the other, a mailbox polled by one, a scanner folder both
//! watch filed once, acknowledgements, reminders, lapsed suspensions and expired permits
//! acted on once, each message sent once; then the instance holding the ticks is
//! SIGKILLed and the other takes its duties over once their leases lapse, while requests
//! through nginx keep succeeding.
//!
//! Runs in the PostgreSQL pass (`SPORTELLO_TEST_DATABASE_URL`) with the S3 server, nginx,
//! Dovecot, aiosmtpd, faketime and poppler/qpdf/ImageMagick; a missing one fails it under
//! `SPORTELLO_REQUIRE_SERVICES=1`. Ignored by default (it takes a minute or two).

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sportello_outbound::testing::SmtpSink;
use sqlx::AnyPool;
use sqlx::Row;

use crate::browser::Browser;
use crate::dovecot::Dovecot;
use crate::harness::{Install, binary, case_body, tools_present};

/// Lease and tick of the duties in this test: a dead instance's duties move within
/// seconds.
const TICK_SECONDS: u64 = 1;
const LEASE_SECONDS: u64 = 4;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `serve` process (killed when dropped).
struct Serve {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Serve {
    /// Starts `serve` of `install` on a free port, its command prefixed by `wrapper`
    /// (e.g. faketime), with `envs`, and waits for `/healthz`.
    async fn start(
        install: &Install,
        name: &str,
        wrapper: &[&str],
        envs: &[(&str, &str)],
    ) -> Serve {
        let port = free_port();
        let log = install.dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary());
                c
            }
            None => Command::new(binary()),
        };
        // Its own process group: a wrapper (faketime) runs the server as its child, and
        // both must go when the instance is killed.
        let child = command
            .process_group(0)
            .arg("--config")
            .arg(&install.config)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .current_dir(install.dir.path())
            .env_remove("SPORTELLO_CONFIG")
            .env(
                "SPORTELLO_DATA_DIR",
                install.dir.path().join(format!("data-{name}")),
            )
            .envs(envs.iter().copied())
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        let mut serve = Serve {
            child: Some(child),
            port,
            log,
        };
        let start = Instant::now();
        loop {
            let healthy = install
                .client
                .get(format!("{}/healthz", serve.base()))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                break;
            }
            if let Some(Ok(Some(status))) = serve.child.as_mut().map(Child::try_wait) {
                panic!("{name} exited with {status}: {}", serve.output());
            }
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "{name} did not start: {}",
                serve.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        serve
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL to the instance's process group, as a crash or an OOM kill would.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

/// nginx (Debian's) in front of `upstreams`, round robin, on a free port, with its whole
/// configuration in a temporary folder; stopped (SIGQUIT, then SIGKILL) when dropped.
struct Nginx {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

/// The nginx binary: on the PATH, or where Debian puts it.
fn nginx_binary() -> Option<String> {
    if tools_present_quietly("nginx") {
        return Some("nginx".into());
    }
    Path::new("/usr/sbin/nginx")
        .exists()
        .then(|| "/usr/sbin/nginx".into())
}

fn tools_present_quietly(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The configuration the deployment guide describes, on loopback ports: round robin,
/// idempotent requests passed to the other instance when one fails, a POST only when it
/// never reached the dead one (connection refused).
fn nginx_config(dir: &Path, port: u16, upstreams: &[u16], as_root: bool) -> String {
    let servers: String = upstreams
        .iter()
        .map(|p| format!("        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n"))
        .collect();
    let d = dir.display();
    format!(
        "{user}worker_processes 1;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
             access_log {d}/access.log;\n\
             client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n\
             client_max_body_size 50m;\n\
             upstream sportello {{\n{servers}    }}\n\
             server {{\n\
                 listen 127.0.0.1:{port};\n\
                 location / {{\n\
                     proxy_pass http://sportello;\n\
                     proxy_set_header Host $http_host;\n\
                     proxy_set_header X-Forwarded-For $remote_addr;\n\
                     proxy_set_header X-Forwarded-Proto $scheme;\n\
                     proxy_next_upstream error timeout http_502 http_503;\n\
                     proxy_next_upstream_tries 2;\n\
                     proxy_connect_timeout 2s;\n\
                 }}\n\
             }}\n\
         }}\n",
        user = if as_root { "user root;\n" } else { "" },
    )
}

impl Nginx {
    async fn start(upstreams: &[u16]) -> Nginx {
        let program = nginx_binary().unwrap();
        let dir = tempfile::tempdir().unwrap().keep();
        let port = free_port();
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, nginx_config(&dir, port, upstreams, as_root)).unwrap();
        let child = Command::new(program)
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .arg("-g")
            .arg(format!(
                "daemon off; pid {};",
                dir.join("nginx.pid").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("stderr.log")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let mut nginx = Nginx {
            child: Some(child),
            port,
            dir,
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(Ok(Some(status))) = nginx.child.as_mut().map(Child::try_wait) {
                panic!(
                    "nginx exited with {status}: {}",
                    std::fs::read_to_string(nginx.dir.join("stderr.log")).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "nginx did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        nginx
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGQUIT: the master stops its workers and exits (a SIGKILLed master would
            // leave its workers holding the port).
            let _ = Command::new("kill")
                .arg("-QUIT")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn count(pool: &AnyPool, sql: &str) -> i64 {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap()
        .get::<i64, _>(0)
}

/// Waits until `check` holds (polling), or fails with `what` after `limit`.
async fn until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A citizen's e-mail to the office's mailbox.
fn mail(i: usize, tag: &str) -> Vec<u8> {
    format!(
        "From: Cittadino {i} <cittadino{i}.{tag}@example.it>\r\n\
         To: protocollo@comune.example.it\r\n\
         Subject: Richiesta permesso ZTL {tag} {i}\r\n\
         Message-ID: <scale{i}.{tag}@cittadini.example.it>\r\n\
         Date: {}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n\
         Buongiorno, chiedo il permesso per la mia auto ({tag} {i}).\r\n",
        sportello_domain::clock::Clock::now(&sportello_domain::clock::SystemClock).to_rfc2822()
    )
    .into_bytes()
}

fn header(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_owned();
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// A scanned batch for `reference`: its cover sheet (fetched through the proxy) and one
/// page, dropped into `folder` the way a scanner does (written aside, then renamed).
async fn scan_batch(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    reference: &str,
    work: &Path,
    folder: &Path,
) {
    let cover = client
        .get(format!("{base}/api/v1/cases/{reference}/cover-sheet"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(cover.status(), 200);
    let cover_pdf = work.join(format!("cover-{reference}.pdf"));
    std::fs::write(&cover_pdf, cover.bytes().await.unwrap()).unwrap();
    // As a scanner gives it: the pages as images, one Group 4 TIFF.
    let cover_png = work.join(format!("cover-{reference}"));
    let status = Command::new("pdftoppm")
        .args(["-r", "150", "-png", "-singlefile"])
        .arg(&cover_pdf)
        .arg(&cover_png)
        .status()
        .unwrap();
    assert!(status.success());
    let page = work.join(format!("page-{reference}.png"));
    let status = Command::new("convert")
        .args([
            "-size",
            "1240x1754",
            "xc:white",
            "-fill",
            "black",
            "-pointsize",
            "40",
        ])
        .args([
            "-annotate",
            "+150+200",
            &format!("Allegato della pratica {reference}"),
        ])
        .arg(&page)
        .status()
        .unwrap();
    assert!(status.success());
    let aside = folder.join(format!("scan-{reference}.tif.part"));
    let status = Command::new("convert")
        .arg(cover_png.with_extension("png"))
        .arg(&page)
        .args(["-monochrome", "-compress", "Group4"])
        .arg(format!("tiff:{}", aside.display()))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::rename(&aside, folder.join(format!("scan-{reference}.tif"))).unwrap();
}

/// Opens a case whose integration request began `days` ago, through an instance whose
/// clock runs that many days behind (libfaketime; its monotonic clock untouched), on the
/// same database and bucket; returns the case's reference.
async fn case_waiting_since(install: &Install, token: &str, days: u32, name: &str) -> String {
    let offset = format!("-{days}d");
    let past = Serve::start(
        install,
        name,
        &["faketime", "-f", &offset],
        &[
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ("SPORTELLO_OUTBOUND__SENDER", "false"),
        ],
    )
    .await;
    let client = &install.client;
    let created: Value = client
        .post(format!("{}/api/v1/cases", past.base()))
        .bearer_auth(token)
        .json(&case_body())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reference = created["reference"].as_str().unwrap().to_owned();
    for action in [
        json!({"action": "start_review"}),
        json!({"action": "request_integration", "missing": ["carta_circolazione"]}),
    ] {
        let resp = client
            .post(format!("{}/api/v1/cases/{reference}/actions", past.base()))
            .bearer_auth(token)
            .json(&action)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{action}");
    }
    drop(past);
    reference
}

/// A permit register of one permit whose validity ended an hour ago (instants from the
/// clock, never a calendar date), imported through the CLI.
fn import_expired_permit(install: &Install, number: &str, plate: &str) {
    let now = sportello_domain::clock::Clock::now(&sportello_domain::clock::SystemClock);
    let csv = format!(
        "permit,category,holder_fiscal_code,holder_name,plate,country,valid_from,valid_to,status\n\
         {number},residenti,RSSMRA80A01H501U,Mario Rossi,{plate},IT,{},{},active\n",
        (now - chrono::Duration::days(30)).to_rfc3339(),
        (now - chrono::Duration::hours(1)).to_rfc3339(),
    );
    let path = install.dir.path().join(format!("{number}.csv"));
    std::fs::write(&path, csv).unwrap();
    let out = install.cli(&["permits", "import", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Duty (and mailbox) → the pid of the instance holding it, lapsed or not.
async fn holders(pool: &AnyPool) -> BTreeMap<String, (String, i64, i64)> {
    let mut out = BTreeMap::new();
    for row in sqlx::query("SELECT duty, holder, acquired_at, expires_at FROM duty_leases")
        .fetch_all(pool)
        .await
        .unwrap()
    {
        out.insert(
            row.get::<String, _>("duty"),
            (
                row.get::<String, _>("holder"),
                row.get::<i64, _>("acquired_at"),
                row.get::<i64, _>("expires_at"),
            ),
        );
    }
    for row in sqlx::query(
        "SELECT mailbox, lease_owner, lease_until FROM mailbox_state WHERE lease_owner IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    {
        out.insert(
            format!("mailbox:{}", row.get::<String, _>("mailbox")),
            (
                row.get::<String, _>("lease_owner"),
                0,
                row.get::<i64, _>("lease_until"),
            ),
        );
    }
    out
}

fn held_by(holder: &str, serve: &Serve) -> bool {
    holder.contains(&format!(":{}:", serve.pid()))
}

/// Every message the outbound queue says it sent reached the SMTP server exactly once,
/// and nothing else did.
async fn each_message_sent_once(pool: &AnyPool, sink: &SmtpSink) -> usize {
    let sent: Vec<String> = sqlx::query(
        "SELECT message_id FROM outbound_messages WHERE status IN ('sent', 'accepted', 'delivered')",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>("message_id"))
    .collect();
    let received = sink.messages();
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for raw in &received {
        let id = header(raw, "Message-ID")
            .unwrap_or_default()
            .trim_matches(['<', '>'])
            .to_owned();
        *by_id.entry(id).or_default() += 1;
    }
    for id in &sent {
        assert_eq!(
            by_id.get(id).copied(),
            Some(1),
            "message {id} sent {by_id:?}"
        );
    }
    assert_eq!(received.len(), sent.len(), "{by_id:?} vs {sent:?}");
    sent.len()
}

#[tokio::test]
#[ignore = "two servers behind nginx on PostgreSQL and S3 (about two minutes); run with --ignored"]
async fn two_instances_behind_nginx_share_a_day_of_work_and_survive_a_kill() {
    let Ok(admin) = std::env::var(sportello_store::testing::DATABASE_ENV) else {
        eprintln!(
            "skipped: several instances need PostgreSQL; this test runs in the PostgreSQL pass (SPORTELLO_TEST_DATABASE_URL)"
        );
        return;
    };
    assert!(admin.starts_with("postgres"), "{admin}");
    let Some(s3) = crate::backup::s3_documents() else {
        return;
    };
    if nginx_binary().is_none() {
        assert!(
            !sportello_store::testing::services_required(),
            "SPORTELLO_REQUIRE_SERVICES=1 but nginx is not installed"
        );
        eprintln!("skipped: nginx not installed");
        return;
    }
    if !tools_present(&["faketime", "convert", "pdftoppm"]) {
        return;
    }
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let Some(dovecot) = Dovecot::start().await else {
        return;
    };

    // One installation: PostgreSQL, the S3 bucket, a shared scanner folder, one mailbox,
    // e-mail out; each instance has its own data folder (its staging area), as on two hosts.
    let scan_dir = tempfile::tempdir().unwrap();
    let install = Install::new(&format!(
        "{s3}[scan]\nwatch_dir = \"{}\"\npoll_seconds = 1\n\
         [duties]\ntick_seconds = {TICK_SECONDS}\nlease_seconds = {LEASE_SECONDS}\n\
         [outbound]\nlease_seconds = 5\nretry_base_seconds = 1\n\
         [outbound.email]\nsmtp_url = \"{}\"\nfrom = \"protocollo@comune.example.it\"\n\
         [[mailbox]]\nname = \"protocollo\"\nchannel = \"email\"\nimap_url = \"{}\"\npoll_seconds = 1\nlease_seconds = 3\n",
        scan_dir.path().display(),
        sink.url(),
        dovecot.url(),
    ))
    .await;
    // The proxy is the only trusted peer: the client's address comes from its header.
    let text = std::fs::read_to_string(&install.config).unwrap();
    std::fs::write(
        &install.config,
        format!("trusted_proxies = [\"127.0.0.1\"]\n{text}"),
    )
    .unwrap();
    let (password, token) = install.user_with_password("anna", "supervisor");
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(&install.database_url)
        .await
        .unwrap();

    let mut a = Serve::start(&install, "a", &[], &[]).await;
    let mut b = Serve::start(&install, "b", &[], &[]).await;
    let nginx = Nginx::start(&[a.port, b.port]).await;
    let proxy = nginx.base();
    let client = install.client.clone();

    // A staff session signed in through the proxy is good on both instances.
    let mut browser = Browser::at(&proxy);
    let answer = browser.sign_in("anna", &password).await;
    assert_eq!(answer.status, 303, "sign-in through nginx: {}", answer.body);
    for base in [a.base(), b.base(), proxy.clone(), proxy.clone()] {
        browser.set_base(&base);
        let page = browser.get("/ufficio").await;
        assert_eq!(page.status, 200, "/ufficio on {base}: {}", page.location);
    }
    // A wrong password through the proxy is logged with the client's own address (the
    // test connects from 127.0.0.2; the instances see nginx at 127.0.0.1).
    let outsider = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut stranger = Browser::with_client(outsider, &proxy);
    stranger.sign_in("anna", "not the password at all").await;
    until(Duration::from_secs(10), "the failed sign-in in the security log", || {
        let pool = pool.clone();
        async move {
            count(
                &pool,
                "SELECT COUNT(*) FROM security_events WHERE kind = 'sign_in_failed' AND address = '127.0.0.2'",
            )
            .await
                == 1
        }
    })
    .await;

    // Cases through the proxy (each acknowledged to the citizen once).
    let mut references = Vec::new();
    for _ in 0..6 {
        let resp = client
            .post(format!("{proxy}/api/v1/cases"))
            .bearer_auth(&token)
            .json(&case_body())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let case: Value = resp.json().await.unwrap();
        references.push(case["reference"].as_str().unwrap().to_owned());
    }
    // An upload stored by one instance is served by the other, byte for byte.
    let bytes = format!("%PDF-1.4\n% caricato su {} \n", a.base()).into_bytes();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes.clone()).file_name("delega.pdf"),
    );
    let resp = client
        .post(format!(
            "{}/api/v1/cases/{}/documents",
            a.base(),
            references[0]
        ))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let doc: Value = resp.json().await.unwrap();
    let id = doc["id"].as_str().unwrap();
    for base in [b.base(), proxy.clone(), proxy.clone()] {
        let got = client
            .get(format!("{base}/api/v1/documents/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200, "{base}");
        assert_eq!(got.bytes().await.unwrap().to_vec(), bytes, "{base}");
    }

    // Mail, paper, and the work the clock brings: an integration request 27 days old (a
    // reminder is due), one 31 days old (the suspension lapses), a permit that expired.
    dovecot
        .deliver(&(0..4).map(|i| mail(i, "prima")).collect::<Vec<_>>(), false)
        .await;
    let work = tempfile::tempdir().unwrap();
    scan_batch(
        &client,
        &proxy,
        &token,
        &references[1],
        work.path(),
        scan_dir.path(),
    )
    .await;
    let reminded = case_waiting_since(&install, &token, 27, "past-1").await;
    let lapsing = case_waiting_since(&install, &token, 31, "past-2").await;
    import_expired_permit(&install, "RES-SCALE-1", "AB123CD");

    let expect_before = (4, 1, 1, 1, 1, 0);
    until(Duration::from_secs(120), "the day's work done", || {
        let pool = pool.clone();
        let (reminded, lapsing) = (reminded.clone(), lapsing.clone());
        async move { progress(&pool, &reminded, &lapsing, "RES-SCALE-1").await == expect_before }
    })
    .await;
    // A few more ticks of both instances: still once each.
    tokio::time::sleep(Duration::from_secs(3 * TICK_SECONDS + 2)).await;
    assert_once(&pool, &reminded, &lapsing, "RES-SCALE-1", &references[1]).await;
    assert_eq!(
        progress(&pool, &reminded, &lapsing, "RES-SCALE-1").await,
        expect_before
    );
    assert_eq!(processed(scan_dir.path()), 1, "the batch moved once");
    // The scanned page's text, read by one instance's text worker, is found once through
    // the proxy (whichever instance answers).
    let scanned = references[1].clone();
    until(
        Duration::from_secs(120),
        "the scanned page found by its text",
        || {
            let (client, proxy, token, scanned) = (
                client.clone(),
                proxy.clone(),
                token.clone(),
                scanned.clone(),
            );
            async move {
                let found: Value = client
                    .get(format!("{proxy}/api/v1/search?q=allegato%20pratica"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap_or(Value::Null);
                let hits: Vec<&Value> = found["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|i| i["reference"] == scanned.as_str() && i["document_id"].is_string())
                    .collect();
                assert!(hits.len() <= 1, "the page indexed twice: {found}");
                hits.len() == 1
            }
        },
    )
    .await;
    let sent_before = each_message_sent_once(&pool, &sink).await;
    assert!(
        sent_before >= 7,
        "acknowledgements and the reminder: {sent_before}"
    );
    let acks = count(
        &pool,
        "SELECT COUNT(*) FROM outbound_messages WHERE idempotency_key LIKE 'ack:%'",
    )
    .await;
    let acked = count(&pool, "SELECT COUNT(DISTINCT idempotency_key) FROM outbound_messages WHERE idempotency_key LIKE 'ack:%'").await;
    assert_eq!(acks, acked);
    // Each duty has one holder among the two.
    let before = holders(&pool).await;
    for duty in ["sla", "contact", "mailbox:protocollo"] {
        let (holder, _, _) = &before[duty];
        assert!(
            held_by(holder, &a) || held_by(holder, &b),
            "{duty}: {holder}"
        );
    }
    assert!(before.keys().any(|k| k.starts_with("scan:")), "{before:?}");

    // SIGKILL the instance holding the contact centre's duty, while requests flow
    // through the proxy.
    let victim_is_a = held_by(&before["contact"].0, &a);
    let (victim, survivor) = if victim_is_a {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    let victim_pid = victim.pid();
    // Reads go on until told to stop, each with the instant it was answered, so the check
    // below is about reads before and after the kill, not about how many fit in a while.
    let stop_reading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (client, proxy, token) = (client.clone(), proxy.clone(), token.clone());
        let stop_reading = stop_reading.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop_reading.load(std::sync::atomic::Ordering::Relaxed) {
                let status = client
                    .get(format!("{proxy}/api/v1/cases?per_page=5"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16());
                statuses.push((Instant::now(), status));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            statuses
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let kill_instant = Instant::now();
    victim.kill();
    let killed_at = sportello_domain::clock::Clock::now(&sportello_domain::clock::SystemClock)
        .timestamp_millis();
    // New requests, writes included, keep succeeding through nginx: a POST to the dead
    // instance is refused at connect, so nginx passes it on.
    for _ in 0..4 {
        let resp = client
            .post(format!("{proxy}/api/v1/cases"))
            .bearer_auth(&token)
            .json(&case_body())
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            201,
            "a new case through nginx after the kill"
        );
    }
    // Reads keep going until a few have been answered after the kill.
    let reads_after_kill = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_reading.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses = traffic.await.unwrap();
    assert!(
        statuses.iter().any(|(at, _)| *at < kill_instant),
        "reads before the kill: {statuses:?}"
    );
    assert!(
        statuses.iter().any(|(at, _)| *at > reads_after_kill),
        "reads after the kill: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|(_, s)| *s == 200),
        "every read through nginx answered across the kill: {statuses:?}"
    );

    // New work for every duty the dead one held.
    dovecot
        .deliver(&(0..3).map(|i| mail(i, "dopo")).collect::<Vec<_>>(), false)
        .await;
    scan_batch(
        &client,
        &proxy,
        &token,
        &references[2],
        work.path(),
        scan_dir.path(),
    )
    .await;
    let reminded_after = case_waiting_since(&install, &token, 27, "past-3").await;
    import_expired_permit(&install, "RES-SCALE-2", "EF456GH");
    let expect_after = (7, 2, 1, 1, 1, 0);
    until(
        Duration::from_secs(120),
        "the survivor does the dead one's duties",
        || {
            let pool = pool.clone();
            let reminded_after = reminded_after.clone();
            let lapsing = lapsing.clone();
            async move {
                progress(&pool, &reminded_after, &lapsing, "RES-SCALE-2").await == expect_after
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3 * TICK_SECONDS + 2)).await;
    assert_once(
        &pool,
        &reminded_after,
        &lapsing,
        "RES-SCALE-2",
        &references[2],
    )
    .await;
    assert_once(&pool, &reminded, &lapsing, "RES-SCALE-1", &references[1]).await;
    each_message_sent_once(&pool, &sink).await;
    assert_eq!(
        progress(&pool, &reminded_after, &lapsing, "RES-SCALE-2").await,
        expect_after
    );
    assert_eq!(processed(scan_dir.path()), 2);

    // Every duty is the survivor's now, taken only once the dead one's lease lapsed.
    let after = holders(&pool).await;
    let mut report = Vec::new();
    for (duty, (holder, _, expired_at)) in &before {
        if !holder.contains(&format!(":{victim_pid}:")) || duty == "search_backlog" {
            continue;
        }
        let (new_holder, acquired_at, _) = &after[duty];
        assert!(held_by(new_holder, survivor), "{duty} held by {new_holder}");
        if !duty.starts_with("mailbox:") {
            assert!(
                acquired_at >= expired_at,
                "{duty} taken at {acquired_at}, before the lease lapsed at {expired_at}"
            );
        }
        report.push(if duty.starts_with("mailbox:") {
            format!(
                "{duty}: lease lapsed {} ms after the kill, now polled by the survivor",
                expired_at - killed_at
            )
        } else {
            format!(
                "{duty}: lease lapsed {} ms after the kill, taken over {} ms after the kill",
                expired_at - killed_at,
                acquired_at - killed_at
            )
        });
    }
    assert!(
        !report.is_empty(),
        "the killed instance held duties: {before:?}"
    );
    eprintln!(
        "takeover (lease {LEASE_SECONDS} s, tick {TICK_SECONDS} s):\n  {}",
        report.join("\n  ")
    );
    let log = survivor.output();
    assert!(log.contains("duty taken by this instance"), "{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// How far the day's work has come: e-mails and scanned parts filed, reminders of
/// `reminded` sent, lapses of `lapsing`'s suspension, expiries of `permit`, messages
/// still to send.
async fn progress(
    pool: &AnyPool,
    reminded: &str,
    lapsing: &str,
    permit: &str,
) -> (i64, i64, i64, i64, i64, i64) {
    let filed = |channel: &str| {
        format!("SELECT COUNT(*) FROM inbound_messages WHERE channel = '{channel}'")
    };
    (
        count(pool, &filed("email")).await,
        count(pool, &filed("scan")).await,
        count(
            pool,
            &format!(
                "SELECT COUNT(*) FROM outbound_messages WHERE idempotency_key LIKE 'reminder:{reminded}:%' AND status = 'sent'"
            ),
        )
        .await,
        count(
            pool,
            &format!(
                "SELECT COUNT(*) FROM case_events e JOIN cases c ON c.id = e.case_id \
                 WHERE c.reference = '{lapsing}' AND e.kind = 'pause_lapsed'"
            ),
        )
        .await,
        count(
            pool,
            &format!("SELECT COUNT(*) FROM permit_events WHERE permit = '{permit}' AND kind = 'expired'"),
        )
        .await,
        count(
            pool,
            "SELECT COUNT(*) FROM outbound_messages WHERE status IN ('queued', 'sending')",
        )
        .await,
    )
}

/// Batches moved to the folder's `processed/`.
fn processed(folder: &Path) -> usize {
    std::fs::read_dir(folder.join("processed")).map_or(0, Iterator::count)
}

/// The effects of the ticks on these items, each exactly once.
async fn assert_once(pool: &AnyPool, reminded: &str, lapsing: &str, permit: &str, scanned: &str) {
    let of_case = |reference: &str, kind: &str, detail: &str| {
        format!(
            "SELECT COUNT(*) FROM case_events e JOIN cases c ON c.id = e.case_id \
             WHERE c.reference = '{reference}' AND e.kind = '{kind}' AND e.detail LIKE '%{detail}%'"
        )
    };
    // No case with a kind of entry twice (call-backs, acknowledgements).
    let twice = |kind: &str, detail: &str| {
        format!(
            "SELECT COUNT(*) FROM (SELECT case_id FROM case_events WHERE kind = '{kind}' \
             AND detail LIKE '%{detail}%' GROUP BY case_id HAVING COUNT(*) > 1) t"
        )
    };
    let checks = [
        (
            format!(
                "SELECT COUNT(*) FROM outbound_messages WHERE idempotency_key LIKE 'reminder:{reminded}:%'"
            ),
            1,
            "one reminder queued",
        ),
        (
            of_case(reminded, "message_queued", "\"template\":\"reminder\""),
            1,
            "the reminder journaled once",
        ),
        (of_case(lapsing, "pause_lapsed", ""), 1, "one lapse"),
        (
            twice("call_task_opened", ""),
            0,
            "no call-back task opened twice",
        ),
        (
            twice("message_queued", "\"template\":\"acknowledgement\""),
            0,
            "no case acknowledged twice",
        ),
        (
            format!(
                "SELECT COUNT(*) FROM permit_events WHERE permit = '{permit}' AND kind = 'expired'"
            ),
            1,
            "the permit expired once",
        ),
        (
            format!(
                "SELECT COUNT(*) FROM inbound_messages m JOIN cases c ON c.id = m.case_id \
                 WHERE c.reference = '{scanned}' AND m.channel = 'scan'"
            ),
            1,
            "the batch filed once",
        ),
        (
            format!(
                "SELECT COUNT(*) FROM documents d JOIN cases c ON c.id = d.case_id \
                 WHERE c.reference = '{scanned}' AND d.filename LIKE 'scan-%'"
            ),
            1,
            "one scanned document",
        ),
    ];
    for (sql, expected, what) in checks {
        assert_eq!(
            count(pool, &sql).await,
            expected,
            "{what} ({reminded}, {lapsing}, {permit}, {scanned})"
        );
    }
}
