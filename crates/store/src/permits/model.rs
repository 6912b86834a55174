//! What a permit looks like: its plates over time, its journal, the permit to issue and the
//! answers the public lookups give.

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    /// Rows added.
    pub added: u64,
    /// Rows already there (same permit, plate and start of validity).
    pub already_present: u64,
}

/// One row of a permit as shown to staff.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PermitPlate {
    /// Plate.
    pub plate: String,
    /// Country.
    pub country: String,
    /// Valid from (Unix ms; RFC 3339, Europe/Rome, in JSON).
    #[serde(serialize_with = "ms_as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub valid_from: i64,
    /// Valid to, exclusive (Unix ms; RFC 3339, Europe/Rome, in JSON).
    #[serde(serialize_with = "ms_as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub valid_to: i64,
    /// `active`, `suspended` or `revoked`.
    pub status: String,
    /// `import`, `issued`, `changed` (a plate changed by a case) or `temporary`.
    pub source: String,
    /// When it was recorded (Unix ms; RFC 3339, Europe/Rome, in JSON).
    #[serde(serialize_with = "ms_as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: i64,
    /// Who recorded it.
    pub recorded_by: String,
    /// The policy version it was recorded under (`policy_versions`), when known.
    pub policy_version: Option<i64>,
}

/// Instants leave the API as RFC 3339 in Rome's time (CONTRACT §5), never as numbers.
pub(super) fn ms_as_rfc3339<S: serde::Serializer>(
    ms: &i64,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    match chrono::DateTime::from_timestamp_millis(*ms) {
        Some(t) => serializer.serialize_str(&crate::time::rome_rfc3339(t)),
        None => Err(serde::ser::Error::custom(format!(
            "instant out of range: {ms}"
        ))),
    }
}

/// A temporary plate communicated for a person-bound permit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporaryPlate {
    /// The plate.
    pub plate: sportello_domain::plate::Plate,
    /// From (Unix ms).
    pub from_ms: i64,
    /// To (Unix ms).
    pub to_ms: i64,
}

/// A permit: its holder, category and plate rows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PermitView {
    /// Permit number.
    pub number: String,
    /// Category id.
    pub category: String,
    /// Holder's fiscal code.
    pub holder_fiscal_code: String,
    /// Holder's name.
    pub holder_name: String,
    /// Where it stands now: `active` (a plate may pass), `suspended`, `revoked`,
    /// `not_yet_valid` or `expired`.
    pub state: String,
    /// Every plate row, oldest first.
    pub plates: Vec<PermitPlate>,
    /// For permits issued here: the token of the public verification page
    /// (`/permits/v/{token}`), printed as the permit's QR code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_token: Option<String>,
    /// Numbers it was issued under before it was renumbered (the old `CUD-2026-000001`
    /// shape): they still find it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// What happened to it, oldest first: who, when, what and why.
    pub history: Vec<PermitEvent>,
}

/// One entry of a permit's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PermitEvent {
    /// When (RFC 3339, Europe/Rome).
    pub at: String,
    /// Who.
    pub actor: String,
    /// `issued`, `temporary_plate`, `suspended`, `revoked`, `reinstated`.
    pub kind: String,
    /// Details (plates, reason…).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// A permit to issue from a case, already checked against the policy.
#[derive(Debug, Clone)]
pub struct NewPermit {
    /// Category id.
    pub category: String,
    /// Its number prefix (e.g. `RES`).
    pub prefix: String,
    /// Holder's fiscal code.
    pub holder_fiscal_code: String,
    /// Holder's name.
    pub holder_name: String,
    /// The plates.
    pub plates: Vec<sportello_domain::plate::Plate>,
    /// Valid from (Unix ms).
    pub valid_from: i64,
    /// Valid to (Unix ms).
    pub valid_to: i64,
    /// The policy version it is decided under.
    pub policy_version: Option<i64>,
    /// The permit this one renews: it does not count as a clash, and its history
    /// records the renewal.
    pub renews: Option<String>,
}

/// A permit just issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedPermit {
    /// Its number, e.g. `RES202600001`.
    pub number: String,
    /// The token of its public verification page.
    pub verify_token: String,
}

/// What the public page behind a permit's QR code shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicPermit {
    /// Its number.
    pub number: String,
    /// Its former numbers.
    pub aliases: Vec<String>,
    /// Whether a plate of it is valid now.
    pub valid: bool,
    /// The plates valid now.
    pub plates: Vec<String>,
}

/// A permit number quoted in a message, as the register knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QuotedPermit {
    /// The text as quoted (the number, or a former number).
    pub quoted: String,
    /// The permit's number.
    pub permit: String,
    /// Its holder's fiscal code.
    pub holder_fiscal_code: String,
    /// The case it was issued from, when it was issued here.
    pub case_reference: Option<String>,
}
