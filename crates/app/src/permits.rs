//! The permit's life in the office: planning and issuing the permit of an approved case
//! (with its printed PDF), renewal, and CUDE temporary plates. The overlap of permits for
//! the same plates is the store's rule (`plate_clash`), asked here, never restated.

use bytes::Bytes;
use chrono::DateTime;
use sportello_domain::plate::Plate;
use sportello_domain::refusal::Refusal;
use sportello_store::cases::OutgoingDocument;

use crate::{App, AppError};

/// A temporary plate as given (plate, country, from and to as RFC 3339 instants),
/// checked: the plate and the two instants in milliseconds.
pub fn temporary_plate_of(
    plate: &str,
    country: Option<&str>,
    from: &str,
    to: &str,
) -> Result<(Plate, (i64, i64)), AppError> {
    let plate =
        Plate::parse(plate, country).map_err(|e| AppError::field("plate", e.to_string()))?;
    let instant = |field: &str, text: &str| {
        DateTime::parse_from_rfc3339(text.trim())
            .map(|t| t.timestamp_millis())
            .map_err(|_| AppError::field(field, "must be an RFC 3339 instant with its offset"))
    };
    Ok((plate, (instant("from", from)?, instant("to", to)?)))
}

/// What issuing a permit case does.
#[derive(Debug)]
pub enum PermitPlan {
    /// A new permit (or a renewal).
    Issue(sportello_store::permits::NewPermit),
    /// New plates on an existing permit (`fields.amends`): a CUDE holder's new car, a
    /// resident's sold one.
    ChangePlates {
        /// The permit changed.
        number: String,
        /// Its plates from now on.
        plates: Vec<Plate>,
    },
    /// The case already has its permit (a retry after an interruption).
    Done(String),
}

/// The permit a ZTL or CUDE case asks for, checked against the policy in force: the
/// category (`fields.category`; `cude` for CUDE cases), the plates (`fields.plates`, at most
/// the category's `max_vehicles`), the documents the category requires
/// (`fields.documents` must name each; not for a change of plates), the holder (the
/// case's citizen, with a fiscal code) and no active permit of the same category for those
/// plates. `None` for other case types, which issue nothing.
pub async fn plan(
    app: &App,
    case: &sportello_store::cases::CaseView,
) -> Result<Option<PermitPlan>, AppError> {
    let case_type = case.summary.case_type.as_str();
    if !matches!(case_type, "ztl_permit" | "cude") {
        return Ok(None);
    }
    if let Some(number) = app
        .store
        .permit_issued_for_case(&case.summary.reference)
        .await?
    {
        return Ok(Some(PermitPlan::Done(number)));
    }
    let fields = &case.fields;
    let amends = fields
        .get("amends")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let amended = match &amends {
        Some(number) => Some(app.store.permit(number).await.map_err(|_| {
            AppError::Refused(
                Refusal::new("refusal.permit_to_change_unknown").with("number", number),
            )
        })?),
        None => None,
    };
    let (category, plates) = checked_request(
        &app.policy,
        case,
        amended.as_ref().map(|p| p.category.as_str()),
    )
    .map_err(|gaps| {
        let first = gaps.into_iter().next();
        AppError::Refused(first.unwrap_or_else(|| Refusal::new("refusal.no_category")))
    })?;
    let holder_fiscal_code = case
        .citizen
        .fiscal_code
        .clone()
        .ok_or_else(|| AppError::Refused(Refusal::new("refusal.no_holder")))?;
    if let Some(permit) = amended {
        if permit.holder_fiscal_code != holder_fiscal_code {
            return Err(AppError::Refused(
                Refusal::new("refusal.other_holder").with("number", &permit.number),
            ));
        }
        if !matches!(permit.state.as_str(), "active" | "suspended") {
            return Err(AppError::Refused(
                Refusal::new("refusal.plates_frozen")
                    .with("number", &permit.number)
                    .named("state", "permit_state", &permit.state),
            ));
        }
        return Ok(Some(PermitPlan::ChangePlates {
            number: permit.number,
            plates,
        }));
    }
    let now = app.store.clock().now();
    // A renewal (fields.renews) continues the old permit: it starts when the old one ends
    // (now, if it has ended already), and the old permit's rows are no clash.
    let mut renews = fields
        .get("renews")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let mut valid_from = now.timestamp_millis();
    if let Some(old) = renews.as_mut() {
        let previous = app.store.permit(old).await.map_err(|_| {
            AppError::Refused(Refusal::new("refusal.permit_to_renew_unknown").with("number", &*old))
        })?;
        // A former number (the old shape) names the permit by its number from now on.
        old.clone_from(&previous.number);
        if previous.holder_fiscal_code != holder_fiscal_code {
            return Err(AppError::Refused(
                Refusal::new("refusal.other_holder").with("number", old),
            ));
        }
        if previous.state == "revoked" {
            return Err(AppError::Refused(
                Refusal::new("refusal.revoked_not_renewed").with("number", old),
            ));
        }
        if let Some(end) = previous
            .plates
            .iter()
            .filter(|r| r.source != "temporary" && r.status == "active")
            .map(|r| r.valid_to)
            .max()
        {
            valid_from = valid_from.max(end);
        }
    }
    let valid_to = valid_from + i64::from(category.validity_days) * 86_400_000;
    if let Some(refusal) = app
        .store
        .plate_clash(
            &plates,
            &category.id,
            (valid_from, valid_to),
            renews.as_deref(),
        )
        .await?
    {
        return Err(AppError::Refused(refusal));
    }
    Ok(Some(PermitPlan::Issue(
        sportello_store::permits::NewPermit {
            category: category.id.clone(),
            prefix: category.prefix.clone(),
            holder_name: case
                .citizen
                .name
                .clone()
                .unwrap_or_else(|| holder_fiscal_code.clone()),
            holder_fiscal_code,
            plates,
            valid_from,
            valid_to,
            policy_version: app.policy_version,
            renews,
        },
    )))
}

