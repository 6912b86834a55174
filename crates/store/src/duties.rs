//! Leases of the background duties, for several instances on one database.
//!
//! A duty (the minute tick of legal clocks and permits, the contact centre's tick, the
//! search backlog, one scanner folder) must be done by one instance at a time, and by
//! another when that one dies. One row per duty does both on either engine: the holder
//! renews it well before it lapses, anyone may take a lapsed one (a single upsert, so of
//! two instances racing for it exactly one wins), and a clean shutdown gives it up at once.
//! The lease saves the others the work; the duties themselves stay idempotent per due item
//! (a holder that stalled past its lease may still finish an item the next holder also
//! sees: the item's own row decides, under its lock, that it is done once).

use std::time::Duration;

use crate::{Result, Store, from_ms, get_i64, get_str, to_ms};

/// Who holds a duty, for monitoring and tests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DutyHolder {
    /// The duty's name (`sla`, `contact`, `search_backlog`, `scan:{folder id}`).
    pub duty: String,
    /// The instance holding it (host, process id, random part).
    pub holder: String,
    /// Since when this holder has held it (RFC 3339).
    pub acquired_at: String,
    /// When the lease lapses unless renewed (RFC 3339).
    pub expires_at: String,
    /// Whether it has lapsed already (the holder died or stalled).
    pub lapsed: bool,
}

impl Store {
    /// Takes `duty` for `holder`, or renews it, for `ttl` from now. `false` when another
    /// instance holds a lease that has not lapsed.
    pub async fn acquire_duty(&self, duty: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let now = self.clock.now();
        let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(60));
        let done = sqlx::query(
            "INSERT INTO duty_leases (duty, holder, acquired_at, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (duty) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at, \
             acquired_at = CASE WHEN duty_leases.holder = excluded.holder THEN duty_leases.acquired_at \
             ELSE excluded.acquired_at END \
             WHERE duty_leases.holder = excluded.holder OR duty_leases.expires_at < $3",
        )
        .bind(duty)
        .bind(holder)
        .bind(to_ms(now))
        .bind(to_ms(until))
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives up every duty `holder` holds (at a clean shutdown), so another instance takes
    /// them over at its next look instead of when the leases lapse.
    pub async fn release_duties(&self, holder: &str) -> Result<u64> {
        let done = sqlx::query("DELETE FROM duty_leases WHERE holder = $1")
            .bind(holder)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }

    /// At start-up on the embedded database, where this process is the only server (the
    /// serve lock), every lease left was held by a process that died: forgotten at once,
    /// so a restarted server does not wait for them to lapse. (On PostgreSQL other
    /// instances may be running: their leases lapse.)
    pub async fn release_stale_duties(&self) -> Result<u64> {
        if !crate::dialect::single_process(self.backend) {
            return Ok(0);
        }
        let done = sqlx::query("DELETE FROM duty_leases")
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }

