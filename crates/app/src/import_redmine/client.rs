//! A small client of Redmine's REST API (JSON, 4.x–5.x): the project, the statuses, the
//! issues in pages of 100, one issue with its journals and attachments, a user's login, an
//! attachment's bytes. The API key goes in the `X-Redmine-API-Key` header, only ever to
//! the Redmine given (an attachment's `content_url` is re-rooted there), and is never
//! printed: errors name the URL path, not the key.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

/// What can go wrong talking to Redmine.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer (refused, timed out, not HTTP).
    #[error("Redmine at {url} does not answer: {detail}")]
    Unreachable {
        /// The URL without the key.
        url: String,
        /// Why.
        detail: String,
    },
    /// 401/403: the key is wrong or may not see this.
    #[error("Redmine refused the API key ({status} on {path})")]
    Unauthorized {
        /// The HTTP status.
        status: u16,
        /// The path asked for.
        path: String,
    },
    /// 404 (and 410).
    #[error("not found on Redmine: {0}")]
    NotFound(String),
    /// Another status or a body that is not the JSON expected.
    #[error("Redmine answered {path} unexpectedly: {detail}")]
    Protocol {
        /// The path asked for.
        path: String,
        /// What was wrong.
        detail: String,
    },
    /// 5xx, still after a few tries: Redmine is busy or broken (the next run tries again).
    #[error("Redmine failed on {path}: HTTP {status}")]
    ServerError {
        /// The path asked for.
        path: String,
        /// The HTTP status.
        status: u16,
    },
    /// An attachment over the size limit.
    #[error("attachment larger than {0} bytes")]
    TooLarge(u64),
}

/// A name Redmine gives with an id (`{"id": 1, "name": "New"}`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Named {
    /// Id.
    pub id: i64,
    /// Name.
    #[serde(default)]
    pub name: String,
}

/// An issue's status as the issue shows it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct StatusRef {
    /// Id.
    pub id: i64,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Closed (Redmine 5.1 and later say it on the issue; older ones in `/issue_statuses`).
    #[serde(default)]
    pub is_closed: Option<bool>,
}

/// A custom field's value on an issue.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct CustomValue {
    /// Field name.
    pub name: String,
    /// A string, a list of strings (multiple values) or null.
    #[serde(default)]
    pub value: serde_json::Value,
}

/// An attachment.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Attachment {
    /// Id.
    pub id: i64,
    /// File name.
    #[serde(default)]
    pub filename: String,
    /// Size in bytes.
    #[serde(default)]
    pub filesize: Option<u64>,
    /// Where its bytes are.
    #[serde(default)]
    pub content_url: String,
    /// Who added it.
    #[serde(default)]
    pub author: Option<Named>,
    /// When (RFC 3339).
    pub created_on: String,
    /// SHA-256 (Redmine 5) or MD5 (4.x) of the bytes, when given.
    #[serde(default)]
    pub digest: Option<String>,
}

/// One change a journal records.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct JournalDetail {
    /// `attr`, `cf`, `attachment`, `relation`.
    pub property: String,
    /// The attribute (`status_id`, `assigned_to_id`…).
    pub name: String,
    /// Before.
    #[serde(default)]
    pub old_value: Option<String>,
    /// After.
    #[serde(default)]
    pub new_value: Option<String>,
}

/// A journal entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Journal {
    /// Id.
    pub id: i64,
    /// Author (absent or "Anonymous" for a deleted user).
    #[serde(default)]
    pub user: Option<Named>,
    /// The note.
    #[serde(default)]
    pub notes: Option<String>,
    /// When (RFC 3339).
    pub created_on: String,
    /// A private note.
    #[serde(default)]
    pub private_notes: bool,
    /// The attribute changes.
    #[serde(default)]
    pub details: Vec<JournalDetail>,
}

