//! `[security]`: how long back-office sessions live and which roles must sign in with a
//! second factor (ASVS L2 V3.3: 30 minutes idle, 12 hours at most).

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// Roles that may be named in `security.second_factor_roles`.
const ROLES: &[&str] = &["admin", "supervisor", "operator", "police", "integration"];

/// `[security]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Minutes without use after which a back-office session lapses.
    pub session_idle_minutes: u32,
    /// Hours after which a session lapses however busy.
    pub session_max_hours: u32,
    /// Roles whose users must sign in with a TOTP code after the password (e.g. `["admin"]`).
    pub second_factor_roles: Vec<String>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            session_idle_minutes: 30,
            session_max_hours: 12,
            second_factor_roles: Vec::new(),
        }
    }
}

impl SecurityConfig {
    /// Checks the values, naming the key of a bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=24 * 60).contains(&self.session_idle_minutes) {
            return Err(ConfigError::new(
                "security.session_idle_minutes",
                "must be between 1 and 1440 minutes",
            ));
        }
        if !(1..=24 * 7).contains(&self.session_max_hours) {
            return Err(ConfigError::new(
                "security.session_max_hours",
                "must be between 1 and 168 hours",
            ));
        }
        if u64::from(self.session_idle_minutes) > u64::from(self.session_max_hours) * 60 {
            return Err(ConfigError::new(
                "security.session_idle_minutes",
                "must not exceed security.session_max_hours",
            ));
        }
        if let Some(bad) = self
            .second_factor_roles
            .iter()
            .find(|r| !ROLES.contains(&r.as_str()))
        {
            return Err(ConfigError::new(
                "security.second_factor_roles",
                format!("unknown role '{bad}' (allowed: {})", ROLES.join(", ")),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_asvs_level_two_and_bad_values_name_their_key() {
        let ok = SecurityConfig::default();
        assert_eq!((ok.session_idle_minutes, ok.session_max_hours), (30, 12));
        assert!(ok.validate().is_ok());
        let key = |c: SecurityConfig| c.validate().map_err(|e| e.key).err();
        assert_eq!(
            key(SecurityConfig {
                session_idle_minutes: 0,
                ..SecurityConfig::default()
            })
            .as_deref(),
            Some("security.session_idle_minutes")
        );
        assert_eq!(
            key(SecurityConfig {
                session_max_hours: 0,
                ..SecurityConfig::default()
            })
            .as_deref(),
            Some("security.session_max_hours")
        );
        assert_eq!(
            key(SecurityConfig {
                session_idle_minutes: 120,
                session_max_hours: 1,
                ..SecurityConfig::default()
            })
            .as_deref(),
            Some("security.session_idle_minutes")
        );
        assert_eq!(
            key(SecurityConfig {
                second_factor_roles: vec!["admin".into(), "boss".into()],
                ..SecurityConfig::default()
            })
            .as_deref(),
            Some("security.second_factor_roles")
        );
    }
}
