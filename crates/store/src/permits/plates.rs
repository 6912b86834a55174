//! A permit's plates: temporary plates and plate changes, each checked against the
//! category's limit of plates at once (the one rule, in `find_plate_clash`).

use sportello_domain::refusal::Refusal;

use super::ledger::{lock_permit, record_permit_event, resolve_permit_number};
use super::model::{PermitView, TemporaryPlate};
use crate::{Result, Store, get_i64, get_str, to_ms};

impl Store {
    /// Adds a temporary plate to a person-bound (CUDE) permit: the vehicle a disabled
    /// citizen travelled in, communicated afterwards. The category's rules are enforced:
    /// person-bound only, reaching back at most `temporary_plate_hours`, forward at most
    /// 24 hours, on a permit active and valid over that time, and never more plates at
    /// one instant than the category's `max_vehicles` (permanent and temporary together).
    /// The rules are checked under the permit's lock, in the transaction that adds the
    /// row, so two requests at once cannot both pass.
    pub async fn add_temporary_plate(
        &self,
        policy: &sportello_domain::ztl::policy::Policy,
        number: &str,
        request: &TemporaryPlate,
        policy_version: Option<i64>,
        actor: &str,
    ) -> Result<PermitView> {
        use sportello_domain::ztl::plate_limit::{AuthorisedPlate, check_plate_limit};
        let TemporaryPlate {
            plate,
            from_ms,
            to_ms: to_ms_,
        } = request;
        let (from_ms, to_ms_) = (*from_ms, *to_ms_);
        let now = to_ms(self.clock.now());
        let number = resolve_permit_number(&self.read, number).await?;
        let mut tx = self.write.begin().await?;
        lock_permit(&mut tx, self.backend, &number).await?;
        let rows = sqlx::query(
            "SELECT category, holder_fiscal_code, holder_name, plate, country, valid_from, valid_to, status, source \
             FROM permit_rows WHERE permit = $1 ORDER BY id",
        )
        .bind(&number)
        .fetch_all(&mut *tx)
        .await?;
        let first = rows
            .first()
            .ok_or_else(|| crate::StoreError::NotFound(format!("permit {number}")))?;
        let (category_id, holder_fiscal_code, holder_name) = (
            get_str(first, "category")?,
            get_str(first, "holder_fiscal_code")?,
            get_str(first, "holder_name")?,
        );
        let category = policy.category(&category_id).ok_or_else(|| {
            crate::StoreError::Refused(
                Refusal::new("refusal.category_unknown").with("category", &category_id),
            )
        })?;
        if !category.person_bound {
            return Err(crate::StoreError::Refused(
                Refusal::new("refusal.not_person_bound")
                    .with("number", &number)
                    .with("category", &category.name),
            ));
        }
        let back = i64::from(category.temporary_plate_hours) * 3_600_000;
        if from_ms < now - back {
            return Err(crate::StoreError::RefusedField {
                field: "from".into(),
                refusal: Refusal::new("refusal.temporary_too_early")
                    .with("hours", category.temporary_plate_hours),
            });
        }
        if to_ms_ > now + 24 * 3_600_000 {
            return Err(crate::StoreError::RefusedField {
                field: "to".into(),
                refusal: Refusal::new("refusal.temporary_too_late"),
            });
        }
        if to_ms_ <= from_ms {
            return Err(crate::StoreError::RefusedField {
                field: "to".into(),
                refusal: Refusal::new("refusal.temporary_backwards"),
            });
        }
        let mut authorised = Vec::with_capacity(rows.len());
        let mut covered = false;
        for r in &rows {
            if get_str(r, "status")? != "active" {
                continue;
            }
            let (valid_from, valid_to) = (get_i64(r, "valid_from")?, get_i64(r, "valid_to")?);
            covered |=
                get_str(r, "source")? != "temporary" && valid_from <= from_ms && to_ms_ <= valid_to;
            authorised.push(AuthorisedPlate {
                plate: get_str(r, "plate")?,
                country: get_str(r, "country")?,
                valid_from,
                valid_to,
            });
        }
        if !covered {
            return Err(crate::StoreError::Refused(
                Refusal::new("refusal.not_valid_then").with("number", &number),
            ));
        }
        let new = AuthorisedPlate {
            plate: plate.number.clone(),
            country: plate.country.clone(),
            valid_from: from_ms,
            valid_to: to_ms_,
        };
        if let Err(over) = check_plate_limit(&authorised, &new, category.max_vehicles) {
            let overlapping: Vec<String> = over
                .overlapping
                .iter()
                .map(|(plate, country)| plate_label(plate, country))
                .collect();
            return Err(crate::StoreError::Refused(
                Refusal::new("refusal.too_many_plates_at_once")
                    .with("plate", plate_label(&plate.number, &plate.country))
                    .with("number", &number)
                    .with("count", over.count)
                    .with("max", over.max)
                    .with("category", &category.name)
                    .with("at", crate::time::rome_rfc3339(crate::from_ms(over.at)?))
                    .with("plates", overlapping.join(", ")),
            ));
        }
        sqlx::query(
            "INSERT INTO permit_rows (permit, category, holder_fiscal_code, holder_name, plate, country, \
             valid_from, valid_to, status, source, recorded_at, recorded_by, policy_version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', 'temporary', $9, $10, $11) \
             ON CONFLICT (permit, plate, valid_from) DO NOTHING",
        )
        .bind(&number)
        .bind(&category_id)
        .bind(&holder_fiscal_code)
        .bind(&holder_name)
        .bind(&plate.number)
        .bind(&plate.country)
        .bind(from_ms)
        .bind(to_ms_)
        .bind(now)
        .bind(actor)
        .bind(policy_version)
        .execute(&mut *tx)
        .await?;
        let detail = serde_json::json!({
            "plate": plate.number, "country": plate.country,
            "from": crate::time::rome_rfc3339(crate::from_ms(from_ms)?),
            "to": crate::time::rome_rfc3339(crate::from_ms(to_ms_)?),
        });
        record_permit_event(&mut tx, &number, now, actor, "temporary_plate", &detail).await?;
        tx.commit().await?;
        self.permit(&number).await
    }

