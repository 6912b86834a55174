//! Writing to the citizen through the real server (issue #7): e-mail into a real SMTP
//! server (aiosmtpd) with threading headers and the reply coming back to the case; PEC
//! followed to delivery by receipts signed with the fixture provider's key; a letter and a
//! fax as PDFs; SMS, WhatsApp and Telegram into local gateways that record what they get;
//! a message never queued twice and never lost across a kill of the server.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use sportello_outbound::testing::{HttpStub, SmtpSink};

use crate::harness::Install;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

/// A header of a raw message, unfolded.
fn header(raw: &[u8], name: &str) -> Option<String> {
    let message = mail_parser::MessageParser::default().parse(raw)?;
    message
        .header_raw(name)
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn text_of(raw: &[u8]) -> String {
    mail_parser::MessageParser::default()
        .parse(raw)
        .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
        .unwrap_or_default()
}

async fn new_case(install: &Install, token: &str, channel: &str, citizen: Value) -> String {
    let (status, _, case) = install
        .call(
            "POST",
            "/api/v1/cases",
            Some(token),
            Some(
                json!({"case_type": "ztl_permit", "subject": "Permesso residenti",
                        "channel": channel, "citizen": citizen}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{case}");
    case["reference"].as_str().unwrap().to_owned()
}

/// An office with `config`, started, with an operator; returns it and the operator's token.
async fn office(config: &str) -> (Install, String) {
    let mut install = Install::new(config).await;
    let op = install.user("op", "operator");
    install.start(&[]).await;
    (install, op)
}

/// Writes to a case's citizen through the API: the status and the answer.
async fn write(install: &Install, token: &str, reference: &str, body: Value) -> (u16, Value) {
    let (status, _, answer) = install
        .call(
            "POST",
            &format!("/api/v1/cases/{reference}/messages"),
            Some(token),
            Some(body),
        )
        .await;
    (status, answer)
}

/// An office that writes e-mail into `sink` (`outbound` keys in `extra`), started, with
/// an operator; returns it and the operator's token.
async fn mailing_office(sink: &SmtpSink, extra: &str) -> (Install, String) {
    office(&format!(
        "[outbound]\n{extra}\n[outbound.email]\nsmtp_url = \"{}\"\nfrom = \"protocollo@comune.example.it\"\n",
        sink.url()
    ))
    .await
}

/// A case of a citizen who writes by e-mail.
async fn email_case(install: &Install, op: &str) -> String {
    new_case(
        install,
        op,
        "email",
        json!({"name": "Mario Rossi", "email": "mario.rossi@example.it"}),
    )
    .await
}

async fn act(install: &Install, token: &str, reference: &str, body: Value) -> Value {
    let (status, _, case) = install
        .call(
            "POST",
            &format!("/api/v1/cases/{reference}/actions"),
            Some(token),
            Some(body),
        )
        .await;
    assert_eq!(status, 200, "{case}");
    case
}

/// The case's outbound messages as the API lists them.
async fn outbound_of(install: &Install, token: &str, reference: &str) -> Value {
    let (status, _, list) = install
        .call(
            "GET",
            &format!("/api/v1/cases/{reference}/outbound"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    list
}

/// The case's outbound messages once none is waiting to be sent.
async fn settled(install: &Install, token: &str, reference: &str) -> Vec<Value> {
    for _ in 0..200 {
        let items = outbound_of(install, token, reference)
            .await
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !items.is_empty()
            && items
                .iter()
                .all(|m| !matches!(m["status"].as_str(), Some("queued" | "sending")))
        {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the messages of {reference} were not sent");
}

async fn ingest_email(install: &Install, token: &str, raw: Vec<u8>) -> Value {
    let response = install
        .client
        .post(format!("{}/api/v1/inbound/email", install.base()))
        .bearer_auth(token)
        .body(raw)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert!(status < 300, "{status} {body}");
    body
}

#[tokio::test]
async fn an_integration_request_reaches_the_citizen_by_email_and_the_reply_comes_back() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let (install, op) = mailing_office(&sink, "acknowledge = false").await;
    let mta = install.user("mta", "integration");
    let reference = email_case(&install, &op).await;
    act(&install, &op, &reference, json!({"action": "start_review"})).await;
    let case = act(
        &install,
        &op,
        &reference,
        json!({"action": "request_integration", "missing": ["carta_circolazione"]}),
    )
    .await;
    assert_eq!(case["status"], "waiting_citizen");
    let messages = settled(&install, &op, &reference).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let sent = &messages[0];
    assert_eq!(sent["status"], "sent", "{sent}");
    assert_eq!(sent["channel"], "email");
    assert_eq!(sent["template"], "integration_request");
    assert!(sent["protocol"].is_string(), "registered outgoing: {sent}");
    let received = sink.wait_for(1, Duration::from_secs(10));
    assert_eq!(received.len(), 1);
    let raw = &received[0];
    assert_eq!(header(raw, "To").unwrap().trim(), "mario.rossi@example.it");
    let subject = header(raw, "Subject").unwrap();
    assert!(subject.contains(&reference), "{subject}");
    let message_id = header(raw, "Message-ID").unwrap();
    assert!(message_id.ends_with("@comune.example.it>"), "{message_id}");
    assert_eq!(
        message_id.trim_matches(['<', '>', ' ']),
        sent["message_id"].as_str().unwrap()
    );
    let text = text_of(raw);
    assert!(text.contains("Carta di circolazione"), "{text}");
    assert!(text.contains("/stato/"), "the private link: {text}");
    // The timeline says it was queued, with its protocol number, and sent.
    let case = install.case(&op, &reference).await;
    let kinds: Vec<&str> = case["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"message_queued") && kinds.contains(&"message_sent"),
        "{kinds:?}"
    );
    // The citizen answers without the reference: In-Reply-To brings it to the case, and
    // the clock starts again.
    let reply = format!(
        "From: Mario Rossi <mario.rossi@example.it>\r\nTo: protocollo@comune.example.it\r\n\
         Subject: Re: documenti\r\nMessage-ID: <risposta-1@example.it>\r\nIn-Reply-To: {message_id}\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nEcco la carta di circolazione.\r\n"
    );
    let outcome = ingest_email(&install, &mta, reply.into_bytes()).await;
    assert_eq!(outcome["outcome"], "attached", "{outcome}");
    assert_eq!(outcome["case"], reference.as_str());
    let case = install.case(&op, &reference).await;
    assert_eq!(case["status"], "in_review", "{case}");
    // An appointment at the counter is proposed: the citizen is told when and where.
    let day = sportello_domain::calendar::rome_date(sportello_domain::clock::Clock::now(
        &sportello_domain::clock::SystemClock,
    )) + chrono::Duration::days(3);
    let starts_at = format!("{}T10:30", day.format("%Y-%m-%d"));
    let (status, _, appointment) = install
        .call(
            "POST",
            &format!("/api/v1/cases/{reference}/appointments"),
            Some(&op),
            Some(json!({"starts_at": starts_at, "reason": "Mostrare il libretto originale"})),
        )
        .await;
    assert_eq!(status, 201, "{appointment}");
    let received = sink.wait_for(2, Duration::from_secs(10));
    assert_eq!(received.len(), 2);
    let text = text_of(&received[1]);
    assert!(
        text.contains(&format!("{}, ore 10:30", day.format("%d/%m/%Y"))),
        "{text}"
    );
}

/// A PEC receipt as the provider sends it: S/MIME-signed with the fixture provider's key
/// (by the `openssl` command), `daticert.xml` naming the message it is about.
fn signed_receipt(kind: &str, refers_to: &str, error: &str, n: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let daticert = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<postacert tipo=\"{kind}\" errore=\"{}\">\n\
         <intestazione><mittente>protocollo@pec.comune.example.it</mittente>\
         <destinatari tipo=\"certificato\">mario.rossi@pec.example.it</destinatari>\
         <risposte>protocollo@pec.comune.example.it</risposte><oggetto>Risposta</oggetto></intestazione>\n\
         <dati><gestore-emittente>Gestore PEC di Prova</gestore-emittente>\
         <data zona=\"+0100\"><giorno>26/11/2026</giorno><ora>10:15:30</ora></data>\
         <identificativo>opec.{n}@pec.gestore-prova.it</identificativo>\
         <msgid>&lt;{refers_to}&gt;</msgid>{}</dati>\n</postacert>\n",
        if error.is_empty() { "nessuno" } else { "altro" },
        if error.is_empty() {
            String::new()
        } else {
            format!("<errore-esteso>{error}</errore-esteso>")
        }
    );
    let content = format!(
        "Content-Type: multipart/mixed; boundary=\"inner\"\r\n\r\n--inner\r\n\
         Content-Type: text/plain; charset=UTF-8\r\n\r\nRicevuta di {kind}\r\n--inner\r\n\
         Content-Type: application/xml; name=\"daticert.xml\"\r\nContent-Disposition: inline; filename=\"daticert.xml\"\r\n\r\n\
         {}\r\n--inner--\r\n",
        daticert.replace('\n', "\r\n")
    );
    let input = dir.path().join("content.eml");
    std::fs::write(&input, content).unwrap();
    let pec = fixtures().join("pec");
    let out = std::process::Command::new("openssl")
        .args(["smime", "-sign", "-md", "sha256", "-crlfeol", "-in"])
        .arg(&input)
        .arg("-signer")
        .arg(pec.join("pec-provider.pem"))
        .arg("-inkey")
        .arg(pec.join("pec-provider.key"))
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut raw = format!(
        "Return-Path: <posta-certificata@pec.gestore-prova.it>\r\nMessage-ID: <opec.{n}@pec.gestore-prova.it>\r\n\
         Date: Thu, 26 Nov 2026 10:15:30 +0100\r\nX-Ricevuta: {kind}\r\nSubject: {}: Risposta\r\n\
         From: posta-certificata@pec.gestore-prova.it\r\nTo: protocollo@pec.comune.example.it\r\n\
         X-Riferimento-Message-ID: <{refers_to}>\r\n",
        kind.to_uppercase()
    )
    .into_bytes();
    raw.extend_from_slice(&out.stdout);
    raw
}

#[tokio::test]
async fn a_pec_answer_is_accepted_then_delivered_by_signed_receipts() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let ca = fixtures().join("pec/pec-test-ca.pem");
    let mut install = Install::new(&format!(
        "[pec]\ntrust_anchors = \"{}\"\n[outbound]\nacknowledge = false\n[outbound.pec]\nsmtp_url = \"{}\"\nfrom = \"protocollo@pec.comune.example.it\"\n",
        ca.display(),
        sink.url()
    ))
    .await;
    let op = install.user("op", "operator");
    let mta = install.user("mta", "integration");
    install.start(&[]).await;
    let citizen = json!({"name": "Mario Rossi", "pec": "mario.rossi@pec.example.it", "email": "mario@example.it"});
    let reference = new_case(&install, &op, "pec", citizen.clone()).await;
    // A PEC must be answered by PEC: the default, and said why.
    let (_, _, choice) = install
        .call(
            "GET",
            &format!("/api/v1/cases/{reference}/channels"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(choice["default"], "pec", "{choice}");
    assert!(choice["reason"].as_str().unwrap().contains("PEC"));
    let (status, sent) = write(
        &install,
        &op,
        &reference,
        json!({"template": "acknowledgement"}),
    )
    .await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(sent["channel"], "pec");
    let id = sent["id"].as_i64().unwrap();
    let messages = settled(&install, &op, &reference).await;
    assert_eq!(messages[0]["status"], "sent");
    let message_id = messages[0]["message_id"].as_str().unwrap().to_owned();
    // The answer named the message by its Message-ID, as the receipts will.
    assert_eq!(sent["message_id"], message_id.as_str());
    let received = sink.wait_for(1, Duration::from_secs(10));
    assert_eq!(
        header(&received[0], "To").unwrap().trim(),
        "mario.rossi@pec.example.it"
    );
    for (n, kind, expected) in [
        (1, "accettazione", "accepted"),
        (2, "avvenuta-consegna", "delivered"),
    ] {
        let outcome = ingest_email(&install, &mta, signed_receipt(kind, &message_id, "", n)).await;
        assert_eq!(outcome["outcome"], "receipt", "{outcome}");
        let flags: Vec<&str> = outcome["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        assert!(
            !flags.contains(&"unmatched_receipt") && !flags.contains(&"pec_signature_invalid"),
            "{outcome}"
        );
        let list = outbound_of(&install, &op, &reference).await;
        let message = list
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap();
        assert_eq!(message["status"], expected, "{message}");
    }
    // A second message that the provider cannot deliver: failed with its words, flagged.
    let (_, second) = write(
        &install,
        &op,
        &reference,
        json!({"subject": "Chiarimento", "body": "Buongiorno, ci serve un chiarimento."}),
    )
    .await;
    let second_id = second["id"].as_i64().unwrap();
    let messages = settled(&install, &op, &reference).await;
    let second_mid = messages.iter().find(|m| m["id"] == second_id).unwrap()["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    ingest_email(
        &install,
        &mta,
        signed_receipt("errore-consegna", &second_mid, "casella piena", 3),
    )
    .await;
    let case = install.case(&op, &reference).await;
    assert!(
        case["flags"]
            .as_array()
            .unwrap()
            .contains(&json!("message_failed")),
        "{case}"
    );
    let list = outbound_of(&install, &op, &reference).await;
    let failed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == second_id)
        .unwrap();
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["last_error"], "casella piena");
}

#[tokio::test]
async fn a_letter_and_a_fax_come_out_as_pdfs_with_the_protocol_number() {
    let spool = tempfile::tempdir().unwrap();
    let (install, op) = office(&format!(
        "[outbound]\nacknowledge = false\n[outbound.fax]\ngateway = \"spool:{}\"\n",
        spool.path().display()
    ))
    .await;
    let reference = new_case(
        &install,
        &op,
        "fax",
        json!({"name": "Anna Bianchi", "fax": "+39 06 1234567"}),
    )
    .await;
    let letter = install
        .client
        .post(format!(
            "{}/api/v1/cases/{reference}/messages",
            install.base()
        ))
        .bearer_auth(&op)
        .json(&json!({"channel": "letter", "to": "Via Roma 1\n00100 Roma",
                      "subject": "Documenti mancanti", "body": "Gentile Anna Bianchi,\nmanca la carta di circolazione."}))
        .send()
        .await
        .unwrap();
    assert_eq!(letter.status().as_u16(), 201);
    assert_eq!(
        letter.headers()["content-type"].to_str().unwrap(),
        "application/pdf"
    );
    assert_eq!(letter.headers()["x-message-status"], "printed");
    let letter_id = letter.headers()["x-message-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let pdf = letter.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let list = outbound_of(&install, &op, &reference).await;
    let printed = &list[0];
    assert_eq!(printed["status"], "printed");
    assert_eq!(printed["message_id"], letter_id.as_str());
    let protocol = printed["protocol"].as_str().unwrap();
    assert!(
        String::from_utf8_lossy(&pdf).contains(protocol),
        "the protocol number {protocol} is printed"
    );
    // The fax: the default for a case that came by fax, a PDF job in the spool.
    let (status, sent) = write(
        &install,
        &op,
        &reference,
        json!({"subject": "Documenti", "body": "Manca la carta di circolazione."}),
    )
    .await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(sent["channel"], "fax");
    let messages = settled(&install, &op, &reference).await;
    let fax = messages.iter().find(|m| m["channel"] == "fax").unwrap();
    assert_eq!(fax["status"], "sent", "{fax}");
    let files: Vec<String> = std::fs::read_dir(spool.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(files.iter().any(|f| f.ends_with(".pdf")), "{files:?}");
    let job = files.iter().find(|f| !f.ends_with(".pdf")).unwrap();
    let job = std::fs::read_to_string(spool.path().join(job)).unwrap();
    assert!(
        job.contains("061234567") || job.contains("39061234567"),
        "{job}"
    );
}

#[tokio::test]
async fn sms_whatsapp_and_telegram_reach_their_gateways() {
    let stub = HttpStub::start().await;
    let (install, op) = office(&format!(
        "[outbound]\nacknowledge = false\n[outbound.sms]\nurl = \"{0}/sms\"\n[outbound.whatsapp]\nbase_url = \"{0}/wa\"\nphone_number_id = \"123\"\n\
         access_token = \"wa-token\"\ntemplate_name = \"aggiornamento_pratica\"\n[outbound.telegram]\nbase_url = \"{0}/tg\"\n\
         bot_token = \"tg-token\"\n",
        stub.url()
    ))
    .await;
    let reference = new_case(
        &install,
        &op,
        "phone",
        json!({"name": "Luca Verdi", "phone": "+39 333 1234567"}),
    )
    .await;
    for (channel, to) in [
        ("sms", None),
        ("whatsapp", None),
        ("telegram", Some("987654")),
    ] {
        let mut body = json!({"channel": channel, "template": "reminder"});
        if let Some(to) = to {
            body["to"] = to.into();
        }
        // The reminder needs an integration request to remind of.
        if channel == "sms" {
            act(&install, &op, &reference, json!({"action": "start_review"})).await;
            act(
                &install,
                &op,
                &reference,
                json!({"action": "request_integration", "missing": ["documento_identita"], "notify": false}),
            )
            .await;
        }
        let (status, sent) = write(&install, &op, &reference, body).await;
        assert_eq!(status, 201, "{channel}: {sent}");
    }
    let messages = settled(&install, &op, &reference).await;
    assert_eq!(messages.len(), 3, "{messages:?}");
    for m in &messages {
        assert_eq!(m["status"], "sent", "{m}");
    }
    let requests = stub.requests();
    let sms = requests.iter().find(|r| r.path == "/sms").unwrap();
    assert!(sms.text().contains(&reference), "{}", sms.text());
    let whatsapp = requests
        .iter()
        .find(|r| r.path == "/wa/123/messages")
        .unwrap();
    assert_eq!(whatsapp.header("authorization"), Some("Bearer wa-token"));
    // No message from the citizen on WhatsApp in the last 24 hours: the approved template.
    assert_eq!(whatsapp.json()["type"], "template", "{}", whatsapp.text());
    let telegram = requests
        .iter()
        .find(|r| r.path == "/tg/bottg-token/sendMessage")
        .unwrap();
    assert_eq!(telegram.json()["chat_id"], "987654");
    let telegram_message = messages
        .iter()
        .find(|m| m["channel"] == "telegram")
        .unwrap();
    assert!(telegram_message["provider_ref"].is_string());
}

#[tokio::test]
async fn a_message_is_queued_once_and_sent_once_across_a_kill_of_the_server() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    // First the SMTP server is out of reach: the message waits in the queue.
    let dead = sportello_outbound::testing::free_port();
    let mut install = Install::new(
        "[outbound]\nacknowledge = false\nretry_base_seconds = 1\n[outbound.email]\nfrom = \"protocollo@comune.example.it\"\n",
    )
    .await;
    let op = install.user("op", "operator");
    let dead_url = format!("smtp://127.0.0.1:{dead}");
    install
        .start_with_env(&[], &[("SPORTELLO_OUTBOUND__EMAIL__SMTP_URL", &dead_url)])
        .await;
    let reference = email_case(&install, &op).await;
    let send = |key: &'static str| {
        install
            .client
            .post(format!(
                "{}/api/v1/cases/{reference}/messages",
                install.base()
            ))
            .bearer_auth(&op)
            .header("Idempotency-Key", key)
            .json(&json!({"subject": "Promemoria", "body": "Buongiorno."}))
            .send()
    };
    let first = send("k-1").await.unwrap();
    assert_eq!(first.status().as_u16(), 201);
    let first: Value = first.json().await.unwrap();
    let again = send("k-1").await.unwrap();
    assert_eq!(
        again.status().as_u16(),
        200,
        "the same key: the same message"
    );
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["message_id"], again["message_id"]);
    assert_eq!(first["id"], again["id"]);
    // Wait for a failed attempt, then kill the server between queueing and sending.
    let mut waiting = false;
    for _ in 0..100 {
        let list = outbound_of(&install, &op, &reference).await;
        if list[0]["attempts"].as_i64().unwrap_or(0) >= 1 && list[0]["status"] == "queued" {
            assert!(list[0]["last_error"].is_string(), "{}", list[0]);
            waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(waiting, "the message waits for a retry");
    install.kill();
    install
        .start_with_env(&[], &[("SPORTELLO_OUTBOUND__EMAIL__SMTP_URL", &sink.url())])
        .await;
    let messages = settled(&install, &op, &reference).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["status"], "sent", "{}", messages[0]);
    let received = sink.wait_for(1, Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.messages().len(), 1, "sent once: {received:?}");
}

#[tokio::test]
async fn bad_requests_are_refused_with_reasons_and_roles_are_checked() {
    let mut install = Install::new("").await;
    let op = install.user("op", "operator");
    let police = install.user("vigile", "police");
    install.start(&[]).await;
    let reference = new_case(
        &install,
        &op,
        "counter",
        json!({"name": "Mario Rossi", "email": "mario.rossi@example.it"}),
    )
    .await;
    let path = format!("/api/v1/cases/{reference}/messages");
    let (status, _, _) = install
        .call("POST", &path, Some(&police), Some(json!({"body": "x"})))
        .await;
    assert_eq!(status, 403);
    // E-mail is not configured on this installation: the message waits, and the answer
    // says why.
    let (status, _, queued) = install
        .call(
            "POST",
            &path,
            Some(&op),
            Some(json!({"channel": "email", "body": "x"})),
        )
        .await;
    assert_eq!(status, 201, "{queued}");
    assert_eq!(queued["status"], "queued");
    assert!(
        queued["warning"]
            .as_str()
            .unwrap()
            .contains("outbound.email"),
        "{queued}"
    );
    for (body, field) in [
        (json!({"channel": "carrier-pigeon", "body": "x"}), "channel"),
        (json!({"channel": "letter", "to": "Via Roma 1"}), "body"),
        (
            json!({"channel": "telegram", "to": "42", "body": "parola ".repeat(700)}),
            "body",
        ),
        (
            json!({"channel": "letter", "to": "Via Roma 1", "template": "nope"}),
            "template",
        ),
    ] {
        let (status, _, problem) = install.call("POST", &path, Some(&op), Some(body)).await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    // No postal address known: the request is right, the case cannot take it yet.
    let (status, _, problem) = install
        .call(
            "POST",
            &path,
            Some(&op),
            Some(json!({"channel": "letter", "body": "x"})),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("'to'"),
        "{problem}"
    );
    // The citizen asks for letters at home: the address is kept, the letter needs no `to`.
    let contact = format!("/api/v1/cases/{reference}/contact");
    let (status, _, problem) = install
        .call(
            "PUT",
            &contact,
            Some(&op),
            Some(json!({"preferred_channel": "pigeon"})),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    let (status, _, choice) = install
        .call(
            "PUT",
            &contact,
            Some(&op),
            Some(json!({"address": "Via Roma 1\n00100 Roma", "preferred_channel": "letter"})),
        )
        .await;
    assert_eq!(status, 200, "{choice}");
    assert_eq!(choice["default"], "letter", "{choice}");
    let letter = install
        .client
        .post(format!("{}{path}", install.base()))
        .bearer_auth(&op)
        .header("accept", "application/json")
        .json(&json!({"body": "Gentile Mario Rossi, le scriviamo per lettera."}))
        .send()
        .await
        .unwrap();
    assert_eq!(letter.status().as_u16(), 201);
    let sent: Value = letter.json().await.unwrap();
    assert_eq!(sent["channel"], "letter", "{sent}");
    assert_eq!(sent["to"], "Via Roma 1\n00100 Roma");
    assert_eq!(sent["status"], "printed");
    let pdf = install
        .client
        .get(format!(
            "{}{}",
            install.base(),
            sent["pdf"].as_str().unwrap()
        ))
        .bearer_auth(&op)
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status().as_u16(), 200);
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF-"));
}

#[tokio::test]
async fn a_citizen_reached_only_by_phone_gets_a_call_back_and_the_screen_pop_says_why() {
    let (install, op) = office("").await;
    let reference = new_case(
        &install,
        &op,
        "phone",
        json!({"name": "Luca Verdi", "phone": "+39 333 7654321"}),
    )
    .await;
    let (_, _, choice) = install
        .call(
            "GET",
            &format!("/api/v1/cases/{reference}/channels"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(choice["default"], "call", "{choice}");
    act(&install, &op, &reference, json!({"action": "start_review"})).await;
    act(
        &install,
        &op,
        &reference,
        json!({"action": "request_integration", "missing": ["carta_circolazione"]}),
    )
    .await;
    // Nothing to write to: no message, a call-back task with what is missing.
    let outbound = outbound_of(&install, &op, &reference).await;
    assert_eq!(outbound, json!([]));
    let (status, _, queue) = install
        .call("GET", "/api/v1/callbacks", Some(&op), None)
        .await;
    assert_eq!(status, 200, "{queue}");
    let task = &queue["items"][0];
    assert_eq!(task["case"], reference.as_str(), "{queue}");
    assert_eq!(task["reason"], "no_digital_contact");
    assert!(
        task["script"]
            .as_str()
            .unwrap()
            .contains("Carta di circolazione"),
        "{task}"
    );
    let (status, _, card) = install
        .call(
            "GET",
            "/api/v1/cti/lookup?number=3337654321",
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, 200, "{card}");
    let waiting = &card["waiting"][0];
    assert_eq!(waiting["reference"], reference.as_str());
    assert_eq!(waiting["status"], "waiting_citizen");
    assert_eq!(waiting["waiting_for"], json!(["carta_circolazione"]));
    assert_eq!(waiting["call_task"], task["id"]);
}

#[tokio::test]
async fn a_separate_sender_drains_the_queue_from_the_command_line() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let (install, op) = mailing_office(&sink, "acknowledge = false\nsender = false").await;
    let reference = email_case(&install, &op).await;
    for n in 0..3 {
        let (status, sent) = write(
            &install,
            &op,
            &reference,
            json!({"subject": format!("Avviso {n}"), "body": "Buongiorno."}),
        )
        .await;
        assert_eq!(status, 201, "{sent}");
    }
    // The server queues but does not send.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sink.messages().is_empty());
    let out = install.cli(&["outbound", "send"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("sent 3"), "{stdout}");
    assert_eq!(sink.wait_for(3, Duration::from_secs(10)).len(), 3);
    let messages = settled(&install, &op, &reference).await;
    assert!(
        messages.iter().all(|m| m["status"] == "sent"),
        "{messages:?}"
    );
}

#[tokio::test]
async fn a_server_stopped_while_sending_finishes_what_it_took_and_sends_nothing_twice() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let (mut install, op) = mailing_office(&sink, "acknowledge = false").await;
    let reference = email_case(&install, &op).await;
    const N: usize = 200;
    let sends = (0..N).map(|n| {
        install
            .client
            .post(format!(
                "{}/api/v1/cases/{reference}/messages",
                install.base()
            ))
            .bearer_auth(&op)
            .json(&json!({"subject": format!("Avviso {n}"), "body": "Buongiorno."}))
            .send()
    });
    for answer in futures::future::join_all(sends).await {
        assert_eq!(answer.unwrap().status().as_u16(), 201);
    }
    // Stopped (SIGTERM) while it sends: what it took is finished and recorded.
    install.stop();
    let before_restart = sink.messages().len();
    eprintln!("{before_restart} of {N} in the sink when the server had stopped");
    install.start(&[]).await;
    let messages = settled(&install, &op, &reference).await;
    assert_eq!(messages.len(), N);
    assert!(messages.iter().all(|m| m["status"] == "sent"));
    let received = sink.wait_for(N, Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids: std::collections::BTreeSet<String> = sink
        .messages()
        .iter()
        .filter_map(|raw| header(raw, "Message-ID"))
        .collect();
    assert_eq!(ids.len(), N, "every message arrived");
    assert_eq!(
        sink.messages().len(),
        N,
        "none twice ({} seen)",
        received.len()
    );
}

#[tokio::test]
async fn new_cases_get_the_acknowledgement_of_receipt_once() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let (mut install, op) = mailing_office(&sink, "").await;
    let by_email = email_case(&install, &op).await;
    let by_phone = new_case(
        &install,
        &op,
        "phone",
        json!({"name": "Luca Verdi", "phone": "+39 333 7654321"}),
    )
    .await;
    // The contact centre's minute runs at start: a restart brings it now.
    for _ in 0..2 {
        install.stop();
        install.start(&[]).await;
    }
    let messages = settled(&install, &op, &by_email).await;
    assert_eq!(messages.len(), 1, "once: {messages:?}");
    assert_eq!(messages[0]["template"], "acknowledgement");
    let received = sink.wait_for(1, Duration::from_secs(10));
    let text = text_of(&received[0]);
    assert!(
        text.contains(&by_email) && text.contains("n. 241") && text.contains("30 giorni"),
        "{text}"
    );
    // The citizen reached only by phone: said once in the journal, nothing sent.
    let case = install.case(&op, &by_phone).await;
    let skipped = case["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "acknowledgement_skipped")
        .count();
    assert_eq!(skipped, 1, "{case}");
    assert_eq!(outbound_of(&install, &op, &by_phone).await, json!([]));
}

#[tokio::test]
async fn the_write_page_previews_a_template_and_queues_once() {
    let mut install = Install::new("[outbound]\nacknowledge = false\n").await;
    let (password, op) = install.user_with_password("op", "operator");
    install.start(&[]).await;
    let reference = email_case(&install, &op).await;
    let mut browser = crate::browser::Browser::new(&install);
    browser.sign_in("op", &password).await;
    let path = format!("/ufficio/pratiche/{reference}/scrivi");
    let page = browser.get(&path).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("mario.rossi@example.it"),
        "{}",
        page.body
    );
    let csrf = crate::browser::csrf_of(&page.body);
    let key = "0123456789abcdef0123456789abcdef";
    let preview = browser
        .post_form(
            &path,
            &[
                ("csrf", &csrf),
                ("key", key),
                ("channel", "email"),
                ("template", "acknowledgement"),
                ("do", "preview"),
            ],
        )
        .await;
    assert_eq!(preview.status, 200);
    assert!(
        preview.body.contains(&format!("[{reference}]")) && preview.body.contains("n. 241"),
        "the template's subject and text fill the form: {}",
        preview.body
    );
    // Send pressed twice: one message.
    for _ in 0..2 {
        let sent = browser
            .post_form(
                &path,
                &[
                    ("csrf", &csrf),
                    ("key", key),
                    ("channel", "email"),
                    ("subject", "Documenti"),
                    ("body", "Buongiorno, manca la carta di circolazione."),
                    ("do", "send"),
                ],
            )
            .await;
        assert_eq!(sent.status, 303, "{}", sent.body);
    }
    let list = outbound_of(&install, &op, &reference).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["subject"], format!("[{reference}] Documenti"));
    let forged = browser
        .post_form(&path, &[("csrf", "x"), ("body", "x"), ("do", "send")])
        .await;
    assert!(
        forged.body.contains("Il modulo è scaduto"),
        "{}",
        forged.body
    );
    assert_eq!(
        outbound_of(&install, &op, &reference)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