/// An issue as Redmine gives it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Issue {
    /// Id.
    pub id: i64,
    /// Tracker.
    pub tracker: Named,
    /// Status.
    pub status: StatusRef,
    /// Author.
    #[serde(default)]
    pub author: Option<Named>,
    /// Assignee (a user or a group).
    #[serde(default)]
    pub assigned_to: Option<Named>,
    /// Subject.
    #[serde(default)]
    pub subject: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Custom fields.
    #[serde(default)]
    pub custom_fields: Vec<CustomValue>,
    /// Created (RFC 3339).
    pub created_on: String,
    /// Last changed (RFC 3339).
    pub updated_on: String,
    /// Closed (RFC 3339), for closed statuses (Redmine 3.x and later).
    #[serde(default)]
    pub closed_on: Option<String>,
    /// Attachments (with `include=attachments`).
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// Journals (with `include=journals`).
    #[serde(default)]
    pub journals: Vec<Journal>,
}

/// A user of Redmine, as far as the import needs one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login (matched with Sportello's users); empty when Redmine does not show it.
    pub login: String,
    /// Full name.
    pub name: String,
}

#[derive(Deserialize)]
struct IssuePage {
    issues: Vec<Issue>,
    #[serde(default)]
    total_count: Option<u64>,
}

#[derive(Deserialize)]
struct OneIssue {
    issue: Issue,
}

#[derive(Deserialize)]
struct Statuses {
    issue_statuses: Vec<StatusDef>,
}

#[derive(Deserialize)]
struct StatusDef {
    id: i64,
    name: String,
    #[serde(default)]
    is_closed: bool,
}

#[derive(Deserialize)]
struct OneUser {
    user: UserDef,
}

#[derive(Deserialize)]
struct UserDef {
    #[serde(default)]
    login: String,
    #[serde(default)]
    firstname: String,
    #[serde(default)]
    lastname: String,
}

#[derive(Deserialize)]
struct OneProject {
    project: ProjectDef,
}

#[derive(Deserialize)]
struct ProjectDef {
    id: i64,
    identifier: String,
}

/// A Redmine project, as the import names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Its numeric id.
    pub id: i64,
    /// Its identifier.
    pub identifier: String,
}

/// The client: one connection pool, the base URL, the key, a cache of users.
pub struct RedmineClient {
    http: reqwest::Client,
    base: Url,
    key: String,
    users: Mutex<HashMap<i64, Option<User>>>,
}

