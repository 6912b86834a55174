//! The certified-mail provider's data (`daticert.xml`) that travels in every PEC envelope
//! and receipt: who sent what to whom, when, under which provider identifier, and, for
//! receipts, what happened to the delivery.
//!
//! The file comes from outside (a provider, or anyone who writes a message that looks like
//! a PEC), so [`parse`] reads it as hostile input: it never panics, refuses more than
//! [`MAX_INPUT_BYTES`], expands no entity and reads no DTD (a `<!DOCTYPE … [<!ENTITY …>]>`
//! is skipped, and references to its entities are kept as literal text), keeps at most
//! [`MAX_REPEATED`] of each repeated element and at most [`MAX_VALUE_CHARS`] characters of
//! each value. Every value is trimmed, with its runs of whitespace (line breaks included)
//! made one space and its control characters (NUL included) dropped; an empty value is
//! `None`. The document is read as a stream in one pass, so its cost is linear in its size
//! whatever its shape.
//!
//! Only a document that is not well-formed XML, or whose root is not `postacert`, is an
//! error; missing or unknown parts give `None` (or empty lists), never an error, because a
//! receipt with an odd field is still a receipt.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone};
use quick_xml::Reader;
use quick_xml::events::{BytesRef, BytesStart, Event};

/// Larger inputs are refused: a real `daticert.xml` is about 1 KiB, and the cap bounds the
/// work and memory one message can cost.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;

/// At most this many characters of each value are kept (after trimming), so that no field
/// can carry a megabyte into the database, the logs or the screen.
pub const MAX_VALUE_CHARS: usize = 1_000;

/// At most this many of each repeated element (`destinatari`, `consegna`, `ricezione`) are
/// kept; the rest are read past and dropped.
pub const MAX_REPEATED: usize = 1_000;

/// What the provider's data says about one PEC message or receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daticert {
    /// What this document is (`postacert@tipo`: `posta-certificata` for a transport
    /// envelope, `accettazione`, `avvenuta-consegna`, `errore-consegna`… for receipts),
    /// trimmed and lowercased. Unknown values are kept as given, not refused, so that a new
    /// kind of receipt still reaches a person; empty when the attribute is missing.
    pub kind: String,
    /// The error the document reports (`postacert@errore`: `no-dest`, `no-dominio`, `virus`,
    /// `altro`…), lowercased; `None` for `nessuno` or when missing.
    pub error: Option<String>,
    /// The sender's address (`mittente`), lowercased so it compares with stored addresses.
    pub sender: Option<String>,
    /// The recipients (`destinatari`), in document order, at most [`MAX_REPEATED`].
    pub recipients: Vec<Recipient>,
    /// The reply-to address (`risposte`), lowercased.
    pub reply_to: Option<String>,
    /// The original message's subject (`oggetto`).
    pub subject: Option<String>,
    /// The provider that issued this document (`gestore-emittente`).
    pub provider: Option<String>,
    /// When the provider handled the message (`data`: `giorno` dd/mm/yyyy, `ora` hh:mm:ss,
    /// `zona` ±hhmm); `None` if any of the three is missing or invalid, because a wrong
    /// instant is worse than none on a legal record.
    pub sent_at: Option<DateTime<FixedOffset>>,
    /// The provider's message identifier (`identificativo`), the key of receipts.
    pub identifier: Option<String>,
    /// The original message's `Message-ID` (`msgid`), unescaped, e.g.
    /// `<abc123@pec.example.it>`, to link a receipt to what was sent.
    pub msgid: Option<String>,
    /// The kind of delivery receipt asked for (`ricevuta@tipo`: `completa`, `breve`,
    /// `sintetica`), lowercased.
    pub receipt_kind: Option<String>,
    /// The addresses a delivery receipt says were delivered to (`consegna`), lowercased.
    pub delivered_to: Vec<String>,
    /// The addresses a receipt says received the message (`ricezione`), lowercased.
    pub received_by: Vec<String>,
    /// The provider's explanation of an error (`errore-esteso`).
    pub extended_error: Option<String>,
}

/// One addressee of the original message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The address, trimmed and lowercased.
    pub address: String,
    /// Whether the address is itself a PEC mailbox (`destinatari@tipo`).
    pub kind: RecipientKind,
}

/// Whether a recipient is a certified mailbox: only those get a legally valid delivery
/// receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientKind {
    /// `certificato`: a PEC mailbox.
    Certified,
    /// `esterno`: an ordinary mailbox, outside the PEC system.
    External,
    /// The attribute is missing or has another value.
    Unknown,
}

/// Why a `daticert.xml` cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DaticertError {
    /// Over [`MAX_INPUT_BYTES`]: refused unread.
    #[error("daticert.xml is {size} bytes, over the limit of {MAX_INPUT_BYTES}")]
    TooLarge {
        /// The input's size in bytes.
        size: usize,
    },
    /// Not well-formed XML (or not XML at all); the text says where it went wrong.
    #[error("daticert.xml is not well-formed XML: {0}")]
    NotXml(String),
    /// Well-formed, but its root element is not `postacert` (the name, capped, is given).
    #[error("daticert.xml's root element is <{0}>, not <postacert>")]
    NotPostacert(String),
}

/// Reads a `daticert.xml` (UTF-8, ISO-8859-1/Windows-1252, ISO-8859-15 or UTF-16, as its
/// byte-order mark or XML declaration says).
///
/// # Errors
/// [`DaticertError::TooLarge`] over [`MAX_INPUT_BYTES`], [`DaticertError::NotXml`] for
/// anything that is not a well-formed XML element, [`DaticertError::NotPostacert`] when the
/// root element is another one.
pub fn parse(xml: &[u8]) -> Result<Daticert, DaticertError> {
    if xml.len() > MAX_INPUT_BYTES {
        return Err(DaticertError::TooLarge { size: xml.len() });
    }
    let text = decode(xml);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    read(text)
}

