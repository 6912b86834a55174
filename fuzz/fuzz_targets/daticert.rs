//! Any bytes given as a PEC `daticert.xml` are read or refused with an error: never a
//! panic, never a hang, and what is read keeps within the documented limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sportello_intake::daticert::{self, MAX_INPUT_BYTES, MAX_REPEATED, MAX_VALUE_CHARS};

fn check(value: &str) {
    assert!(value.chars().count() <= MAX_VALUE_CHARS, "{value:?}");
    assert_eq!(value, value.trim(), "untrimmed");
    assert!(!value.chars().any(char::is_control), "{value:?}");
}

fuzz_target!(|data: &[u8]| {
    match daticert::parse(data) {
        Ok(d) => {
            check(&d.kind);
            assert_eq!(d.kind, d.kind.to_lowercase());
            assert_ne!(d.error.as_deref(), Some("nessuno"));
            assert!(d.recipients.len() <= MAX_REPEATED);
            assert!(d.delivered_to.len() <= MAX_REPEATED);
            assert!(d.received_by.len() <= MAX_REPEATED);
            let singles = [
                &d.error,
                &d.sender,
                &d.reply_to,
                &d.subject,
                &d.provider,
                &d.identifier,
                &d.msgid,
                &d.receipt_kind,
                &d.extended_error,
            ];
            for value in singles.into_iter().flatten() {
                assert!(!value.is_empty());
                check(value);
            }
            let lists = d.recipients.iter().map(|r| &r.address);
            for value in lists.chain(&d.delivered_to).chain(&d.received_by) {
                assert!(!value.is_empty());
                check(value);
            }
        }
        Err(daticert::DaticertError::TooLarge { size }) => assert!(size > MAX_INPUT_BYTES),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
