//! The S/MIME signature of PEC transport envelopes (CMS, detached, over the exact signed
//! bytes of the first part of `multipart/signed`). With the providers' certificates
//! (`pec.trust_anchors`) the signer's chain is verified too; without them, only the
//! signature's integrity. The result is recorded, never a reason to drop a message.

use base64::Engine;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;

/// What the signature check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    /// The signature matches the content; `chain` tells whether it chains to a trust anchor.
    Valid {
        /// Whether the signer's certificate was verified against the trust anchors.
        chain: bool,
    },
    /// Missing, malformed or not matching.
    Invalid(String),
}

fn boundary_of(raw: &[u8]) -> Option<String> {
    let head_end = find(raw, b"\r\n\r\n").or_else(|| find(raw, b"\n\n"))?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    // Unfold continuation lines before looking for the parameter.
    let unfolded = head
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ")
        .replace("\n ", " ")
        .replace("\n\t", " ");
    let ct = unfolded
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-type:"))?;
    if !ct.to_ascii_lowercase().contains("multipart/signed") {
        return None;
    }
    let pos = ct.to_ascii_lowercase().find("boundary=")? + "boundary=".len();
    let rest = &ct[pos..];
    let value = if let Some(quoted) = rest.strip_prefix('"') {
        quoted.split('"').next()?
    } else {
        rest.split(';').next()?.trim()
    };
    (!value.is_empty()).then(|| value.to_owned())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The signed content and the DER signature of a `multipart/signed` message.
fn split_signed(raw: &[u8]) -> Option<(&[u8], Vec<u8>)> {
    let boundary = boundary_of(raw)?;
    let delimiter = format!("--{boundary}");
    let first = find(raw, delimiter.as_bytes())?;
    let mut start = first + delimiter.len();
    start += if raw.get(start..start + 2) == Some(b"\r\n") {
        2
    } else {
        1
    };
    let crlf_delim = format!("\r\n{delimiter}");
    let lf_delim = format!("\n{delimiter}");
    let (end, sep_len) = match find(&raw[start..], crlf_delim.as_bytes()) {
        Some(e) => (start + e, crlf_delim.len()),
        None => (
            start + find(&raw[start..], lf_delim.as_bytes())?,
            lf_delim.len(),
        ),
    };
    let content = &raw[start..end];
    let after = &raw[end + sep_len..];
    let part_end = find(after, delimiter.as_bytes()).unwrap_or(after.len());
    let part = &after[..part_end];
    let body_start = find(part, b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| find(part, b"\n\n").map(|p| p + 2))?;
    let b64: String = String::from_utf8_lossy(&part[body_start..])
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some((content, der))
}

/// Verifies a PEC envelope. `anchors_pem` is the PEM bundle of `pec.trust_anchors`.
pub fn verify_envelope(raw: &[u8], anchors_pem: Option<&[u8]>) -> SignatureCheck {
    let Some((content, der)) = split_signed(raw) else {
        return SignatureCheck::Invalid(
            "the envelope is not signed (no multipart/signed with a signature)".into(),
        );
    };
    let mut cms = match CmsContentInfo::from_der(&der) {
        Ok(cms) => cms,
        Err(e) => return SignatureCheck::Invalid(format!("unreadable signature: {e}")),
    };
    let mut store = match X509StoreBuilder::new() {
        Ok(s) => s,
        Err(e) => return SignatureCheck::Invalid(format!("certificate store: {e}")),
    };
    let mut flags = CMSOptions::BINARY;
    let chain = match anchors_pem {
        Some(pem) => match X509::stack_from_pem(pem) {
            Ok(certs) if !certs.is_empty() => {
                for cert in certs {
                    if let Err(e) = store.add_cert(cert) {
                        return SignatureCheck::Invalid(format!("trust anchors: {e}"));
                    }
                }
                true
            }
            _ => return SignatureCheck::Invalid("pec.trust_anchors holds no certificate".into()),
        },
        None => {
            flags |= CMSOptions::NO_SIGNER_CERT_VERIFY;
            false
        }
    };
    let store = store.build();
    match cms.verify(None, Some(&store), Some(content), None, flags) {
        Ok(()) => SignatureCheck::Valid { chain },
        Err(e) => SignatureCheck::Invalid(e.to_string().chars().take(300).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(path: &str) -> Option<Vec<u8>> {
        std::fs::read(format!(
            "{}/../../../shared/fixtures/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .ok()
    }

    #[test]
    fn fixture_envelope_signature() {
        let (Some(envelope), Some(ca), Some(provider)) = (
            shared("intake/04_pec_envelope_new_request.eml"),
            shared("pec/pec-test-ca.pem"),
            shared("pec/pec-provider.pem"),
        ) else {
            eprintln!("skipped: ../shared/fixtures not present");
            return;
        };
        assert_eq!(
            verify_envelope(&envelope, None),
            SignatureCheck::Valid { chain: false }
        );
        assert_eq!(
            verify_envelope(&envelope, Some(&ca)),
            SignatureCheck::Valid { chain: true }
        );
        // Anchored elsewhere: the provider's certificate alone is not a trusted root.
        assert!(matches!(
            verify_envelope(&envelope, Some(&provider)),
            SignatureCheck::Invalid(_)
        ));
        // A bundle with no certificate in it is a configuration problem, reported.
        assert!(matches!(
            verify_envelope(&envelope, Some(b"")),
            SignatureCheck::Invalid(_)
        ));
        // One byte changed in the signed content: invalid.
        let text = String::from_utf8_lossy(&envelope).into_owned();
        let tampered = text.replacen(
            "Domanda contrassegno CUDE e accesso ZTL\r\n\r\n",
            "Domanda contrassegno CUDE e accesso ZTM\r\n\r\n",
            1,
        );
        let tampered = if tampered == text {
            text.replacen("CUDE", "CUDF", 2)
        } else {
            tampered
        };
        assert_ne!(tampered, text);
        assert!(matches!(
            verify_envelope(tampered.as_bytes(), None),
            SignatureCheck::Invalid(_)
        ));
        // Not signed at all.
        assert!(matches!(
            verify_envelope(b"Subject: x\r\n\r\nbody", None),
            SignatureCheck::Invalid(_)
        ));
    }
}
