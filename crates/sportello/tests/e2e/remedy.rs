//! The remedy of errors, end to end: a contested fine reported by the police becomes an
//! SEG case, its evidence is judged again, and `annul` produces the annulment request
//! (letter, CSV rows, corrected whitelist rows) registered in the protocol register, sends
//! it to the police command by PEC (into a real SMTP server, aiosmtpd) or flags it for
//! delivery by hand, tells the citizen the request was sent, and links the police's answer
//! quoting its protocol number to the case.

use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{Value, json};
use sportello_outbound::testing::SmtpSink;

use crate::harness::Install;

async fn bytes(install: &Install, token: &str, path: &str) -> Vec<u8> {
    let resp = install
        .client
        .get(format!("{}{path}", install.base()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.bytes().await.unwrap().to_vec()
}

/// The text of the case's document whose file name starts with `prefix`.
async fn document_text(install: &Install, token: &str, case: &Value, prefix: &str) -> String {
    let id = document(case, prefix)["id"].as_str().unwrap().to_owned();
    String::from_utf8(bytes(install, token, &format!("/api/v1/documents/{id}")).await).unwrap()
}

/// The case's document whose file name starts with `prefix`.
fn document<'a>(case: &'a Value, prefix: &str) -> &'a Value {
    case["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["filename"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no document {prefix}* in {case}"))
}

/// An office (authority "Comune di Prova") whose CUDE permit CUD9 of Mario Rossi has had
/// the temporary plate CC 333 CC since three hours ago, with an operator and a police user.
struct CudeOffice {
    install: Install,
    op: String,
    police: String,
    now: chrono::DateTime<chrono::Utc>,
}

/// The reasons of the annulment in these tests.
const ANNUL_REASON: &str = "Targa comunicata entro 48 ore dal titolare del CUDE CUD9";

/// An SEG case opened from a police report: its reference and the instants of its two
/// transits.
struct Contested {
    reference: String,
    t1: String,
    t2: String,
}

impl CudeOffice {
    async fn new() -> CudeOffice {
        let mut install = Install::new("[office]\nauthority = \"Comune di Prova\"\n").await;
        install.import_register(
            "CUD9,cude,RSSMRA85T10A562S,Mario Rossi,AA111AA,IT,2020-01-01,2099-12-31,active\n",
        );
        let op = install.user("op", "operator");
        let police = install.user("vigile", "police");
        install.start(&[]).await;
        let now = sportello_domain::clock::Clock::now(&sportello_domain::clock::SystemClock);
        let office = CudeOffice {
            install,
            op,
            police,
            now,
        };
        // The holder drove a friend's car and communicated its plate afterwards, within the
        // 48 hours the CUDE category allows; the camera had fined it meanwhile.
        let (status, _, permit) = office
            .install
            .call(
                "POST",
                "/api/v1/permits/CUD9/temporary-plates",
                Some(&office.op),
                Some(json!({"plate": "CC 333 CC", "from": office.at(-3), "to": office.at(2)})),
            )
            .await;
        assert_eq!(status, 201, "{permit}");
        office
    }

    /// `hours` from now, RFC 3339.
    fn at(&self, hours: i64) -> String {
        (self.now + chrono::Duration::hours(hours)).to_rfc3339()
    }

    /// The police forward the fine of CC333CC at two gates: T1 an hour ago (under the
    /// temporary plate), T2 thirty hours ago (before it).
    async fn contest(&self) -> (Contested, Value) {
        let t1 = self.at(-1);
        let t2 = self.at(-30);
        let report = json!({"plate": "cc333cc", "fine": "VB-2026-77", "channel": "pec",
            "note": "Il titolare CUDE era a bordo.",
            "transits": [{"transit_id": "T1", "gate": "V04", "timestamp": t1},
                         {"transit_id": "T2", "gate": "V05", "timestamp": t2}]});
        let (status, _, receipt) = self
            .install
            .call(
                "POST",
                "/api/v1/transits/contest",
                Some(&self.police),
                Some(report),
            )
            .await;
        assert_eq!(status, 201, "{receipt}");
        let reference = receipt["reference"].as_str().unwrap().to_owned();
        (Contested { reference, t1, t2 }, receipt)
    }

    async fn action(&self, reference: &str, body: Value) -> (u16, String, Value) {
        let actions = format!("/api/v1/cases/{reference}/actions");
        self.install
            .call("POST", &actions, Some(&self.op), Some(body))
            .await
    }

