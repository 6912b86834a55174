//! The permit register in the database: bulk import (idempotent by permit number, plate
//! and start of validity), the rows the transit check and the whitelist read.

use chrono::Datelike;
use sportello_domain::refusal::Refusal;
use sportello_domain::ztl::permits::RegisterRow;
use sportello_domain::ztl::transits::PermitRow;

use crate::{Result, Store, get_i64, get_str, to_ms};

/// A row of the whitelist (CONTRACT §6.3) before the policy adds zones and windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhitelistRow {
    /// Plate.
    pub plate: String,
    /// Country.
    pub country: String,
    /// Permit number.
    pub permit: String,
    /// Category id.
    pub category: String,
    /// Valid from (Unix ms).
    pub valid_from: i64,
    /// Valid to (Unix ms).
    pub valid_to: i64,
    /// In a delta export: `added` or `removed`.
    pub change: Option<&'static str>,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    /// Rows added.
    pub added: u64,
    /// Rows already there (same permit, plate and start of validity).
    pub already_present: u64,
}

impl Store {
    /// Adds register rows in batches, in one transaction; rows already present are left
    /// as they are, so importing the same file twice changes nothing.
    pub async fn import_permit_rows(
        &self,
        rows: &[RegisterRow],
        policy_version: Option<i64>,
        actor: &str,
    ) -> Result<ImportCounts> {
        const COLUMNS: usize = 13;
        let now = to_ms(self.clock.now());
        let mut tx = self.write.begin().await?;
        let mut added = 0u64;
        // Small statements: sqlx's SQLite driver looks every `$N` up by name, which costs
        // the square of the parameters of one statement (500 rows took 9 s per 100,000).
        for chunk in rows.chunks(40) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let p: Vec<String> = (1..=COLUMNS)
                        .map(|k| format!("${}", i * COLUMNS + k))
                        .collect();
                    format!("({})", p.join(", "))
                })
                .collect();
            let sql = format!(
                "INSERT INTO permit_rows (permit, category, holder_fiscal_code, holder_name, plate, country, \
                 valid_from, valid_to, status, source, recorded_at, recorded_by, policy_version) VALUES {} \
                 ON CONFLICT (permit, plate, valid_from) DO NOTHING",
                values.join(", ")
            );
            let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                insert = insert
                    .bind(r.row.permit.clone())
                    .bind(r.row.category.clone())
                    .bind(r.holder_fiscal_code.clone())
                    .bind(r.holder_name.clone())
                    .bind(r.row.plate.clone())
                    .bind(r.row.country.clone())
                    .bind(r.row.valid_from)
                    .bind(r.row.valid_to)
                    .bind(r.status.clone())
                    .bind("import")
                    .bind(now)
                    .bind(actor.to_owned())
                    .bind(policy_version);
            }
            added += insert.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(ImportCounts {
            added,
            already_present: rows.len() as u64 - added,
        })
    }

    /// Every row of the register, for the transit check. The rows come packed, thousands
    /// to a database row (the drivers' cost is per row: 100,000 rows one by one take about
    /// a third of a second), with the plain query as the fallback should a packed chunk not
    /// split cleanly.
    pub async fn permit_rows(&self) -> Result<Vec<PermitRow>> {
        match self.permit_rows_packed().await? {
            Some(rows) => Ok(rows),
            None => self.permit_rows_one_by_one().await,
        }
    }

    /// [`Store::permit_rows`] in chunks of 5,000 rows aggregated to one text each (fields
    /// separated by U+001F, rows by U+001E); `None` when a field holds a separator.
    async fn permit_rows_packed(&self) -> Result<Option<Vec<PermitRow>>> {
        const CHUNK: i64 = 5_000;
        let sql = match self.backend {
            crate::Backend::Sqlite => {
                "SELECT MAX(id) AS last, group_concat(permit || char(31) || category || char(31) || plate || char(31) \
                 || country || char(31) || valid_from || char(31) || valid_to || char(31) || status, char(30)) AS packed \
                 FROM (SELECT id, permit, category, plate, country, valid_from, valid_to, status FROM permit_rows \
                 WHERE id > $1 ORDER BY id LIMIT $2) chunk"
            }
            crate::Backend::Postgres => {
                "SELECT MAX(id) AS last, string_agg(permit || chr(31) || category || chr(31) || plate || chr(31) \
                 || country || chr(31) || valid_from::text || chr(31) || valid_to::text || chr(31) || status, chr(30)) AS packed \
                 FROM (SELECT id, permit, category, plate, country, valid_from, valid_to, status FROM permit_rows \
                 WHERE id > $1 ORDER BY id LIMIT $2) chunk"
            }
        };
        let mut rows = Vec::new();
        let mut after = 0_i64;
        loop {
            let chunk = sqlx::query(sql)
                .bind(after)
                .bind(CHUNK)
                .fetch_one(&self.read)
                .await?;
            let Some(last) = crate::get_opt_i64(&chunk, "last")? else {
                return Ok(Some(rows));
            };
            after = last;
            let packed = crate::get_opt_str(&chunk, "packed")?.unwrap_or_default();
            for record in packed.split('\u{1e}') {
                let fields: Vec<&str> = record.split('\u{1f}').collect();
                let [permit, category, plate, country, from, to, status] = fields[..] else {
                    return Ok(None);
                };
                let (Ok(valid_from), Ok(valid_to)) = (from.parse(), to.parse()) else {
                    return Ok(None);
                };
                rows.push(PermitRow {
                    permit: permit.to_owned(),
                    category: category.to_owned(),
                    plate: plate.to_owned(),
                    country: country.to_owned(),
                    valid_from,
                    valid_to,
                    active: status == "active",
                });
            }
        }
    }

    /// [`Store::permit_rows`] row by row, streamed.
    async fn permit_rows_one_by_one(&self) -> Result<Vec<PermitRow>> {
        use futures::TryStreamExt;
        let mut stream = sqlx::query(
            "SELECT permit, category, plate, country, valid_from, valid_to, status FROM permit_rows",
        )
        .fetch(&self.read);
        let mut rows = Vec::new();
        while let Some(row) = stream.try_next().await? {
            rows.push(permit_row(&row)?);
        }
        Ok(rows)
    }

    /// The rows of one plate, for a patrol's check.
    pub async fn permit_rows_of(&self, plate: &str, country: &str) -> Result<Vec<PermitRow>> {
        let rows = sqlx::query(
            "SELECT permit, category, plate, country, valid_from, valid_to, status FROM permit_rows \
             WHERE plate = $1 AND country = $2",
        )
        .bind(plate)
        .bind(country)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(permit_row).collect()
    }

    /// The plates of active permits valid at an instant (CONTRACT §6.3), by plate.
    pub async fn whitelist_at(&self, at_ms: i64) -> Result<Vec<WhitelistRow>> {
        let rows = sqlx::query(
            "SELECT plate, country, permit, category, valid_from, valid_to FROM permit_rows \
             WHERE status = 'active' AND valid_from <= $1 AND valid_to > $1 \
             ORDER BY plate, country, permit, valid_from",
        )
        .bind(at_ms)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WhitelistRow {
                    plate: get_str(r, "plate")?,
                    country: get_str(r, "country")?,
                    permit: get_str(r, "permit")?,
                    category: get_str(r, "category")?,
                    valid_from: get_i64(r, "valid_from")?,
                    valid_to: get_i64(r, "valid_to")?,
                    change: None,
                })
            })
            .collect()
    }

    /// What changed in the whitelist between two instants: rows allowed at `at` and not at
    /// `since` (`added`), and the other way round (`removed`), by plate. The cameras apply
    /// it instead of reloading the whole list.
    pub async fn whitelist_delta(&self, since_ms: i64, at_ms: i64) -> Result<Vec<WhitelistRow>> {
        let key = |r: &WhitelistRow| {
            (
                r.plate.clone(),
                r.country.clone(),
                r.permit.clone(),
                r.valid_from,
            )
        };
        let before = self.whitelist_at(since_ms).await?;
        let after = self.whitelist_at(at_ms).await?;
        let before_keys: std::collections::HashSet<_> = before.iter().map(key).collect();
        let after_keys: std::collections::HashSet<_> = after.iter().map(key).collect();
        let mut delta: Vec<WhitelistRow> = after
            .into_iter()
            .filter(|r| !before_keys.contains(&key(r)))
            .map(|r| WhitelistRow {
                change: Some("added"),
                ..r
            })
            .chain(
                before
                    .into_iter()
                    .filter(|r| !after_keys.contains(&key(r)))
                    .map(|r| WhitelistRow {
                        change: Some("removed"),
                        ..r
                    }),
            )
            .collect();
        delta.sort_by(|a, b| {
            (&a.plate, &a.country, &a.permit, a.valid_from).cmp(&(
                &b.plate,
                &b.country,
                &b.permit,
                b.valid_from,
            ))
        });
        Ok(delta)
    }
}

