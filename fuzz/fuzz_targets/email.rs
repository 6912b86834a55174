//! Any bytes given as an e-mail (ordinary, PEC envelope or receipt, fax-to-mail) become an
//! inbound message or a flagged one: never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sportello_domain::case::Channel;
use sportello_intake::email::{EmailSource, parse_email};

fuzz_target!(|data: &[u8]| {
    let src = EmailSource {
        channel: Channel::Email,
        default_case_type: "ztl_permit".into(),
        fax_gateway_senders: vec!["fax-gateway@comune.example.it".into()],
        fax_caller: Default::default(),
        pec_trust_anchors: None,
    };
    let now = chrono::DateTime::from_timestamp(1_764_150_000, 0).unwrap_or_default();
    let parsed = parse_email(data, "fuzz.eml", "00", &src, now);
    assert!(!parsed.inbound.dedupe_key.is_empty());
    if let Some(html) = parsed.html {
        assert!(!html.to_ascii_lowercase().contains("<script"));
    }
});