    /// The contested fine in review and annulled for [`ANNUL_REASON`]: the case as the
    /// action answered it.
    async fn annulled(&self) -> (Contested, Value) {
        let (contested, _) = self.contest().await;
        let (status, _, _) = self
            .action(&contested.reference, json!({"action": "start_review"}))
            .await;
        assert_eq!(status, 200);
        let (status, _, case) = self
            .action(
                &contested.reference,
                json!({"action": "annul", "reasons": [ANNUL_REASON]}),
            )
            .await;
        assert_eq!(status, 200, "{case}");
        (contested, case)
    }
}

#[tokio::test]
async fn the_police_report_of_a_contested_fine_is_checked_and_opens_an_seg_case() {
    let office = CudeOffice::new().await;
    let install = &office.install;
    // The police forward the contested fine: an SEG case, without reading any file.
    let bad = json!({"plate": "C<C", "transits": [{"transit_id": "", "gate": "V99", "timestamp": "ieri"}]});
    let (status, _, problem) = install
        .call(
            "POST",
            "/api/v1/transits/contest",
            Some(&office.police),
            Some(bad),
        )
        .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "plate",
            "transits[0].transit_id",
            "transits[0].gate",
            "transits[0].timestamp"
        ],
        "{problem}"
    );
    let (Contested { reference, .. }, receipt) = office.contest().await;
    assert!(reference.starts_with("SEG-"), "{receipt}");
    assert!(receipt["protocol"].is_string(), "{receipt}");
    assert!(
        receipt.get("citizen").is_none(),
        "the police get no file back"
    );

    let (_, _, case) = install
        .call(
            "GET",
            &format!("/api/v1/cases/{reference}"),
            Some(&office.op),
            None,
        )
        .await;
    assert_eq!(case["case_type"], "seg");
    assert_eq!(case["fields"]["plate"], "CC333CC");
    assert_eq!(case["fields"]["fine"], "VB-2026-77");
}

#[tokio::test]
async fn annulling_a_contested_fine_needs_reasons_and_gives_the_police_csv_and_whitelist_rows() {
    let office = CudeOffice::new().await;
    let (install, op) = (&office.install, &office.op);
    let (Contested { reference, t1, t2 }, _) = office.contest().await;
    let (status, _, _) = office
        .action(&reference, json!({"action": "start_review"}))
        .await;
    assert_eq!(status, 200);
    // No reasons, no annulment, and nothing produced.
    let (status, _, _) = office
        .action(&reference, json!({"action": "annul", "reasons": ["  "]}))
        .await;
    assert_eq!(status, 422);
    let (_, _, case) = install
        .call("GET", &format!("/api/v1/cases/{reference}"), Some(op), None)
        .await;
    assert_eq!(case["documents"].as_array().unwrap().len(), 0, "{case}");

    let reason = ANNUL_REASON;
    let (status, _, case) = office
        .action(&reference, json!({"action": "annul", "reasons": [reason]}))
        .await;
    assert_eq!(status, 200, "{case}");
    assert_eq!(case["status"], "closed");
    assert_eq!(case["documents"].as_array().unwrap().len(), 3, "{case}");

    // The CSV row of each transit, for the police's records.
    let csv = document_text(
        install,
        op,
        &case,
        &format!("richiesta-annullamento-{reference}.csv"),
    )
    .await;
    let protocol = case["protocol"].as_str().unwrap();
    assert_eq!(
        csv,
        format!(
            "case,protocol,fine,transit_id,gate,zone,plate,country,timestamp,verdict,permit,reasons\n\
             {reference},{protocol},VB-2026-77,T1,V04,B,CC333CC,IT,{t1},permit,CUD9,{reason}\n\
             {reference},{protocol},VB-2026-77,T2,V05,B,CC333CC,IT,{t2},not_valid_at_time,,{reason}\n"
        )
    );

    // The corrected whitelist rows: the temporary plate, as §6.3.
    let rows = document_text(install, op, &case, "righe-corrette-").await;
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(
        lines[0],
        "plate,country,permit,category,zones,windows,valid_from,valid_to"
    );
    assert_eq!(lines.len(), 2, "{rows}");
    assert!(lines[1].starts_with("CC333CC,IT,CUD9,cude,*,,"), "{rows}");
}

