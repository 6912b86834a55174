//! The story replayed through the office's real paths, in time order on a clock stepped
//! to each instant: requests through the use cases the portal and the API call and the
//! intake adapters; every action through the action use case (permits issued with
//! their PDFs, annulments with their letters, messages to citizens queued with them);
//! messages sent by the real sending worker; PEC receipts back through intake; the
//! office's daily ticks (suspensions, expiries, reminders, call-backs).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use anyhow::{Context, anyhow};
use chrono::{DateTime, Duration, NaiveTime, Utc};
use sportello_app::AppError;
use sportello_app::cases::ActionRequest;
use sportello_domain::calendar::{ROME, rome_date};
use sportello_domain::case::Channel;
use sportello_domain::clock::{Clock, FixedClock};
use sportello_domain::workflow::Action;
use sportello_intake::email::{EmailSource, FaxCallerPatterns};
use sportello_intake::pipeline::Limits;
use sportello_outbound::worker::Worker;
use sportello_store::users::AuthUser;
use sportello_web::AppState;
use sportello_web::error::ApiError;

use super::messages::{Certified, FAX_GATEWAY, OFFICE_PEC, PecProvider};
use super::smtp_sink::SmtpSink;
use super::story::{Contested, Step, Story};

/// A request the office refused (a 4xx of the API): the story of that case stops there,
/// the demo goes on.
#[derive(Debug)]
pub(super) struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// An API error as the demo sees it: refusals are [`Refused`], the rest is a failure.
pub(super) fn api(e: ApiError) -> anyhow::Error {
    match e {
        // The demo runs on the operator's console: the cause, not the API's discreet words.
        ApiError::Internal(cause) | ApiError::Unavailable(cause) => anyhow!("{cause}"),
        other => Refused(other.detail()).into(),
    }
}

/// A use case's error as the demo sees it: refusals are [`Refused`], in the API's words.
pub(super) fn refused(e: AppError) -> anyhow::Error {
    api(ApiError::from(e))
}

/// A store error as the demo sees it.
pub(super) fn store(e: sportello_store::StoreError) -> anyhow::Error {
    api(ApiError::from(e))
}

/// What happens next on the timeline.
#[derive(Debug)]
struct Event {
    at: DateTime<Utc>,
    seq: u64,
    what: What,
}

/// What an event is.
#[derive(Debug)]
enum What {
    /// A step of a story: (story, step) by position.
    Story(usize, usize),
    /// The office's evening: the minute ticks of `serve`, once a day.
    Evening,
    /// The PEC provider's receipt of a message the office sent.
    Receipt {
        /// `accettazione` or `avvenuta-consegna`.
        kind: &'static str,
        /// The Message-ID of the message sent.
        message_id: String,
        /// Its recipient.
        recipient: String,
        /// Its subject.
        subject: String,
    },
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A permit issued during the replay, for fines contested later.
#[derive(Debug, Clone)]
pub(super) struct Issued {
    /// Its number.
    pub number: String,
    /// Its (first) plate.
    pub plate: String,
    /// Its category.
    pub category: String,
    /// When it was issued.
    pub from: DateTime<Utc>,
}

/// The office during the replay.
pub(super) struct Office {
    /// The application, on the demo's clock, with the seeding transports and secrets.
    pub state: AppState,
    /// The demo's clock.
    pub clock: FixedClock,
    /// The sending worker.
    pub worker: Worker,
    /// Where e-mail and PEC are delivered.
    pub sink: SmtpSink,
    /// The citizens' and the office's PEC provider.
    pub provider: PecProvider,
    /// Limits on what a message may bring.
    pub limits: Limits,
    /// The staff, by login.
    pub users: HashMap<String, AuthUser>,
    /// The mailbox the demo's mail arrives in (its channel and case type set per message):
    /// the fax server among its senders, the caller's number where the default patterns
    /// find it (compiled once).
    pub mailbox: EmailSource,
    /// Each story's case, once it has arrived.
    pub references: Vec<Option<String>>,
    /// Each contested fine's plate and transits.
    pub contests: Vec<Option<Contested>>,
    /// The permits issued so far.
    pub issued: Vec<Issued>,
    queue: BinaryHeap<Reverse<Event>>,
    seq: u64,
    messages: u64,
}

impl Office {
    /// The office before the first story: `state` on the demo's `clock`, its `worker`
    /// sending to `sink`, the citizens' PEC `provider`, the staff `users`.
    pub fn new(
        state: AppState,
        clock: FixedClock,
        worker: Worker,
        sink: SmtpSink,
        provider: PecProvider,
        users: HashMap<String, AuthUser>,
    ) -> anyhow::Result<Office> {
        let mut mailbox =
            EmailSource::from_config(&state.config, None, None).map_err(|e| anyhow!(e))?;
        mailbox.fax_gateway_senders = vec![FAX_GATEWAY.to_owned()];
        mailbox.fax_caller = FaxCallerPatterns::default();
        mailbox.pec_trust_anchors = None;
        Ok(Office {
            mailbox,
            limits: Limits::from_config(&state.config),
            state,
            clock,
            worker,
            sink,
            provider,
            users,
            references: Vec::new(),
            contests: Vec::new(),
            issued: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            messages: 0,
        })
    }