/// The elements whose place in the document matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Postacert,
    Intestazione,
    Dati,
    Data,
    Field(Field),
    /// Anything else, and whatever is inside it: ignored.
    Other,
}

/// The elements whose text is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Mittente,
    Destinatari,
    Risposte,
    Oggetto,
    GestoreEmittente,
    Identificativo,
    Msgid,
    Ricevuta,
    Consegna,
    Ricezione,
    ErroreEsteso,
    Giorno,
    Ora,
}

/// What an element is, given its parent: only the paths of the format count.
fn classify(parent: Node, name: &[u8]) -> Node {
    match (parent, name) {
        (Node::Postacert, b"intestazione") => Node::Intestazione,
        (Node::Postacert, b"dati") => Node::Dati,
        (Node::Intestazione, b"mittente") => Node::Field(Field::Mittente),
        (Node::Intestazione, b"destinatari") => Node::Field(Field::Destinatari),
        (Node::Intestazione, b"risposte") => Node::Field(Field::Risposte),
        (Node::Intestazione, b"oggetto") => Node::Field(Field::Oggetto),
        (Node::Dati, b"gestore-emittente") => Node::Field(Field::GestoreEmittente),
        (Node::Dati, b"data") => Node::Data,
        (Node::Dati, b"identificativo") => Node::Field(Field::Identificativo),
        (Node::Dati, b"msgid") => Node::Field(Field::Msgid),
        (Node::Dati, b"ricevuta") => Node::Field(Field::Ricevuta),
        (Node::Dati, b"consegna") => Node::Field(Field::Consegna),
        (Node::Dati, b"ricezione") => Node::Field(Field::Ricezione),
        (Node::Dati, b"errore-esteso") => Node::Field(Field::ErroreEsteso),
        (Node::Data, b"giorno") => Node::Field(Field::Giorno),
        (Node::Data, b"ora") => Node::Field(Field::Ora),
        _ => Node::Other,
    }
}

/// Everything read so far, before the date is put together.
#[derive(Default)]
struct Acc {
    kind: String,
    error: Option<String>,
    sender: Option<String>,
    recipients: Vec<Recipient>,
    reply_to: Option<String>,
    subject: Option<String>,
    provider: Option<String>,
    identifier: Option<String>,
    msgid: Option<String>,
    receipt_kind: Option<String>,
    delivered_to: Vec<String>,
    received_by: Vec<String>,
    extended_error: Option<String>,
    day: Option<String>,
    time: Option<String>,
    zone: Option<String>,
    /// `tipo` of the `destinatari` element being read.
    recipient_kind: Option<RecipientKind>,
}

impl Acc {
    fn finish(self) -> Daticert {
        let sent_at = match (&self.day, &self.time, &self.zone) {
            (Some(d), Some(t), Some(z)) => instant(d, t, z),
            _ => None,
        };
        Daticert {
            kind: self.kind,
            error: self.error,
            sender: self.sender,
            recipients: self.recipients,
            reply_to: self.reply_to,
            subject: self.subject,
            provider: self.provider,
            sent_at,
            identifier: self.identifier,
            msgid: self.msgid,
            receipt_kind: self.receipt_kind,
            delivered_to: self.delivered_to,
            received_by: self.received_by,
            extended_error: self.extended_error,
        }
    }

    /// Attributes that matter, read when an element opens.
    fn open(&mut self, node: Node, e: &BytesStart<'_>) {
        match node {
            Node::Field(Field::Destinatari) => {
                self.recipient_kind = Some(match attribute(e, b"tipo").as_deref() {
                    Some("certificato") => RecipientKind::Certified,
                    Some("esterno") => RecipientKind::External,
                    _ => RecipientKind::Unknown,
                });
            }
            Node::Field(Field::Ricevuta) if self.receipt_kind.is_none() => {
                self.receipt_kind = attribute(e, b"tipo").filter(|v| !v.is_empty());
            }
            Node::Data if self.zone.is_none() => {
                self.zone = attribute(e, b"zona").filter(|v| !v.is_empty());
            }
            _ => {}
        }
    }

    /// An element's text, when it closes. Single values: the first non-empty one wins.
    fn close(&mut self, field: Field, text: String) {
        let kind = self.recipient_kind.take();
        if text.is_empty() {
            return;
        }
        fn first(slot: &mut Option<String>, value: String) {
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        fn push(list: &mut Vec<String>, value: &str) {
            if list.len() < MAX_REPEATED {
                list.push(address(value));
            }
        }
        match field {
            Field::Mittente => first(&mut self.sender, address(&text)),
            Field::Destinatari => {
                if self.recipients.len() < MAX_REPEATED {
                    self.recipients.push(Recipient {
                        address: address(&text),
                        kind: kind.unwrap_or(RecipientKind::Unknown),
                    });
                }
            }
            Field::Risposte => first(&mut self.reply_to, address(&text)),
            Field::Oggetto => first(&mut self.subject, text),
            Field::GestoreEmittente => first(&mut self.provider, text),
            Field::Identificativo => first(&mut self.identifier, text),
            Field::Msgid => first(&mut self.msgid, text),
            Field::Consegna => push(&mut self.delivered_to, &text),
            Field::Ricezione => push(&mut self.received_by, &text),
            Field::ErroreEsteso => first(&mut self.extended_error, text),
            Field::Giorno => first(&mut self.day, text),
            Field::Ora => first(&mut self.time, text),
            // Its content is the attribute; any text is ignored.
            Field::Ricevuta => {}
        }
    }
}

/// An address for comparison: lowercased, still within the cap.
fn address(text: &str) -> String {
    text.to_lowercase().chars().take(MAX_VALUE_CHARS).collect()
}

/// The text of an element as it is read: trimmed, whitespace runs made one space, control
/// characters dropped, at most [`MAX_VALUE_CHARS`] characters.
#[derive(Default)]
struct Text {
    value: String,
    chars: usize,
    space: bool,
}

impl Text {
    fn push_str(&mut self, s: &str) {
        for c in s.chars() {
            if self.chars >= MAX_VALUE_CHARS {
                return;
            }
            self.push(c);
        }
    }

