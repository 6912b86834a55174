//! Telegram Bot API webhooks: the `X-Telegram-Bot-Api-Secret-Token` check and `Update`s
//! with a message.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sportello_domain::case::Channel;
use sportello_store::cases::CitizenInput;
use sportello_store::intake::Inbound;

use crate::{IntakeError, from_unix, subject_from};

/// Checks the secret token header against the configuration, in constant time.
pub fn verify_secret(header: Option<&str>, configured: Option<&str>) -> Result<(), IntakeError> {
    let configured =
        configured.ok_or(IntakeError::NotConfigured("webhooks.telegram.secret_token"))?;
    let given = header.ok_or(IntakeError::NotAuthentic(
        "missing X-Telegram-Bot-Api-Secret-Token",
    ))?;
    let same = given.len() == configured.len()
        && given
            .bytes()
            .zip(configured.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0;
    if same {
        Ok(())
    } else {
        Err(IntakeError::NotAuthentic("wrong secret token"))
    }
}

#[derive(Deserialize)]
struct Update {
    update_id: i64,
    message: Option<Message>,
    edited_message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    message_id: i64,
    from: Option<User>,
    chat: Chat,
    date: i64,
    text: Option<String>,
    caption: Option<String>,
    reply_to_message: Option<Box<Message>>,
}

#[derive(Deserialize)]
struct User {
    id: i64,
    first_name: Option<String>,
    last_name: Option<String>,
    username: Option<String>,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
}

/// The inbound message of an update (none for updates without a message).
pub fn parse_update(
    body: &[u8],
    raw_sha256: &str,
    default_case_type: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Inbound>, IntakeError> {
    let update: Update = serde_json::from_slice(body)
        .map_err(|e| IntakeError::Malformed(format!("not a Telegram update: {e}")))?;
    let edited = update.edited_message.is_some();
    let Some(m) = update.message.or(update.edited_message) else {
        return Ok(Vec::new());
    };
    let name = m.from.as_ref().map(|u| {
        [u.first_name.as_deref(), u.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
    });
    let handle = m.from.as_ref().map(|u| match &u.username {
        Some(username) => format!("telegram @{username}"),
        None => format!("telegram {}", u.id),
    });
    let text = m.text.or(m.caption).unwrap_or_default();
    let id = format!("telegram:{}:{}", m.chat.id, m.message_id);
    let mut flags = Vec::new();
    if edited {
        flags.push("edited_message".to_owned());
    }
    Ok(vec![Inbound {
        explicit_case: None,
        channel: Channel::Telegram,
        source: format!("telegram-update:{}", update.update_id),
        // An edit is a new version of the message: its own key, threaded to the original.
        dedupe_key: if edited {
            format!("{id}:edit:{}", update.update_id)
        } else {
            id.clone()
        },
        message_id: Some(id),
        in_reply_to: m
            .reply_to_message
            .map(|r| format!("telegram:{}:{}", m.chat.id, r.message_id))
            .into_iter()
            .collect(),
        received_at: from_unix(m.date, now),
        sender_label: [name.clone().filter(|n| !n.is_empty()), handle]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", "),
        sender: CitizenInput {
            name: name.filter(|n| !n.is_empty()),
            ..CitizenInput::default()
        },
        subject: subject_from(&text, "Messaggio Telegram"),
        text,
        receipt: None,
        flags,
        default_case_type: default_case_type.to_owned(),
        raw_sha256: raw_sha256.to_owned(),
        attachments: Vec::new(),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_token() {
        assert_eq!(verify_secret(Some("tg-7"), Some("tg-7")), Ok(()));
        assert!(matches!(
            verify_secret(Some("nope"), Some("tg-7")),
            Err(IntakeError::NotAuthentic(_))
        ));
        assert!(matches!(
            verify_secret(None, Some("tg-7")),
            Err(IntakeError::NotAuthentic(_))
        ));
        assert!(matches!(
            verify_secret(Some("tg-7"), None),
            Err(IntakeError::NotConfigured(_))
        ));
    }

    #[test]
    fn updates() {
        let now = chrono::DateTime::from_timestamp(1_764_150_000, 0).unwrap();
        let body = br#"{"update_id":1,"message":{"message_id":7,"from":{"id":5,"is_bot":false,"first_name":"Davide","last_name":"Greco"},
            "chat":{"id":5,"type":"private"},"date":1764150000,"text":"Come rinnovo il permesso?"}}"#;
        let msgs = parse_update(body, "ab", "ztl_permit", now).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].dedupe_key, "telegram:5:7");
        assert_eq!(msgs[0].sender.name.as_deref(), Some("Davide Greco"));
        assert_eq!(msgs[0].subject, "Come rinnovo il permesso?");
        assert!(
            parse_update(br#"{"update_id":2}"#, "ab", "ztl_permit", now)
                .unwrap()
                .is_empty()
        );
        assert!(parse_update(b"[]", "ab", "ztl_permit", now).is_err());
    }
}
