//! The back office's other work in the replay: call-backs asked and calls logged,
//! appointments at the counter, CUDE temporary plates, and contested fines decided on
//! their evidence — each through the API's own handler.

use axum::Json;
use axum::extract::State;
use bytes::Bytes;
use chrono::{DateTime, Datelike, Duration, Utc};
use sportello_domain::calendar::ROME;
use sportello_domain::clock::Clock;
use sportello_domain::workflow::Action;
use sportello_web::api::contact::{AppointmentBody, LogCallBody};
use sportello_web::api::remedy::ContestedTransit;
use sportello_web::extract::{ApiJson, ApiPath};

use super::replay::{Issued, Office, api, store};
use super::story::Story;

impl Office {
    /// A CUDE holder's temporary plate for today, on the permit the case issued.
    pub(super) async fn temporary_plate(&mut self, story: &Story, i: usize) -> anyhow::Result<()> {
        let reference = self.reference(i)?;
        let Some(number) = self
            .state
            .store
            .permit_issued_for_case(&reference)
            .await
            .map_err(store)?
        else {
            return Ok(());
        };
        let now = self.clock.now();
        let body = sportello_web::api::permits::TemporaryPlate {
            plate: story.spare_plate.clone(),
            country: None,
            from: (now - Duration::hours(2)).with_timezone(&ROME).to_rfc3339(),
            to: (now + Duration::hours(8)).with_timezone(&ROME).to_rfc3339(),
        };
        let _ = sportello_web::api::permits::temporary_plate(
            State(self.state.clone()),
            self.user(story.assignee)?,
            ApiPath(number),
            ApiJson(body),
        )
        .await
        .map_err(api)?;
        Ok(())
    }

    /// An operator asks for the citizen to be called back.
    pub(super) async fn ask_callback(&mut self, story: &Story, i: usize) -> anyhow::Result<()> {
        let reference = self.reference(i)?;
        let body = serde_json::json!({
            "note": "Chiarire al telefono i documenti da presentare",
        });
        let _ = sportello_web::api::contact::open_callback(
            State(self.state.clone()),
            self.user(story.assignee)?,
            ApiPath(reference),
            Bytes::from(body.to_string()),
        )
        .await
        .map_err(api)?;
        Ok(())
    }

    /// An appointment at the counter proposed (written to the citizen) and, when
    /// `confirmed`, confirmed by phone.
    pub(super) async fn appointment(
        &mut self,
        story: &Story,
        i: usize,
        starts_at: DateTime<Utc>,
        confirmed: bool,
    ) -> anyhow::Result<()> {
        let reference = self.reference(i)?;
        let status = self
            .state
            .store
            .get_case(&reference)
            .await
            .map_err(store)?
            .summary
            .status;
        let body = AppointmentBody {
            starts_at: starts_at.with_timezone(&ROME).to_rfc3339(),
            reason: appointment_reason(story, &status).to_owned(),
            ..AppointmentBody::default()
        };
        let (_, Json(appointment)) = sportello_web::api::contact::propose_appointment(
            State(self.state.clone()),
            self.user(story.assignee)?,
            ApiPath(reference),
            ApiJson(body),
        )
        .await
        .map_err(api)?;
        if confirmed {
            let _ = sportello_web::api::contact::confirm_appointment(
                State(self.state.clone()),
                self.user(story.assignee)?,
                ApiPath(appointment.id),
                Bytes::from_static(b"{\"via\": \"phone\"}"),
            )
            .await
            .map_err(api)?;
        }
        Ok(())
    }

    /// The call of the case's open call-back task.
    pub(super) async fn call(
        &mut self,
        story: &Story,
        reference: &str,
        outcome: &str,
    ) -> anyhow::Result<()> {
        let case = self.state.store.get_case(reference).await.map_err(store)?;
        let Some(task) = case
            .timeline
            .iter()
            .rev()
            .find(|e| e.kind == "call_task_opened")
            .and_then(|e| e.detail.get("call_task_id"))
            .and_then(|v| v.as_i64())
        else {
            return Ok(());
        };
        let n = self.next_message();
        let appointment = (outcome == "appointment").then(|| {
            let day = next_working_day(self.clock.now());
            AppointmentBody {
                starts_at: day.with_timezone(&ROME).to_rfc3339(),
                reason: appointment_reason(story, "in_review").to_owned(),
                ..AppointmentBody::default()
            }
        });
        let note = match outcome {
            "reached" => "Spiegato cosa serve: il cittadino lo invierà",
            "not_reached" => "Non risponde",
            _ => "Preferisce portare i documenti di persona",
        };
        let body = LogCallBody {
            outcome: outcome.to_owned(),
            note: Some(note.into()),
            call_id: Some(format!("pbx-{n:06}")),
            appointment,
        };
        let _ = sportello_web::api::contact::log_call(
            State(self.state.clone()),
            self.user(story.assignee)?,
            ApiPath(task),
            ApiJson(body),
        )
        .await
        .map_err(api)?;
        Ok(())
    }

