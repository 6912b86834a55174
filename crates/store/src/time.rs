//! How instants are shown: RFC 3339 with the Europe/Rome offset. A leaf every part of the
//! store can use without reaching into another.

use chrono::{DateTime, SecondsFormat, Utc};
use sportello_domain::calendar::ROME;

/// Formats an instant as RFC 3339 with the Europe/Rome offset.
pub fn rome_rfc3339(t: DateTime<Utc>) -> String {
    t.with_timezone(&ROME)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}