impl std::fmt::Debug for RedmineClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedmineClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl RedmineClient {
    /// A client of the Redmine at `url` (http or https) with `key`.
    pub fn new(url: &str, key: &str) -> Result<RedmineClient, ClientError> {
        let bad = |detail: String| ClientError::Unreachable {
            url: url.to_owned(),
            detail,
        };
        let mut base = Url::parse(url.trim()).map_err(|e| bad(format!("not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(bad("not an http(s) URL".into()));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(bad("credentials go in --key, not in the URL".into()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.set_query(None);
        base.set_fragment(None);
        if key.trim().is_empty() {
            return Err(ClientError::Unauthorized {
                status: 0,
                path: "(no key given)".into(),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(32)
            .user_agent(concat!("sportello/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| bad(format!("HTTP client: {e}")))?;
        Ok(RedmineClient {
            http,
            base,
            key: key.trim().to_owned(),
            users: Mutex::new(HashMap::new()),
        })
    }

    /// The base URL (without the key), naming the source of imported cases.
    pub fn base(&self) -> &str {
        self.base.as_str()
    }

    async fn send(&self, url: Url) -> Result<reqwest::Response, ClientError> {
        // A busy Redmine (SQLite locked, a worker restarting) answers 5xx or drops the
        // connection now and then: a few tries, a little apart, before giving up.
        let mut attempt = 0u32;
        loop {
            let outcome = self.send_once(url.clone()).await;
            match outcome {
                Err(ClientError::ServerError { .. } | ClientError::Unreachable { .. })
                    if attempt < 3 =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
                }
                other => return other,
            }
        }
    }

    async fn send_once(&self, url: Url) -> Result<reqwest::Response, ClientError> {
        let path = url.path().to_owned();
        let response = self
            .http
            .get(url)
            .header("X-Redmine-API-Key", &self.key)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.to_string(),
                detail: chain(e),
            })?;
        match response.status() {
            s if s.is_success() => Ok(response),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(ClientError::Unauthorized {
                status: response.status().as_u16(),
                path,
            }),
            StatusCode::NOT_FOUND | StatusCode::GONE => Err(ClientError::NotFound(path)),
            s if s.is_server_error() => Err(ClientError::ServerError {
                path,
                status: s.as_u16(),
            }),
            s => Err(ClientError::Protocol {
                path,
                detail: format!("HTTP {s}"),
            }),
        }
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.base.join(path).map_err(|e| ClientError::Protocol {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        let response = self.send(url).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.to_string(),
                detail: chain(e),
            })?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol {
            path: path.split('?').next().unwrap_or(path).to_owned(),
            detail: format!("not the JSON expected: {e}"),
        })
    }

    /// The project (checks the URL, the key and the identifier at once).
    pub async fn project(&self, identifier: &str) -> Result<Project, ClientError> {
        // A wrong key reads public projects as the anonymous user: ask who we are first.
        self.get_json::<serde_json::Value>("users/current.json")
            .await
            .map_err(|e| match e {
                ClientError::NotFound(path) => ClientError::Unauthorized { status: 404, path },
                other => other,
            })?;
        let p: OneProject = self
            .get_json(&format!("projects/{}.json", encode(identifier)))
            .await?;
        Ok(Project {
            id: p.project.id,
            identifier: p.project.identifier,
        })
    }

    /// Status id → (name, closed).
    pub async fn statuses(&self) -> Result<HashMap<i64, (String, bool)>, ClientError> {
        let s: Statuses = self.get_json("issue_statuses.json").await?;
        Ok(s.issue_statuses
            .into_iter()
            .map(|d| (d.id, (d.name, d.is_closed)))
            .collect())
    }

    /// Every issue of the project, of every status (also of its subprojects'), oldest
    /// first, read in pages of 100.
    pub async fn issues(&self, project_id: i64) -> Result<Vec<Issue>, ClientError> {
        let mut all = Vec::new();
        loop {
            let page: IssuePage = self
                .get_json(&format!(
                    "issues.json?project_id={project_id}&status_id=*&sort=id&limit=100&offset={}&include=attachments",
                    all.len()
                ))
                .await?;
            let got = page.issues.len();
            all.extend(page.issues);
            let total = page.total_count.unwrap_or(0) as usize;
            if got == 0 || all.len() >= total {
                break;
            }
        }
        all.sort_by_key(|i| i.id);
        all.dedup_by_key(|i| i.id);
        Ok(all)
    }

    /// One issue with its journals and attachments.
    pub async fn issue(&self, id: i64) -> Result<Issue, ClientError> {
        let one: OneIssue = self
            .get_json(&format!("issues/{id}.json?include=journals,attachments"))
            .await?;
        Ok(one.issue)
    }

    /// A user by id (cached); `None` when Redmine does not know it (deleted, the
    /// anonymous user, a group) or does not show it to this key.
    pub async fn user(&self, id: i64) -> Result<Option<User>, ClientError> {
        if let Some(known) = self.users.lock().await.get(&id) {
            return Ok(known.clone());
        }
        let user = match self.get_json::<OneUser>(&format!("users/{id}.json")).await {
            // Redmine shows logins to administrators only: another key gets the name.
            // The anonymous user (who a deleted user's work passes to) is no one.
            Ok(u) => Some(User {
                name: format!("{} {}", u.user.firstname, u.user.lastname)
                    .trim()
                    .to_owned(),
                login: u.user.login,
            })
            .filter(|u| {
                !(u.login.is_empty() && sportello_domain::redmine::author_unknown(Some(&u.name)))
            }),
            Err(ClientError::NotFound(_) | ClientError::Unauthorized { .. }) => None,
            Err(e) => return Err(e),
        };
        self.users.lock().await.insert(id, user.clone());
        Ok(user)
    }

    /// An attachment's bytes, at most `limit`; its `content_url` is taken on this
    /// Redmine (the key goes nowhere else).
    pub async fn download(&self, content_url: &str, limit: u64) -> Result<Vec<u8>, ClientError> {
        let url = self.rerooted(content_url)?;
        let mut response = self.send(url).await?;
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(ClientError::TooLarge(limit));
        }
        let mut out = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.to_string(),
                detail: chain(e),
            })?
        {
            if out.len() as u64 + chunk.len() as u64 > limit {
                return Err(ClientError::TooLarge(limit));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    fn rerooted(&self, content_url: &str) -> Result<Url, ClientError> {
        let bad = |detail: String| ClientError::Protocol {
            path: content_url.chars().take(200).collect(),
            detail,
        };
        let given = self
            .base
            .join(content_url)
            .map_err(|e| bad(e.to_string()))?;
        let mut url = self.base.clone();
        url.set_path(given.path());
        url.set_query(given.query());
        Ok(url)
    }
}

/// An HTTP error with its causes (connection refused…), without the URL (the key is in a
/// header, never in the URL, but the message stays short).
fn chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// What a path segment keeps as it is: letters, digits and `-_.`; the rest is escaped.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_goes_only_to_the_redmine_given() {
        let c = RedmineClient::new("http://127.0.0.1:3300/redmine", "k").unwrap();
        assert_eq!(c.base(), "http://127.0.0.1:3300/redmine/");
        let u = c
            .rerooted("http://evil.example/redmine/attachments/download/1/a.pdf")
            .unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:3300/redmine/attachments/download/1/a.pdf"
        );
        let u = c
            .rerooted("/redmine/attachments/download/2/b%20c.pdf")
            .unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:3300/redmine/attachments/download/2/b%20c.pdf"
        );
        assert!(RedmineClient::new("ftp://x", "k").is_err());
        assert!(RedmineClient::new("http://u:p@x", "k").is_err());
        assert!(matches!(
            RedmineClient::new("http://x", " "),
            Err(ClientError::Unauthorized { .. })
        ));
        assert!(!format!("{c:?}").contains('k') || !format!("{c:?}").contains("\"k\""));
        assert_eq!(encode("ztl-2019"), "ztl-2019");
        assert_eq!(encode("a/b"), "a%2Fb");
    }

