//! The pure domain of Sportello.
//!
//! Everything here is deterministic: no I/O, no clock reads (time comes in as a
//! parameter or through [`clock::Clock`]). Storage, intake and the web layer depend
//! on this crate, never the reverse.

pub mod calendar;
pub mod case;
pub mod clock;
pub mod fiscal_code;
pub mod names;
pub mod outbound;
pub mod plate;
pub mod privacy;
pub mod read_audit;
pub mod recognition;
pub mod redmine;
pub mod refusal;
pub mod register;
pub mod reports;
pub mod roles;
pub mod security;
pub mod sla;
pub mod text;
pub mod timeline;
pub mod totp;
pub mod workflow;
pub mod ztl;
