//! Any text given as a fiscal code is either accepted in normal form or refused with an
//! error; never a panic, and an accepted code parses again to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sportello_domain::fiscal_code::FiscalCode;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(code) = FiscalCode::parse(text)
    {
        let again = FiscalCode::parse(code.as_str()).expect("a normalised code parses again");
        assert_eq!(again, code);
        assert!(code.as_str().len() == 16 || code.as_str().len() == 11);
    }
});
