//! The one place that reads the wall clock.
//!
//! Legal deadlines depend on "now", so every component receives a [`Clock`]
//! instead of calling the system clock; tests inject a [`FixedClock`].

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// A source of the current instant, injected wherever time matters.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// Shared handle to a clock, cheap to clone into every component.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock (honours libfaketime in acceptance runs).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the single sanctioned read of the system clock
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved: for tests and for replaying history (demo data).
#[derive(Debug, Clone)]
pub struct FixedClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl FixedClock {
    /// A clock reading `now` until it is changed.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(now)),
        }
    }

    /// Moves the clock to `now`.
    pub fn set(&self, now: DateTime<Utc>) {
        if let Ok(mut guard) = self.now.lock() {
            *guard = now;
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        if let Ok(mut guard) = self.now.lock() {
            *guard += by;
        }
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        match self.now.lock() {
            Ok(guard) => *guard,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn fixed_clock_moves_only_when_told() {
        let start = Utc.with_ymd_and_hms(2026, 11, 26, 9, 30, 0).unwrap();
        let clock = FixedClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::days(2));
        assert_eq!(clock.now(), start + Duration::days(2));
        clock.set(start);
        assert_eq!(clock.now(), start);
    }
}
