//! The remedy of errors: a contested transit or fine becomes an SEG case linked to the
//! plate, the transits and the permit; its evidence (every permit and temporary plate of
//! the plate, judged again) is gathered automatically; `annul` produces the annulment
//! request for the police — a letter and a CSV row per transit, plus the corrected
//! whitelist rows when the register covers the transits — registered in the protocol
//! register together with the decision, and sends it to the police command by PEC or
//! e-mail (`office.police_pec`, `office.police_email`) in the same transaction; without
//! an address the request is printed and the case flagged for delivery by hand.

use std::sync::Arc;

use bytes::Bytes;
use chrono::DateTime;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use sportello_domain::plate::Plate;
use sportello_domain::ztl::transits::{Judgement, PermitIndex, judge};
use sportello_store::cases::{CaseView, OutgoingDocument};
use sportello_store::outbound::{ANNULMENT_BY_HAND, ANNULMENT_KEY_PREFIX, NewOutbound};
use sportello_store::permits::{PermitView, WhitelistRow, write_whitelist};

use crate::new_case::{CaseRequest, CitizenRequest};
use crate::{App, AppError, FieldError};

/// At most this many transits in one report: a fine concerns one or a handful.
pub const MAX_CONTESTED: usize = 200;

/// One contested passage, as the gate system recorded it (kept so in the case's fields).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ContestedTransit {
    /// The gate system's transit id.
    pub transit_id: String,
    /// The gate.
    pub gate: String,
    /// RFC 3339 with offset.
    pub timestamp: String,
}

/// A contested transit or fine, as reported.
#[derive(Debug, Clone, Default)]
pub struct Contest {
    /// The plate fined.
    pub plate: String,
    /// Its country (default `IT`).
    pub country: Option<String>,
    /// The passages contested (1 to [`MAX_CONTESTED`]).
    pub transits: Vec<ContestedTransit>,
    /// The fine (verbale) number, when there is one.
    pub fine: Option<String>,
    /// The permit the citizen says covered the passage.
    pub permit: Option<String>,
    /// What the citizen or the patrol says.
    pub note: Option<String>,
    /// Where the report came from (default `web`).
    pub channel: Option<String>,
    /// The citizen, when known.
    pub citizen: Option<CitizenRequest>,
}