    /// Whether a plate of a permit still to be issued already has an active permit of the
    /// same category over `valid` (the refusal saying which), `renews` aside: the same
    /// rule [`Store::issue_permit`] enforces, asked before the case changes state.
    pub async fn plate_clash(
        &self,
        plates: &[sportello_domain::plate::Plate],
        category: &str,
        valid: (i64, i64),
        renews: Option<&str>,
    ) -> Result<Option<Refusal>> {
        let mut conn = self.read.acquire().await?;
        let renews = match renews {
            Some(old) => Some(resolve_permit_number(&mut *conn, old).await?),
            None => None,
        };
        find_plate_clash(&mut conn, plates, category, valid, renews.as_deref()).await
    }

    /// Changes the plates of a permit as a case decided (a CUDE holder's new car, a
    /// resident's sold one): rows of plates no longer listed end now, new plates get rows
    /// from now to the permit's end; journaled on the permit and the case. Idempotent per
    /// case: a second call for the same case changes nothing.
    pub async fn change_permit_plates(
        &self,
        number: &str,
        plates: &[sportello_domain::plate::Plate],
        case_reference: &str,
        actor: &str,
        policy_version: Option<i64>,
    ) -> Result<()> {
        let now = to_ms(self.clock.now());
        let resolved = resolve_permit_number(&self.read, number).await?;
        let number = resolved.as_str();
        let mut tx = self.write.begin().await?;
        let done = sqlx::query(
            "SELECT 1 AS done FROM case_events e JOIN cases c ON c.id = e.case_id \
             WHERE c.reference = $1 AND e.kind = 'permit_plates_changed' LIMIT 1",
        )
        .bind(case_reference)
        .fetch_optional(&mut *tx)
        .await?;
        if done.is_some() {
            return Ok(());
        }
        let rows = sqlx::query(
            "SELECT id, category, holder_fiscal_code, holder_name, plate, country, valid_from, valid_to, status, verify_token \
             FROM permit_rows WHERE permit = $1 AND source <> 'temporary' AND valid_to > $2 ORDER BY id",
        )
        .bind(number)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let first = rows.first().ok_or_else(|| {
            crate::StoreError::Refused(
                Refusal::new("refusal.no_current_plates").with("number", number),
            )
        })?;
        let end = rows
            .iter()
            .map(|r| get_i64(r, "valid_to"))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .max()
            .unwrap_or(now);
        let keeps = |plate: &str, country: &str| {
            plates
                .iter()
                .any(|p| p.number == plate && p.country == country)
        };
        let mut removed = Vec::new();
        for r in &rows {
            let (plate, country) = (get_str(r, "plate")?, get_str(r, "country")?);
            if !keeps(&plate, &country) {
                sqlx::query("UPDATE permit_rows SET valid_to = $1 WHERE id = $2")
                    .bind(now.max(get_i64(r, "valid_from")?))
                    .bind(get_i64(r, "id")?)
                    .execute(&mut *tx)
                    .await?;
                removed.push(format!("{plate} {country}"));
            }
        }
        let mut added = Vec::new();
        for p in plates {
            let present = rows.iter().any(|r| {
                get_str(r, "plate").is_ok_and(|x| x == p.number)
                    && get_str(r, "country").is_ok_and(|x| x == p.country)
            });
            if present {
                continue;
            }
            sqlx::query(
                "INSERT INTO permit_rows (permit, category, holder_fiscal_code, holder_name, plate, country, \
                 valid_from, valid_to, status, source, recorded_at, recorded_by, policy_version, case_reference, verify_token) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'changed', $10, $11, $12, $13, $14)",
            )
            .bind(number)
            .bind(get_str(first, "category")?)
            .bind(get_str(first, "holder_fiscal_code")?)
            .bind(get_str(first, "holder_name")?)
            .bind(&p.number)
            .bind(&p.country)
            .bind(now)
            .bind(end)
            .bind(get_str(first, "status")?)
            .bind(now)
            .bind(actor)
            .bind(policy_version)
            .bind(case_reference)
            .bind(crate::get_opt_str(first, "verify_token")?)
            .execute(&mut *tx)
            .await?;
            added.push(format!("{} {}", p.number, p.country));
        }
        let detail = serde_json::json!({
            "case": case_reference, "removed": removed, "added": added, "policy_version": policy_version,
        });
        record_permit_event(&mut tx, number, now, actor, "plates_changed", &detail).await?;
        let case_id =
            crate::journal::touch_case(&mut tx, case_reference, crate::from_ms(now)?).await?;
        let mut case_detail = detail;
        case_detail["permit"] = number.into();
        crate::journal::insert_event(
            &mut tx,
            case_id,
            crate::from_ms(now)?,
            actor,
            "permit_plates_changed",
            &case_detail,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A plate as the refusals name it: the plate alone when Italian, else with its country.
pub(super) fn plate_label(plate: &str, country: &str) -> String {
    if country == "IT" {
        plate.to_owned()
    } else {
        format!("{plate} ({country})")
    }
}

/// The rule that one plate has at most one active permit of a category at a time: the
/// first plate of `plates` that already has one overlapping `[valid_from, valid_to)`,
/// refused with that permit's number. `renews` (the permit a renewal continues) is no
/// clash. The one place this rule lives: the plan of a case and the issue both ask here.
pub(super) async fn find_plate_clash(
    db: &mut sqlx::AnyConnection,
    plates: &[sportello_domain::plate::Plate],
    category: &str,
    (valid_from, valid_to): (i64, i64),
    renews: Option<&str>,
) -> Result<Option<Refusal>> {
    for plate in plates {
        let clash = sqlx::query(
            "SELECT permit FROM permit_rows WHERE plate = $1 AND country = $2 AND category = $3 \
             AND status = 'active' AND valid_from < $4 AND valid_to > $5 AND permit <> $6 ORDER BY id LIMIT 1",
        )
        .bind(&plate.number)
        .bind(&plate.country)
        .bind(category)
        .bind(valid_to)
        .bind(valid_from)
        .bind(renews.unwrap_or_default())
        .fetch_optional(&mut *db)
        .await?;
        if let Some(row) = clash {
            return Ok(Some(
                Refusal::new("refusal.plate_has_permit")
                    .with("plate", &plate.number)
                    .with("number", get_str(&row, "permit")?),
            ));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permits::tests::{cude_permit, temporary};
    use crate::testing::{fixture_now, with_test_store};

    /// The CUDE permit authorised five plates at once against a maximum of two:
    /// each temporary plate was checked alone.
    #[tokio::test]
    async fn a_cude_permit_never_authorises_more_plates_at_once_than_its_category_allows() {
        with_test_store(|store, _clock| async move {
            let policy = sportello_domain::ztl::policy::Policy::parse(
                sportello_domain::ztl::policy::EXAMPLE_POLICY,
            )
            .unwrap();
            let number = cude_permit(&store).await;
            let add = |t: TemporaryPlate| {
                let (store, policy, number) = (store.clone(), policy.clone(), number.clone());
                async move {
                    store
                        .add_temporary_plate(&policy, &number, &t, None, "op")
                        .await
                }
            };
            // The permanent plate and one temporary plate: two at once, allowed.
            add(temporary("BB222BB", -10, 2)).await.unwrap();
            // Four more, each overlapping both: every one refused, naming the plates.
            for plate in ["CC333CC", "DD444DD", "EE555EE", "FF666FF"] {
                let refused = add(temporary(plate, -5, 5)).await.unwrap_err();
                let crate::StoreError::Refused(refusal) = refused else {
                    panic!("{refused:?}");
                };
                assert_eq!(refusal.key, "refusal.too_many_plates_at_once");
                let text = refusal.fill("{plate}|{count}|{max}|{plates}|{at}", |_, id| id.into());
                assert_eq!(
                    text,
                    format!(
                        "{plate}|3|2|AA111AA, BB222BB|{}",
                        crate::time::rome_rfc3339(fixture_now() - chrono::Duration::hours(5))
                    )
                );
            }
            // Touching is not overlapping: a plate from when BB222BB ends is allowed, and
            // the permanent plate again adds no vehicle.
            add(temporary("CC333CC", 2, 20)).await.unwrap();
            add(temporary("AA111AA", -1, 1)).await.unwrap();
            let view = store.permit(&number).await.unwrap();
            let authorised: Vec<sportello_domain::ztl::plate_limit::AuthorisedPlate> = view
                .plates
                .iter()
                .map(|p| sportello_domain::ztl::plate_limit::AuthorisedPlate {
                    plate: p.plate.clone(),
                    country: p.country.clone(),
                    valid_from: p.valid_from,
                    valid_to: p.valid_to,
                })
                .collect();
            let peak =
                sportello_domain::ztl::plate_limit::peak_within(&authorised, i64::MIN, i64::MAX)
                    .unwrap();
            assert_eq!(peak.count, 2, "{view:?}");
            assert_eq!(view.plates.len(), 4);
        })
        .await;
    }

    /// Several requests at once for the same permit: the limit holds (the rule runs under
    /// the permit's lock, in the transaction that adds the row).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn temporary_plates_sent_at_once_cannot_all_pass() {
        with_test_store(|store, _clock| async move {
            let policy = sportello_domain::ztl::policy::Policy::parse(
                sportello_domain::ztl::policy::EXAMPLE_POLICY,
            )
            .unwrap();
            let number = cude_permit(&store).await;
            // Open connections first, so the requests below really run at once.
            let warm: Vec<_> = (0..8).map(|_| store.permit(&number)).collect();
            for view in futures::future::join_all(warm).await {
                view.unwrap();
            }
            // Rounds over disjoint hours: in each, six plates for the same hours at once,
            // and only one may join the permanent plate.
            let plates = [
                "BB222BB", "CC333CC", "DD444DD", "EE555EE", "FF666FF", "GG777GG",
            ];
            let rounds = 8;
            for round in 0..rounds {
                let from = -45 + 8 * round;
                let tries = plates.map(|plate| {
                    let (store, policy, number) = (store.clone(), policy.clone(), number.clone());
                    tokio::spawn(async move {
                        let request = temporary(plate, from, from + 3);
                        store
                            .add_temporary_plate(&policy, &number, &request, None, "op")
                            .await
                    })
                });
                let mut passed = 0;
                for t in tries {
                    match t.await.unwrap() {
                        Ok(_) => passed += 1,
                        Err(crate::StoreError::Refused(r)) => {
                            assert_eq!(r.key, "refusal.too_many_plates_at_once");
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                assert_eq!(passed, 1, "round {round}");
            }
            let rows = 1 + rounds as usize;
            assert_eq!(store.permit(&number).await.unwrap().plates.len(), rows);
        })
        .await;
    }
}
