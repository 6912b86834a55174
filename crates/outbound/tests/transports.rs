//! The transports against real services: an aiosmtpd SMTP server writing a Maildir and a
//! recording HTTP stub for the SMS gateway, WhatsApp and Telegram. No mocks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::json;
use sportello_config::{OutboundConfig, Secret, SecretUrl};
use sportello_domain::clock::FixedClock;
use sportello_outbound::testing::{HttpStub, SmtpSink, free_port};
use sportello_outbound::{Attachment, Channel, Envelope, SendError, Transports};

const WAIT: Duration = Duration::from_secs(10);
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n";

fn envelope(channel: Channel, to: &str) -> Envelope {
    Envelope {
        channel,
        to: to.into(),
        subject: "Pratica ZTL-2026-000042: permesso rilasciato".into(),
        body: "Gentile cittadina,\nil permesso è stato rilasciato.\n\nUfficio Permessi".into(),
        message_id: "out-42.1a2b@sportello.comune.example.it".into(),
        in_reply_to: None,
        references: Vec::new(),
        attachments: Vec::new(),
        whatsapp_template: false,
    }
}

fn pdf(name: &str) -> Attachment {
    Attachment {
        filename: name.into(),
        media_type: "application/pdf".into(),
        bytes: PDF.to_vec(),
    }
}

fn email_route(config: &mut OutboundConfig, url: &str) {
    config.email.smtp_url = Some(SecretUrl(url.into()));
    config.email.from = Some("Ufficio Permessi <permessi@comune.example.it>".into());
}

fn transports(config: &OutboundConfig) -> Transports {
    Transports::from_config(config).expect("valid configuration")
}

fn parse(raw: &[u8]) -> mail_parser::Message<'_> {
    MessageParser::default()
        .parse(raw)
        .expect("a parsable message")
}

#[tokio::test]
async fn an_email_threads_and_carries_its_pdf() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let mut config = OutboundConfig::default();
    email_route(&mut config, &sink.url());
    let now = Utc.with_ymd_and_hms(2026, 11, 26, 9, 30, 0).unwrap();
    let t = transports(&config).with_clock(Arc::new(FixedClock::new(now)));
    assert!(t.is_configured(Channel::Email));

    let mut e = envelope(Channel::Email, "maria.rossi@example.it");
    e.in_reply_to = Some("CAF=q1@mail.example.it".into());
    e.references = vec!["q0@mail.example.it".into(), "CAF=q1@mail.example.it".into()];
    e.attachments = vec![pdf("ZTL-2026-000042-permesso.pdf")];
    let sent = t.send(&e).await.expect("sent");
    assert_eq!(sent.provider_ref, None);

    let raw = sink.wait_for(1, WAIT);
    assert_eq!(raw.len(), 1);
    let m = parse(&raw[0]);
    assert_eq!(
        m.from().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("permessi@comune.example.it")
    );
    assert_eq!(
        m.to().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("maria.rossi@example.it")
    );
    assert_eq!(m.subject(), Some(e.subject.as_str()));
    assert_eq!(
        m.message_id(),
        Some("out-42.1a2b@sportello.comune.example.it")
    );
    assert_eq!(m.in_reply_to().as_text(), Some("CAF=q1@mail.example.it"));
    let refs: Vec<&str> = m
        .references()
        .as_text_list()
        .map(|l| l.iter().map(|r| r.as_ref()).collect())
        .unwrap_or_default();
    assert_eq!(refs, ["q0@mail.example.it", "CAF=q1@mail.example.it"]);
    assert_eq!(m.date().map(|d| d.to_timestamp()), Some(now.timestamp()));
    assert!(m.header("Auto-Submitted").is_none());
    assert_eq!(
        m.body_text(0).as_deref().map(str::trim_end),
        Some(e.body.as_str())
    );
    let attachments: Vec<_> = m.attachments().collect();
    assert_eq!(attachments.len(), 1);
    assert_eq!(
        attachments[0].attachment_name(),
        Some("ZTL-2026-000042-permesso.pdf")
    );
    let ct = attachments[0].content_type().expect("content type");
    assert_eq!((ct.ctype(), ct.subtype()), ("application", Some("pdf")));
    assert_eq!(attachments[0].contents(), PDF);
    let text = m
        .text_bodies()
        .next()
        .and_then(|p| p.content_type())
        .expect("text part");
    assert_eq!((text.ctype(), text.subtype()), ("text", Some("plain")));
    assert!(
        text.attribute("charset")
            .is_some_and(|c| c.eq_ignore_ascii_case("utf-8")),
        "{text:?}"
    );
}