    fn schedule(&mut self, at: DateTime<Utc>, what: What) {
        self.seq += 1;
        self.queue.push(Reverse(Event {
            at,
            seq: self.seq,
            what,
        }));
    }

    /// Replays `stories` and the office's evenings from `start` up to `now`.
    pub async fn replay(
        &mut self,
        stories: &[Story],
        start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.references = vec![None; stories.len()];
        self.contests = vec![None; stories.len()];
        for (i, story) in stories.iter().enumerate() {
            for (k, (at, _)) in story.steps.iter().enumerate() {
                self.schedule(*at, What::Story(i, k));
            }
        }
        let evening = NaiveTime::from_hms_opt(18, 30, 0).unwrap_or_default();
        let mut day = rome_date(start);
        while day <= rome_date(now) {
            if let Some(at) = day.and_time(evening).and_local_timezone(ROME).earliest() {
                self.schedule(at.with_timezone(&Utc), What::Evening);
            }
            day += Duration::days(1);
        }
        let mut stuck = vec![false; stories.len()];
        while let Some(Reverse(event)) = self.queue.pop() {
            if event.at > now {
                break;
            }
            self.clock.set(event.at);
            // What the office writes is queued by actions, appointments, calls and the
            // evening's reminders and acknowledgements; the worker sends it at once.
            let writes = match &event.what {
                What::Story(i, k) => matches!(
                    stories[*i].steps[*k].1,
                    Step::Act(
                        Action::RequestIntegration { .. }
                            | Action::NotifyRejection { .. }
                            | Action::Reject { .. }
                            | Action::Issue
                    ) | Step::Decide
                        | Step::Appointment(..)
                        | Step::Call("appointment")
                ),
                What::Evening => true,
                What::Receipt { .. } => false,
            };
            match event.what {
                What::Story(i, k) if !stuck[i] => {
                    let (_, step) = &stories[i].steps[k];
                    if let Err(e) = self.step(&stories[i], i, step).await {
                        if e.downcast_ref::<Refused>().is_none() {
                            return Err(e.context(format!("demo case {i}, {step:?}")));
                        }
                        tracing::warn!(case = ?self.references[i], ?step, error = %e, "demo step refused");
                        // A refused arrival or action ends the case's story; a refused
                        // call or message does not.
                        stuck[i] = matches!(step, Step::Arrive | Step::Act(_) | Step::Decide);
                    }
                }
                What::Story(..) => {}
                What::Evening => self.evening().await?,
                What::Receipt {
                    kind,
                    message_id,
                    recipient,
                    subject,
                } => {
                    self.receipt(kind, &message_id, &recipient, &subject)
                        .await?
                }
            }
            if writes {
                self.send().await?;
            }
        }
        Ok(())
    }

