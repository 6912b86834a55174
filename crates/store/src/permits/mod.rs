//! The permit register in the database: bulk import (idempotent by permit number, plate
//! and start of validity), the rows the transit check and the whitelist read.
//!
//! Split by capability: [`model`] holds the types, the other modules one kind of work each.

mod issue;
mod ledger;
mod model;
mod plates;
mod rows;
mod status;

pub use model::{
    ImportCounts, IssuedPermit, NewPermit, PermitEvent, PermitPlate, PermitView, PublicPermit,
    TemporaryPlate,
};
pub use sportello_domain::ztl::whitelist::{WhitelistRow, write_whitelist};
pub(crate) use status::quoted_permits;

#[cfg(test)]
pub(crate) mod tests {
    use sportello_domain::ztl::permits::RegisterRow;
    use sportello_domain::ztl::transits::PermitRow;

    use super::{NewPermit, TemporaryPlate};
    use crate::Store;
    use crate::testing::fixture_now;

    pub(crate) fn register_row(permit: &str, plate: &str, valid_to: i64) -> RegisterRow {
        RegisterRow {
            line: 2,
            row: PermitRow {
                permit: permit.into(),
                category: "residenti".into(),
                plate: plate.into(),
                country: "IT".into(),
                valid_from: 0,
                valid_to,
                active: true,
            },
            holder_fiscal_code: "RSSMRA85T10A562S".into(),
            holder_name: "Mario Rossi".into(),
            status: "active".into(),
        }
    }

    pub(crate) async fn cude_permit(store: &Store) -> String {
        use sportello_domain::plate::Plate;
        let case = store
            .create_case(crate::cases::tests::request("cude"))
            .await
            .unwrap();
        let now = fixture_now().timestamp_millis();
        let new = NewPermit {
            category: "cude".into(),
            prefix: "CUD".into(),
            holder_fiscal_code: "RSSMRA80A01H501U".into(),
            holder_name: "Mario Rossi".into(),
            plates: vec![Plate::parse("AA111AA", None).unwrap()],
            valid_from: now - 3 * 86_400_000,
            valid_to: now + 365 * 86_400_000,
            policy_version: None,
            renews: None,
        };
        store
            .issue_permit(&case.summary.reference, &new, "op")
            .await
            .unwrap()
            .number
    }

    pub(crate) fn temporary(plate: &str, from_hours: i64, to_hours: i64) -> TemporaryPlate {
        let now = fixture_now().timestamp_millis();
        TemporaryPlate {
            plate: sportello_domain::plate::Plate::parse(plate, None).unwrap(),
            from_ms: now + from_hours * 3_600_000,
            to_ms: now + to_hours * 3_600_000,
        }
    }
}
