//! The gate files checked: each one's bytes stay in the blob store and a row here says
//! when, by whom, under which policy version and with what outcome, so that a policy
//! draft can be replayed against the transits actually seen (`sportello policy check`).

use crate::{Result, Store, get_i64, get_str, to_ms};

/// One check of a gate file, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitCheck {
    /// SHA-256 of the file (its bytes are in the blob store under it).
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// Who ran it (a login, or `cli`).
    pub actor: String,
    /// The policy version it was judged under.
    pub policy_version: Option<i64>,
    /// Rows read.
    pub transits: u64,
    /// Rows in an active zone.
    pub in_active_zone: u64,
    /// Violations found.
    pub violations: u64,
    /// Rows refused.
    pub rejected: u64,
}

/// A recorded check, as listed for the police.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct TransitCheckView {
    /// When (RFC 3339, Europe/Rome).
    pub checked_at: String,
    /// Who ran it.
    pub actor: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Its size in bytes.
    pub size: i64,
    /// The policy version it was judged under.
    pub policy_version: Option<i64>,
    /// Rows read.
    pub transits: i64,
    /// Rows in an active zone.
    pub in_active_zone: i64,
    /// Violations found.
    pub violations: i64,
    /// Rows refused.
    pub rejected: i64,
}

impl Store {
    /// The latest checks, newest first.
    pub async fn transit_checks(&self, limit: i64) -> Result<Vec<TransitCheckView>> {
        let rows = sqlx::query(
            "SELECT checked_at, actor, sha256, size, policy_version, transits, in_active_zone, violations, rejected \
             FROM transit_checks ORDER BY checked_at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TransitCheckView {
                    checked_at: crate::time::rome_rfc3339(crate::from_ms(get_i64(
                        r,
                        "checked_at",
                    )?)?),
                    actor: get_str(r, "actor")?,
                    sha256: get_str(r, "sha256")?,
                    size: get_i64(r, "size")?,
                    policy_version: crate::get_opt_i64(r, "policy_version")?,
                    transits: get_i64(r, "transits")?,
                    in_active_zone: get_i64(r, "in_active_zone")?,
                    violations: get_i64(r, "violations")?,
                    rejected: get_i64(r, "rejected")?,
                })
            })
            .collect()
    }

    /// Records a check whose file is already in the blob store.
    pub async fn record_transit_check(&self, check: &TransitCheck) -> Result<()> {
        sqlx::query(
            "INSERT INTO transit_checks (sha256, size, checked_at, actor, policy_version, transits, in_active_zone, violations, rejected) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&check.sha256)
        .bind(check.size as i64)
        .bind(to_ms(self.clock.now()))
        .bind(&check.actor)
        .bind(check.policy_version)
        .bind(check.transits as i64)
        .bind(check.in_active_zone as i64)
        .bind(check.violations as i64)
        .bind(check.rejected as i64)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The distinct files checked in the last `days` days, oldest first, with when each
    /// was last checked (Unix ms): the same file checked twice is replayed once.
    pub async fn transit_files_checked_since(&self, days: i64) -> Result<Vec<(String, i64)>> {
        let since = to_ms(self.clock.now() - chrono::Duration::days(days));
        let rows = sqlx::query(
            "SELECT sha256, MAX(checked_at) AS checked_at FROM transit_checks WHERE checked_at >= $1 \
             GROUP BY sha256 ORDER BY MAX(checked_at)",
        )
        .bind(since)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((get_str(r, "sha256")?, get_i64(r, "checked_at")?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::with_test_store;

    fn check(sha: &str) -> TransitCheck {
        TransitCheck {
            sha256: sha.into(),
            size: 10,
            actor: "cli".into(),
            policy_version: None,
            transits: 3,
            in_active_zone: 2,
            violations: 1,
            rejected: 0,
        }
    }

    #[tokio::test]
    async fn files_checked_in_the_window_are_listed_once_each() {
        with_test_store(|store, clock| async move {
            store.record_transit_check(&check("old")).await.unwrap();
            clock.advance(chrono::Duration::days(31));
            store.record_transit_check(&check("a")).await.unwrap();
            clock.advance(chrono::Duration::hours(1));
            store.record_transit_check(&check("b")).await.unwrap();
            clock.advance(chrono::Duration::hours(1));
            store.record_transit_check(&check("a")).await.unwrap();
            let files: Vec<String> = store
                .transit_files_checked_since(30)
                .await
                .unwrap()
                .into_iter()
                .map(|(sha, _)| sha)
                .collect();
            assert_eq!(files, ["b", "a"], "the old one is out of the window");
            let listed = store.transit_checks(10).await.unwrap();
            assert_eq!(listed.len(), 4);
            assert_eq!((listed[0].sha256.as_str(), listed[0].violations), ("a", 1));
        })
        .await;
    }
}