    fn push(&mut self, c: char) {
        if c.is_whitespace() {
            self.space = !self.value.is_empty();
            return;
        }
        if c.is_control() {
            return;
        }
        // A pending space is written only with the character after it, so that the cap
        // never leaves a trailing space.
        let needed = 1 + usize::from(self.space);
        if self.chars + needed > MAX_VALUE_CHARS {
            self.chars = MAX_VALUE_CHARS;
            return;
        }
        if self.space {
            self.value.push(' ');
            self.space = false;
        }
        self.value.push(c);
        self.chars += needed;
    }
}

/// The streaming read: one pass, a stack of where we are, the text of the field being read.
fn read(text: &str) -> Result<Daticert, DaticertError> {
    let mut reader = Reader::from_str(text);
    let config = reader.config_mut();
    // A bare `&` in a subject is a common slip of hand-made XML: kept as text.
    config.allow_dangling_amp = true;
    config.check_end_names = true;
    config.expand_empty_elements = false;

    let mut acc = Acc::default();
    let mut stack: Vec<Node> = Vec::new();
    let mut field_text: Option<Text> = None;
    let not_xml = |reader: &Reader<&[u8]>, what: &dyn std::fmt::Display| {
        DaticertError::NotXml(cap(&format!("{what} at byte {}", reader.buffer_position())))
    };

    loop {
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(e) => return Err(not_xml(&reader, &e)),
        };
        match event {
            Event::Start(e) if stack.is_empty() => {
                root(&mut acc, &e)?;
                stack.push(Node::Postacert);
            }
            Event::Empty(e) if stack.is_empty() => {
                root(&mut acc, &e)?;
                return Ok(acc.finish());
            }
            Event::Start(e) => {
                let parent = stack.last().copied().unwrap_or(Node::Other);
                let node = classify(parent, e.name().as_ref());
                acc.open(node, &e);
                if let Node::Field(_) = node {
                    field_text = Some(Text::default());
                }
                stack.push(node);
            }
            Event::Empty(e) => {
                let parent = stack.last().copied().unwrap_or(Node::Other);
                let node = classify(parent, e.name().as_ref());
                acc.open(node, &e);
                if let Node::Field(field) = node {
                    acc.close(field, String::new());
                }
            }
            Event::End(_) => match stack.pop() {
                Some(Node::Field(field)) => {
                    let value = field_text.take().map(|t| t.value).unwrap_or_default();
                    acc.close(field, value);
                }
                Some(Node::Postacert) if stack.is_empty() => return Ok(acc.finish()),
                _ => {}
            },
            Event::Text(t) => {
                if stack.is_empty() {
                    // Only whitespace may stand outside the root element.
                    if t.iter().any(|b| !b.is_ascii_whitespace()) {
                        return Err(not_xml(&reader, &"text outside the root element"));
                    }
                } else if let (Some(Node::Field(_)), Some(buf)) = (stack.last(), &mut field_text) {
                    match t.xml10_content() {
                        Ok(s) => buf.push_str(&s),
                        Err(_) => buf.push_str(&String::from_utf8_lossy(&t)),
                    }
                }
            }
            Event::CData(t) => {
                if let (Some(Node::Field(_)), Some(buf)) = (stack.last(), &mut field_text) {
                    buf.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::GeneralRef(r) => {
                if stack.is_empty() {
                    return Err(not_xml(&reader, &"reference outside the root element"));
                }
                if let (Some(Node::Field(_)), Some(buf)) = (stack.last(), &mut field_text) {
                    buf.push_str(&reference(&r));
                }
            }
            // The DTD is never read: no entity it declares is ever expanded.
            Event::DocType(_) | Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => {
                return Err(if stack.is_empty() {
                    not_xml(&reader, &"no root element")
                } else {
                    not_xml(&reader, &"the document ends before </postacert>")
                });
            }
        }
    }
}

/// The root element: `postacert`, whose attributes say what the document is.
fn root(acc: &mut Acc, e: &BytesStart<'_>) -> Result<(), DaticertError> {
    let name = e.name();
    if name.as_ref() != b"postacert" {
        let name = String::from_utf8_lossy(name.as_ref());
        return Err(if is_name(&name) {
            DaticertError::NotPostacert(cap(&name))
        } else {
            DaticertError::NotXml(cap(&format!("<{name}> is not an element name")))
        });
    }
    acc.kind = attribute(e, b"tipo").unwrap_or_default();
    acc.error = attribute(e, b"errore").filter(|v| !v.is_empty() && v != "nessuno");
    Ok(())
}

/// Whether a tag's name is an XML name (quick-xml takes `<<<` for one): what is not, is
/// not XML rather than another document.
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'))
}

/// A reference in text: the five predefined entities and character references are resolved;
/// any other entity (from a DTD, which is never read) is kept as the literal `&name;`.
fn reference(r: &BytesRef<'_>) -> Cow<'static, str> {
    if r.is_char_ref() {
        return match r.resolve_char_ref() {
            Ok(Some(c)) => Cow::Owned(c.to_string()),
            _ => Cow::Borrowed("\u{fffd}"),
        };
    }
    match &**r {
        b"lt" => Cow::Borrowed("<"),
        b"gt" => Cow::Borrowed(">"),
        b"amp" => Cow::Borrowed("&"),
        b"apos" => Cow::Borrowed("'"),
        b"quot" => Cow::Borrowed("\""),
        other => Cow::Owned(format!("&{};", String::from_utf8_lossy(other))),
    }
}

/// An attribute's value, unescaped the same way as text, trimmed, lowercased and capped; the
/// first of that name wins (quick-xml's duplicate check is off: a repeated attribute is a
/// slip to read past, not a reason to lose the document).
fn attribute(e: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    let mut attributes = e.attributes();
    attributes.with_checks(false);
    for attr in attributes {
        let Ok(attr) = attr else { break };
        if attr.key.as_ref() != name {
            continue;
        }
        let raw = String::from_utf8_lossy(&attr.value);
        let mut text = Text::default();
        unescape_into(&raw, &mut text);
        return Some(address(&text.value));
    }
    None
}

/// Resolves `&…;` in an attribute value into `out`, as [`reference`] does in text.
fn unescape_into(raw: &str, out: &mut Text) {
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        // A name is short: a `;` further than 32 bytes away means a bare `&` (and looking
        // no further keeps a value of a million `&` linear).
        match after.bytes().take(33).position(|b| b == b';') {
            Some(semi) if semi > 0 => {
                out.push_str(&reference(&BytesRef::new(&after[..semi])));
                rest = &after[semi + 1..];
            }
            _ => {
                out.push('&');
                rest = after;
            }
        }
        if out.chars >= MAX_VALUE_CHARS {
            return;
        }
    }
    out.push_str(rest);
}

/// At most 100 characters of something hostile, for an error message.
fn cap(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(100).collect()
}

/// `giorno` (dd/mm/yyyy), `ora` (hh:mm:ss) and `zona` (±hhmm or ±hh:mm) as one instant, or
/// `None` if any part is not a real date, time or offset.
fn instant(day: &str, time: &str, zone: &str) -> Option<DateTime<FixedOffset>> {
    let [d, m, y] = numbers(day, '/', [(1, 2), (1, 2), (4, 4)])?;
    let date = NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d)?;
    let [h, min, s] = numbers(time, ':', [(1, 2), (2, 2), (2, 2)])?;
    let time = NaiveTime::from_hms_opt(h, min, s)?;
    let offset = offset(zone)?;
    offset.from_local_datetime(&date.and_time(time)).single()
}