/// Opens an SEG case for contested transits or a fine (the portal's backend, the police,
/// an operator). The transits are checked for form (known gate, instant with offset) so
/// the evidence can judge them.
pub async fn contest(app: &App, contest: Contest, actor: &str) -> Result<CaseView, AppError> {
    let mut errors = Vec::new();
    let plate = Plate::parse(&contest.plate, contest.country.as_deref())
        .map_err(|e| errors.push(FieldError::new("plate", e.to_string())))
        .ok();
    if contest.transits.is_empty() || contest.transits.len() > MAX_CONTESTED {
        errors.push(FieldError::new(
            "transits",
            format!("must list between 1 and {MAX_CONTESTED} transits"),
        ));
    }
    for (i, t) in contest.transits.iter().enumerate().take(MAX_CONTESTED) {
        let id = t.transit_id.trim();
        if id.is_empty() || id.chars().count() > 64 || id.chars().any(char::is_control) {
            errors.push(FieldError::new(
                format!("transits[{i}].transit_id"),
                "must be 1 to 64 printable characters",
            ));
        }
        if app.policy.zone_of_gate(t.gate.trim()).is_none() {
            errors.push(FieldError::new(
                format!("transits[{i}].gate"),
                format!(
                    "unknown gate '{}'",
                    t.gate.chars().take(20).collect::<String>()
                ),
            ));
        }
        if DateTime::parse_from_rfc3339(t.timestamp.trim()).is_err() {
            errors.push(FieldError::new(
                format!("transits[{i}].timestamp"),
                "must be RFC 3339 with an offset, e.g. 2026-03-29T09:15:00+02:00",
            ));
        }
    }
    let short = |field: &str, v: &Option<String>, errors: &mut Vec<FieldError>| {
        let v = v.as_deref().map(str::trim).filter(|v| !v.is_empty())?;
        if v.chars().count() > 64 || v.chars().any(char::is_control) {
            errors.push(FieldError::new(
                field,
                "must be at most 64 printable characters",
            ));
            return None;
        }
        Some(v.to_owned())
    };
    let fine = short("fine", &contest.fine, &mut errors);
    let permit = short("permit", &contest.permit, &mut errors);
    let (Some(plate), true) = (plate, errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    let transits: Vec<ContestedTransit> = contest
        .transits
        .into_iter()
        .map(|t| ContestedTransit {
            transit_id: t.transit_id.trim().to_owned(),
            gate: t.gate.trim().to_owned(),
            timestamp: t.timestamp.trim().to_owned(),
        })
        .collect();
    let mut fields = serde_json::json!({
        "plate": plate.number, "country": plate.country, "transits": transits,
    });
    if let Some(fine) = &fine {
        fields["fine"] = fine.as_str().into();
    }
    if let Some(permit) = &permit {
        fields["permit"] = permit.as_str().into();
    }
    let subject = match &fine {
        Some(fine) => format!("Contestazione verbale {fine}, targa {}", plate.number),
        None => format!(
            "Contestazione di {} transit{} in ZTL, targa {}",
            transits.len(),
            if transits.len() == 1 { "o" } else { "i" },
            plate.number
        ),
    };
    let request = CaseRequest {
        case_type: Some("seg".into()),
        subject: Some(subject),
        description: contest.note,
        channel: contest.channel.or_else(|| Some("web".into())),
        citizen: contest.citizen,
        fields: Some(fields),
    };
    Ok(app
        .store
        .create_case(request.into_new_case(app, actor)?)
        .await?)
}

/// One contested passage, judged again with everything the office knows.
#[derive(Debug, Clone)]
pub struct TransitEvidence {
    /// The transit id, as the gate system gave it.
    pub transit_id: String,
    /// The gate.
    pub gate: String,
    /// Its zone, when the gate is known.
    pub zone: Option<String>,
    /// The instant, as given.
    pub timestamp: String,
    /// Whether the zone was enforced at that time.
    pub zone_active: bool,
    /// The verdict today: `permit` (covered), `zone_not_active`, a violation reason, or
    /// `unreadable` when the transit cannot be judged.
    pub verdict: String,
    /// The permit that covered it.
    pub permit: Option<String>,
}

/// What a contested-fine (SEG) case needs on one screen.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// The plate, normalised.
    pub plate: String,
    /// Its country.
    pub country: String,
    /// Each contested transit, judged under the policy in force.
    pub transits: Vec<TransitEvidence>,
    /// Every permit that ever named the plate (temporary plates included), with its rows
    /// and history.
    pub permits: Vec<PermitView>,
    /// The policy version the verdicts were computed under.
    pub policy_version: Option<i64>,
    /// The plate's register rows that cover a contested transit now: what the police's
    /// whitelist must contain (sent with an annulment as the corrected rows).
    covering_rows: Vec<WhitelistRow>,
}

/// The evidence of the case `reference` for `actor` (a read of the file: audited).
pub async fn evidence(app: &App, reference: &str, actor: &str) -> Result<Evidence, AppError> {
    let case = app.store.get_case(reference.trim()).await?;
    let evidence = gather(app, &case).await?;
    app.store
        .record_access(actor, "read_evidence", &case.summary.reference)
        .await?;
    Ok(evidence)
}

