//! Scanning arbitrary message text for case references never panics, and every reference
//! found prints and parses back to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sportello_domain::case::Reference;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for found in Reference::find_all(&text) {
        assert_eq!(Reference::parse(&found.to_string()), Some(found));
    }
});