/// `N` numbers separated by `sep`, the i-th of `digits[i].0` to `digits[i].1` ASCII digits
/// (no sign, no spaces).
fn numbers<const N: usize>(s: &str, sep: char, digits: [(usize, usize); N]) -> Option<[u32; N]> {
    let mut out = [0u32; N];
    let mut parts = s.split(sep);
    for (slot, (min, max)) in out.iter_mut().zip(digits) {
        let part = parts.next()?;
        if !(min..=max).contains(&part.len()) || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = part.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// `+0100`, `-0500`, `+01:00` as an offset east of UTC.
fn offset(zone: &str) -> Option<FixedOffset> {
    let (sign, rest) = match zone.as_bytes().first()? {
        b'+' => (1, zone.get(1..)?),
        b'-' => (-1, zone.get(1..)?),
        _ => return None,
    };
    let digits: String = match rest.len() {
        4 => rest.to_owned(),
        5 if rest.as_bytes().get(2) == Some(&b':') => rest.replacen(':', "", 1),
        _ => return None,
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits.get(..2)?.parse().ok()?;
    let minutes: i32 = digits.get(2..)?.parse().ok()?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// The character encodings `daticert.xml` is found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charset {
    Utf8,
    /// ISO-8859-1 read as Windows-1252, as every mail client and browser does: the two agree
    /// on every printable character, and providers that say Latin-1 often mean 1252.
    Windows1252,
    Latin9,
    Utf16Le,
    Utf16Be,
}

/// The document as text, in the encoding its byte-order mark or declaration names; unknown
/// encodings are read as UTF-8, invalid sequences become U+FFFD.
fn decode(xml: &[u8]) -> Cow<'_, str> {
    match charset(xml) {
        Charset::Utf8 => String::from_utf8_lossy(xml),
        Charset::Windows1252 => Cow::Owned(xml.iter().map(|&b| windows_1252(b)).collect()),
        Charset::Latin9 => Cow::Owned(xml.iter().map(|&b| latin9(b)).collect()),
        Charset::Utf16Le => Cow::Owned(utf16(xml, u16::from_le_bytes)),
        Charset::Utf16Be => Cow::Owned(utf16(xml, u16::from_be_bytes)),
    }
}

fn charset(xml: &[u8]) -> Charset {
    match xml {
        [0xEF, 0xBB, 0xBF, ..] => return Charset::Utf8,
        [0xFF, 0xFE, ..] | [b'<', 0, b'?', 0, ..] => return Charset::Utf16Le,
        [0xFE, 0xFF, ..] | [0, b'<', 0, b'?', ..] => return Charset::Utf16Be,
        _ => {}
    }
    let label = declared_encoding(xml).unwrap_or_default();
    match label.as_str() {
        "iso-8859-1" | "iso8859-1" | "iso_8859-1" | "latin1" | "latin-1" | "l1"
        | "windows-1252" | "cp1252" | "us-ascii" | "ascii" => Charset::Windows1252,
        "iso-8859-15" | "iso8859-15" | "iso_8859-15" | "latin-9" | "latin9" | "l9" => {
            Charset::Latin9
        }
        _ => Charset::Utf8,
    }
}

/// The `encoding` of the XML declaration, lowercased, if the document starts with one.
fn declared_encoding(xml: &[u8]) -> Option<String> {
    let head = xml.get(..xml.len().min(512))?;
    if !head.starts_with(b"<?xml") {
        return None;
    }
    let end = head.windows(2).position(|w| w == b"?>")?;
    let decl = head.get(..end)?;
    let pos = decl.windows(8).position(|w| w == b"encoding")?;
    let rest = decl.get(pos + 8..)?;
    let rest = rest
        .trim_ascii_start()
        .strip_prefix(b"=")?
        .trim_ascii_start();
    let (&quote, rest) = rest.split_first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let len = rest.iter().position(|&b| b == quote)?;
    let label = std::str::from_utf8(rest.get(..len)?).ok()?;
    Some(label.trim().to_ascii_lowercase())
}

fn utf16(xml: &[u8], unit: fn([u8; 2]) -> u16) -> String {
    let units = xml.chunks_exact(2).map(|c| unit([c[0], c[1]]));
    char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// One Windows-1252 byte; the five unassigned ones stay C1 controls (and are later dropped).
fn windows_1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}',
        '\u{2021}', '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{008D}',
        '\u{017D}', '\u{008F}', '\u{0090}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}',
        '\u{2022}', '\u{2013}', '\u{2014}', '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}',
        '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
    ];
    match b {
        0x80..=0x9F => HIGH
            .get(usize::from(b - 0x80))
            .copied()
            .unwrap_or(char::REPLACEMENT_CHARACTER),
        _ => char::from(b),
    }
}

