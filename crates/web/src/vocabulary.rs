//! Placeholder schemas of the API description: the document served at
//! `/api/openapi.json` replaces each with this office's values (its case types, the
//! policy's categories and gates…) or with a shape the annotations cannot state. A leaf
//! module, so that the handlers can name them without importing the document itself.
#![allow(dead_code)]

use utoipa::ToSchema;

/// A case type of this office.
#[derive(ToSchema)]
pub struct CaseTypeId(String);
/// A permit category of the policy in force.
#[derive(ToSchema)]
pub struct CategoryId(String);
/// A gate of the policy in force.
#[derive(ToSchema)]
pub struct GateId(String);
/// A case's status.
#[derive(ToSchema)]
pub struct CaseStatus(String);
/// A channel.
#[derive(ToSchema)]
pub struct ChannelName(String);
/// A workflow action.
#[derive(ToSchema)]
pub struct ActionName(String);
/// Text of one or more lines: no control characters but tabs and line breaks.
#[derive(ToSchema)]
pub struct TextLines(String);
/// An RFC 3339 instant, or a date meaning its local midnight.
#[derive(ToSchema)]
pub struct InstantOrDate(String);
/// A date, or nothing.
#[derive(ToSchema)]
pub struct OptionalDate(String);
/// A yes/no filter as a query string says it.
#[derive(ToSchema)]
pub struct Flag(String);
/// A configured mailbox.
#[derive(ToSchema)]
pub struct MailboxName(String);
