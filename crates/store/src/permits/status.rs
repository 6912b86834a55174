//! A permit's state: reading it, suspending or revoking it, the nightly expiry, and the
//! public lookups by token or quoted number.

use sportello_domain::refusal::Refusal;

use super::ledger::{permit_aliases, record_permit_event, resolve_permit_number};
use super::model::{PermitEvent, PermitPlate, PermitView, PublicPermit, QuotedPermit};
use crate::{Result, Store, get_i64, get_str, to_ms};

impl Store {
    /// A permit with all its rows, by its number or a former number (an alias).
    pub async fn permit(&self, number: &str) -> Result<PermitView> {
        let number = &resolve_permit_number(&self.read, number).await?;
        let rows = sqlx::query(
            "SELECT category, holder_fiscal_code, holder_name, plate, country, valid_from, valid_to, status, source, \
             recorded_at, recorded_by, policy_version, verify_token FROM permit_rows WHERE permit = $1 ORDER BY recorded_at, id",
        )
        .bind(number)
        .fetch_all(&self.read)
        .await?;
        let first = rows
            .first()
            .ok_or_else(|| crate::StoreError::NotFound(format!("permit {number}")))?;
        let mut view = PermitView {
            number: number.to_owned(),
            category: get_str(first, "category")?,
            holder_fiscal_code: get_str(first, "holder_fiscal_code")?,
            holder_name: get_str(first, "holder_name")?,
            state: String::new(),
            plates: Vec::with_capacity(rows.len()),
            verify_token: None,
            aliases: permit_aliases(&self.read, number).await?,
            history: Vec::new(),
        };
        for r in &rows {
            view.plates.push(PermitPlate {
                plate: get_str(r, "plate")?,
                country: get_str(r, "country")?,
                valid_from: get_i64(r, "valid_from")?,
                valid_to: get_i64(r, "valid_to")?,
                status: get_str(r, "status")?,
                source: get_str(r, "source")?,
                recorded_at: get_i64(r, "recorded_at")?,
                recorded_by: get_str(r, "recorded_by")?,
                policy_version: crate::get_opt_i64(r, "policy_version")?,
            });
            if view.verify_token.is_none() {
                view.verify_token = crate::get_opt_str(r, "verify_token")?;
            }
        }
        view.state = permit_state(&view.plates, to_ms(self.clock.now())).to_owned();
        let events = sqlx::query(
            "SELECT at, actor, kind, detail FROM permit_events WHERE permit = $1 ORDER BY at, id",
        )
        .bind(number)
        .fetch_all(&self.read)
        .await?;
        for e in &events {
            view.history.push(PermitEvent {
                at: crate::time::rome_rfc3339(crate::from_ms(get_i64(e, "at")?)?),
                actor: get_str(e, "actor")?,
                kind: get_str(e, "kind")?,
                detail: serde_json::from_str(&get_str(e, "detail")?).unwrap_or_default(),
            });
        }
        Ok(view)
    }

    /// Suspends, revokes or reinstates a permit (every plate row), with who and why in
    /// its history; the whitelist follows at once.
    pub async fn set_permit_status(
        &self,
        number: &str,
        status: &str,
        reason: &str,
        actor: &str,
    ) -> Result<PermitView> {
        let kind = match status {
            "suspended" => "suspended",
            "revoked" => "revoked",
            "active" => "reinstated",
            other => {
                return Err(crate::StoreError::invalid(
                    "status",
                    format!("{other:?} is not active, suspended or revoked"),
                ));
            }
        };
        if reason.trim().is_empty() {
            return Err(crate::StoreError::invalid("reason", "say why"));
        }
        let current = self.permit(number).await?;
        let number = current.number.as_str();
        if current.plates.iter().all(|p| p.status == "revoked") && status != "revoked" {
            return Err(crate::StoreError::Refused(
                Refusal::new("refusal.revoked_not_reinstated").with("number", number),
            ));
        }
        let mut tx = self.write.begin().await?;
        sqlx::query("UPDATE permit_rows SET status = $1 WHERE permit = $2")
            .bind(status)
            .bind(number)
            .execute(&mut *tx)
            .await?;
        record_permit_event(
            &mut tx,
            number,
            to_ms(self.clock.now()),
            actor,
            kind,
            &serde_json::json!({ "reason": reason.trim() }),
        )
        .await?;
        tx.commit().await?;
        self.permit(number).await
    }

