//! The police's reconciliation of a gate file against the permit register.

use std::sync::Arc;

use bytes::Bytes;
use sportello_domain::ztl::transits::{CheckSummary, PermitIndex, check_transits};

use crate::{App, AppError};

/// Checks a gate file against the register under the policy in force, keeps the file for
/// later policy checks and records the check; the violations as CSV (§6.5).
pub async fn run_check(
    app: &App,
    actor: &str,
    body: Bytes,
) -> Result<(CheckSummary, Vec<u8>), AppError> {
    let rows = app.store.permit_rows().await?;
    let policy = Arc::clone(&app.policy);
    let file = body.clone();
    let result = tokio::task::spawn_blocking(move || {
        let index = PermitIndex::new(&policy, rows);
        let mut out = Vec::new();
        check_transits(&policy, &index, body.as_ref(), &mut out, |_| {}).map(|s| (s, out))
    })
    .await
    .map_err(|e| AppError::Internal(format!("transit check: {e}")))?;
    let (summary, out) = result.map_err(|e| AppError::field("body", e.to_string()))?;
    // The file is kept, so a policy draft can be replayed against it.
    let size = file.len() as u64;
    let sha256 = app.blobs.put(file).await?;
    app.store
        .record_transit_check(&sportello_store::transits::TransitCheck {
            sha256,
            size,
            actor: actor.to_owned(),
            policy_version: app.policy_version,
            transits: summary.transits,
            in_active_zone: summary.in_active_zone,
            violations: summary.violations,
            rejected: summary.rejected_count,
        })
        .await?;
    Ok((summary, out))
}
