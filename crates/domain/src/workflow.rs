//! The case workflow of CONTRACT §7.2 as a pure function: given what is known about a
//! case and the action asked for, say what changes or why it is not allowed.

use serde::{Deserialize, Serialize};

use crate::case::{Status, WorkflowKind};

/// Days the citizen has to send what an integration request asks for: the longest the
/// clock may stay suspended for it (L. 241/1990 art. 2 c. 7).
pub const INTEGRATION_DAYS: i64 = 30;
/// Days the citizen has to answer an art. 10-bis notice of the reasons against.
pub const NOTICE_DAYS: i64 = 10;

/// Why the legal clock is suspended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseKind {
    /// `request_integration`: once per case, at most 30 days (L. 241/1990 art. 2 c. 7).
    Integration,
    /// `notify_rejection`: art. 10-bis, the citizen has 10 days to answer.
    RejectionNotice,
}

impl PauseKind {
    /// The longest the clock may stay suspended for this reason, in calendar days.
    pub fn max_days(self) -> i64 {
        match self {
            PauseKind::Integration => INTEGRATION_DAYS,
            PauseKind::RejectionNotice => NOTICE_DAYS,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PauseKind::Integration => "integration",
            PauseKind::RejectionNotice => "rejection_notice",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<PauseKind> {
        match s {
            "integration" => Some(PauseKind::Integration),
            "rejection_notice" => Some(PauseKind::RejectionNotice),
            _ => None,
        }
    }
}

/// An action asked of a case, with the arguments it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Give the case to an operator (login).
    Assign {
        /// Login of the new assignee.
        user: String,
    },
    /// Begin examining the case.
    StartReview,
    /// Ask the citizen for what is missing; pauses the clock.
    RequestIntegration {
        /// The documents or data that are missing.
        missing: Vec<String>,
    },
    /// The citizen sent what was missing; the clock resumes.
    IntegrationReceived,
    /// Art. 10-bis notice of the reasons against; pauses the clock for up to 10 days.
    NotifyRejection {
        /// The reasons that stand against the application.
        reasons: Vec<String>,
    },
    /// The citizen answered the art. 10-bis notice; the clock resumes.
    ObservationsReceived,
    /// Decide favourably.
    Approve,
    /// Decide against, after an art. 10-bis notice.
    Reject {
        /// Why, including why the observations were not accepted.
        reasons: Vec<String>,
    },
    /// Issue the permit.
    Issue,
    /// Archive a concluded case.
    Close,
    /// Archive a case that will not be concluded (withdrawn, duplicate); needs a note.
    Withdraw,
    /// Take a closed case up again.
    Reopen,
    /// Error report: the violation stands.
    Confirm {
        /// Why.
        reasons: Vec<String>,
    },
    /// Error report: the violation is annulled; the police receive the annulment request.
    Annul {
        /// Why.
        reasons: Vec<String>,
    },
}

impl Action {
    /// Every action name, as accepted by the API.
    pub const NAMES: &'static [&'static str] = &[
        "assign",
        "start_review",
        "request_integration",
        "integration_received",
        "notify_rejection",
        "observations_received",
        "approve",
        "reject",
        "issue",
        "close",
        "withdraw",
        "reopen",
        "confirm",
        "annul",
    ];

    /// The wire name of the action.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Assign { .. } => "assign",
            Action::StartReview => "start_review",
            Action::RequestIntegration { .. } => "request_integration",
            Action::IntegrationReceived => "integration_received",
            Action::NotifyRejection { .. } => "notify_rejection",
            Action::ObservationsReceived => "observations_received",
            Action::Approve => "approve",
            Action::Reject { .. } => "reject",
            Action::Issue => "issue",
            Action::Close => "close",
            Action::Withdraw => "withdraw",
            Action::Reopen => "reopen",
            Action::Confirm { .. } => "confirm",
            Action::Annul { .. } => "annul",
        }
    }
}