fn permit_row(r: &sqlx::any::AnyRow) -> Result<PermitRow> {
    Ok(PermitRow {
        permit: get_str(r, "permit")?,
        category: get_str(r, "category")?,
        plate: get_str(r, "plate")?,
        country: get_str(r, "country")?,
        valid_from: get_i64(r, "valid_from")?,
        valid_to: get_i64(r, "valid_to")?,
        active: get_str(r, "status")? == "active",
    })
}

/// Writes the whitelist (CONTRACT §6.3) as `csv` or `json`: zones and windows from the
/// policy (joined with `;` in CSV), instants in the policy's time zone. A `delta` starts
/// every row with its `change` (`added` or `removed`).
pub fn write_whitelist<W: std::io::Write>(
    policy: &sportello_domain::ztl::policy::Policy,
    rows: &[WhitelistRow],
    json: bool,
    delta: bool,
    mut out: W,
) -> std::io::Result<()> {
    use chrono::TimeZone;
    let instant = |ms: i64| -> String {
        chrono::Utc
            .timestamp_millis_opt(ms)
            .single()
            .map(|t| t.with_timezone(&policy.timezone).to_rfc3339())
            .unwrap_or_default()
    };
    let described = rows.iter().map(|r| {
        let (zones, windows) = policy.category(&r.category).map_or_else(
            || (Vec::new(), Vec::new()),
            |c| {
                (
                    c.zones.clone(),
                    c.windows
                        .iter()
                        .map(|w| w.as_str().to_owned())
                        .collect::<Vec<_>>(),
                )
            },
        );
        (r, zones, windows)
    });
    if json {
        let items: Vec<serde_json::Value> = described
            .map(|(r, zones, windows)| {
                let mut item = serde_json::json!({
                    "plate": r.plate, "country": r.country, "permit": r.permit, "category": r.category,
                    "zones": zones, "windows": windows,
                    "valid_from": instant(r.valid_from), "valid_to": instant(r.valid_to),
                });
                if let (Some(change), Some(map)) = (r.change, item.as_object_mut()) {
                    map.insert("change".into(), change.into());
                }
                item
            })
            .collect();
        serde_json::to_writer(&mut out, &items)?;
        writeln!(out)?;
        return Ok(());
    }
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out);
    let header = [
        "plate",
        "country",
        "permit",
        "category",
        "zones",
        "windows",
        "valid_from",
        "valid_to",
    ];
    if delta {
        writer.write_field("change")?;
    }
    writer.write_record(header)?;
    for (r, zones, windows) in described {
        if delta {
            writer.write_field(r.change.unwrap_or_default())?;
        }
        writer.write_record([
            r.plate.as_str(),
            &r.country,
            &r.permit,
            &r.category,
            &zones.join(";"),
            &windows.join(";"),
            &instant(r.valid_from),
            &instant(r.valid_to),
        ])?;
    }
    writer.flush()
}

