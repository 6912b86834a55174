//! The office itself: its names and addresses (letterhead, police, help desk), its calendar, its
//! case types with their terms, and the limits that protect it.

use serde::{Deserialize, Serialize};

/// `[calendar]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalendarConfig {
    /// Extra local holidays as `MM-DD`, e.g. the patron saint's day `"06-29"`.
    pub extra_holidays: Vec<String>,
}

/// `[office]`: the names printed on the letters the office signs (annulment requests to
/// the police, letters to citizens).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfficeConfig {
    /// The administration, first line of the letterhead.
    pub authority: String,
    /// The office, second line of the letterhead and signature.
    pub name: String,
    /// Recipient of annulment requests: the municipal police command.
    pub police: String,
    /// The police command's PEC address: annulment requests are sent there through
    /// `outbound.pec`. With neither this nor `police_email`, a request is flagged to be
    /// delivered by hand.
    pub police_pec: Option<String>,
    /// The police command's ordinary e-mail address, used when it has no PEC address
    /// (through `outbound.email`).
    pub police_email: Option<String>,
}

impl OfficeConfig {
    /// The police command's configured addresses (PEC first), trimmed: where annulment
    /// requests go, and the senders whose answers intake links by protocol number.
    pub fn police_addresses(&self) -> Vec<String> {
        [&self.police_pec, &self.police_email]
            .into_iter()
            .flatten()
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect()
    }
}

impl Default for OfficeConfig {
    fn default() -> Self {
        OfficeConfig {
            authority: "Comune".into(),
            name: "Ufficio Permessi ZTL".into(),
            police: "Comando di Polizia Locale".into(),
            police_pec: None,
            police_email: None,
        }
    }
}

/// `[limits]`: guards against abuse.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest JSON request body, in bytes.
    pub max_json_bytes: usize,
    /// Largest page size of list endpoints.
    pub max_per_page: u32,
    /// Failed API authentications allowed per client address and minute before 429.
    pub auth_failures_per_minute: u32,
    /// Failed sign-ins allowed per account and client in `sign_in_window_seconds` (a
    /// browser that signed in to that account before has its own count).
    pub sign_in_failures: u32,
    /// Failed sign-ins allowed per client, whatever the account, in the same window.
    pub sign_in_failures_per_client: u32,
    /// The window of the sign-in counters, in seconds (a lockout lasts at most this long).
    pub sign_in_window_seconds: u64,
    /// Anonymous writes (applications, contested fines, portal uploads) allowed per client
    /// in `anonymous_writes_window_seconds`, counted before the form is read.
    pub anonymous_writes: u32,
    /// The window of `anonymous_writes`, in seconds.
    pub anonymous_writes_window_seconds: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_json_bytes: 1024 * 1024,
            max_per_page: 200,
            auth_failures_per_minute: 30,
            sign_in_failures: 5,
            sign_in_failures_per_client: 20,
            sign_in_window_seconds: 900,
            anonymous_writes: 10,
            anonymous_writes_window_seconds: 600,
        }
    }
}

/// One `[[case_type]]`: adds a case type or overrides a built-in one with the same `id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseTypeConfig {
    /// Identifier, e.g. `passo_carrabile`.
    pub id: String,
    /// Reference prefix, 2–5 capitals.
    pub prefix: String,
    /// Display name.
    pub name: String,
    /// Legal term in calendar days.
    #[serde(default = "default_term")]
    pub term_days: u32,
    /// Service standard in calendar days.
    #[serde(default = "default_service")]
    pub service_days: u32,
    /// `low`, `normal`, `high`, `urgent`.
    #[serde(default = "default_priority")]
    pub priority: String,
    /// `permit` or `report`.
    #[serde(default = "default_workflow")]
    pub workflow: String,
}

fn default_term() -> u32 {
    30
}

fn default_service() -> u32 {
    15
}

fn default_priority() -> String {
    "normal".into()
}

fn default_workflow() -> String {
    "permit".into()
}
