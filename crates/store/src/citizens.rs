//! Citizens: the person behind a case, found again by fiscal code or by a contact, and
//! shown on every case, message and search hit that names them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sportello_domain::fiscal_code::FiscalCode;
use sqlx::{Any, Transaction};
use utoipa::ToSchema;

use crate::{Result, get_i64, get_opt_str, to_ms};

/// The citizen as given with a new case; the fiscal code is already validated.
#[derive(Debug, Clone, Default)]
pub struct CitizenInput {
    /// Codice fiscale.
    pub fiscal_code: Option<FiscalCode>,
    /// Full name.
    pub name: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// PEC address.
    pub pec: Option<String>,
    /// Telephone.
    pub phone: Option<String>,
    /// Fax number.
    pub fax: Option<String>,
}

/// The citizen as shown on a case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CitizenView {
    /// Codice fiscale.
    pub fiscal_code: Option<String>,
    /// Full name.
    pub name: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// PEC.
    pub pec: Option<String>,
    /// Telephone.
    pub phone: Option<String>,
    /// Fax.
    pub fax: Option<String>,
}

impl CitizenView {
    /// From a row with the citizen's columns (`fiscal_code`, `name`, `email`, `pec`,
    /// `phone`, `fax`; each may be NULL).
    pub(crate) fn from_row(row: &sqlx::any::AnyRow) -> Result<CitizenView> {
        Ok(CitizenView {
            fiscal_code: get_opt_str(row, "fiscal_code")?,
            name: get_opt_str(row, "name")?,
            email: get_opt_str(row, "email")?,
            pec: get_opt_str(row, "pec")?,
            phone: get_opt_str(row, "phone")?,
            fax: get_opt_str(row, "fax")?,
        })
    }
}

