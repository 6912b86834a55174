//! The HTTP channels: the SMS gateway, WhatsApp Cloud API and Telegram Bot API.
//!
//! Every request carries the Message-ID as `Idempotency-Key`. Errors never include the
//! request URL (the Telegram token is part of it, SMS gateways often put keys there).

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use sportello_config::{OutboundTelegramConfig, OutboundWhatsappConfig, SmsConfig};

use crate::{Envelope, SendError, Sent, bare_id, subject_and_body};

/// Longest text of one WhatsApp or Telegram message, in UTF-16 code units; longer texts go
/// as several messages.
const MAX_CHAT_TEXT: usize = 4096;
/// How much of an error answer is quoted in the error.
const QUOTE: usize = 300;

/// `[outbound.sms]`, ready.
pub(crate) struct SmsRoute {
    url: String,
    body: String,
    content_type: String,
    token: Option<String>,
}

impl SmsRoute {
    pub(crate) fn from_config(config: &SmsConfig) -> Result<SmsRoute, &'static str> {
        let url = config.url.as_ref().ok_or("outbound.sms.url")?;
        Ok(SmsRoute {
            url: url.expose().to_owned(),
            body: config.body.clone(),
            content_type: config.content_type.clone(),
            token: config.token.as_ref().map(|t| t.expose().to_owned()),
        })
    }

    /// POSTs the filled-in body template; the gateway's `id`/`message_id` is the reference.
    pub(crate) async fn send(
        &self,
        client: &reqwest::Client,
        envelope: &Envelope,
    ) -> Result<Sent, SendError> {
        let escape = Escape::for_content_type(&self.content_type);
        let id = bare_id(&envelope.message_id);
        let body = render(&self.body, escape, |name| match name {
            "to" => Some(envelope.to.trim()),
            "text" => Some(envelope.body.as_str()),
            "id" => Some(id),
            "subject" => Some(envelope.subject.as_str()),
            _ => None,
        });
        let mut request = client
            .post(&self.url)
            .header(CONTENT_TYPE, &self.content_type)
            .header("Idempotency-Key", id)
            .body(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let (status, answer) = execute(request).await?;
        check_status(status, &answer)?;
        let provider_ref = serde_json::from_slice::<Value>(&answer)
            .ok()
            .and_then(|v| ["id", "message_id"].iter().find_map(|k| scalar(v.get(*k)?)));
        Ok(Sent { provider_ref })
    }
}

/// `[outbound.whatsapp]`, ready.
pub(crate) struct WhatsappRoute {
    endpoint: String,
    token: String,
    template: Option<(String, String)>,
}

impl WhatsappRoute {
    pub(crate) fn from_config(
        config: &OutboundWhatsappConfig,
    ) -> Result<WhatsappRoute, &'static str> {
        let id = config
            .phone_number_id
            .as_deref()
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .ok_or("outbound.whatsapp.phone_number_id")?;
        let token = config
            .access_token
            .as_ref()
            .ok_or("outbound.whatsapp.access_token")?;
        Ok(WhatsappRoute {
            endpoint: format!("{}/{id}/messages", config.base_url.trim_end_matches('/')),
            token: token.expose().to_owned(),
            template: config
                .template_name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| (n.to_owned(), config.template_language.clone())),
        })
    }

    /// Free text inside the 24-hour window, else the configured template; the `wamid` of
    /// the (first) message is the reference.
    pub(crate) async fn send(
        &self,
        client: &reqwest::Client,
        envelope: &Envelope,
    ) -> Result<Sent, SendError> {
        let to: String = envelope.to.chars().filter(char::is_ascii_digit).collect();
        if to.len() < 6 {
            return Err(SendError::Permanent(format!(
                "not a WhatsApp phone number: {:?}",
                envelope.to
            )));
        }
        let bodies: Vec<Value> = if envelope.whatsapp_template {
            let (name, language) = self
                .template
                .as_ref()
                .ok_or(SendError::NotConfigured("outbound.whatsapp.template_name"))?;
            vec![json!({
                "messaging_product": "whatsapp",
                "to": to,
                "type": "template",
                "template": {
                    "name": name,
                    "language": {"code": language},
                    "components": [{
                        "type": "body",
                        "parameters": [{"type": "text", "text": envelope.subject}],
                    }],
                },
            })]
        } else {
            split_text(&subject_and_body(envelope), MAX_CHAT_TEXT)
                .into_iter()
                .map(|text| {
                    json!({
                        "messaging_product": "whatsapp",
                        "to": to,
                        "type": "text",
                        "text": {"body": text},
                    })
                })
                .collect()
        };
        let id = bare_id(&envelope.message_id);
        let mut first = None;
        for (i, body) in bodies.iter().enumerate() {
            let key = if i == 0 {
                id.to_owned()
            } else {
                format!("{id}#{i}")
            };
            let request = client
                .post(&self.endpoint)
                .bearer_auth(&self.token)
                .header("Idempotency-Key", key)
                .json(body);
            let (status, answer) = execute(request).await?;
            let parsed = serde_json::from_slice::<Value>(&answer).ok();
            if !status.is_success() {
                return Err(whatsapp_error(status, parsed.as_ref(), &answer));
            }
            let wamid = parsed
                .as_ref()
                .and_then(|v| v.pointer("/messages/0/id"))
                .and_then(scalar);
            if wamid.is_none() {
                tracing::warn!("WhatsApp accepted a message but gave no id");
            }
            if first.is_none() {
                first = Some(wamid);
            }
        }
        Ok(Sent {
            provider_ref: first.flatten(),
        })
    }
}

