//! What the demo's citizens and providers send, byte for byte as it arrives from outside:
//! e-mails, PEC transport envelopes and receipts signed by a demo PEC provider (S/MIME,
//! with its `daticert.xml`), fax-to-mail messages with a TIFF page, WhatsApp and Telegram
//! webhook bodies. They are fed to the same adapters `sportello ingest` and the inbound
//! endpoints use, so the parsers decide what they are.

use std::fmt::Write as _;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509, X509NameBuilder};
use sportello_domain::calendar::ROME;

/// The office's PEC address, where citizens' PEC arrives.
pub(super) const OFFICE_PEC: &str = "protocollo@pec.comune.example.it";
/// The office's ordinary address.
pub(super) const OFFICE_EMAIL: &str = "ufficio.permessi@comune.example.it";
/// The fax server's sender address (the demo's `fax.gateway_senders`).
pub(super) const FAX_GATEWAY: &str = "fax@fax.comune.example.it";
/// The demo PEC provider's mailbox that signs envelopes and receipts.
const PROVIDER: &str = "posta-certificata@pec.gestore-demo.it";
const PROVIDER_NAME: &str = "Gestore PEC dimostrativo S.p.A.";

/// An attachment of a message.
pub(super) struct Part {
    /// File name.
    pub filename: String,
    /// Media type.
    pub media_type: &'static str,
    /// Content.
    pub bytes: Vec<u8>,
}

/// A citizen's ordinary e-mail (or the inner message of a PEC).
pub(super) struct Mail<'a> {
    /// Sender's name.
    pub from_name: &'a str,
    /// Sender's address.
    pub from: &'a str,
    /// Recipient.
    pub to: &'a str,
    /// Subject.
    pub subject: &'a str,
    /// Plain text.
    pub body: &'a str,
    /// Message-ID without angle brackets.
    pub message_id: &'a str,
    /// The message answered, if any.
    pub in_reply_to: Option<&'a str>,
    /// When it was written.
    pub date: DateTime<Utc>,
    /// Attachments.
    pub parts: &'a [Part],
}

/// A header value, as an RFC 2047 encoded word when it is not ASCII.
fn header_text(text: &str) -> String {
    if text.is_ascii() {
        text.to_owned()
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    }
}

/// Base64 in lines of 76 characters, CRLF-terminated.
fn base64_lines(bytes: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 38);
    for chunk in encoded.as_bytes().chunks(76) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push_str("\r\n");
    }
    out
}

/// The `Date` header of an instant, in Rome's offset.
fn rfc2822(t: DateTime<Utc>) -> String {
    t.with_timezone(&ROME).to_rfc2822()
}

/// Text with CRLF line ends.
fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

impl Mail<'_> {
    /// The raw RFC 5322 message.
    pub fn render(&self) -> Vec<u8> {
        let mut out = String::new();
        let _ = write!(
            out,
            "From: {} <{}>\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <{}>\r\n",
            header_text(self.from_name),
            self.from,
            self.to,
            header_text(self.subject),
            rfc2822(self.date),
            self.message_id
        );
        if let Some(id) = self.in_reply_to {
            let _ = write!(out, "In-Reply-To: <{id}>\r\nReferences: <{id}>\r\n");
        }
        out.push_str("MIME-Version: 1.0\r\n");
        let text = format!(
            "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}\r\n",
            crlf(self.body)
        );
        if self.parts.is_empty() {
            out.push_str(&text);
            return out.into_bytes();
        }
        let boundary = format!("part-{}", self.message_id.replace(['@', '.'], "-"));
        let _ = write!(
            out,
            "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\n{text}"
        );
        for part in self.parts {
            let _ = write!(
                out,
                "--{boundary}\r\nContent-Type: {}; name=\"{}\"\r\nContent-Transfer-Encoding: base64\r\n\
                 Content-Disposition: attachment; filename=\"{}\"\r\n\r\n{}",
                part.media_type,
                part.filename,
                part.filename,
                base64_lines(&part.bytes)
            );
        }
        let _ = write!(out, "--{boundary}--\r\n");
        out.into_bytes()
    }
}

/// A fax-to-mail message from the office's fax server: the caller's number in the
/// subject, the page as a TIFF attachment.
pub(super) fn fax_to_mail(
    caller: &str,
    message_id: &str,
    date: DateTime<Utc>,
    page: Vec<u8>,
) -> Vec<u8> {
    let local = date.with_timezone(&ROME);
    let body = format!(
        "Fax ricevuto il {} alle {}\nMittente: {caller}\nPagine: 1\n",
        local.format("%d/%m/%Y"),
        local.format("%H:%M:%S")
    );
    Mail {
        from_name: "Server fax",
        from: FAX_GATEWAY,
        to: OFFICE_EMAIL,
        subject: &format!("Fax ricevuto da {caller} (1 pagina)"),
        body: &body,
        message_id,
        in_reply_to: None,
        date,
        parts: &[Part {
            filename: format!("fax-{}.tif", local.format("%Y%m%d-%H%M%S")),
            media_type: "image/tiff",
            bytes: page,
        }],
    }
    .render()
}