fn text_field(v: &serde_json::Value, k: &str) -> String {
    v.get(k)
        .and_then(|x| x.as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Judges the case's transits (fields `plate`, `country`, `transits`) again under the
/// policy in force, with every permit of the plate.
pub async fn gather(app: &App, case: &CaseView) -> Result<Evidence, AppError> {
    let fields = &case.fields;
    let plate = Plate::parse(
        &text_field(fields, "plate"),
        fields.get("country").and_then(|c| c.as_str()),
    )
    .map_err(|e| {
        AppError::Refused(
            sportello_domain::refusal::Refusal::new("refusal.contest_plate_invalid")
                .with("reason", e),
        )
    })?;
    let rows = app
        .store
        .permit_rows_of(&plate.number, &plate.country)
        .await?;
    let mut numbers: Vec<String> = rows.iter().map(|r| r.permit.clone()).collect();
    numbers.sort();
    numbers.dedup();
    let policy = Arc::clone(&app.policy);
    let index = PermitIndex::new(&policy, rows.clone());
    let mut transits = Vec::new();
    let mut covering: Vec<String> = Vec::new();
    for t in fields
        .get("transits")
        .and_then(|t| t.as_array())
        .into_iter()
        .flatten()
    {
        let (transit_id, gate, timestamp) = (
            text_field(t, "transit_id"),
            text_field(t, "gate"),
            text_field(t, "timestamp"),
        );
        let zone = policy.zone_of_gate(&gate);
        let mut judged = TransitEvidence {
            transit_id,
            gate: gate.clone(),
            zone: zone.map(|z| z.id.clone()),
            timestamp: timestamp.clone(),
            zone_active: false,
            verdict: "unreadable".into(),
            permit: None,
        };
        if let (Some(zone), Ok(at)) = (zone, DateTime::parse_from_rfc3339(&timestamp)) {
            let judgement = judge(&policy, &index, &plate, zone, &at);
            judged.zone_active = judgement != Judgement::ZoneNotActive;
            judged.verdict = match judgement {
                Judgement::ZoneNotActive => "zone_not_active".into(),
                Judgement::Authorised(permit) => {
                    judged.permit = Some(permit.to_owned());
                    covering.push(permit.to_owned());
                    "permit".into()
                }
                Judgement::Violation(reason) => reason.as_str().to_owned(),
            };
        }
        transits.push(judged);
    }
    let covering_rows = rows
        .into_iter()
        .filter(|r| r.active && covering.contains(&r.permit))
        .map(|r| WhitelistRow {
            plate: r.plate,
            country: r.country,
            permit: r.permit,
            category: r.category,
            valid_from: r.valid_from,
            valid_to: r.valid_to,
            change: None,
        })
        .collect();
    let mut permits = Vec::with_capacity(numbers.len());
    for number in &numbers {
        permits.push(app.store.permit(number).await?);
    }
    Ok(Evidence {
        plate: plate.number,
        country: plate.country,
        transits,
        permits,
        policy_version: app.policy_version,
        covering_rows,
    })
}

/// Italian label of a verdict, for the letter.
fn verdict_label(verdict: &str) -> &'static str {
    match verdict {
        "permit" => "coperto da permesso",
        "zone_not_active" => "ZTL non attiva",
        "outside_window" => "fuori fascia oraria",
        "not_valid_at_time" => "permesso non valido in quel momento",
        "wrong_zone" => "permesso per altra zona",
        "suspended_or_revoked" => "permesso sospeso o revocato",
        "no_permit" => "nessun permesso",
        _ => "non verificabile",
    }
}

/// What an `annul` decision produces on an SEG case, for the caller to commit with the
/// decision in one transaction.
pub struct AnnulmentRequest {
    /// The letter to the police, the CSV rows of the annulled transits and, when the
    /// register now covers some of them, the corrected whitelist rows: attached and
    /// registered outgoing.
    pub documents: Vec<OutgoingDocument>,
    /// The message that takes them to the police (the documents go along), or the printed
    /// request the office must deliver by hand, flagging the case.
    pub to_police: NewOutbound,
}

/// What every part of an annulment request says of the case.
struct Annulment<'a> {
    reference: &'a str,
    /// The SEG case's protocol number (empty when it has none).
    protocol: String,
    /// The fine's number (empty when not given).
    fine: String,
    /// The reasons of the decision, trimmed, blank ones left out.
    reasons: Vec<String>,
    /// The office's time zone, for the dates printed.
    zone: Tz,
}

impl Annulment<'_> {
    /// An instant as the letter prints it (the text as given when it is not one).
    fn local(&self, ts: &str) -> String {
        DateTime::parse_from_rfc3339(ts)
            .map(|t| {
                t.with_timezone(&self.zone)
                    .format("%d/%m/%Y %H:%M:%S")
                    .to_string()
            })
            .unwrap_or_else(|_| ts.to_owned())
    }
}

