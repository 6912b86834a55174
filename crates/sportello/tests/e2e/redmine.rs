//! `sportello import redmine` against a real Redmine (CONTRACT §8.4): `.ci/run` starts
//! Debian's Redmine with `tests/redmine/start.sh` and sets `SPORTELLO_TEST_REDMINE_URL`
//! and `SPORTELLO_TEST_REDMINE_KEY` (an administrator's API key). Each test seeds a
//! project of its own through the REST API (and one `rails runner` call for what the API
//! cannot set: historical dates, a file gone from disk, a deleted user), so the tests are
//! independent and can run again on the same Redmine.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::Install;

struct Redmine {
    url: String,
    key: String,
    http: reqwest::Client,
}

fn redmine() -> Option<Redmine> {
    let (Ok(url), Ok(key)) = (
        std::env::var("SPORTELLO_TEST_REDMINE_URL"),
        std::env::var("SPORTELLO_TEST_REDMINE_KEY"),
    ) else {
        assert!(
            !sportello_store::testing::services_required(),
            "SPORTELLO_REQUIRE_SERVICES=1 but no Redmine (SPORTELLO_TEST_REDMINE_URL, SPORTELLO_TEST_REDMINE_KEY)"
        );
        eprintln!(
            "skipped: no Redmine configured (set SPORTELLO_TEST_REDMINE_URL and SPORTELLO_TEST_REDMINE_KEY; tests/redmine/start.sh prints them)"
        );
        return None;
    };
    Some(Redmine {
        url: url.trim_end_matches('/').to_owned(),
        key,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
    })
}