/// The demo's PEC provider: a key and a self-signed certificate made at seeding, which
/// sign its envelopes and receipts. Without `pec.trust_anchors` the office checks only
/// that the signature matches the content, as it would for any provider.
pub(super) struct PecProvider {
    key: PKey<Private>,
    certificate: X509,
    issued: std::sync::atomic::AtomicU64,
}

/// What the provider certifies in a `daticert.xml`.
pub(super) struct Certified<'a> {
    /// `posta-certificata` for an envelope, else the receipt's kind.
    pub kind: &'a str,
    /// Sender.
    pub sender: &'a str,
    /// Recipient.
    pub recipient: &'a str,
    /// The original subject.
    pub subject: &'a str,
    /// The original Message-ID, without brackets.
    pub msgid: &'a str,
    /// When the provider handled it.
    pub at: DateTime<Utc>,
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl PecProvider {
    /// A provider whose certificate is valid from `since` for ten years.
    pub fn new(since: DateTime<Utc>) -> Result<PecProvider, openssl::error::ErrorStack> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_text("C", "IT")?;
        name.append_entry_by_text("O", PROVIDER_NAME)?;
        name.append_entry_by_text("CN", PROVIDER)?;
        let name = name.build();
        let mut builder = X509::builder()?;
        builder.set_version(2)?;
        builder.set_serial_number(BigNum::from_u32(1)?.to_asn1_integer()?.as_ref())?;
        builder.set_subject_name(&name)?;
        builder.set_issuer_name(&name)?;
        builder.set_pubkey(&key)?;
        builder.set_not_before(Asn1Time::from_unix(since.timestamp() - 86_400)?.as_ref())?;
        builder.set_not_after(
            Asn1Time::from_unix((since + Duration::days(3650)).timestamp())?.as_ref(),
        )?;
        builder.sign(&key, MessageDigest::sha256())?;
        Ok(PecProvider {
            key,
            certificate: builder.build(),
            issued: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The provider's identifier of its next document.
    fn next_identifier(&self, at: DateTime<Utc>) -> String {
        let n = self
            .issued
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        format!(
            "opec.{}.{n:06}@pec.gestore-demo.it",
            at.with_timezone(&ROME).format("%Y%m%d%H%M%S")
        )
    }

    fn daticert(&self, c: &Certified, identifier: &str) -> String {
        let local = c.at.with_timezone(&ROME);
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<postacert tipo=\"{}\" errore=\"nessuno\">\r\n\
             <intestazione><mittente>{}</mittente><destinatari tipo=\"certificato\">{}</destinatari>\
             <risposte>{}</risposte><oggetto>{}</oggetto></intestazione>\r\n\
             <dati><gestore-emittente>{PROVIDER_NAME}</gestore-emittente>\
             <data zona=\"{}\"><giorno>{}</giorno><ora>{}</ora></data>\
             <identificativo>{identifier}</identificativo><msgid>&lt;{}&gt;</msgid></dati>\r\n</postacert>\r\n",
            c.kind,
            xml_escape(c.sender),
            xml_escape(c.recipient),
            xml_escape(c.sender),
            xml_escape(c.subject),
            local.format("%z"),
            local.format("%d/%m/%Y"),
            local.format("%H:%M:%S"),
            xml_escape(c.msgid),
        )
    }

    /// A signed `multipart/signed` message: `headers`, then the parts (the provider's
    /// text, `daticert.xml`, and `inner` as `postacert.eml` when given) under the
    /// provider's detached CMS signature.
    fn signed(
        &self,
        headers: &str,
        text: &str,
        daticert: &str,
        inner: Option<&[u8]>,
        identifier: &str,
    ) -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let mixed = format!("mixed-{}", identifier.replace(['@', '.'], "-"));
        let mut content = format!(
            "Content-Type: multipart/mixed; boundary=\"{mixed}\"\r\n\r\n--{mixed}\r\n\
             Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}\r\n\
             --{mixed}\r\nContent-Type: application/xml; name=\"daticert.xml\"\r\n\
             Content-Disposition: inline; filename=\"daticert.xml\"\r\n\r\n{daticert}",
            crlf(text)
        )
        .into_bytes();
        if let Some(inner) = inner {
            content.extend_from_slice(
                format!(
                    "--{mixed}\r\nContent-Type: message/rfc822; name=\"postacert.eml\"\r\n\
                     Content-Disposition: inline; filename=\"postacert.eml\"\r\n\r\n"
                )
                .as_bytes(),
            );
            content.extend_from_slice(inner);
            if !inner.ends_with(b"\r\n") {
                content.extend_from_slice(b"\r\n");
            }
        }
        content.extend_from_slice(format!("--{mixed}--").as_bytes());
        let signature = CmsContentInfo::sign(
            Some(&self.certificate),
            Some(&self.key),
            None,
            Some(&content),
            CMSOptions::DETACHED | CMSOptions::BINARY,
        )?
        .to_der()?;
        let signed = format!("signed-{}", identifier.replace(['@', '.'], "-"));
        let mut raw = format!(
            "{headers}MIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; \
             micalg=\"sha-256\"; boundary=\"{signed}\"\r\n\r\nThis is an S/MIME signed message\r\n\r\n--{signed}\r\n"
        )
        .into_bytes();
        raw.extend_from_slice(&content);
        raw.extend_from_slice(
            format!(
                "\r\n--{signed}\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n\
                 Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n\
                 {}--{signed}--\r\n",
                base64_lines(&signature)
            )
            .as_bytes(),
        );
        Ok(raw)
    }

    /// The transport envelope of a citizen's PEC (`inner`, written by `sender`).
    pub fn envelope(
        &self,
        sender: &str,
        subject: &str,
        inner_id: &str,
        inner: &[u8],
        at: DateTime<Utc>,
    ) -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let identifier = self.next_identifier(at);
        let local = at.with_timezone(&ROME);
        let headers = format!(
            "Return-Path: <{PROVIDER}>\r\nMessage-ID: <{identifier}>\r\nDate: {}\r\nX-Trasporto: posta-certificata\r\n\
             Subject: {}\r\nFrom: \"Per conto di: {sender}\" <{PROVIDER}>\r\nTo: {OFFICE_PEC}\r\nReply-To: {sender}\r\n\
             X-TipoRicevuta: completa\r\nX-Riferimento-Message-ID: <{inner_id}>\r\n",
            rfc2822(at),
            header_text(&format!("POSTA CERTIFICATA: {subject}")),
        );
        let text = format!(
            "Messaggio di posta certificata\n\nIl giorno {} alle ore {} ({}) il messaggio\n\"{subject}\" è stato inviato da \"{sender}\"\n\
             indirizzato a:\n{OFFICE_PEC}\nIl messaggio originale è incluso in allegato.\nIdentificativo messaggio: {identifier}\n",
            local.format("%d/%m/%Y"),
            local.format("%H:%M:%S"),
            local.format("%z"),
        );
        let daticert = self.daticert(
            &Certified {
                kind: "posta-certificata",
                sender,
                recipient: OFFICE_PEC,
                subject,
                msgid: inner_id,
                at,
            },
            &identifier,
        );
        self.signed(&headers, &text, &daticert, Some(inner), &identifier)
    }

    /// A receipt (`accettazione`, `avvenuta-consegna`) of a message the office sent.
    pub fn receipt(&self, c: &Certified) -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let identifier = self.next_identifier(c.at);
        let local = c.at.with_timezone(&ROME);
        let (title, what) = match c.kind {
            "accettazione" => ("ACCETTAZIONE", "è stato accettato dal sistema ed inoltrato"),
            _ => (
                "CONSEGNA",
                "è stato consegnato nella casella di destinazione",
            ),
        };
        let headers = format!(
            "Return-Path: <{PROVIDER}>\r\nMessage-ID: <{identifier}>\r\nDate: {}\r\nX-Ricevuta: {}\r\n\
             Subject: {}\r\nFrom: {PROVIDER}\r\nTo: {}\r\nX-Riferimento-Message-ID: <{}>\r\n",
            rfc2822(c.at),
            c.kind,
            header_text(&format!("{title}: {}", c.subject)),
            c.sender,
            c.msgid,
        );
        let text = format!(
            "Ricevuta di {}\n\nIl giorno {} alle ore {} ({}) il messaggio\n\"{}\" proveniente da \"{}\"\n\
             ed indirizzato a:\n{} (\"posta certificata\")\n{what}.\nIdentificativo messaggio: {identifier}\n",
            c.kind,
            local.format("%d/%m/%Y"),
            local.format("%H:%M:%S"),
            local.format("%z"),
            c.subject,
            c.sender,
            c.recipient,
        );
        let daticert = self.daticert(c, &identifier);
        self.signed(&headers, &text, &daticert, None, &identifier)
    }
}

