//! The intake pipeline of CONTRACT §7.1, shared by every channel: deduplicate, recognise
//! receipts, thread by case reference and then by `In-Reply-To`/`References`, otherwise
//! open a new case; register the message in the protocol; journal it; resume a clock that
//! waits for the citizen. Channel adapters (e-mail, PEC, fax, messaging) only turn what
//! they receive into an [`Inbound`] and store the raw bytes first.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sportello_domain::case::{Channel, Reference, Status, flags};
use sportello_domain::register::Direction;
use sportello_domain::workflow::Action;
use utoipa::ToSchema;

use crate::cases::NewCase;
use crate::citizens::CitizenInput;
use crate::journal::{insert_event, touch_case};
use crate::register::{Registration, register_many_in};
use crate::{Result, Store, StoreError, get_i64, get_str, to_ms};

/// A delivery receipt (PEC `X-Ricevuta`, WhatsApp `statuses`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptInfo {
    /// Kind of receipt (`accettazione`, `delivered`…).
    pub kind: String,
    /// The id of the sent message it is about, when known.
    pub refers_to: Option<String>,
    /// The provider's error, for a receipt saying the message was not delivered.
    pub error: Option<String>,
}

/// One inbound message, normalised by its channel adapter.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// Channel it came through.
    pub channel: Channel,
    /// Where it came from, for the JSON outcome (file name, webhook id…).
    pub source: String,
    /// Key of the message for deduplication (`email:<msgid>`, `whatsapp:<wamid>`, `sha256:<raw>`…).
    pub dedupe_key: String,
    /// Its own id, for threading replies to it.
    pub message_id: Option<String>,
    /// Ids it answers (`In-Reply-To`, `References`).
    pub in_reply_to: Vec<String>,
    /// When it was delivered to the office, as far as someone we trust says: a PEC's
    /// certified time (`daticert.xml`), the arrival on our IMAP server (`INTERNALDATE`), a
    /// fax gateway's reception time, a messaging platform's timestamp; otherwise when it
    /// reached Sportello (see `sportello_intake::email::parse_email`). A new case is
    /// received at this instant and its legal term runs from it; an instant after the
    /// clock is taken as now. The protocol entry and the journal keep the registration
    /// time, and the message's `recorded_at` when Sportello took it in.
    pub received_at: DateTime<Utc>,
    /// Who sent it, as far as the channel tells.
    pub sender: CitizenInput,
    /// The sender for the register (name, address or number).
    pub sender_label: String,
    /// Subject (or the first words of a chat message).
    pub subject: String,
    /// Plain text (or text read by OCR).
    pub text: String,
    /// Set for delivery receipts.
    pub receipt: Option<ReceiptInfo>,
    /// Flags the adapter already knows (e.g. `pec_signature_invalid`).
    pub flags: Vec<String>,
    /// Case type of a new case from this source.
    pub default_case_type: String,
    /// SHA-256 of the raw bytes, already stored as a document.
    pub raw_sha256: String,
    /// The case this message is addressed to beyond doubt (the QR code of a scanned cover
    /// sheet): it wins over every other rule, and the link says `cover_sheet`. A reference
    /// to no case flags `unknown_reference` and the other rules go on.
    pub explicit_case: Option<String>,
    /// Attachments already in the document store, recorded on the case in the message's
    /// own transaction (so a crash never leaves a message without its attachments).
    pub attachments: Vec<InboundDocument>,
}

impl Inbound {
    /// Removes what a database cannot hold in text (NUL characters: PostgreSQL refuses
    /// them), so that one hostile message can never fail its own transaction over and
    /// over and block its mailbox. The raw bytes stay untouched in the document store.
    fn make_storable(&mut self) {
        fn clean(s: &mut String) {
            if s.contains('\0') {
                s.retain(|c| c != '\0');
            }
        }
        fn clean_opt(s: &mut Option<String>) {
            if let Some(v) = s {
                clean(v);
            }
        }
        for s in [
            &mut self.source,
            &mut self.dedupe_key,
            &mut self.sender_label,
            &mut self.subject,
            &mut self.text,
            &mut self.default_case_type,
        ] {
            clean(s);
        }
        for s in [
            &mut self.message_id,
            &mut self.sender.name,
            &mut self.sender.email,
            &mut self.sender.pec,
            &mut self.sender.phone,
            &mut self.sender.fax,
        ] {
            clean_opt(s);
        }
        self.in_reply_to.iter_mut().for_each(clean);
        self.flags.iter_mut().for_each(clean);
        if let Some(r) = &mut self.receipt {
            clean(&mut r.kind);
            clean_opt(&mut r.refers_to);
        }
        for d in &mut self.attachments {
            clean(&mut d.filename);
            clean(&mut d.media_type);
        }
    }
}

/// An attachment of an inbound message, its bytes already stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundDocument {
    /// Content address in the document store.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Name as the sender gave it (only ever displayed).
    pub filename: String,
    /// Media type sniffed from the content.
    pub media_type: String,
}

