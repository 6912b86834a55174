//! Protocol numbers: parsing arbitrary text never panics and round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sportello_domain::register::ProtocolNumber;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(n) = ProtocolNumber::parse(text)
    {
        assert_eq!(ProtocolNumber::parse(&n.to_string()), Some(n));
    }
});
