//! The case page as a workspace: the required documents as a checklist ticked from what
//! already came in, the colleagues a case can be assigned to, what approving still lacks
//! (in words, the same check `issue` makes), whether a rejection may be offered yet, and
//! the session-bound token that lets a moved message be moved back.

use sha2::{Digest, Sha256};
use sportello_domain::roles::Permission;
use sportello_store::cases::CaseView;

use crate::AppState;
use crate::i18n::Tr;

/// One required document of the chosen category, as the permit-data form shows it.
pub(super) struct CheckItem {
    /// Its id (`categories[].documents`), the value saved in `fields.documents`.
    pub(super) id: String,
    /// Its name in the reader's language.
    pub(super) name: String,
    /// Ticked: already confirmed on the case, or a document on the case looks like it.
    pub(super) checked: bool,
    /// The file that looks like it, shown next to it.
    pub(super) satisfied_by: Option<String>,
}

/// The category a permit case asks for: `fields.category`, or `cude` for a CUDE case.
pub(super) fn chosen_category(case: &CaseView) -> Option<String> {
    case.fields
        .get("category")
        .and_then(|c| c.as_str())
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .or_else(|| (case.summary.case_type == "cude").then(|| "cude".to_owned()))
}

/// The document ids confirmed on the case (`fields.documents`).
fn confirmed(case: &CaseView) -> Vec<String> {
    case.fields
        .get("documents")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The checklist of the permit-data form: the chosen category's required documents (every
/// category's when none is chosen yet; then any other document already confirmed, so that
/// saving keeps it), each ticked when it is confirmed or when a document on the case is
/// recognised as it, with that document's file name.
pub(super) async fn checklist(state: &AppState, tr: &Tr, case: &CaseView) -> Vec<CheckItem> {
    // No category yet: every document a category asks, so that one save does it all.
    let required: Vec<String> = match chosen_category(case).and_then(|c| state.policy.category(&c))
    {
        Some(category) => category.documents.clone(),
        None => {
            let mut all: Vec<String> = Vec::new();
            for d in state.policy.categories.iter().flat_map(|c| &c.documents) {
                if !all.contains(d) {
                    all.push(d.clone());
                }
            }
            all
        }
    };
    let confirmed = confirmed(case);
    // What each document on the case looks like, from its name and its text read so far
    // (every document's text in one read).
    let shas: Vec<String> = case.documents.iter().map(|d| d.sha256.clone()).collect();
    let texts = state.store.known_texts(&shas).await.unwrap_or_default();
    let mut recognised: Vec<(&'static str, String)> = Vec::new();
    for d in &case.documents {
        let text = texts.get(&d.sha256).map_or("", String::as_str);
        for id in sportello_domain::recognition::recognise(&d.filename, text) {
            recognised.push((id, d.filename.clone()));
        }
    }
    let mut ids = required;
    for id in &confirmed {
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    ids.into_iter()
        .map(|id| {
            let satisfied_by = recognised
                .iter()
                .find(|(r, _)| *r == id)
                .map(|(_, f)| f.clone());
            CheckItem {
                name: tr.name("document", &id),
                checked: confirmed.contains(&id) || satisfied_by.is_some(),
                satisfied_by,
                id,
            }
        })
        .collect()
}

/// The active colleagues a case can be assigned to (a role that acts on cases), as
/// (login, "Name (login)"), by name.
pub(super) async fn colleagues(state: &AppState) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = state
        .store
        .list_users()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|u| u.active && u.role.can(Permission::ActOnCase))
        .map(|u| {
            let label = if u.name.trim().is_empty() {
                u.login.clone()
            } else {
                format!("{} ({})", u.name, u.login)
            };
            (u.login, label)
        })
        .collect();
    found.sort_by_key(|c| c.1.to_lowercase());
    found
}

/// What approving a ZTL or CUDE case still lacks, in words: the checks `issue` makes on
/// the request's fields (category, plates within `max_vehicles`, required documents).
/// Empty for other case types and when nothing is missing.
pub(super) async fn approval_gaps(state: &AppState, tr: &Tr, case: &CaseView) -> Vec<String> {
    if !matches!(case.summary.case_type.as_str(), "ztl_permit" | "cude") {
        return Vec::new();
    }
    // A change of plates keeps the permit's category and needs no documents.
    let amended = match case.fields.get("amends").and_then(|v| v.as_str()) {
        Some(number) => state.store.permit(number).await.ok().map(|p| p.category),
        None => None,
    };
    match sportello_app::permits::checked_request(&state.policy, case, amended.as_deref()) {
        Ok(_) => Vec::new(),
        Err(gaps) => gaps.iter().map(|g| tr.refusal(g)).collect(),
    }
}

/// Whether the workflow would accept a rejection now (its own rule, on the case's facts as
/// the store reads them): in review only after the art. 10-bis notice, and during the notice
/// only once its ten days are over.
pub(super) fn reject_allowed(facts: &sportello_domain::workflow::CaseFacts) -> bool {
    let reject = sportello_domain::workflow::Action::Reject {
        reasons: vec!["-".to_owned()],
    };
    sportello_domain::workflow::plan(facts, &reject).is_ok()
}

/// The token of the undo of a message's move, bound to the session that moved it: a hash
/// keyed by the session's CSRF token (a secret only that session's pages carry, gone when
/// it ends) over the message and the two cases. Another session, or the same one after it
/// ended, cannot make or replay it.
pub(super) fn undo_token(csrf: &str, message: i64, from: &str, to: &str) -> String {
    let mut hash = Sha256::new();
    for part in [
        csrf.as_bytes(),
        b"undo-move",
        message.to_string().as_bytes(),
        from.as_bytes(),
        to.as_bytes(),
    ] {
        // Each part with its length, so that no two different tuples hash alike.
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn reject_is_allowed_after_the_notice_and_its_ten_days() {
        use sportello_domain::case::{Status, WorkflowKind};
        let facts = |status, notified, period_open| sportello_domain::workflow::CaseFacts {
            status,
            workflow: WorkflowKind::Permit,
            integration_requested: false,
            rejection_notified: notified,
            notice_period_open: period_open,
            has_note: false,
        };
        assert!(!reject_allowed(&facts(Status::InReview, false, false)));
        assert!(reject_allowed(&facts(Status::InReview, true, false)));
        // The notice's ten days: not before they are over.
        assert!(!reject_allowed(&facts(Status::RejectionNotice, true, true)));
        assert!(reject_allowed(&facts(Status::RejectionNotice, true, false)));
    }

    #[test]
    fn the_undo_token_is_bound_to_the_session_and_the_move() {
        let t = undo_token("csrf-a", 7, "ZTL-2026-000001", "ZTL-2026-000002");
        assert_eq!(
            t,
            undo_token("csrf-a", 7, "ZTL-2026-000001", "ZTL-2026-000002")
        );
        assert_ne!(
            t,
            undo_token("csrf-b", 7, "ZTL-2026-000001", "ZTL-2026-000002")
        );
        assert_ne!(
            t,
            undo_token("csrf-a", 8, "ZTL-2026-000001", "ZTL-2026-000002")
        );
        assert_ne!(
            t,
            undo_token("csrf-a", 7, "ZTL-2026-000002", "ZTL-2026-000001")
        );
    }
}