/// What intake did with a message (CONTRACT §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct IntakeOutcome {
    /// File name or webhook id.
    pub source: String,
    /// Channel.
    pub channel: String,
    /// `new_case`, `attached`, `receipt` or `duplicate`.
    pub outcome: String,
    /// The case it went to.
    pub case: Option<String>,
    /// Protocol number (new_case and attached only).
    pub protocol: Option<String>,
    /// Flags of the message.
    pub flags: Vec<String>,
    /// Which rule decided (`duplicate`, `receipt`, `reference_in_subject`, `reference_in_text`,
    /// `permit_reference` (a permit number quoted by its holder), `in_reply_to`,
    /// `protocol_number` (the police answering a request by its number), `new`,
    /// `permit_reference_unverified` (a new case: a permit number quoted by someone else)).
    pub rule: String,
}

struct Target {
    case_id: i64,
    reference: String,
    status: Status,
    rule: &'static str,
}

/// The case named by `reference`, as the target of a message linked by `rule`; `None`
/// when no such case exists.
async fn case_target(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    reference: &str,
    rule: &'static str,
) -> Result<Option<Target>> {
    let row = sqlx::query("SELECT id, status FROM cases WHERE reference = $1")
        .bind(reference)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let status = get_str(&row, "status")?;
    Ok(Some(Target {
        case_id: get_i64(&row, "id")?,
        reference: reference.to_owned(),
        status: status
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("status {status:?}")))?,
        rule,
    }))
}

impl Store {
    /// Runs the pipeline for one message, in one transaction: a crash leaves either the
    /// whole effect or none, and a message seen again is a `duplicate` (also when two
    /// processes take the same message at once).
    pub async fn ingest(&self, mut msg: Inbound) -> Result<IntakeOutcome> {
        msg.make_storable();
        let (source, channel) = (msg.source.clone(), msg.channel.as_str().to_owned());
        match self.ingest_once(msg).await {
            Err(e) if is_duplicate(&e) => Ok(IntakeOutcome {
                source,
                channel,
                outcome: "duplicate".into(),
                case: None,
                protocol: None,
                flags: Vec::new(),
                rule: "duplicate".into(),
            }),
            other => other,
        }
    }