impl Redmine {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        as_user: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        // Redmine on SQLite answers 500 when its database is busy: try again a little later.
        for attempt in 0.. {
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.url))
                .header("X-Redmine-API-Key", &self.key);
            if let Some(login) = as_user {
                req = req.header("X-Redmine-Switch-User", login);
            }
            if let Some(body) = &body {
                req = req.json(body);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let text = resp.text().await.unwrap();
            if status.is_server_error() && attempt < 10 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            assert!(status.is_success(), "{method} {path}: {status} {text}");
            return serde_json::from_str(&text).unwrap_or(Value::Null);
        }
        unreachable!()
    }

    async fn post(&self, path: &str, as_user: Option<&str>, body: Value) -> Value {
        self.send(reqwest::Method::POST, path, as_user, Some(body))
            .await
    }

    async fn put(&self, path: &str, as_user: Option<&str>, body: Value) {
        self.send(reqwest::Method::PUT, path, as_user, Some(body))
            .await;
    }

    async fn upload(&self, bytes: Vec<u8>, name: &str) -> String {
        for attempt in 0.. {
            let resp = self
                .http
                .post(format!("{}/uploads.json?filename={name}", self.url))
                .header("X-Redmine-API-Key", &self.key)
                .header("Content-Type", "application/octet-stream")
                .body(bytes.clone())
                .send()
                .await
                .unwrap();
            if resp.status().is_server_error() && attempt < 10 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            assert!(resp.status().is_success(), "upload: {}", resp.status());
            let v: Value = resp.json().await.unwrap();
            return v["upload"]["token"].as_str().unwrap().to_owned();
        }
        unreachable!()
    }

    async fn custom_fields(&self) -> std::collections::HashMap<String, i64> {
        let v = self
            .send(reqwest::Method::GET, "/custom_fields.json", None, None)
            .await;
        v["custom_fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().unwrap().to_owned(),
                    f["id"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    /// The id of the entry called `name` in a Redmine list (`/trackers.json`, …).
    async fn id_named(&self, path: &str, list: &str, name: &str) -> i64 {
        let v = self.send(reqwest::Method::GET, path, None, None).await;
        v[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .and_then(|t| t["id"].as_i64())
            .unwrap_or_else(|| panic!("{name} not in {path}"))
    }

    async fn tracker(&self, name: &str) -> i64 {
        self.id_named("/trackers.json", "trackers", name).await
    }

    async fn status(&self, name: &str) -> i64 {
        self.id_named("/issue_statuses.json", "issue_statuses", name)
            .await
    }

    /// A project of its own, with every tracker.
    async fn project(&self, identifier: &str) -> i64 {
        let v = self
            .send(reqwest::Method::GET, "/trackers.json", None, None)
            .await;
        let trackers: Vec<i64> = v["trackers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect();
        let p = self
            .post(
                "/projects.json",
                None,
                json!({"project": {"name": identifier, "identifier": identifier, "tracker_ids": trackers, "is_public": false}}),
            )
            .await;
        p["project"]["id"].as_i64().unwrap()
    }

    /// A user, member of the project.
    async fn user(&self, login: &str, project: i64) -> i64 {
        let u = self
            .post(
                "/users.json",
                None,
                json!({"user": {"login": login, "firstname": "Nome", "lastname": login,
                    "mail": format!("{login}@example.it"), "password": "password-lunga-1"}}),
            )
            .await;
        let id = u["user"]["id"].as_i64().unwrap();
        self.post(
            &format!("/projects/{project}/memberships.json"),
            None,
            json!({"membership": {"user_id": id, "role_ids": [3]}}),
        )
        .await;
        id
    }

    async fn issue(&self, as_user: Option<&str>, issue: Value) -> i64 {
        let v = self
            .post("/issues.json", as_user, json!({ "issue": issue }))
            .await;
        v["issue"]["id"].as_i64().unwrap()
    }
}

/// One `rails runner` call (Redmine's Ruby, as its user): what the REST API cannot do.
fn rails(ruby: &str) {
    let script = std::env::temp_dir().join(format!("redmine-{:016x}.rb", rand::random::<u64>()));
    std::fs::write(&script, ruby).unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(&script, perms).unwrap();
    let inner = format!(
        "cd /usr/share/redmine && RAILS_ENV=production bin/rails runner {}",
        script.display()
    );
    let out = if nix_is_root() {
        Command::new("su")
            .args(["www-data", "-s", "/bin/sh", "-c", &inner])
            .output()
            .unwrap()
    } else {
        Command::new("sh").args(["-c", &inner]).output().unwrap()
    };
    let _ = std::fs::remove_file(&script);
    assert!(
        out.status.success(),
        "rails runner: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn summary(out: &std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "last line is not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

const MAP: &str = r#"
[trackers]
"Permesso ZTL" = "ztl_permit"
[citizen]
fiscal_code = "Codice fiscale"
[fields]
plate = "Targa"
category = "Categoria"
protocol = "Protocollo"
"#;

/// A PDF-looking binary, different for each `salt` (Redmine keeps one file for the same
/// bytes, so tests that remove a file must not share bytes with others).
fn pdf_bytes(salt: &str, seed: u8) -> Vec<u8> {
    let mut pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    pdf.extend_from_slice(salt.as_bytes());
    pdf.extend((0..4000u32).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    pdf.extend_from_slice(b"\n%%EOF\n");
    pdf
}

/// Every case of the installation, whole, by Redmine issue id.
async fn cases_by_issue(install: &Install, token: &str) -> std::collections::BTreeMap<i64, Value> {
    let (status, _, list) = install
        .call("GET", "/api/v1/cases?per_page=200", Some(token), None)
        .await;
    assert_eq!(status, 200, "{list}");
    let mut out = std::collections::BTreeMap::new();
    for item in list["items"].as_array().unwrap() {
        let reference = item["reference"].as_str().unwrap();
        let (status, _, case) = install
            .call(
                "GET",
                &format!("/api/v1/cases/{reference}"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(status, 200);
        let id = case["fields"]["redmine_id"].as_i64().unwrap();
        assert!(out.insert(id, case).is_none(), "issue {id} imported twice");
    }
    out
}

fn entries<'a>(case: &'a Value, kind: &str) -> Vec<&'a Value> {
    case["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

#[tokio::test]
async fn a_redmine_history_comes_over_case_by_case_and_once() {
    let Some(rm) = redmine() else { return };
    let tag = format!("{:08x}", rand::random::<u32>());
    let ident = format!("ztl-{tag}");
    let project = rm.project(&ident).await;
    let anna = format!("anna{tag}");
    let gino = format!("gino{tag}");
    let anna_id = rm.user(&anna, project).await;
    rm.user(&gino, project).await;
    let cf = rm.custom_fields().await;
    let permesso = rm.tracker("Permesso ZTL").await;
    let bug = rm.tracker("Bug").await;
    let (in_progress, closed) = (rm.status("In Progress").await, rm.status("Closed").await);
    let pdf = pdf_bytes(&tag, 7);
    let text = "Libretto di circolazione, copia conforme.\n"
        .as_bytes()
        .to_vec();
    let (pdf_token, text_token) = (
        rm.upload(pdf.clone(), "libretto.pdf").await,
        rm.upload(text.clone(), "nota.txt").await,
    );
    let fields = |code: &str, plate: &str, protocol: &str| {
        json!([
            {"id": cf["Codice fiscale"], "value": code},
            {"id": cf["Targa"], "value": plate},
            {"id": cf["Categoria"], "value": "residenti"},
            {"id": cf["Protocollo"], "value": protocol},
        ])
    };
    // 1: open, assigned to a user who exists in Sportello too, two attachments, notes.
    let open = rm
        .issue(
            None,
            json!({"project_id": project, "tracker_id": permesso, "subject": "Permesso residenti via Roma",
                "description": "Richiesta di permesso per residenti.", "assigned_to_id": anna_id,
                "custom_fields": fields("RSSMRA80A01H501U", "AB123CD", &format!("2019/{tag}")),
                "uploads": [{"token": pdf_token, "filename": "libretto.pdf", "content_type": "application/pdf"},
                            {"token": text_token, "filename": "nota.txt", "content_type": "text/plain"}]}),
        )
        .await;
    rm.put(
        &format!("/issues/{open}.json"),
        Some(&anna),
        json!({"issue": {"notes": "Documenti verificati.", "status_id": in_progress}}),
    )
    .await;
    rm.put(
        &format!("/issues/{open}.json"),
        None,
        json!({"issue": {"notes": "Nota riservata all'ufficio.", "private_notes": true}}),
    )
    .await;
    // 2: closed, an invalid fiscal code, a note by a user deleted since, a file gone.
    let gone_token = rm.upload(pdf_bytes(&tag, 9), "perso.pdf").await;
    let old = rm
        .issue(
            Some(&gino),
            json!({"project_id": project, "tracker_id": permesso, "subject": "Rinnovo permesso merci",
                "custom_fields": fields("RSSMRA80A01H501X", "ZZ999ZZ", ""),
                "uploads": [{"token": gone_token, "filename": "perso.pdf", "content_type": "application/pdf"}]}),
        )
        .await;
    rm.put(
        &format!("/issues/{old}.json"),
        Some(&gino),
        json!({"issue": {"notes": "Pratica evasa.", "status_id": closed}}),
    )
    .await;
    // 3: another tracker (the default case type), nobody assigned, nothing else.
    let bare = rm
        .issue(
            None,
            json!({"project_id": project, "tracker_id": bug, "subject": "Segnalazione varco"}),
        )
        .await;
    rails(&format!(
        r#"
t = Time.utc(2019, 3, 1, 9, 0, 0)
Issue.find({open}).update_columns(created_on: t, updated_on: t + 86400 * 3)
Issue.find({open}).journals.order(:id).each_with_index {{ |j, k| j.update_columns(created_on: t + 86400 * (k + 1)) }}
Issue.find({open}).attachments.each {{ |a| a.update_columns(created_on: t) }}
s = Time.utc(2018, 5, 10, 8, 30, 0)
Issue.find({old}).update_columns(created_on: s, updated_on: s + 86400 * 22, closed_on: s + 86400 * 22)
Issue.find({old}).journals.each {{ |j| j.update_columns(created_on: s + 86400 * 22) }}
Issue.find({old}).attachments.each {{ |a| a.update_columns(created_on: s); File.delete(a.diskfile) if File.exist?(a.diskfile) }}
Issue.find({bare}).update_columns(created_on: Time.utc(2020, 1, 2, 12, 0, 0))
User.find_by_login("{gino}").destroy
"#
    ));

    let mut install = Install::new("").await;
    let op = install.user(&anna, "operator");
    let map = install.dir.path().join("map.toml");
    std::fs::write(&map, MAP).unwrap();
    let map = map.display().to_string();
    let args = [
        "import",
        "redmine",
        "--url",
        &rm.url,
        "--key",
        &rm.key,
        "--project",
        &ident,
        "--map",
        &map,
    ];
    // A dry run says what it would do and writes nothing.
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let out = install.cli(&dry);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        summary(&out),
        json!({"issues": 3, "imported": 3, "unchanged": 0, "failed": 0})
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("#{open}: would import")));
    let out = install.cli(&args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(
        summary(&out),
        json!({"issues": 3, "imported": 3, "unchanged": 0, "failed": 0}),
        "a dry run wrote nothing"
    );
    assert!(
        !stdout.contains(&rm.key) && !stderr.contains(&rm.key),
        "the key is never printed"
    );

    install.start(&[]).await;
    let cases = cases_by_issue(&install, &op).await;
    assert_eq!(
        cases.keys().copied().collect::<Vec<_>>(),
        vec![open, old, bare]
    );

    let c = &cases[&open];
    assert_eq!(c["subject"], "Permesso residenti via Roma");
    assert_eq!(c["description"], "Richiesta di permesso per residenti.");
    assert_eq!(c["received_at"], "2019-03-01T10:00:00+01:00");
    assert_eq!(c["status"], "in_review");
    assert_eq!(c["assignee"], anna.as_str());
    assert_eq!(c["case_type"], "ztl_permit");
    assert_eq!(c["citizen"]["fiscal_code"], "RSSMRA80A01H501U");
    assert_eq!(c["fields"]["plate"], "AB123CD");
    assert_eq!(c["fields"]["category"], "residenti");
    assert_eq!(c["fields"]["protocol"], format!("2019/{tag}"));
    assert_eq!(c["protocol"], format!("2019/{tag}"));
    assert_eq!(c["flags"], json!([]));
    assert_eq!(c["sla"]["state"], "running");
    assert!(
        c["sla"]["days_left"].as_i64().unwrap() < -1000,
        "the clock runs from 2019: {}",
        c["sla"]
    );
    let notes = entries(c, "note");
    assert_eq!(notes.len(), 2, "{}", c["timeline"]);
    assert_eq!(notes[0]["detail"]["note"], "Documenti verificati.");
    assert_eq!(notes[0]["detail"]["internal"], false);
    assert_eq!(notes[0]["actor"], anna.as_str());
    assert_eq!(notes[0]["at"], "2019-03-02T10:00:00+01:00");
    assert_eq!(notes[1]["detail"]["note"], "Nota riservata all'ufficio.");
    assert_eq!(notes[1]["detail"]["internal"], true);
    assert_eq!(notes[1]["actor"], "admin");
    let changes = entries(c, "status_changed");
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (&changes[0]["detail"]["from"], &changes[0]["detail"]["to"]),
        (&json!("New"), &json!("In Progress"))
    );
    let created = entries(c, "created");
    assert_eq!(created[0]["at"], "2019-03-01T10:00:00+01:00");
    let docs = c["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 2);
    for (name, bytes) in [("libretto.pdf", &pdf), ("nota.txt", &text)] {
        let doc = docs.iter().find(|d| d["filename"] == name).unwrap();
        assert_eq!(doc["sha256"], hex::encode(Sha256::digest(bytes)));
        let got = install.document(&op, doc["id"].as_str().unwrap()).await;
        assert_eq!(got.status(), 200);
        assert_eq!(
            &got.bytes().await.unwrap().to_vec(),
            bytes,
            "{name}: the same bytes"
        );
    }
    let pdf_doc = docs
        .iter()
        .find(|d| d["filename"] == "libretto.pdf")
        .unwrap();
    assert_eq!(pdf_doc["media_type"], "application/pdf");
    assert_eq!(pdf_doc["uploaded_at"], "2019-03-01T10:00:00+01:00");

    let c = &cases[&old];
    assert_eq!(c["status"], "closed");
    assert_eq!(c["received_at"], "2018-05-10T10:30:00+02:00");
    assert_eq!(c["sla"]["state"], "stopped");
    assert_eq!(c["citizen"]["fiscal_code"], Value::Null);
    assert_eq!(
        c["fields"]["fiscal_code"], "RSSMRA80A01H501X",
        "the raw value kept"
    );
    let flags: Vec<&str> = c["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for flag in [
        "invalid_fiscal_code",
        "missing_attachment",
        "unknown_author",
    ] {
        assert!(flags.contains(&flag), "{flag} in {flags:?}");
    }
    let closing = entries(c, "closed");
    assert_eq!(closing.len(), 1);
    assert_eq!(closing[0]["at"], "2018-06-01T10:30:00+02:00");
    let note = entries(c, "note");
    assert_eq!(note[0]["detail"]["note"], "Pratica evasa.");
    assert_ne!(
        note[0]["actor"],
        gino.as_str(),
        "a deleted user is not named by login"
    );
    let missing = entries(c, "document_missing");
    assert_eq!(missing[0]["detail"]["filename"], "perso.pdf");
    assert!(c["documents"].as_array().unwrap().is_empty());

    let c = &cases[&bare];
    assert_eq!(c["status"], "received");
    assert_eq!(c["case_type"], "ztl_permit");
    assert_eq!(c["assignee"], Value::Null);
    assert_eq!(c["received_at"], "2020-01-02T13:00:00+01:00");

    // The old protocol number is searchable.
    let (status, _, found) = install
        .call("GET", &format!("/api/v1/search?q={tag}"), Some(&op), None)
        .await;
    assert_eq!(status, 200, "{found}");
    assert!(
        found["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["reference"] == cases[&open]["reference"]),
        "{found}"
    );
    // Nothing registered again in today's protocol register.
    install.stop();
    let verify = install.cli(&["register", "verify"]);
    assert!(verify.status.success());

    // Again: nothing changes.
    let out = install.cli(&args);
    assert!(out.status.success());
    assert_eq!(
        summary(&out),
        json!({"issues": 3, "imported": 0, "unchanged": 3, "failed": 0})
    );
    // A note added in Redmine since comes over on the next run, once.
    rm.put(
        &format!("/issues/{bare}.json"),
        None,
        json!({"issue": {"notes": "Varco riparato."}}),
    )
    .await;
    let out = install.cli(&args);
    assert_eq!(
        summary(&out),
        json!({"issues": 3, "imported": 1, "unchanged": 2, "failed": 0})
    );
    let out = install.cli(&args);
    assert_eq!(
        summary(&out),
        json!({"issues": 3, "imported": 0, "unchanged": 3, "failed": 0})
    );
    install.start(&[]).await;
    let again = cases_by_issue(&install, &op).await;
    assert_eq!(again.len(), 3);
    // The text of documents is read in the background (its own journal entries, by `system`).
    let history = |case: &Value| -> Vec<Value> {
        case["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["actor"] != "system")
            .cloned()
            .collect()
    };
    assert_eq!(
        history(&again[&open]),
        history(&cases[&open]),
        "history unchanged"
    );
    for key in ["fields", "status", "flags", "reference"] {
        assert_eq!(again[&open][key], cases[&open][key], "{key} unchanged");
    }
    let notes = entries(&again[&bare], "note");
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["detail"]["note"], "Varco riparato.");
    install.stop();

    // Bad usage: a wrong key, an unknown project, a bad map file (exit 2).
    for (bad, what) in [
        (vec!["--key", "0123456789abcdef"], "API key"),
        (vec!["--project", "non-esiste-xyz"], "not found"),
    ] {
        let mut a = args.to_vec();
        let at = a.iter().position(|x| *x == bad[0]).unwrap();
        a[at + 1] = bad[1];
        let out = install.cli(&a);
        assert_eq!(out.status.code(), Some(2), "{what}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(what));
    }
    let bad_map = install.dir.path().join("bad.toml");
    std::fs::write(&bad_map, "[trackers]\nBug = \"boh\"\n").unwrap();
    let mut a = args.to_vec();
    let bad_map = bad_map.display().to_string();
    *a.last_mut().unwrap() = &bad_map;
    let out = install.cli(&a);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("boh"));
}

#[tokio::test]
async fn an_import_killed_midway_goes_on_where_it_stopped() {
    let Some(rm) = redmine() else { return };
    let tag = format!("{:08x}", rand::random::<u32>());
    let ident = format!("kill-{tag}");
    let project = rm.project(&ident).await;
    const N: i64 = 40;
    let mut ids = Vec::new();
    for i in 0..N {
        let token = rm
            .upload(pdf_bytes(&tag, i as u8), &format!("doc{i}.pdf"))
            .await;
        ids.push(
            rm.issue(
                None,
                json!({"project_id": project, "subject": format!("Richiesta {i}"),
                    "uploads": [{"token": token, "filename": format!("doc{i}.pdf"), "content_type": "application/pdf"}]}),
            )
            .await,
        );
    }
    let install = Install::new("").await;
    let op = install.user("op1", "operator");
    let mut child = Command::new(crate::harness::binary())
        .arg("--config")
        .arg(&install.config)
        .args([
            "import",
            "redmine",
            "--url",
            &rm.url,
            "--project",
            &ident,
            "--concurrency",
            "1",
        ])
        .env("SPORTELLO_REDMINE_KEY", &rm.key)
        .env_remove("SPORTELLO_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&install.database_url)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut done_before_kill = 0i64;
    while Instant::now() < deadline {
        let n: Option<i64> = sqlx::query_scalar("SELECT COUNT(*) FROM imported_issues")
            .fetch_one(&pool)
            .await
            .ok();
        if let Some(n) = n
            && n >= 5
        {
            done_before_kill = n;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    pool.close().await;
    assert!(done_before_kill >= 5, "the import made no progress");

    let args = [
        "import",
        "redmine",
        "--url",
        &rm.url,
        "--key",
        &rm.key,
        "--project",
        &ident,
    ];
    let out = install.cli(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&out);
    assert_eq!(s["issues"], N);
    assert_eq!(s["failed"], 0);
    assert_eq!(
        s["imported"].as_i64().unwrap() + s["unchanged"].as_i64().unwrap(),
        N
    );
    assert!(
        s["unchanged"].as_i64().unwrap() >= done_before_kill,
        "what was done is not done again: {s}"
    );
    let mut install = install;
    install.start(&[]).await;
    let cases = cases_by_issue(&install, &op).await;
    assert_eq!(
        cases.keys().copied().collect::<Vec<_>>(),
        ids,
        "nothing twice, nothing missing"
    );
    for (i, id) in ids.iter().enumerate() {
        let docs = cases[id]["documents"].as_array().unwrap();
        assert_eq!(docs.len(), 1, "issue {id}: {}", cases[id]["timeline"]);
        assert_eq!(
            docs[0]["sha256"],
            hex::encode(Sha256::digest(pdf_bytes(&tag, i as u8)))
        );
    }
    install.stop();
}