/// What a ZTL or CUDE request lacks before it can be approved and issued, each in words:
/// the category (`fields.category`; `cude` for CUDE cases; `amended_category` for a change
/// of plates), at least one plate, no more than the category's `max_vehicles`, each plate
/// valid, and every document the category requires named in `fields.documents` (not for a
/// change of plates). The checks [`plan`] makes before it asks the store anything; the case
/// page shows all of them at once, `issue` refuses with the first. `Ok` with the category
/// and the plates, without duplicates, when nothing is missing.
pub fn checked_request<'p>(
    policy: &'p sportello_domain::ztl::policy::Policy,
    case: &sportello_store::cases::CaseView,
    amended_category: Option<&str>,
) -> Result<(&'p sportello_domain::ztl::policy::Category, Vec<Plate>), Vec<Refusal>> {
    let fields = &case.fields;
    let mut gaps = Vec::new();
    let category_id = amended_category
        .map(str::to_owned)
        .or_else(|| {
            fields
                .get("category")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .or_else(|| (case.summary.case_type == "cude").then(|| "cude".to_owned()));
    let category = match &category_id {
        None => {
            gaps.push(Refusal::new("refusal.no_category"));
            None
        }
        Some(id) => {
            let found = policy.category(id);
            if found.is_none() {
                gaps.push(Refusal::new("refusal.category_unknown").with("category", id));
            }
            found
        }
    };
    // Plates as text ("AB123CD", or a list), or as {plate, country} for foreign ones.
    let texts: Vec<(String, Option<String>)> =
        match fields.get("plates").or_else(|| fields.get("plate")) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| match v {
                    serde_json::Value::String(s) => Some((s.clone(), None)),
                    serde_json::Value::Object(o) => Some((
                        o.get("plate")?.as_str()?.to_owned(),
                        o.get("country").and_then(|c| c.as_str()).map(str::to_owned),
                    )),
                    _ => None,
                })
                .collect(),
            Some(serde_json::Value::String(s)) => s
                .split([',', ';'])
                .map(|p| (p.trim().to_owned(), None))
                .filter(|(p, _)| !p.is_empty())
                .collect(),
            _ => Vec::new(),
        };
    if texts.is_empty() {
        gaps.push(Refusal::new("refusal.no_plates"));
    }
    if let Some(category) = category
        && !texts.is_empty()
        && !category.admits_plates(texts.len())
    {
        gaps.push(
            Refusal::new("refusal.too_many_plates")
                .with("count", texts.len())
                .with("category", &category.name)
                .with("max", category.max_vehicles),
        );
    }
    let mut plates = Vec::with_capacity(texts.len());
    for (text, country) in &texts {
        match Plate::parse(text, country.as_deref()) {
            Ok(plate) if !plates.contains(&plate) => plates.push(plate),
            Ok(_) => {}
            Err(e) => gaps.push(
                Refusal::new("refusal.plate_invalid")
                    .with("plate", text)
                    .with("reason", e),
            ),
        }
    }
    if let Some(category) = category {
        let given: Vec<&str> = fields
            .get("documents")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        let missing: Vec<&str> = category
            .documents
            .iter()
            .map(String::as_str)
            .filter(|d| amended_category.is_none() && !given.contains(d))
            .collect();
        if !missing.is_empty() {
            gaps.push(
                Refusal::new("refusal.documents_missing")
                    .with("category", &category.name)
                    .named_list("documents", "document", missing),
            );
        }
    }
    match category {
        Some(category) if gaps.is_empty() => Ok((category, plates)),
        _ => Err(gaps),
    }
}