/// One row of a permit as shown to staff.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PermitPlate {
    /// Plate.
    pub plate: String,
    /// Country.
    pub country: String,
    /// Valid from (Unix ms; RFC 3339, Europe/Rome, in JSON).
    #[serde(serialize_with = "ms_as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub valid_from: i64,
    /// Valid to, exclusive (Unix ms; RFC 3339, Europe/Rome, in JSON).
    #[serde(serialize_with = "ms_as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub valid_to: i64,
    /// `active`, `suspended` or `revoked`.
    pub status: String,
    /// `import`, `issued`, `changed` (a plate changed by a case) or `temporary`.
    pub source: String,
    /// When it was recorded (Unix ms; RFC 3339, Europe/Rome, in JSON).
    #[serde(serialize_with = "ms_as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: i64,
    /// Who recorded it.
    pub recorded_by: String,
    /// The policy version it was recorded under (`policy_versions`), when known.
    pub policy_version: Option<i64>,
}

/// Instants leave the API as RFC 3339 in Rome's time (CONTRACT §5), never as numbers.
fn ms_as_rfc3339<S: serde::Serializer>(
    ms: &i64,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    match chrono::DateTime::from_timestamp_millis(*ms) {
        Some(t) => serializer.serialize_str(&crate::time::rome_rfc3339(t)),
        None => Err(serde::ser::Error::custom(format!(
            "instant out of range: {ms}"
        ))),
    }
}

