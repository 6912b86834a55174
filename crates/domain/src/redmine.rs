//! Taking over a Redmine's issues (CONTRACT §8.4): the map file and the rules that say what
//! an issue becomes — its case type, its status, its citizen and fields, and the flags
//! for the bad data an old register holds. Pure: the client and the store are elsewhere.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::case::Status;
use crate::fiscal_code::FiscalCode;

/// The case type of a tracker the map does not name.
pub const DEFAULT_CASE_TYPE: &str = "ztl_permit";

/// Flags set on imported cases whose old data is not what it should be (the raw value is
/// kept on the case).
pub mod flags {
    /// The fiscal code is not a valid one; kept in `fields.fiscal_code`.
    pub const INVALID_FISCAL_CODE: &str = "invalid_fiscal_code";
    /// An e-mail address is not one; kept in `fields.<attribute>`.
    pub const INVALID_CONTACT: &str = "invalid_contact";
    /// An attachment Redmine could not serve; named on the timeline.
    pub const MISSING_ATTACHMENT: &str = "missing_attachment";
    /// An attachment whose bytes do not match the digest Redmine gives.
    pub const DIGEST_MISMATCH: &str = "attachment_digest_mismatch";
    /// A journal or the issue by a user Redmine no longer knows (deleted: "Anonymous").
    pub const UNKNOWN_AUTHOR: &str = "unknown_author";
}

/// The map file (`--map FILE`, TOML): tracker → case type, custom field → citizen
/// attribute or case field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportMap {
    /// Tracker name → case type id.
    #[serde(default)]
    pub trackers: BTreeMap<String, String>,
    /// Citizen attribute (`fiscal_code`, `name`, `email`, `pec`, `phone`) → custom field name.
    #[serde(default)]
    pub citizen: BTreeMap<String, String>,
    /// Case field → custom field name (`protocol` is the old protocol number).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// The citizen attributes a map may name.
pub const CITIZEN_ATTRIBUTES: &[&str] = &["fiscal_code", "name", "email", "pec", "phone"];

/// A map file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// Not TOML, or keys the format does not have.
    #[error("map file: {0}")]
    Syntax(String),
    /// A citizen attribute that does not exist.
    #[error("map file: [citizen] {0} is not a citizen attribute (known: {known})", known = CITIZEN_ATTRIBUTES.join(", "))]
    UnknownAttribute(String),
    /// A tracker mapped to a case type that is not configured.
    #[error(
        "map file: [trackers] \"{tracker}\" = \"{case_type}\": unknown case type (known: {known})"
    )]
    UnknownCaseType {
        /// The tracker.
        tracker: String,
        /// The case type named.
        case_type: String,
        /// The configured ones.
        known: String,
    },
}

impl ImportMap {
    /// Parses the map file and checks it against the configured case types.
    pub fn parse(text: &str, case_types: &[&str]) -> Result<ImportMap, MapError> {
        let map: ImportMap = toml::from_str(text).map_err(|e| MapError::Syntax(e.to_string()))?;
        if let Some(bad) = map
            .citizen
            .keys()
            .find(|k| !CITIZEN_ATTRIBUTES.contains(&k.as_str()))
        {
            return Err(MapError::UnknownAttribute(bad.clone()));
        }
        if let Some((tracker, case_type)) = map
            .trackers
            .iter()
            .find(|(_, t)| !case_types.contains(&t.as_str()))
        {
            return Err(MapError::UnknownCaseType {
                tracker: tracker.clone(),
                case_type: case_type.clone(),
                known: case_types.join(", "),
            });
        }
        Ok(map)
    }

    /// The case type of an issue of `tracker`: the map's, else the case type of the same
    /// id when one is configured, else [`DEFAULT_CASE_TYPE`].
    pub fn case_type(&self, tracker: &str, case_types: &[&str]) -> String {
        if let Some(t) = self.trackers.get(tracker) {
            return t.clone();
        }
        if case_types.contains(&tracker) {
            return tracker.to_owned();
        }
        DEFAULT_CASE_TYPE.to_owned()
    }