    /// Every duty ever taken, with its holder, by name.
    pub async fn duty_holders(&self) -> Result<Vec<DutyHolder>> {
        let now = to_ms(self.clock.now());
        let rows = sqlx::query(
            "SELECT duty, holder, acquired_at, expires_at FROM duty_leases ORDER BY duty",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let expires = get_i64(r, "expires_at")?;
                Ok(DutyHolder {
                    duty: get_str(r, "duty")?,
                    holder: get_str(r, "holder")?,
                    acquired_at: crate::time::rome_rfc3339(from_ms(get_i64(r, "acquired_at")?)?),
                    expires_at: crate::time::rome_rfc3339(from_ms(expires)?),
                    lapsed: expires < now,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::testing::with_test_store;

    const TTL: Duration = Duration::from_secs(90);

    #[tokio::test]
    async fn one_holder_at_a_time_and_another_takes_over_when_it_lapses() {
        with_test_store(|store, clock| async move {
            assert!(store.acquire_duty("sla", "a", TTL).await.unwrap());
            assert!(
                !store.acquire_duty("sla", "b", TTL).await.unwrap(),
                "held by a"
            );
            // Other duties are free: b may hold those.
            assert!(store.acquire_duty("contact", "b", TTL).await.unwrap());
            // a renews before it lapses: b still cannot take it.
            clock.advance(chrono::Duration::seconds(60));
            assert!(store.acquire_duty("sla", "a", TTL).await.unwrap());
            clock.advance(chrono::Duration::seconds(60));
            assert!(!store.acquire_duty("sla", "b", TTL).await.unwrap());
            // a dies: 90 s after its last renewal the lease has lapsed and b takes it.
            clock.advance(chrono::Duration::seconds(31));
            let before = store.duty_holders().await.unwrap();
            assert!(
                before
                    .iter()
                    .any(|h| h.duty == "sla" && h.holder == "a" && h.lapsed)
            );
            assert!(store.acquire_duty("sla", "b", TTL).await.unwrap());
            // ... and a, back from a stall, finds it taken.
            assert!(!store.acquire_duty("sla", "a", TTL).await.unwrap());
            let holders = store.duty_holders().await.unwrap();
            let sla = holders.iter().find(|h| h.duty == "sla").unwrap();
            assert_eq!((sla.holder.as_str(), sla.lapsed), ("b", false));
        })
        .await;
    }

    #[tokio::test]
    async fn a_restarted_embedded_server_takes_its_duties_back_at_once() {
        with_test_store(|store, _clock| async move {
            assert!(store.acquire_duty("sla", "dead", TTL).await.unwrap());
            let released = store.release_stale_duties().await.unwrap();
            let sqlite = store.backend == crate::Backend::Sqlite;
            assert_eq!(released, u64::from(sqlite));
            // On PostgreSQL another instance may be alive: its lease stands.
            assert_eq!(store.acquire_duty("sla", "new", TTL).await.unwrap(), sqlite);
        })
        .await;
    }

    #[tokio::test]
    async fn a_clean_shutdown_hands_its_duties_over_at_once() {
        with_test_store(|store, _clock| async move {
            assert!(store.acquire_duty("sla", "a", TTL).await.unwrap());
            assert!(store.acquire_duty("contact", "a", TTL).await.unwrap());
            assert!(
                store
                    .acquire_duty("search_backlog", "b", TTL)
                    .await
                    .unwrap()
            );
            assert_eq!(store.release_duties("a").await.unwrap(), 2);
            assert!(store.acquire_duty("sla", "b", TTL).await.unwrap());
            assert!(store.acquire_duty("contact", "b", TTL).await.unwrap());
            let holders: Vec<_> = store
                .duty_holders()
                .await
                .unwrap()
                .into_iter()
                .map(|h| (h.duty, h.holder))
                .collect();
            assert_eq!(
                holders,
                [
                    ("contact".to_owned(), "b".to_owned()),
                    ("search_backlog".into(), "b".into()),
                    ("sla".into(), "b".into())
                ]
            );
        })
        .await;
    }

    #[tokio::test]
    async fn of_many_instances_racing_for_a_free_duty_exactly_one_wins() {
        with_test_store(|store, _clock| async move {
            for round in 0..5 {
                let duty = format!("race-{round}");
                let attempts = (0..8).map(|i| {
                    let store = store.clone();
                    let duty = duty.clone();
                    async move { store.acquire_duty(&duty, &format!("i{i}"), TTL).await }
                });
                let won = futures::future::join_all(attempts)
                    .await
                    .into_iter()
                    .filter(|r| *r.as_ref().unwrap())
                    .count();
                assert_eq!(won, 1, "round {round}");
            }
        })
        .await;
    }
}

/// The minute ticks run by two instances at once (a lease lost in a stall, or a holder
/// that was slow to renew): every due item is acted on once, whoever gets there first.
#[cfg(test)]
mod ticks_at_once {
    use chrono::Duration;
    use sportello_domain::workflow::Action;

    use crate::cases::tests::request;
    use crate::outbound::tests::{email, new_case};
    use crate::permits::tests::register_row;
    use crate::testing::with_test_store;
    use sportello_domain::clock::Clock;

    fn kinds(view: &crate::cases::CaseView, kind: &str) -> usize {
        view.timeline.iter().filter(|e| e.kind == kind).count()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_permit_expires_once() {
        with_test_store(|store, clock| async move {
            // Several rounds of many permits, four ticks at once each time: on PostgreSQL
            // their statements overlap, and only the unique index stops a second entry.
            for round in 0..4 {
                let now = clock.now().timestamp_millis();
                let rows: Vec<_> = (0..300)
                    .map(|i| {
                        register_row(
                            &format!("R{round}X{i}"),
                            &format!("A{round}{i:04}"),
                            now - 1,
                        )
                    })
                    .collect();
                store
                    .import_permit_rows(&rows, None, "import")
                    .await
                    .unwrap();
                let ticks: Vec<_> = (0..4)
                    .map(|_| {
                        let store = store.clone();
                        tokio::spawn(async move { store.mark_expired_permits().await })
                    })
                    .collect();
                let mut marked = 0;
                for t in ticks {
                    marked += t.await.unwrap().unwrap();
                }
                assert_eq!(marked, 300, "round {round}");
                clock.advance(Duration::seconds(1));
            }
            for i in (0..300).step_by(37) {
                let permit = store.permit(&format!("R3X{i}")).await.unwrap();
                assert_eq!(permit.history.len(), 1, "R3X{i}: {:?}", permit.history);
            }
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_suspension_lapses_once() {
        with_test_store(|store, clock| async move {
            let mut references = Vec::new();
            for _ in 0..5 {
                let r = store
                    .create_case(request("ztl_permit"))
                    .await
                    .unwrap()
                    .summary
                    .reference;
                store
                    .apply_action(&r, &Action::StartReview, None, "op1")
                    .await
                    .unwrap();
                let missing = vec!["documento_identita".to_owned()];
                store
                    .apply_action(&r, &Action::RequestIntegration { missing }, None, "op1")
                    .await
                    .unwrap();
                references.push(r);
            }
            clock.advance(Duration::days(31));
            let (a, b) = tokio::join!(store.sla_tick(), store.sla_tick());
            assert_eq!(a.unwrap() + b.unwrap(), 5);
            assert_eq!(store.sla_tick().await.unwrap(), 0);
            for r in &references {
                let case = store.get_case(r).await.unwrap();
                assert_eq!(kinds(&case, "pause_lapsed"), 1, "{r}");
                let flagged = case
                    .summary
                    .flags
                    .iter()
                    .filter(|f| *f == "integration_expired");
                assert_eq!(flagged.count(), 1, "{r}");
            }
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_reminder_an_acknowledgement_and_a_call_task_are_written_once() {
        with_test_store(|store, _clock| async move {
            let r = new_case(&store).await;
            let key = format!("reminder:{r}:2026-10-30");
            let (m1, m2) = (email(&key, "m1@x.it"), email(&key, "m2@x.it"));
            let (a, b) = tokio::join!(
                store.queue_message(&r, &m1, "system"),
                store.queue_message(&r, &m2, "system"),
            );
            let created = [a, b]
                .into_iter()
                .filter_map(|r| r.ok())
                .filter(|(_, created)| *created)
                .count();
            assert_eq!(created, 1, "one reminder queued");
            assert_eq!(store.outbound_of_case(&r).await.unwrap().len(), 1);

            let s = new_case(&store).await;
            let (a, b) = tokio::join!(
                store.acknowledgement_skipped(&s, "no channel"),
                store.acknowledgement_skipped(&s, "no channel"),
            );
            a.unwrap();
            b.unwrap();
            let case = store.get_case(&s).await.unwrap();
            assert_eq!(kinds(&case, "acknowledgement_skipped"), 1);

            let (a, b) = tokio::join!(
                store.open_call_task(&s, "no_answer", Some("3331234567"), "Richiamare.", "system"),
                store.open_call_task(&s, "no_answer", Some("3331234567"), "Richiamare.", "system"),
            );
            let opened = [a.unwrap(), b.unwrap()].into_iter().flatten().count();
            assert_eq!(opened, 1);
            let case = store.get_case(&s).await.unwrap();
            assert_eq!(kinds(&case, "call_task_opened"), 1);
        })
        .await;
    }

    #[tokio::test]
    async fn the_day_gauges_are_recorded_once() {
        with_test_store(|store, _clock| async move {
            new_case(&store).await;
            let (a, b) = tokio::join!(store.record_daily_gauges(), store.record_daily_gauges());
            assert_eq!(u8::from(a.unwrap()) + u8::from(b.unwrap()), 1);
        })
        .await;
    }
}