    /// The worker sends what is due now; the PEC provider will answer each PEC with its
    /// acceptance and, a little later, its delivery receipt.
    async fn send(&mut self) -> anyhow::Result<()> {
        self.worker
            .drain()
            .await
            .context("sending the demo's messages")?;
        let now = self.clock.now();
        // The worker sends several at once: the receipts follow the recipients' order,
        // not the order the server happened to take the messages in.
        let mut delivered = self.sink.take();
        delivered.sort_by(|a, b| (&a.to, &a.data).cmp(&(&b.to, &b.data)));
        for delivered in delivered {
            let Some(message) = mail_parser::MessageParser::default().parse(&delivered.data) else {
                continue;
            };
            let from_pec = message
                .from()
                .and_then(|f| f.first())
                .and_then(|a| a.address())
                .is_some_and(|a| a.eq_ignore_ascii_case(OFFICE_PEC));
            let (Some(id), Some(recipient)) = (message.message_id(), delivered.to.first()) else {
                continue;
            };
            if !from_pec {
                continue;
            }
            let subject = message.subject().unwrap_or_default().to_owned();
            let (id, recipient) = (id.to_owned(), recipient.clone());
            let minutes = 2 + (recipient.len() % 11) as i64;
            self.schedule(
                now + Duration::seconds(40),
                What::Receipt {
                    kind: "accettazione",
                    message_id: id.clone(),
                    recipient: recipient.clone(),
                    subject: subject.clone(),
                },
            );
            self.schedule(
                now + Duration::minutes(minutes),
                What::Receipt {
                    kind: "avvenuta-consegna",
                    message_id: id,
                    recipient,
                    subject,
                },
            );
        }
        Ok(())
    }

    /// The provider's receipt, through the e-mail adapter like any PEC.
    async fn receipt(
        &mut self,
        kind: &'static str,
        message_id: &str,
        recipient: &str,
        subject: &str,
    ) -> anyhow::Result<()> {
        let raw = self.provider.receipt(&Certified {
            kind,
            sender: OFFICE_PEC,
            recipient,
            subject,
            msgid: message_id,
            at: self.clock.now(),
        })?;
        self.ingest_mail(raw, Channel::Pec, "ztl_permit").await?;
        Ok(())
    }

    /// What `serve` does every minute, done once each evening: lapsed suspensions, permit
    /// expiries, acknowledgements, undelivered PEC, reminders and call-backs.
    async fn evening(&mut self) -> anyhow::Result<()> {
        let store = &self.state.store;
        store.sla_tick().await?;
        store.mark_expired_permits().await?;
        sportello_app::ticks::contact(&self.state).await;
        Ok(())
    }