#[tokio::test]
async fn pec_leaves_by_the_pec_route() {
    let (Some(mail), Some(pec)) = (SmtpSink::start(), SmtpSink::start()) else {
        return;
    };
    let mut config = OutboundConfig::default();
    email_route(&mut config, &mail.url());
    config.pec.smtp_url = Some(SecretUrl(pec.url()));
    config.pec.from = Some("protocollo@pec.comune.example.it".into());
    let t = transports(&config);

    let e = envelope(Channel::Pec, "mario.bianchi@pec.example.it");
    t.send(&e).await.expect("sent");
    let raw = pec.wait_for(1, WAIT);
    assert_eq!(raw.len(), 1);
    let m = parse(&raw[0]);
    assert_eq!(
        m.from().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("protocollo@pec.comune.example.it")
    );
    assert_eq!(
        m.header_raw("X-MailFrom").map(str::trim),
        Some("protocollo@pec.comune.example.it")
    );
    assert_eq!(
        m.header_raw("X-RcptTo").map(str::trim),
        Some("mario.bianchi@pec.example.it")
    );
    assert!(
        mail.messages().is_empty(),
        "PEC must not go through ordinary e-mail"
    );
}

#[tokio::test]
async fn fax_by_mail_goes_to_the_gateway_with_the_pdf() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let mut config = OutboundConfig::default();
    email_route(&mut config, &sink.url());
    config.fax.gateway = Some("mailto:{number}@faxgateway.example.it".into());
    let t = transports(&config);
    assert!(t.is_configured(Channel::Fax));

    let mut e = envelope(Channel::Fax, "+39 055 123.4567");
    e.attachments = vec![
        pdf("lettera.pdf"),
        Attachment {
            filename: "note.txt".into(),
            media_type: "text/plain".into(),
            bytes: b"not for the fax".to_vec(),
        },
    ];
    let sent = t.send(&e).await.expect("sent");
    assert_eq!(sent.provider_ref, None);
    let raw = sink.wait_for(1, WAIT);
    assert_eq!(raw.len(), 1);
    let m = parse(&raw[0]);
    assert_eq!(
        m.to().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("00390551234567@faxgateway.example.it")
    );
    assert_eq!(m.subject(), Some(e.subject.as_str()));
    let names: Vec<_> = m
        .attachments()
        .filter_map(|a| a.attachment_name())
        .collect();
    assert_eq!(names, ["lettera.pdf"]);

    // No PDF, no fax; no e-mail route, no fax by e-mail.
    e.attachments.clear();
    assert!(matches!(t.send(&e).await, Err(SendError::Permanent(_))));
    let mut no_mail = OutboundConfig::default();
    no_mail.fax.gateway = config.fax.gateway.clone();
    let t = transports(&no_mail);
    assert!(!t.is_configured(Channel::Fax));
    e.attachments = vec![pdf("lettera.pdf")];
    assert_eq!(
        t.send(&e).await,
        Err(SendError::NotConfigured("outbound.email.smtp_url"))
    );
}