/// The annulment request of an SEG case. The documents' bytes and the message's text are
/// stored here; the caller attaches, registers and queues them with the decision.
pub async fn annulment_request(
    app: &App,
    case: &CaseView,
    reasons: &[String],
) -> Result<AnnulmentRequest, AppError> {
    let evidence = gather(app, case).await?;
    let reference = case.summary.reference.as_str();
    let facts = Annulment {
        reference,
        protocol: case.summary.protocol.clone().unwrap_or_default(),
        fine: text_field(&case.fields, "fine"),
        reasons: reasons
            .iter()
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .collect(),
        zone: app.policy.timezone,
    };
    let csv_bytes = transits_csv(&facts, &evidence)?;
    let corrected = corrected_rows(app, &evidence)?;
    let data_name = format!("richiesta-annullamento-{reference}.csv");
    let corrected_name = format!("righe-corrette-{reference}.csv");
    let subject = format!(
        "Richiesta di annullamento in autotutela - targa {}",
        evidence.plate
    );
    let pdf = annulment_letter(
        app,
        case,
        &facts,
        &evidence,
        &subject,
        &data_name,
        corrected.is_some().then_some(corrected_name.as_str()),
    );

    let letter_name = format!("richiesta-annullamento-{reference}.pdf");
    let mut attached = vec![
        format!("- {letter_name}: la lettera di richiesta"),
        format!("- {data_name}: i dati dei transiti, una riga per transito"),
    ];
    if corrected.is_some() {
        attached.push(format!(
            "- {corrected_name}: le righe corrette della lista bianca"
        ));
    }
    let cover = CoverNote {
        reference,
        protocol: &facts.protocol,
        fine: &facts.fine,
        plate: &evidence.plate,
        transits: evidence.transits.len(),
        attached: &attached,
    };
    let mut documents = vec![
        (letter_name, "application/pdf", pdf, subject.clone()),
        (
            data_name,
            "text/csv",
            csv_bytes,
            format!("{subject} - dati dei transiti"),
        ),
    ];
    if let Some(rows) = corrected {
        documents.push((
            corrected_name,
            "text/csv",
            rows,
            format!("{subject} - righe corrette della lista bianca"),
        ));
    }
    let outgoing = store_for_police(app, documents).await?;
    let to_police = message_to_police(app, case, &subject, &cover).await?;
    Ok(AnnulmentRequest {
        documents: outgoing,
        to_police,
    })
}

/// The CSV for the police's records system: one row per annulled transit.
fn transits_csv(facts: &Annulment<'_>, evidence: &Evidence) -> Result<Vec<u8>, AppError> {
    let mut csv_out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let csv_error = |e: csv::Error| AppError::Internal(format!("writing the CSV: {e}"));
    csv_out
        .write_record([
            "case",
            "protocol",
            "fine",
            "transit_id",
            "gate",
            "zone",
            "plate",
            "country",
            "timestamp",
            "verdict",
            "permit",
            "reasons",
        ])
        .map_err(csv_error)?;
    let joined_reasons = facts.reasons.join("; ");
    for t in &evidence.transits {
        csv_out
            .write_record([
                facts.reference,
                &facts.protocol,
                &facts.fine,
                &t.transit_id,
                &t.gate,
                t.zone.as_deref().unwrap_or_default(),
                &evidence.plate,
                &evidence.country,
                &t.timestamp,
                &t.verdict,
                t.permit.as_deref().unwrap_or_default(),
                &joined_reasons,
            ])
            .map_err(csv_error)?;
    }
    csv_out
        .into_inner()
        .map_err(|e| AppError::Internal(format!("writing the CSV: {e}")))
}

/// The corrected whitelist rows (CONTRACT §6.3), when the register covers a transit.
fn corrected_rows(app: &App, evidence: &Evidence) -> Result<Option<Vec<u8>>, AppError> {
    if evidence.covering_rows.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    write_whitelist(&app.policy, &evidence.covering_rows, false, false, &mut out)
        .map_err(|e| AppError::Internal(format!("writing the corrected rows: {e}")))?;
    Ok(Some(out))
}