/// A WhatsApp Business Cloud API notification of one text message.
pub(super) fn whatsapp_message(
    wamid: &str,
    from: &str,
    name: &str,
    text: &str,
    at: DateTime<Utc>,
) -> Vec<u8> {
    let wa_id = from.trim_start_matches('+');
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "390612345678", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": wamid, "timestamp": at.timestamp().to_string(),
                          "type": "text", "text": {"body": text}}]
        }}]}]
    })
    .to_string()
    .into_bytes()
}

/// A Telegram Bot API update of one text message.
pub(super) fn telegram_message(
    update_id: i64,
    chat: i64,
    first: &str,
    last: &str,
    text: &str,
    at: DateTime<Utc>,
) -> Vec<u8> {
    let user = serde_json::json!({"id": chat, "is_bot": false, "first_name": first,
                                  "last_name": last, "language_code": "it"});
    serde_json::json!({
        "update_id": update_id,
        "message": {"message_id": update_id % 100_000, "from": user,
                    "chat": {"id": chat, "first_name": first, "last_name": last, "type": "private"},
                    "date": at.timestamp(), "text": text}
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000, 0).unwrap()
    }

    #[test]
    fn a_demo_pec_envelope_is_read_as_a_signed_pec_with_its_inner_message() {
        let provider = PecProvider::new(at()).unwrap();
        let code =
            sportello_domain::fiscal_code::FiscalCode::complete_person("BNCNNA75M41F205").unwrap();
        let body = format!("Chiedo il contrassegno.\nCodice fiscale {}.", code.as_str());
        let inner = Mail {
            from_name: "Anna Bianchi",
            from: "anna.bianchi@pec.example.it",
            to: OFFICE_PEC,
            subject: "Domanda contrassegno CUDE: identità",
            body: &body,
            message_id: "inner-1@pec.example.it",
            in_reply_to: None,
            date: at(),
            parts: &[Part {
                filename: "documento_identita.pdf".into(),
                media_type: "application/pdf",
                bytes: b"%PDF-1.4\n%%EOF\n".to_vec(),
            }],
        }
        .render();
        let raw = provider
            .envelope(
                "anna.bianchi@pec.example.it",
                "Domanda contrassegno CUDE: identità",
                "inner-1@pec.example.it",
                &inner,
                at(),
            )
            .unwrap();
        assert_eq!(
            sportello_intake::pec::verify_envelope(&raw, None),
            sportello_intake::pec::SignatureCheck::Valid { chain: false }
        );
        let parsed = sportello_intake::email::parse_email(
            &raw,
            "demo",
            "00",
            &source(),
            at() + Duration::days(3),
        );
        let inbound = parsed.inbound;
        assert_eq!(inbound.channel, sportello_domain::case::Channel::Pec);
        assert!(inbound.flags.is_empty(), "{:?}", inbound.flags);
        assert_eq!(
            inbound.sender.pec.as_deref(),
            Some("anna.bianchi@pec.example.it")
        );
        assert_eq!(
            inbound.sender.fiscal_code.map(|f| f.as_str().to_owned()),
            Some(code.as_str().to_owned())
        );
        assert_eq!(inbound.subject, "Domanda contrassegno CUDE: identità");
        assert_eq!(
            inbound.message_id.as_deref(),
            Some("inner-1@pec.example.it")
        );
        assert_eq!(parsed.attachments.len(), 1);
        assert_eq!(parsed.attachments[0].filename, "documento_identita.pdf");
    }

    fn source() -> sportello_intake::email::EmailSource {
        {
            let mut source = sportello_intake::email::EmailSource::from_config(
                &sportello_config::Config::default(),
                None,
                None,
            )
            .unwrap();
            source.fax_gateway_senders = vec![FAX_GATEWAY.into()];
            source
        }
    }

    #[test]
    fn a_demo_receipt_names_the_message_it_is_about() {
        let provider = PecProvider::new(at()).unwrap();
        for (kind, step) in [
            ("accettazione", "accettazione"),
            ("avvenuta-consegna", "avvenuta-consegna"),
        ] {
            let raw = provider
                .receipt(&Certified {
                    kind,
                    sender: OFFICE_PEC,
                    recipient: "mario.rossi@pec.example.it",
                    subject: "[ZTL-2026-000001] Permesso rilasciato",
                    msgid: "sportello.ztl-2026-000001.00ff@comune.example.it",
                    at: at(),
                })
                .unwrap();
            let inbound =
                sportello_intake::email::parse_email(&raw, "demo", "00", &source(), at()).inbound;
            let receipt = inbound.receipt.unwrap();
            assert_eq!(receipt.kind, step);
            assert_eq!(
                receipt.refers_to.as_deref(),
                Some("sportello.ztl-2026-000001.00ff@comune.example.it")
            );
            assert_eq!(inbound.received_at, at());
        }
    }
}