    /// Places an issue's custom fields (name, value) on the case: the citizen's
    /// attributes, the case fields by the map, the others under their own name; empty
    /// values are skipped. Bad values are flagged and kept in `fields`.
    pub fn place(&self, custom_fields: &[(String, String)]) -> Placed {
        let mut placed = Placed::default();
        for (name, value) in custom_fields {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            if let Some((attribute, _)) = self.citizen.iter().find(|(_, cf)| *cf == name) {
                placed.citizen_attribute(attribute, value);
                continue;
            }
            let field = self
                .fields
                .iter()
                .find(|(_, cf)| *cf == name)
                .map(|(f, _)| f.clone())
                .unwrap_or_else(|| name.clone());
            if field == "protocol" {
                placed.protocol = Some(value.to_owned());
            }
            placed
                .fields
                .insert(field, serde_json::Value::from(value.to_owned()));
        }
        placed
    }
}

/// What an issue's custom fields say about the case.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placed {
    /// The citizen's valid fiscal code.
    pub fiscal_code: Option<FiscalCode>,
    /// The citizen's name.
    pub name: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// PEC.
    pub pec: Option<String>,
    /// Telephone.
    pub phone: Option<String>,
    /// Case fields.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// The old protocol number (`fields.protocol`).
    pub protocol: Option<String>,
    /// Flags for bad values.
    pub flags: Vec<String>,
}

impl Placed {
    fn citizen_attribute(&mut self, attribute: &str, value: &str) {
        let flag_raw = |placed: &mut Placed, flag: &str| {
            placed
                .fields
                .insert(attribute.to_owned(), serde_json::Value::from(value));
            if !placed.flags.iter().any(|f| f == flag) {
                placed.flags.push(flag.to_owned());
            }
        };
        match attribute {
            "fiscal_code" => match FiscalCode::parse(value) {
                Ok(code) => self.fiscal_code = Some(code),
                Err(_) => flag_raw(self, flags::INVALID_FISCAL_CODE),
            },
            "email" | "pec" if !looks_like_email(value) => flag_raw(self, flags::INVALID_CONTACT),
            "email" => self.email = Some(value.to_owned()),
            "pec" => self.pec = Some(value.to_owned()),
            "name" => self.name = Some(value.to_owned()),
            "phone" => self.phone = Some(value.to_owned()),
            _ => {}
        }
    }
}

fn looks_like_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !value.chars().any(char::is_whitespace)
}

/// The case status of an issue (CONTRACT §8.4): a closed Redmine status is `closed`; an
/// open issue is `in_review` when someone is assigned, else `received`.
pub fn case_status(redmine_status_closed: bool, assigned: bool) -> Status {
    if redmine_status_closed {
        Status::Closed
    } else if assigned {
        Status::InReview
    } else {
        Status::Received
    }
}

/// The digest Redmine gives for an attachment, by its length: SHA-256 (Redmine 5) or MD5
/// (Redmine 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest<'a> {
    /// 64 hex digits.
    Sha256(&'a str),
    /// 32 hex digits.
    Md5(&'a str),
}

/// Reads Redmine's `digest` of an attachment; `None` when absent or of another kind.
pub fn digest_kind(digest: Option<&str>) -> Option<Digest<'_>> {
    let d = digest?.trim();
    if !d.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    match d.len() {
        64 => Some(Digest::Sha256(d)),
        32 => Some(Digest::Md5(d)),
        _ => None,
    }
}

