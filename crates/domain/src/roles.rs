//! Who may do what: the role matrix enforced on every endpoint.

use serde::{Deserialize, Serialize};

/// A user's role (CONTRACT §4, `sportello user add --role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the installation: users, configuration, everything a supervisor can do.
    Admin,
    /// Heads the office: reports, assignment, every case action.
    Supervisor,
    /// Works cases day to day.
    Operator,
    /// Municipal police: permit verification and whitelist, no access to case files.
    Police,
    /// Machine clients (MTA pipe, PBX, web form backend): inbound only.
    Integration,
}

impl Role {
    /// Every role.
    pub const ALL: &'static [Role] = &[
        Role::Admin,
        Role::Supervisor,
        Role::Operator,
        Role::Police,
        Role::Integration,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::Operator => "operator",
            Role::Police => "police",
            Role::Integration => "integration",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.iter().copied().find(|r| r.as_str() == s)
    }

    /// Whether this role holds `permission`.
    pub fn can(self, permission: Permission) -> bool {
        use Permission::*;
        use Role::*;
        match self {
            Admin => true,
            Supervisor => !matches!(permission, ManageUsers),
            Operator => matches!(
                permission,
                CreateCase
                    | ReadCase
                    | ActOnCase
                    | UploadDocument
                    | ReadDocument
                    | SendMessage
                    | LookupCaller
                    | VerifyPermit
                    | ContestTransit
            ),
            Police => matches!(
                permission,
                VerifyPermit | ReadWhitelist | CheckTransits | ContestTransit
            ),
            Integration => matches!(
                permission,
                CreateCase | PostInbound | UploadDocument | ContestTransit
            ),
        }
    }
}

/// A capability checked by the web layer before doing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Open a new case.
    CreateCase,
    /// Read case files (personal data; every read is audited).
    ReadCase,
    /// Apply workflow actions.
    ActOnCase,
    /// Attach documents to a case.
    UploadDocument,
    /// Download documents.
    ReadDocument,
    /// Write to a citizen.
    SendMessage,
    /// Deliver inbound messages and call events (MTA pipe, PBX).
    PostInbound,
    /// Screen pop for incoming calls.
    LookupCaller,
    /// Throughput and SLA reports.
    ReadReports,
    /// Check whether a plate may pass a gate.
    VerifyPermit,
    /// Download the gate whitelist.
    ReadWhitelist,
    /// Reconcile gate transits.
    CheckTransits,
    /// Manage permits (temporary plates, suspensions).
    ManagePermits,
    /// Report a contested transit or fine (opens an SEG case without reading any file).
    ContestTransit,
    /// Create and disable users.
    ManageUsers,
}

impl Permission {
    /// Every permission, for exhaustive matrix tests.
    pub const ALL: &'static [Permission] = &[
        Permission::CreateCase,
        Permission::ReadCase,
        Permission::ActOnCase,
        Permission::UploadDocument,
        Permission::ReadDocument,
        Permission::SendMessage,
        Permission::PostInbound,
        Permission::LookupCaller,
        Permission::ReadReports,
        Permission::VerifyPermit,
        Permission::ReadWhitelist,
        Permission::CheckTransits,
        Permission::ManagePermits,
        Permission::ContestTransit,
        Permission::ManageUsers,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;

    #[test]
    fn matrix() {
        // The whole matrix, written out so that any change to it is a visible decision.
        let expected: &[(Role, &[Permission])] = &[
            (Role::Admin, Permission::ALL),
            (
                Role::Supervisor,
                &[
                    CreateCase,
                    ReadCase,
                    ActOnCase,
                    UploadDocument,
                    ReadDocument,
                    SendMessage,
                    PostInbound,
                    LookupCaller,
                    ReadReports,
                    VerifyPermit,
                    ReadWhitelist,
                    CheckTransits,
                    ManagePermits,
                    ContestTransit,
                ],
            ),
            (
                Role::Operator,
                &[
                    CreateCase,
                    ReadCase,
                    ActOnCase,
                    UploadDocument,
                    ReadDocument,
                    SendMessage,
                    LookupCaller,
                    VerifyPermit,
                    ContestTransit,
                ],
            ),
            (
                Role::Police,
                &[VerifyPermit, ReadWhitelist, CheckTransits, ContestTransit],
            ),
            (
                Role::Integration,
                &[CreateCase, PostInbound, UploadDocument, ContestTransit],
            ),
        ];
        for (role, allowed) in expected {
            for p in Permission::ALL {
                assert_eq!(role.can(*p), allowed.contains(p), "{role:?} / {p:?}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(*r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
