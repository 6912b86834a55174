//! What happens in the demo office, decided before anything is replayed: every case's
//! citizen, channel, request and the steps the office and the citizen take, each at its
//! instant. Only the seeded generator decides, so every start tells the same story; the
//! instants are offsets from the start's "now", never calendar dates.

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sportello_domain::case::Channel;
use sportello_domain::workflow::Action;

use sportello_app::remedy::ContestedTransit;

use super::people::{Person, office_hours, pick, plate};

/// Cases in the six months.
const CASES: usize = 300;
/// One case in this many arrives by fax: the one in the middle of the six months.
const FAX_EVERY: usize = 300;
/// How far back the story starts.
pub(super) const SPAN_DAYS: i64 = 182;

/// The operators who work the cases.
pub(super) const OPERATORS: &[(&str, &str)] = &[
    ("operatore", "Giulia Verdi"),
    ("l.neri", "Luca Neri"),
    ("s.gallo", "Sara Gallo"),
];

/// One case, from the citizen's first contact to where it stands now.
#[derive(Debug, Clone)]
pub(super) struct Story {
    /// `ztl_permit`, `cude` or `seg`.
    pub case_type: &'static str,
    /// How it reaches the office.
    pub channel: Channel,
    /// Who asks.
    pub person: Person,
    /// Whether the citizen gives an e-mail address at the counter, on the phone or online
    /// (those who do not are reached by phone).
    pub gives_email: bool,
    /// Subject of the request.
    pub subject: &'static str,
    /// The permit category asked (an id of the built-in policy; another policy's closest
    /// category is used at replay).
    pub category: &'static str,
    /// The plates of the request.
    pub plates: Vec<String>,
    /// Another car the citizen uses once (a CUDE holder's temporary plate).
    pub spare_plate: String,
    /// A document the request lacks at first, asked for by an integration request.
    pub missing: Option<&'static str>,
    /// Whether the citizen sends the application form as a PDF.
    pub form: bool,
    /// The operator who works it.
    pub assignee: &'static str,
    /// A contested fine's plate and fine number; whether it aims at a permitted plate.
    pub contest: Option<Contest>,
    /// What happens, in time order.
    pub steps: Vec<(DateTime<Utc>, Step)>,
}

/// What a contested fine is about.
#[derive(Debug, Clone)]
pub(super) struct Contest {
    /// Whether the fined vehicle had a permit (the plate is then one already issued).
    pub permitted: bool,
    /// Which issued permit, as an index into those issued so far.
    pub pick: usize,
    /// The plate when it had none.
    pub plate: String,
    /// The fine's number.
    pub fine: String,
}

