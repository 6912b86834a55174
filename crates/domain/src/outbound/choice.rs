//! Which channels the office can use to answer a citizen, which one is the default, and
//! why: the operator sees the explanation and may pick another available option.
//!
//! Explanations are message keys (`choice.*`), put in words by [`reason_text`] in Italian
//! or English.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::case::Channel;
use crate::outbound::templates::Length;

/// A way to reach the citizen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutChannel {
    /// Ordinary e-mail.
    Email,
    /// Certified e-mail (PEC): delivery with legal value.
    Pec,
    /// Fax.
    Fax,
    /// SMS to a mobile number.
    Sms,
    /// WhatsApp Business: free text within 24 hours of the citizen's last message,
    /// afterwards only pre-approved templates.
    Whatsapp,
    /// Telegram, in a conversation the citizen opened with the bot.
    Telegram,
    /// A paper letter to the postal address.
    Letter,
    /// A telephone call by the operator.
    Call,
}

impl OutChannel {
    /// Every channel, in the order the options are listed.
    pub const ALL: [OutChannel; 8] = [
        OutChannel::Email,
        OutChannel::Pec,
        OutChannel::Fax,
        OutChannel::Sms,
        OutChannel::Whatsapp,
        OutChannel::Telegram,
        OutChannel::Letter,
        OutChannel::Call,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutChannel::Email => "email",
            OutChannel::Pec => "pec",
            OutChannel::Fax => "fax",
            OutChannel::Sms => "sms",
            OutChannel::Whatsapp => "whatsapp",
            OutChannel::Telegram => "telegram",
            OutChannel::Letter => "letter",
            OutChannel::Call => "call",
        }
    }

    /// The channel with this wire name, if any.
    pub fn parse(s: &str) -> Option<Self> {
        OutChannel::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether a message goes out electronically (all but a letter and a call).
    pub fn is_digital(self) -> bool {
        !matches!(self, OutChannel::Letter | OutChannel::Call)
    }

    /// How long the text for this channel may be: `Full` for e-mail, PEC, fax and letter,
    /// `Short` for SMS, WhatsApp, Telegram and for a call (what the operator reads out).
    pub fn length(self) -> Length {
        match self {
            OutChannel::Email | OutChannel::Pec | OutChannel::Fax | OutChannel::Letter => {
                Length::Full
            }
            OutChannel::Sms | OutChannel::Whatsapp | OutChannel::Telegram | OutChannel::Call => {
                Length::Short
            }
        }
    }
}

impl fmt::Display for OutChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is known of the citizen's contacts (from the case's citizen and their messages).
/// Blank strings count as unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contacts {
    /// Ordinary e-mail address.
    pub email: Option<String>,
    /// PEC address.
    pub pec: Option<String>,
    /// Mobile (or other telephone) number; an Italian landline (`0…`) gets calls only.
    pub mobile: Option<String>,
    /// Fax number.
    pub fax: Option<String>,
    /// Postal address, for a letter.
    pub postal_address: Option<String>,
    /// Chat id of a Telegram conversation on the case.
    pub telegram_chat: Option<String>,
    /// The citizen wrote on WhatsApp in the last 24 hours, so free text is allowed.
    pub whatsapp_window_open: bool,
    /// A pre-approved WhatsApp template may be used outside the 24-hour window (set it only
    /// for citizens who agreed to be contacted on WhatsApp).
    pub whatsapp_template_configured: bool,
    /// The channel the citizen said they prefer, if any.
    pub preferred: Option<OutChannel>,
}

/// One channel the operator may pick, with where it goes and why it is (not) available.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelOption {
    /// The channel.
    pub channel: OutChannel,
    /// The address, number or chat id it goes to, when known.
    pub to: Option<String>,
    /// Whether the office can use it now.
    pub available: bool,
    /// Why, as a `choice.*` key for [`reason_text`].
    pub reason: &'static str,
}

/// The options, the default and why, for the operator to confirm or change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelChoice {
    /// The channel proposed.
    pub default: OutChannel,
    /// Why it is proposed, as a `choice.*` key for [`reason_text`].
    pub reason: &'static str,
    /// Every channel, in [`OutChannel::ALL`] order, available or not.
    pub options: Vec<ChannelOption>,
}