#[tokio::test]
async fn the_annulment_letter_is_registered_to_the_police_and_printed_when_they_have_no_address() {
    let office = CudeOffice::new().await;
    let (install, op) = (&office.install, &office.op);
    let (Contested { reference, .. }, case) = office.annulled().await;
    let reason = ANNUL_REASON;
    // The letter: a PDF naming the plate, the fine and the transits, registered outgoing
    // to the police like the two CSV files.
    let letter = document(&case, &format!("richiesta-annullamento-{reference}.pdf"));
    let pdf = bytes(
        install,
        op,
        &format!("/api/v1/documents/{}", letter["id"].as_str().unwrap()),
    )
    .await;
    assert!(pdf.starts_with(b"%PDF"));
    let text = String::from_utf8_lossy(&pdf);
    for needle in [
        "Comune di Prova",
        "Comando di Polizia Locale",
        "CC333CC",
        "VB-2026-77",
        "T2",
        reference.as_str(),
    ] {
        assert!(text.contains(needle), "the letter names {needle}");
    }
    let mut numbers = Vec::new();
    for doc in case["documents"].as_array().unwrap() {
        let (status, _, info) = install
            .call(
                "GET",
                &format!("/api/v1/documents/{}/info", doc["id"].as_str().unwrap()),
                Some(op),
                None,
            )
            .await;
        assert_eq!(status, 200, "{info}");
        let entry = &info["protocol"][0];
        assert_eq!(entry["direction"], "out", "{info}");
        assert_eq!(entry["correspondent"], "Comando di Polizia Locale");
        assert_eq!(entry["document_sha256"], doc["sha256"]);
        numbers.push(entry["number"].as_str().unwrap().to_owned());
    }
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), 3, "three protocol numbers: {numbers:?}");
    // The decision and each document are on the timeline; the register's chain holds.
    let timeline = case["timeline"].as_array().unwrap();
    assert!(
        timeline
            .iter()
            .any(|e| e["detail"]["action"] == "annul" && e["detail"]["reasons"][0] == reason),
        "{case}"
    );
    assert_eq!(
        timeline
            .iter()
            .filter(|e| e["kind"] == "document_added" && e["detail"]["protocol"].is_string())
            .count(),
        3,
        "{case}"
    );
    let out = install.cli(&["register", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No address of the police is configured: the request is printed for them and the case
    // flagged, so that someone delivers it by hand.
    assert_eq!(case["flags"], json!(["annulment_by_hand"]), "{case}");
    let (_, _, sent) = install
        .call(
            "GET",
            &format!("/api/v1/cases/{reference}/outbound"),
            Some(op),
            None,
        )
        .await;
    let to_police: Vec<&Value> = sent
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["recipient"] == "Comando di Polizia Locale")
        .collect();
    assert_eq!(to_police.len(), 1, "{sent}");
    assert_eq!(
        (
            to_police[0]["channel"].as_str(),
            to_police[0]["status"].as_str()
        ),
        (Some("letter"), Some("printed")),
        "{sent}"
    );
    assert_eq!(to_police[0]["attachments"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_contested_fine_that_stands_is_confirmed_and_nothing_goes_to_the_police() {
    let office = CudeOffice::new().await;
    let (install, op) = (&office.install, &office.op);
    // A violation that stands: confirmed with its reasons, nothing sent to the police.
    let report = json!({"plate": "ZZ999ZZ",
        "transits": [{"transit_id": "T9", "gate": "V04", "timestamp": office.at(-2)}]});
    let (_, _, receipt) = install
        .call("POST", "/api/v1/transits/contest", Some(op), Some(report))
        .await;
    let other = receipt["reference"].as_str().unwrap();
    let path = format!("/api/v1/cases/{other}/actions");
    install
        .call(
            "POST",
            &path,
            Some(op),
            Some(json!({"action": "start_review"})),
        )
        .await;
    let (status, _, case) = install
        .call(
            "POST",
            &path,
            Some(op),
            Some(json!({"action": "confirm", "reasons": ["Nessun permesso per la targa"]})),
        )
        .await;
    assert_eq!(status, 200, "{case}");
    assert_eq!(case["status"], "closed");
    assert!(case["documents"].as_array().unwrap().is_empty(), "{case}");
    assert_eq!(case["flags"], json!([]), "{case}");
}

/// The police command's PEC address in the tests.
const POLICE_PEC: &str = "polizia.locale@pec.comune.example.it";

/// The raw message of `messages` addressed to `to`.
fn message_to<'a>(messages: &'a [Vec<u8>], to: &str) -> &'a [u8] {
    messages
        .iter()
        .find(|raw| {
            MessageParser::default()
                .parse(raw.as_slice())
                .and_then(|m| m.header_raw("To").map(|v| v.trim() == to))
                .unwrap_or(false)
        })
        .unwrap_or_else(|| panic!("no message to {to}"))
}

/// An e-mail into the intake pipeline, as the MTA pipe posts it: its outcome.
async fn ingest(install: &Install, token: &str, from: &str, id: &str, subject: &str) -> Value {
    let raw = format!(
        "From: {from}\r\nTo: protocollo@comune.example.it\r\nSubject: {subject}\r\n\
         Message-ID: <{id}@example.it>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{subject}: si conferma.\r\n"
    );
    let response = install
        .client
        .post(format!("{}/api/v1/inbound/email", install.base()))
        .bearer_auth(token)
        .body(raw)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

/// An office that sends PEC and e-mail into `sink`, with an SEG case of DD444DD reported
/// by an operator for the citizen Mario Rossi, put in review and annulled: the request has
/// gone to the police by PEC.
struct AnnulledByPec {
    install: Install,
    op: String,
    /// The integration user that ingests mail.
    mta: String,
    reference: String,
    /// The answer to the report.
    receipt: Value,
}

async fn annulled_by_pec(sink: &SmtpSink) -> AnnulledByPec {
    let mut install = Install::new(&format!(
        "[office]\npolice_pec = \"{POLICE_PEC}\"\n\
         [outbound]\nacknowledge = false\n\
         [outbound.email]\nsmtp_url = \"{0}\"\nfrom = \"protocollo@comune.example.it\"\n\
         [outbound.pec]\nsmtp_url = \"{0}\"\nfrom = \"protocollo@pec.comune.example.it\"\n",
        sink.url()
    ))
    .await;
    let op = install.user("op", "operator");
    let mta = install.user("mta", "integration");
    install.start(&[]).await;
    let now = sportello_domain::clock::Clock::now(&sportello_domain::clock::SystemClock);
    let t1 = (now - chrono::Duration::hours(2)).to_rfc3339();
    let report = json!({"plate": "DD444DD", "fine": "VB-2026-88",
        "citizen": {"name": "Mario Rossi", "email": "mario.rossi@example.it"},
        "transits": [{"transit_id": "T7", "gate": "V04", "timestamp": t1}]});
    let (status, _, receipt) = install
        .call("POST", "/api/v1/transits/contest", Some(&op), Some(report))
        .await;
    assert_eq!(status, 201, "{receipt}");
    let reference = receipt["reference"].as_str().unwrap().to_owned();
    let actions = format!("/api/v1/cases/{reference}/actions");
    let (status, _, _) = install
        .call(
            "POST",
            &actions,
            Some(&op),
            Some(json!({"action": "start_review"})),
        )
        .await;
    assert_eq!(status, 200);
    let annul = json!({"action": "annul", "reasons": ["Il veicolo era autorizzato"]});
    let (status, _, case) = install.call("POST", &actions, Some(&op), Some(annul)).await;
    assert_eq!(status, 200, "{case}");
    assert_eq!(
        case["flags"],
        json!([]),
        "sent, not to deliver by hand: {case}"
    );

    AnnulledByPec {
        install,
        op,
        mta,
        reference,
        receipt,
    }
}

/// The messages `sink` received: the request to the police and the news to the citizen.
fn the_two_messages(sink: &SmtpSink) -> Vec<Vec<u8>> {
    let messages = sink.wait_for(2, Duration::from_secs(20));
    assert_eq!(messages.len(), 2, "exactly two messages");
    messages
}

/// The protocol number in the subject of the PEC to the police.
fn protocol_of_request(messages: &[Vec<u8>]) -> String {
    let to_police = MessageParser::default()
        .parse(message_to(messages, POLICE_PEC))
        .unwrap();
    let subject = to_police.subject().unwrap().to_owned();
    subject["Prot. n. ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn an_annulment_request_goes_to_the_police_by_pec_once_and_the_citizen_is_told() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let AnnulledByPec {
        install,
        op,
        reference,
        ..
    } = annulled_by_pec(&sink).await;
    // Pressed again: refused, and nothing more is sent.
    let annul = json!({"action": "annul", "reasons": ["Il veicolo era autorizzato"]});
    let actions = format!("/api/v1/cases/{reference}/actions");
    let (status, _, _) = install.call("POST", &actions, Some(&op), Some(annul)).await;
    assert_eq!(status, 409);

    // Two messages leave: the request to the police, the news to the citizen.
    let messages = the_two_messages(&sink);
    let to_police = MessageParser::default()
        .parse(message_to(&messages, POLICE_PEC))
        .unwrap();
    let subject = to_police.subject().unwrap().to_owned();
    assert!(
        subject.starts_with("Prot. n. ") && subject.contains(&reference),
        "{subject}"
    );
    let protocol = subject["Prot. n. ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let text = to_police.body_text(0).unwrap();
    assert!(
        text.contains("DD444DD") && text.contains("VB-2026-88"),
        "{text}"
    );
    let case = install
        .call(
            "GET",
            &format!("/api/v1/cases/{reference}"),
            Some(&op),
            None,
        )
        .await
        .2;
    let mut names = Vec::new();
    for part in to_police.attachments() {
        let name = part.attachment_name().unwrap().to_owned();
        let document = case["documents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["filename"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} is not a document of the case: {case}"));
        let stored = install
            .client
            .get(format!(
                "{}/api/v1/documents/{}",
                install.base(),
                document["id"].as_str().unwrap()
            ))
            .bearer_auth(&op)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(part.contents(), &stored[..], "{name} as registered");
        names.push(name);
    }
    names.sort();
    assert_eq!(
        names,
        [
            format!("richiesta-annullamento-{reference}.csv"),
            format!("richiesta-annullamento-{reference}.pdf")
        ]
    );
    let (_, _, outbound) = install
        .call(
            "GET",
            &format!("/api/v1/cases/{reference}/outbound"),
            Some(&op),
            None,
        )
        .await;
    let police: Vec<&Value> = outbound
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["recipient"] == POLICE_PEC)
        .collect();
    assert_eq!(police.len(), 1, "{outbound}");
    assert_eq!(police[0]["channel"], "pec");
    assert_eq!(police[0]["protocol"], protocol.as_str());

    // The citizen is told that the request was sent, not that the fine is annulled.
    let to_citizen = MessageParser::default()
        .parse(message_to(&messages, "mario.rossi@example.it"))
        .unwrap();
    let told = format!(
        "{}\n{}",
        to_citizen.subject().unwrap_or_default(),
        to_citizen.body_text(0).unwrap()
    );
    assert!(
        told.contains("Polizia Locale") && told.contains("richiesta"),
        "{told}"
    );
    assert!(!told.contains("annullat"), "{told}");
}

#[tokio::test]
async fn the_police_answer_quoting_the_protocol_number_comes_back_to_the_case_and_nothing_else_does()
 {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let AnnulledByPec {
        install,
        op,
        mta,
        reference,
        receipt,
    } = annulled_by_pec(&sink).await;
    let protocol = protocol_of_request(&the_two_messages(&sink));
    // The police answer quoting only the protocol number: the answer goes to the case,
    // on its timeline as the police's answer.
    let answer = ingest(
        &install,
        &mta,
        POLICE_PEC,
        "risposta-polizia",
        &format!("Riscontro Vs. nota prot. n. {protocol}"),
    )
    .await;
    assert_eq!(
        (
            answer["outcome"].as_str(),
            answer["case"].as_str(),
            answer["rule"].as_str()
        ),
        (
            Some("attached"),
            Some(reference.as_str()),
            Some("protocol_number")
        ),
        "{answer}"
    );
    let case = install
        .call(
            "GET",
            &format!("/api/v1/cases/{reference}"),
            Some(&op),
            None,
        )
        .await
        .2;
    let noted = case["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "police_answer")
        .unwrap_or_else(|| panic!("no police_answer in {case}"));
    assert_eq!(noted["detail"]["protocol"], answer["protocol"]);
    // Narrowly: the same number from anyone else, or a number of something the office
    // received (the report itself), links nothing.
    let stranger = ingest(
        &install,
        &mta,
        "curioso@example.it",
        "estraneo",
        &format!("Informazioni prot. {protocol}"),
    )
    .await;
    assert_eq!(stranger["outcome"], "new_case", "{stranger}");
    let incoming = receipt["protocol"].as_str().unwrap();
    let inbound_number = ingest(
        &install,
        &mta,
        POLICE_PEC,
        "altro",
        &format!("Segnalazione prot. {incoming}"),
    )
    .await;
    assert_eq!(inbound_number["outcome"], "new_case", "{inbound_number}");
}