#[tokio::test]
async fn fax_spool_jobs_are_atomic_and_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("outgoing");
    let mut config = OutboundConfig::default();
    config.fax.gateway = Some(format!("spool:{}", spool.display()));
    let t = transports(&config);
    assert!(t.is_configured(Channel::Fax));

    let mut e = envelope(Channel::Fax, "+39 055 1234567");
    e.subject = "Pratica ZTL-2026-000042\nannullamento".into();
    e.attachments = vec![pdf("lettera.pdf")];
    let sent = t.send(&e).await.expect("spooled");
    let job = "sportello-out-42.1a2b_sportello.comune.example.it";
    assert_eq!(sent.provider_ref.as_deref(), Some(job));

    let mut names: Vec<String> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [format!("{job}.job"), format!("{job}.pdf")],
        "no temporary files left"
    );
    assert_eq!(
        std::fs::read(spool.join(format!("{job}.pdf"))).unwrap(),
        PDF
    );
    let description = std::fs::read_to_string(spool.join(format!("{job}.job"))).unwrap();
    assert_eq!(
        description,
        format!(
            "number:00390551234567\ndocument:{job}.pdf\nsubject:Pratica ZTL-2026-000042 annullamento\nmailaddr:\npriority:127\n"
        )
    );

    // Sent again (a retry after a crash): the same job, untouched.
    std::fs::write(spool.join(format!("{job}.job")), "number:already-taken\n").unwrap();
    let again = t.send(&e).await.expect("idempotent");
    assert_eq!(again, sent);
    assert_eq!(
        std::fs::read_to_string(spool.join(format!("{job}.job"))).unwrap(),
        "number:already-taken\n"
    );
    assert!(matches!(
        t.send(&envelope(Channel::Fax, "call me maybe")).await,
        Err(SendError::Permanent(_))
    ));
}

fn sms_config(stub: &HttpStub) -> OutboundConfig {
    let mut config = OutboundConfig::default();
    config.sms.url = Some(SecretUrl(format!("{}/api/send", stub.url())));
    config.sms.token = Some(Secret("sms-secret-token".into()));
    config
}

#[tokio::test]
async fn sms_fills_the_template_with_json_escaping() {
    let stub = HttpStub::start().await;
    let t = transports(&sms_config(&stub));
    let mut e = envelope(Channel::Sms, "+393331234567");
    e.body = "Permesso \"ZTL\" pronto:\nritiro allo sportello \\ {id}".into();
    let sent = t.send(&e).await.expect("sent");
    assert_eq!(sent.provider_ref.as_deref(), Some("sms-1"));

    let requests = stub.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/api/send"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("authorization"), Some("Bearer sms-secret-token"));
    assert_eq!(
        r.header("idempotency-key"),
        Some("out-42.1a2b@sportello.comune.example.it")
    );
    assert_eq!(
        r.json(),
        json!({
            "to": "+393331234567",
            "text": e.body,
            "id": "out-42.1a2b@sportello.comune.example.it",
        })
    );
}

#[tokio::test]
async fn sms_custom_form_template_and_gateway_ids() {
    let stub = HttpStub::start().await;
    let mut config = sms_config(&stub);
    config.sms.content_type = "application/x-www-form-urlencoded".into();
    config.sms.body = "dest={to}&msg={text}&ref={id}".into();
    config.sms.token = None;
    let t = transports(&config);
    stub.push_answer("/api/send", 200, json!({"message_id": 987}));
    let mut e = envelope(Channel::Sms, "+393331234567");
    e.body = "a&b = c".into();
    let sent = t.send(&e).await.expect("sent");
    assert_eq!(sent.provider_ref.as_deref(), Some("987"));
    let r = &stub.requests()[0];
    assert_eq!(
        r.text(),
        "dest=%2B393331234567&msg=a%26b+%3D+c&ref=out-42.1a2b%40sportello.comune.example.it"
    );
    assert_eq!(r.header("authorization"), None);
}

#[tokio::test]
async fn http_errors_are_classified() {
    let stub = HttpStub::start().await;
    let t = transports(&sms_config(&stub));
    let e = envelope(Channel::Sms, "+393331234567");
    stub.push_answer("/api/send", 500, json!({"error": "down"}));
    stub.push_answer("/api/send", 429, json!({"error": "slow down"}));
    stub.push_answer("/api/send", 400, json!({"error": "bad number"}));
    assert!(matches!(t.send(&e).await, Err(SendError::Retryable(m)) if m.contains("500")));
    assert!(matches!(t.send(&e).await, Err(SendError::Retryable(m)) if m.contains("429")));
    assert!(matches!(t.send(&e).await, Err(SendError::Permanent(m)) if m.contains("bad number")));
    assert!(t.send(&e).await.is_ok());

    // Nobody listening: retry later.
    let mut config = OutboundConfig::default();
    config.sms.url = Some(SecretUrl(format!(
        "http://127.0.0.1:{}/send?apikey=hidden-key",
        free_port()
    )));
    let t = transports(&config);
    match t.send(&e).await {
        Err(SendError::Retryable(m)) => assert!(!m.contains("hidden-key"), "{m}"),
        other => panic!("expected Retryable, got {other:?}"),
    }
}