impl ChannelChoice {
    /// The option of `channel` (every channel is listed).
    pub fn option(&self, channel: OutChannel) -> Option<&ChannelOption> {
        self.options.iter().find(|o| o.channel == channel)
    }

    /// Whether the office can write on the proposed channel now (a letter or a call is
    /// not written by the sender).
    pub fn can_write(&self) -> bool {
        self.default.is_digital() && self.option(self.default).is_some_and(|o| o.available)
    }

    /// The choice within what the office has configured: a channel `configured` refuses is
    /// unavailable (`choice.not_configured`), and a proposed channel that became so gives
    /// way to the first usable one, strongest first (`choice.fallback_configured`; a
    /// call-back when nothing can be written to). Letters and calls need no configuration.
    pub fn within(mut self, configured: impl Fn(OutChannel) -> bool) -> ChannelChoice {
        for option in &mut self.options {
            let needs_configuration = option.channel.is_digital();
            if option.available && needs_configuration && !configured(option.channel) {
                option.available = false;
                option.reason = "choice.not_configured";
            }
        }
        let usable = |c: OutChannel| self.option(c).is_some_and(|o| o.available);
        if !usable(self.default) {
            let fallback = [
                OutChannel::Pec,
                OutChannel::Email,
                OutChannel::Sms,
                OutChannel::Whatsapp,
                OutChannel::Telegram,
                OutChannel::Fax,
                OutChannel::Letter,
                OutChannel::Call,
            ]
            .into_iter()
            .find(|c| usable(*c));
            if let Some(channel) = fallback {
                self.default = channel;
                self.reason = "choice.fallback_configured";
            }
        }
        self
    }
}

/// Every reason key [`choose`] may give, for the translations' test and the pages.
pub const REASON_KEYS: [&str; 20] = [
    "choice.not_configured",
    "choice.fallback_configured",
    "choice.pec_answers_pec",
    "choice.email_answers_email",
    "choice.fax_answers_fax",
    "choice.whatsapp_window_open",
    "choice.whatsapp_template",
    "choice.whatsapp_closed",
    "choice.whatsapp_closed_sms",
    "choice.telegram_answers_telegram",
    "choice.sms_answers_sms",
    "choice.preferred",
    "choice.pec_strongest",
    "choice.email_known",
    "choice.sms_only",
    "choice.letter_only",
    "choice.no_contact",
    "choice.available",
    "choice.no_address",
    "choice.landline",
];

