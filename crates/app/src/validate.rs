//! Checks of what a person typed, shared by every way in (the API, the pages, the demo):
//! each names the field and says what is wrong.

use sportello_domain::case::Reference;

use crate::{AppError, FieldError};

/// Rejects control characters (PostgreSQL refuses NUL in text; none belongs in these
/// values). `multiline` allows line breaks and tabs, for notes and reasons.
pub fn check_text(field: &str, value: &str, multiline: bool) -> Result<(), FieldError> {
    let bad = value
        .chars()
        .any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')));
    if bad {
        Err(FieldError::new(field, "contains control characters"))
    } else {
        Ok(())
    }
}

/// A case reference, or a 404 that says what one looks like.
pub fn check_reference(reference: &str) -> Result<(), AppError> {
    if Reference::parse(reference).is_some() {
        Ok(())
    } else {
        Err(AppError::NotFound(format!(
            "'{}' is not a case reference (e.g. ZTL-2026-000123)",
            reference.chars().take(40).collect::<String>()
        )))
    }
}

/// Whether `v` can be an e-mail address (and nothing more: no list, no display name), for
/// the citizen's contacts and the recipients of messages alike.
pub fn is_email(v: &str) -> bool {
    v.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !v.contains(char::is_whitespace)
            && !v.contains(['<', '>', ',', ';'])
    })
}

/// Whether `v` can be a telephone number: digits with the usual separators, 5 to 16 digits.
pub fn is_phone(v: &str) -> bool {
    let digits = v.chars().filter(char::is_ascii_digit).count();
    v.chars()
        .all(|c| c.is_ascii_digit() || " +-./()".contains(c))
        && (5..=16).contains(&digits)
}

/// A whole number from 1 to `max` (a page, a page size); `default` when absent, and a
/// field error when it is not one.
pub fn parse_number(
    value: Option<String>,
    field: &str,
    default: u32,
    max: u32,
    errors: &mut Vec<FieldError>,
) -> u32 {
    match value.as_deref().map(str::trim) {
        None | Some("") => default,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                errors.push(FieldError::new(
                    field,
                    format!("must be a whole number from 1 to {max}"),
                ));
                default
            }
        },
    }
}

/// A trimmed optional text checked for length and control characters (line breaks and tabs
/// allowed); `None` when blank or wrong, the error pushed.
pub fn clean(
    value: Option<String>,
    field: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let v = value
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())?;
    if v.chars().count() > max {
        errors.push(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
        return None;
    }
    if v.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        errors.push(FieldError::new(field, "contains control characters"));
        return None;
    }
    Some(v)
}

/// A trimmed optional text checked for length and control characters; `None` when blank.
pub fn text(
    field: &str,
    value: Option<&str>,
    max: usize,
    multiline: bool,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let value = value.map(str::trim).filter(|v| !v.is_empty())?;
    if value.chars().count() > max {
        errors.push(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
        return None;
    }
    if let Err(e) = check_text(field, value, multiline) {
        errors.push(e);
        return None;
    }
    Some(value.to_owned())
}

/// One optional text of a request, checked as [`text`]: field errors when it is wrong.
pub fn only_text(
    field: &str,
    value: Option<&str>,
    max: usize,
    multiline: bool,
) -> Result<Option<String>, AppError> {
    let mut errors = Vec::new();
    let value = text(field, value, max, multiline, &mut errors);
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(AppError::Invalid(errors))
    }
}

/// A field the caller filled in (trimmed), `None` when absent or blank.
pub fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_numbers_are_recognised() {
        assert!(is_email("anna@example.it"));
        assert!(!is_email("Anna <anna@example.it>"));
        assert!(!is_email("anna@.it"));
        assert!(!is_email("a@b.it, c@d.it"));
        assert!(is_phone("+39 333 123 4567"));
        assert!(!is_phone("1234"));
        assert!(!is_phone("333-CALL-ME"));
    }

    #[test]
    fn numbers_are_bounded_and_texts_are_printable() {
        let mut errors = Vec::new();
        assert_eq!(parse_number(None, "page", 1, 10, &mut errors), 1);
        assert_eq!(
            parse_number(Some(" 7 ".into()), "page", 1, 10, &mut errors),
            7
        );
        assert!(errors.is_empty());
        assert_eq!(
            parse_number(Some("11".into()), "page", 1, 10, &mut errors),
            1
        );
        assert_eq!(errors[0].field, "page");
        assert!(check_text("note", "a\nb", true).is_ok());
        assert!(check_text("name", "a\nb", false).is_err());
        assert_eq!(
            clean(Some("  x ".into()), "name", 5, &mut errors),
            Some("x".into())
        );
        assert_eq!(clean(Some("abcdef".into()), "name", 5, &mut errors), None);
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn references_are_checked_before_the_database() {
        assert!(check_reference("ZTL-2026-000123").is_ok());
        assert!(matches!(
            check_reference("nope"),
            Err(AppError::NotFound(d)) if d.starts_with("'nope' is not a case reference")
        ));
    }
}