/// A temporary plate communicated for a person-bound permit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporaryPlate {
    /// The plate.
    pub plate: sportello_domain::plate::Plate,
    /// From (Unix ms).
    pub from_ms: i64,
    /// To (Unix ms).
    pub to_ms: i64,
}

/// A permit: its holder, category and plate rows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PermitView {
    /// Permit number.
    pub number: String,
    /// Category id.
    pub category: String,
    /// Holder's fiscal code.
    pub holder_fiscal_code: String,
    /// Holder's name.
    pub holder_name: String,
    /// Where it stands now: `active` (a plate may pass), `suspended`, `revoked`,
    /// `not_yet_valid` or `expired`.
    pub state: String,
    /// Every plate row, oldest first.
    pub plates: Vec<PermitPlate>,
    /// For permits issued here: the token of the public verification page
    /// (`/permits/v/{token}`), printed as the permit's QR code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_token: Option<String>,
    /// Numbers it was issued under before it was renumbered (the old `CUD-2026-000001`
    /// shape): they still find it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// What happened to it, oldest first: who, when, what and why.
    pub history: Vec<PermitEvent>,
}

/// One entry of a permit's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PermitEvent {
    /// When (RFC 3339, Europe/Rome).
    pub at: String,
    /// Who.
    pub actor: String,
    /// `issued`, `temporary_plate`, `suspended`, `revoked`, `reinstated`.
    pub kind: String,
    /// Details (plates, reason…).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

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
}

/// A plate as the refusals name it: the plate alone when Italian, else with its country.
fn plate_label(plate: &str, country: &str) -> String {
    if country == "IT" {
        plate.to_owned()
    } else {
        format!("{plate} ({country})")
    }
}

impl Store {
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
}

/// A permit to issue from a case, already checked against the policy.
#[derive(Debug, Clone)]
pub struct NewPermit {
    /// Category id.
    pub category: String,
    /// Its number prefix (e.g. `RES`).
    pub prefix: String,
    /// Holder's fiscal code.
    pub holder_fiscal_code: String,
    /// Holder's name.
    pub holder_name: String,
    /// The plates.
    pub plates: Vec<sportello_domain::plate::Plate>,
    /// Valid from (Unix ms).
    pub valid_from: i64,
    /// Valid to (Unix ms).
    pub valid_to: i64,
    /// The policy version it is decided under.
    pub policy_version: Option<i64>,
    /// The permit this one renews: it does not count as a clash, and its history
    /// records the renewal.
    pub renews: Option<String>,
}

