//! Names people and files give: a citizen's, a permit holder's, a user's. They are shown on
//! pages, printed on letters and written into CSV files, so they may not hold control
//! characters (a NUL or a line break splits a record; an escape sequence rewrites a
//! terminal) nor Unicode bidirectional controls, which make a name read differently from
//! what it is ("Trojan Source", CVE-2021-42574).

/// Why a name is refused, in plain words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// A control character (C0, DEL, C1), e.g. NUL, a line break or an escape.
    Control(char),
    /// A bidirectional formatting character (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F,
    /// U+061C).
    Bidi(char),
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameError::Control(c) => write!(
                f,
                "contains the control character U+{:04X}, which a name may not hold",
                u32::from(*c)
            ),
            NameError::Bidi(c) => write!(
                f,
                "contains the bidirectional control U+{:04X}, which would make the name read differently from what it is",
                u32::from(*c)
            ),
        }
    }
}

impl std::error::Error for NameError {}

/// Whether `c` is a Unicode bidirectional formatting control.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Checks a name: no control characters, no bidirectional controls.
pub fn check_name(name: &str) -> Result<(), NameError> {
    for c in name.chars() {
        if c.is_control() {
            return Err(NameError::Control(c));
        }
        if is_bidi_control(c) {
            return Err(NameError::Bidi(c));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass() {
        for name in [
            "Mario Rossi",
            "Anna Maria D'Angelo-Bianchi",
            "Zoë Ünal",
            "محمد",
            "李雷",
        ] {
            assert_eq!(check_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn control_and_bidi_characters_are_refused() {
        assert_eq!(check_name("Mario\0Rossi"), Err(NameError::Control('\0')));
        assert_eq!(check_name("Mario\nRossi"), Err(NameError::Control('\n')));
        assert_eq!(
            check_name("Mario\u{1b}[2J"),
            Err(NameError::Control('\u{1b}'))
        );
        assert_eq!(check_name("Mario\u{85}"), Err(NameError::Control('\u{85}')));
        for c in [
            '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{200E}', '\u{200F}',
        ] {
            let name = format!("Mario {c}issoR");
            assert_eq!(check_name(&name), Err(NameError::Bidi(c)), "{c:?}");
        }
        assert!(
            check_name("a\u{202E}b")
                .unwrap_err()
                .to_string()
                .contains("U+202E")
        );
    }
}
