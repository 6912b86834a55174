//! Time-based one-time passwords (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps), the
//! optional second factor of staff sign-ins. A code is accepted one step either side of
//! the instant (clocks drift) and only in a step later than the last one accepted, so a
//! code seen over a shoulder cannot be used again. Pure: the instant and the last step
//! come in as parameters; the secret is made by the caller from a secure random source.

use totp_rs::{Algorithm, Builder, Secret};

/// Seconds of one step.
pub const STEP_SECONDS: i64 = 30;

/// Digits of a code.
pub const DIGITS: u8 = 6;

fn totp(secret: &[u8], digits: u8) -> Option<totp_rs::Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(digits)
        .with_skew(1)
        .with_step_duration(STEP_SECONDS as u64)
        .with_secret(secret.to_vec())
        .build()
        .ok()
}

/// The secret in base32, as authenticator apps take it.
pub fn secret_base32(secret: &[u8]) -> String {
    Secret::new(secret.to_vec().into_boxed_slice()).to_base32()
}

/// The secret of its base32 form (as stored).
pub fn secret_from_base32(text: &str) -> Option<Vec<u8>> {
    Secret::try_from_base32(text)
        .ok()
        .map(|s| s.as_bytes().to_vec())
}

/// The `otpauth://` URI an authenticator app reads (as text or QR code).
pub fn otpauth_uri(issuer: &str, login: &str, secret: &[u8]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        enc(issuer),
        enc(login),
        secret_base32(secret),
        enc(issuer)
    )
}

/// The code of the step holding `unix_seconds`.
pub fn code_at(secret: &[u8], unix_seconds: i64) -> Option<String> {
    Some(
        totp(secret, DIGITS)?
            .generate(u64::try_from(unix_seconds).ok()?)
            .to_string(),
    )
}

/// The step a `code` is valid for at `unix_seconds` (±1 step), if it is later than
/// `last_step` (the last step accepted for this user): the step to remember.
pub fn accept(secret: &[u8], code: &str, unix_seconds: i64, last_step: Option<i64>) -> Option<i64> {
    accept_digits(secret, DIGITS, code, unix_seconds, last_step)
}

fn accept_digits(
    secret: &[u8],
    digits: u8,
    code: &str,
    unix_seconds: i64,
    last_step: Option<i64>,
) -> Option<i64> {
    let code = code.trim();
    if code.len() != usize::from(digits) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let step = totp(secret, digits)?.check(code, u64::try_from(unix_seconds).ok()?)?;
    let step = i64::try_from(step).ok()?;
    last_step.is_none_or(|last| step > last).then_some(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1, 8 digits: (time, code).
    const VECTORS: &[(i64, &str)] = &[
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];
    const SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn the_rfc_6238_test_vectors_pass() {
        for (time, code) in VECTORS {
            let step = time / STEP_SECONDS;
            assert_eq!(
                accept_digits(SECRET, 8, code, *time, None),
                Some(step),
                "{time}"
            );
            let generated = totp(SECRET, 8).unwrap().generate(*time as u64).to_string();
            assert_eq!(&generated, code);
        }
    }

    #[test]
    fn one_step_either_side_and_never_twice() {
        let now = 1_234_567_890;
        let code = code_at(SECRET, now).unwrap();
        assert_eq!(code.len(), 6);
        let step = now / STEP_SECONDS;
        assert_eq!(accept(SECRET, &code, now, None), Some(step));
        assert_eq!(
            accept(SECRET, &code, now + STEP_SECONDS, None),
            Some(step),
            "late by one step"
        );
        assert_eq!(
            accept(SECRET, &code, now - STEP_SECONDS, None),
            Some(step),
            "early by one"
        );
        assert_eq!(
            accept(SECRET, &code, now + 2 * STEP_SECONDS, None),
            None,
            "two steps late"
        );
        assert_eq!(
            accept(SECRET, &code, now, Some(step)),
            None,
            "reused in its step"
        );
        assert_eq!(accept(SECRET, &code, now, Some(step - 1)), Some(step));
        assert_eq!(accept(SECRET, "12345", now, None), None);
        assert_eq!(accept(SECRET, "abcdef", now, None), None);
        assert_eq!(accept(SECRET, &code, -1, None), None);
    }

    #[test]
    fn the_secret_travels_as_base32_in_an_otpauth_uri() {
        let b32 = secret_base32(SECRET);
        assert_eq!(b32, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(secret_from_base32(&b32).as_deref(), Some(SECRET));
        assert_eq!(
            otpauth_uri("Comune di Esempio", "anna", SECRET),
            "otpauth://totp/Comune%20di%20Esempio:anna?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Comune%20di%20Esempio&algorithm=SHA1&digits=6&period=30"
        );
    }
}