/// Proposes how to answer a case that came through `case_channel`, given the citizen's
/// `contacts`. Every channel is listed as an option; one without its address (e-mail, PEC,
/// fax number, mobile, Telegram chat, postal address) is unavailable with reason
/// `choice.no_address`. SMS and WhatsApp need a number that is not an Italian landline
/// (`choice.landline`); WhatsApp also needs the 24-hour window open
/// (`choice.whatsapp_window_open`) or a pre-approved template (`choice.whatsapp_template`),
/// else `choice.whatsapp_closed`. A call needs any telephone number; a letter is always
/// available with a postal address.
///
/// The default, first rule that applies:
///
/// 1. came by PEC → PEC (`choice.pec_answers_pec`): an answer to a PEC goes by PEC; the
///    other options stay listed, and the explanation says they are only additions;
/// 2. came by e-mail → e-mail (`choice.email_answers_email`);
/// 3. came by fax → fax, if a fax number is known (`choice.fax_answers_fax`);
/// 4. came by WhatsApp → WhatsApp while it is usable (window open or template), else SMS
///    to the same mobile (`choice.whatsapp_closed_sms`);
/// 5. came by Telegram → Telegram, if the chat is known (`choice.telegram_answers_telegram`);
/// 6. came by SMS → SMS (`choice.sms_answers_sms`);
/// 7. otherwise — web, phone, counter, post, scan, or a rule above whose address is
///    missing — the citizen's preferred channel if available (`choice.preferred`), else PEC
///    (legally strongest, `choice.pec_strongest`), else e-mail (`choice.email_known`), else
///    SMS (`choice.sms_only`), else a letter (`choice.letter_only`), else a call-back, the
///    last resort when nothing digital or postal is known (`choice.no_contact`; the `Call`
///    option may itself be unavailable when no number is known either).
pub fn choose(case_channel: Channel, contacts: &Contacts) -> ChannelChoice {
    let options: Vec<ChannelOption> = OutChannel::ALL
        .into_iter()
        .map(|channel| option(channel, contacts))
        .collect();
    let find = |channel: OutChannel| options.iter().find(|o| o.channel == channel);
    let usable = |channel: OutChannel| find(channel).is_some_and(|o| o.available);

    let by_case_channel = match case_channel {
        Channel::Pec if usable(OutChannel::Pec) => {
            Some((OutChannel::Pec, "choice.pec_answers_pec"))
        }
        Channel::Email if usable(OutChannel::Email) => {
            Some((OutChannel::Email, "choice.email_answers_email"))
        }
        Channel::Fax if usable(OutChannel::Fax) => {
            Some((OutChannel::Fax, "choice.fax_answers_fax"))
        }
        Channel::Whatsapp if usable(OutChannel::Whatsapp) => {
            find(OutChannel::Whatsapp).map(|o| (OutChannel::Whatsapp, o.reason))
        }
        Channel::Whatsapp if usable(OutChannel::Sms) => {
            Some((OutChannel::Sms, "choice.whatsapp_closed_sms"))
        }
        Channel::Telegram if usable(OutChannel::Telegram) => {
            Some((OutChannel::Telegram, "choice.telegram_answers_telegram"))
        }
        Channel::Sms if usable(OutChannel::Sms) => {
            Some((OutChannel::Sms, "choice.sms_answers_sms"))
        }
        _ => None,
    };
    let (default, reason) = by_case_channel.unwrap_or_else(|| {
        if let Some(preferred) = contacts.preferred
            && usable(preferred)
        {
            return (preferred, "choice.preferred");
        }
        [
            (OutChannel::Pec, "choice.pec_strongest"),
            (OutChannel::Email, "choice.email_known"),
            (OutChannel::Sms, "choice.sms_only"),
            (OutChannel::Letter, "choice.letter_only"),
        ]
        .into_iter()
        .find(|(channel, _)| usable(*channel))
        .unwrap_or((OutChannel::Call, "choice.no_contact"))
    });
    ChannelChoice {
        default,
        reason,
        options,
    }
}