/// The letter to the police command: the case, the transits with today's verdict, the
/// reasons, the vehicle's permits, and what is attached (`corrected_name` when the
/// corrected whitelist rows go along).
fn annulment_letter(
    app: &App,
    case: &CaseView,
    facts: &Annulment<'_>,
    evidence: &Evidence,
    subject: &str,
    data_name: &str,
    corrected_name: Option<&str>,
) -> Vec<u8> {
    use sportello_paper::Block;
    let (reference, protocol, fine, zone) =
        (facts.reference, &facts.protocol, &facts.fine, facts.zone);
    let office = &app.config.office;
    let letterhead = vec![office.authority.clone(), office.name.clone()];
    let recipient = vec![
        format!("Al {}", office.police),
        "Ufficio Verbali".to_owned(),
    ];
    let today = app
        .store
        .clock()
        .now()
        .with_timezone(&zone)
        .format("%d/%m/%Y")
        .to_string();
    let mut body = vec![Block::Paragraph(format!(
        "Con riferimento alla segnalazione della pratica {reference}{}{}, ricevuta il {}, \
         si chiede l'annullamento in autotutela dell'accertamento{} relativo ai transiti \
         sotto elencati del veicolo targato {} ({}).",
        if protocol.is_empty() {
            String::new()
        } else {
            format!(" (protocollo {protocol})")
        },
        if fine.is_empty() {
            String::new()
        } else {
            format!(", verbale n. {fine}")
        },
        facts
            .local(&case.summary.received_at)
            .get(..10)
            .unwrap_or_default(),
        if evidence.transits.len() == 1 {
            ""
        } else {
            "i"
        },
        evidence.plate,
        evidence.country,
    ))];
    body.push(Block::Heading("Transiti".into()));
    body.push(Block::Table {
        columns: vec![
            ("Transito".into(), 0.16),
            ("Varco".into(), 0.08),
            ("Zona".into(), 0.07),
            ("Data e ora".into(), 0.22),
            ("Esito della verifica".into(), 0.33),
            ("Permesso".into(), 0.14),
        ],
        rows: evidence
            .transits
            .iter()
            .map(|t| {
                vec![
                    t.transit_id.clone(),
                    t.gate.clone(),
                    t.zone.clone().unwrap_or_default(),
                    facts.local(&t.timestamp),
                    verdict_label(&t.verdict).to_owned(),
                    t.permit.clone().unwrap_or_default(),
                ]
            })
            .collect(),
    });
    body.push(Block::Heading("Motivazione".into()));
    body.extend(facts.reasons.iter().cloned().map(Block::Paragraph));
    if !evidence.permits.is_empty() {
        let day = |ms: i64| {
            DateTime::from_timestamp_millis(ms)
                .map(|t| t.with_timezone(&zone).format("%d/%m/%Y").to_string())
                .unwrap_or_default()
        };
        body.push(Block::Heading("Permessi del veicolo".into()));
        body.push(Block::Table {
            columns: vec![
                ("Permesso".into(), 0.25),
                ("Categoria".into(), 0.2),
                ("Stato".into(), 0.15),
                ("Valido dal".into(), 0.2),
                ("al".into(), 0.2),
            ],
            rows: evidence
                .permits
                .iter()
                .flat_map(|p| {
                    p.plates
                        .iter()
                        .filter(|r| r.plate == evidence.plate && r.country == evidence.country)
                        .map(|r| {
                            vec![
                                p.number.clone(),
                                p.category.clone(),
                                r.status.clone(),
                                day(r.valid_from),
                                day(r.valid_to),
                            ]
                        })
                })
                .collect(),
        });
    }
    body.push(Block::Paragraph(format!(
        "Si allegano i dati dei transiti in formato CSV ({data_name}).{}",
        if let Some(corrected_name) = corrected_name {
            format!(
                " Il registro dei permessi copre i transiti indicati: si allegano le righe \
                 della lista bianca da caricare nel sistema dei varchi ({corrected_name})."
            )
        } else {
            String::new()
        }
    )));
    let signature = office.name.clone();
    sportello_paper::letter_pdf(&sportello_paper::Letter {
        letterhead: &letterhead,
        recipient: &recipient,
        place_date: &format!("Data: {today}"),
        reference,
        subject,
        body: &body,
        signature: &signature,
    })
}

/// Stores the request's files `(name, media type, bytes, subject)`, each to be registered
/// outgoing to the police command.
async fn store_for_police(
    app: &App,
    documents: Vec<(String, &str, Vec<u8>, String)>,
) -> Result<Vec<OutgoingDocument>, AppError> {
    let mut outgoing = Vec::with_capacity(documents.len());
    for (filename, media_type, bytes, subject) in documents {
        let size = bytes.len() as u64;
        let sha256 = app.blobs.put(Bytes::from(bytes)).await?;
        outgoing.push(OutgoingDocument {
            sha256,
            size,
            filename,
            media_type: media_type.to_owned(),
            register: Some((app.config.office.police.clone(), subject)),
        });
    }
    Ok(outgoing)
}