    /// A contested fine decided on its evidence: annulled when a permit covered the
    /// transit (or the plate was misread), confirmed otherwise.
    pub(super) async fn decide(&mut self, story: &Story, reference: &str) -> anyhow::Result<()> {
        let Json(evidence) = sportello_web::api::remedy::evidence(
            State(self.state.clone()),
            self.user(story.assignee)?,
            ApiPath(reference.to_owned()),
        )
        .await
        .map_err(api)?;
        let covered = evidence.transits.iter().find_map(|t| t.permit.clone());
        let misread = story.contest.as_ref().is_some_and(|c| c.pick % 4 == 0);
        let action = match covered {
            Some(permit) => Action::Annul {
                reasons: vec![format!(
                    "Veicolo autorizzato: il permesso {permit} era valido al momento del transito"
                )],
            },
            None if misread => Action::Annul {
                reasons: vec![
                    "Errore di lettura della targa: il veicolo ripreso dal varco non è quello sanzionato"
                        .into(),
                ],
            },
            None => Action::Confirm {
                reasons: vec![
                    "Nessun permesso valido per il varco al momento del transito".into(),
                ],
            },
        };
        self.act(story.assignee, reference, &action, None).await
    }

    /// What a contested fine is about: the plate of a lasting permit issued days before
    /// (when the story says it had one), caught at a gate its permit covers; else a plate
    /// without permit.
    pub(super) fn contested(&self, story: &Story, now: DateTime<Utc>) -> Option<Contested> {
        let contest = story.contest.as_ref()?;
        let lasting = |p: &&Issued| {
            self.state
                .policy
                .category(&p.category)
                .is_some_and(|c| c.validity_days >= 30)
        };
        let eligible: Vec<&Issued> = self
            .issued
            .iter()
            .filter(|p| p.from < now - Duration::days(4))
            .filter(lasting)
            .collect();
        let permit = (contest.permitted && !eligible.is_empty())
            .then(|| eligible[contest.pick % eligible.len()]);
        let plate = permit.map_or(contest.plate.clone(), |p| p.plate.clone());
        let category = permit.and_then(|p| self.state.policy.category(&p.category));
        let policy = &self.state.policy;
        let mut day = now - Duration::days(2);
        let mut found = None;
        for _ in 0..10 {
            let local = day
                .with_timezone(&ROME)
                .date_naive()
                .and_hms_opt(10, 30, 0)
                .and_then(|t| t.and_local_timezone(ROME).earliest());
            if let Some(at) = local.map(|t| t.with_timezone(&Utc))
                && permit.is_none_or(|p| at > p.from)
            {
                let (weekday, minute) = policy.local(&at);
                let zone = policy.zones.iter().find(|z| {
                    let active = z.active.is_empty()
                        || sportello_domain::ztl::policy::any_window(&z.active, weekday, minute);
                    let covered = category.is_none_or(|c| {
                        c.covers(&z.id)
                            && (c.windows.is_empty()
                                || sportello_domain::ztl::policy::any_window(
                                    &c.windows, weekday, minute,
                                ))
                    });
                    active && covered && !z.gates.is_empty()
                });
                if let Some(zone) = zone {
                    found = Some((zone.gates[0].clone(), at));
                    break;
                }
            }
            day -= Duration::days(1);
        }
        let (gate, at) = found.unwrap_or_else(|| {
            let gate = policy
                .zones
                .iter()
                .find_map(|z| z.gates.first().cloned())
                .unwrap_or_default();
            (gate, now - Duration::days(2))
        });
        let transit = ContestedTransit {
            transit_id: format!("T{}", at.with_timezone(&ROME).format("%Y%m%d%H%M%S")),
            gate,
            timestamp: at.with_timezone(&ROME).to_rfc3339(),
        };
        Some(Contested {
            plate,
            permit: permit.map(|p| p.number.clone()),
            transits: vec![transit],
        })
    }
}

/// The plate, the permit the citizen names and the transits of a contested fine.
#[derive(Debug, Clone)]
pub(super) struct Contested {
    /// The plate fined.
    pub plate: String,
    /// The permit the citizen says covered the transit.
    pub permit: Option<String>,
    /// The transits contested.
    pub transits: Vec<ContestedTransit>,
}

/// What the citizen says about the contested fine.
pub(super) fn contest_note(story: &Story) -> &'static str {
    match story.contest.as_ref().map(|c| c.permitted) {
        Some(true) => "Il veicolo ha un permesso valido per la zona.",
        _ => "La targa letta dal varco non sembra corrispondere al mio veicolo.",
    }
}

/// When and where a contested transit was, as a citizen writes it.
pub(super) fn transit_day(transit: &ContestedTransit) -> String {
    let when = DateTime::parse_from_rfc3339(&transit.timestamp)
        .map(|t| t.format("%d/%m/%Y alle %H:%M").to_string())
        .unwrap_or_default();
    format!("del {when} al varco {}", transit.gate)
}

fn appointment_reason(story: &Story, status: &str) -> &'static str {
    match story.case_type {
        "cude" if status == "issued" => "Ritirare il contrassegno CUDE e il permesso stampato",
        _ if status == "issued" => "Ritirare il permesso stampato",
        "cude" => "Presentare il contrassegno CUDE originale e un documento d'identità",
        _ => "Portare la carta di circolazione originale",
    }
}

/// 10:00 in Rome on the next working day (Monday to Friday) after `now`.
fn next_working_day(now: DateTime<Utc>) -> DateTime<Utc> {
    let mut day = now.with_timezone(&ROME).date_naive() + Duration::days(1);
    while day.weekday().number_from_monday() > 5 {
        day += Duration::days(1);
    }
    day.and_hms_opt(10, 0, 0)
        .and_then(|t| t.and_local_timezone(ROME).earliest())
        .map_or(now + Duration::days(1), |t| t.with_timezone(&Utc))
}
