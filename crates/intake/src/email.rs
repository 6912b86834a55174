//! E-mail, PEC and fax-to-mail: one raw RFC 5322 message becomes one [`Inbound`].
//!
//! - PEC transport envelopes (`X-Trasporto: posta-certificata`) carry the citizen's
//!   message as `postacert.eml`: that inner message is what is threaded and recorded;
//!   anomaly envelopes (`X-Trasporto: errore`) are treated as ordinary mail with the flag
//!   `pec_anomaly`; receipts (`X-Ricevuta`) become receipts of the message named by
//!   `X-Riferimento-Message-ID`.
//! - Messages from a configured fax gateway are channel `fax`, their sender the caller's
//!   number found in the subject or body.
//! - A message that cannot be parsed still becomes an [`Inbound`], flagged `unparseable`.

use chrono::{DateTime, Utc};
use mail_parser::{HeaderValue, Message, MessageParser, MimeHeaders};
use sportello_domain::case::Channel;
use sportello_store::cases::CitizenInput;
use sportello_store::intake::{Inbound, ReceiptInfo};

use crate::subject_from;

/// Where a message was received and how that source is configured.
#[derive(Debug, Clone)]
pub struct EmailSource {
    /// The mailbox's channel (`email`, `pec`, `fax`); PEC and fax are also recognised by content.
    pub channel: Channel,
    /// Case type of new cases.
    pub default_case_type: String,
    /// Sender addresses of the fax gateway.
    pub fax_gateway_senders: Vec<String>,
    /// Where the gateway writes the caller's number.
    pub fax_caller: FaxCallerPatterns,
    /// PEM bundle of the PEC providers' certificates (`pec.trust_anchors`).
    pub pec_trust_anchors: Option<std::sync::Arc<Vec<u8>>>,
}

impl EmailSource {
    /// The source a configured `[[mailbox]]` stands for (none: ordinary e-mail opening
    /// `ztl_permit` cases). The error names what is wrong, for a 422 or an exit status 2.
    pub fn from_config(
        config: &sportello_config::Config,
        mailbox: Option<&str>,
        pec_trust_anchors: Option<std::sync::Arc<Vec<u8>>>,
    ) -> Result<EmailSource, String> {
        let (channel, default_case_type) = match mailbox {
            None => (Channel::Email, "ztl_permit".to_owned()),
            Some(name) => {
                let m = config
                    .mailbox
                    .iter()
                    .find(|m| m.name == name)
                    .ok_or_else(|| {
                        format!(
                            "no [[mailbox]] named '{}' in the configuration",
                            name.chars().take(40).collect::<String>()
                        )
                    })?;
                (
                    m.channel.parse::<Channel>().map_err(|e| e.to_string())?,
                    m.default_case_type.clone(),
                )
            }
        };
        Ok(EmailSource {
            channel,
            default_case_type,
            fax_gateway_senders: config.fax.gateway_senders.clone(),
            fax_caller: FaxCallerPatterns::new(&config.fax.caller_patterns)?,
            pec_trust_anchors,
        })
    }
}

/// An attachment to store as a document of the case.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// File name as given (cleaned when displayed; never used as a path).
    pub filename: String,
    /// Declared content type.
    pub content_type: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A parsed message: what the pipeline needs, plus the attachments and the sanitised HTML.
#[derive(Debug, Clone)]
pub struct ParsedEmail {
    /// For the pipeline.
    pub inbound: Inbound,
    /// Attachments of the citizen's message (for PEC: of `postacert.eml`).
    pub attachments: Vec<Attachment>,
    /// The HTML body after sanitising (no scripts, no event handlers), if there was one.
    pub html: Option<String>,
}

fn header_text<'a>(message: &'a Message<'a>, name: &str) -> Option<String> {
    message.header(name).and_then(|v| match v {
        HeaderValue::Text(t) => Some(t.trim().to_owned()),
        HeaderValue::TextList(list) => list.first().map(|t| t.trim().to_owned()),
        _ => None,
    })
}

