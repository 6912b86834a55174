//! When a message counts as received (issue #14): a PEC when its provider certified the
//! delivery, a fax when the office's gateway received it, a message of a mailbox when our
//! IMAP server did — not when Sportello got round to reading it. The case's legal term runs
//! from that instant; the register and the journal keep the registration time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sportello_domain::case::Channel;
use sportello_intake::email::EmailSource;
use sportello_intake::pipeline::{Limits, OcrSettings, ingest_arrived_email, ingest_email};
use sportello_store::documents::BlobStore;
use sportello_store::testing::with_test_store;

const LIMITS: Limits = Limits {
    max_attachment_bytes: 10 * 1024 * 1024,
    max_attachments: 200,
};

fn source(channel: Channel) -> EmailSource {
    EmailSource {
        channel,
        default_case_type: "ztl_permit".into(),
        fax_gateway_senders: vec!["fax-gateway@comune.example.it".into()],
        fax_caller: Default::default(),
        pec_trust_anchors: None,
    }
}

fn ocr() -> OcrSettings {
    OcrSettings::new("tesseract", "ita", 1)
}

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
}

fn blobs(dir: &tempfile::TempDir) -> BlobStore {
    BlobStore::open(
        &format!("file://{}", dir.path().join("documents").display()),
        None,
        None,
    )
    .unwrap()
}

/// A PEC transport envelope whose provider certified the delivery on 26 November at
/// 10:15:30 (+0100); the citizen's own message inside says it was written on the 23rd.
fn pec_envelope() -> Vec<u8> {
    let daticert = r#"<?xml version="1.0" encoding="UTF-8"?>
<postacert tipo="posta-certificata" errore="nessuno">
  <intestazione><mittente>anna.bianchi@pec.example.it</mittente>
    <destinatari tipo="certificato">protocollo@pec.comune.example.it</destinatari>
    <oggetto>Domanda permesso ZTL</oggetto></intestazione>
  <dati><gestore-emittente>Gestore di prova</gestore-emittente>
    <data zona="+0100"><giorno>26/11/2026</giorno><ora>10:15:30</ora></data>
    <identificativo>opec.42@pec.gestore.it</identificativo>
    <msgid>&lt;inner-42@pec.example.it&gt;</msgid></dati>
</postacert>"#;
    format!(
        "From: \"Per conto di: anna.bianchi@pec.example.it\" <posta-certificata@pec.gestore.it>\r\n\
         To: protocollo@pec.comune.example.it\r\n\
         Subject: POSTA CERTIFICATA: Domanda permesso ZTL\r\n\
         Date: Thu, 26 Nov 2026 10:15:30 +0100\r\n\
         Message-ID: <opec.42@pec.gestore.it>\r\n\
         X-Trasporto: posta-certificata\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"env\"\r\n\r\n\
         --env\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nMessaggio di posta certificata\r\n\
         --env\r\nContent-Type: application/xml; name=\"daticert.xml\"\r\n\
         Content-Disposition: attachment; filename=\"daticert.xml\"\r\n\r\n{daticert}\r\n\
         --env\r\nContent-Type: message/rfc822; name=\"postacert.eml\"\r\n\
         Content-Disposition: attachment; filename=\"postacert.eml\"\r\n\r\n\
         From: Anna Bianchi <anna.bianchi@pec.example.it>\r\n\
         To: protocollo@pec.comune.example.it\r\n\
         Subject: Domanda permesso ZTL\r\n\
         Date: Mon, 23 Nov 2026 09:00:00 +0100\r\n\
         Message-ID: <inner-42@pec.example.it>\r\n\r\n\
         Chiedo il permesso per la mia auto.\r\n\
         --env--\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_pec_is_received_when_its_provider_certified_the_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = blobs(&dir);
    with_test_store(|store, clock| async move {
        // Read on 7 December, delivered on 26 November.
        clock.set(at("2026-12-07T10:00:00+01:00"));
        let raw = Bytes::from(pec_envelope());
        let out = ingest_email(
            &store,
            &blobs,
            raw,
            "pec.eml",
            &source(Channel::Pec),
            &ocr(),
            LIMITS,
        )
        .await
        .unwrap();
        assert_eq!(
            (out.outcome.as_str(), out.channel.as_str()),
            ("new_case", "pec")
        );
        let reference = out.case.unwrap();
        let case = store.get_case(&reference).await.unwrap();
        assert_eq!(case.summary.received_at, "2026-11-26T10:15:30+01:00");
        // 26 November + 30 days = 26 December (Santo Stefano), then Sunday: the 28th. From
        // 7 December it would have been 6 January (Epiphany), moved to the 7th.
        assert_eq!(case.summary.due_at, "2026-12-28");
        assert_eq!(case.ingested_at, "2026-12-07T10:00:00+01:00");
        let message = &store.case_messages(&reference).await.unwrap()[0];
        assert_eq!(message.received_at, "2026-11-26T10:15:30+01:00");
        assert_eq!(message.ingested_at, "2026-12-07T10:00:00+01:00");
        assert!(out.protocol.unwrap().starts_with("2026/"));
    })
    .await;
}

#[tokio::test]
async fn a_certified_time_wins_over_the_mailbox_and_a_mailbox_over_the_sender() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = blobs(&dir);
    with_test_store(|store, clock| async move {
        clock.set(at("2026-12-07T10:00:00+01:00"));
        let arrived = Some(at("2026-12-01T12:00:00+01:00"));
        let pec = ingest_arrived_email(
            &store,
            &blobs,
            Bytes::from(pec_envelope()),
            "imap;UID=1",
            arrived,
            &source(Channel::Pec),
            &ocr(),
            LIMITS,
        )
        .await
        .unwrap();
        let pec = store.get_case(&pec.case.unwrap()).await.unwrap();
        assert_eq!(pec.summary.received_at, "2026-11-26T10:15:30+01:00");

        // Ordinary mail: its Date is the sender's say-so; our IMAP server's arrival counts.
        let mail = b"From: Mario Rossi <mario@example.it>\r\nTo: protocollo@comune.example.it\r\n\
            Subject: Domanda permesso\r\nDate: Fri, 20 Nov 2026 08:00:00 +0100\r\n\
            Message-ID: <plain-1@example.it>\r\n\r\nBuongiorno.\r\n";
        let out = ingest_arrived_email(
            &store,
            &blobs,
            Bytes::from_static(mail),
            "imap;UID=2",
            arrived,
            &source(Channel::Email),
            &ocr(),
            LIMITS,
        )
        .await
        .unwrap();
        let case = store.get_case(&out.case.unwrap()).await.unwrap();
        assert_eq!(case.summary.received_at, "2026-12-01T12:00:00+01:00");
        assert_eq!(case.ingested_at, "2026-12-07T10:00:00+01:00");

        // Through the MTA pipe it arrives as it is ingested.
        let piped = String::from_utf8_lossy(mail).replace("plain-1@", "plain-2@");
        let out = ingest_email(
            &store,
            &blobs,
            Bytes::from(piped.into_bytes()),
            "pipe",
            &source(Channel::Email),
            &ocr(),
            LIMITS,
        )
        .await
        .unwrap();
        let case = store.get_case(&out.case.unwrap()).await.unwrap();
        assert_eq!(case.summary.received_at, "2026-12-07T10:00:00+01:00");
    })
    .await;
}

