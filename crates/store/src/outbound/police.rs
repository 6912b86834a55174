//! Answers of the police to the office's requests: a message from a police address that
//! quotes one of the office's protocol numbers goes to that number's case.

use chrono::{DateTime, Utc};
use sportello_domain::register::Direction;
use sqlx::{Any, Transaction};

use super::model::{ANNULMENT_KEY_PREFIX, PROTOCOL_RULE};
use crate::journal::insert_event;
use crate::{Result, get_opt_str};

/// Whether `sender` is one of the police command's configured `police` addresses.
pub(super) fn is_police(police: &[String], sender: &crate::citizens::CitizenInput) -> bool {
    [&sender.pec, &sender.email]
        .into_iter()
        .flatten()
        .any(|address| {
            police
                .iter()
                .any(|p| p.trim().eq_ignore_ascii_case(address.trim()))
        })
}

/// The case an answer from the police belongs to by the protocol number it quotes (in
/// `texts`: the subject, then the text): only a message from one of the `police`
/// addresses, and only a number whose register entry is outgoing and names a case, so a
/// stranger quoting a number, or a number of something the office received, links
/// nothing. Returns the case's reference.
pub(crate) async fn police_answer_case(
    tx: &mut Transaction<'static, Any>,
    police: &[String],
    sender: &crate::citizens::CitizenInput,
    texts: [&str; 2],
) -> Result<Option<String>> {
    if !is_police(police, sender) {
        return Ok(None);
    }
    for text in texts {
        for number in sportello_domain::outbound::answers::quoted_protocol_numbers(text) {
            let row = sqlx::query(
                "SELECT case_reference FROM protocol_register WHERE number = $1 AND direction = $2 \
                 AND case_reference IS NOT NULL",
            )
            .bind(number.to_string())
            .bind(Direction::Out.as_str())
            .fetch_optional(&mut **tx)
            .await?;
            if let Some(row) = row {
                return get_opt_str(&row, "case_reference");
            }
        }
    }
    Ok(None)
}

/// Journals a message from the police attached to a case as the police's answer
/// (`police_answer`) when it is one: from a `police` address, and linked by the protocol
/// number it quotes or on a case whose annulment request went to the police.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn journal_police_answer(
    tx: &mut Transaction<'static, Any>,
    police: &[String],
    sender: &crate::citizens::CitizenInput,
    case_id: i64,
    rule: &str,
    protocol: Option<&str>,
    subject: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    if !is_police(police, sender) {
        return Ok(());
    }
    let answers_a_request = rule == PROTOCOL_RULE
        || sqlx::query(
            "SELECT 1 AS one FROM outbound_messages WHERE case_id = $1 AND idempotency_key LIKE $2 LIMIT 1",
        )
        .bind(case_id)
        .bind(format!("{ANNULMENT_KEY_PREFIX}%"))
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
    if !answers_a_request {
        return Ok(());
    }
    let address = [&sender.pec, &sender.email].into_iter().flatten().next();
    let detail = serde_json::json!({
        "protocol": protocol,
        "rule": rule,
        "subject": subject,
        "sender": address,
    });
    insert_event(tx, case_id, now, "system", "police_answer", &detail).await
}