/// A permit just issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedPermit {
    /// Its number, e.g. `RES202600001`.
    pub number: String,
    /// The token of its public verification page.
    pub verify_token: String,
}

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

    /// Journals the expiry of every permit whose validity has ended (its last plate row,
    /// temporary plates aside) and that was not yet marked: one `expired` event each, by
    /// `system`, dated when the validity ended. Idempotent; returns how many were marked.
    pub async fn mark_expired_permits(&self) -> Result<u64> {
        let now = to_ms(self.clock.now());
        let done = sqlx::query(
            "INSERT INTO permit_events (permit, at, actor, kind, detail) \
             SELECT r.permit, MAX(r.valid_to), 'system', 'expired', '{\"reason\":\"validity ended\"}' \
             FROM permit_rows r WHERE r.source <> 'temporary' GROUP BY r.permit \
             HAVING MAX(r.valid_to) <= $1 \
             AND NOT EXISTS (SELECT 1 FROM permit_events e WHERE e.permit = r.permit AND e.kind = 'expired')",
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

/// What the public page behind a permit's QR code shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicPermit {
    /// Its number.
    pub number: String,
    /// Its former numbers.
    pub aliases: Vec<String>,
    /// Whether a plate of it is valid now.
    pub valid: bool,
    /// The plates valid now.
    pub plates: Vec<String>,
}

/// A permit number quoted in a message, as the register knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QuotedPermit {
    /// The text as quoted (the number, or a former number).
    pub quoted: String,
    /// The permit's number.
    pub permit: String,
    /// Its holder's fiscal code.
    pub holder_fiscal_code: String,
    /// The case it was issued from, when it was issued here.
    pub case_reference: Option<String>,
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
fn permit_state(rows: &[PermitPlate], now: i64) -> &'static str {
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

/// The number a permit is known by now: `number` itself when some permit has it, else the
/// permit `number` was an alias of (a number issued in the old shape), else `number`
/// unchanged (and nothing will be found under it).
pub(crate) async fn resolve_permit_number<'c, E>(db: E, number: &str) -> Result<String>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let row = sqlx::query(
        "SELECT COALESCE((SELECT permit FROM permit_rows WHERE permit = $1 LIMIT 1), \
         (SELECT permit FROM permit_aliases WHERE alias = $1)) AS permit",
    )
    .bind(number)
    .fetch_one(db)
    .await?;
    Ok(crate::get_opt_str(&row, "permit")?.unwrap_or_else(|| number.to_owned()))
}

/// The former numbers of a permit, oldest first.
async fn permit_aliases<'c, E>(db: E, number: &str) -> Result<Vec<String>>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    sqlx::query("SELECT alias FROM permit_aliases WHERE permit = $1 ORDER BY alias")
        .bind(number)
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| get_str(r, "alias"))
        .collect()
}

/// Takes the permit's lock for the rest of the transaction, before its rows are read, so
/// that a rule checked over them (the plates at one instant) still holds when the
/// transaction writes: on PostgreSQL a row lock on each of its rows (in one order, so two
/// takers cannot deadlock); on SQLite the database's write lock, taken by a write.
async fn lock_permit(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: crate::Backend,
    number: &str,
) -> Result<()> {
    let sql = match backend {
        crate::Backend::Postgres => {
            "SELECT id FROM permit_rows WHERE permit = $1 ORDER BY id FOR UPDATE"
        }
        crate::Backend::Sqlite => {
            "UPDATE permit_rows SET status = status WHERE id = (SELECT MIN(id) FROM permit_rows WHERE permit = $1)"
        }
    };
    sqlx::query(sql).bind(number).execute(&mut **tx).await?;
    Ok(())
}