/// Finds the citizen by fiscal code (else by e-mail, PEC or phone) and fills in contacts
/// the record does not have yet — never overwrites one, so a request naming someone
/// else's fiscal code cannot redirect their mail — or creates the citizen; returns the id
/// and the citizen as stored. The contacts as given stay in the case's journal.
pub(crate) async fn upsert_citizen(
    tx: &mut Transaction<'static, Any>,
    c: &CitizenInput,
    now: DateTime<Utc>,
) -> Result<Option<(i64, CitizenView)>> {
    let clean = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (name, phone, fax) = (clean(&c.name), clean(&c.phone), clean(&c.fax));
    let email = clean(&c.email).map(|e| e.to_lowercase());
    let pec = clean(&c.pec).map(|e| e.to_lowercase());
    if c.fiscal_code.is_none()
        && name.is_none()
        && email.is_none()
        && pec.is_none()
        && phone.is_none()
        && fax.is_none()
    {
        return Ok(None);
    }
    const RETURNING: &str = "RETURNING id, fiscal_code, name, email, pec, phone, fax";
    let key = phone.as_deref().and_then(phone_key);
    let row = if let Some(code) = &c.fiscal_code {
        // One statement: the fiscal code is unique, so it is the key of the upsert.
        let sql = format!(
            "INSERT INTO citizens (fiscal_code, name, email, pec, phone, fax, created_at, updated_at, phone_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) ON CONFLICT (fiscal_code) DO UPDATE SET \
             name = COALESCE(citizens.name, excluded.name), email = COALESCE(citizens.email, excluded.email), \
             pec = COALESCE(citizens.pec, excluded.pec), phone = COALESCE(citizens.phone, excluded.phone), \
             fax = COALESCE(citizens.fax, excluded.fax), phone_key = COALESCE(citizens.phone_key, excluded.phone_key), \
             updated_at = excluded.updated_at {RETURNING}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(code.as_str().to_owned())
            .bind(name)
            .bind(email)
            .bind(pec)
            .bind(phone)
            .bind(fax)
            .bind(to_ms(now))
            .bind(key)
            .fetch_one(&mut **tx)
            .await?
    } else {
        let mut found = None;
        for (column, value) in [("email", &email), ("pec", &pec), ("phone_key", &key)] {
            if let Some(value) = value {
                let sql = format!(
                    "SELECT id FROM citizens WHERE {column} = $1 AND fiscal_code IS NULL ORDER BY id LIMIT 1"
                );
                found = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(value.clone())
                    .fetch_optional(&mut **tx)
                    .await?;
                if found.is_some() {
                    break;
                }
            }
        }
        match found {
            Some(existing) => {
                let sql = format!(
                    "UPDATE citizens SET name = COALESCE(name, $1), email = COALESCE(email, $2), pec = COALESCE(pec, $3), \
                     phone = COALESCE(phone, $4), fax = COALESCE(fax, $5), phone_key = COALESCE(phone_key, $8), \
                     updated_at = $6 WHERE id = $7 {RETURNING}"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(name)
                    .bind(email)
                    .bind(pec)
                    .bind(phone)
                    .bind(fax)
                    .bind(to_ms(now))
                    .bind(get_i64(&existing, "id")?)
                    .bind(key.clone())
                    .fetch_one(&mut **tx)
                    .await?
            }
            None => {
                let sql = format!(
                    "INSERT INTO citizens (fiscal_code, name, email, pec, phone, fax, created_at, updated_at, phone_key) \
                     VALUES (NULL, $1, $2, $3, $4, $5, $6, $6, $7) {RETURNING}"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(name)
                    .bind(email)
                    .bind(pec)
                    .bind(phone)
                    .bind(fax)
                    .bind(to_ms(now))
                    .bind(key.clone())
                    .fetch_one(&mut **tx)
                    .await?
            }
        }
    };
    let view = CitizenView::from_row(&row)?;
    Ok(Some((get_i64(&row, "id")?, view)))
}

/// The key telephone numbers are matched on: the last nine digits, so that `+39 333 123 4567`
/// and `3331234567` are the same number. `None` for fewer than six digits.
pub fn phone_key(number: &str) -> Option<String> {
    let digits: Vec<char> = number.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 6 {
        return None;
    }
    Some(digits[digits.len().saturating_sub(9)..].iter().collect())
}

/// Who a registration names as sender: the name, else a contact, else the fiscal code.
pub(crate) fn correspondent_of(c: &CitizenInput) -> String {
    [
        c.name.as_deref(),
        c.pec.as_deref(),
        c.email.as_deref(),
        c.phone.as_deref(),
        c.fax.as_deref(),
    ]
    .into_iter()
    .flatten()
    .map(str::trim)
    .find(|s| !s.is_empty())
    .map(str::to_owned)
    .or_else(|| c.fiscal_code.as_ref().map(|f| f.as_str().to_owned()))
    .unwrap_or_else(|| "anonimo".into())
}

/// A citizen's record for the office (`/ufficio/cittadini/{id}`): who they are, how to
/// reach them and the references of all their cases, whatever the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CitizenRecord {
    /// The store's id (the page's address, never its words).
    pub id: i64,
    /// Identity and contacts.
    pub citizen: CitizenView,
    /// Postal address, when known.
    pub address: Option<String>,
    /// The channel they prefer to be written to (`email`, `pec`, `post`…), when given.
    pub preferred_channel: Option<String>,
    /// References of every case of theirs, newest first.
    pub references: Vec<String>,
}

impl crate::Store {
    /// The citizen with this id and the references of all their cases; `None` when there
    /// is no such citizen.
    pub async fn citizen_record(&self, id: i64) -> Result<Option<CitizenRecord>> {
        let Some(row) = sqlx::query(
            "SELECT id, fiscal_code, name, email, pec, phone, fax, address, preferred_channel \
             FROM citizens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await?
        else {
            return Ok(None);
        };
        let cases = sqlx::query(
            "SELECT reference FROM cases WHERE citizen_id = $1 ORDER BY received_at DESC, id DESC",
        )
        .bind(id)
        .fetch_all(&self.read)
        .await?;
        Ok(Some(CitizenRecord {
            id,
            citizen: CitizenView::from_row(&row)?,
            address: get_opt_str(&row, "address")?,
            preferred_channel: get_opt_str(&row, "preferred_channel")?,
            references: cases
                .iter()
                .map(|r| crate::get_str(r, "reference"))
                .collect::<Result<_>>()?,
        }))
    }

    /// Citizens a search box's words name: the exact fiscal code, an e-mail or PEC address,
    /// a telephone number (matched as the CTI look-up matches it), or a part of the name
    /// (three letters at least); at most `limit`, by name. The office's search links to
    /// their records.
    pub async fn find_citizens(&self, q: &str, limit: i64) -> Result<Vec<(i64, CitizenView)>> {
        let q = q.trim();
        if q.chars().count() < 3 {
            return Ok(Vec::new());
        }
        let like = crate::values::like_contains(q);
        // Only what looks like a number is matched as one (a fiscal code has digits too).
        let looks_like_number = q
            .chars()
            .all(|c| c.is_ascii_digit() || " +-/().".contains(c));
        let phone = looks_like_number.then(|| phone_key(q)).flatten();
        let rows = sqlx::query(
            "SELECT id, fiscal_code, name, email, pec, phone, fax FROM citizens \
             WHERE fiscal_code = $1 OR LOWER(email) = $2 OR LOWER(pec) = $2 OR phone_key = $3 \
                OR LOWER(name) LIKE $4 ESCAPE '\\' \
             ORDER BY name, id LIMIT $5",
        )
        .bind(q.to_uppercase())
        .bind(q.to_lowercase())
        .bind(phone)
        .bind(like)
        .bind(limit.clamp(1, 100))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((crate::get_i64(r, "id")?, CitizenView::from_row(r)?)))
            .collect()
    }

    /// The id of the citizen a case belongs to (for the link to their record).
    pub async fn citizen_id_of_case(&self, reference: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT citizen_id FROM cases WHERE reference = $1")
            .bind(reference.to_owned())
            .fetch_optional(&self.read)
            .await?;
        match row {
            Some(r) => crate::get_opt_i64(&r, "citizen_id"),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cases::tests::request;
    use crate::testing::with_test_store;

    #[tokio::test]
    async fn a_citizens_record_holds_their_cases_and_only_theirs() {
        with_test_store(|store, _clock| async move {
            let first = store
                .create_case(request("ztl_permit"))
                .await
                .unwrap()
                .summary
                .reference;
            let second = store
                .create_case(request("ztl_permit"))
                .await
                .unwrap()
                .summary
                .reference;
            let mut other = request("ztl_permit");
            other.citizen.fiscal_code = None;
            other.citizen.email = Some("altra@example.it".into());
            other.citizen.name = Some("Anna Bianchi".into());
            let other = store.create_case(other).await.unwrap().summary.reference;

            let id = store.citizen_id_of_case(&first).await.unwrap().unwrap();
            assert_eq!(store.citizen_id_of_case(&second).await.unwrap(), Some(id));
            let their = store.citizen_id_of_case(&other).await.unwrap().unwrap();
            assert_ne!(their, id);
            assert_eq!(
                store.citizen_id_of_case("ZTL-2026-999999").await.unwrap(),
                None
            );

            let record = store.citizen_record(id).await.unwrap().unwrap();
            assert_eq!(record.id, id);
            assert_eq!(record.citizen.name.as_deref(), Some("Mario Rossi"));
            assert_eq!(
                record.citizen.fiscal_code.as_deref(),
                Some("RSSMRA80A01H501U")
            );
            assert_eq!(
                record.citizen.email.as_deref(),
                Some("mario.rossi@example.it")
            );
            assert_eq!(record.references, vec![second, first], "newest first");
            let theirs = store.citizen_record(their).await.unwrap().unwrap();
            assert_eq!(theirs.references, vec![other]);
            assert_eq!(store.citizen_record(id + their + 100).await.unwrap(), None);
        })
        .await;
    }
}