    /// The login of a demo user, who must exist.
    pub(super) fn login<'a>(&self, login: &'a str) -> anyhow::Result<&'a str> {
        self.users
            .contains_key(login)
            .then_some(login)
            .ok_or_else(|| anyhow!("demo user {login} missing"))
    }

    pub(super) fn reference(&self, i: usize) -> anyhow::Result<String> {
        self.references[i]
            .clone()
            .ok_or_else(|| anyhow!("demo case {i} has no reference"))
    }

    pub(super) fn next_message(&mut self) -> u64 {
        self.messages += 1;
        self.messages
    }

    async fn step(&mut self, story: &Story, i: usize, step: &Step) -> anyhow::Result<()> {
        match step {
            Step::Arrive => {
                let reference = self.arrive(story, i).await?;
                self.references[i] = Some(reference);
            }
            Step::RecordRequest => {
                let reference = self.reference(i)?;
                let fields = match &self.contests[i] {
                    Some(c) => serde_json::json!({
                        "plate": c.plate, "country": "IT", "transits": c.transits,
                        "fine": story.contest.as_ref().map(|c| c.fine.clone()), "permit": c.permit,
                    }),
                    None => self.request_fields(story, story.missing),
                };
                self.patch(story, &reference, fields).await?;
            }
            Step::RecordDocuments => {
                let reference = self.reference(i)?;
                let documents = self.request_fields(story, None)["documents"].clone();
                self.patch(
                    story,
                    &reference,
                    serde_json::json!({ "documents": documents }),
                )
                .await?;
            }
            Step::Act(action) => {
                let reference = self.reference(i)?;
                let actor = match action {
                    Action::Assign { .. } => "supervisore",
                    _ => story.assignee,
                };
                let note = match action {
                    Action::Withdraw if story.case_type == "ztl_permit" && !can_apply(story) => {
                        Some(
                            "Informazioni fornite al cittadino, che presenterà domanda dal portale",
                        )
                    }
                    Action::Withdraw => Some("Domanda ritirata dal richiedente"),
                    Action::IntegrationReceived => Some("Documenti consegnati allo sportello"),
                    Action::ObservationsReceived => Some("Osservazioni presentate allo sportello"),
                    _ => None,
                };
                self.act(actor, &reference, action, note).await?;
                if matches!(action, Action::Issue) {
                    self.note_permit(story, &reference).await?;
                }
            }
            Step::Decide => {
                let reference = self.reference(i)?;
                self.decide(story, &reference).await?;
            }
            Step::Reply => self.reply(story, i).await?,
            Step::FollowUp => self.follow_up(story, i).await?,
            Step::TemporaryPlate => self.temporary_plate(story, i).await?,
            Step::AskCallback => self.ask_callback(story, i).await?,
            Step::Call(outcome) => {
                let reference = self.reference(i)?;
                self.call(story, &reference, outcome).await?;
            }
            Step::Appointment(starts_at, confirmed) => {
                self.appointment(story, i, *starts_at, *confirmed).await?
            }
        }
        Ok(())
    }

    /// The permit fields of a request (the category of the policy in force closest to the
    /// one asked, the plates, the documents given: all the category wants but `missing`).
    pub(super) fn request_fields(&self, story: &Story, missing: Option<&str>) -> serde_json::Value {
        let policy = &self.state.policy;
        let category = policy
            .category(story.category)
            .or_else(|| {
                policy
                    .categories
                    .iter()
                    .find(|c| c.person_bound == (story.case_type == "cude"))
            })
            .or_else(|| policy.categories.first());
        let (id, documents) = category.map_or((story.category, Vec::new()), |c| {
            let documents: Vec<String> = c
                .documents
                .iter()
                .filter(|d| Some(d.as_str()) != missing)
                .cloned()
                .collect();
            (c.id.as_str(), documents)
        });
        serde_json::json!({ "category": id, "plates": story.plates, "documents": documents })
    }

    pub(super) async fn patch(
        &self,
        story: &Story,
        reference: &str,
        fields: serde_json::Value,
    ) -> anyhow::Result<()> {
        sportello_app::cases::patch_fields(
            &self.state,
            reference,
            fields,
            self.login(story.assignee)?,
        )
        .await
        .map_err(refused)?;
        Ok(())
    }

    pub(super) async fn act(
        &self,
        actor: &str,
        reference: &str,
        action: &Action,
        note: Option<&str>,
    ) -> anyhow::Result<()> {
        let list = |v: &Vec<String>| Some(v.clone());
        let request = ActionRequest {
            action: Some(action.name().to_owned()),
            note: note.map(str::to_owned),
            user: match action {
                Action::Assign { user } => Some(user.clone()),
                _ => None,
            },
            missing: match action {
                Action::RequestIntegration { missing } => list(missing),
                _ => None,
            },
            reasons: match action {
                Action::NotifyRejection { reasons }
                | Action::Reject { reasons }
                | Action::Confirm { reasons }
                | Action::Annul { reasons } => list(reasons),
                _ => None,
            },
            // Actions that tell the citizen nothing have no notice to compose.
            notify: matches!(
                action,
                Action::Assign { .. }
                    | Action::StartReview
                    | Action::IntegrationReceived
                    | Action::ObservationsReceived
                    | Action::Close
                    | Action::Withdraw
                    | Action::Reopen
            )
            .then_some(false),
            notify_channel: None,
            lang: None,
        };
        sportello_app::cases::perform_action(&self.state, self.login(actor)?, reference, request)
            .await
            .map_err(refused)?;
        Ok(())
    }

    /// Remembers a permit just issued, for the fines contested later.
    async fn note_permit(&mut self, story: &Story, reference: &str) -> anyhow::Result<()> {
        if let (Some(number), Some(plate)) = (
            self.state
                .store
                .permit_issued_for_case(reference)
                .await
                .map_err(store)?,
            story.plates.first(),
        ) {
            let category = self.request_fields(story, None)["category"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            self.issued.push(Issued {
                number,
                plate: plate.clone(),
                category,
                from: self.clock.now(),
            });
        }
        Ok(())
    }
}

/// Whether the case's citizen could get a permit from this request (not a chat or a fax).
fn can_apply(story: &Story) -> bool {
    !matches!(
        story.channel,
        Channel::Fax | Channel::Whatsapp | Channel::Telegram
    )
}
