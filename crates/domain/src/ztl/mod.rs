//! The ZTL (limited-traffic zone) domain: the agreed policy and the reconciliation of the
//! gate cameras' transits against the permit register.

pub mod numbers;
pub mod permits;
pub mod plate_limit;
pub mod policy;
pub mod transits;
pub mod whitelist;