/// A known value: trimmed, `None` when blank.
fn known(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Whether a telephone number can receive SMS and WhatsApp: any number but an Italian
/// landline (national number starting with `0`). Foreign numbers are given the benefit of
/// the doubt.
fn can_text(number: &str) -> bool {
    let digits: String = number
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect();
    match digits
        .strip_prefix("+39")
        .or_else(|| digits.strip_prefix("0039"))
    {
        Some(national) => !national.starts_with('0'),
        None if digits.starts_with('+') || digits.starts_with("00") => true,
        None => !digits.starts_with('0'),
    }
}

fn option(channel: OutChannel, contacts: &Contacts) -> ChannelOption {
    let to = match channel {
        OutChannel::Email => known(&contacts.email),
        OutChannel::Pec => known(&contacts.pec),
        OutChannel::Fax => known(&contacts.fax),
        OutChannel::Sms | OutChannel::Whatsapp | OutChannel::Call => known(&contacts.mobile),
        OutChannel::Telegram => known(&contacts.telegram_chat),
        OutChannel::Letter => known(&contacts.postal_address),
    };
    let (available, reason) = match (channel, to) {
        (_, None) => (false, "choice.no_address"),
        (OutChannel::Sms | OutChannel::Whatsapp, Some(number)) if !can_text(number) => {
            (false, "choice.landline")
        }
        (OutChannel::Whatsapp, Some(_)) if contacts.whatsapp_window_open => {
            (true, "choice.whatsapp_window_open")
        }
        (OutChannel::Whatsapp, Some(_)) if contacts.whatsapp_template_configured => {
            (true, "choice.whatsapp_template")
        }
        (OutChannel::Whatsapp, Some(_)) => (false, "choice.whatsapp_closed"),
        (_, Some(_)) => (true, "choice.available"),
    };
    ChannelOption {
        channel,
        to: to.map(str::to_owned),
        available,
        reason,
    }
}

/// The sentence for a `choice.*` reason key in `lang` (`"en"`, `en-GB`… English; anything
/// else Italian); an unknown key is returned as it is.
pub fn reason_text<'a>(key: &'a str, lang: &str) -> &'a str {
    let english = lang
        .trim()
        .get(..2)
        .is_some_and(|p| p.eq_ignore_ascii_case("en"))
        && matches!(lang.trim().as_bytes().get(2), None | Some(b'-' | b'_'));
    let (it, en) = match key {
        "choice.pec_answers_pec" => (
            "La pratica è arrivata per PEC: si risponde per PEC, che dà valore legale alla consegna. Gli altri canali restano elencati, ma vanno usati solo in aggiunta alla PEC.",
            "The case came by PEC: it is answered by PEC, which gives the delivery legal value. The other channels stay listed, but only to be used in addition to PEC.",
        ),
        "choice.email_answers_email" => (
            "La pratica è arrivata per e-mail: si risponde allo stesso indirizzo.",
            "The case came by e-mail: the answer goes to the same address.",
        ),
        "choice.fax_answers_fax" => (
            "La pratica è arrivata per fax: si risponde allo stesso numero di fax.",
            "The case came by fax: the answer goes to the same fax number.",
        ),
        "choice.whatsapp_window_open" => (
            "Il cittadino ha scritto su WhatsApp nelle ultime 24 ore: si può rispondere liberamente su WhatsApp.",
            "The citizen wrote on WhatsApp in the last 24 hours: a free-text WhatsApp reply is allowed.",
        ),
        "choice.whatsapp_template" => (
            "Sono passate più di 24 ore dall'ultimo messaggio WhatsApp del cittadino: si può scrivere solo con il modello approvato, che è configurato.",
            "More than 24 hours have passed since the citizen's last WhatsApp message: only the pre-approved template, which is configured, may be sent.",
        ),
        "choice.whatsapp_closed" => (
            "Sono passate più di 24 ore dall'ultimo messaggio WhatsApp del cittadino e non è configurato un modello approvato: WhatsApp non si può usare.",
            "More than 24 hours have passed since the citizen's last WhatsApp message and no pre-approved template is configured: WhatsApp cannot be used.",
        ),
        "choice.whatsapp_closed_sms" => (
            "La pratica è arrivata su WhatsApp, ma la finestra di 24 ore è chiusa e non c'è un modello approvato: si risponde per SMS allo stesso numero.",
            "The case came by WhatsApp, but the 24-hour window is closed and there is no pre-approved template: the answer goes by SMS to the same number.",
        ),
        "choice.telegram_answers_telegram" => (
            "La pratica è arrivata su Telegram: si risponde nella stessa conversazione.",
            "The case came by Telegram: the answer goes to the same conversation.",
        ),
        "choice.sms_answers_sms" => (
            "La pratica è arrivata per SMS: si risponde per SMS allo stesso numero.",
            "The case came by SMS: the answer goes by SMS to the same number.",
        ),
        "choice.preferred" => (
            "Il cittadino ha indicato questo canale come preferito.",
            "The citizen said they prefer this channel.",
        ),
        "choice.pec_strongest" => (
            "Il cittadino ha un indirizzo PEC: è il canale con il valore legale più forte.",
            "The citizen has a PEC address: it is the channel with the strongest legal value.",
        ),
        "choice.email_known" => (
            "Non c'è una PEC, ma è noto un indirizzo e-mail.",
            "There is no PEC address, but an e-mail address is known.",
        ),
        "choice.sms_only" => (
            "Non sono noti indirizzi PEC o e-mail: si scrive per SMS al cellulare.",
            "No PEC or e-mail address is known: the message goes by SMS to the mobile number.",
        ),
        "choice.letter_only" => (
            "Non sono noti recapiti digitali: si scrive per lettera all'indirizzo postale.",
            "No digital contact is known: the message goes by letter to the postal address.",
        ),
        "choice.no_contact" => (
            "Non sono noti recapiti digitali né un indirizzo postale: resta solo da richiamare il cittadino al telefono o, se manca anche il numero, attendere che si metta in contatto.",
            "No digital contact and no postal address are known: all that is left is to call the citizen back or, if no number is known either, to wait until they get in touch.",
        ),
        "choice.available" => ("Il recapito è noto.", "The address or number is known."),
        "choice.no_address" => (
            "Non è noto un recapito per questo canale.",
            "No address or number is known for this channel.",
        ),
        "choice.landline" => (
            "Il numero noto è un fisso: non può ricevere SMS né messaggi WhatsApp.",
            "The number known is a landline: it cannot receive SMS or WhatsApp messages.",
        ),
        "choice.not_configured" => (
            "L'ufficio non ha configurato questo canale.",
            "The office has not configured this channel.",
        ),
        "choice.fallback_configured" => (
            "Il canale che il cittadino usa non è configurato dall'ufficio: si usa il primo canale disponibile.",
            "The channel the citizen uses is not configured by the office: the first available channel is used.",
        ),
        _ => return key,
    };
    if english { en } else { it }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_channel_the_office_has_not_configured_gives_way() {
        let contacts = Contacts {
            email: Some("mario@example.it".into()),
            mobile: Some("+39 333 1234567".into()),
            ..Contacts::default()
        };
        let choice = choose(Channel::Email, &contacts);
        assert_eq!(choice.default, OutChannel::Email);
        assert!(choice.clone().within(|_| true).can_write());
        // Only SMS is configured: e-mail is marked so, SMS is proposed instead.
        let sms_only = choice.clone().within(|c| c == OutChannel::Sms);
        assert_eq!(sms_only.default, OutChannel::Sms);
        assert_eq!(sms_only.reason, "choice.fallback_configured");
        let email = sms_only.option(OutChannel::Email).unwrap();
        assert!(!email.available);
        assert_eq!(email.reason, "choice.not_configured");
        assert!(sms_only.can_write());
        // Nothing configured: a call-back, which is not written.
        let none = choice.within(|_| false);
        assert_eq!(none.default, OutChannel::Call);
        assert!(!none.can_write());
    }

    fn all_contacts() -> Contacts {
        Contacts {
            email: Some("maria.bianchi@example.it".into()),
            pec: Some("maria.bianchi@pec.example.it".into()),
            mobile: Some("+39 333 123 4567".into()),
            fax: Some("035 399 111".into()),
            postal_address: Some("Via Roma 1, 24121 Bergamo".into()),
            telegram_chat: Some("123456789".into()),
            whatsapp_window_open: true,
            whatsapp_template_configured: true,
            preferred: None,
        }
    }

    fn pick(channel: Channel, contacts: &Contacts) -> (OutChannel, &'static str) {
        let choice = choose(channel, contacts);
        (choice.default, choice.reason)
    }

    #[test]
    fn channels_have_stable_names_and_lengths() {
        for channel in OutChannel::ALL {
            assert_eq!(OutChannel::parse(channel.as_str()), Some(channel));
        }
        assert_eq!(OutChannel::parse("whatsapp"), Some(OutChannel::Whatsapp));
        assert_eq!(OutChannel::parse("Email"), None);
        assert!(OutChannel::Pec.is_digital() && OutChannel::Telegram.is_digital());
        assert!(!OutChannel::Letter.is_digital() && !OutChannel::Call.is_digital());
        assert_eq!(OutChannel::Fax.length(), Length::Full);
        assert_eq!(OutChannel::Letter.length(), Length::Full);
        assert_eq!(OutChannel::Sms.length(), Length::Short);
        assert_eq!(OutChannel::Whatsapp.length(), Length::Short);
    }

    #[test]
    fn pec_is_answered_by_pec_whatever_else_is_known() {
        let contacts = Contacts {
            preferred: Some(OutChannel::Whatsapp),
            ..all_contacts()
        };
        let choice = choose(Channel::Pec, &contacts);
        assert_eq!(
            (choice.default, choice.reason),
            (OutChannel::Pec, "choice.pec_answers_pec")
        );
        assert_eq!(choice.options.len(), 8);
        assert!(
            choice.options.iter().all(|o| o.available),
            "the others stay listed"
        );
        assert_eq!(
            choice.option(OutChannel::Pec).unwrap().to.as_deref(),
            Some("maria.bianchi@pec.example.it")
        );
        assert!(reason_text(choice.reason, "en").contains("in addition"));
    }

    #[test]
    fn email_and_fax_are_answered_on_the_same_channel() {
        assert_eq!(
            pick(Channel::Email, &all_contacts()),
            (OutChannel::Email, "choice.email_answers_email")
        );
        assert_eq!(
            pick(Channel::Fax, &all_contacts()),
            (OutChannel::Fax, "choice.fax_answers_fax")
        );
        // Without a fax number, the general rule: PEC first.
        let no_fax = Contacts {
            fax: None,
            ..all_contacts()
        };
        assert_eq!(
            pick(Channel::Fax, &no_fax),
            (OutChannel::Pec, "choice.pec_strongest")
        );
        let choice = choose(Channel::Fax, &no_fax);
        let fax = choice.option(OutChannel::Fax).unwrap();
        assert!(!fax.available && fax.to.is_none());
        assert_eq!(fax.reason, "choice.no_address");
    }

    #[test]
    fn whatsapp_needs_its_window_or_a_template_else_sms_else_the_general_rule() {
        let open = all_contacts();
        assert_eq!(
            pick(Channel::Whatsapp, &open),
            (OutChannel::Whatsapp, "choice.whatsapp_window_open")
        );
        let template = Contacts {
            whatsapp_window_open: false,
            ..all_contacts()
        };
        assert_eq!(
            pick(Channel::Whatsapp, &template),
            (OutChannel::Whatsapp, "choice.whatsapp_template")
        );
        let closed = Contacts {
            whatsapp_window_open: false,
            whatsapp_template_configured: false,
            ..all_contacts()
        };
        let choice = choose(Channel::Whatsapp, &closed);
        assert_eq!(
            (choice.default, choice.reason),
            (OutChannel::Sms, "choice.whatsapp_closed_sms")
        );
        let whatsapp = choice.option(OutChannel::Whatsapp).unwrap();
        assert!(!whatsapp.available);
        assert_eq!(whatsapp.reason, "choice.whatsapp_closed");
        assert_eq!(whatsapp.to.as_deref(), Some("+39 333 123 4567"));
        // No mobile at all: nothing to text, nothing to call; only a letter.
        let nothing = Contacts {
            postal_address: Some("Via Roma 1".into()),
            whatsapp_window_open: true,
            ..Contacts::default()
        };
        assert_eq!(
            pick(Channel::Whatsapp, &nothing),
            (OutChannel::Letter, "choice.letter_only")
        );
        // With no contact at all, a call-back is the last resort.
        assert_eq!(
            pick(Channel::Whatsapp, &Contacts::default()),
            (OutChannel::Call, "choice.no_contact")
        );
    }

    #[test]
    fn telegram_and_sms_are_answered_on_the_same_channel() {
        assert_eq!(
            pick(Channel::Telegram, &all_contacts()),
            (OutChannel::Telegram, "choice.telegram_answers_telegram")
        );
        let no_chat = Contacts {
            telegram_chat: Some("  ".into()),
            pec: None,
            ..all_contacts()
        };
        assert_eq!(
            pick(Channel::Telegram, &no_chat),
            (OutChannel::Email, "choice.email_known")
        );
        assert_eq!(
            choose(Channel::Telegram, &no_chat)
                .option(OutChannel::Telegram)
                .unwrap()
                .reason,
            "choice.no_address"
        );
        assert_eq!(
            pick(Channel::Sms, &all_contacts()),
            (OutChannel::Sms, "choice.sms_answers_sms")
        );
    }

    #[test]
    fn other_channels_follow_preference_then_pec_email_sms_letter_call() {
        for channel in [
            Channel::Web,
            Channel::Phone,
            Channel::Counter,
            Channel::Post,
            Channel::Scan,
        ] {
            let mut contacts = Contacts {
                preferred: Some(OutChannel::Telegram),
                ..all_contacts()
            };
            assert_eq!(
                pick(channel, &contacts),
                (OutChannel::Telegram, "choice.preferred")
            );
            // A preference that cannot be used is ignored.
            contacts.telegram_chat = None;
            assert_eq!(
                pick(channel, &contacts),
                (OutChannel::Pec, "choice.pec_strongest")
            );
            contacts.pec = None;
            assert_eq!(
                pick(channel, &contacts),
                (OutChannel::Email, "choice.email_known")
            );
            contacts.email = None;
            assert_eq!(
                pick(channel, &contacts),
                (OutChannel::Sms, "choice.sms_only")
            );
            contacts.mobile = None;
            assert_eq!(
                pick(channel, &contacts),
                (OutChannel::Letter, "choice.letter_only")
            );
            contacts.postal_address = None;
            contacts.fax = None;
            let choice = choose(channel, &contacts);
            assert_eq!(
                (choice.default, choice.reason),
                (OutChannel::Call, "choice.no_contact")
            );
            assert!(
                choice
                    .options
                    .iter()
                    .all(|o| !o.available && o.reason == "choice.no_address")
            );
            // A landline only: no SMS, but a call-back is possible.
            contacts.mobile = Some("035 399 000".into());
            let choice = choose(channel, &contacts);
            assert_eq!(
                (choice.default, choice.reason),
                (OutChannel::Call, "choice.no_contact")
            );
            assert!(choice.option(OutChannel::Call).unwrap().available);
            let sms = choice.option(OutChannel::Sms).unwrap();
            assert_eq!((sms.available, sms.reason), (false, "choice.landline"));
        }
        // A preferred call, when a number is known.
        let contacts = Contacts {
            preferred: Some(OutChannel::Call),
            ..all_contacts()
        };
        assert_eq!(
            pick(Channel::Counter, &contacts),
            (OutChannel::Call, "choice.preferred")
        );
        // A case that came by e-mail is answered by e-mail even if the citizen prefers SMS.
        let contacts = Contacts {
            preferred: Some(OutChannel::Sms),
            ..all_contacts()
        };
        assert_eq!(
            pick(Channel::Email, &contacts),
            (OutChannel::Email, "choice.email_answers_email")
        );
    }

    #[test]
    fn options_tell_where_and_why() {
        let choice = choose(Channel::Web, &all_contacts());
        let channels: Vec<OutChannel> = choice.options.iter().map(|o| o.channel).collect();
        assert_eq!(channels, OutChannel::ALL);
        let letter = choice.option(OutChannel::Letter).unwrap();
        assert_eq!(letter.to.as_deref(), Some("Via Roma 1, 24121 Bergamo"));
        assert_eq!(
            (letter.available, letter.reason),
            (true, "choice.available")
        );
        let call = choice.option(OutChannel::Call).unwrap();
        assert_eq!(call.to.as_deref(), Some("+39 333 123 4567"));
        assert!(call.available);
    }

    #[test]
    fn landlines_are_told_from_mobiles() {
        for mobile in [
            "3331234567",
            "+39 333 1234567",
            "0039 347 000 1111",
            "+44 7700 900123",
        ] {
            assert!(can_text(mobile), "{mobile}");
        }
        for landline in ["035 399111", "+39 02 1234567", "0039 06 555 1234"] {
            assert!(!can_text(landline), "{landline}");
        }
    }

    #[test]
    fn every_reason_has_both_sentences() {
        let contacts_sets = [
            all_contacts(),
            Contacts::default(),
            Contacts {
                whatsapp_window_open: false,
                ..all_contacts()
            },
        ];
        for contacts in &contacts_sets {
            for channel in Channel::ALL {
                let choice = choose(*channel, contacts);
                assert!(REASON_KEYS.contains(&choice.reason), "{}", choice.reason);
                for o in &choice.options {
                    assert!(REASON_KEYS.contains(&o.reason), "{}", o.reason);
                }
            }
        }
        for key in REASON_KEYS {
            let (it, en) = (reason_text(key, "it"), reason_text(key, "en"));
            assert_ne!(it, key);
            assert_ne!(en, key);
            assert_ne!(it, en, "{key}");
            assert_eq!(reason_text(key, "fr"), it);
            assert_eq!(reason_text(key, "en-GB"), en);
            assert_eq!(reason_text(key, "EN"), en);
        }
        assert_eq!(reason_text("choice.bogus", "en"), "choice.bogus");
    }
}
