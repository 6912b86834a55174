//! The security log (CONTRACT §8.6). Events are written before the answer that reports
//! them leaves, one row each: they are rare next to reads, and a log that can lose the
//! failed sign-ins of an attack is no log. The table is append-only (a trigger refuses
//! UPDATE and DELETE).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sportello_domain::security::SecurityEventKind;

use crate::{Result, Store, StoreError, from_ms, get_i64, get_opt_str, get_str, to_ms};

/// The longest detail kept: a detail explains, it does not carry payloads.
const MAX_DETAIL_CHARS: usize = 500;

/// One security event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecurityEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: SecurityEventKind,
    /// The login concerned, when one is known (the one tried, the one changed…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// The client's address (after `trusted_proxies`), or `cli` for the command line.
    pub address: String,
    /// A short explanation, never a password, token or other secret.
    pub detail: String,
}

impl SecurityEvent {
    /// An event of `kind` now, from `address`.
    pub fn new(
        at: DateTime<Utc>,
        kind: SecurityEventKind,
        login: Option<&str>,
        address: &str,
        detail: impl Into<String>,
    ) -> SecurityEvent {
        SecurityEvent {
            at,
            kind,
            login: login.map(str::to_owned),
            address: address.to_owned(),
            detail: detail.into(),
        }
    }
}

/// Keeps `text` to `max` characters, with control characters (log injection) replaced.
fn clean(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl Store {
    /// Writes a security event (durable when this returns) and logs it as a structured line.
    pub async fn record_security_event(&self, event: &SecurityEvent) -> Result<()> {
        let login = event.login.as_deref().map(|l| clean(l, 100));
        let address = clean(&event.address, 100);
        let detail = clean(&event.detail, MAX_DETAIL_CHARS);
        // Refusals and failures are warnings; changes and sign-ins are information, so that
        // `user add` on a terminal does not read as an alarm.
        macro_rules! security_line {
            ($level:ident) => {
                tracing::$level!(
                    target: "sportello::security",
                    kind = event.kind.as_str(),
                    login = login.as_deref().unwrap_or(""),
                    address = %address,
                    detail = %detail,
                    "security event"
                )
            };
        }
        if event.kind.is_refusal() {
            security_line!(warn);
        } else {
            security_line!(info);
        }
        sqlx::query(
            "INSERT INTO security_events (at, kind, login, address, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(to_ms(event.at))
        .bind(event.kind.as_str())
        .bind(login)
        .bind(address)
        .bind(detail)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The events in `[from, to)`, oldest first, at most `limit`.
    pub async fn security_events(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<SecurityEvent>> {
        let rows = sqlx::query(
            "SELECT at, kind, login, address, detail FROM security_events \
             WHERE at >= $1 AND at < $2 ORDER BY at, id LIMIT $3",
        )
        .bind(to_ms(from))
        .bind(to_ms(to))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                let kind = get_str(row, "kind")?;
                Ok(SecurityEvent {
                    at: from_ms(get_i64(row, "at")?)?,
                    kind: SecurityEventKind::parse(&kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("security event {kind:?}")))?,
                    login: get_opt_str(row, "login")?,
                    address: get_str(row, "address")?,
                    detail: get_str(row, "detail")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::with_test_store;
    use chrono::Duration;
    use sportello_domain::clock::Clock;

    #[tokio::test]
    async fn events_are_kept_in_order_cleaned_and_cannot_be_altered() {
        with_test_store(|store, clock| async move {
            let t0 = clock.now();
            let failed = SecurityEvent::new(
                t0,
                SecurityEventKind::SignInFailed,
                Some("m.rossi"),
                "203.0.113.7",
                "wrong password\r\nforged line",
            );
            let revoked = SecurityEvent::new(
                t0 + Duration::seconds(5),
                SecurityEventKind::TokenRevoked,
                Some("vigili"),
                "cli",
                "2 tokens",
            );
            store.record_security_event(&revoked).await.unwrap();
            store.record_security_event(&failed).await.unwrap();
            let all = store
                .security_events(t0, t0 + Duration::minutes(1), 100)
                .await
                .unwrap();
            assert_eq!(all.len(), 2);
            assert_eq!(all[0].kind, SecurityEventKind::SignInFailed);
            assert_eq!(all[0].detail, "wrong password  forged line");
            assert_eq!(all[1], revoked);
            let later = store
                .security_events(t0 + Duration::seconds(1), t0 + Duration::minutes(1), 100)
                .await
                .unwrap();
            assert_eq!(later, vec![revoked]);
            for sql in [
                "UPDATE security_events SET detail = 'nothing'",
                "DELETE FROM security_events",
            ] {
                let refused = sqlx::query(sql).execute(&store.write).await;
                assert!(refused.is_err(), "{sql} was allowed");
            }
        })
        .await;
    }
}