#[tokio::test]
async fn a_fax_is_received_when_the_gateway_received_it() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = blobs(&dir);
    with_test_store(|store, clock| async move {
        clock.set(at("2026-12-07T10:00:00+01:00"));
        // As the fixtures' gateway writes it (no pages here, so no OCR is needed).
        let fax = b"From: fax-gateway@comune.example.it\r\nTo: permessi.ztl@comune.example.it\r\n\
            Subject: Fax ricevuto da 0655512345 (1 pagina)\r\n\
            Date: Thu, 26 Nov 2026 09:30:00 +0100\r\n\
            Message-ID: <fax-20261126-0042@fax.comune.example.it>\r\n\r\n\
            Fax ricevuto.\r\nMittente: 0655512345\r\nPagine: 1\r\n";
        let out = ingest_email(
            &store,
            &blobs,
            Bytes::from_static(fax),
            "fax.eml",
            &source(Channel::Email),
            &ocr(),
            LIMITS,
        )
        .await
        .unwrap();
        assert_eq!(out.channel, "fax");
        let case = store.get_case(&out.case.unwrap()).await.unwrap();
        assert_eq!(case.summary.received_at, "2026-11-26T09:30:00+01:00");
        assert_eq!(case.summary.due_at, "2026-12-28");
        assert_eq!(case.ingested_at, "2026-12-07T10:00:00+01:00");
    })
    .await;
}

/// The shared fixture's signed envelope (daticert: 26 November 2026, 10:15:30 +0100), read
/// on 7 December.
#[tokio::test]
async fn the_fixture_pec_is_received_on_its_daticert_day() {
    let Ok(raw) = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/intake/04_pec_envelope_new_request.eml"
    )) else {
        eprintln!("skipped: ../shared/fixtures not present");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let blobs = blobs(&dir);
    with_test_store(|store, clock| async move {
        clock.set(at("2026-12-07T10:00:00+01:00"));
        let out = ingest_email(
            &store,
            &blobs,
            Bytes::from(raw),
            "04.eml",
            &source(Channel::Pec),
            &ocr(),
            LIMITS,
        )
        .await
        .unwrap();
        assert_eq!(out.channel, "pec");
        let case = store.get_case(&out.case.unwrap()).await.unwrap();
        assert_eq!(case.summary.received_at, "2026-11-26T10:15:30+01:00");
        assert_eq!(case.ingested_at, "2026-12-07T10:00:00+01:00");
        assert_eq!(case.summary.due_at, "2026-12-28");
    })
    .await;
}
