//! WhatsApp notifications and Telegram updates: any body is parsed or refused, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sportello_intake::{telegram, whatsapp};

fuzz_target!(|data: &[u8]| {
    let now = chrono::DateTime::from_timestamp(1_764_150_000, 0).unwrap_or_default();
    let _ = whatsapp::parse_notification(data, "00", "ztl_permit", now);
    let _ = telegram::parse_update(data, "00", "ztl_permit", now);
});
