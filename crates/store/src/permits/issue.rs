//! Issuing permits: a number that never repeats (old numbers stay aliases), the plates, the
//! case's journal and the permit's own journal in one transaction.

use chrono::Datelike;

use super::ledger::{record_permit_event, resolve_permit_number};
use super::model::{IssuedPermit, NewPermit};
use super::plates::find_plate_clash;
use crate::{Result, Store, get_i64, get_str, to_ms};

impl Store {
    /// Issues a permit from a case, in one transaction: refuses a plate that already has
    /// an active permit of the same category overlapping the validity, numbers the permit
    /// without gaps per prefix and year, writes its rows (the whitelist) and journals it.
    pub async fn issue_permit(
        &self,
        case_reference: &str,
        new: &NewPermit,
        actor: &str,
    ) -> Result<IssuedPermit> {
        let now = self.clock.now();
        let mut tx = self.write.begin().await?;
        // Idempotent per case: issuing again (a retry after a crash) returns the permit
        // this case already has.
        if let Some(row) = sqlx::query(
            "SELECT permit, verify_token FROM permit_rows WHERE case_reference = $1 AND source = 'issued' LIMIT 1",
        )
        .bind(case_reference)
        .fetch_optional(&mut *tx)
        .await?
        {
            return Ok(IssuedPermit {
                number: get_str(&row, "permit")?,
                verify_token: crate::get_opt_str(&row, "verify_token")?.unwrap_or_default(),
            });
        }
        let renews = match &new.renews {
            Some(old) => Some(resolve_permit_number(&mut *tx, old).await?),
            None => None,
        };
        if let Some(refusal) = find_plate_clash(
            &mut tx,
            &new.plates,
            &new.category,
            (new.valid_from, new.valid_to),
            renews.as_deref(),
        )
        .await?
        {
            return Err(crate::StoreError::Refused(refusal));
        }
        let year = sportello_domain::calendar::rome_date(now).year();
        // Per prefix and year; a number an imported permit (any string) or a former
        // number already holds is skipped rather than shared.
        let number = loop {
            let row = sqlx::query(
                "INSERT INTO sequences (name, value) VALUES ($1, 1) \
                 ON CONFLICT (name) DO UPDATE SET value = sequences.value + 1 RETURNING value",
            )
            .bind(format!("permit:{}:{year}", new.prefix))
            .fetch_one(&mut *tx)
            .await?;
            let seq = u64::try_from(get_i64(&row, "value")?)
                .map_err(|_| crate::StoreError::Corrupt("permit sequence".into()))?;
            let number = sportello_domain::ztl::numbers::permit_number(&new.prefix, year, seq);
            let taken = sqlx::query(
                "SELECT 1 AS taken FROM permit_rows WHERE permit = $1 \
                 UNION ALL SELECT 1 AS taken FROM permit_aliases WHERE alias = $1",
            )
            .bind(&number)
            .fetch_optional(&mut *tx)
            .await?;
            if taken.is_none() {
                break number;
            }
        };
        let verify_token = format!("{:032x}", rand::random::<u128>());
        for plate in &new.plates {
            sqlx::query(
                "INSERT INTO permit_rows (permit, category, holder_fiscal_code, holder_name, plate, country, \
                 valid_from, valid_to, status, source, recorded_at, recorded_by, policy_version, case_reference, verify_token) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', 'issued', $9, $10, $11, $12, $13)",
            )
            .bind(&number)
            .bind(&new.category)
            .bind(&new.holder_fiscal_code)
            .bind(&new.holder_name)
            .bind(&plate.number)
            .bind(&plate.country)
            .bind(new.valid_from)
            .bind(new.valid_to)
            .bind(to_ms(now))
            .bind(actor)
            .bind(new.policy_version)
            .bind(case_reference)
            .bind(&verify_token)
            .execute(&mut *tx)
            .await?;
        }
        let case_id = crate::journal::touch_case(&mut tx, case_reference, now).await?;
        let detail = serde_json::json!({
            "permit": number,
            "category": new.category,
            "plates": new.plates.iter().map(|p| format!("{} {}", p.number, p.country)).collect::<Vec<_>>(),
            "valid_from": crate::time::rome_rfc3339(crate::from_ms(new.valid_from)?),
            "valid_to": crate::time::rome_rfc3339(crate::from_ms(new.valid_to)?),
            "policy_version": new.policy_version,
        });
        let mut detail = detail;
        if let Some(old) = &renews {
            detail["renews"] = old.as_str().into();
            record_permit_event(
                &mut tx,
                old,
                to_ms(now),
                actor,
                "renewed",
                &serde_json::json!({ "by": number, "case": case_reference }),
            )
            .await?;
        }
        crate::journal::insert_event(&mut tx, case_id, now, actor, "permit_issued", &detail)
            .await?;
        let mut permit_detail = detail.clone();
        if let Some(map) = permit_detail.as_object_mut() {
            map.insert("case".into(), case_reference.into());
        }
        record_permit_event(
            &mut tx,
            &number,
            to_ms(now),
            actor,
            "issued",
            &permit_detail,
        )
        .await?;
        tx.commit().await?;
        Ok(IssuedPermit {
            number,
            verify_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permits::tests::{cude_permit, register_row, temporary};
    use crate::testing::{fixture_now, with_test_store};
    use sportello_domain::clock::Clock;

    #[tokio::test]
    async fn issuing_and_changing_plates_are_idempotent_per_case() {
        use sportello_domain::plate::Plate;
        with_test_store(|store, clock| async move {
            let case = store
                .create_case(crate::cases::tests::request("cude"))
                .await
                .unwrap();
            let reference = case.summary.reference.clone();
            let now = fixture_now().timestamp_millis();
            let new = NewPermit {
                category: "cude".into(),
                prefix: "CUD".into(),
                holder_fiscal_code: "RSSMRA80A01H501U".into(),
                holder_name: "Mario Rossi".into(),
                plates: vec![Plate::parse("AA111AA", None).unwrap()],
                valid_from: now,
                valid_to: now + 365 * 86_400_000,
                policy_version: None,
                renews: None,
            };
            let first = store.issue_permit(&reference, &new, "op").await.unwrap();
            let again = store.issue_permit(&reference, &new, "op").await.unwrap();
            assert_eq!(first, again, "a retry finds the permit the case issued");
            assert_eq!(
                store.permit_issued_for_case(&reference).await.unwrap(),
                Some(first.number.clone())
            );
            assert_eq!(store.permit(&first.number).await.unwrap().plates.len(), 1);

            // A later case changes the car: the old plate ends now, the new one runs to
            // the permit's end; a second call for the same case changes nothing more.
            clock.advance(chrono::Duration::days(10));
            let change = store
                .create_case(crate::cases::tests::request("cude"))
                .await
                .unwrap();
            let plates = [Plate::parse("BB222BB", None).unwrap()];
            for _ in 0..2 {
                store
                    .change_permit_plates(
                        &first.number,
                        &plates,
                        &change.summary.reference,
                        "op",
                        None,
                    )
                    .await
                    .unwrap();
            }
            let view = store.permit(&first.number).await.unwrap();
            let changed = clock.now().timestamp_millis();
            let rows: Vec<(&str, i64, i64, &str)> = view
                .plates
                .iter()
                .map(|r| {
                    (
                        r.plate.as_str(),
                        r.valid_from,
                        r.valid_to,
                        r.source.as_str(),
                    )
                })
                .collect();
            assert_eq!(
                rows,
                [
                    ("AA111AA", now, changed, "issued"),
                    ("BB222BB", changed, now + 365 * 86_400_000, "changed"),
                ]
            );
            assert_eq!(
                view.history
                    .iter()
                    .filter(|e| e.kind == "plates_changed")
                    .count(),
                1
            );
            assert_eq!(
                view.verify_token.as_deref(),
                Some(first.verify_token.as_str())
            );
        })
        .await;
    }

    /// A database with permits issued in the old shape (`CUD-2026-000001`), migrated: each
    /// is found by its new number and by the old one, keeps its rows, history and QR
    /// token, and verifies; imported numbers stay as they were.
    #[tokio::test]
    async fn old_permit_numbers_are_renumbered_and_still_find_their_permit() {
        use sportello_domain::clock::FixedClock;
        let dir = tempfile::tempdir().unwrap();
        let url = crate::testing::test_database_url(dir.path()).await;
        crate::install_drivers();
        let (migrator, pool_url) = if url.starts_with("sqlite") {
            (&crate::SQLITE_MIGRATIONS, format!("{url}?mode=rwc"))
        } else {
            (&crate::POSTGRES_MIGRATIONS, url.clone())
        };
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&pool_url)
            .await
            .unwrap();
        migrator.run_to(18, &pool).await.unwrap();
        let now = fixture_now().timestamp_millis();
        let day = 86_400_000;
        // permit, plate, source, case, token, valid_from
        let rows = [
            (
                "CUD-2026-000001",
                "AA111AA",
                "issued",
                Some("CUD-2026-000002"),
                Some("ab".repeat(16)),
                now - day,
            ),
            (
                "CUD-2026-000001",
                "BB222BB",
                "temporary",
                None,
                None,
                now - 3 * 3_600_000,
            ),
            (
                "RES-2026-000007",
                "CC333CC",
                "issued",
                Some("ZTL-2026-000004"),
                Some("cd".repeat(16)),
                now - day,
            ),
            (
                "RES-2026-000007",
                "DD444DD",
                "changed",
                Some("ZTL-2026-000005"),
                Some("cd".repeat(16)),
                now,
            ),
            // Imported numbers, whatever their shape, are never renamed…
            (
                "CUD-2026-000009",
                "EE555EE",
                "import",
                None,
                None,
                now - day,
            ),
            // …and an issued number whose new form an imported permit already has keeps
            // its old number.
            (
                "RES-2026-000003",
                "FF666FF",
                "issued",
                Some("ZTL-2026-000006"),
                Some("ef".repeat(16)),
                now - day,
            ),
            ("RES202600003", "GG777GG", "import", None, None, now - day),
        ];
        for (permit, plate, source, case, token, valid_from) in rows {
            let category = if permit.starts_with("CUD") {
                "cude"
            } else {
                "residenti"
            };
            sqlx::query(
                "INSERT INTO permit_rows (permit, category, holder_fiscal_code, holder_name, plate, country, valid_from, \
                 valid_to, status, source, recorded_at, recorded_by, case_reference, verify_token) \
                 VALUES ($1, $2, 'RSSMRA80A01H501U', 'Mario Rossi', $3, 'IT', $4, $5, 'active', $6, $7, 'op', $8, $9)",
            )
            .bind(permit)
            .bind(category)
            .bind(plate)
            .bind(valid_from)
            .bind(if source == "temporary" {
                valid_from + 7_200_000
            } else {
                now + 365 * day
            })
            .bind(source)
            .bind(valid_from)
            .bind(case)
            .bind(token)
            .execute(&pool)
            .await
            .unwrap();
        }
        sqlx::query(
            "INSERT INTO permit_events (permit, at, actor, kind, detail) VALUES ('CUD-2026-000001', $1, 'op', 'issued', '{\"permit\":\"CUD-2026-000001\"}')",
        )
        .bind(now - day)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO sequences (name, value) VALUES ('permit:CUD:2026', 1)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;

        let clock = FixedClock::new(fixture_now());
        let store = Store::connect(
            &url,
            std::sync::Arc::new(clock),
            crate::StoreSettings::default(),
        )
        .await
        .unwrap();
        let cude = store.permit("CUD202600001").await.unwrap();
        assert_eq!(cude.aliases, ["CUD-2026-000001"]);
        assert_eq!(cude.plates.len(), 2);
        assert_eq!(cude.history.len(), 1, "the history follows the number");
        assert_eq!(cude.verify_token.as_deref(), Some("ab".repeat(16).as_str()));
        let by_alias = store.permit("CUD-2026-000001").await.unwrap();
        assert_eq!(by_alias, cude);
        let res = store.permit("RES-2026-000007").await.unwrap();
        assert_eq!((res.number.as_str(), res.plates.len()), ("RES202600007", 2));
        for unchanged in ["CUD-2026-000009", "RES-2026-000003", "RES202600003"] {
            let view = store.permit(unchanged).await.unwrap();
            assert_eq!(view.number, unchanged);
            assert!(view.aliases.is_empty());
        }
        // It verifies: the public page behind the old QR code, the register the police
        // read, and the changes staff make through the old number.
        let public = store
            .permit_by_token(&"ab".repeat(16))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                public.number.as_str(),
                public.valid,
                public.aliases.as_slice()
            ),
            (
                "CUD202600001",
                true,
                ["CUD-2026-000001".to_owned()].as_slice()
            )
        );
        let rows = store.permit_rows_of("AA111AA", "IT").await.unwrap();
        assert_eq!(rows[0].permit, "CUD202600001");
        let whitelist = store.whitelist_at(now).await.unwrap();
        assert!(
            whitelist
                .iter()
                .all(|r| !r.permit.starts_with("CUD-2026-000001"))
        );
        let policy = sportello_domain::ztl::policy::Policy::parse(
            sportello_domain::ztl::policy::EXAMPLE_POLICY,
        )
        .unwrap();
        let added = store
            .add_temporary_plate(
                &policy,
                "CUD-2026-000001",
                &temporary("HH888HH", 0, 1),
                None,
                "op",
            )
            .await
            .unwrap();
        assert_eq!(
            (added.number.as_str(), added.plates.len()),
            ("CUD202600001", 3)
        );
        let suspended = store
            .set_permit_status("CUD-2026-000001", "suspended", "verifica", "op")
            .await
            .unwrap();
        assert_eq!(suspended.state, "suspended");
        assert_eq!(store.permit("CUD202600001").await.unwrap().history.len(), 3);
        // The sequence goes on in the new shape.
        let next = cude_permit(&store).await;
        assert_eq!(next, "CUD202600002");
        store.close().await;
    }

    #[tokio::test]
    async fn a_new_number_already_held_by_an_imported_permit_is_skipped() {
        with_test_store(|store, _clock| async move {
            store
                .import_permit_rows(
                    &[register_row("CUD202600001", "ZZ999ZZ", 10)],
                    None,
                    "import",
                )
                .await
                .unwrap();
            assert_eq!(cude_permit(&store).await, "CUD202600002");
        })
        .await;
    }
}