/// The rule that one plate has at most one active permit of a category at a time: the
/// first plate of `plates` that already has one overlapping `[valid_from, valid_to)`,
/// refused with that permit's number. `renews` (the permit a renewal continues) is no
/// clash. The one place this rule lives: the plan of a case and the issue both ask here.
async fn find_plate_clash(
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

async fn record_permit_event(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    permit: &str,
    at: i64,
    actor: &str,
    kind: &str,
    detail: &serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO permit_events (permit, at, actor, kind, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(permit)
    .bind(at)
    .bind(actor)
    .bind(kind)
    .bind(detail.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testing::{fixture_now, with_test_store};
    use sportello_domain::clock::Clock;

    pub(crate) fn register_row(permit: &str, plate: &str, valid_to: i64) -> RegisterRow {
        RegisterRow {
            line: 2,
            row: PermitRow {
                permit: permit.into(),
                category: "residenti".into(),
                plate: plate.into(),
                country: "IT".into(),
                valid_from: 0,
                valid_to,
                active: true,
            },
            holder_fiscal_code: "RSSMRA85T10A562S".into(),
            holder_name: "Mario Rossi".into(),
            status: "active".into(),
        }
    }

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

    #[tokio::test]
    async fn packed_rows_are_the_rows_and_a_separator_falls_back() {
        with_test_store(|store, _clock| async move {
            // More than one chunk, on both engines.
            let rows: Vec<RegisterRow> = (0..12_000)
                .map(|i| register_row(&format!("P{i}"), &format!("AB{i:05}"), 1_000 + i))
                .collect();
            store
                .import_permit_rows(&rows, None, "import")
                .await
                .unwrap();
            let sorted = |mut rows: Vec<PermitRow>| {
                rows.sort_by(|a, b| a.permit.cmp(&b.permit));
                rows
            };
            let packed = sorted(store.permit_rows().await.unwrap());
            assert_eq!(packed.len(), 12_000);
            assert_eq!(
                packed,
                sorted(store.permit_rows_one_by_one().await.unwrap())
            );
            assert_eq!(
                (packed[0].plate.as_str(), packed[0].valid_to),
                ("AB00000", 1_000)
            );
            // A permit number holding the field separator: read one by one, not mangled.
            store
                .import_permit_rows(&[register_row("X\u{1f}Y", "ZZ999ZZ", 5)], None, "import")
                .await
                .unwrap();
            assert!(store.permit_rows_packed().await.unwrap().is_none());
            let all = store.permit_rows().await.unwrap();
            assert_eq!(all.len(), 12_001);
            assert!(all.iter().any(|r| r.permit == "X\u{1f}Y"));
        })
        .await;
    }

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

    /// A CUDE permit (at most 2 vehicles in the built-in policy) with one plate for a
    /// year, issued from a case of its own.
    async fn cude_permit(store: &Store) -> String {
        use sportello_domain::plate::Plate;
        let case = store
            .create_case(crate::cases::tests::request("cude"))
            .await
            .unwrap();
        let now = fixture_now().timestamp_millis();
        let new = NewPermit {
            category: "cude".into(),
            prefix: "CUD".into(),
            holder_fiscal_code: "RSSMRA80A01H501U".into(),
            holder_name: "Mario Rossi".into(),
            plates: vec![Plate::parse("AA111AA", None).unwrap()],
            valid_from: now - 3 * 86_400_000,
            valid_to: now + 365 * 86_400_000,
            policy_version: None,
            renews: None,
        };
        store
            .issue_permit(&case.summary.reference, &new, "op")
            .await
            .unwrap()
            .number
    }

    fn temporary(plate: &str, from_hours: i64, to_hours: i64) -> TemporaryPlate {
        let now = fixture_now().timestamp_millis();
        TemporaryPlate {
            plate: sportello_domain::plate::Plate::parse(plate, None).unwrap(),
            from_ms: now + from_hours * 3_600_000,
            to_ms: now + to_hours * 3_600_000,
        }
    }

    /// The issue's CUDE permit authorised five plates at once against a maximum of two:
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