    /// Records the text of the policy in force (once per distinct text) and returns its
    /// version number, so that every decision can say which rules it was taken under.
    pub async fn record_policy_version(&self, text: &str, actor: &str) -> Result<i64> {
        use sha2::Digest;
        let sha = hex::encode(sha2::Sha256::digest(text.as_bytes()));
        sqlx::query(
            "INSERT INTO policy_versions (sha256, text, first_loaded_at, loaded_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(&sha)
        .bind(text)
        .bind(to_ms(self.clock.now()))
        .bind(actor)
        .execute(&self.write)
        .await?;
        let row = sqlx::query("SELECT id FROM policy_versions WHERE sha256 = $1")
            .bind(&sha)
            .fetch_one(&self.read)
            .await?;
        get_i64(&row, "id")
    }

    /// Journals the expiry of every permit whose validity has ended (its last plate row,
    /// temporary plates aside) and that was not yet marked: one `expired` event each, by
    /// `system`, dated when the validity ended. Idempotent, also when two instances run it
    /// at once (a unique index admits one `expired` event per permit); returns how many
    /// were marked.
    pub async fn mark_expired_permits(&self) -> Result<u64> {
        let now = to_ms(self.clock.now());
        let done = sqlx::query(
            "INSERT INTO permit_events (permit, at, actor, kind, detail) \
             SELECT r.permit, MAX(r.valid_to), 'system', 'expired', '{\"reason\":\"validity ended\"}' \
             FROM permit_rows r WHERE r.source <> 'temporary' GROUP BY r.permit \
             HAVING MAX(r.valid_to) <= $1 \
             AND NOT EXISTS (SELECT 1 FROM permit_events e WHERE e.permit = r.permit AND e.kind = 'expired') \
             ON CONFLICT DO NOTHING",
        )
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }

    /// The permit a case issued, if it did.
    pub async fn permit_issued_for_case(&self, case_reference: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT permit FROM permit_rows WHERE case_reference = $1 AND source = 'issued' LIMIT 1",
        )
        .bind(case_reference)
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| get_str(&r, "permit")).transpose()
    }

    /// The permits issued on a citizen's cases, newest case first: one query for the
    /// citizen's record rather than one per case.
    pub async fn permits_issued_to_citizen(&self, citizen_id: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT p.permit, c.received_at, c.id FROM permit_rows p \
             JOIN cases c ON c.reference = p.case_reference \
             WHERE c.citizen_id = $1 AND p.source = 'issued' \
             ORDER BY c.received_at DESC, c.id DESC",
        )
        .bind(citizen_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| get_str(r, "permit")).collect()
    }

    /// What the public verification page may show of a permit: its number (and former
    /// numbers, the one printed on an older copy), whether it is valid now, and its plates;
    /// `None` for an unknown token.
    pub async fn permit_by_token(&self, token: &str) -> Result<Option<PublicPermit>> {
        let now = to_ms(self.clock.now());
        let rows = sqlx::query(
            "SELECT permit, plate, status, valid_from, valid_to FROM permit_rows WHERE verify_token = $1 ORDER BY id",
        )
        .bind(token)
        .fetch_all(&self.read)
        .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let number = get_str(first, "permit")?;
        let mut valid = false;
        let mut plates = Vec::new();
        for r in &rows {
            let active = get_str(r, "status")? == "active"
                && get_i64(r, "valid_from")? <= now
                && now < get_i64(r, "valid_to")?;
            if active {
                valid = true;
                plates.push(get_str(r, "plate")?);
            }
        }
        Ok(Some(PublicPermit {
            aliases: permit_aliases(&self.read, &number).await?,
            number,
            valid,
            plates,
        }))
    }
}