    #[test]
    fn an_issue_reads_from_redmine_json() {
        let json = r#"{"issue":{"id":1,"project":{"id":1,"name":"p"},"tracker":{"id":4,"name":"Permesso ZTL"},
        "status":{"id":2,"name":"In Progress","is_closed":false},"author":{"id":1,"name":"Redmine Admin"},
        "assigned_to":{"id":1,"name":"Redmine Admin"},"subject":"S","description":null,
        "custom_fields":[{"id":1,"name":"Codice fiscale","value":"XX"},{"id":2,"name":"Targa","value":null}],
        "created_on":"2026-12-07T17:06:03Z","updated_on":"2026-12-07T17:06:20Z","closed_on":null,
        "attachments":[{"id":1,"filename":"a.pdf","filesize":8,"content_type":"application/pdf","description":"",
        "content_url":"http://127.0.0.1:3300/attachments/download/1/a.pdf","author":{"id":1,"name":"Redmine Admin"},
        "created_on":"2026-12-07T17:06:03Z"}],
        "journals":[{"id":1,"user":{"id":1,"name":"Redmine Admin"},"notes":null,"created_on":"2026-12-07T17:06:20Z",
        "private_notes":false,"details":[{"property":"attr","name":"status_id","old_value":"1","new_value":"2"}]},
        {"id":2,"user":{"id":1,"name":"Redmine Admin"},"notes":"privata","created_on":"2026-12-07T17:06:20Z","private_notes":true,"details":[]}]}}"#;
        let one: OneIssue = serde_json::from_str(json).unwrap();
        let issue = one.issue;
        assert_eq!(issue.tracker.name, "Permesso ZTL");
        assert_eq!(issue.status.is_closed, Some(false));
        assert_eq!(issue.journals.len(), 2);
        assert!(issue.journals[1].private_notes);
        assert_eq!(issue.attachments[0].digest, None);
        assert_eq!(issue.custom_fields[1].value, serde_json::Value::Null);
    }
}