fn whatsapp_config(stub: &HttpStub) -> OutboundConfig {
    let mut config = OutboundConfig::default();
    config.whatsapp.base_url = format!("{}/v21.0", stub.url());
    config.whatsapp.phone_number_id = Some("1098765".into());
    config.whatsapp.access_token = Some(Secret("wa-secret".into()));
    config
}

#[tokio::test]
async fn whatsapp_text_and_template() {
    let stub = HttpStub::start().await;
    let t = transports(&whatsapp_config(&stub));
    let e = envelope(Channel::Whatsapp, "+39 333 123 4567");
    let sent = t.send(&e).await.expect("sent");
    assert_eq!(sent.provider_ref.as_deref(), Some("wamid.1"));
    let r = &stub.requests()[0];
    assert_eq!(r.path, "/v21.0/1098765/messages");
    assert_eq!(r.header("authorization"), Some("Bearer wa-secret"));
    assert_eq!(
        r.json(),
        json!({
            "messaging_product": "whatsapp",
            "to": "393331234567",
            "type": "text",
            "text": {"body": format!("{}\n\n{}", e.subject, e.body)},
        })
    );

    // Outside the 24-hour window: the template, once configured.
    let mut late = e.clone();
    late.whatsapp_template = true;
    assert_eq!(
        t.send(&late).await,
        Err(SendError::NotConfigured("outbound.whatsapp.template_name"))
    );
    let mut config = whatsapp_config(&stub);
    config.whatsapp.template_name = Some("aggiornamento_pratica".into());
    let t = transports(&config);
    let sent = t.send(&late).await.expect("sent");
    assert_eq!(sent.provider_ref.as_deref(), Some("wamid.2"));
    let requests = stub.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1].json(),
        json!({
            "messaging_product": "whatsapp",
            "to": "393331234567",
            "type": "template",
            "template": {
                "name": "aggiornamento_pratica",
                "language": {"code": "it"},
                "components": [{
                    "type": "body",
                    "parameters": [{"type": "text", "text": e.subject}],
                }],
            },
        })
    );

    // Graph API errors: throttling is worth a retry, the closed window is not.
    stub.push_answer(
        "/v21.0/1098765/messages",
        400,
        json!({"error": {"code": 131056, "message": "pair rate limit hit"}}),
    );
    stub.push_answer(
        "/v21.0/1098765/messages",
        400,
        json!({"error": {"code": 131047, "message": "Re-engagement message"}}),
    );
    assert!(matches!(t.send(&e).await, Err(SendError::Retryable(_))));
    assert!(matches!(t.send(&e).await, Err(SendError::Permanent(m)) if m.contains("131047")));
}