/// One step of a story.
#[derive(Debug, Clone)]
pub(super) enum Step {
    /// The request arrives (first step of every story).
    Arrive,
    /// An operator records what a request sent by message asks (category, plates,
    /// documents, or a contested fine's plate and transits) in the case's fields.
    RecordRequest,
    /// A workflow action, through the API's action function.
    Act(Action),
    /// The citizen answers on their channel, quoting the case (what was missing, or their
    /// observations): the message attaches to the case and resumes its clock.
    Reply,
    /// The operator notes that the documents are now complete.
    RecordDocuments,
    /// A contested fine is decided on its evidence: annulled when the vehicle had a
    /// permit (or the plate was misread), confirmed otherwise.
    Decide,
    /// A CUDE holder communicates the car used today.
    TemporaryPlate,
    /// The citizen writes again about the case.
    FollowUp,
    /// An operator asks for the citizen to be called back.
    AskCallback,
    /// The call of the case's open call-back task: `reached`, `not_reached` or
    /// `appointment`.
    Call(&'static str),
    /// An appointment at the counter is proposed for this instant; confirmed by phone
    /// when the flag is set.
    Appointment(DateTime<Utc>, bool),
}

const SUBJECTS_ZTL: &[(&str, &str)] = &[
    ("Permesso ZTL residenti", "residenti"),
    ("Rinnovo permesso residenti", "residenti"),
    ("Permesso carico e scarico", "carico_scarico"),
    ("Permesso medico in visita domiciliare", "medici"),
    ("Permesso giornaliero lavori edili", "giornaliero"),
    ("Permesso dimoranti", "dimoranti"),
    ("Sostituzione targa su permesso", "residenti"),
];
const SUBJECTS_CUDE: &[&str] = &[
    "Rilascio contrassegno CUDE",
    "Rinnovo contrassegno CUDE",
    "Accesso ZTL con contrassegno CUDE",
];
const SUBJECTS_SEG: &[&str] = &[
    "Contestazione verbale varco ZTL",
    "Transito autorizzato sanzionato",
    "Segnalazione errore lettura targa",
];

/// The whole story of the office up to `now`, cases in order of arrival.
pub(super) fn write(now: DateTime<Utc>) -> Vec<Story> {
    let mut rng = StdRng::seed_from_u64(2026);
    let span = Duration::days(SPAN_DAYS);
    let start = now - span;
    let mut received: Vec<DateTime<Utc>> = (0..CASES)
        .map(|i| {
            let base = start + Duration::seconds(span.num_seconds() * i as i64 / CASES as i64);
            office_hours(base + Duration::hours(rng.random_range(0..20)), &mut rng)
        })
        .filter(|t| *t < now - Duration::minutes(5))
        .collect();
    received.sort();
    let mut stories: Vec<Story> = received
        .into_iter()
        .enumerate()
        .map(|(i, at)| story(&mut rng, i, at, now))
        .collect();
    plan_counter_days(&mut rng, &mut stories, now);
    stories
}

fn story(rng: &mut StdRng, i: usize, received: DateTime<Utc>, now: DateTime<Utc>) -> Story {
    let mut case_type = *pick(rng, &[("ztl_permit", 60), ("cude", 25), ("seg", 15)]);
    let channel = if i % FAX_EVERY == FAX_EVERY / 2 {
        // One fax (reading its page takes OCR most of a second).
        case_type = "ztl_permit";
        Channel::Fax
    } else if case_type == "seg" {
        // Fines are contested online, at the counter, or by PEC.
        *pick(
            rng,
            &[
                (Channel::Web, 50),
                (Channel::Counter, 30),
                (Channel::Pec, 20),
            ],
        )
    } else {
        *pick(
            rng,
            &[
                (Channel::Web, 32),
                (Channel::Email, 18),
                (Channel::Pec, 14),
                (Channel::Counter, 12),
                (Channel::Phone, 5),
                (Channel::Post, 4),
                (Channel::Scan, 3),
                (Channel::Whatsapp, 6),
                (Channel::Telegram, 4),
            ],
        )
    };
    if matches!(channel, Channel::Whatsapp | Channel::Telegram) {
        // Chats open permit cases (the webhooks' case type).
        case_type = "ztl_permit";
    }
    let person = Person::draw(rng, i);
    let gives_email = match channel {
        Channel::Counter | Channel::Phone | Channel::Post => rng.random_bool(0.5),
        _ => true,
    };
    let (subject, category) = match case_type {
        "cude" => (
            SUBJECTS_CUDE[rng.random_range(0..SUBJECTS_CUDE.len())],
            "cude",
        ),
        "seg" => (SUBJECTS_SEG[rng.random_range(0..SUBJECTS_SEG.len())], ""),
        _ => SUBJECTS_ZTL[rng.random_range(0..SUBJECTS_ZTL.len())],
    };
    let plates = match category {
        "residenti" if rng.random_bool(0.2) => vec![plate(rng), plate(rng)],
        "" => Vec::new(),
        _ => vec![plate(rng)],
    };
    let spare_plate = plate(rng);
    let contest = (case_type == "seg").then(|| Contest {
        permitted: rng.random_bool(0.55),
        pick: rng.random_range(0..1000),
        plate: plate(rng),
        fine: format!("V/{:05}", rng.random_range(1..99_999)),
    });
    let form = rng.random_range(0..3) == 0;
    let assignee = OPERATORS[rng.random_range(0..OPERATORS.len())].0;
    // Chats and faxes carry no fiscal code: those requests cannot become a permit until
    // the citizen applies properly.
    let can_issue = !matches!(
        channel,
        Channel::Fax | Channel::Whatsapp | Channel::Telegram
    );
    let mut plan = plan_for(case_type, can_issue, rng);
    let missing = plan
        .iter()
        .any(|a| matches!(a, Action::RequestIntegration { .. }))
        .then_some(if case_type == "cude" {
            "contrassegno_cude"
        } else {
            "carta_circolazione"
        });
    if let Some(document) = missing {
        for action in &mut plan {
            if let Action::RequestIntegration { missing } = action {
                *missing = vec![document.to_owned()];
            }
        }
    }
    // About one case in twelve is never assigned: the orphans the office must notice.
    let skip_assign = rng.random_range(0..12) == 0;
    let mut steps: Vec<Step> = vec![Step::Arrive];
    let by_message = matches!(
        channel,
        Channel::Email | Channel::Pec | Channel::Fax | Channel::Whatsapp | Channel::Telegram
    );
    if !skip_assign {
        steps.push(Step::Act(Action::Assign {
            user: assignee.into(),
        }));
    }
    if !(skip_assign && rng.random_bool(0.7)) {
        // Whom the office can write to (by e-mail or PEC), and who gave a phone number.
        let reachable = match channel {
            Channel::Email | Channel::Pec => true,
            Channel::Fax | Channel::Whatsapp | Channel::Telegram => false,
            _ => gives_email,
        };
        let has_phone = !matches!(
            channel,
            Channel::Email | Channel::Pec | Channel::Fax | Channel::Telegram
        );
        for action in plan {
            match action {
                Action::StartReview => {
                    steps.push(Step::Act(Action::StartReview));
                    if by_message && (can_issue || case_type == "seg") {
                        steps.push(Step::RecordRequest);
                    }
                }
                Action::IntegrationReceived | Action::ObservationsReceived
                    if channel != Channel::Fax =>
                {
                    steps.push(Step::Reply);
                    if matches!(action, Action::IntegrationReceived) {
                        steps.push(Step::RecordDocuments);
                    }
                }
                Action::RequestIntegration { .. } | Action::NotifyRejection { .. }
                    if !reachable && has_phone =>
                {
                    // Nobody to write to: the action opens a call-back task; the operator
                    // calls (sometimes twice, sometimes fixing an appointment).
                    steps.push(Step::Act(action));
                    let outcome = *pick(
                        rng,
                        &[("reached", 5), ("not_reached", 2), ("appointment", 2)],
                    );
                    steps.push(Step::Call(outcome));
                    if outcome == "not_reached" {
                        steps.push(Step::Call("reached"));
                    }
                }
                Action::Issue if case_type == "cude" => {
                    steps.push(Step::Act(Action::Issue));
                    if rng.random_bool(0.5) {
                        steps.push(Step::TemporaryPlate);
                    }
                }
                other => steps.push(Step::Act(other)),
            }
        }
        if case_type == "seg" {
            steps.push(Step::Decide);
        }
        if reachable && rng.random_range(0..20) == 0 {
            // The operator wants to talk it through.
            let at = rng.random_range(1..steps.len().max(2));
            steps.insert(at.min(steps.len()), Step::AskCallback);
            steps.insert((at + 1).min(steps.len()), Step::Call("reached"));
        }
    }
    // Now and then the citizen writes again about the case; people on a chat do it often.
    let chat = matches!(channel, Channel::Whatsapp | Channel::Telegram);
    if rng.random_range(0..10) == 0 || chat && rng.random_bool(0.5) {
        steps.push(Step::FollowUp);
    }
    let mut when = received;
    let mut timed = Vec::with_capacity(steps.len());
    for (k, step) in steps.into_iter().enumerate() {
        if k > 0 {
            let hours = match step {
                Step::RecordRequest | Step::RecordDocuments => rng.random_range(1..6),
                Step::Reply | Step::Call(_) => rng.random_range(20..120),
                _ => rng.random_range(4..96),
            };
            when += Duration::hours(hours) + Duration::minutes(rng.random_range(0..60));
        }
        if when >= now - Duration::minutes(1) {
            break;
        }
        timed.push((when, step));
    }
    Story {
        case_type,
        channel,
        person,
        gives_email,
        subject,
        category,
        plates,
        spare_plate,
        missing,
        form,
        assignee,
        contest,
        steps: timed,
    }
}

fn plan_for(case_type: &str, can_issue: bool, rng: &mut StdRng) -> Vec<Action> {
    let list = |s: &str| vec![s.to_owned()];
    if case_type == "seg" {
        // Annulled or confirmed after the review ([`Step::Decide`]).
        return vec![Action::StartReview];
    }
    let mut steps = vec![Action::StartReview];
    if rng.random_bool(0.35) {
        steps.push(Action::RequestIntegration {
            missing: list("carta_circolazione"),
        });
        if rng.random_bool(0.8) {
            steps.push(Action::IntegrationReceived);
        } else {
            return steps;
        }
    }
    match rng.random_range(0..12) {
        0 => {
            steps.push(Action::NotifyRejection {
                reasons: list("Residenza fuori dal perimetro della ZTL"),
            });
            steps.push(Action::ObservationsReceived);
            steps.push(Action::Reject {
                reasons: list(
                    "Le osservazioni non superano il motivo ostativo: residenza fuori ZTL",
                ),
            });
            if rng.random_bool(0.5) {
                steps.push(Action::Close);
            }
        }
        3 => steps.push(Action::NotifyRejection {
            reasons: list("Veicolo non intestato al richiedente"),
        }),
        1 if can_issue => {
            steps.push(Action::NotifyRejection {
                reasons: list("Manca il titolo di disponibilità del veicolo"),
            });
            steps.push(Action::ObservationsReceived);
            steps.extend([Action::Approve, Action::Issue, Action::Close]);
        }
        2 => steps.push(Action::Withdraw),
        _ if can_issue => {
            steps.extend([Action::Approve, Action::Issue]);
            if rng.random_bool(0.6) {
                steps.push(Action::Close);
            }
        }
        // A chat or a fax is an enquiry: answered, then archived.
        _ => steps.push(Action::Withdraw),
    }
    steps
}

/// The counter's agenda around now: a few cases still open get an appointment for today
/// or the next days, proposed a day or two before.
fn plan_counter_days(rng: &mut StdRng, stories: &mut [Story], now: DateTime<Utc>) {
    let today = sportello_domain::calendar::rome_date(now);
    let mut slots: Vec<DateTime<Utc>> = Vec::new();
    for day in 0..4 {
        for minutes in [9 * 60, 9 * 60 + 30, 10 * 60 + 30, 11 * 60 + 15, 12 * 60] {
            let local = (today + Duration::days(day))
                .and_hms_opt(minutes / 60, minutes % 60, 0)
                .and_then(|t| {
                    t.and_local_timezone(sportello_domain::calendar::ROME)
                        .earliest()
                });
            if let Some(local) = local {
                slots.push(local.with_timezone(&Utc));
            }
        }
    }
    let proposed_at = now - Duration::hours(rng.random_range(20..40));
    let mut slot = slots.into_iter().step_by(2);
    for story in stories.iter_mut().rev() {
        // Cases still open then (a decision, a withdrawal or a rejection ends the talk).
        let open_then = story.steps.last().is_some_and(|(at, step)| {
            *at < proposed_at
                && !matches!(
                    step,
                    Step::Act(Action::Close | Action::Withdraw | Action::Reject { .. })
                        | Step::Decide
                )
        });
        if !open_then || story.case_type == "seg" {
            continue;
        }
        let Some(starts_at) = slot.next() else { break };
        let confirmed = rng.random_bool(0.5);
        story
            .steps
            .push((proposed_at, Step::Appointment(starts_at, confirmed)));
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn the_story_is_the_same_at_every_start_and_covers_the_office() {
        let first = write(now());
        let again = write(now());
        assert_eq!(format!("{first:?}"), format!("{again:?}"));
        assert!((250..=300).contains(&first.len()), "{}", first.len());
        let channels: BTreeSet<&str> = first.iter().map(|s| s.channel.as_str()).collect();
        assert_eq!(channels.len(), 10, "{channels:?}");
        let types: BTreeSet<&str> = first.iter().map(|s| s.case_type).collect();
        assert_eq!(types.len(), 3, "{types:?}");
        for story in &first {
            assert!(matches!(story.steps.first(), Some((_, Step::Arrive))));
            assert!(
                story.steps.windows(2).all(|w| w[0].0 <= w[1].0),
                "steps in time order"
            );
            assert!(story.steps.iter().all(|(at, _)| *at < now()));
        }
        let issued = first
            .iter()
            .filter(|s| {
                s.steps
                    .iter()
                    .any(|(_, s)| matches!(s, Step::Act(Action::Issue)))
            })
            .count();
        assert!(issued >= 40, "permits issued: {issued}");
        let today = first
            .iter()
            .flat_map(|s| &s.steps)
            .filter(|(_, s)| {
                matches!(s, Step::Appointment(at, _)
                    if sportello_domain::calendar::rome_date(*at)
                        == sportello_domain::calendar::rome_date(now()))
            })
            .count();
        assert!(today > 0, "appointments at the counter today");
    }
}
