//! Parse-only throughput of the e-mail path (`cargo bench -p sportello-intake`): a mix of
//! new requests, replies with a reference, replies by In-Reply-To and messages with a
//! 100 KB PDF, parsed by `parse_email` as intake does. Prints messages per second.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use sportello_domain::case::Channel;
use sportello_intake::email::{EmailSource, parse_email};

fn message(i: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Cittadino {i} <c{i}@example.it>\r\nTo: permessi@comune.example.it\r\nMessage-ID: <bench-{i}@example.it>\r\n\
         Date: Thu, 26 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n"
    );
    match i % 10 {
        0..=2 => {
            m.push_str(&format!(
                "Subject: Richiesta permesso {i}\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
                 Content-Type: text/plain; charset=utf-8\r\n\r\nAllego il libretto.\r\n--b\r\nContent-Type: application/pdf\r\n\
                 Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"libretto.pdf\"\r\n\r\n"
            ));
            let pdf = "JVBERi0xLjQK".repeat(100 * 1024 / 12);
            for chunk in pdf.as_bytes().chunks(76) {
                m.push_str(std::str::from_utf8(chunk).unwrap_or(""));
                m.push_str("\r\n");
            }
            m.push_str("--b--\r\n");
        }
        3..=5 => m.push_str(&format!(
            "Subject: Re: [ZTL-2026-{:06}] documenti\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nEcco quanto richiesto.\r\n",
            i % 1000 + 1
        )),
        6..=7 => m.push_str(&format!(
            "Subject: Re: domanda\r\nIn-Reply-To: <bench-{}@example.it>\r\nContent-Type: text/plain\r\n\r\nGrazie.\r\n",
            i.saturating_sub(7)
        )),
        _ => m.push_str("Subject: =?utf-8?q?Richiesta_citt=C3=A0?=\r\nContent-Type: text/html\r\n\r\n<p>Salve <b>ufficio</b></p>\r\n"),
    }
    m.into_bytes()
}

fn main() {
    let src = EmailSource {
        channel: Channel::Email,
        default_case_type: "ztl_permit".into(),
        fax_gateway_senders: Vec::new(),
        fax_caller: Default::default(),
        pec_trust_anchors: None,
    };
    let now = chrono::DateTime::from_timestamp(1_764_150_000, 0).unwrap_or_default();
    let messages: Vec<Vec<u8>> = (0..20_000).map(message).collect();
    let bytes: usize = messages.iter().map(Vec::len).sum();
    for round in 0..3 {
        let started = Instant::now();
        let mut subjects = 0usize;
        for (i, raw) in messages.iter().enumerate() {
            let parsed = parse_email(raw, "bench", "00", &src, now);
            subjects += parsed.inbound.subject.len() + i % 2;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "round {round}: {} messages ({:.0} MB) parsed in {secs:.2} s = {:.0} messages/s (checksum {subjects})",
            messages.len(),
            bytes as f64 / 1e6,
            messages.len() as f64 / secs
        );
    }
}
