//! `[duties]`: how often `serve` runs its background ticks and how long an instance's hold
//! on a duty lasts. With several instances on one PostgreSQL database each duty (the legal
//! clocks' and permits' tick, the contact centre's tick, the search backlog, a scanner
//! folder) is done by the one instance holding its lease; when that instance dies another
//! takes the duty over `lease_seconds` (plus about one tick) after its last renewal.

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// `[duties]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DutiesConfig {
    /// Seconds between two runs of the minute ticks (SLA and permit expiry, reminders and
    /// call-backs); the holder renews its leases at each.
    pub tick_seconds: u64,
    /// Seconds a lease lasts without renewal: how long a dead instance's duties wait
    /// before another instance takes them over. At least twice `tick_seconds`.
    pub lease_seconds: u64,
}

impl Default for DutiesConfig {
    fn default() -> Self {
        DutiesConfig {
            tick_seconds: 60,
            lease_seconds: 180,
        }
    }
}

impl DutiesConfig {
    /// Checks the values serde cannot; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tick_seconds == 0 || self.tick_seconds > 3600 {
            return Err(ConfigError::new(
                "duties.tick_seconds",
                "must be between 1 and 3600",
            ));
        }
        if self.lease_seconds < 2 * self.tick_seconds {
            return Err(ConfigError::new(
                "duties.lease_seconds",
                format!(
                    "must be at least twice duties.tick_seconds ({}), so that the holder renews it in time",
                    2 * self.tick_seconds
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_shorter_than_two_ticks_is_refused_naming_the_key() {
        assert!(DutiesConfig::default().validate().is_ok());
        let short = DutiesConfig {
            tick_seconds: 60,
            lease_seconds: 90,
        };
        assert_eq!(short.validate().unwrap_err().key, "duties.lease_seconds");
        let never = DutiesConfig {
            tick_seconds: 0,
            lease_seconds: 90,
        };
        assert_eq!(never.validate().unwrap_err().key, "duties.tick_seconds");
    }
}
