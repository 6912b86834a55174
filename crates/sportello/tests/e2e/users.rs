//! Users and tokens (CONTRACT §8.6): the `user` and `token` commands, disabling and
//! revoking that take effect at once (on every instance sharing the database), password
//! resets and changes, and the admins' page `/ufficio/utenti`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sportello_domain::clock::SystemClock;
use sportello_store::{Store, StoreSettings};

use crate::browser::Browser;
use crate::harness::Install;

/// The value of a `prefix` line of a command's output.
fn line(out: &std::process::Output, prefix: &str) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            panic!(
                "no {prefix:?} line in {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
}

/// The fields of `user list`'s line of `login`.
fn listed(install: &Install, login: &str) -> Vec<String> {
    let out = install.cli(&["user", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|f| f.first().map(String::as_str) == Some(login))
        .unwrap_or_else(|| panic!("{login} not listed: {stdout}"))
}

/// The status `GET /api/v1/cases` answers with this token.
async fn status_with(install: &Install, base: &str, token: &str) -> u16 {
    install
        .client
        .get(format!("{base}/api/v1/cases"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Polls until `GET /api/v1/cases` with `token` answers `want` on every base; how long it took.
async fn until_every(install: &Install, bases: &[String], token: &str, want: u16) -> Duration {
    let start = Instant::now();
    loop {
        let mut all = true;
        for base in bases {
            all &= status_with(install, base, token).await == want;
        }
        if all {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still not {want} after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The security log's (kind, login, address) triples.
async fn security_log(install: &Install) -> Vec<(String, String, String)> {
    let store = Store::connect(
        &install.database_url,
        Arc::new(SystemClock),
        StoreSettings::default(),
    )
    .await
    .unwrap();
    let events = store
        .security_events(
            chrono::DateTime::UNIX_EPOCH,
            // 2100-01-01: after any instant these tests run at.
            chrono::DateTime::from_timestamp_millis(4_102_444_800_000).unwrap(),
            1000,
        )
        .await
        .unwrap();
    store.close().await;
    events
        .into_iter()
        .map(|e| {
            (
                e.kind.as_str().to_owned(),
                e.login.unwrap_or_default(),
                e.address,
            )
        })
        .collect()
}

#[tokio::test]
async fn the_commands_disable_enable_reset_issue_and_revoke_at_once() {
    let mut install = Install::new("").await;
    let (password, token) = install.user_with_password("anna", "operator");
    install.user("bruno", "admin");
    install.start(&[]).await;
    let base = install.base();
    let bases = [base.clone()];
    assert_eq!(status_with(&install, &base, &token).await, 200);
    assert_eq!(listed(&install, "anna")[1..], ["operator", "yes", "-", "1"]);
    let (mut browser, _) = Browser::signed_in(&install, "anna", &password).await;
    assert_eq!(browser.get("/ufficio").await.status, 200);
    assert_ne!(listed(&install, "anna")[3], "-", "the sign-in is listed");

    // Disabled: the token and the session stop working at once.
    let out = install.cli(&["user", "disable", "anna"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    until_every(&install, &bases, &token, 401).await;
    assert_eq!(browser.get("/ufficio").await.status, 303, "session ended");
    assert_eq!(
        browser.sign_in("anna", &password).await.status,
        200,
        "refused"
    );
    assert_eq!(listed(&install, "anna")[2], "no");
    // Enabled again: the token works again (the session is gone for good).
    assert!(install.cli(&["user", "enable", "anna"]).status.success());
    until_every(&install, &bases, &token, 200).await;

    // Unknown logins and bad values: exit 2 naming them.
    for args in [
        &["user", "disable", "ghost"][..],
        &["user", "enable", "ghost"],
        &["user", "reset-password", "ghost"],
        &["token", "new", "ghost"],
        &["token", "revoke", "ghost"],
        &["token", "new", "anna", "--expires-days", "0"],
        &["token", "new", "anna", "--expires-days", "many"],
    ] {
        let out = install.cli(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("ghost") || stderr.contains("expires-days"),
            "{args:?}: {stderr}"
        );
    }

    // A new token, with an expiry, works at once; revoking ends every token of the user.
    let out = install.cli(&["token", "new", "anna", "--expires-days", "30"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = line(&out, "token: ");
    assert!(second.starts_with("spt_"));
    assert_eq!(status_with(&install, &base, &second).await, 200);
    assert_eq!(listed(&install, "anna")[4], "2");
    let out = install.cli(&["token", "revoke", "anna"]);
    assert!(out.status.success());
    until_every(&install, &bases, &token, 401).await;
    until_every(&install, &bases, &second, 401).await;
    assert_eq!(listed(&install, "anna")[4], "0");

    // A reset password works, the old one does not, and the sessions end.
    let (mut signed, _) = Browser::signed_in(&install, "anna", &password).await;
    let out = install.cli(&["user", "reset-password", "anna"]);
    assert!(out.status.success());
    let fresh = line(&out, "password: ");
    assert!(fresh.len() >= 12 && fresh != password);
    assert_eq!(signed.get("/ufficio").await.status, 303, "session ended");
    assert_eq!(
        Browser::new(&install)
            .sign_in("anna", &password)
            .await
            .status,
        200
    );
    assert_eq!(
        Browser::new(&install).sign_in("anna", &fresh).await.status,
        303
    );

    // Each change is in the security log, from the command line.
    let log = security_log(&install).await;
    for kind in [
        "user_added",
        "user_disabled",
        "user_enabled",
        "token_created",
        "token_revoked",
        "password_reset",
    ] {
        assert!(
            log.iter()
                .any(|(k, login, address)| k == kind && login == "anna" && address == "cli"),
            "{kind} missing: {log:?}"
        );
    }
}

/// A second `serve` of the installation on another port (killed when dropped), and its base URL.
async fn second_instance(install: &Install) -> (KillOnDrop, String) {
    instance_under(install, &[]).await
}

/// A `serve` of the installation on another port, its command prefixed by `wrapper`
/// (e.g. `faketime -f +2d`), and its base URL.
async fn instance_under(install: &Install, wrapper: &[&str]) -> (KillOnDrop, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(install.dir.path().join("second.log")).unwrap();
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = std::process::Command::new(program);
            c.args(args).arg(crate::harness::binary());
            c
        }
        None => std::process::Command::new(crate::harness::binary()),
    };
    // Its own process group: a wrapper (faketime) runs the server as its child, and both
    // must go when the test ends.
    let child = std::os::unix::process::CommandExt::process_group(&mut command, 0)
        .arg("--config")
        .arg(&install.config)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(install.dir.path())
        .env_remove("SPORTELLO_CONFIG")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let guard = KillOnDrop(child);
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while install
        .client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the second instance did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (guard, base)
}

/// A child process killed when the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_revoked_token_is_refused_by_every_instance_within_a_second() {
    let mut install = Install::new("").await;
    if install.database_url.starts_with("sqlite") {
        eprintln!(
            "skipped: two servers share one database only on PostgreSQL (a second serve on one SQLite data dir is refused)"
        );
        return;
    }
    let token = install.user("anna", "operator");
    let disabled = install.user("carla", "operator");
    install.start(&[]).await;
    let (_second, second_base) = second_instance(&install).await;
    let bases = [install.base(), second_base];
    // Both instances know (and cache) the tokens.
    for _ in 0..3 {
        until_every(&install, &bases, &token, 200).await;
        until_every(&install, &bases, &disabled, 200).await;
    }
    let out = install.cli(&["token", "revoke", "anna"]);
    assert!(out.status.success());
    let took = until_every(&install, &bases, &token, 401).await;
    eprintln!("revocation seen by both instances after {took:?}");
    assert_eq!(status_with(&install, &bases[1], &disabled).await, 200);
    let out = install.cli(&["user", "disable", "carla"]);
    assert!(out.status.success());
    let took = until_every(&install, &bases, &disabled, 401).await;
    eprintln!("disabling seen by both instances after {took:?}");
}

/// The value after `prefix` in a page (up to the next space, line or tag).
fn shown(body: &str, prefix: &str) -> String {
    let at = body
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} in {body}"))
        + prefix.len();
    body[at..]
        .split(|c: char| c.is_whitespace() || c == '<')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn admins_manage_users_on_their_page_and_everyone_changes_their_password() {
    let mut install = Install::new("").await;
    let (ada_password, _) = install.user_with_password("ada", "admin");
    let (olga_password, olga_token) = install.user_with_password("olga", "operator");
    install.start(&[]).await;
    let base = install.base();
    let bases = [base.clone()];

    // Not for operators: 403, and their forms change nothing.
    let (mut olga, olga_csrf) = Browser::signed_in(&install, "olga", &olga_password).await;
    let home = olga.get("/ufficio").await;
    assert!(!home.body.contains("/ufficio/utenti"), "no menu entry");
    assert!(home.body.contains("/ufficio/password"));
    assert_eq!(olga.get("/ufficio/utenti").await.status, 403);
    let refused = olga
        .post_form(
            "/ufficio/utenti/olga",
            &[("csrf", &olga_csrf), ("action", "revoke_tokens")],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(status_with(&install, &base, &olga_token).await, 200);
    assert_eq!(
        Browser::new(&install).get("/ufficio/utenti").await.status,
        303,
        "sign in first"
    );

    // The admin's page lists the users; every form needs the session's CSRF token.
    let (mut ada, csrf) = Browser::signed_in(&install, "ada", &ada_password).await;
    let list = ada.get("/ufficio/utenti").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("olga") && list.body.contains("operator"));
    for bad in ["", "not-the-token"] {
        let answer = ada
            .post_form(
                "/ufficio/utenti/olga",
                &[("csrf", bad), ("action", "disable")],
            )
            .await;
        assert_eq!(answer.status, 403, "csrf {bad:?}");
        let answer = ada
            .post_form(
                "/ufficio/utenti",
                &[("csrf", bad), ("login", "nuovo"), ("role", "operator")],
            )
            .await;
        assert_eq!(answer.status, 403, "csrf {bad:?}");
    }
    assert_eq!(status_with(&install, &base, &olga_token).await, 200);

    // Adding a user shows their password and token once.
    let added = ada
        .post_form(
            "/ufficio/utenti",
            &[
                ("csrf", &csrf),
                ("login", "nuovo"),
                ("name", "Nuovo Arrivato"),
                ("role", "operator"),
            ],
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    let new_token = shown(&added.body, "token: ");
    assert!(new_token.starts_with("spt_"));
    assert_eq!(status_with(&install, &base, &new_token).await, 200);
    assert!(
        !ada.get("/ufficio/utenti").await.body.contains(&new_token),
        "shown once"
    );
    let answer = ada
        .post_form(
            "/ufficio/utenti",
            &[("csrf", &csrf), ("login", "nuovo"), ("role", "operator")],
        )
        .await;
    assert_eq!(answer.status, 409);
    let answer = ada
        .post_form(
            "/ufficio/utenti",
            &[("csrf", &csrf), ("login", "x"), ("role", "boss")],
        )
        .await;
    assert_eq!(answer.status, 422);

    // Disable and enable, at once.
    let answer = post_action(&mut ada, &csrf, "olga", "disable", None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    until_every(&install, &bases, &olga_token, 401).await;
    assert_eq!(olga.get("/ufficio").await.status, 303, "her session ended");
    assert_eq!(
        post_action(&mut ada, &csrf, "ada", "disable", None)
            .await
            .status,
        422,
        "not oneself"
    );
    assert_eq!(
        post_action(&mut ada, &csrf, "olga", "enable", None)
            .await
            .status,
        200
    );
    until_every(&install, &bases, &olga_token, 200).await;
    assert_eq!(
        post_action(&mut ada, &csrf, "ghost", "disable", None)
            .await
            .status,
        404
    );
    assert_eq!(
        post_action(&mut ada, &csrf, "olga", "explode", None)
            .await
            .status,
        422
    );

    // Tokens: a new one (with an expiry) shown once, then all revoked.
    assert_eq!(
        post_action(&mut ada, &csrf, "olga", "new_token", Some("abc"))
            .await
            .status,
        422
    );
    let issued = post_action(&mut ada, &csrf, "olga", "new_token", Some("7")).await;
    assert_eq!(issued.status, 200);
    let second = shown(&issued.body, "token: ");
    assert_eq!(status_with(&install, &base, &second).await, 200);
    assert_eq!(
        post_action(&mut ada, &csrf, "olga", "revoke_tokens", None)
            .await
            .status,
        200
    );
    until_every(&install, &bases, &second, 401).await;
    until_every(&install, &bases, &olga_token, 401).await;

    // A reset password, shown once, works; the old one does not.
    let reset = post_action(&mut ada, &csrf, "olga", "reset_password", None).await;
    assert_eq!(reset.status, 200);
    let fresh = shown(&reset.body, "password: ");
    assert_eq!(
        Browser::new(&install)
            .sign_in("olga", &olga_password)
            .await
            .status,
        200
    );

    // Olga changes her own password: the current one is needed, the new one checked, and
    // her other sessions end while this one stays.
    let (mut here, here_csrf) = Browser::signed_in(&install, "olga", &fresh).await;
    let (mut elsewhere, _) = Browser::signed_in(&install, "olga", &fresh).await;
    assert_eq!(here.get("/ufficio/password").await.status, 200);
    let change = |current: &str, new: &str, confirm: &str, csrf: &str| {
        [
            ("csrf", csrf.to_owned()),
            ("current_password", current.to_owned()),
            ("new_password", new.to_owned()),
            ("confirm_password", confirm.to_owned()),
        ]
    };
    let good = "una frase lunga e sua";
    for (form, status) in [
        (change(&fresh, good, good, "forged"), 403),
        (change("wrong-password", good, good, &here_csrf), 422),
        (change(&fresh, "short", "short", &here_csrf), 422),
        (change(&fresh, good, "una frase diversa", &here_csrf), 422),
        (change(&fresh, good, good, &here_csrf), 200),
    ] {
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let answer = here.post_form("/ufficio/password", &pairs).await;
        assert_eq!(answer.status, status, "{form:?}: {}", answer.body);
    }
    assert_eq!(here.get("/ufficio").await.status, 200, "this session stays");
    assert_eq!(
        elsewhere.get("/ufficio").await.status,
        303,
        "the others end"
    );
    assert_eq!(
        Browser::new(&install).sign_in("olga", &fresh).await.status,
        200
    );
    assert_eq!(
        Browser::new(&install).sign_in("olga", good).await.status,
        303
    );

    let log = security_log(&install).await;
    for (kind, login) in [
        ("user_added", "nuovo"),
        ("user_disabled", "olga"),
        ("user_enabled", "olga"),
        ("token_created", "olga"),
        ("token_revoked", "olga"),
        ("password_reset", "olga"),
        ("password_changed", "olga"),
        ("permission_refused", "olga"),
        ("csrf_refused", "ada"),
    ] {
        assert!(
            log.iter()
                .any(|(k, l, address)| k == kind && l == login && address != "cli"),
            "{kind} of {login} missing: {log:?}"
        );
    }
}

/// Posts one action of the users' page about `login`.
async fn post_action(
    browser: &mut Browser,
    csrf: &str,
    login: &str,
    action: &str,
    expires_days: Option<&str>,
) -> crate::browser::Answer {
    let mut form = vec![("csrf", csrf), ("action", action)];
    if let Some(days) = expires_days {
        form.push(("expires_days", days));
    }
    browser
        .post_form(&format!("/ufficio/utenti/{login}"), &form)
        .await
}

#[tokio::test]
async fn a_role_can_require_a_second_factor_and_each_code_works_once() {
    use sportello_domain::clock::Clock;
    use sportello_domain::totp;
    let mut install = Install::new("[security]\nsecond_factor_roles = [\"admin\"]\n").await;
    let (ada_password, _) = install.user_with_password("ada", "admin");
    let (olga_password, _) = install.user_with_password("olga", "operator");
    install.start(&[]).await;
    let now = || SystemClock.now().timestamp();

    // An operator (not required, none set up) signs in with the password alone.
    Browser::signed_in(&install, "olga", &olga_password).await;

    // The admin is sent to set one up right after the password, and is not signed in
    // until a first code confirms it.
    let mut ada = Browser::new(&install);
    let answer = ada.sign_in("ada", &ada_password).await;
    assert_eq!(answer.status, 303);
    assert!(
        answer.location.starts_with("/ufficio/secondo-fattore"),
        "{}",
        answer.location
    );
    assert_eq!(ada.get("/ufficio").await.status, 303, "not signed in yet");
    let enrol = ada.get(&answer.location).await;
    assert_eq!(enrol.status, 200);
    let secret_text = shown(&enrol.body, "<code id=\"totp-secret\">");
    assert!(shown(&enrol.body, "<code id=\"totp-uri\">").starts_with("otpauth://totp/"));
    let secret = totp::secret_from_base32(&secret_text).unwrap();
    let csrf = crate::browser::csrf_of(&enrol.body);
    let wrong = ada
        .post_form(
            "/ufficio/secondo-fattore",
            &[
                ("csrf", &csrf),
                ("secret", &secret_text),
                ("code", "000000x"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 422);
    let first = totp::code_at(&secret, now()).unwrap();
    let done = ada
        .post_form(
            "/ufficio/secondo-fattore",
            &[("csrf", &csrf), ("secret", &secret_text), ("code", &first)],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(ada.get("/ufficio").await.status, 200, "signed in");

    // Next time the code is asked after the password; a used code is refused (and the
    // waiting session ends), a fresh one lets in.
    let mut again = Browser::new(&install);
    let answer = again.sign_in("ada", &ada_password).await;
    assert!(
        answer.location.starts_with("/ufficio/codice"),
        "{}",
        answer.location
    );
    let form = again.get(&answer.location).await;
    let csrf = crate::browser::csrf_of(&form.body);
    let reused = again
        .post_form("/ufficio/codice", &[("csrf", &csrf), ("code", &first)])
        .await;
    assert_eq!(reused.status, 200);
    assert_eq!(again.get("/ufficio").await.status, 303);
    assert_eq!(
        again.get("/ufficio/codice").await.status,
        303,
        "the waiting session ended"
    );
    let answer = again.sign_in("ada", &ada_password).await;
    let form = again.get(&answer.location).await;
    let csrf = crate::browser::csrf_of(&form.body);
    // The next step's code: accepted one step early, and later than the enrolment's.
    let fresh = totp::code_at(&secret, now() + totp::STEP_SECONDS).unwrap();
    let ok = again
        .post_form("/ufficio/codice", &[("csrf", &csrf), ("code", &fresh)])
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(again.get("/ufficio").await.status, 200);
    // Someone who has the password cannot guess codes one sign-in at a time: wrong codes
    // are counted per account, and after five the step answers 429 whatever the code.
    let valid: Vec<String> = [-1, 0, 1, 2]
        .iter()
        .map(|k| totp::code_at(&secret, now() + k * totp::STEP_SECONDS).unwrap())
        .collect();
    let wrong = (0..10)
        .map(|n| format!("{n}{n}{n}{n}{n}{n}"))
        .find(|c| !valid.contains(c))
        .unwrap();
    for attempt in 0..6 {
        let mut guesser = Browser::new(&install);
        let answer = guesser.sign_in("ada", &ada_password).await;
        assert!(
            answer.location.starts_with("/ufficio/codice"),
            "{}",
            answer.location
        );
        let form = guesser.get(&answer.location).await;
        let csrf = crate::browser::csrf_of(&form.body);
        let guess = guesser
            .post_form("/ufficio/codice", &[("csrf", &csrf), ("code", &wrong)])
            .await;
        let expected = if attempt < 5 { 200 } else { 429 };
        assert_eq!(guess.status, expected, "guess {attempt}");
        assert_eq!(guesser.get("/ufficio").await.status, 303);
    }
    // A second factor is not replaced from the page, not even by a waiting session (which
    // knows only the password); an admin removes it from the command line.
    let mut thief = Browser::new(&install);
    thief.sign_in("ada", &ada_password).await;
    assert_eq!(thief.get("/ufficio/secondo-fattore").await.status, 409);
    assert_eq!(again.get("/ufficio/secondo-fattore").await.status, 409);
    let out = install.cli(&["user", "remove-second-factor", "ada"]);
    assert!(out.status.success());
    assert_eq!(
        install
            .cli(&["user", "remove-second-factor", "ghost"])
            .status
            .code(),
        Some(2)
    );
    let mut fresh_start = Browser::new(&install);
    let answer = fresh_start.sign_in("ada", &ada_password).await;
    assert!(
        answer.location.starts_with("/ufficio/secondo-fattore"),
        "{}",
        answer.location
    );
    let log = security_log(&install).await;
    assert!(
        log.iter()
            .any(|(k, l, _)| k == "second_factor_changed" && l == "ada")
    );
    assert!(
        log.iter()
            .any(|(k, l, _)| k == "sign_in_failed" && l == "ada")
    );
}

#[tokio::test]
async fn a_token_with_an_expiry_is_refused_after_it() {
    if !crate::harness::tools_present(&["faketime"]) {
        return;
    }
    let mut install = Install::new("").await;
    let forever = install.user("anna", "operator");
    let out = install.cli(&["token", "new", "anna", "--expires-days", "1"]);
    assert!(out.status.success());
    let short = line(&out, "token: ");
    assert!(line(&out, "expires: ").ends_with('Z'));
    install.start(&[]).await;
    let base = install.base();
    assert_eq!(status_with(&install, &base, &short).await, 200);
    install.stop();
    // Two days later (the server's clock moved by faketime): expired, the other still good.
    let (_later, later) = instance_under(&install, &["faketime", "-f", "+2d"]).await;
    assert_eq!(status_with(&install, &later, &short).await, 401);
    assert_eq!(status_with(&install, &later, &forever).await, 200);
}
