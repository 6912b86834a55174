//! Cases: creation with a gap-free reference and a protocol number, workflow actions with
//! the legal clock, the journal, lists with filters, and the SLA tick.
//!
//! Split by capability: [`model`] holds the types, the other modules one kind of work each.

mod actions;
mod create;
mod model;
mod read;
mod tick;

pub use crate::citizens::{CitizenInput, CitizenRecord, CitizenView, phone_key};
pub use crate::documents::OutgoingDocument;
pub use crate::time::rome_rfc3339;
pub use model::{
    CaseFilter, CaseSort, CaseSummary, CaseTerms, CaseView, EventView, NewCase, SlaJson, SortKey,
};
pub use tick::DailyGauges;

#[cfg(test)]
pub(crate) mod tests {
    use sportello_domain::case::Channel;
    use sportello_domain::fiscal_code::FiscalCode;

    use super::{CitizenInput, NewCase};

    pub(crate) fn request(case_type: &str) -> NewCase {
        NewCase {
            case_type: case_type.into(),
            subject: "Permesso residenti".into(),
            description: String::new(),
            channel: Channel::Counter,
            citizen: CitizenInput {
                fiscal_code: Some(FiscalCode::parse("RSSMRA80A01H501U").unwrap()),
                name: Some("Mario Rossi".into()),
                email: Some("Mario.Rossi@example.it".into()),
                ..CitizenInput::default()
            },
            fields: serde_json::Map::new(),
            flags: vec![],
            actor: "op1".into(),
            document_sha256: None,
            registered_as: None,
            terms: None,
        }
    }
}
