//! A message printed on the office's letterhead: the letter posted to a citizen without
//! any digital contact, and the page faxed to one who wrote by fax. Rendered from the
//! queued message itself (its protocol number, date and text), so the same message gives
//! the same PDF whenever it is printed again.

use sportello_config::OfficeConfig;
use sportello_paper::{Block, Letter, letter_pdf};

/// What a printed message says.
#[derive(Debug, Clone)]
pub struct PrintedMessage<'a> {
    /// The case.
    pub reference: &'a str,
    /// The recipient's lines (name, then address or fax number).
    pub recipient: &'a [String],
    /// Protocol number of the message, printed under the date.
    pub protocol: Option<&'a str>,
    /// The date, as printed ("26/11/2026").
    pub date: &'a str,
    /// Subject.
    pub subject: &'a str,
    /// Text; blank lines separate paragraphs.
    pub body: &'a str,
}

/// The date a message was queued (RFC 3339, Rome time), as printed: `dd/mm/yyyy`.
pub fn printed_date(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => t.format("%d/%m/%Y").to_string(),
        Err(_) => rfc3339.chars().take(10).collect(),
    }
}

/// The recipient's lines of a printed message: the fax number for a fax, else the
/// citizen's name (when known) above the postal address.
pub fn recipient_lines(channel: &str, name: Option<&str>, recipient: &str) -> Vec<String> {
    if channel == "fax" {
        return vec![format!("Fax {recipient}")];
    }
    name.map(str::to_owned)
        .into_iter()
        .chain(recipient.lines().map(str::to_owned))
        .collect()
}

/// The PDF of a printed message on `office`'s letterhead.
pub fn message_pdf(office: &OfficeConfig, message: &PrintedMessage) -> Vec<u8> {
    let letterhead = vec![office.authority.clone(), office.name.clone()];
    let place_date = match message.protocol {
        Some(number) => format!("Data: {} - Prot. n. {number}", message.date),
        None => format!("Data: {}", message.date),
    };
    // One paragraph a line: the templates write lists one item a line.
    let body: Vec<Block> = message
        .body
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| Block::Paragraph(line.to_owned()))
        .collect();
    letter_pdf(&Letter {
        letterhead: &letterhead,
        recipient: message.recipient,
        place_date: &place_date,
        reference: message.reference,
        subject: message.subject,
        body: &body,
        signature: &office.name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_letter_carries_the_protocol_number_and_the_text() {
        let office = OfficeConfig::default();
        let recipient = vec![
            "Mario Rossi".to_owned(),
            "Via Roma 1, 00100 Roma".to_owned(),
        ];
        let pdf = message_pdf(
            &office,
            &PrintedMessage {
                reference: "ZTL-2026-000001",
                recipient: &recipient,
                protocol: Some("2026/0000042"),
                date: "26/11/2026",
                subject: "Pratica ZTL-2026-000001 - documenti mancanti",
                body: "Gentile Mario Rossi,\n\nmanca la carta di circolazione.\n\nCordiali saluti.",
            },
        );
        assert!(pdf.starts_with(b"%PDF-"));
        let text = String::from_utf8_lossy(&pdf);
        assert!(
            text.contains("2026/0000042"),
            "the protocol number is printed"
        );
        assert!(text.contains("carta di circolazione"));
        assert_eq!(printed_date("2026-11-26T10:15:30+01:00"), "26/11/2026");
        assert_eq!(
            recipient_lines("letter", Some("Mario Rossi"), "Via Roma 1\n00100 Roma"),
            ["Mario Rossi", "Via Roma 1", "00100 Roma"]
        );
        assert_eq!(
            recipient_lines("fax", Some("Mario Rossi"), "061234567"),
            ["Fax 061234567"]
        );
    }
}