/// Graph API errors: throttling codes come with HTTP 400 but are worth retrying.
fn whatsapp_error(status: StatusCode, answer: Option<&Value>, raw: &[u8]) -> SendError {
    let code = answer
        .and_then(|v| v.pointer("/error/code"))
        .and_then(Value::as_i64);
    let message = answer
        .and_then(|v| v.pointer("/error/message"))
        .and_then(Value::as_str)
        .map_or_else(|| quote(raw), str::to_owned);
    let text = match code {
        Some(code) => format!("WhatsApp HTTP {status}, error {code}: {message}"),
        None => format!("WhatsApp HTTP {status}: {message}"),
    };
    // 4 app, 80007 account, 130429 throughput, 131048 spam, 131056 pair rate limits;
    // 131000/131016 "something went wrong"/"service unavailable".
    let throttled = matches!(
        code,
        Some(4 | 80007 | 130429 | 131048 | 131056 | 131000 | 131016)
    );
    if throttled || retryable_status(status) {
        SendError::Retryable(text)
    } else {
        SendError::Permanent(text)
    }
}

/// `[outbound.telegram]`, ready.
pub(crate) struct TelegramRoute {
    /// Holds the bot token: never printed.
    endpoint: String,
}

impl TelegramRoute {
    pub(crate) fn from_config(
        config: &OutboundTelegramConfig,
    ) -> Result<TelegramRoute, &'static str> {
        let token = config
            .bot_token
            .as_ref()
            .map(|t| t.expose().trim())
            .filter(|t| !t.is_empty())
            .ok_or("outbound.telegram.bot_token")?;
        Ok(TelegramRoute {
            endpoint: format!(
                "{}/bot{token}/sendMessage",
                config.base_url.trim_end_matches('/')
            ),
        })
    }

    /// `sendMessage` with subject and body; the reference is `telegram:{chat}:{message}`,
    /// the form intake gives Telegram messages, so that the citizen's replies thread.
    pub(crate) async fn send(
        &self,
        client: &reqwest::Client,
        envelope: &Envelope,
    ) -> Result<Sent, SendError> {
        let to = envelope.to.trim();
        if to.is_empty() {
            return Err(SendError::Permanent("no Telegram chat id".into()));
        }
        let id = bare_id(&envelope.message_id);
        let mut first = None;
        for (i, text) in split_text(&subject_and_body(envelope), MAX_CHAT_TEXT)
            .into_iter()
            .enumerate()
        {
            let key = if i == 0 {
                id.to_owned()
            } else {
                format!("{id}#{i}")
            };
            let request = client
                .post(&self.endpoint)
                .header("Idempotency-Key", key)
                .json(&json!({"chat_id": to, "text": text}));
            let (status, answer) = execute(request).await?;
            let reference = telegram_answer(status, &answer, to)?;
            if first.is_none() {
                first = Some(reference);
            }
        }
        Ok(Sent {
            provider_ref: first,
        })
    }
}