/// What the workflow needs to know about a case to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFacts {
    /// Current status.
    pub status: Status,
    /// The case type's workflow.
    pub workflow: WorkflowKind,
    /// Whether integration was ever requested on this case.
    pub integration_requested: bool,
    /// Whether an art. 10-bis notice was ever sent on this case.
    pub rejection_notified: bool,
    /// Whether the art. 10-bis period is still running (notice sent less than 10 days ago
    /// and no answer yet): the citizen's time to answer may not be cut short.
    pub notice_period_open: bool,
    /// Whether the action carries a non-empty note.
    pub has_note: bool,
}

/// What happens to the clock with a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockChange {
    /// Nothing.
    None,
    /// A suspension starts.
    Pause(PauseKind),
    /// The running suspension ends.
    Resume,
}

/// The effect of an allowed action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Status before.
    pub from: Status,
    /// Status after (may equal `from`, e.g. `assign`).
    pub to: Status,
    /// What happens to the legal clock.
    pub clock: ClockChange,
}

/// Why an action is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowError {
    /// The action does not apply in this status (HTTP 409).
    #[error("action '{action}' is not allowed when the case is '{status}'")]
    NotAllowed {
        /// Action asked.
        action: &'static str,
        /// Current status.
        status: Status,
    },
    /// The action does not exist in this case type's workflow (HTTP 409).
    #[error("action '{action}' does not belong to the workflow of this case type")]
    WrongWorkflow {
        /// Action asked.
        action: &'static str,
    },
    /// Integration may be requested once per case (L. 241/1990 art. 2 c. 7) (HTTP 409).
    #[error(
        "integration was already requested once on this case; the term may be suspended only once"
    )]
    IntegrationAlreadyRequested,
    /// `reject` needs an earlier art. 10-bis notice (HTTP 409).
    #[error(
        "a rejection needs an earlier notify_rejection (art. 10-bis L. 241/1990) on the same case"
    )]
    NoRejectionNotice,
    /// The citizen's 10 days to answer an art. 10-bis notice are still running (HTTP 409).
    #[error(
        "the citizen has 10 days to answer the art. 10-bis notice: reject after their answer (observations_received) or once the 10 days have passed"
    )]
    NoticePeriodOpen,
    /// A required argument is missing or empty (HTTP 422).
    #[error("'{field}' is required for action '{action}'")]
    MissingArgument {
        /// Action asked.
        action: &'static str,
        /// The missing argument.
        field: &'static str,
    },
}

impl WorkflowError {
    /// Whether the error is about the request's content (422) rather than the case's state (409).
    pub fn is_validation(&self) -> bool {
        matches!(self, WorkflowError::MissingArgument { .. })
    }

    /// The refusal as data, for a message in the reader's language.
    pub fn refusal(&self) -> crate::refusal::Refusal {
        use crate::refusal::Refusal;
        match self {
            WorkflowError::NotAllowed { action, status } => {
                Refusal::new("refusal.action_not_allowed")
                    .named("action", "action", *action)
                    .named("status", "status", status.as_str())
            }
            WorkflowError::WrongWorkflow { action } => {
                Refusal::new("refusal.wrong_workflow").named("action", "action", *action)
            }
            WorkflowError::IntegrationAlreadyRequested => {
                Refusal::new("refusal.integration_already_requested")
            }
            WorkflowError::NoRejectionNotice => Refusal::new("refusal.no_rejection_notice"),
            WorkflowError::NoticePeriodOpen => Refusal::new("refusal.notice_period_open"),
            WorkflowError::MissingArgument { action, field } => {
                Refusal::new("refusal.missing_argument")
                    .with("field", field)
                    .named("action", "action", *action)
            }
        }
    }
}

fn non_empty(list: &[String]) -> bool {
    list.iter().any(|s| !s.trim().is_empty())
}

