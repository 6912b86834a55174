//! The inbound messages of a case, and staff correcting where intake put one.
//!
//! Intake links a message by a rule (reference, In-Reply-To, new); when the rule was wrong
//! (a citizen answered an old mail about a new matter, one mail carried two requests),
//! staff move the message to the right case or split it into a case of its own, in one
//! action. The message keeps its protocol entry (the register is append-only); its
//! attachments follow it, and both cases' journals say who moved what and why.

use serde::Serialize;
use sportello_domain::case::Channel;
use sportello_domain::fiscal_code::FiscalCode;
use utoipa::ToSchema;

use crate::cases::NewCase;
use crate::citizens::CitizenInput;
use crate::journal::{insert_event, touch_case};
use crate::time::rome_rfc3339;
use crate::{Result, Store, StoreError, from_ms, get_i64, get_opt_str, get_str, to_ms};

/// An inbound message as listed on its case.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageView {
    /// Id, for moving it.
    pub id: i64,
    /// Channel.
    pub channel: String,
    /// Sender as registered.
    pub sender: String,
    /// Subject.
    pub subject: String,
    /// When it was delivered to the office (RFC 3339, Europe/Rome): a PEC's certified
    /// time, the arrival on the IMAP server, a fax gateway's reception time, else when
    /// Sportello took it in (see [`crate::intake::Inbound::received_at`]).
    pub received_at: String,
    /// When Sportello took it in (RFC 3339, Europe/Rome).
    pub ingested_at: String,
    /// Its protocol number.
    pub protocol: Option<String>,
    /// How it was linked: `reference_in_subject`, `reference_in_text`, `in_reply_to`,
    /// `new`, or `moved` by staff.
    pub rule: String,
    /// Flags set by intake.
    pub flags: Vec<String>,
    /// SHA-256 of the raw message in the document store.
    pub raw_sha256: String,
    /// The beginning of its text as read (plain text: HTML bodies were converted, so it is
    /// shown escaped, never as markup), at most 2,000 characters.
    pub excerpt: String,
}

/// A message to or from a citizen, on any of their cases (the citizen's record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CitizenMessage {
    /// `in` (received) or `out` (sent by the office).
    pub direction: &'static str,
    /// When it arrived, or was queued to be sent (RFC 3339, Europe/Rome).
    pub at: String,
    /// Channel (`email`, `pec`, `sms`…).
    pub channel: String,
    /// The case it belongs to.
    pub case: String,
    /// Subject.
    pub subject: String,
    /// The other party: the sender of one received, the recipient of one sent.
    pub party: String,
    /// A sent message's delivery state (`queued`, `sent`, `delivered`, `failed`…); `None`
    /// for one received.
    pub state: Option<String>,
}

/// Where a message goes.
#[derive(Debug, Clone)]
pub enum MoveTarget {
    /// An existing case.
    Case(String),
    /// A new case of this type (default: the type of the case it leaves).
    NewCase(Option<String>),
}

/// What a move did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MovedMessage {
    /// The message.
    pub message: i64,
    /// The case it left.
    pub from: String,
    /// The case it is on now.
    pub to: String,
    /// Its protocol number, unchanged.
    pub protocol: Option<String>,
    /// Attachments that moved with it.
    pub documents: i64,
}

