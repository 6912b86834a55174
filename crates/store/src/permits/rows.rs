//! The permit register as rows: the idempotent bulk import, and the rows the transit check
//! and the whitelist read.

use sportello_domain::ztl::permits::RegisterRow;
use sportello_domain::ztl::transits::PermitRow;

use super::model::ImportCounts;
use crate::dialect;
use crate::permits::WhitelistRow;
use crate::values::{rows_per_statement, values};
use crate::{Result, Store, get_i64, get_str, to_ms};

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
        const ROW: &str = "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
        for chunk in rows.chunks(rows_per_statement(COLUMNS, 40)) {
            let values = values(ROW, chunk.len());
            let sql = format!(
                "INSERT INTO permit_rows (permit, category, holder_fiscal_code, holder_name, plate, country, \
                 valid_from, valid_to, status, source, recorded_at, recorded_by, policy_version) VALUES {values} \
                 ON CONFLICT (permit, plate, valid_from) DO NOTHING"
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
    pub(super) async fn permit_rows_packed(&self) -> Result<Option<Vec<PermitRow>>> {
        const CHUNK: i64 = 5_000;
        let sql = dialect::packed_permit_rows(self.backend);
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
    pub(super) async fn permit_rows_one_by_one(&self) -> Result<Vec<PermitRow>> {
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

pub(super) fn permit_row(r: &sqlx::any::AnyRow) -> Result<PermitRow> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permits::tests::register_row;
    use crate::testing::with_test_store;

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
}
