//! Writing to the citizen: the message templates and the choice of channel; and reading
//! the answers to what the office sent elsewhere (the police quoting a protocol number).

pub mod answers;
pub mod choice;
pub mod templates;