/// The permits `candidates` name (by number or former number), in the candidates' order,
/// each once. Intake asks this of every token that could be a permit number.
pub(crate) async fn quoted_permits(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    candidates: &[String],
) -> Result<Vec<QuotedPermit>> {
    let mut named: Vec<(String, String)> = Vec::new();
    for chunk in candidates.chunks(50) {
        let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let list = params.join(", ");
        let sql = format!(
            "SELECT DISTINCT permit AS quoted, permit FROM permit_rows WHERE permit IN ({list}) \
             UNION SELECT alias AS quoted, permit FROM permit_aliases WHERE alias IN ({list})"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for c in chunk {
            query = query.bind(c.clone());
        }
        for row in query.fetch_all(&mut **tx).await? {
            named.push((get_str(&row, "quoted")?, get_str(&row, "permit")?));
        }
    }
    let mut found: Vec<QuotedPermit> = Vec::new();
    for candidate in candidates {
        // A real number wins over a former number of another permit.
        let Some((quoted, permit)) = named
            .iter()
            .filter(|(quoted, _)| quoted == candidate)
            .min_by_key(|(quoted, permit)| quoted != permit)
        else {
            continue;
        };
        if found.iter().any(|f| &f.permit == permit) {
            continue;
        }
        let row = sqlx::query(
            "SELECT holder_fiscal_code, \
             (SELECT case_reference FROM permit_rows i WHERE i.permit = $1 AND i.source = 'issued' ORDER BY i.id LIMIT 1) AS case_reference \
             FROM permit_rows WHERE permit = $1 ORDER BY id LIMIT 1",
        )
        .bind(permit)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else { continue };
        found.push(QuotedPermit {
            quoted: quoted.clone(),
            permit: permit.clone(),
            holder_fiscal_code: get_str(&row, "holder_fiscal_code")?,
            case_reference: crate::get_opt_str(&row, "case_reference")?,
        });
    }
    Ok(found)
}

/// Where a permit stands at `now` (Unix ms), from its plate rows.
pub(super) fn permit_state(rows: &[PermitPlate], now: i64) -> &'static str {
    let current = |r: &&PermitPlate| r.valid_from <= now && now < r.valid_to;
    if rows.iter().all(|r| r.status == "revoked") {
        "revoked"
    } else if rows.iter().filter(current).any(|r| r.status == "active") {
        "active"
    } else if rows.iter().filter(current).any(|r| r.status == "suspended") {
        "suspended"
    } else if rows
        .iter()
        .any(|r| r.status == "active" && r.valid_from > now)
    {
        // Not started, or between two periods (a temporary plate to come).
        "not_yet_valid"
    } else {
        "expired"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permits::tests::register_row;
    use crate::testing::{fixture_now, with_test_store};

    #[tokio::test]
    async fn expiry_is_journaled_once_when_the_validity_ends() {
        with_test_store(|store, clock| async move {
            let day = 86_400_000;
            let now = fixture_now().timestamp_millis();
            let rows = [
                register_row("RES1", "AA111AA", now + day),
                register_row("RES2", "BB222BB", now - day),
            ];
            store
                .import_permit_rows(&rows, None, "import")
                .await
                .unwrap();
            assert_eq!(store.mark_expired_permits().await.unwrap(), 1);
            assert_eq!(store.mark_expired_permits().await.unwrap(), 0, "idempotent");
            let expired = store.permit("RES2").await.unwrap();
            assert_eq!(expired.state, "expired");
            assert_eq!(expired.history.len(), 1);
            assert_eq!(
                (
                    expired.history[0].kind.as_str(),
                    expired.history[0].actor.as_str()
                ),
                ("expired", "system")
            );
            assert_eq!(store.permit("RES1").await.unwrap().state, "active");
            clock.advance(chrono::Duration::days(2));
            assert_eq!(store.mark_expired_permits().await.unwrap(), 1);
            let later = store.permit("RES1").await.unwrap();
            assert_eq!(later.state, "expired");
            // Dated when the validity ended, not when the tick noticed.
            assert_eq!(
                later.history[0].at,
                crate::time::rome_rfc3339(crate::from_ms(now + day).unwrap())
            );
        })
        .await;
    }

    fn row(status: &str, valid_from: i64, valid_to: i64) -> PermitPlate {
        PermitPlate {
            plate: "AB123CD".into(),
            country: "IT".into(),
            valid_from,
            valid_to,
            status: status.into(),
            source: "issued".into(),
            recorded_at: 0,
            recorded_by: "op".into(),
            policy_version: None,
        }
    }

    #[test]
    fn a_permit_state_follows_its_rows_at_the_instant_asked() {
        let rows = [row("active", 100, 200)];
        assert_eq!(permit_state(&rows, 50), "not_yet_valid");
        assert_eq!(permit_state(&rows, 100), "active");
        assert_eq!(permit_state(&rows, 200), "expired", "the end is exclusive");
        assert_eq!(
            permit_state(&[row("suspended", 100, 200)], 150),
            "suspended"
        );
        assert_eq!(permit_state(&[row("suspended", 100, 200)], 250), "expired");
        assert_eq!(permit_state(&[row("revoked", 100, 200)], 150), "revoked");
        // A temporary plate still to come on an otherwise ended permit.
        let rows = [row("active", 100, 200), row("active", 300, 310)];
        assert_eq!(permit_state(&rows, 250), "not_yet_valid");
        assert_eq!(permit_state(&rows, 305), "active");
    }
}
