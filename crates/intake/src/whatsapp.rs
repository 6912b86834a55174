//! WhatsApp Business Cloud API webhooks: the verification handshake, the
//! `X-Hub-Signature-256` HMAC over the exact body, and the notifications (`messages`
//! become inbound messages, `statuses` become receipts).

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use sportello_domain::case::Channel;
use sportello_store::cases::CitizenInput;
use sportello_store::intake::{Inbound, ReceiptInfo};

use crate::{IntakeError, from_unix, subject_from};

/// The GET handshake: answers the challenge only for `subscribe` with the configured token.
pub fn verify_handshake(
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&str>,
    configured: Option<&str>,
) -> Result<String, IntakeError> {
    let configured =
        configured.ok_or(IntakeError::NotConfigured("webhooks.whatsapp.verify_token"))?;
    let token_ok = token.is_some_and(|t| constant_time_eq(t.as_bytes(), configured.as_bytes()));
    match (mode, token_ok, challenge) {
        (Some("subscribe"), true, Some(challenge)) if challenge.len() <= 200 => {
            Ok(challenge.to_owned())
        }
        _ => Err(IntakeError::NotAuthentic("wrong verify token or mode")),
    }
}

/// Checks `X-Hub-Signature-256: sha256=<hex>` over the body, in constant time.
pub fn verify_signature(
    body: &[u8],
    header: Option<&str>,
    app_secret: Option<&str>,
) -> Result<(), IntakeError> {
    let secret = app_secret.ok_or(IntakeError::NotConfigured("webhooks.whatsapp.app_secret"))?;
    let given = header
        .and_then(|h| h.trim().strip_prefix("sha256="))
        .and_then(|h| hex::decode(h).ok())
        .ok_or(IntakeError::NotAuthentic(
            "missing or malformed X-Hub-Signature-256",
        ))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| IntakeError::NotConfigured("webhooks.whatsapp.app_secret"))?;
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| IntakeError::NotAuthentic("signature does not match"))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Deserialize)]
struct Notification {
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    value: Value,
}

#[derive(Deserialize)]
struct Value {
    #[serde(default)]
    contacts: Vec<Contact>,
    #[serde(default)]
    messages: Vec<Message>,
    #[serde(default)]
    statuses: Vec<Status>,
}

#[derive(Deserialize)]
struct Contact {
    wa_id: Option<String>,
    profile: Option<Profile>,
}

#[derive(Deserialize)]
struct Profile {
    name: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    id: String,
    from: String,
    timestamp: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<Text>,
    image: Option<Media>,
    document: Option<Media>,
    audio: Option<Media>,
    video: Option<Media>,
    context: Option<Context>,
}

#[derive(Deserialize)]
struct Text {
    body: String,
}

#[derive(Deserialize)]
struct Media {
    id: Option<String>,
    caption: Option<String>,
    filename: Option<String>,
    mime_type: Option<String>,
}

#[derive(Deserialize)]
struct Context {
    id: Option<String>,
}

#[derive(Deserialize)]
struct Status {
    id: String,
    status: String,
    timestamp: Option<String>,
    recipient_id: Option<String>,
    /// Why a message failed (`failed` statuses).
    #[serde(default)]
    errors: Vec<StatusError>,
}

#[derive(Deserialize)]
struct StatusError {
    title: Option<String>,
    message: Option<String>,
}