impl Store {
    /// The messages of a case, oldest first.
    pub async fn case_messages(&self, reference: &str) -> Result<Vec<MessageView>> {
        let case = sqlx::query("SELECT id FROM cases WHERE reference = $1")
            .bind(reference)
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("case {reference}")))?;
        let rows = sqlx::query(
            "SELECT id, channel, sender, subject, received_at, recorded_at, protocol, rule, flags, raw_sha256, body_text \
             FROM inbound_messages WHERE case_id = $1 ORDER BY id",
        )
        .bind(get_i64(&case, "id")?)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(MessageView {
                    id: get_i64(row, "id")?,
                    channel: get_str(row, "channel")?,
                    sender: get_str(row, "sender")?,
                    subject: get_str(row, "subject")?,
                    received_at: rome_rfc3339(from_ms(get_i64(row, "received_at")?)?),
                    ingested_at: rome_rfc3339(from_ms(get_i64(row, "recorded_at")?)?),
                    protocol: get_opt_str(row, "protocol")?,
                    rule: get_str(row, "rule")?,
                    flags: serde_json::from_str(&get_str(row, "flags")?).unwrap_or_default(),
                    raw_sha256: get_str(row, "raw_sha256")?,
                    excerpt: get_opt_str(row, "body_text")?
                        .unwrap_or_default()
                        .chars()
                        .take(2000)
                        .collect(),
                })
            })
            .collect()
    }

    /// The newest `limit` messages received from or sent to a citizen, on all their cases,
    /// newest first: one query (both directions, read through the cases' citizen index).
    pub async fn citizen_messages(
        &self,
        citizen_id: i64,
        limit: i64,
    ) -> Result<Vec<CitizenMessage>> {
        let rows = sqlx::query(
            "SELECT * FROM ( \
               SELECT 'in' AS direction, m.received_at AS at, m.id AS seq, m.channel, c.reference, \
                      m.subject, m.sender AS party, NULL AS state \
                 FROM inbound_messages m JOIN cases c ON c.id = m.case_id WHERE c.citizen_id = $1 \
               UNION ALL \
               SELECT 'out' AS direction, o.created_at AS at, o.id AS seq, o.channel, c.reference, \
                      o.subject, o.recipient AS party, o.status AS state \
                 FROM outbound_messages o JOIN cases c ON c.id = o.case_id WHERE c.citizen_id = $1 \
             ) AS both_ways ORDER BY at DESC, seq DESC LIMIT $2",
        )
        .bind(citizen_id)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(CitizenMessage {
                    direction: if get_str(row, "direction")? == "in" {
                        "in"
                    } else {
                        "out"
                    },
                    at: rome_rfc3339(from_ms(get_i64(row, "at")?)?),
                    channel: get_str(row, "channel")?,
                    case: get_str(row, "reference")?,
                    subject: get_str(row, "subject")?,
                    party: get_str(row, "party")?,
                    state: get_opt_str(row, "state")?,
                })
            })
            .collect()
    }

    /// Moves a message (and its attachments) to another case, or splits it off into a new
    /// case, in one transaction. A note saying why is required.
    pub async fn move_message(
        &self,
        message: i64,
        target: MoveTarget,
        note: &str,
        actor: &str,
    ) -> Result<MovedMessage> {
        let note = note.trim();
        if note.is_empty() {
            return Err(StoreError::invalid("note", "say why the message moves"));
        }
        let now = self.clock.now();
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(
            "SELECT m.case_id, m.protocol, m.rule, m.subject, m.channel, m.raw_sha256, m.received_at, c.reference, c.case_type, \
             z.fiscal_code, z.name, z.email, z.pec, z.phone, z.fax \
             FROM inbound_messages m JOIN cases c ON c.id = m.case_id LEFT JOIN citizens z ON z.id = c.citizen_id \
             WHERE m.id = $1",
        )
        .bind(message)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("message {message} on a case")))?;
        let from = get_str(&row, "reference")?;
        let protocol = get_opt_str(&row, "protocol")?;
        let from_id = touch_case(&mut tx, &from, now).await?;
        let (to, to_id) = match target {
            MoveTarget::Case(reference) => {
                if reference == from {
                    return Err(StoreError::invalid(
                        "to",
                        "the message is already on that case",
                    ));
                }
                let id = touch_case(&mut tx, &reference, now)
                    .await
                    .map_err(|e| match e {
                        StoreError::NotFound(what) => {
                            StoreError::invalid("to", format!("{what} does not exist"))
                        }
                        other => other,
                    })?;
                (reference, id)
            }
            MoveTarget::NewCase(case_type) => {
                let subject = get_str(&row, "subject")?;
                let channel: Channel = get_str(&row, "channel")?
                    .parse()
                    .map_err(|_| StoreError::Corrupt("message channel".into()))?;
                let citizen = CitizenInput {
                    fiscal_code: get_opt_str(&row, "fiscal_code")?
                        .and_then(|c| FiscalCode::parse(&c).ok()),
                    name: get_opt_str(&row, "name")?,
                    email: get_opt_str(&row, "email")?,
                    pec: get_opt_str(&row, "pec")?,
                    phone: get_opt_str(&row, "phone")?,
                    fax: get_opt_str(&row, "fax")?,
                };
                let new = NewCase {
                    case_type: case_type.unwrap_or(get_str(&row, "case_type")?),
                    subject: if subject.trim().is_empty() {
                        format!("Messaggio separato da {from}")
                    } else {
                        subject
                    },
                    description: format!("Separata da {from}: {note}"),
                    channel,
                    citizen,
                    fields: serde_json::Map::new(),
                    flags: Vec::new(),
                    actor: actor.to_owned(),
                    document_sha256: Some(get_str(&row, "raw_sha256")?),
                    registered_as: protocol.clone(),
                    terms: None,
                };
                // The request split off was received when its message was delivered.
                let delivered_at = from_ms(get_i64(&row, "received_at")?)?;
                let created = self
                    .insert_cases(&mut tx, vec![new], Some(delivered_at))
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| StoreError::Corrupt("no case created".into()))?;
                (created.reference().to_owned(), created.case_id)
            }
        };
        sqlx::query("UPDATE inbound_messages SET case_id = $1, rule = 'moved' WHERE id = $2")
            .bind(to_id)
            .bind(message)
            .execute(&mut *tx)
            .await?;
        let documents =
            sqlx::query("UPDATE documents SET case_id = $1 WHERE inbound_message_id = $2")
                .bind(to_id)
                .bind(message)
                .execute(&mut *tx)
                .await?
                .rows_affected() as i64;
        let rule_before = get_str(&row, "rule")?;
        let out = serde_json::json!({
            "message": message, "protocol": protocol, "to": to, "note": note,
            "rule_before": rule_before, "documents": documents,
        });
        insert_event(&mut tx, from_id, now, actor, "message_moved_out", &out).await?;
        let into = serde_json::json!({
            "message": message, "protocol": protocol, "from": from, "note": note,
            "rule_before": rule_before, "documents": documents,
        });
        insert_event(&mut tx, to_id, now, actor, "message_moved_in", &into).await?;
        sqlx::query("UPDATE cases SET last_event_at = $1 WHERE id IN ($2, $3)")
            .bind(to_ms(now))
            .bind(from_id)
            .bind(to_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(MovedMessage {
            message,
            from,
            to,
            protocol,
            documents,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::intake::{Inbound, InboundDocument};
    use crate::testing::{fixture_now, with_test_store};

    fn message(key: &str, subject: &str, attachments: usize) -> Inbound {
        Inbound {
            explicit_case: None,
            channel: Channel::Email,
            source: format!("{key}.eml"),
            dedupe_key: format!("email:{key}"),
            message_id: Some(format!("<{key}@example.it>")),
            in_reply_to: Vec::new(),
            received_at: fixture_now(),
            sender: CitizenInput {
                email: Some("anna@example.it".into()),
                name: Some("Anna Neri".into()),
                ..CitizenInput::default()
            },
            sender_label: "Anna Neri <anna@example.it>".into(),
            subject: subject.into(),
            text: "Buongiorno".into(),
            receipt: None,
            flags: Vec::new(),
            default_case_type: "ztl_permit".into(),
            raw_sha256: format!("{:0>64}", key.len()),
            attachments: (0..attachments)
                .map(|i| InboundDocument {
                    sha256: format!("{i:0>64}"),
                    size: 10,
                    filename: format!("../../etc/allegato{i}.pdf"),
                    media_type: "application/pdf".into(),
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn a_message_moves_with_its_attachments_and_keeps_its_protocol() {
        with_test_store(|store, _clock| async move {
            let a = store.ingest(message("a", "Permesso", 0)).await.unwrap();
            let b = store
                .ingest(message("b", "Altro permesso", 2))
                .await
                .unwrap();
            let (a_ref, b_ref) = (a.case.unwrap(), b.case.unwrap());
            let before = store.get_case(&b_ref).await.unwrap();
            assert_eq!(
                before.documents.len(),
                2,
                "attachments recorded with the message"
            );
            assert!(
                before.documents.iter().all(|d| !d.filename.contains('/')),
                "names are never paths"
            );
            let id = store.case_messages(&b_ref).await.unwrap()[0].id;

            let moved = store
                .move_message(id, MoveTarget::Case(a_ref.clone()), "stessa pratica", "op1")
                .await
                .unwrap();
            assert_eq!(
                (moved.from.as_str(), moved.to.as_str()),
                (b_ref.as_str(), a_ref.as_str())
            );
            assert_eq!(moved.protocol, b.protocol);
            assert_eq!(moved.documents, 2);
            let on_a = store.case_messages(&a_ref).await.unwrap();
            assert_eq!(on_a.len(), 2);
            assert_eq!(on_a[1].rule, "moved");
            assert_eq!(on_a[1].protocol, b.protocol, "the register entry is kept");
            assert_eq!(store.get_case(&a_ref).await.unwrap().documents.len(), 2);
            let left = store.get_case(&b_ref).await.unwrap();
            assert!(left.documents.is_empty());
            assert!(left.timeline.iter().any(|e| e.kind == "message_moved_out"
                && e.actor == "op1"
                && e.detail["note"] == "stessa pratica"));
            assert!(store.verify_register().await.unwrap().is_ok());
        })
        .await;
    }

    #[tokio::test]
    async fn a_message_split_off_opens_a_case_under_its_own_protocol_entry() {
        with_test_store(|store, _clock| async move {
            let first = store
                .ingest(message("x", "Due richieste", 1))
                .await
                .unwrap();
            let from = first.case.unwrap();
            let id = store.case_messages(&from).await.unwrap()[0].id;
            let entries_before = store.verify_register().await.unwrap().unwrap();
            let moved = store
                .move_message(
                    id,
                    MoveTarget::NewCase(Some("cude".into())),
                    "seconda richiesta",
                    "op1",
                )
                .await
                .unwrap();
            assert_ne!(moved.to, from);
            let new = store.get_case(&moved.to).await.unwrap();
            assert_eq!(new.summary.case_type, "cude");
            assert_eq!(
                new.summary.protocol, first.protocol,
                "no second registration"
            );
            assert_eq!(new.citizen.email.as_deref(), Some("anna@example.it"));
            assert_eq!(new.documents.len(), 1);
            assert_eq!(
                store.verify_register().await.unwrap().unwrap(),
                entries_before
            );
        })
        .await;
    }

    /// The case split off holds a request that arrived with its message: its legal term
    /// runs from the message's delivery, not from the day staff split it.
    #[tokio::test]
    async fn a_case_split_off_is_received_when_its_message_was() {
        with_test_store(|store, clock| async move {
            let delivered = fixture_now();
            clock.set(delivered + chrono::Duration::days(11));
            let mut two = message("two", "Due richieste", 0);
            two.received_at = delivered;
            let from = store.ingest(two).await.unwrap().case.unwrap();
            let id = store.case_messages(&from).await.unwrap()[0].id;
            clock.advance(chrono::Duration::days(2));
            let moved = store
                .move_message(id, MoveTarget::NewCase(None), "seconda richiesta", "op1")
                .await
                .unwrap();
            let split = store.get_case(&moved.to).await.unwrap();
            assert_eq!(split.summary.received_at, rome_rfc3339(delivered));
            assert_eq!(
                split.summary.due_at,
                store.get_case(&from).await.unwrap().summary.due_at
            );
            assert_eq!(
                split.ingested_at,
                rome_rfc3339(delivered + chrono::Duration::days(13))
            );
        })
        .await;
    }

    #[tokio::test]
    async fn bad_moves_are_refused_and_change_nothing() {
        with_test_store(|store, _clock| async move {
            let a = store
                .ingest(message("a", "Permesso", 1))
                .await
                .unwrap()
                .case
                .unwrap();
            let id = store.case_messages(&a).await.unwrap()[0].id;
            let refused = [
                store
                    .move_message(id, MoveTarget::Case(a.clone()), "x", "op1")
                    .await,
                store
                    .move_message(id, MoveTarget::Case("ZTL-2026-999999".into()), "x", "op1")
                    .await,
                store
                    .move_message(id, MoveTarget::Case(a.clone()), "  ", "op1")
                    .await,
                store
                    .move_message(id, MoveTarget::NewCase(Some("nope".into())), "x", "op1")
                    .await,
            ];
            for r in refused {
                assert!(matches!(r, Err(StoreError::Invalid { .. })), "{r:?}");
            }
            assert!(matches!(
                store
                    .move_message(999_999, MoveTarget::NewCase(None), "x", "op1")
                    .await,
                Err(StoreError::NotFound(_))
            ));
            assert_eq!(store.case_messages(&a).await.unwrap().len(), 1);
            assert_eq!(store.get_case(&a).await.unwrap().documents.len(), 1);
        })
        .await;
    }

    #[tokio::test]
    async fn a_citizens_messages_both_ways_and_call_backs_are_found_from_their_record() {
        with_test_store(|store, clock| async move {
            let first = store.ingest(message("c1", "Permesso", 0)).await.unwrap();
            let reference = first.case.unwrap();
            clock.advance(chrono::Duration::minutes(5));
            let out = crate::outbound::NewOutbound {
                recipient: "anna@example.it".into(),
                subject: "Risposta".into(),
                ..crate::outbound::tests::email("k-c1", "m-c1@example.it")
            };
            store.queue_message(&reference, &out, "op1").await.unwrap();
            store
                .open_call_task(
                    &reference,
                    "operator",
                    Some("3331234567"),
                    "Richiamare",
                    "op1",
                )
                .await
                .unwrap();
            // Someone else's message stays off Anna's record.
            let mut theirs = message("c2", "Altro", 0);
            theirs.sender.email = Some("bruno@example.it".into());
            theirs.sender.name = Some("Bruno Gialli".into());
            let theirs = store.ingest(theirs).await.unwrap().case.unwrap();
            let anna = store.citizen_id_of_case(&reference).await.unwrap().unwrap();
            assert_ne!(store.citizen_id_of_case(&theirs).await.unwrap(), Some(anna));

            let messages = store.citizen_messages(anna, 50).await.unwrap();
            let seen: Vec<(&str, &str, Option<&str>)> = messages
                .iter()
                .map(|m| (m.direction, m.subject.as_str(), m.state.as_deref()))
                .collect();
            assert_eq!(
                seen,
                vec![
                    ("out", "Risposta", Some("queued")),
                    ("in", "Permesso", None)
                ],
                "newest first, both directions, nobody else's"
            );
            assert!(messages.iter().all(|m| m.case == reference));
            assert_eq!(store.citizen_messages(anna, 1).await.unwrap().len(), 1);

            let calls = store.call_tasks_of_citizen(anna).await.unwrap();
            assert_eq!(calls.len(), 1);
            assert_eq!(
                (calls[0].case.as_str(), calls[0].status.as_str()),
                (reference.as_str(), "open")
            );

            let by_name = store.find_citizens("neri", 10).await.unwrap();
            assert_eq!(
                by_name.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
                vec![anna]
            );
            let by_mail = store.find_citizens("ANNA@example.it", 10).await.unwrap();
            assert_eq!(by_mail.len(), 1);
            assert!(
                store.find_citizens("%", 10).await.unwrap().is_empty(),
                "too short"
            );
            assert!(
                store.find_citizens("n_r", 10).await.unwrap().is_empty(),
                "LIKE's own characters are taken literally"
            );
        })
        .await;
    }
}