/// One ISO-8859-15 byte: Latin-1 but for eight places (the euro sign among them).
fn latin9(b: u8) -> char {
    match b {
        0xA4 => '\u{20AC}',
        0xA6 => '\u{0160}',
        0xA8 => '\u{0161}',
        0xB4 => '\u{017D}',
        0xB8 => '\u{017E}',
        0xBC => '\u{0152}',
        0xBD => '\u{0153}',
        0xBE => '\u{0178}',
        _ => char::from(b),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ENVELOPE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE postacert SYSTEM "Docs.dtd">
<postacert tipo="posta-certificata" errore="nessuno">
  <intestazione>
    <mittente>mario.rossi@pec.example.it</mittente>
    <destinatari tipo="certificato">protocollo@pec.comune.example.it</destinatari>
    <destinatari tipo="esterno">ufficio@comune.example.it</destinatari>
    <risposte>mario.rossi@pec.example.it</risposte>
    <oggetto>Richiesta permesso ZTL</oggetto>
  </intestazione>
  <dati>
    <gestore-emittente>ARUBA PEC S.p.A.</gestore-emittente>
    <data zona="+0100">
      <giorno>26/11/2026</giorno>
      <ora>10:15:42</ora>
    </data>
    <identificativo>opec21010.20261126101542.12345.67.1.1@pec.aruba.it</identificativo>
    <msgid>&lt;abc123@pec.example.it&gt;</msgid>
    <ricevuta tipo="completa" />
    <consegna>protocollo@pec.comune.example.it</consegna>
  </dati>
</postacert>
"#;

    /// A document with the given root attributes and body of `intestazione`/`dati`.
    fn doc(root_attrs: &str, intestazione: &str, dati: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<postacert {root_attrs}>\
             <intestazione>{intestazione}</intestazione><dati>{dati}</dati></postacert>"
        )
    }

    fn with_date(giorno: &str, ora: &str, zona: &str) -> Daticert {
        let xml = doc(
            r#"tipo="accettazione" errore="nessuno""#,
            "<mittente>a@b.it</mittente>",
            &format!(r#"<data zona="{zona}"><giorno>{giorno}</giorno><ora>{ora}</ora></data>"#),
        );
        parse(xml.as_bytes()).unwrap()
    }

    #[test]
    fn daticert_envelope_every_field() {
        let d = parse(ENVELOPE.as_bytes()).unwrap();
        let expected = Daticert {
            kind: "posta-certificata".into(),
            error: None,
            sender: Some("mario.rossi@pec.example.it".into()),
            recipients: vec![
                Recipient {
                    address: "protocollo@pec.comune.example.it".into(),
                    kind: RecipientKind::Certified,
                },
                Recipient {
                    address: "ufficio@comune.example.it".into(),
                    kind: RecipientKind::External,
                },
            ],
            reply_to: Some("mario.rossi@pec.example.it".into()),
            subject: Some("Richiesta permesso ZTL".into()),
            provider: Some("ARUBA PEC S.p.A.".into()),
            sent_at: Some(DateTime::parse_from_rfc3339("2026-11-26T10:15:42+01:00").unwrap()),
            identifier: Some("opec21010.20261126101542.12345.67.1.1@pec.aruba.it".into()),
            msgid: Some("<abc123@pec.example.it>".into()),
            receipt_kind: Some("completa".into()),
            delivered_to: vec!["protocollo@pec.comune.example.it".into()],
            received_by: vec![],
            extended_error: None,
        };
        assert_eq!(d, expected);
        assert_eq!(
            d.sent_at.unwrap().to_utc().to_rfc3339(),
            "2026-11-26T09:15:42+00:00"
        );
    }

    #[test]
    fn daticert_delivery_receipt() {
        let xml = doc(
            r#"tipo="avvenuta-consegna" errore="nessuno""#,
            "<mittente> Mario.Rossi@PEC.example.it </mittente>\
             <destinatari tipo=\"certificato\">protocollo@pec.comune.example.it</destinatari>\
             <risposte>mario.rossi@pec.example.it</risposte>\
             <oggetto>CONSEGNA: Richiesta permesso ZTL</oggetto>",
            "<gestore-emittente>Namirial S.p.A.</gestore-emittente>\
             <data zona=\"+0200\"><giorno>01/07/2026</giorno><ora>08:00:05</ora></data>\
             <identificativo>opec-42@pec.example.it</identificativo>\
             <msgid>&lt;abc123@pec.example.it&gt;</msgid>\
             <ricevuta tipo=\"breve\"/>\
             <consegna>Protocollo@PEC.Comune.example.it</consegna>",
        );
        let d = parse(xml.as_bytes()).unwrap();
        assert_eq!(d.kind, "avvenuta-consegna");
        assert_eq!(d.error, None);
        assert_eq!(d.sender.as_deref(), Some("mario.rossi@pec.example.it"));
        assert_eq!(d.receipt_kind.as_deref(), Some("breve"));
        assert_eq!(d.delivered_to, ["protocollo@pec.comune.example.it"]);
        assert_eq!(d.msgid.as_deref(), Some("<abc123@pec.example.it>"));
        assert_eq!(
            d.sent_at,
            Some(DateTime::parse_from_rfc3339("2026-07-01T08:00:05+02:00").unwrap())
        );
    }

    #[test]
    fn daticert_delivery_error_with_extended_error() {
        let xml = doc(
            r#"tipo="errore-consegna" errore="altro""#,
            "<mittente>mario.rossi@pec.example.it</mittente>\
             <destinatari tipo=\"certificato\">nessuno@pec.example.it</destinatari>\
             <oggetto>Richiesta</oggetto>",
            "<gestore-emittente>Poste Italiane</gestore-emittente>\
             <identificativo>id-1@pec.example.it</identificativo>\
             <ricezione>nessuno@pec.example.it</ricezione>\
             <ricezione>altro@pec.example.it</ricezione>\
             <errore-esteso>5.1.1 - Utente non riconosciuto\n   (casella inesistente)</errore-esteso>",
        );
        let d = parse(xml.as_bytes()).unwrap();
        assert_eq!(d.kind, "errore-consegna");
        assert_eq!(d.error.as_deref(), Some("altro"));
        assert_eq!(
            d.extended_error.as_deref(),
            Some("5.1.1 - Utente non riconosciuto (casella inesistente)")
        );
        assert_eq!(
            d.received_by,
            ["nessuno@pec.example.it", "altro@pec.example.it"]
        );
        assert!(d.delivered_to.is_empty());
        assert_eq!(d.sent_at, None, "no <data> at all");
    }

    #[test]
    fn daticert_iso_8859_1() {
        let mut xml: Vec<u8> = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n\
            <postacert tipo=\"posta-certificata\" errore=\"nessuno\"><intestazione>\
            <mittente>a@pec.example.it</mittente><oggetto>Citt"
            .to_vec();
        xml.push(0xE0); // à in ISO-8859-1
        xml.extend_from_slice(b" di Bologna, via Sant");
        xml.push(0x92); // ’ in Windows-1252, which ISO-8859-1 labels are read as
        xml.extend_from_slice(b"Isaia 10 ");
        xml.push(0x80); // €
        xml.extend_from_slice(b"</oggetto></intestazione><dati/></postacert>");
        let d = parse(&xml).unwrap();
        assert_eq!(
            d.subject.as_deref(),
            Some("Città di Bologna, via Sant\u{2019}Isaia 10 €")
        );
        // The same bytes declared as UTF-8 are not valid UTF-8: replaced, never a panic.
        let utf8 = String::from_utf8_lossy(&xml).replace("ISO-8859-1", "UTF-8");
        let d = parse(utf8.as_bytes()).unwrap();
        assert_eq!(d.sender.as_deref(), Some("a@pec.example.it"));
    }

    #[test]
    fn daticert_other_encodings() {
        // ISO-8859-15: 0xA4 is the euro sign.
        let xml = b"<?xml version='1.0' encoding='iso-8859-15'?><postacert tipo='accettazione'>\
            <intestazione><oggetto>10 \xA4</oggetto></intestazione></postacert>";
        assert_eq!(parse(xml).unwrap().subject.as_deref(), Some("10 €"));
        // UTF-16 with a byte-order mark, both ways round.
        let text = "<?xml version=\"1.0\" encoding=\"UTF-16\"?><postacert tipo=\"accettazione\">\
            <intestazione><oggetto>Città</oggetto></intestazione></postacert>";
        let mut le = vec![0xFF, 0xFE];
        let mut be = vec![0xFE, 0xFF];
        for unit in text.encode_utf16() {
            le.extend_from_slice(&unit.to_le_bytes());
            be.extend_from_slice(&unit.to_be_bytes());
        }
        assert_eq!(parse(&le).unwrap().subject.as_deref(), Some("Città"));
        assert_eq!(parse(&be).unwrap().subject.as_deref(), Some("Città"));
        // A UTF-8 byte-order mark.
        let bom = [b"\xEF\xBB\xBF".as_slice(), ENVELOPE.as_bytes()].concat();
        assert_eq!(parse(&bom).unwrap(), parse(ENVELOPE.as_bytes()).unwrap());
    }

    #[test]
    fn daticert_bad_date_gives_no_instant() {
        assert_eq!(with_date("31/02/2026", "10:15:42", "+0100").sent_at, None);
        assert_eq!(with_date("26/11/2026", "24:00:00", "+0100").sent_at, None);
        assert_eq!(with_date("26/11/2026", "10:15", "+0100").sent_at, None);
        assert_eq!(with_date("26/11/26", "10:15:42", "+0100").sent_at, None);
        assert_eq!(with_date("2026-11-26", "10:15:42", "+0100").sent_at, None);
        assert_eq!(with_date("26/11/2026", "10:15:42", "CET").sent_at, None);
        assert_eq!(with_date("26/11/2026", "10:15:42", "+2400").sent_at, None);
        assert_eq!(with_date("26/11/2026", "10:15:42", "").sent_at, None);
        assert_eq!(with_date("+6/11/2026", "10:15:42", "+0100").sent_at, None);
        let ok = with_date(" 6/1/2026 ", "9:05:00", "-05:00").sent_at;
        assert_eq!(
            ok,
            Some(DateTime::parse_from_rfc3339("2026-01-06T09:05:00-05:00").unwrap())
        );
        assert_eq!(
            with_date("29/02/2028", "23:59:59", "+0000").sent_at,
            Some(DateTime::parse_from_rfc3339("2028-02-29T23:59:59Z").unwrap())
        );
    }

    #[test]
    fn daticert_internal_entities_are_never_expanded() {
        // Billion laughs: nine levels of ten, ~10⁹ "lol" if anything expanded them.
        let mut dtd = String::from("<!DOCTYPE postacert [\n<!ENTITY lol \"lol\">\n");
        for level in 1..=9 {
            let prev = if level == 1 {
                "lol".to_owned()
            } else {
                format!("lol{}", level - 1)
            };
            let refs = format!("&{prev};").repeat(10);
            dtd.push_str(&format!("<!ENTITY lol{level} \"{refs}\">\n"));
        }
        dtd.push_str("<!ENTITY xxe SYSTEM \"file:///etc/passwd\">\n]>\n");
        let xml = format!(
            "<?xml version=\"1.0\"?>\n{dtd}<postacert tipo=\"&lol9;\">\
             <intestazione><mittente>&xxe;</mittente><oggetto>a &lol9; b &amp; &#233;&#x20AC;</oggetto>\
             </intestazione></postacert>"
        );
        let d = parse(xml.as_bytes()).unwrap();
        assert_eq!(d.subject.as_deref(), Some("a &lol9; b & é€"));
        assert_eq!(d.sender.as_deref(), Some("&xxe;"));
        assert_eq!(d.kind, "&lol9;");

        // Markup characters inside the DTD's quoted values do not end it early.
        let xml = b"<!DOCTYPE postacert [<!ENTITY a \"]>x<y>\"><!-- ]> -->]>\
                    <postacert tipo=\"accettazione\"/>";
        assert_eq!(parse(xml).unwrap().kind, "accettazione");

        // A DTD as large as allowed, with a quadratic-blowup entity: read past, quickly.
        let big = "x".repeat(1000);
        let mut xml = String::from("<?xml version=\"1.0\"?><!DOCTYPE postacert [");
        xml.push_str(&format!("<!ENTITY a \"{big}\">"));
        while xml.len() < MAX_INPUT_BYTES - 1000 {
            xml.push_str("<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">");
        }
        xml.push_str("]><postacert tipo=\"accettazione\"><intestazione><oggetto>");
        xml.push_str(&"&a;".repeat(100));
        xml.push_str("</oggetto></intestazione></postacert>");
        assert!(xml.len() <= MAX_INPUT_BYTES);
        let d = parse(xml.as_bytes()).unwrap();
        assert_eq!(d.subject.as_deref(), Some("&a;".repeat(100).as_str()));
    }

    #[test]
    fn daticert_other_root_is_refused() {
        assert_eq!(
            parse(b"<?xml version=\"1.0\"?><html><body>postacert</body></html>"),
            Err(DaticertError::NotPostacert("html".into()))
        );
        assert_eq!(
            parse(b"<ns:postacert tipo=\"accettazione\"/>"),
            Err(DaticertError::NotPostacert("ns:postacert".into()))
        );
    }

    #[test]
    fn daticert_garbage_is_not_xml() {
        for input in [
            b"".as_slice(),
            b"   \n",
            b"\x00\x01\x02\xff\xfe garbage",
            b"mittente: a@b.it",
            b"<?xml version=\"1.0\"?>",
            b"<postacert tipo=\"accettazione\"><intestazione></dati></postacert>",
            b"<postacert tipo=\"accettazione\"><intestazione><mittente>a@b.it",
            b"<postacert tipo=\"accettazione\"",
            b"&amp;<postacert/>",
            b"<<<<>>>>",
            b"\xFF\xFE<\x00",
        ] {
            let result = parse(input);
            assert!(
                matches!(result, Err(DaticertError::NotXml(_))),
                "{:?} gave {result:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn daticert_oversize_is_refused() {
        let mut xml = doc(r#"tipo="accettazione""#, "", "").into_bytes();
        xml.resize(MAX_INPUT_BYTES + 1, b' ');
        assert_eq!(
            parse(&xml),
            Err(DaticertError::TooLarge {
                size: MAX_INPUT_BYTES + 1
            })
        );
        // Exactly the limit is read (trailing whitespace after the root is harmless).
        xml.truncate(MAX_INPUT_BYTES);
        assert_eq!(parse(&xml).unwrap().kind, "accettazione");
    }

    #[test]
    fn daticert_repeated_elements_are_capped() {
        // 100,000 recipients do not fit in the size limit: refused before reading.
        let one = "<destinatari tipo=\"certificato\">a@pec.example.it</destinatari>";
        let xml = doc(r#"tipo="accettazione""#, &one.repeat(100_000), "");
        assert!(matches!(
            parse(xml.as_bytes()),
            Err(DaticertError::TooLarge { .. })
        ));
        // As many as fit (about 37,000 short ones): only the first MAX_REPEATED are kept.
        let short = "<destinatari>x</destinatari>";
        let delivered = "<consegna>y</consegna>".repeat(2000);
        let overhead = doc(r#"tipo="accettazione""#, "", &delivered).len();
        let n = (MAX_INPUT_BYTES - overhead) / short.len();
        assert!(n > 35_000, "{n}");
        let xml = doc(r#"tipo="accettazione""#, &short.repeat(n), &delivered);
        assert!(xml.len() <= MAX_INPUT_BYTES);
        let d = parse(xml.as_bytes()).unwrap();
        assert_eq!(d.recipients.len(), MAX_REPEATED);
        assert_eq!(d.delivered_to.len(), MAX_REPEATED);
        assert!(
            d.recipients
                .iter()
                .all(|r| r.address == "x" && r.kind == RecipientKind::Unknown)
        );
    }

    #[test]
    fn daticert_values_are_trimmed_and_capped() {
        let long = "a".repeat(5000);
        let xml = doc(
            r#"tipo=" Accettazione " errore="NESSUNO""#,
            &format!(
                "<mittente>\n\t {long}@b.it \n</mittente>\
                 <oggetto>  due\r\n  righe\u{0}\u{7}<!-- commento --> <b>tag</b> e <![CDATA[<cdata> & co]]>  </oggetto>\
                 <oggetto>secondo oggetto, ignorato</oggetto>"
            ),
            &format!("<identificativo>{long}</identificativo><msgid>   </msgid>"),
        );
        let d = parse(xml.as_bytes()).unwrap();
        assert_eq!(d.kind, "accettazione");
        assert_eq!(d.error, None);
        assert_eq!(
            d.sender.as_deref(),
            Some("a".repeat(MAX_VALUE_CHARS).as_str())
        );
        assert_eq!(
            d.identifier.as_ref().map(|s| s.chars().count()),
            Some(MAX_VALUE_CHARS)
        );
        assert_eq!(d.subject.as_deref(), Some("due righe e <cdata> & co"));
        assert_eq!(d.msgid, None, "blank is none");

        // At the cap, a space is never the last character (found by the fuzzer).
        let edge = format!("{} b c", "a".repeat(MAX_VALUE_CHARS - 1));
        let xml = format!(
            "<postacert tipo=\"{edge}\"><intestazione><oggetto>{edge}</oggetto>\
             </intestazione></postacert>"
        );
        let d = parse(xml.as_bytes()).unwrap();
        assert_eq!(d.kind, "a".repeat(MAX_VALUE_CHARS - 1));
        assert_eq!(d.subject, Some("a".repeat(MAX_VALUE_CHARS - 1)));
        let edge = format!("{} b c", "a".repeat(MAX_VALUE_CHARS - 2));
        let xml = format!("<postacert tipo=\"{edge}\"/>");
        assert_eq!(
            parse(xml.as_bytes()).unwrap().kind,
            format!("{} b", "a".repeat(MAX_VALUE_CHARS - 2))
        );
    }

    #[test]
    fn daticert_missing_parts_are_none() {
        let d = parse(b"<postacert/>").unwrap();
        assert_eq!(d.kind, "");
        assert_eq!(d.sender, None);
        assert!(d.recipients.is_empty());
        let d = parse(
            b"<postacert tipo=\"rilevazione-virus\" errore=\"virus\"><altro><mittente>x@y.it</mittente></altro>\
              <intestazione><sconosciuto>?</sconosciuto><destinatari tipo=\"boh\">z@y.it</destinatari></intestazione></postacert>\
              trailing",
        )
        .unwrap();
        assert_eq!(d.kind, "rilevazione-virus");
        assert_eq!(d.error.as_deref(), Some("virus"));
        assert_eq!(d.sender, None, "mittente only counts inside intestazione");
        assert_eq!(
            d.recipients,
            [Recipient {
                address: "z@y.it".into(),
                kind: RecipientKind::Unknown
            }]
        );
        // Unknown kinds are kept, bare ampersands tolerated.
        let d = parse(
            b"<postacert tipo=\"nuovo-tipo\"><intestazione><oggetto>P&G</oggetto></intestazione></postacert>",
        )
        .unwrap();
        assert_eq!(d.kind, "nuovo-tipo");
        assert_eq!(d.subject.as_deref(), Some("P&G"));
    }

    #[test]
    fn daticert_attribute_values() {
        let d = parse(
            b"<postacert tipo=\"posta&#45;certificata\" tipo=\"second\" errore=\" &lt;Altro&gt;\t\">\
              <dati><ricevuta tipo='SINTETICA'>ignored text</ricevuta><ricevuta tipo='breve'/></dati></postacert>",
        )
        .unwrap();
        assert_eq!(d.kind, "posta-certificata", "the first of two wins");
        assert_eq!(d.error.as_deref(), Some("<altro>"));
        assert_eq!(d.receipt_kind.as_deref(), Some("sintetica"));
        // A million bare ampersands in an attribute: capped, and read in linear time.
        let xml = format!("<postacert tipo=\"{}\"/>", "&".repeat(MAX_INPUT_BYTES - 30));
        let d = parse(xml.as_bytes()).unwrap();
        assert_eq!(d.kind, "&".repeat(MAX_VALUE_CHARS));
    }

    #[test]
    fn daticert_many_attributes_stay_linear() {
        // 90,000 attributes before the one that counts: read in linear time.
        let attrs: String = (0..90_000).map(|i| format!(" a{i}=\"\"")).collect();
        let xml = format!("<postacert{attrs} tipo=\"accettazione\"/>");
        assert!(xml.len() <= MAX_INPUT_BYTES);
        let d = parse(xml.as_bytes()).unwrap();
        assert_eq!(d.kind, "accettazione");
    }
}