/// Whether a journal or issue author is a user Redmine no longer has: deleted users'
/// work is shown as "Anonymous" (Redmine 4.x–5.x), or has no author at all.
pub fn author_unknown(name: Option<&str>) -> bool {
    match name.map(str::trim) {
        None | Some("") => true,
        Some(n) => n.eq_ignore_ascii_case("anonymous") || n.eq_ignore_ascii_case("anonimo"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPES: &[&str] = &["ztl_permit", "cude", "seg"];

    fn map() -> ImportMap {
        ImportMap::parse(
            r#"
            [trackers]
            "Permesso ZTL" = "ztl_permit"
            "Contrassegno" = "cude"
            [citizen]
            fiscal_code = "Codice fiscale"
            email = "Email"
            [fields]
            plate = "Targa"
            category = "Categoria"
            protocol = "Protocollo"
            "#,
            TYPES,
        )
        .unwrap()
    }

    fn cf(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn the_map_file_is_checked() {
        assert_eq!(ImportMap::parse("", TYPES).unwrap(), ImportMap::default());
        assert!(matches!(
            ImportMap::parse("[trackers\n", TYPES),
            Err(MapError::Syntax(_))
        ));
        assert!(matches!(
            ImportMap::parse("[other]\nx = 1", TYPES),
            Err(MapError::Syntax(_))
        ));
        assert!(matches!(
            ImportMap::parse("[citizen]\nshoe_size = \"X\"", TYPES),
            Err(MapError::UnknownAttribute(a)) if a == "shoe_size"
        ));
        let err = ImportMap::parse("[trackers]\nBug = \"nope\"", TYPES).unwrap_err();
        assert!(err.to_string().contains("\"nope\""), "{err}");
    }

    #[test]
    fn trackers_become_case_types() {
        let m = map();
        assert_eq!(m.case_type("Contrassegno", TYPES), "cude");
        assert_eq!(m.case_type("seg", TYPES), "seg");
        assert_eq!(m.case_type("Bug", TYPES), DEFAULT_CASE_TYPE);
    }

    #[test]
    fn custom_fields_go_where_the_map_says() {
        let placed = map().place(&cf(&[
            ("Codice fiscale", " RSSMRA80A01H501U "),
            ("Targa", "AB123CD"),
            ("Categoria", "residenti"),
            ("Protocollo", "2019/0004711"),
            ("Note interne", "x"),
            ("Vuoto", "  "),
            ("Email", "mario@example.it"),
        ]));
        assert_eq!(placed.fiscal_code.unwrap().as_str(), "RSSMRA80A01H501U");
        assert_eq!(placed.email.as_deref(), Some("mario@example.it"));
        assert_eq!(placed.fields["plate"], "AB123CD");
        assert_eq!(placed.fields["category"], "residenti");
        assert_eq!(placed.fields["protocol"], "2019/0004711");
        assert_eq!(placed.protocol.as_deref(), Some("2019/0004711"));
        assert_eq!(placed.fields["Note interne"], "x", "unmapped: its own name");
        assert!(!placed.fields.contains_key("Vuoto"));
        assert!(!placed.fields.contains_key("fiscal_code"));
        assert!(placed.flags.is_empty());
    }

    #[test]
    fn bad_values_are_flagged_and_kept() {
        let placed = map().place(&cf(&[
            ("Codice fiscale", "RSSMRA80A01H501X"),
            ("Email", "not an address"),
        ]));
        assert_eq!(placed.fiscal_code, None);
        assert_eq!(placed.fields["fiscal_code"], "RSSMRA80A01H501X");
        assert_eq!(placed.fields["email"], "not an address");
        assert_eq!(
            placed.flags,
            vec![flags::INVALID_FISCAL_CODE, flags::INVALID_CONTACT]
        );
    }

    #[test]
    fn statuses_follow_the_contract() {
        assert_eq!(case_status(true, true), Status::Closed);
        assert_eq!(case_status(true, false), Status::Closed);
        assert_eq!(case_status(false, true), Status::InReview);
        assert_eq!(case_status(false, false), Status::Received);
    }

    #[test]
    fn digests_are_told_apart_by_length() {
        let sha = "a".repeat(64);
        let md5 = "b".repeat(32);
        assert_eq!(digest_kind(Some(&sha)), Some(Digest::Sha256(&sha)));
        assert_eq!(digest_kind(Some(&md5)), Some(Digest::Md5(&md5)));
        assert_eq!(digest_kind(Some("xyz")), None);
        assert_eq!(digest_kind(Some(&"g".repeat(64))), None);
        assert_eq!(digest_kind(None), None);
    }

    #[test]
    fn deleted_users_are_recognised() {
        assert!(author_unknown(None));
        assert!(author_unknown(Some("Anonymous")));
        assert!(!author_unknown(Some("Anna Bianchi")));
    }
}