    async fn ingest_once(&self, mut msg: Inbound) -> Result<IntakeOutcome> {
        let now = self.clock.now();
        msg.received_at = reception_instant(msg.received_at, now);
        let mut flags: Vec<String> = Vec::new();
        for f in &msg.flags {
            if !flags.contains(f) {
                flags.push(f.clone());
            }
        }
        let outcome = |outcome: &str,
                       case: Option<String>,
                       protocol: Option<String>,
                       flags: Vec<String>,
                       rule: &str| {
            IntakeOutcome {
                source: msg.source.clone(),
                channel: msg.channel.as_str().to_owned(),
                outcome: outcome.to_owned(),
                case,
                protocol,
                flags,
                rule: rule.to_owned(),
            }
        };
        let mut tx = self.write.begin().await?;
        let seen = sqlx::query("SELECT id FROM inbound_messages WHERE dedupe_key = $1")
            .bind(&msg.dedupe_key)
            .fetch_optional(&mut *tx)
            .await?;
        if seen.is_some() {
            return Ok(outcome("duplicate", None, None, flags, "duplicate"));
        }

        if let Some(receipt) = &msg.receipt {
            // The receipt moves the sent message it names along (accepted, delivered,
            // failed), in the same transaction; one that names no message of ours is kept
            // and flagged.
            let matched = match &receipt.refers_to {
                Some(id) => {
                    crate::outbound::receipt_in(
                        &mut tx,
                        id,
                        crate::outbound::DeliveryStep::from_receipt(&receipt.kind),
                        receipt.error.as_deref(),
                        msg.received_at,
                        now,
                    )
                    .await?
                }
                None => None,
            };
            if matched.is_none() && !flags.iter().any(|f| f == "unmatched_receipt") {
                flags.push("unmatched_receipt".into());
            }
            self.record_message(&mut tx, &msg, "receipt", "receipt", None, None, &flags, now)
                .await?;
            tx.commit().await?;
            tracing::info!(kind = %receipt.kind, refers_to = ?receipt.refers_to, "receipt recorded");
            return Ok(outcome("receipt", None, None, flags, "receipt"));
        }

        let target = self.find_target(&mut tx, &msg, &mut flags).await?;
        let (case_ref, protocol, rule, resume) = match target {
            Some(target) => {
                let numbers = register_many_in(
                    &mut tx,
                    now,
                    &[Registration {
                        direction: Direction::In,
                        correspondent: &msg.sender_label,
                        subject: &msg.subject,
                        document_sha256: &msg.raw_sha256,
                        case_reference: Some(&target.reference),
                    }],
                )
                .await?;
                let protocol = numbers.first().map(ToString::to_string);
                if target.status == Status::Closed
                    && !flags.iter().any(|f| f == flags::NEEDS_ATTENTION)
                {
                    flags.push(flags::NEEDS_ATTENTION.to_owned());
                }
                let detail = serde_json::json!({
                    "channel": msg.channel.as_str(),
                    "protocol": protocol,
                    "rule": target.rule,
                    "subject": msg.subject,
                    "sender": msg.sender_label,
                    "text": msg.text.chars().take(2000).collect::<String>(),
                    "flags": flags,
                    "raw_sha256": msg.raw_sha256,
                });
                insert_event(
                    &mut tx,
                    target.case_id,
                    now,
                    "system",
                    "message_received",
                    &detail,
                )
                .await?;
                crate::outbound::journal_police_answer(
                    &mut tx,
                    &self.settings.police_addresses,
                    &msg.sender,
                    target.case_id,
                    target.rule,
                    protocol.as_deref(),
                    &msg.subject,
                    now,
                )
                .await?;
                let row = sqlx::query("UPDATE cases SET last_event_at = $1, version = version + 1 WHERE id = $2 RETURNING flags")
                    .bind(to_ms(now))
                    .bind(target.case_id)
                    .fetch_one(&mut *tx)
                    .await?;
                if target.status == Status::Closed {
                    let mut case_flags: Vec<String> =
                        serde_json::from_str(&get_str(&row, "flags")?).unwrap_or_default();
                    if !case_flags.iter().any(|f| f == flags::NEEDS_ATTENTION) {
                        case_flags.push(flags::NEEDS_ATTENTION.to_owned());
                        sqlx::query("UPDATE cases SET flags = $1 WHERE id = $2")
                            .bind(
                                serde_json::to_string(&case_flags).unwrap_or_else(|_| "[]".into()),
                            )
                            .bind(target.case_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                let message = self
                    .record_message(
                        &mut tx,
                        &msg,
                        "attached",
                        target.rule,
                        Some(target.case_id),
                        protocol.as_deref(),
                        &flags,
                        now,
                    )
                    .await?;
                self.attach_documents(&mut tx, target.case_id, message, &msg.attachments, now)
                    .await?;
                let resume = match target.status {
                    Status::WaitingCitizen => Some(Action::IntegrationReceived),
                    Status::RejectionNotice => Some(Action::ObservationsReceived),
                    _ => None,
                };
                (target.reference, protocol, target.rule, resume)
            }
            None => {
                // A quoted permit number whose holder did not send it says so in the rule.
                let rule = if flags
                    .iter()
                    .any(|f| f == flags::PERMIT_REFERENCE_UNVERIFIED)
                {
                    "permit_reference_unverified"
                } else {
                    "new"
                };
                let subject = if msg.subject.trim().is_empty() {
                    format!("Messaggio {} senza oggetto", msg.channel.as_str())
                } else {
                    msg.subject.chars().take(300).collect()
                };
                let new = NewCase {
                    case_type: msg.default_case_type.clone(),
                    subject,
                    description: msg.text.chars().take(20_000).collect(),
                    channel: msg.channel,
                    citizen: msg.sender.clone(),
                    fields: serde_json::Map::new(),
                    flags: flags.clone(),
                    actor: "system".into(),
                    document_sha256: Some(msg.raw_sha256.clone()),
                    registered_as: None,
                    terms: None,
                };
                let created = self
                    .insert_cases(&mut tx, vec![new], Some(msg.received_at))
                    .await?;
                let created = created
                    .into_iter()
                    .next()
                    .ok_or_else(|| StoreError::Corrupt("no case created".into()))?;
                let protocol = created.protocol().map(str::to_owned);
                let message = self
                    .record_message(
                        &mut tx,
                        &msg,
                        "new_case",
                        rule,
                        Some(created.case_id),
                        protocol.as_deref(),
                        &flags,
                        now,
                    )
                    .await?;
                self.attach_documents(&mut tx, created.case_id, message, &msg.attachments, now)
                    .await?;
                (created.reference().to_owned(), protocol, rule, None)
            }
        };
        tx.commit().await?;
        let kind = if matches!(rule, "new" | "permit_reference_unverified") {
            "new_case"
        } else {
            "attached"
        };
        if let Some(action) = resume {
            // The citizen answered: the suspension ends (CONTRACT §7.2).
            if let Err(e) = self
                .apply_action(&case_ref, &action, Some("risposta del cittadino"), "system")
                .await
            {
                tracing::warn!(case = %case_ref, error = %e, "could not resume the clock");
            }
        }
        Ok(outcome(kind, Some(case_ref), protocol, flags, rule))
    }

    /// The case a message belongs to: a reference in the subject, else in the text (a
    /// reference to no case flags `unknown_reference` and the search goes on), else a
    /// permit number its holder quotes (the permit's case), else a message it answers.
    ///
    /// A permit number is never read as a case reference: a token that is both (a former
    /// permit number in the old `CUD-2026-000001` shape, or an imported one) is the case's
    /// only when the case's citizen sent it, the permit's when its holder did; anyone else
    /// quoting a permit number gets a case of their own, flagged
    /// `permit_reference_unverified` and `needs_attention` (unless the message answers one
    /// of theirs).
    async fn find_target(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        msg: &Inbound,
        flags: &mut Vec<String>,
    ) -> Result<Option<Target>> {
        if let Some(reference) = &msg.explicit_case {
            match case_target(tx, reference, "cover_sheet").await? {
                Some(target) => return Ok(Some(target)),
                None => {
                    if !flags.iter().any(|f| f == flags::UNKNOWN_REFERENCE) {
                        flags.push(flags::UNKNOWN_REFERENCE.to_owned());
                    }
                }
            }
        }
        let mut candidates = sportello_domain::ztl::numbers::candidate_numbers(&msg.subject);
        for c in sportello_domain::ztl::numbers::candidate_numbers(&msg.text) {
            if candidates.len() >= sportello_domain::ztl::numbers::MAX_CANDIDATES {
                break;
            }
            if !candidates.contains(&c) {
                candidates.push(c);
            }
        }
        let permits = crate::permits::quoted_permits(tx, &candidates).await?;
        let sender = SenderIdentity::of(&msg.sender);
        for (text, rule) in [
            (&msg.subject, "reference_in_subject"),
            (&msg.text, "reference_in_text"),
        ] {
            for reference in Reference::find_all(text) {
                let reference = reference.to_string();
                if permits.iter().any(|p| p.quoted == reference) {
                    // Also a permit number: the case's only if its own citizen wrote.
                    if let Some(target) = case_target(tx, &reference, rule).await?
                        && sender.is_citizen_of_case(tx, target.case_id).await?
                    {
                        return Ok(Some(target));
                    }
                    continue;
                }
                match case_target(tx, &reference, rule).await? {
                    Some(target) => return Ok(Some(target)),
                    None => {
                        if !flags.iter().any(|f| f == flags::UNKNOWN_REFERENCE) {
                            flags.push(flags::UNKNOWN_REFERENCE.to_owned());
                        }
                    }
                }
            }
        }
        for permit in &permits {
            if sender.is_holder(tx, &permit.holder_fiscal_code).await? {
                if let Some(reference) = &permit.case_reference
                    && let Some(target) = case_target(tx, reference, "permit_reference").await?
                {
                    return Ok(Some(target));
                }
            } else {
                // Why, and the office's queue of messages to check.
                for flag in [flags::PERMIT_REFERENCE_UNVERIFIED, flags::NEEDS_ATTENTION] {
                    if !flags.iter().any(|f| f == flag) {
                        flags.push(flag.to_owned());
                    }
                }
            }
        }
        for id in &msg.in_reply_to {
            // A reply to a citizen's message of a case, or to one the office sent.
            let row = sqlx::query(
                "SELECT c.id, c.reference, c.status FROM inbound_messages m JOIN cases c ON c.id = m.case_id \
                 WHERE m.message_id = $1 ORDER BY m.id DESC LIMIT 1",
            )
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
            let row = match row {
                Some(row) => Some(row),
                None => {
                    sqlx::query(
                        "SELECT c.id, c.reference, c.status FROM outbound_messages o JOIN cases c ON c.id = o.case_id \
                         WHERE o.message_id = $1 OR o.provider_ref = $1 ORDER BY o.id DESC LIMIT 1",
                    )
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await?
                }
            };
            if let Some(row) = row {
                let status = get_str(&row, "status")?;
                return Ok(Some(Target {
                    case_id: get_i64(&row, "id")?,
                    reference: get_str(&row, "reference")?,
                    status: status
                        .parse()
                        .map_err(|_| StoreError::Corrupt(format!("status {status:?}")))?,
                    rule: "in_reply_to",
                }));
            }
        }
        // The police's answer quoting the protocol number of what the office sent them.
        let police = &self.settings.police_addresses;
        let quoted = [msg.subject.as_str(), msg.text.as_str()];
        match crate::outbound::police_answer_case(tx, police, &msg.sender, quoted).await? {
            Some(reference) => case_target(tx, &reference, crate::outbound::PROTOCOL_RULE).await,
            None => Ok(None),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_message(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        msg: &Inbound,
        outcome: &str,
        rule: &str,
        case_id: Option<i64>,
        protocol: Option<&str>,
        flags: &[String],
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO inbound_messages (dedupe_key, channel, source, message_id, raw_sha256, outcome, rule, case_id, \
             protocol, flags, sender, subject, received_at, recorded_at, body_text) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
        )
        .bind(&msg.dedupe_key)
        .bind(msg.channel.as_str())
        .bind(&msg.source)
        .bind(msg.message_id.clone())
        .bind(&msg.raw_sha256)
        .bind(outcome)
        .bind(rule)
        .bind(case_id)
        .bind(protocol.map(str::to_owned))
        .bind(serde_json::to_string(flags).unwrap_or_else(|_| "[]".into()))
        .bind(&msg.sender_label)
        .bind(&msg.subject)
        .bind(to_ms(msg.received_at))
        .bind(to_ms(now))
        .bind(msg.text.chars().take(100_000).collect::<String>())
        .fetch_one(&mut **tx)
        .await?;
        let id = get_i64(&row, "id")?;
        if outcome == "attached" {
            let text = format!("{}\n{}\n{}", msg.subject, msg.sender_label, msg.text);
            crate::search::upsert_entry(tx, crate::search::EntryOf::Message(id), &text).await?;
        }
        Ok(id)
    }

    /// Records the message's attachments on its case, each journaled.
    async fn attach_documents(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        case_id: i64,
        message: i64,
        documents: &[InboundDocument],
        now: DateTime<Utc>,
    ) -> Result<()> {
        for doc in documents {
            let (id, filename) = crate::documents::insert_document(
                tx,
                case_id,
                (&doc.sha256, doc.size, &doc.filename, &doc.media_type),
                now,
                "system",
                Some(message),
            )
            .await?;
            let detail = serde_json::json!({ "document_id": id, "filename": filename, "sha256": doc.sha256, "size": doc.size, "message": message });
            insert_event(tx, case_id, now, "system", "document_added", &detail).await?;
        }
        Ok(())
    }

    /// Records a telephone call on a case's timeline (PBX events, CONTRACT §5).
    pub async fn record_call(
        &self,
        reference: &str,
        actor: &str,
        detail: &serde_json::Value,
    ) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.write.begin().await?;
        let case_id = touch_case(&mut tx, reference, now).await?;
        insert_event(&mut tx, case_id, now, actor, "call", detail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The citizen known by a telephone number and their open cases, newest first (CTI screen pop).
    pub async fn lookup_caller(
        &self,
        number: &str,
    ) -> Result<Option<(crate::citizens::CitizenView, Vec<String>)>> {
        let Some(key) = crate::citizens::phone_key(number) else {
            return Ok(None);
        };
        let Some(row) = sqlx::query(
            "SELECT id, fiscal_code, name, email, pec, phone, fax FROM citizens WHERE phone_key = $1 ORDER BY updated_at DESC LIMIT 1",
        )
        .bind(key)
        .fetch_optional(&self.read)
        .await?
        else {
            return Ok(None);
        };
        let id = get_i64(&row, "id")?;
        let cases = sqlx::query("SELECT reference FROM cases WHERE citizen_id = $1 AND status <> 'closed' ORDER BY received_at DESC LIMIT 50")
            .bind(id)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| get_str(r, "reference"))
            .collect::<Result<Vec<_>>>()?;
        let citizen = crate::citizens::CitizenView {
            fiscal_code: crate::get_opt_str(&row, "fiscal_code")?,
            name: crate::get_opt_str(&row, "name")?,
            email: crate::get_opt_str(&row, "email")?,
            pec: crate::get_opt_str(&row, "pec")?,
            phone: crate::get_opt_str(&row, "phone")?,
            fax: crate::get_opt_str(&row, "fax")?,
        };
        Ok(Some((citizen, cases)))
    }
}

/// Who sent a message, as far as matching a citizen goes: the fiscal code the channel
/// gives, and the e-mail and PEC addresses (lower case, as citizens are stored).
struct SenderIdentity {
    fiscal_code: Option<String>,
    addresses: Vec<String>,
}

impl SenderIdentity {
    fn of(sender: &CitizenInput) -> SenderIdentity {
        let addresses = [&sender.email, &sender.pec]
            .into_iter()
            .flatten()
            .map(|a| a.trim().to_lowercase())
            .filter(|a| !a.is_empty())
            .collect();
        SenderIdentity {
            fiscal_code: sender.fiscal_code.as_ref().map(|f| f.as_str().to_owned()),
            addresses,
        }
    }

    /// Whether the holder of a permit (by fiscal code) sent it: the same fiscal code, or
    /// an e-mail or PEC address known for the holder (their citizen record, which their
    /// cases share).
    async fn is_holder(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        holder_fiscal_code: &str,
    ) -> Result<bool> {
        if self
            .fiscal_code
            .as_deref()
            .is_some_and(|f| f.eq_ignore_ascii_case(holder_fiscal_code))
        {
            return Ok(true);
        }
        for address in &self.addresses {
            let known = sqlx::query(
                "SELECT 1 AS known FROM citizens WHERE fiscal_code = $1 AND (email = $2 OR pec = $2)",
            )
            .bind(holder_fiscal_code.to_ascii_uppercase())
            .bind(address)
            .fetch_optional(&mut **tx)
            .await?;
            if known.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether the citizen of a case sent it: the same fiscal code, e-mail or PEC address.
    async fn is_citizen_of_case(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        case_id: i64,
    ) -> Result<bool> {
        let row = sqlx::query(
            "SELECT z.fiscal_code, z.email, z.pec FROM cases c JOIN citizens z ON z.id = c.citizen_id WHERE c.id = $1",
        )
        .bind(case_id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else { return Ok(false) };
        let same = |known: Option<String>, given: &str| {
            known.is_some_and(|k| k.trim().eq_ignore_ascii_case(given))
        };
        if let Some(code) = &self.fiscal_code
            && same(crate::get_opt_str(&row, "fiscal_code")?, code)
        {
            return Ok(true);
        }
        for address in &self.addresses {
            if same(crate::get_opt_str(&row, "email")?, address)
                || same(crate::get_opt_str(&row, "pec")?, address)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The instant a message counts as received: the one its channel gives, unless that lies
/// after the clock (a sender's or a gateway's clock set wrong, a forged date), when it is
/// the clock's — a case must never be received in the future, nor its term start there.
fn reception_instant(claimed: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    claimed.min(now)
}

/// A unique-key clash on `inbound_messages.dedupe_key`: someone recorded it first.
fn is_duplicate(e: &StoreError) -> bool {
    matches!(e, StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::with_test_store;

    fn message(key: &str, subject: &str, text: &str) -> Inbound {
        Inbound {
            explicit_case: None,
            channel: Channel::Email,
            source: format!("{key}.eml"),
            dedupe_key: format!("email:{key}"),
            message_id: Some(format!("<{key}@example.it>")),
            in_reply_to: Vec::new(),
            received_at: crate::testing::fixture_now(),
            sender: CitizenInput {
                email: Some("anna@example.it".into()),
                name: Some("Anna Neri".into()),
                ..CitizenInput::default()
            },
            sender_label: "Anna Neri <anna@example.it>".into(),
            subject: subject.into(),
            text: text.into(),
            receipt: None,
            flags: Vec::new(),
            default_case_type: "ztl_permit".into(),
            raw_sha256: "ab".repeat(32),
            attachments: Vec::new(),
        }
    }

    #[tokio::test]
    async fn nul_characters_never_fail_a_message() {
        with_test_store(|store, _clock| async move {
            let mut m = message("nul\0id", "Richiesta\0 permesso", "testo\0con NUL");
            m.sender.name = Some("Anna\0 Neri".into());
            m.sender_label = "Anna\0".into();
            m.in_reply_to = vec!["x\0@y".into()];
            let out = store.ingest(m.clone()).await.unwrap();
            assert_eq!(out.outcome, "new_case");
            let case = store.get_case(out.case.as_deref().unwrap()).await.unwrap();
            assert_eq!(case.summary.subject, "Richiesta permesso");
            assert_eq!(case.citizen.name.as_deref(), Some("Anna Neri"));
            assert_eq!(store.ingest(m).await.unwrap().outcome, "duplicate");
        })
        .await;
    }

    #[tokio::test]
    async fn the_pipeline_threads_deduplicates_and_registers() {
        with_test_store(|store, _clock| async move {
            let first = store
                .ingest(message("m1", "Richiesta permesso", "Buongiorno"))
                .await
                .unwrap();
            assert_eq!(
                (
                    first.outcome.as_str(),
                    first.case.as_deref(),
                    first.rule.as_str()
                ),
                ("new_case", Some("ZTL-2026-000001"), "new")
            );
            assert_eq!(first.protocol.as_deref(), Some("2026/0000001"));
            let again = store
                .ingest(message("m1", "Richiesta permesso", "Buongiorno"))
                .await
                .unwrap();
            assert_eq!(
                (again.outcome.as_str(), again.protocol.as_deref()),
                ("duplicate", None)
            );

            let by_subject = store
                .ingest(message("m2", "Re: [ZTL-2026-000001] documenti", "allego"))
                .await
                .unwrap();
            assert_eq!(
                (by_subject.outcome.as_str(), by_subject.rule.as_str()),
                ("attached", "reference_in_subject")
            );
            assert_eq!(by_subject.protocol.as_deref(), Some("2026/0000002"));

            let mut reply = message("m3", "Re: Richiesta permesso", "grazie");
            reply.in_reply_to = vec!["<m1@example.it>".into()];
            let by_thread = store.ingest(reply).await.unwrap();
            assert_eq!(
                (by_thread.case.as_deref(), by_thread.rule.as_str()),
                (Some("ZTL-2026-000001"), "in_reply_to")
            );

            let unknown = store
                .ingest(message("m4", "Sollecito ZTL-2026-000777", ""))
                .await
                .unwrap();
            assert_eq!(unknown.outcome, "new_case");
            assert!(unknown.flags.contains(&"unknown_reference".to_string()));

            let mut receipt = message("r1", "ACCETTAZIONE", "");
            receipt.receipt = Some(ReceiptInfo {
                error: None,
                kind: "accettazione".into(),
                refers_to: Some("<out-1@comune>".into()),
            });
            let receipt = store.ingest(receipt).await.unwrap();
            assert_eq!(
                (
                    receipt.outcome.as_str(),
                    receipt.case.as_deref(),
                    receipt.protocol.as_deref()
                ),
                ("receipt", None, None)
            );
            assert!(receipt.flags.contains(&"unmatched_receipt".to_string()));

            // A message for a closed case is attached and flagged for attention.
            for action in [Action::StartReview, Action::Withdraw] {
                store
                    .apply_action("ZTL-2026-000002", &action, Some("ritirata"), "op")
                    .await
                    .unwrap();
            }
            let late = store
                .ingest(message("m5", "ZTL-2026-000002 ancora", ""))
                .await
                .unwrap();
            assert_eq!(late.outcome, "attached");
            assert!(late.flags.contains(&"needs_attention".to_string()));
            let case = store.get_case("ZTL-2026-000002").await.unwrap();
            assert!(case.summary.flags.contains(&"needs_attention".to_string()));
            assert_eq!(
                case.timeline.last().map(|e| e.kind.as_str()),
                Some("message_received")
            );

            // New cases and attachments are registered; receipts and duplicates are not.
            assert_eq!(store.verify_register().await.unwrap(), Ok(5));
        })
        .await;
    }

    /// Citizen A's CUDE case and citizen B's CUDE permit once had the same text
    /// (`CUD-2026-000001`): a stranger's e-mail quoting B's permit went into A's case.
    #[tokio::test]
    async fn a_permit_number_is_never_taken_for_a_case_reference() {
        use sportello_domain::fiscal_code::FiscalCode;
        with_test_store(|store, _clock| async move {
            let citizen = |code: &str, email: &str| CitizenInput {
                fiscal_code: Some(FiscalCode::parse(code).unwrap()),
                email: Some(email.into()),
                ..CitizenInput::default()
            };
            let (a_code, b_code) = ("RSSMRA85T10A562S", "RSSMRA80A01H501U");
            let mut a = crate::cases::tests::request("cude");
            a.citizen = citizen(a_code, "anna@example.it");
            let a = store.create_case(a).await.unwrap().summary.reference;
            assert_eq!(a, "CUD-2026-000001");
            let mut b = crate::cases::tests::request("cude");
            b.citizen = citizen(b_code, "Bruno@Example.it");
            let b = store.create_case(b).await.unwrap().summary.reference;
            let now = crate::testing::fixture_now().timestamp_millis();
            let permit = store
                .issue_permit(
                    &b,
                    &crate::permits::NewPermit {
                        category: "cude".into(),
                        prefix: "CUD".into(),
                        holder_fiscal_code: b_code.into(),
                        holder_name: "Bruno Bianchi".into(),
                        plates: vec![
                            sportello_domain::plate::Plate::parse("AA111AA", None).unwrap(),
                        ],
                        valid_from: now,
                        valid_to: now + 86_400_000,
                        policy_version: None,
                        renews: None,
                    },
                    "op",
                )
                .await
                .unwrap()
                .number;
            assert_eq!(permit, "CUD202600001", "CONTRACT §1, not a case reference");

            let from = |key: &str, address: &str, subject: &str| {
                let mut m = message(key, subject, "Saluti");
                m.sender = CitizenInput {
                    email: Some(address.into()),
                    ..CitizenInput::default()
                };
                m.sender_label = address.into();
                m
            };
            let check = |out: &IntakeOutcome, case: &str, rule: &str, flagged: bool| {
                assert_eq!(
                    (out.case.as_deref(), out.rule.as_str()),
                    (Some(case), rule),
                    "{out:?}"
                );
                assert_eq!(
                    out.flags
                        .iter()
                        .any(|f| f == flags::PERMIT_REFERENCE_UNVERIFIED),
                    flagged,
                    "{out:?}"
                );
            };
            // A stranger quoting B's permit: a case of their own, flagged for a look, and
            // the rule says why.
            let stranger = store
                .ingest(from(
                    "s1",
                    "x@example.it",
                    &format!("Contrassegno {permit}"),
                ))
                .await
                .unwrap();
            assert_eq!(stranger.outcome, "new_case");
            let own = stranger.case.clone().unwrap();
            assert!(own != a && own != b, "{stranger:?}");
            check(&stranger, &own, "permit_reference_unverified", true);
            let listed = store.case_messages(&own).await.unwrap();
            assert_eq!(listed[0].rule, "permit_reference_unverified");
            let case = store.get_case(&own).await.unwrap();
            for flag in [flags::PERMIT_REFERENCE_UNVERIFIED, flags::NEEDS_ATTENTION] {
                assert!(case.summary.flags.iter().any(|f| f == flag), "{flag}");
            }
            // The holder, by the address known for them (any letter case), or by fiscal
            // code: the permit's case.
            let holder = store
                .ingest(from(
                    "b1",
                    "bruno@example.IT",
                    &format!("rif. {}", permit.to_lowercase()),
                ))
                .await
                .unwrap();
            assert_eq!(holder.outcome, "attached");
            check(&holder, &b, "permit_reference", false);
            let mut by_code = from("b2", "altro@example.it", "Contrassegno");
            by_code.text = format!("Il mio permesso è il n.{permit}.");
            by_code.sender.fiscal_code = Some(FiscalCode::parse(b_code).unwrap());
            check(
                &store.ingest(by_code).await.unwrap(),
                &b,
                "permit_reference",
                false,
            );

            // The permit's former number (the old shape) is A's case reference too: the
            // case's when A writes, the permit's when B does, nobody's otherwise.
            sqlx::query("INSERT INTO permit_aliases (alias, permit) VALUES ($1, $2)")
                .bind("CUD-2026-000001")
                .bind(&permit)
                .execute(&store.write)
                .await
                .unwrap();
            let old = "Permesso CUD-2026-000001";
            let stranger = store.ingest(from("s2", "x@example.it", old)).await.unwrap();
            assert_eq!(stranger.outcome, "new_case");
            assert!(stranger.case.as_deref() != Some(a.as_str()), "{stranger:?}");
            assert!(
                stranger
                    .flags
                    .iter()
                    .any(|f| f == flags::PERMIT_REFERENCE_UNVERIFIED)
            );
            check(
                &store
                    .ingest(from("a1", "anna@example.it", old))
                    .await
                    .unwrap(),
                &a,
                "reference_in_subject",
                false,
            );
            check(
                &store
                    .ingest(from("b3", "bruno@example.it", old))
                    .await
                    .unwrap(),
                &b,
                "permit_reference",
                false,
            );
            // A real case reference is still a case reference, whoever quotes it.
            check(
                &store
                    .ingest(from("s3", "x@example.it", &format!("Re: {b}")))
                    .await
                    .unwrap(),
                &b,
                "reference_in_subject",
                false,
            );
            // An imported permit's number (any string) is a permit number too.
            let mut row = crate::permits::tests::register_row("ZTL/77", "CC333CC", now + 1);
            row.holder_fiscal_code = a_code.into();
            store
                .import_permit_rows(&[row], None, "import")
                .await
                .unwrap();
            let quoted = store
                .ingest(from("s4", "x@example.it", "Permesso ZTL/77"))
                .await
                .unwrap();
            assert_eq!(quoted.rule, "permit_reference_unverified", "{quoted:?}");
        })
        .await;
    }

    #[tokio::test]
    async fn the_same_message_twice_at_once_is_one_case() {
        with_test_store(|store, _clock| async move {
            let (a, b) = tokio::join!(
                store.ingest(message("same", "Richiesta", "x")),
                store.ingest(message("same", "Richiesta", "x"))
            );
            let mut outcomes = vec![a.unwrap().outcome, b.unwrap().outcome];
            outcomes.sort();
            assert_eq!(
                outcomes,
                vec!["duplicate".to_string(), "new_case".to_string()]
            );
            assert_eq!(store.verify_register().await.unwrap(), Ok(1));
        })
        .await;
    }

    fn rome(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
    }

    /// A PEC delivered on 26 November and read on 7 December: the case is received on 26
    /// November and its legal term runs from then; the register and the journal say when
    /// it was registered.
    #[tokio::test]
    async fn a_case_is_received_when_its_message_was_delivered() {
        with_test_store(|store, clock| async move {
            clock.set(rome("2026-12-07T10:00:00+01:00"));
            let mut pec = message("pec1", "Domanda permesso", "");
            pec.channel = Channel::Pec;
            pec.received_at = rome("2026-11-26T10:15:30+01:00");
            let out = store.ingest(pec).await.unwrap();
            assert_eq!(out.outcome, "new_case");
            let reference = out.case.unwrap();
            let case = store.get_case(&reference).await.unwrap();
            assert_eq!(case.summary.received_at, "2026-11-26T10:15:30+01:00");
            // 26 November + 30 days is 26 December (Santo Stefano), then a Sunday: the 28th.
            // From 7 December it would have been 6 January (Epiphany), so the 7th.
            assert_eq!(case.summary.due_at, "2026-12-28");
            assert_eq!(case.summary.sla.days_left, 21);
            assert_eq!(case.ingested_at, "2026-12-07T10:00:00+01:00");
            assert_eq!(case.timeline[0].at, "2026-12-07T10:00:00+01:00");
            let messages = store.case_messages(&reference).await.unwrap();
            assert_eq!(
                (
                    messages[0].received_at.as_str(),
                    messages[0].ingested_at.as_str()
                ),
                ("2026-11-26T10:15:30+01:00", "2026-12-07T10:00:00+01:00")
            );
            // The register is append-only: the entry is dated when it was registered.
            let day = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
            let registered = store.register_entries_on(day("2026-12-07")).await.unwrap();
            assert_eq!(registered.len(), 1);
            assert_eq!(
                Some(registered[0].0.number.to_string()),
                out.protocol,
                "registered today"
            );
            assert!(
                store
                    .register_entries_on(day("2026-11-26"))
                    .await
                    .unwrap()
                    .is_empty()
            );
            // Found in lists by the day it was received.
            let (listed, _) = store
                .list_cases(&crate::cases::CaseFilter {
                    per_page: 10,
                    page: 1,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(listed[0].received_at, "2026-11-26T10:15:30+01:00");
        })
        .await;
    }

    #[tokio::test]
    async fn a_delivery_after_the_clock_is_received_now() {
        with_test_store(|store, clock| async move {
            let now = rome("2026-12-07T10:00:00+01:00");
            clock.set(now);
            let mut forged = message("future", "Domanda", "");
            forged.received_at = now + chrono::Duration::days(3);
            let reference = store.ingest(forged).await.unwrap().case.unwrap();
            let case = store.get_case(&reference).await.unwrap();
            assert_eq!(case.summary.received_at, "2026-12-07T10:00:00+01:00");
            assert_eq!(case.summary.received_at, case.ingested_at);
            assert_eq!(
                store.case_messages(&reference).await.unwrap()[0].received_at,
                "2026-12-07T10:00:00+01:00"
            );
        })
        .await;
    }

    /// The reference carries the year of registration (CONTRACT §1), the received date the
    /// year of delivery.
    #[tokio::test]
    async fn a_message_delivered_last_year_gets_this_years_reference() {
        with_test_store(|store, clock| async move {
            clock.set(rome("2027-01-04T09:00:00+01:00"));
            let mut late = message("late", "Domanda", "");
            late.received_at = rome("2026-12-31T18:00:00+01:00");
            let out = store.ingest(late).await.unwrap();
            assert_eq!(out.case.as_deref(), Some("ZTL-2027-000001"));
            assert_eq!(out.protocol.as_deref(), Some("2027/0000001"));
            let case = store.get_case("ZTL-2027-000001").await.unwrap();
            assert_eq!(case.summary.received_at, "2026-12-31T18:00:00+01:00");
        })
        .await;
    }
}