fn header_ids<'a>(message: &'a Message<'a>, name: &str) -> Vec<String> {
    let clean = |s: &str| {
        s.trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned()
    };
    match message.header(name) {
        Some(HeaderValue::Text(t)) => t
            .split_whitespace()
            .map(clean)
            .filter(|s| !s.is_empty())
            .collect(),
        Some(HeaderValue::TextList(list)) => list
            .iter()
            .map(|t| clean(t))
            .filter(|s| !s.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

fn bare_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

/// The compiled `fax.caller_patterns`: where gateways write the caller's number.
#[derive(Debug, Clone)]
pub struct FaxCallerPatterns(std::sync::Arc<Vec<regex::Regex>>);

impl FaxCallerPatterns {
    /// Compiles the patterns (the configuration has already checked them).
    pub fn new(patterns: &[String]) -> Result<FaxCallerPatterns, String> {
        patterns
            .iter()
            .map(|p| regex::Regex::new(p).map_err(|e| format!("fax.caller_patterns: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| FaxCallerPatterns(std::sync::Arc::new(v)))
    }

    /// The caller's number in a fax-to-mail message: the first pattern that matches the
    /// subject, else the text, with at least five digits.
    pub fn find(&self, subject: &str, body: &str) -> Option<String> {
        for text in [subject, body] {
            for re in self.0.iter() {
                for caps in re.captures_iter(text).take(10) {
                    let Some(m) = caps.get(1) else { continue };
                    let number = m
                        .as_str()
                        .trim()
                        .trim_end_matches(['-', '.', '/', ' '])
                        .to_owned();
                    if number.chars().filter(char::is_ascii_digit).count() >= 5 {
                        return Some(number);
                    }
                }
            }
        }
        None
    }
}

impl Default for FaxCallerPatterns {
    fn default() -> Self {
        let defaults: Vec<String> = sportello_config::DEFAULT_FAX_CALLER_PATTERNS
            .iter()
            .map(|p| (*p).to_owned())
            .collect();
        FaxCallerPatterns::new(&defaults).unwrap_or(FaxCallerPatterns(Default::default()))
    }
}

/// Parses a raw message. `raw_sha256` names the raw bytes, already stored. `arrived_at`
/// is when the message reached the office as our own systems saw it: the IMAP server's
/// `INTERNALDATE` for a message read from a mailbox, otherwise the instant it is ingested.
///
/// The message's reception instant ([`Inbound::received_at`]), from which the legal term
/// of a new case runs (CONTRACT §7.2), is the most trustworthy delivery time there is:
/// - a PEC: the provider's certified time (`daticert.xml` `data`, with its `zona`);
/// - a fax from a configured gateway (`fax.gateway_senders`): the gateway's own `Date:`
///   header, written when the office's gateway received the fax;
/// - any other message, plain e-mail included: `arrived_at`. The `Date:` header of
///   ordinary mail is written by the sender's program and can say anything, so it never
///   decides a legal term. Through the MTA pipe (`POST /api/v1/inbound/email`) the mail
///   server hands a message over as it arrives, so the ingestion instant is its delivery;
///   `.eml` files given to `sportello ingest` later are received when ingested, as
///   nothing trustworthy says otherwise.
///
/// Without a readable certified time a PEC falls back to `arrived_at`; receipts keep the
/// provider's time (daticert, else their `Date:`). An instant after the clock is taken as
/// the clock's by the pipeline.
pub fn parse_email(
    raw: &[u8],
    source: &str,
    raw_sha256: &str,
    src: &EmailSource,
    arrived_at: DateTime<Utc>,
) -> ParsedEmail {
    let parser = MessageParser::default();
    let Some(outer) = parser.parse(raw) else {
        return unparseable(raw, source, raw_sha256, src, arrived_at);
    };
    let mut flags: Vec<String> = Vec::new();
    let mut channel = src.channel;
    let transport = header_text(&outer, "X-Trasporto").map(|t| t.to_lowercase());
    let daticert = read_daticert(&outer, source);
    let receipt_kind = header_text(&outer, "X-Ricevuta").or_else(|| {
        daticert
            .as_ref()
            .filter(|d| transport.is_none() && PEC_RECEIPT_KINDS.contains(&d.kind.as_str()))
            .map(|d| d.kind.clone())
    });
    if let Some(kind) = receipt_kind {
        let refers_to = header_text(&outer, "X-Riferimento-Message-ID")
            .or_else(|| daticert.as_ref().and_then(|d| d.msgid.clone()))
            .map(|id| bare_id(&id));
        let envelope_id = outer.message_id().map(bare_id);
        // The provider's explanation of a failure: the extended error, else its code.
        let receipt_error = daticert.as_ref().and_then(|d| {
            d.extended_error
                .clone()
                .or_else(|| d.error.clone())
                .filter(|e| !e.trim().is_empty())
        });
        let inbound = Inbound {
            explicit_case: None,
            channel: Channel::Pec,
            source: source.to_owned(),
            dedupe_key: envelope_id.map_or_else(
                || format!("sha256:{raw_sha256}"),
                |id| format!("msgid:{id}"),
            ),
            message_id: None,
            in_reply_to: Vec::new(),
            received_at: daticert_time(daticert.as_ref()).unwrap_or_else(|| {
                outer.date().map_or(arrived_at, |d| {
                    crate::from_unix(d.to_timestamp(), arrived_at)
                })
            }),
            sender: CitizenInput::default(),
            sender_label: outer
                .from()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or("gestore PEC")
                .to_owned(),
            subject: outer.subject().unwrap_or("Ricevuta PEC").to_owned(),
            text: String::new(),
            receipt: Some(ReceiptInfo {
                kind,
                refers_to,
                error: receipt_error,
            }),
            flags,
            default_case_type: src.default_case_type.clone(),
            raw_sha256: raw_sha256.to_owned(),
            attachments: Vec::new(),
        };
        return ParsedEmail {
            inbound,
            attachments: Vec::new(),
            html: None,
        };
    }

    // A PEC envelope: the citizen's message is the attached postacert.eml.
    let mut pec_sender: Option<String> = None;
    let mut pec_time: Option<DateTime<Utc>> = None;
    let inner_holder;
    let message: &Message = match transport.as_deref() {
        Some("posta-certificata") | Some("errore") => {
            channel = Channel::Pec;
            if transport.as_deref() == Some("errore") {
                flags.push("pec_anomaly".into());
            }
            pec_sender = daticert
                .as_ref()
                .and_then(|d| d.sender.clone())
                .filter(|s| s.contains('@'));
            pec_time = daticert_time(daticert.as_ref());
            if let crate::pec::SignatureCheck::Invalid(why) = crate::pec::verify_envelope(
                raw,
                src.pec_trust_anchors.as_deref().map(Vec::as_slice),
            ) {
                tracing::warn!(source, %why, "PEC envelope signature not valid");
                flags.push("pec_signature_invalid".into());
            }
            let inner = outer.attachments().find_map(|part| {
                let named = part
                    .attachment_name()
                    .is_some_and(|n| n.eq_ignore_ascii_case("postacert.eml"));
                if named || part.is_message() {
                    part.message().cloned()
                } else {
                    None
                }
            });
            match inner {
                Some(inner) => {
                    inner_holder = inner;
                    &inner_holder
                }
                None => {
                    flags.push("pec_without_postacert".into());
                    &outer
                }
            }
        }
        _ => &outer,
    };

    let from = message.from().and_then(|a| a.first());
    let from_address = pec_sender
        .clone()
        .or_else(|| from.and_then(|a| a.address()).map(|a| a.to_lowercase()));
    let from_name = from.and_then(|a| a.name()).map(str::to_owned);
    let subject = message.subject().unwrap_or("").trim().to_owned();
    let text = message
        .body_text(0)
        .map(|t| t.into_owned())
        .unwrap_or_default();
    let html = message.body_html(0).map(|h| ammonia::clean(&h));
    let is_fax = channel == Channel::Fax
        || from_address.as_deref().is_some_and(|a| {
            src.fax_gateway_senders
                .iter()
                .any(|g| g.eq_ignore_ascii_case(a))
        });
    let mut sender = CitizenInput {
        name: from_name.clone(),
        ..CitizenInput::default()
    };
    let sender_label;
    if is_fax {
        channel = Channel::Fax;
        let number = src.fax_caller.find(&subject, &text);
        sender.fax = number.clone();
        sender.name = None;
        sender_label = number.map_or_else(
            || "fax (numero sconosciuto)".to_owned(),
            |n| format!("fax {n}"),
        );
    } else {
        if channel == Channel::Pec {
            sender.pec = from_address.clone();
        } else {
            sender.email = from_address.clone();
        }
        sender_label = match (&from_name, &from_address) {
            (Some(n), Some(a)) => format!("{n} <{a}>"),
            (None, Some(a)) => a.clone(),
            (Some(n), None) => n.clone(),
            (None, None) => "mittente sconosciuto".to_owned(),
        };
    }
    if let Some(code) = find_fiscal_code(&text) {
        sender.fiscal_code = Some(code);
    }
    let message_id = message.message_id().map(bare_id);
    let mut in_reply_to = header_ids(message, "In-Reply-To");
    for id in header_ids(message, "References") {
        if !in_reply_to.contains(&id) {
            in_reply_to.push(id);
        }
    }
    let attachments: Vec<Attachment> = message
        .attachments()
        .filter(|p| {
            !p.is_message()
                || !p
                    .attachment_name()
                    .is_some_and(|n| n.eq_ignore_ascii_case("postacert.eml"))
        })
        .map(|p| Attachment {
            filename: p.attachment_name().unwrap_or("allegato").to_owned(),
            content_type: p
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_owned(),
                })
                .unwrap_or_else(|| "application/octet-stream".into()),
            bytes: p.contents().to_vec(),
        })
        .collect();
    let dedupe_key = match &message_id {
        Some(id) => format!("msgid:{id}"),
        None => format!("sha256:{raw_sha256}"),
    };
    let gateway_time = is_fax
        .then(|| message.date())
        .flatten()
        .map(|d| crate::from_unix(d.to_timestamp(), arrived_at));
    let inbound = Inbound {
        explicit_case: None,
        channel,
        source: source.to_owned(),
        dedupe_key,
        message_id,
        in_reply_to,
        received_at: pec_time.or(gateway_time).unwrap_or(arrived_at),
        sender,
        sender_label,
        subject: if subject.is_empty() {
            subject_from(&text, "Messaggio senza oggetto")
        } else {
            subject
        },
        text,
        receipt: None,
        flags,
        default_case_type: src.default_case_type.clone(),
        raw_sha256: raw_sha256.to_owned(),
        attachments: Vec::new(),
    };
    ParsedEmail {
        inbound,
        attachments,
        html,
    }
}

/// The receipt kinds a PEC provider issues (`daticert.xml` `tipo`), so that a receipt
/// whose `X-Ricevuta` header was lost on the way is still recognised.
const PEC_RECEIPT_KINDS: &[&str] = &[
    "accettazione",
    "non-accettazione",
    "presa-in-carico",
    "avvenuta-consegna",
    "errore-consegna",
    "preavviso-errore-consegna",
    "rilevazione-virus",
];

/// The provider's data (`daticert.xml`) of a PEC envelope or receipt, if it has one that
/// can be read. An unreadable one is logged, never a reason to refuse the message.
fn read_daticert(outer: &Message, source: &str) -> Option<crate::daticert::Daticert> {
    let part = outer.attachments().find(|p| {
        p.attachment_name()
            .is_some_and(|n| n.eq_ignore_ascii_case("daticert.xml"))
    })?;
    match crate::daticert::parse(part.contents()) {
        Ok(d) => Some(d),
        Err(why) => {
            tracing::warn!(source, %why, "daticert.xml not readable");
            None
        }
    }
}

/// When the provider handled the message, the legal delivery time of a PEC.
fn daticert_time(daticert: Option<&crate::daticert::Daticert>) -> Option<DateTime<Utc>> {
    daticert
        .and_then(|d| d.sent_at)
        .map(|t| t.with_timezone(&Utc))
}

/// The first valid fiscal code in a text, if any.
fn find_fiscal_code(text: &str) -> Option<sportello_domain::fiscal_code::FiscalCode> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() == 16)
        .find_map(|w| sportello_domain::fiscal_code::FiscalCode::parse(w).ok())
}

fn unparseable(
    raw: &[u8],
    source: &str,
    raw_sha256: &str,
    src: &EmailSource,
    arrived_at: DateTime<Utc>,
) -> ParsedEmail {
    let text: String = String::from_utf8_lossy(raw).chars().take(5000).collect();
    let inbound = Inbound {
        explicit_case: None,
        channel: src.channel,
        source: source.to_owned(),
        dedupe_key: format!("sha256:{raw_sha256}"),
        message_id: None,
        in_reply_to: Vec::new(),
        received_at: arrived_at,
        sender: CitizenInput::default(),
        sender_label: "mittente sconosciuto".into(),
        subject: "Messaggio non leggibile".into(),
        text,
        receipt: None,
        flags: vec!["unparseable".into()],
        default_case_type: src.default_case_type.clone(),
        raw_sha256: raw_sha256.to_owned(),
        attachments: Vec::new(),
    };
    ParsedEmail {
        inbound,
        attachments: Vec::new(),
        html: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> EmailSource {
        EmailSource {
            channel: Channel::Email,
            default_case_type: "ztl_permit".into(),
            fax_gateway_senders: vec!["fax-gateway@comune.example.it".into()],
            fax_caller: FaxCallerPatterns::default(),
            pec_trust_anchors: None,
        }
    }

    fn fixture(name: &str) -> Option<Vec<u8>> {
        std::fs::read(format!(
            "{}/../../../shared/fixtures/intake/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .ok()
    }

    fn now() -> DateTime<Utc> {
        chrono::DateTime::from_timestamp(1_764_150_000, 0).unwrap()
    }

    #[test]
    fn fax_callers_in_every_gateway_style() {
        let p = FaxCallerPatterns::default();
        let cases = [
            (
                "Fax ricevuto da 0655512345 (1 pagina)",
                "",
                Some("0655512345"),
            ),
            (
                "",
                "Mittente: +39 06 5551 2345\nPagine: 2",
                Some("+39 06 5551 2345"),
            ),
            // HylaFAX faxrcvd
            (
                "facsimile received",
                "    Sender: 06-5551-2345\n    Pages: 1\n",
                Some("06-5551-2345"),
            ),
            (
                "",
                "CIDName: ROSSI\nCIDNumber: 0612345678\n",
                Some("0612345678"),
            ),
            // Asterisk scripts
            (
                "New fax",
                "Caller ID: 3331234567\nPages: 3",
                Some("3331234567"),
            ),
            ("Nuovo fax da: 0587 123456", "", Some("0587 123456")),
            ("nessun numero", "ciao", None),
            ("Mittente: 1234", "", None),
        ];
        for (subject, body, expected) in cases {
            assert_eq!(
                p.find(subject, body).as_deref(),
                expected,
                "{subject:?} {body:?}"
            );
        }
        let custom = FaxCallerPatterns::new(&[r"Numero chiamante <(\d+)>".to_owned()]).unwrap();
        assert_eq!(
            custom.find("", "Numero chiamante <0655512345>").as_deref(),
            Some("0655512345")
        );
        assert_eq!(
            custom.find("Mittente: 0655512345", ""),
            None,
            "only the configured patterns"
        );
    }

    #[test]
    fn ordinary_mail_and_hostile_html() {
        let raw = b"From: Anna <anna@example.it>\r\nSubject: Re: pratica\r\nMessage-ID: <x1@example.it>\r\nIn-Reply-To: <y@example.it>\r\nContent-Type: text/html\r\n\r\n<p onclick=\"x()\">Ciao<script>alert(1)</script><img src=x onerror=alert(1)></p>\r\n";
        let p = parse_email(raw, "t.eml", "ab", &src(), now());
        assert_eq!(p.inbound.dedupe_key, "msgid:x1@example.it");
        assert_eq!(p.inbound.in_reply_to, vec!["y@example.it".to_string()]);
        assert_eq!(p.inbound.sender.email.as_deref(), Some("anna@example.it"));
        let html = p.html.unwrap();
        assert!(
            !html.contains("<script") && !html.contains("onerror") && !html.contains("onclick"),
            "{html}"
        );
        assert!(!p.inbound.text.contains("<script"), "{}", p.inbound.text);
    }

    #[test]
    fn garbage_is_kept_and_flagged() {
        let p = parse_email(b"", "empty.eml", "ab", &src(), now());
        assert_eq!(p.inbound.flags, vec!["unparseable".to_string()]);
        assert_eq!(
            p.inbound.dedupe_key, "sha256:ab",
            "keyed by the stored raw bytes"
        );
        assert_eq!(p.inbound.raw_sha256, "ab");
    }

    #[test]
    fn pec_fax_and_receipts_from_fixtures() {
        let Some(envelope) = fixture("04_pec_envelope_new_request.eml") else {
            eprintln!("skipped: ../shared/fixtures not present");
            return;
        };
        let p = parse_email(&envelope, "04.eml", "ab", &src(), now());
        assert_eq!(p.inbound.channel, Channel::Pec);
        assert_eq!(
            p.inbound.message_id.as_deref(),
            Some("pec-inner-04@pec.example.it")
        );
        assert_eq!(p.inbound.subject, "Domanda contrassegno CUDE e accesso ZTL");
        assert_eq!(
            p.inbound.sender.pec.as_deref(),
            Some("anna.bianchi@pec.example.it")
        );
        // The provider's time (10:15:30 +0100), not the inner message's Date (09:12 +0100).
        assert_eq!(
            p.inbound.received_at.to_rfc3339(),
            "2026-11-26T09:15:30+00:00"
        );
        assert!(
            p.attachments
                .iter()
                .any(|a| a.filename == "contrassegno_cude.pdf"),
            "{:?}",
            p.attachments
                .iter()
                .map(|a| &a.filename)
                .collect::<Vec<_>>()
        );
        let receipt = parse_email(
            &fixture("05_pec_receipt_accettazione.eml").unwrap(),
            "05.eml",
            "ab",
            &src(),
            now(),
        );
        assert_eq!(
            receipt.inbound.receipt.as_ref().map(|r| r.kind.as_str()),
            Some("accettazione")
        );
        let fax = parse_email(
            &fixture("06_fax_new_request.eml").unwrap(),
            "06.eml",
            "ab",
            &src(),
            now(),
        );
        assert_eq!(fax.inbound.channel, Channel::Fax);
        assert_eq!(fax.inbound.sender.fax.as_deref(), Some("0655512345"));
        assert!(
            fax.attachments
                .iter()
                .any(|a| a.content_type == "image/tiff")
        );
        let encoded = parse_email(
            &fixture("09_encoded_word_subject.eml").unwrap(),
            "09.eml",
            "ab",
            &src(),
            now(),
        );
        assert!(
            encoded.inbound.subject.contains("ZTL-2026-000001")
                && encoded.inbound.subject.contains('è'),
            "{}",
            encoded.inbound.subject
        );
    }

    /// A receipt whose `X-Ricevuta` header a relay dropped is still a receipt: the kind,
    /// the message it names and its time come from `daticert.xml`.
    #[test]
    fn pec_receipt_known_by_daticert_alone() {
        let daticert = r#"<?xml version="1.0" encoding="UTF-8"?>
<postacert tipo="avvenuta-consegna" errore="nessuno">
  <intestazione><mittente>ufficio@pec.comune.example.it</mittente>
    <destinatari tipo="certificato">mario.rossi@pec.example.it</destinatari>
    <oggetto>Esito domanda</oggetto></intestazione>
  <dati><gestore-emittente>Gestore</gestore-emittente>
    <data zona="+0200"><giorno>01/07/2026</giorno><ora>08:30:00</ora></data>
    <identificativo>opec.1@pec.gestore.it</identificativo>
    <msgid>&lt;sent-42@comune.example.it&gt;</msgid>
    <consegna>mario.rossi@pec.example.it</consegna></dati>
</postacert>"#;
        let raw = format!(
            "From: posta-certificata@pec.gestore.it\r\n\
             To: ufficio@pec.comune.example.it\r\n\
             Subject: CONSEGNA: Esito domanda\r\n\
             Message-ID: <receipt-1@pec.gestore.it>\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nRicevuta di avvenuta consegna\r\n\
             --b\r\nContent-Type: application/xml; name=\"daticert.xml\"\r\n\
             Content-Disposition: attachment; filename=\"daticert.xml\"\r\n\r\n\
             {daticert}\r\n--b--\r\n"
        );
        let p = parse_email(raw.as_bytes(), "r.eml", "ab", &src(), now());
        let receipt = p.inbound.receipt.expect("a receipt");
        assert_eq!(receipt.kind, "avvenuta-consegna");
        assert_eq!(
            receipt.refers_to.as_deref(),
            Some("sent-42@comune.example.it")
        );
        assert_eq!(p.inbound.channel, Channel::Pec);
        assert_eq!(
            p.inbound.received_at.to_rfc3339(),
            "2026-07-01T06:30:00+00:00"
        );
        // An ordinary message that merely carries a daticert.xml of an envelope is not one.
        let envelope_like = raw.replace("avvenuta-consegna", "posta-certificata");
        let p = parse_email(envelope_like.as_bytes(), "e.eml", "ab", &src(), now());
        assert!(p.inbound.receipt.is_none());
    }

    /// The sender's `Date:` never decides when a message was received; the office's fax
    /// gateway's does, and so does a PEC provider's certified time.
    #[test]
    fn the_reception_instant_is_the_most_trustworthy_delivery_time() {
        let arrived = DateTime::parse_from_rfc3339("2026-12-07T08:00:00+01:00")
            .unwrap()
            .to_utc();
        let plain = b"From: Anna <anna@example.it>\r\nSubject: Domanda\r\n\
            Date: Wed, 25 Nov 2026 18:02:11 +0100\r\nMessage-ID: <d1@example.it>\r\n\r\nBuongiorno\r\n";
        let p = parse_email(plain, "p.eml", "ab", &src(), arrived);
        assert_eq!(
            p.inbound.received_at, arrived,
            "the sender's Date is not trusted"
        );

        let fax = b"From: fax-gateway@comune.example.it\r\nSubject: Fax ricevuto da 0655512345\r\n\
            Date: Thu, 26 Nov 2026 09:30:00 +0100\r\nMessage-ID: <f1@fax.example.it>\r\n\r\nPagine: 1\r\n";
        let p = parse_email(fax, "f.eml", "ab", &src(), arrived);
        assert_eq!(p.inbound.channel, Channel::Fax);
        assert_eq!(
            p.inbound.received_at.to_rfc3339(),
            "2026-11-26T08:30:00+00:00",
            "the gateway's reception time"
        );
        let undated = b"From: fax-gateway@comune.example.it\r\nSubject: Fax ricevuto da 0655512345\r\n\r\nx\r\n";
        assert_eq!(
            parse_email(undated, "f.eml", "ab", &src(), arrived)
                .inbound
                .received_at,
            arrived
        );

        // A PEC envelope whose daticert.xml cannot be read: not the inner Date either.
        let pec = b"From: posta-certificata@pec.gestore.it\r\nX-Trasporto: posta-certificata\r\n\
            Subject: POSTA CERTIFICATA: Domanda\r\nDate: Thu, 26 Nov 2026 10:15:30 +0100\r\n\
            MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
            --b\r\nContent-Type: text/plain\r\n\r\nMessaggio di posta certificata\r\n\
            --b\r\nContent-Type: message/rfc822; name=\"postacert.eml\"\r\n\
            Content-Disposition: attachment; filename=\"postacert.eml\"\r\n\r\n\
            From: anna@pec.example.it\r\nSubject: Domanda\r\nDate: Mon, 23 Nov 2026 09:00:00 +0100\r\n\r\nTesto\r\n\
            --b--\r\n";
        let p = parse_email(pec, "e.eml", "ab", &src(), arrived);
        assert_eq!(p.inbound.channel, Channel::Pec);
        assert_eq!(p.inbound.received_at, arrived);
    }
}
