//! The back office's other work in the replay: call-backs asked and calls logged,
//! appointments at the counter, CUDE temporary plates, and contested fines decided on
//! their evidence — each through the use case the API and the pages call.

use chrono::{DateTime, Datelike, Duration, Utc};
use sportello_app::contact::{AppointmentRequest, CallLog};
use sportello_app::remedy::ContestedTransit;
use sportello_domain::calendar::ROME;
use sportello_domain::clock::Clock;
use sportello_domain::workflow::Action;

use super::replay::{Issued, Office, refused, store};
use super::story::{Contested, Story};

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
        let (plate, during) = sportello_app::permits::temporary_plate_of(
            &story.spare_plate,
            None,
            &(now - Duration::hours(2)).with_timezone(&ROME).to_rfc3339(),
            &(now + Duration::hours(8)).with_timezone(&ROME).to_rfc3339(),
        )
        .map_err(refused)?;
        sportello_app::permits::add_temporary(
            &self.state,
            number.trim(),
            plate,
            during,
            self.login(story.assignee)?,
        )
        .await
        .map_err(refused)?;
        Ok(())
    }

    /// An operator asks for the citizen to be called back.
    pub(super) async fn ask_callback(&mut self, story: &Story, i: usize) -> anyhow::Result<()> {
        let reference = self.reference(i)?;
        sportello_app::contact::open_callback(
            &self.state,
            &reference,
            Some("Chiarire al telefono i documenti da presentare"),
            self.login(story.assignee)?,
        )
        .await
        .map_err(refused)?;
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
        let request = AppointmentRequest {
            starts_at: starts_at.with_timezone(&ROME).to_rfc3339(),
            reason: appointment_reason(story, &status).to_owned(),
            ..AppointmentRequest::default()
        };
        let actor = self.login(story.assignee)?;
        let appointment =
            sportello_app::contact::propose_appointment(&self.state, actor, &reference, &request)
                .await
                .map_err(refused)?;
        if confirmed {
            sportello_app::contact::confirm_appointment(
                &self.state,
                actor,
                appointment.id,
                Some("phone"),
            )
            .await
            .map_err(refused)?;
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
            AppointmentRequest {
                starts_at: day.with_timezone(&ROME).to_rfc3339(),
                reason: appointment_reason(story, "in_review").to_owned(),
                ..AppointmentRequest::default()
            }
        });
        let note = match outcome {
            "reached" => "Spiegato cosa serve: il cittadino lo invierà",
            "not_reached" => "Non risponde",
            _ => "Preferisce portare i documenti di persona",
        };
        let log = CallLog {
            outcome: outcome.to_owned(),
            note: Some(note.into()),
            call_id: Some(format!("pbx-{n:06}")),
            appointment,
        };
        sportello_app::contact::log_call(&self.state, self.login(story.assignee)?, task, log)
            .await
            .map_err(refused)?;
        Ok(())
    }

    /// A contested fine decided on its evidence: annulled when a permit covered the
    /// transit (or the plate was misread), confirmed otherwise.
    pub(super) async fn decide(&mut self, story: &Story, reference: &str) -> anyhow::Result<()> {
        let evidence =
            sportello_app::remedy::evidence(&self.state, reference, self.login(story.assignee)?)
                .await
                .map_err(refused)?;
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