/// `{"ok":true,"result":{"message_id":N,"chat":{"id":C}}}` → `telegram:C:N`.
fn telegram_answer(status: StatusCode, answer: &[u8], to: &str) -> Result<String, SendError> {
    let Ok(v) = serde_json::from_slice::<Value>(answer) else {
        check_status(status, answer)?;
        return Err(SendError::Retryable(format!(
            "Telegram answered HTTP {status} without JSON: {}",
            quote(answer)
        )));
    };
    if v.get("ok").and_then(Value::as_bool) == Some(true) {
        let message = v
            .pointer("/result/message_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| {
                SendError::Retryable("Telegram answered ok without a message_id".into())
            })?;
        let chat = v
            .pointer("/result/chat/id")
            .and_then(scalar)
            .unwrap_or_else(|| to.to_owned());
        return Ok(format!("telegram:{chat}:{message}"));
    }
    let code = v
        .get("error_code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(status);
    let description = v
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("no description");
    let retry_after = v
        .pointer("/parameters/retry_after")
        .and_then(Value::as_u64)
        .map(|s| format!(" (retry after {s} s)"))
        .unwrap_or_default();
    let text = format!(
        "Telegram error {}: {description}{retry_after}",
        code.as_u16()
    );
    if retryable_status(code) {
        Err(SendError::Retryable(text))
    } else {
        Err(SendError::Permanent(text))
    }
}

/// Sends the request; transport failures are retryable, and never name the URL.
async fn execute(request: reqwest::RequestBuilder) -> Result<(StatusCode, Vec<u8>), SendError> {
    let response = request.send().await.map_err(|e| {
        let builder = e.is_builder();
        let text = format!("HTTP: {}", e.without_url());
        if builder {
            SendError::Permanent(text)
        } else {
            SendError::Retryable(text)
        }
    })?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| SendError::Retryable(format!("HTTP answer: {}", e.without_url())))?;
    Ok((status, body.to_vec()))
}

/// 2xx → fine; 408, 429, 5xx and 401 (the credentials, not the message) → retry; else never.
fn check_status(status: StatusCode, answer: &[u8]) -> Result<(), SendError> {
    if status.is_success() {
        return Ok(());
    }
    let text = format!("HTTP {status}: {}", quote(answer));
    if retryable_status(status) {
        Err(SendError::Retryable(text))
    } else {
        Err(SendError::Permanent(text))
    }
}

fn retryable_status(status: StatusCode) -> bool {
    status.is_server_error()
        || matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT | StatusCode::UNAUTHORIZED
        )
}

/// The start of an answer, for error messages.
fn quote(answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(answer);
    let text = text.trim();
    match text.char_indices().nth(QUOTE) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// A JSON string or number as text.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// How placeholder values are written into a body template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// Inside a JSON string.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// As is.
    None,
}

impl Escape {
    fn for_content_type(content_type: &str) -> Escape {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if essence == "application/json" || essence.ends_with("+json") {
            Escape::Json
        } else if essence == "application/x-www-form-urlencoded" {
            Escape::Form
        } else {
            Escape::None
        }
    }

    fn apply(self, value: &str, out: &mut String) {
        match self {
            Escape::Json => {
                let quoted = Value::String(value.to_owned()).to_string();
                out.push_str(&quoted[1..quoted.len() - 1]);
            }
            Escape::Form => out.extend(url::form_urlencoded::byte_serialize(value.as_bytes())),
            Escape::None => out.push_str(value),
        }
    }
}

