//! The permit register in the database: bulk import (idempotent by permit number, plate
//! and start of validity), the rows the transit check and the whitelist read.

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
        Some(t) => serializer.serialize_str(&crate::cases::rome_rfc3339(t)),
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
    /// A permit with all its rows.
    pub async fn permit(&self, number: &str) -> Result<PermitView> {
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
                at: crate::cases::rome_rfc3339(crate::from_ms(get_i64(e, "at")?)?),
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
    /// 24 hours, on a permit active and valid over that time.
    pub async fn add_temporary_plate(
        &self,
        policy: &sportello_domain::ztl::policy::Policy,
        number: &str,
        request: &TemporaryPlate,
        policy_version: Option<i64>,
        actor: &str,
    ) -> Result<PermitView> {
        let TemporaryPlate {
            plate,
            from_ms,
            to_ms: to_ms_,
        } = request;
        let (from_ms, to_ms_) = (*from_ms, *to_ms_);
        let permit = self.permit(number).await?;
        let category = policy.category(&permit.category).ok_or_else(|| {
            crate::StoreError::Refused(
                Refusal::new("refusal.category_unknown").with("category", &permit.category),
            )
        })?;
        if !category.person_bound {
            return Err(crate::StoreError::Refused(
                Refusal::new("refusal.not_person_bound")
                    .with("number", number)
                    .with("category", &category.name),
            ));
        }
        let now = to_ms(self.clock.now());
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
        let covered = permit.plates.iter().any(|p| {
            p.status == "active"
                && p.source != "temporary"
                && p.valid_from <= from_ms
                && to_ms_ <= p.valid_to
        });
        if !covered {
            return Err(crate::StoreError::Refused(
                Refusal::new("refusal.not_valid_then").with("number", number),
            ));
        }
        sqlx::query(
            "INSERT INTO permit_rows (permit, category, holder_fiscal_code, holder_name, plate, country, \
             valid_from, valid_to, status, source, recorded_at, recorded_by, policy_version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', 'temporary', $9, $10, $11) \
             ON CONFLICT (permit, plate, valid_from) DO NOTHING",
        )
        .bind(number)
        .bind(&permit.category)
        .bind(&permit.holder_fiscal_code)
        .bind(&permit.holder_name)
        .bind(&plate.number)
        .bind(&plate.country)
        .bind(from_ms)
        .bind(to_ms_)
        .bind(now)
        .bind(actor)
        .bind(policy_version)
        .execute(&self.write)
        .await?;
        let mut tx = self.write.begin().await?;
        let detail = serde_json::json!({
            "plate": plate.number, "country": plate.country,
            "from": crate::cases::rome_rfc3339(crate::from_ms(from_ms)?),
            "to": crate::cases::rome_rfc3339(crate::from_ms(to_ms_)?),
        });
        record_permit_event(&mut tx, number, now, actor, "temporary_plate", &detail).await?;
        tx.commit().await?;
        self.permit(number).await
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
    /// Its number, e.g. `RES-2026-000001`.
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
        for plate in &new.plates {
            let clash = sqlx::query(
                "SELECT permit FROM permit_rows WHERE plate = $1 AND country = $2 AND category = $3 \
                 AND status = 'active' AND valid_from < $4 AND valid_to > $5 AND permit <> $6 LIMIT 1",
            )
            .bind(&plate.number)
            .bind(&plate.country)
            .bind(&new.category)
            .bind(new.valid_to)
            .bind(new.valid_from)
            .bind(new.renews.as_deref().unwrap_or_default())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = clash {
                return Err(crate::StoreError::Refused(
                    Refusal::new("refusal.plate_has_permit")
                        .with("plate", &plate.number)
                        .with("number", get_str(&row, "permit")?),
                ));
            }
        }
        let year = sportello_domain::calendar::rome_date(now)
            .format("%Y")
            .to_string();
        let row = sqlx::query(
            "INSERT INTO sequences (name, value) VALUES ($1, 1) \
             ON CONFLICT (name) DO UPDATE SET value = sequences.value + 1 RETURNING value",
        )
        .bind(format!("permit:{}:{year}", new.prefix))
        .fetch_one(&mut *tx)
        .await?;
        let number = format!("{}-{year}-{:06}", new.prefix, get_i64(&row, "value")?);
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
        let case_id = crate::cases::touch_case(&mut tx, case_reference, now).await?;
        let detail = serde_json::json!({
            "permit": number,
            "category": new.category,
            "plates": new.plates.iter().map(|p| format!("{} {}", p.number, p.country)).collect::<Vec<_>>(),
            "valid_from": crate::cases::rome_rfc3339(crate::from_ms(new.valid_from)?),
            "valid_to": crate::cases::rome_rfc3339(crate::from_ms(new.valid_to)?),
            "policy_version": new.policy_version,
        });
        let mut detail = detail;
        if let Some(old) = &new.renews {
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
        crate::cases::insert_event(&mut tx, case_id, now, actor, "permit_issued", &detail).await?;
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
            crate::cases::touch_case(&mut tx, case_reference, crate::from_ms(now)?).await?;
        let mut case_detail = detail;
        case_detail["permit"] = number.into();
        crate::cases::insert_event(
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

    /// What the public verification page may show of a permit: its number, whether it is
    /// valid now, and its plates; `None` for an unknown token.
    pub async fn permit_by_token(
        &self,
        token: &str,
    ) -> Result<Option<(String, bool, Vec<String>)>> {
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
        Ok(Some((number, valid, plates)))
    }
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
mod tests {
    use super::*;
    use crate::testing::{fixture_now, with_test_store};
    use sportello_domain::clock::Clock;

    fn register_row(permit: &str, plate: &str, valid_to: i64) -> RegisterRow {
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
                crate::cases::rome_rfc3339(crate::from_ms(now + day).unwrap())
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