/// Decides whether `action` may be applied to a case with `facts`, and what it changes.
pub fn plan(facts: &CaseFacts, action: &Action) -> Result<Transition, WorkflowError> {
    use Status::*;
    let name = action.name();
    let status = facts.status;
    let not_allowed = || WorkflowError::NotAllowed {
        action: name,
        status,
    };
    let missing = |field| WorkflowError::MissingArgument {
        action: name,
        field,
    };
    let permit_only = || {
        if facts.workflow == WorkflowKind::Permit {
            Ok(())
        } else {
            Err(WorkflowError::WrongWorkflow { action: name })
        }
    };
    let report_only = || {
        if facts.workflow == WorkflowKind::Report {
            Ok(())
        } else {
            Err(WorkflowError::WrongWorkflow { action: name })
        }
    };
    let go = |to, clock| {
        Ok(Transition {
            from: status,
            to,
            clock,
        })
    };

    match action {
        Action::Assign { user } => {
            if user.trim().is_empty() {
                return Err(missing("user"));
            }
            if !status.is_open() {
                return Err(not_allowed());
            }
            go(status, ClockChange::None)
        }
        Action::StartReview => match status {
            Received => go(InReview, ClockChange::None),
            _ => Err(not_allowed()),
        },
        Action::RequestIntegration { missing: items } => {
            if !non_empty(items) {
                return Err(missing("missing"));
            }
            match status {
                Received | InReview if facts.integration_requested => {
                    Err(WorkflowError::IntegrationAlreadyRequested)
                }
                Received | InReview => {
                    go(WaitingCitizen, ClockChange::Pause(PauseKind::Integration))
                }
                _ => Err(not_allowed()),
            }
        }
        Action::IntegrationReceived => match status {
            WaitingCitizen => go(InReview, ClockChange::Resume),
            _ => Err(not_allowed()),
        },
        Action::NotifyRejection { reasons } => {
            permit_only()?;
            if !non_empty(reasons) {
                return Err(missing("reasons"));
            }
            match status {
                InReview => go(
                    RejectionNotice,
                    ClockChange::Pause(PauseKind::RejectionNotice),
                ),
                _ => Err(not_allowed()),
            }
        }
        Action::ObservationsReceived => match status {
            RejectionNotice => go(InReview, ClockChange::Resume),
            _ => Err(not_allowed()),
        },
        Action::Approve => {
            permit_only()?;
            match status {
                InReview => go(Approved, ClockChange::None),
                _ => Err(not_allowed()),
            }
        }
        Action::Reject { reasons } => {
            permit_only()?;
            if !non_empty(reasons) {
                return Err(missing("reasons"));
            }
            match status {
                InReview | RejectionNotice if !facts.rejection_notified => {
                    Err(WorkflowError::NoRejectionNotice)
                }
                RejectionNotice if facts.notice_period_open => Err(WorkflowError::NoticePeriodOpen),
                InReview => go(Rejected, ClockChange::None),
                RejectionNotice => go(Rejected, ClockChange::Resume),
                _ => Err(not_allowed()),
            }
        }
        Action::Issue => {
            permit_only()?;
            match status {
                Approved => go(Issued, ClockChange::None),
                _ => Err(not_allowed()),
            }
        }
        Action::Close => match status {
            Issued | Rejected => go(Closed, ClockChange::None),
            _ => Err(not_allowed()),
        },
        Action::Withdraw => {
            if !facts.has_note {
                return Err(missing("note"));
            }
            match status {
                Closed => Err(not_allowed()),
                WaitingCitizen | RejectionNotice => go(Closed, ClockChange::Resume),
                _ => go(Closed, ClockChange::None),
            }
        }
        Action::Reopen => match status {
            Closed => go(InReview, ClockChange::None),
            _ => Err(not_allowed()),
        },
        Action::Confirm { reasons } | Action::Annul { reasons } => {
            report_only()?;
            if !non_empty(reasons) {
                return Err(missing("reasons"));
            }
            match status {
                InReview => go(Closed, ClockChange::None),
                _ => Err(not_allowed()),
            }
        }
    }
}

