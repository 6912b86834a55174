//! End-to-end tests through the real binary: its command line and its HTTP API, on the
//! database chosen by `SPORTELLO_TEST_DATABASE_URL` (SQLite when unset). One test binary,
//! one module per subject.

// Test helpers may panic: a failed set-up is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod browser;
mod dovecot;
mod harness;

mod api;
mod audit;
mod backup;
mod case_list;
mod citizen_page;
mod cli;
mod contact;
mod crash;
mod demo;
mod guard;
mod hygiene;
mod intake;
mod mailbox;
mod messages;
mod outbound;
mod pages;
mod phone_page;
mod privacy;
mod redmine;
mod remedy;
mod reports;
mod request_id;
mod roles;
mod s3;
mod scale_out;
mod scan;
mod search;
mod users;
mod webhooks;
mod words;
mod workspace;
mod ztl;