/// What the message carrying an annulment request says of it.
struct CoverNote<'a> {
    reference: &'a str,
    /// The SEG case's protocol number (empty when it has none).
    protocol: &'a str,
    /// The fine's number (empty when not given).
    fine: &'a str,
    plate: &'a str,
    transits: usize,
    /// One line per attached file.
    attached: &'a [String],
}

/// The police command's channel and address for annulment requests: PEC first, else
/// e-mail, a channel the office has configured before one it has not (such a message
/// waits in the queue until it is); `None` when no address is configured.
fn police_route(app: &App) -> Option<(&'static str, String)> {
    use sportello_outbound::Channel;
    let office = &app.config.office;
    let given = |a: &Option<String>| {
        a.as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
    };
    let routes = [
        (Channel::Pec, given(&office.police_pec)),
        (Channel::Email, given(&office.police_email)),
    ];
    let ready = routes
        .iter()
        .find(|(c, to)| to.is_some() && app.transports.is_configured(*c));
    ready
        .or_else(|| routes.iter().find(|(_, to)| to.is_some()))
        .and_then(|(channel, to)| to.clone().map(|to| (channel.as_str(), to)))
}

/// The message that takes the annulment request to the police, its documents attached
/// (`with_outgoing_documents`), once per annulment of the case (a retried `annul` queues
/// nothing more); its subject will carry its protocol number, for the police to quote.
/// Without a police address: the same text as a printed letter to the command, flagging
/// the case `annulment_by_hand`.
async fn message_to_police(
    app: &App,
    case: &CaseView,
    subject: &str,
    note: &CoverNote<'_>,
) -> Result<NewOutbound, AppError> {
    let office = &app.config.office;
    let reference = note.reference;
    let what = match note.transits {
        1 => "dell'accertamento relativo al transito".to_owned(),
        n => format!("degli accertamenti relativi ai {n} transiti"),
    };
    let mut text = format!(
        "Al {} – Ufficio Verbali\n\n\
         Si trasmette in allegato la richiesta di annullamento in autotutela {what} del \
         veicolo targato {}{}, a seguito della segnalazione registrata nella pratica \
         {reference}{}.\n\nAllegati:\n{}\n\n",
        office.police,
        note.plate,
        if note.fine.is_empty() {
            String::new()
        } else {
            format!(" (verbale n. {})", note.fine)
        },
        if note.protocol.is_empty() {
            String::new()
        } else {
            format!(" (protocollo {})", note.protocol)
        },
        note.attached.join("\n"),
    );
    text.push_str(&format!(
        "Nella risposta si prega di citare il numero di protocollo della presente o il \
         riferimento {reference}.\n\n{} – {}\n",
        office.name, office.authority
    ));
    let route = police_route(app);
    let (channel, recipient) = route.clone().unwrap_or(("letter", office.police.clone()));
    let subject = format!("[{reference}] {subject}");
    let message_id = crate::outbound::new_message_id(app, reference);
    let canonical = format!(
        "Channel: {channel}\nTo: {recipient}\nSubject: {subject}\nMessage-ID: <{message_id}>\n\n{text}"
    );
    let content_sha256 = hex::encode(sha2::Sha256::digest(canonical.as_bytes()));
    app.blobs
        .put(Bytes::from(canonical))
        .await
        .map_err(|e| AppError::Internal(format!("message text not stored: {e}")))?;
    // One request per annulment: the n-th `annul` of the case (after a `reopen`) sends
    // the n-th request.
    let annulments = case
        .timeline
        .iter()
        .filter(|e| {
            e.kind == "action" && e.detail.get("action").and_then(|a| a.as_str()) == Some("annul")
        })
        .count();
    Ok(NewOutbound {
        channel: channel.to_owned(),
        recipient,
        subject,
        body: text,
        template: None,
        lang: "it".into(),
        idempotency_key: format!("{ANNULMENT_KEY_PREFIX}{reference}:{}", annulments + 1),
        message_id,
        in_reply_to: None,
        references: Vec::new(),
        attachments: Vec::new(),
        with_outgoing_documents: true,
        whatsapp_template: false,
        content_sha256,
        printed: route.is_none(),
        protocol_in_subject: route.is_some(),
        flag: route.is_none().then(|| ANNULMENT_BY_HAND.to_owned()),
    })
}
