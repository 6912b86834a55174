//! A throw-away Dovecot IMAP server (Debian's `dovecot-imapd`) on 127.0.0.1 with one user
//! and a maildir, plain IMAP on one port and IMAPS (with its own test CA) on another.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sportello_intake::imap::{MailboxAccount, Session, connect};

const DOVECOT: &str = "/usr/sbin/dovecot";
pub const USER: &str = "protocollo";
pub const PASSWORD: &str = "s3greta!";

/// One running server; stopped when dropped.
pub struct Dovecot {
    process: std::process::Child,
    dir: tempfile::TempDir,
    pub imap_port: u16,
    pub imaps_port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn id(args: &[&str]) -> u32 {
    let out = Command::new("id").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Dovecot {
    /// Starts a server, or `None` (test skipped) when Dovecot is not installed and the
    /// services are not required.
    pub async fn start() -> Option<Dovecot> {
        if !Path::new(DOVECOT).exists() {
            assert!(
                !sportello_store::testing::services_required(),
                "SPORTELLO_REQUIRE_SERVICES=1 but Dovecot ({DOVECOT}) is missing"
            );
            eprintln!("skipped: Dovecot is not installed (apt-get install dovecot-imapd)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // Dovecot's unprivileged processes must reach the folder.
        std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        for sub in ["run", "state", "home"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        // As root, Dovecot runs its parts as its own users; otherwise as the current one.
        let as_root = id(&["-u"]) == 0;
        let (internal, login, mail_uid, mail_gid) = if as_root {
            (
                "dovecot".to_owned(),
                "dovenull".to_owned(),
                id(&["-u", "dovecot"]),
                id(&["-g", "dovecot"]),
            )
        } else {
            let me =
                String::from_utf8_lossy(&Command::new("id").arg("-un").output().unwrap().stdout)
                    .trim()
                    .to_owned();
            (me.clone(), me, id(&["-u"]), id(&["-g"]))
        };
        std::os::unix::fs::chown(root.join("home"), Some(mail_uid), Some(mail_gid)).unwrap();
        Self::make_certificates(root);
        std::fs::write(
            root.join("passwd"),
            format!("{USER}:{{PLAIN}}{PASSWORD}::::::\n"),
        )
        .unwrap();
        let (imap_port, imaps_port) = (free_port(), free_port());
        let r = root.display();
        let config = format!(
            "base_dir = {r}/run\nstate_dir = {r}/state\nlog_path = {r}/dovecot.log\n\
             protocols = imap\nlisten = 127.0.0.1\n\
             ssl = yes\nssl_cert = <{r}/server.pem\nssl_key = <{r}/server.key\n\
             disable_plaintext_auth = no\nauth_mechanisms = plain login\n\
             default_internal_user = {internal}\ndefault_login_user = {login}\n\
             first_valid_uid = 1\nmail_location = maildir:~/Maildir\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {r}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid={mail_uid} gid={mail_gid} home={r}/home/%u\n}}\n\
             service imap-login {{\n  chroot =\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {imap_port}\n  }}\n  \
             inet_listener imaps {{\n    address = 127.0.0.1\n    port = {imaps_port}\n  }}\n}}\n\
             service anvil {{\n  chroot =\n}}\n"
        );
        std::fs::write(root.join("dovecot.conf"), config).unwrap();
        // In the foreground, as our child: it goes away with the test.
        let process = Command::new(DOVECOT)
            .arg("-F")
            .arg("-c")
            .arg(root.join("dovecot.conf"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = Dovecot {
            process,
            dir,
            imap_port,
            imaps_port,
        };
        // Ready when a login works.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = connect(&server.account()).await {
                let _ = s.logout().await;
                return Some(server);
            }
            assert!(
                Instant::now() < deadline,
                "Dovecot did not start: {}",
                std::fs::read_to_string(server.dir.path().join("dovecot.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A test CA and a server certificate for 127.0.0.1 signed by it.
    fn make_certificates(root: &Path) {
        let p = |f: &str| root.join(f);
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=Sportello test CA"])
            .arg("-keyout")
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.pem")));
        run(Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
            ])
            .arg("-keyout")
            .arg(p("server.key"))
            .arg("-out")
            .arg(p("server.csr")));
        std::fs::write(
            p("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(p("server.csr"))
            .arg("-CA")
            .arg(p("ca.pem"))
            .arg("-CAkey")
            .arg(p("ca.key"))
            .arg("-extfile")
            .arg(p("server.ext"))
            .arg("-out")
            .arg(p("server.pem")));
        // Dovecot's login processes read the key before dropping privileges; keep it private.
        std::fs::set_permissions(
            p("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
    }

    /// The server's configuration, for `doveadm -c`.
    pub fn config_file(&self) -> PathBuf {
        self.dir.path().join("dovecot.conf")
    }

    /// The test CA, for `SSL_CERT_FILE` of a client that must trust this server.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// `imap://…/INBOX` for the configuration.
    pub fn url(&self) -> String {
        format!(
            "imap://{USER}:{}@127.0.0.1:{}/INBOX",
            PASSWORD.replace('!', "%21"),
            self.imap_port
        )
    }

    /// `imaps://…/INBOX` for the configuration.
    pub fn url_tls(&self) -> String {
        format!(
            "imaps://{USER}:{}@127.0.0.1:{}/INBOX",
            PASSWORD.replace('!', "%21"),
            self.imaps_port
        )
    }

    fn account(&self) -> MailboxAccount {
        MailboxAccount::parse(&self.url()).unwrap()
    }

    /// A logged-in session with INBOX selected, as a mail client would have.
    pub async fn session(&self) -> Session {
        let mut s = connect(&self.account()).await.unwrap();
        s.select("INBOX").await.unwrap();
        s
    }

    /// Delivers messages into INBOX (IMAP APPEND), optionally already flagged `\Seen`
    /// as if a clerk had opened them.
    pub async fn deliver(&self, messages: &[Vec<u8>], seen: bool) {
        let mut s = connect(&self.account()).await.unwrap();
        for m in messages {
            s.append("INBOX", seen.then_some("(\\Seen)"), None, m)
                .await
                .unwrap();
        }
        let _ = s.logout().await;
    }

    /// UIDs of INBOX messages not yet marked `\Seen`.
    pub async fn unseen(&self) -> Vec<u32> {
        let mut s = self.session().await;
        let mut uids: Vec<u32> = s.uid_search("UNSEEN").await.unwrap().into_iter().collect();
        uids.sort_unstable();
        let _ = s.logout().await;
        uids
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.process.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.process.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
