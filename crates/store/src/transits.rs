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

impl Store {
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
        })
        .await;
    }
}