#[tokio::test]
async fn telegram_references_thread_like_intake() {
    let stub = HttpStub::start().await;
    let mut config = OutboundConfig::default();
    config.telegram.base_url = stub.url();
    config.telegram.bot_token = Some(Secret("123456:SECRET-token".into()));
    let t = transports(&config);
    let e = envelope(Channel::Telegram, "5");
    let sent = t.send(&e).await.expect("sent");
    assert_eq!(sent.provider_ref.as_deref(), Some("telegram:5:1"));
    let r = &stub.requests()[0];
    assert_eq!(r.path, "/bot123456:SECRET-token/sendMessage");
    assert_eq!(
        r.json(),
        json!({"chat_id": "5", "text": format!("{}\n\n{}", e.subject, e.body)})
    );

    let path = "/bot123456:SECRET-token/sendMessage";
    stub.push_answer(
        path,
        429,
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 3", "parameters": {"retry_after": 3}}),
    );
    stub.push_answer(
        path,
        403,
        json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
    );
    stub.push_answer(
        path,
        502,
        json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}),
    );
    assert!(matches!(t.send(&e).await, Err(SendError::Retryable(_))));
    assert!(matches!(t.send(&e).await, Err(SendError::Permanent(m)) if m.contains("blocked")));
    assert!(matches!(t.send(&e).await, Err(SendError::Retryable(_))));

    // The token is in the URL: an error must not show it.
    config.telegram.base_url = format!("http://127.0.0.1:{}", free_port());
    let t = transports(&config);
    match t.send(&e).await {
        Err(SendError::Retryable(m)) => assert!(!m.contains("SECRET"), "{m}"),
        other => panic!("expected Retryable, got {other:?}"),
    }
    assert!(!format!("{t:?}").contains("SECRET"));
}

#[tokio::test]
async fn an_smtp_server_that_is_down_is_retryable() {
    let mut config = OutboundConfig::default();
    email_route(
        &mut config,
        &format!("smtp://user:pw-hidden@127.0.0.1:{}", free_port()),
    );
    let t = transports(&config);
    match t
        .send(&envelope(Channel::Email, "maria.rossi@example.it"))
        .await
    {
        Err(SendError::Retryable(m)) => assert!(!m.contains("pw-hidden"), "{m}"),
        other => panic!("expected Retryable, got {other:?}"),
    }
}

#[tokio::test]
async fn refused_recipients_are_permanent_deferred_ones_retryable() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let mut config = OutboundConfig::default();
    email_route(&mut config, &sink.url());
    let t = transports(&config);
    let refused = t
        .send(&envelope(Channel::Email, "refuse.me@example.it"))
        .await;
    assert!(
        matches!(&refused, Err(SendError::Permanent(m)) if m.contains("550")),
        "{refused:?}"
    );
    let deferred = t
        .send(&envelope(Channel::Email, "defer.me@example.it"))
        .await;
    assert!(
        matches!(&deferred, Err(SendError::Retryable(m)) if m.contains("451")),
        "{deferred:?}"
    );
    assert!(matches!(
        t.send(&envelope(Channel::Email, "not an address")).await,
        Err(SendError::Permanent(_))
    ));
    // The pool recovers: the next message goes.
    t.send(&envelope(Channel::Email, "maria.rossi@example.it"))
        .await
        .expect("sent after the refusals");
    assert_eq!(sink.wait_for(1, WAIT).len(), 1);
}

#[tokio::test]
async fn unconfigured_channels_name_their_key() {
    let t = transports(&OutboundConfig::default());
    let cases = [
        (Channel::Email, "outbound.email.smtp_url"),
        (Channel::Pec, "outbound.pec.smtp_url"),
        (Channel::Fax, "outbound.fax.gateway"),
        (Channel::Sms, "outbound.sms.url"),
        (Channel::Whatsapp, "outbound.whatsapp.phone_number_id"),
        (Channel::Telegram, "outbound.telegram.bot_token"),
    ];
    for (channel, key) in cases {
        assert!(!t.is_configured(channel));
        let mut e = envelope(channel, "x");
        e.attachments = vec![pdf("lettera.pdf")];
        assert_eq!(
            t.send(&e).await,
            Err(SendError::NotConfigured(key)),
            "{channel}"
        );
    }
    let mut config = OutboundConfig::default();
    config.pec.smtp_url = Some(SecretUrl("smtps://u:p@pec.example.it".into()));
    config.whatsapp.phone_number_id = Some("1".into());
    let t = transports(&config);
    assert_eq!(
        t.send(&envelope(Channel::Pec, "a@b.it")).await,
        Err(SendError::NotConfigured("outbound.pec.from"))
    );
    assert_eq!(
        t.send(&envelope(Channel::Whatsapp, "+393331234567")).await,
        Err(SendError::NotConfigured("outbound.whatsapp.access_token"))
    );
}