/// Turns a notification into inbound messages and receipts, in the order they came.
pub fn parse_notification(
    body: &[u8],
    raw_sha256: &str,
    default_case_type: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Inbound>, IntakeError> {
    let notification: Notification = serde_json::from_slice(body)
        .map_err(|e| IntakeError::Malformed(format!("not a WhatsApp notification: {e}")))?;
    let mut out = Vec::new();
    for value in notification
        .entry
        .into_iter()
        .flat_map(|e| e.changes)
        .map(|c| c.value)
    {
        for m in value.messages {
            let name = value
                .contacts
                .iter()
                .find(|c| c.wa_id.as_deref() == Some(m.from.as_str()))
                .and_then(|c| c.profile.as_ref())
                .and_then(|p| p.name.clone());
            let phone = format!("+{}", m.from.trim_start_matches('+'));
            let mut text = m.text.map(|t| t.body).unwrap_or_default();
            let kind = m.kind.unwrap_or_else(|| "text".into());
            for (label, media) in [
                ("immagine", m.image),
                ("documento", m.document),
                ("audio", m.audio),
                ("video", m.video),
            ] {
                if let Some(media) = media {
                    if let Some(caption) = media.caption.filter(|c| !c.trim().is_empty()) {
                        if !text.is_empty() {
                            text.push('\n');
                        }
                        text.push_str(&caption);
                    }
                    text.push_str(&format!(
                        "\n[{label} WhatsApp: id {}{}{}]",
                        media.id.unwrap_or_default(),
                        media
                            .filename
                            .map(|f| format!(", file {f}"))
                            .unwrap_or_default(),
                        media
                            .mime_type
                            .map(|t| format!(", {t}"))
                            .unwrap_or_default()
                    ));
                }
            }
            let received_at = m
                .timestamp
                .and_then(|t| t.parse::<i64>().ok())
                .map_or(now, |t| from_unix(t, now));
            out.push(Inbound {
                explicit_case: None,
                channel: Channel::Whatsapp,
                source: format!("whatsapp:{}", m.id),
                dedupe_key: format!("whatsapp:{}", m.id),
                message_id: Some(m.id.clone()),
                in_reply_to: m.context.and_then(|c| c.id).into_iter().collect(),
                received_at,
                sender_label: match &name {
                    Some(n) => format!("{n} ({phone})"),
                    None => phone.clone(),
                },
                sender: CitizenInput {
                    name,
                    phone: Some(phone),
                    ..CitizenInput::default()
                },
                subject: subject_from(&text, &format!("Messaggio WhatsApp ({kind})")),
                text,
                receipt: None,
                flags: Vec::new(),
                default_case_type: default_case_type.to_owned(),
                raw_sha256: raw_sha256.to_owned(),
                attachments: Vec::new(),
            });
        }
        for s in value.statuses {
            let received_at = s
                .timestamp
                .and_then(|t| t.parse::<i64>().ok())
                .map_or(now, |t| from_unix(t, now));
            out.push(Inbound {
                explicit_case: None,
                channel: Channel::Whatsapp,
                source: format!("whatsapp-status:{}", s.id),
                dedupe_key: format!("whatsapp-status:{}:{}", s.id, s.status),
                message_id: None,
                in_reply_to: Vec::new(),
                received_at,
                sender_label: s.recipient_id.clone().unwrap_or_default(),
                sender: CitizenInput::default(),
                subject: format!("Stato WhatsApp: {}", s.status),
                text: String::new(),
                receipt: Some(ReceiptInfo {
                    error: s
                        .errors
                        .iter()
                        .filter_map(|e| e.title.clone().or_else(|| e.message.clone()))
                        .next(),
                    kind: s.status,
                    refers_to: Some(s.id),
                }),
                flags: Vec::new(),
                default_case_type: default_case_type.to_owned(),
                raw_sha256: raw_sha256.to_owned(),
                attachments: Vec::new(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures() {
        let body = br#"{"entry":[]}"#;
        let good = sign("s3cret", body);
        assert_eq!(verify_signature(body, Some(&good), Some("s3cret")), Ok(()));
        assert!(matches!(
            verify_signature(body, Some(&good), Some("other")),
            Err(IntakeError::NotAuthentic(_))
        ));
        assert!(matches!(
            verify_signature(b"{}", Some(&good), Some("s3cret")),
            Err(IntakeError::NotAuthentic(_))
        ));
        assert!(matches!(
            verify_signature(body, None, Some("s3cret")),
            Err(IntakeError::NotAuthentic(_))
        ));
        assert!(matches!(
            verify_signature(body, Some("sha256=zz"), Some("s3cret")),
            Err(IntakeError::NotAuthentic(_))
        ));
        assert!(matches!(
            verify_signature(body, Some(&good), None),
            Err(IntakeError::NotConfigured(_))
        ));
    }

    #[test]
    fn handshake() {
        assert_eq!(
            verify_handshake(Some("subscribe"), Some("vt"), Some("42"), Some("vt")),
            Ok("42".into())
        );
        assert!(verify_handshake(Some("subscribe"), Some("no"), Some("42"), Some("vt")).is_err());
        assert!(verify_handshake(Some("unsubscribe"), Some("vt"), Some("42"), Some("vt")).is_err());
        assert!(verify_handshake(Some("subscribe"), Some("vt"), Some("42"), None).is_err());
    }

    #[test]
    fn fixtures_parse() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/webhooks"
        );
        let Ok(new) = std::fs::read(format!("{dir}/01_whatsapp_new.json")) else {
            eprintln!("skipped: ../shared/fixtures not present");
            return;
        };
        let now = chrono::DateTime::from_timestamp(1_764_150_000, 0).unwrap();
        let msgs = parse_notification(&new, "ab", "ztl_permit", now).unwrap();
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].dedupe_key.starts_with("whatsapp:wamid"));
        assert!(msgs[0].sender.phone.as_deref().unwrap().starts_with("+39"));
        assert!(msgs[0].receipt.is_none());
        let status = std::fs::read(format!("{dir}/05_whatsapp_status_update.json")).unwrap();
        let msgs = parse_notification(&status, "ab", "ztl_permit", now).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(
            msgs[0].receipt.as_ref().map(|r| r.kind.as_str()),
            Some("delivered")
        );
        assert!(parse_notification(b"not json", "ab", "ztl_permit", now).is_err());
    }
}