/// The state of the legal clock implied by a status alone (pauses may have lapsed; see [`crate::sla`]).
pub fn clock_runs_in(status: Status) -> bool {
    matches!(status, Status::Received | Status::InReview)
}

/// Whether the procedure is concluded for the legal term (decision taken or case archived).
pub fn clock_stopped_in(status: Status) -> bool {
    matches!(
        status,
        Status::Approved | Status::Issued | Status::Rejected | Status::Closed
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn facts(status: Status) -> CaseFacts {
        CaseFacts {
            status,
            workflow: WorkflowKind::Permit,
            integration_requested: false,
            rejection_notified: false,
            notice_period_open: false,
            has_note: false,
        }
    }

    fn reasons() -> Vec<String> {
        vec!["manca il libretto".into()]
    }

    #[test]
    fn happy_path_of_a_permit() {
        let mut f = facts(Status::Received);
        let steps = [
            (Action::StartReview, Status::InReview, ClockChange::None),
            (
                Action::RequestIntegration { missing: reasons() },
                Status::WaitingCitizen,
                ClockChange::Pause(PauseKind::Integration),
            ),
            (
                Action::IntegrationReceived,
                Status::InReview,
                ClockChange::Resume,
            ),
            (Action::Approve, Status::Approved, ClockChange::None),
            (Action::Issue, Status::Issued, ClockChange::None),
            (Action::Close, Status::Closed, ClockChange::None),
            (Action::Reopen, Status::InReview, ClockChange::None),
        ];
        for (action, to, clock) in steps {
            let t =
                plan(&f, &action).unwrap_or_else(|e| panic!("{action:?} from {:?}: {e}", f.status));
            assert_eq!((t.to, t.clock), (to, clock), "{action:?}");
            if matches!(action, Action::RequestIntegration { .. }) {
                f.integration_requested = true;
            }
            f.status = t.to;
        }
    }

    #[test]
    fn issue_from_received_is_refused() {
        let err = plan(&facts(Status::Received), &Action::Issue).unwrap_err();
        assert_eq!(
            err,
            WorkflowError::NotAllowed {
                action: "issue",
                status: Status::Received
            }
        );
    }

    #[test]
    fn reject_needs_an_earlier_notice() {
        let f = facts(Status::InReview);
        assert_eq!(
            plan(&f, &Action::Reject { reasons: reasons() }),
            Err(WorkflowError::NoRejectionNotice)
        );
        let t = plan(&f, &Action::NotifyRejection { reasons: reasons() }).unwrap();
        assert_eq!(t.to, Status::RejectionNotice);
        assert_eq!(t.clock, ClockChange::Pause(PauseKind::RejectionNotice));
        let waiting = CaseFacts {
            status: Status::RejectionNotice,
            rejection_notified: true,
            notice_period_open: true,
            ..f.clone()
        };
        assert_eq!(
            plan(&waiting, &Action::Reject { reasons: reasons() }),
            Err(WorkflowError::NoticePeriodOpen)
        );
        let notified = CaseFacts {
            notice_period_open: false,
            ..waiting
        };
        let t = plan(&notified, &Action::Reject { reasons: reasons() }).unwrap();
        assert_eq!((t.to, t.clock), (Status::Rejected, ClockChange::Resume));
        let back = CaseFacts {
            status: Status::InReview,
            ..notified
        };
        assert_eq!(
            plan(&back, &Action::Reject { reasons: reasons() })
                .unwrap()
                .to,
            Status::Rejected
        );
    }

    #[test]
    fn integration_only_once() {
        let f = CaseFacts {
            integration_requested: true,
            ..facts(Status::InReview)
        };
        assert_eq!(
            plan(&f, &Action::RequestIntegration { missing: reasons() }),
            Err(WorkflowError::IntegrationAlreadyRequested)
        );
    }

    #[test]
    fn arguments_are_required() {
        let f = facts(Status::InReview);
        for action in [
            Action::RequestIntegration { missing: vec![] },
            Action::NotifyRejection {
                reasons: vec!["  ".into()],
            },
            Action::Assign { user: " ".into() },
            Action::Withdraw,
        ] {
            let err = plan(&f, &action).unwrap_err();
            assert!(err.is_validation(), "{action:?} gave {err:?}");
        }
    }

    #[test]
    fn report_workflow_ends_with_confirm_or_annul() {
        let f = CaseFacts {
            workflow: WorkflowKind::Report,
            ..facts(Status::InReview)
        };
        assert_eq!(
            plan(&f, &Action::Approve),
            Err(WorkflowError::WrongWorkflow { action: "approve" })
        );
        assert_eq!(
            plan(&f, &Action::Annul { reasons: reasons() }).unwrap().to,
            Status::Closed
        );
        assert_eq!(
            plan(&f, &Action::Confirm { reasons: reasons() })
                .unwrap()
                .to,
            Status::Closed
        );
        let permit = facts(Status::InReview);
        assert!(matches!(
            plan(&permit, &Action::Annul { reasons: reasons() }),
            Err(WorkflowError::WrongWorkflow { .. })
        ));
    }

    #[test]
    fn withdraw_needs_a_note_and_ends_a_pause() {
        let f = CaseFacts {
            has_note: true,
            ..facts(Status::WaitingCitizen)
        };
        let t = plan(&f, &Action::Withdraw).unwrap();
        assert_eq!((t.to, t.clock), (Status::Closed, ClockChange::Resume));
        assert!(
            plan(
                &CaseFacts {
                    status: Status::Closed,
                    ..f
                },
                &Action::Withdraw
            )
            .is_err()
        );
    }

    fn any_status() -> impl Strategy<Value = Status> {
        prop::sample::select(Status::ALL.to_vec())
    }

    fn any_action() -> impl Strategy<Value = Action> {
        prop::sample::select(vec![
            Action::Assign { user: "op".into() },
            Action::StartReview,
            Action::RequestIntegration { missing: reasons() },
            Action::IntegrationReceived,
            Action::NotifyRejection { reasons: reasons() },
            Action::ObservationsReceived,
            Action::Approve,
            Action::Reject { reasons: reasons() },
            Action::Issue,
            Action::Close,
            Action::Withdraw,
            Action::Reopen,
            Action::Confirm { reasons: reasons() },
            Action::Annul { reasons: reasons() },
        ])
    }

    proptest! {
        /// Pauses start only when entering a waiting status and end only when leaving one,
        /// and a closed case can only be reopened.
        #[test]
        fn clock_changes_follow_statuses(status in any_status(), action in any_action(),
                                         integ in any::<bool>(), notified in any::<bool>(), note in any::<bool>(),
                                         report in any::<bool>(), open in any::<bool>()) {
            let f = CaseFacts {
                status,
                workflow: if report { WorkflowKind::Report } else { WorkflowKind::Permit },
                integration_requested: integ, rejection_notified: notified, notice_period_open: open, has_note: note,
            };
            if let Ok(t) = plan(&f, &action) {
                let waiting = |s| matches!(s, Status::WaitingCitizen | Status::RejectionNotice);
                match t.clock {
                    ClockChange::Pause(_) => prop_assert!(waiting(t.to) && !waiting(t.from)),
                    ClockChange::Resume => prop_assert!(waiting(t.from) && !waiting(t.to)),
                    ClockChange::None => prop_assert!(!waiting(t.from) || waiting(t.to)),
                }
                if status == Status::Closed {
                    prop_assert_eq!(action.name(), "reopen");
                }
                if t.to == Status::Rejected && t.from != Status::Rejected {
                    prop_assert!(notified);
                    prop_assert!(!(t.from == Status::RejectionNotice && open), "the 10 days may not be cut short");
                }
                if matches!(t.clock, ClockChange::Pause(PauseKind::Integration)) {
                    prop_assert!(!integ);
                }
            }
        }
    }
}
