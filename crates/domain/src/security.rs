//! The kinds of security events: what an IT security office asks to see after an incident
//! (ASVS V7). Each is recorded with its instant, the login concerned (when known), the
//! client's address and a short detail that never holds a secret.

use serde::{Deserialize, Serialize};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityEventKind {
    /// A wrong login, password, fiscal code or second factor.
    SignInFailed,
    /// An attempt refused because its client or account is being throttled.
    SignInThrottled,
    /// A successful sign-in (recorded so that a later incident can be traced).
    SignedIn,
    /// A bearer token that is unknown, revoked, expired or of a disabled user.
    TokenInvalid,
    /// A state-changing form without a valid CSRF token.
    CsrfRefused,
    /// An authenticated caller asked for something its role does not allow.
    PermissionRefused,
    /// A user was created.
    UserAdded,
    /// A user was disabled: their sessions and tokens stop working.
    UserDisabled,
    /// A user was enabled again.
    UserEnabled,
    /// An administrator reset a user's password.
    PasswordReset,
    /// A user changed their own password.
    PasswordChanged,
    /// A second factor was set up or removed.
    SecondFactorChanged,
    /// An API token was issued.
    TokenCreated,
    /// API tokens were revoked.
    TokenRevoked,
    /// Anonymous writes from one client were refused for their rate.
    RateLimited,
}

impl SecurityEventKind {
    /// Every kind.
    pub const ALL: &'static [SecurityEventKind] = &[
        SecurityEventKind::SignInFailed,
        SecurityEventKind::SignInThrottled,
        SecurityEventKind::SignedIn,
        SecurityEventKind::TokenInvalid,
        SecurityEventKind::CsrfRefused,
        SecurityEventKind::PermissionRefused,
        SecurityEventKind::UserAdded,
        SecurityEventKind::UserDisabled,
        SecurityEventKind::UserEnabled,
        SecurityEventKind::PasswordReset,
        SecurityEventKind::PasswordChanged,
        SecurityEventKind::SecondFactorChanged,
        SecurityEventKind::TokenCreated,
        SecurityEventKind::TokenRevoked,
        SecurityEventKind::RateLimited,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        use SecurityEventKind::*;
        match self {
            SignInFailed => "sign_in_failed",
            SignInThrottled => "sign_in_throttled",
            SignedIn => "signed_in",
            TokenInvalid => "token_invalid",
            CsrfRefused => "csrf_refused",
            PermissionRefused => "permission_refused",
            UserAdded => "user_added",
            UserDisabled => "user_disabled",
            UserEnabled => "user_enabled",
            PasswordReset => "password_reset",
            PasswordChanged => "password_changed",
            SecondFactorChanged => "second_factor_changed",
            TokenCreated => "token_created",
            TokenRevoked => "token_revoked",
            RateLimited => "rate_limited",
        }
    }

    /// Whether the event is something refused or failed (worth a warning), rather than a
    /// change or a sign-in that went through.
    pub fn is_refusal(self) -> bool {
        use SecurityEventKind::*;
        matches!(
            self,
            SignInFailed
                | SignInThrottled
                | TokenInvalid
                | CsrfRefused
                | PermissionRefused
                | RateLimited
        )
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<SecurityEventKind> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for kind in SecurityEventKind::ALL {
            assert_eq!(SecurityEventKind::parse(kind.as_str()), Some(*kind));
            assert!(seen.insert(kind.as_str()), "{} twice", kind.as_str());
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(SecurityEventKind::parse("nonsense"), None);
        assert!(SecurityEventKind::TokenInvalid.is_refusal());
        assert!(!SecurityEventKind::UserAdded.is_refusal());
    }
}
