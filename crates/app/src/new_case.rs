//! A new case as someone gives it (the API's body, the portal's forms, a renewal, a
//! contested fine), checked field by field into the case the store opens.

use sportello_domain::case::Channel;
use sportello_domain::fiscal_code::FiscalCode;
use sportello_store::cases::{CaseTerms, CitizenInput, NewCase};

use crate::validate::{clean, is_email, is_phone};
use crate::{App, AppError, FieldError};

/// The citizen of a new case, as given.
#[derive(Debug, Clone, Default)]
pub struct CitizenRequest {
    /// Codice fiscale (16 characters with a valid check character, or 11 digits).
    pub fiscal_code: Option<String>,
    /// Full name.
    pub name: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// PEC address.
    pub pec: Option<String>,
    /// Telephone.
    pub phone: Option<String>,
    /// Fax.
    pub fax: Option<String>,
}

/// A case to open, as given: every value is checked by [`CaseRequest::into_new_case`].
#[derive(Debug, Clone, Default)]
pub struct CaseRequest {
    /// `ztl_permit`, `cude`, `seg` or a configured type.
    pub case_type: Option<String>,
    /// Subject (oggetto), up to 300 characters.
    pub subject: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// The channel it came by.
    pub channel: Option<String>,
    /// The citizen.
    pub citizen: Option<CitizenRequest>,
    /// Type-specific fields (a JSON object).
    pub fields: Option<serde_json::Value>,
}

fn check_email(value: &Option<String>, field: &str, errors: &mut Vec<FieldError>) {
    if let Some(v) = value
        && !is_email(v)
    {
        errors.push(FieldError::new(field, "is not an e-mail address"));
    }
}

fn check_phone(value: &Option<String>, field: &str, errors: &mut Vec<FieldError>) {
    if let Some(v) = value
        && !is_phone(v)
    {
        errors.push(FieldError::new(field, "is not a telephone number"));
    }
}

impl CaseRequest {
    /// Checks every field and builds the case to open (field errors naming each bad
    /// field): the API's, the portal's and the demo's way to open a case.
    pub fn into_new_case(self, app: &App, actor: &str) -> Result<NewCase, AppError> {
        let mut errors = Vec::new();
        let case_type = clean(self.case_type, "case_type", 64, &mut errors);
        match &case_type {
            None => errors.push(FieldError::new("case_type", "is required")),
            Some(t) if app.store.case_type(t).is_none() => {
                let known: Vec<&str> = app
                    .store
                    .settings()
                    .case_types
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect();
                errors.push(FieldError::new(
                    "case_type",
                    format!("unknown case type '{t}' (known: {})", known.join(", ")),
                ));
            }
            _ => {}
        }
        let subject = clean(self.subject, "subject", 300, &mut errors);
        if subject.is_none() && !errors.iter().any(|e| e.field == "subject") {
            errors.push(FieldError::new("subject", "is required"));
        }
        let description =
            clean(self.description, "description", 20_000, &mut errors).unwrap_or_default();
        let channel = match clean(self.channel, "channel", 32, &mut errors) {
            None => {
                errors.push(FieldError::new("channel", "is required"));
                None
            }
            Some(c) => match c.parse::<Channel>() {
                Ok(ch) => Some(ch),
                Err(e) => {
                    errors.push(FieldError::new("channel", e.to_string()));
                    None
                }
            },
        };
        let citizen = self.citizen.unwrap_or_default();
        let fiscal_code = match clean(citizen.fiscal_code, "citizen.fiscal_code", 32, &mut errors) {
            None => None,
            Some(code) => match FiscalCode::parse(&code) {
                Ok(fc) => Some(fc),
                Err(e) => {
                    errors.push(FieldError::new("citizen.fiscal_code", e.to_string()));
                    None
                }
            },
        };
        let name = clean(citizen.name, "citizen.name", 200, &mut errors);
        if let Some(Err(e)) = name.as_deref().map(sportello_domain::names::check_name) {
            errors.push(FieldError::new("citizen.name", e.to_string()));
        }
        let email = clean(citizen.email, "citizen.email", 254, &mut errors);
        let pec = clean(citizen.pec, "citizen.pec", 254, &mut errors);
        let phone = clean(citizen.phone, "citizen.phone", 32, &mut errors);
        let fax = clean(citizen.fax, "citizen.fax", 32, &mut errors);
        check_email(&email, "citizen.email", &mut errors);
        check_email(&pec, "citizen.pec", &mut errors);
        check_phone(&phone, "citizen.phone", &mut errors);
        check_phone(&fax, "citizen.fax", &mut errors);
        let fields = match self.fields {
            None | Some(serde_json::Value::Null) => serde_json::Map::new(),
            Some(serde_json::Value::Object(map)) if map.len() <= 100 => map,
            Some(serde_json::Value::Object(_)) => {
                errors.push(FieldError::new("fields", "at most 100 fields"));
                serde_json::Map::new()
            }
            Some(_) => {
                errors.push(FieldError::new("fields", "must be a JSON object"));
                serde_json::Map::new()
            }
        };
        // A permit request takes the legal term and service standard of the category it
        // asks for (a CUDE request: the CUDE category's short one).
        let mut terms = None;
        if let Some(t) = case_type.as_deref()
            && matches!(t, "ztl_permit" | "cude")
        {
            let asked = fields
                .get("category")
                .and_then(|c| c.as_str())
                .or((t == "cude").then_some("cude"));
            match asked.map(|id| (id, app.policy.category(id))) {
                Some((_, Some(category))) => {
                    terms = Some(CaseTerms {
                        term_days: category.term_days,
                        service_days: category.service_days,
                    })
                }
                Some((id, None)) if fields.contains_key("category") => {
                    errors.push(FieldError::new(
                        "fields.category",
                        format!(
                            "'{}' is not a category of the policy in force",
                            id.chars().take(40).collect::<String>()
                        ),
                    ))
                }
                _ => {}
            }
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let (Some(case_type), Some(subject), Some(channel)) = (case_type, subject, channel) else {
            return Err(AppError::field("body", "incomplete request"));
        };
        Ok(NewCase {
            case_type,
            subject,
            description,
            channel,
            citizen: CitizenInput {
                fiscal_code,
                name,
                email,
                pec,
                phone,
                fax,
            },
            fields,
            flags: vec![],
            actor: actor.to_owned(),
            document_sha256: None,
            registered_as: None,
            terms,
        })
    }
}