/// Replaces each `{name}` that `value` knows, in one pass (a value containing `{id}` is
/// not expanded again); other braces stay as they are.
fn render<'a>(template: &str, escape: Escape, value: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let known = after
            .find('}')
            .map(|close| &after[..close])
            .filter(|name| name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .and_then(|name| value(name).map(|v| (name.len(), v)));
        match known {
            Some((len, v)) => {
                escape.apply(v, &mut out);
                rest = &after[len + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Splits `text` into pieces of at most `max` UTF-16 code units, at a paragraph, line or
/// word boundary when there is one in the second half of the piece.
fn split_text(text: &str, max: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest = text.trim();
    loop {
        if rest.encode_utf16().count() <= max {
            pieces.push(rest.to_owned());
            return pieces;
        }
        // The longest prefix within the limit.
        let mut units = 0;
        let mut end = 0;
        for (i, c) in rest.char_indices() {
            if units + c.len_utf16() > max {
                break;
            }
            units += c.len_utf16();
            end = i + c.len_utf8();
        }
        let window = &rest[..end];
        let cut = ["\n\n", "\n", " "]
            .iter()
            .find_map(|sep| window.rfind(sep).filter(|&at| at > end / 2))
            .unwrap_or(end);
        pieces.push(rest[..cut].trim_end().to_owned());
        rest = rest[cut..].trim_start();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_escape_for_their_content_type() {
        let values = |name: &str| match name {
            "to" => Some("+393331234567"),
            "text" => Some("Disse \"ok\"\nà {id}"),
            "id" => Some("out-1@x"),
            _ => None,
        };
        let body = render(sportello_config::DEFAULT_SMS_BODY, Escape::Json, values);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["text"], "Disse \"ok\"\nà {id}");
        assert_eq!(v["id"], "out-1@x");
        let body = render("to={to}&msg={text}&x={unknown}", Escape::Form, values);
        assert_eq!(
            body,
            "to=%2B393331234567&msg=Disse+%22ok%22%0A%C3%A0+%7Bid%7D&x={unknown}"
        );
        assert_eq!(
            Escape::for_content_type("application/json; charset=utf-8"),
            Escape::Json
        );
        assert_eq!(Escape::for_content_type("text/plain"), Escape::None);
    }

    #[test]
    fn long_texts_split_at_boundaries() {
        assert_eq!(split_text("breve", 4096), vec!["breve"]);
        let text = format!("{}\n\n{}", "a".repeat(3000), "b ".repeat(1000));
        let pieces = split_text(&text, 4096);
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0], "a".repeat(3000));
        let emoji = "😀".repeat(3000);
        let pieces = split_text(&emoji, 4096);
        assert!(pieces.iter().all(|p| p.encode_utf16().count() <= 4096));
        assert_eq!(pieces.concat(), emoji);
    }

    #[test]
    fn statuses_are_classified() {
        assert!(check_status(StatusCode::OK, b"").is_ok());
        for s in [429, 500, 503, 408, 401] {
            let status = StatusCode::from_u16(s).unwrap();
            assert!(matches!(
                check_status(status, b""),
                Err(SendError::Retryable(_))
            ));
        }
        for s in [400, 403, 404, 422] {
            let status = StatusCode::from_u16(s).unwrap();
            assert!(matches!(
                check_status(status, b""),
                Err(SendError::Permanent(_))
            ));
        }
        let throttled = json!({"error": {"code": 130429, "message": "Rate limit hit"}});
        assert!(matches!(
            whatsapp_error(StatusCode::BAD_REQUEST, Some(&throttled), b""),
            SendError::Retryable(_)
        ));
        let window = json!({"error": {"code": 131047, "message": "Re-engagement message"}});
        assert!(matches!(
            whatsapp_error(StatusCode::BAD_REQUEST, Some(&window), b""),
            SendError::Permanent(m) if m.contains("131047")
        ));
    }

    #[test]
    fn telegram_answers() {
        let ok = br#"{"ok":true,"result":{"message_id":7,"chat":{"id":5}}}"#;
        assert_eq!(
            telegram_answer(StatusCode::OK, ok, "5").unwrap(),
            "telegram:5:7"
        );
        let blocked = br#"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#;
        assert!(matches!(
            telegram_answer(StatusCode::FORBIDDEN, blocked, "5"),
            Err(SendError::Permanent(_))
        ));
        let flood = br#"{"ok":false,"error_code":429,"description":"Too Many Requests","parameters":{"retry_after":3}}"#;
        assert!(matches!(
            telegram_answer(StatusCode::TOO_MANY_REQUESTS, flood, "5"),
            Err(SendError::Retryable(m)) if m.contains("retry after 3")
        ));
    }
}
