//! Writing to the citizen: the message templates and the choice of channel.

pub mod choice;
pub mod templates;