/// Carries out a planned permit — its rows first (idempotent per case, so a retry after
/// an interruption finds them) — and prints it: the PDF with the QR code of its
/// verification page, returned to be attached and registered outgoing together with the
/// case's change of status.
pub async fn issue(
    app: &App,
    reference: &str,
    plan: &PermitPlan,
    actor: &str,
) -> Result<OutgoingDocument, AppError> {
    let number = match plan {
        PermitPlan::Issue(permit) => {
            app.store
                .issue_permit(reference, permit, actor)
                .await?
                .number
        }
        PermitPlan::ChangePlates { number, plates } => {
            app.store
                .change_permit_plates(number, plates, reference, actor, app.policy_version)
                .await?;
            number.clone()
        }
        PermitPlan::Done(number) => number.clone(),
    };
    let view = app.store.permit(&number).await?;
    let pdf = printed(app, &view);
    let size = pdf.len() as u64;
    let sha256 = app.blobs.put(Bytes::from(pdf)).await?;
    Ok(OutgoingDocument {
        sha256,
        size,
        filename: format!("permesso-{number}.pdf"),
        media_type: "application/pdf".into(),
        register: Some((view.holder_name.clone(), format!("Permesso ZTL {number}"))),
    })
}

/// The printed permit: its current plates (the rows of its latest period, temporary
/// plates aside), zones by name, validity in the office's time zone, and the QR code.
pub fn printed(app: &App, view: &sportello_store::permits::PermitView) -> Vec<u8> {
    let day = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| {
                t.with_timezone(&app.policy.timezone)
                    .format("%d/%m/%Y %H:%M")
                    .to_string()
            })
            .unwrap_or_default()
    };
    let category = app.policy.category(&view.category);
    let zones = category.map_or_else(String::new, |c| {
        c.zones
            .iter()
            .map(|z| {
                if z == "*" {
                    "tutte le zone".to_owned()
                } else {
                    app.policy
                        .zones
                        .iter()
                        .find(|k| &k.id == z)
                        .map_or_else(|| z.clone(), |k| k.name.clone())
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    });
    let lasting: Vec<&sportello_store::permits::PermitPlate> = view
        .plates
        .iter()
        .filter(|r| r.source != "temporary")
        .collect();
    let end = lasting.iter().map(|r| r.valid_to).max().unwrap_or_default();
    let current: Vec<&&sportello_store::permits::PermitPlate> =
        lasting.iter().filter(|r| r.valid_to == end).collect();
    let start = current
        .iter()
        .map(|r| r.valid_from)
        .min()
        .unwrap_or_default();
    let mut plates: Vec<String> = Vec::new();
    for r in &current {
        if !plates.contains(&r.plate) {
            plates.push(r.plate.clone());
        }
    }
    let verify_url = format!(
        "{}/permits/v/{}",
        app.config.public_url.trim_end_matches('/'),
        view.verify_token.as_deref().unwrap_or_default()
    );
    sportello_paper::permit_pdf(&sportello_paper::PrintedPermit {
        number: &view.number,
        category: category.map_or(view.category.as_str(), |c| c.name.as_str()),
        holder: &view.holder_name,
        plates: &plates,
        zones: &zones,
        valid_from: &day(start),
        valid_to: &day(end),
        verify_url: &verify_url,
    })
}

/// Opens the renewal case of a permit, prefilled from it (the API's and the permits
/// page's renewal).
pub async fn open_renewal(
    app: &App,
    actor: &str,
    number: &str,
    channel: Option<String>,
    note: Option<String>,
) -> Result<sportello_store::cases::CaseView, AppError> {
    let permit = app.store.permit(number).await?;
    if permit.state == "revoked" {
        return Err(AppError::Refused(
            Refusal::new("refusal.revoked_not_renewed").with("number", &permit.number),
        ));
    }
    let category = app.policy.category(&permit.category).ok_or_else(|| {
        AppError::Refused(
            Refusal::new("refusal.category_unknown").with("category", &permit.category),
        )
    })?;
    // The plates of the latest period (a plate replaced earlier is not renewed).
    let lasting = permit.plates.iter().filter(|r| r.source != "temporary");
    let last_end = lasting
        .clone()
        .map(|r| r.valid_to)
        .max()
        .unwrap_or_default();
    let mut plates: Vec<serde_json::Value> = Vec::new();
    for row in lasting.filter(|r| r.valid_to == last_end) {
        let plate = serde_json::json!({"plate": row.plate, "country": row.country});
        if !plates.contains(&plate) {
            plates.push(plate);
        }
    }
    let case_type = if category.person_bound {
        "cude"
    } else {
        "ztl_permit"
    };
    let request = crate::new_case::CaseRequest {
        case_type: Some(case_type.into()),
        subject: Some(format!(
            "Rinnovo del permesso {} ({})",
            permit.number, category.name
        )),
        description: note,
        channel: channel.or_else(|| Some("counter".into())),
        citizen: Some(crate::new_case::CitizenRequest {
            fiscal_code: Some(permit.holder_fiscal_code.clone()),
            name: Some(permit.holder_name.clone()),
            ..Default::default()
        }),
        fields: Some(serde_json::json!({
            "category": category.id, "plates": plates, "renews": permit.number, "documents": [],
        })),
    };
    let case = app
        .store
        .create_case(request.into_new_case(app, actor)?)
        .await?;
    Ok(case)
}

/// Adds a temporary plate to a person-bound permit for `from_ms..to_ms` under the policy
/// in force (the API's, the permit page's and the portal's way in).
pub async fn add_temporary(
    app: &App,
    number: &str,
    plate: Plate,
    (from_ms, to_ms): (i64, i64),
    actor: &str,
) -> Result<sportello_store::permits::PermitView, AppError> {
    app.store
        .add_temporary_plate(
            &app.policy,
            number,
            &sportello_store::permits::TemporaryPlate {
                plate,
                from_ms,
                to_ms,
            },
            app.policy_version,
            actor,
        )
        .await
        .map_err(AppError::from)
}
