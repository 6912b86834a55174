//! The ZTL (limited-traffic zone) domain: the agreed policy and the reconciliation of the
//! gate cameras' transits against the permit register.

pub mod permits;
pub mod policy;
pub mod transits;
