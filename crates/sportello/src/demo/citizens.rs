//! The citizens' side of the replay: requests and answers arriving through the use cases
//! the portal and the API call, the e-mail adapter (e-mail, PEC, fax) and the
//! WhatsApp and Telegram webhooks, signed as their senders sign them.

use anyhow::{Context, anyhow};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use bytes::Bytes;
use chrono::Duration;
use hmac::{Hmac, Mac};
use sportello_app::cases::{CaseRequest, CitizenRequest};
use sportello_app::remedy::Contest;
use sportello_domain::calendar::ROME;
use sportello_domain::case::Channel;
use sportello_domain::clock::Clock;
use sportello_domain::workflow::Action;
use sportello_intake::pipeline::ingest_email;

use super::fax_page::fax_page;
use super::messages::{
    Mail, OFFICE_EMAIL, OFFICE_PEC, Part, fax_to_mail, telegram_message, whatsapp_message,
};
use super::replay::{Office, api, refused, store};
use super::story::Story;
use super::story::{contest_note, transit_day};

impl Office {
    /// Opens the case the way its channel opens one; its reference.
    pub(super) async fn arrive(&mut self, story: &Story, i: usize) -> anyhow::Result<String> {
        let p = &story.person;
        let now = self.clock.now();
        self.contests[i] = self.contested(story, now);
        let fiscal_code = p.fiscal_code.as_ref().map(|f| f.as_str().to_owned());
        let citizen = CitizenRequest {
            fiscal_code: fiscal_code.clone(),
            name: Some(p.name.clone()),
            email: story.gives_email.then(|| p.email.clone()),
            phone: Some(p.phone_as_written()),
            ..CitizenRequest::default()
        };
        let description = format!("{} - richiesta di {}.", story.subject, p.name);
        let reference = match story.channel {
            Channel::Email | Channel::Pec | Channel::Fax => self.arrive_by_mail(story, i).await?,
            Channel::Whatsapp => {
                let text = format!(
                    "Buongiorno, sono {}. Vorrei informazioni per: {}. La targa è {}.",
                    p.name,
                    story.subject.to_lowercase(),
                    story.plates.join(" e ")
                );
                self.whatsapp(story, &text).await?
            }
            Channel::Telegram => {
                let text = format!(
                    "Salve, come funziona la pratica per {}? Targa {}.",
                    story.subject.to_lowercase(),
                    story.plates.join(", ")
                );
                self.telegram(story, i, &text).await?
            }
            _ if story.case_type == "seg" => {
                let Some(contested) = self.contests[i].clone() else {
                    return Err(anyhow!("demo contest {i} without transits"));
                };
                let plate = contested.plate;
                let fine = story.contest.as_ref().map(|c| c.fine.clone());
                if story.channel == Channel::Web {
                    // The portal's /contesta.
                    let request = CaseRequest {
                        case_type: Some("seg".into()),
                        subject: Some(format!(
                            "Contestazione verbale {}, targa {plate}",
                            fine.clone().unwrap_or_default()
                        )),
                        description: Some(contest_note(story).into()),
                        channel: Some("web".into()),
                        citizen: Some(citizen),
                        fields: Some(serde_json::json!({
                            "plate": plate, "country": "IT", "fine": fine,
                            "transits": contested.transits, "permit": contested.permit,
                        })),
                    };
                    sportello_app::cases::create(&self.state, request, "portale", true)
                        .await
                        .map_err(refused)?
                        .summary
                        .reference
                } else {
                    let contest = Contest {
                        plate,
                        country: None,
                        transits: contested.transits,
                        fine,
                        permit: contested.permit,
                        note: Some(contest_note(story).into()),
                        channel: Some(story.channel.as_str().into()),
                        citizen: Some(citizen),
                    };
                    sportello_app::remedy::contest(&self.state, contest, "operatore")
                        .await
                        .map_err(refused)?
                        .summary
                        .reference
                }
            }
            channel => {
                let request = CaseRequest {
                    case_type: Some(story.case_type.into()),
                    subject: Some(story.subject.into()),
                    description: Some(description),
                    channel: Some(channel.as_str().into()),
                    citizen: Some(citizen),
                    fields: Some(self.request_fields(story, story.missing)),
                };
                let (reference, actor) = if channel == Channel::Web {
                    // The portal's /domanda.
                    let case = sportello_app::cases::create(&self.state, request, "portale", true)
                        .await
                        .map_err(refused)?;
                    (case.summary.reference, "portale")
                } else {
                    let case =
                        sportello_app::cases::create(&self.state, request, "operatore", true)
                            .await
                            .map_err(refused)?;
                    (case.summary.reference, "operatore")
                };
                if story.form {
                    let pdf = application_form(story, &reference)?;
                    let size = pdf.len() as u64;
                    let sha = self.state.blobs.put(Bytes::from(pdf)).await?;
                    self.state
                        .store
                        .add_document(
                            &reference,
                            &sha,
                            size,
                            "domanda.pdf",
                            "application/pdf",
                            actor,
                        )
                        .await?;
                }
                reference
            }
        };
        Ok(reference)
    }

    /// An e-mail, a PEC or a fax that opens a case.
    pub(super) async fn arrive_by_mail(
        &mut self,
        story: &Story,
        i: usize,
    ) -> anyhow::Result<String> {
        let p = &story.person;
        let now = self.clock.now();
        let n = self.next_message();
        let fiscal_code = p.fiscal_code.as_ref().map_or("", |f| f.as_str());
        let raw = match story.channel {
            Channel::Fax => {
                let mut lines = vec![
                    "SPETT. UFFICIO PERMESSI ZTL".to_owned(),
                    String::new(),
                    format!("OGGETTO: {}", story.subject.to_uppercase()),
                    format!("RICHIEDENTE: {}", p.name.to_uppercase()),
                ];
                if !story.plates.is_empty() {
                    lines.push(format!("TARGA: {}", story.plates.join(", ")));
                }
                lines.push(format!(
                    "DATA: {}",
                    now.with_timezone(&ROME).format("%d/%m/%Y")
                ));
                lines.push(String::new());
                lines.push("FIRMA: ...............".to_owned());
                let page = fax_page(&lines).context("drawing a fax page")?;
                fax_to_mail(&p.fax, &format!("fax.{n}@fax.comune.example.it"), now, page)
            }
            channel => {
                let (subject, body) = match &self.contests[i] {
                    Some(contested) => (
                        format!(
                            "Contestazione verbale {}",
                            story.contest.as_ref().map_or("", |c| c.fine.as_str())
                        ),
                        format!(
                            "Spett.le Ufficio,\ncontesto il verbale per il transito del veicolo targato {} \
                             {}.\n{}\n\nCodice fiscale {fiscal_code}.\n\n{}\n",
                            contested.plate,
                            contested
                                .transits
                                .first()
                                .map(transit_day)
                                .unwrap_or_default(),
                            contest_note(story),
                            p.name
                        ),
                    ),
                    None => (
                        story.subject.to_owned(),
                        format!(
                            "Spett.le Ufficio,\nchiedo il rilascio di: {}.\nTarga: {}.\nCodice fiscale {fiscal_code}.\n\
                             Allego la documentazione.\n\nCordiali saluti,\n{}\n",
                            story.subject.to_lowercase(),
                            story.plates.join(", "),
                            p.name
                        ),
                    ),
                };
                let mut parts = Vec::new();
                if story.form {
                    parts.push(Part {
                        filename: "domanda.pdf".into(),
                        media_type: "application/pdf",
                        bytes: application_form(story, "")?,
                    });
                }
                let pec = channel == Channel::Pec;
                let (from, to) = if pec {
                    (p.pec.as_str(), OFFICE_PEC)
                } else {
                    (p.email.as_str(), OFFICE_EMAIL)
                };
                let message_id = format!("demo.{n}@{}", from.rsplit('@').next().unwrap_or("x"));
                let mail = Mail {
                    from_name: &p.name,
                    from,
                    to,
                    subject: &subject,
                    body: &body,
                    message_id: &message_id,
                    in_reply_to: None,
                    date: now - Duration::minutes(3),
                    parts: &parts,
                }
                .render();
                if pec {
                    self.provider
                        .envelope(from, &subject, &message_id, &mail, now)?
                } else {
                    mail
                }
            }
        };
        let outcome = self
            .ingest_mail(raw, story.channel, story.case_type)
            .await?;
        outcome
            .case
            .clone()
            .ok_or_else(|| anyhow!("demo message {n} opened no case: {outcome:?}"))
    }

    /// Runs a raw message through the e-mail adapter, as `sportello ingest` does for a
    /// mailbox of that channel.
    pub(super) async fn ingest_mail(
        &self,
        raw: Vec<u8>,
        channel: Channel,
        case_type: &str,
    ) -> anyhow::Result<sportello_store::intake::IntakeOutcome> {
        let mut source = self.mailbox.clone();
        source.channel = channel;
        source.default_case_type = case_type.to_owned();
        let name = format!("demo/{}", channel.as_str());
        ingest_email(
            &self.state.store,
            &self.state.blobs,
            Bytes::from(raw),
            &name,
            &source,
            &self.state.ocr,
            self.limits,
        )
        .await
        .map_err(store)
    }

    /// A WhatsApp message through the webhook (signed as Meta signs it); the case it went to.
    pub(super) async fn whatsapp(&mut self, story: &Story, text: &str) -> anyhow::Result<String> {
        let n = self.next_message();
        let p = &story.person;
        let body = whatsapp_message(
            &format!("wamid.DEMO{n:08}"),
            &p.mobile,
            &p.name,
            text,
            self.clock.now(),
        );
        let secret = self.state.config.webhooks.whatsapp.app_secret.as_ref();
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(secret.map_or("", |s| s.expose()).as_bytes())
                .map_err(|e| anyhow!("{e}"))?;
        mac.update(&body);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-hub-signature-256",
            format!("sha256={}", hex::encode(mac.finalize().into_bytes())).parse()?,
        );
        let Json(results) = sportello_web::api::inbound::whatsapp_notification(
            State(self.state.clone()),
            headers,
            Bytes::from(body),
        )
        .await
        .map_err(api)?;
        results
            .results
            .into_iter()
            .find_map(|r| r.case)
            .ok_or_else(|| anyhow!("demo WhatsApp message {n} reached no case"))
    }

    /// A Telegram message through the webhook; the case it went to.
    pub(super) async fn telegram(
        &mut self,
        story: &Story,
        i: usize,
        text: &str,
    ) -> anyhow::Result<String> {
        let n = self.next_message();
        let p = &story.person;
        let last = p.name.split_once(' ').map_or("", |(_, l)| l);
        let body = telegram_message(
            734_000_000 + n as i64,
            48_150_000 + i as i64,
            p.first,
            last,
            text,
            self.clock.now(),
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-telegram-bot-api-secret-token",
            self.state
                .config
                .webhooks
                .telegram
                .secret_token
                .as_ref()
                .map_or("", |s| s.expose())
                .parse()?,
        );
        let Json(results) = sportello_web::api::inbound::telegram_update(
            State(self.state.clone()),
            headers,
            Bytes::from(body),
        )
        .await
        .map_err(api)?;
        results
            .results
            .into_iter()
            .find_map(|r| r.case)
            .ok_or_else(|| anyhow!("demo Telegram message {n} reached no case"))
    }

    /// The citizen answers what the office asked, on their channel.
    pub(super) async fn reply(&mut self, story: &Story, i: usize) -> anyhow::Result<()> {
        let reference = self.reference(i)?;
        let case = self.state.store.get_case(&reference).await.map_err(store)?;
        let observations = case.summary.status == "rejection_notice";
        let text = if observations {
            format!(
                "In merito alla pratica {reference}, presento le mie osservazioni: il veicolo è in uso \
                 esclusivo come da contratto allegato."
            )
        } else {
            format!(
                "In merito alla pratica {reference}, invio il documento richiesto ({}).",
                story.missing.unwrap_or("documentazione").replace('_', " ")
            )
        };
        let by_email = story.gives_email || matches!(story.channel, Channel::Email);
        match story.channel {
            Channel::Whatsapp => {
                self.whatsapp(story, &text).await?;
            }
            Channel::Telegram => {
                self.telegram(story, i, &text).await?;
            }
            Channel::Pec => {
                self.mail_reply(story, &reference, &text, true, !observations)
                    .await?
            }
            _ if by_email => {
                self.mail_reply(story, &reference, &text, false, !observations)
                    .await?
            }
            _ => {
                // Brought to the counter.
                let (action, note) = if observations {
                    (
                        Action::ObservationsReceived,
                        "Osservazioni presentate allo sportello",
                    )
                } else {
                    (
                        Action::IntegrationReceived,
                        "Documenti consegnati allo sportello",
                    )
                };
                self.act(story.assignee, &reference, &action, Some(note))
                    .await?;
            }
        }
        Ok(())
    }

    /// An e-mail or PEC answer to the office's last message on the case (threaded by its
    /// Message-ID, the reference in the subject), with the document asked when there is one.
    pub(super) async fn mail_reply(
        &mut self,
        story: &Story,
        reference: &str,
        text: &str,
        pec: bool,
        with_document: bool,
    ) -> anyhow::Result<()> {
        let p = &story.person;
        let last = self
            .state
            .store
            .outbound_of_case(reference)
            .await
            .map_err(store)?
            .into_iter()
            .rev()
            .find(|m| matches!(m.channel.as_str(), "email" | "pec"));
        let subject = match &last {
            Some(m) => format!("Re: {}", m.subject),
            None => format!("Pratica {reference}"),
        };
        let mut parts: Vec<Part> = Vec::new();
        if let Some(d) = story.missing.filter(|_| with_document) {
            parts.push(Part {
                filename: format!("{d}.pdf"),
                media_type: "application/pdf",
                bytes: document_pdf(story, d)?,
            });
        }
        let n = self.next_message();
        let now = self.clock.now();
        let (from, to) = if pec {
            (p.pec.as_str(), OFFICE_PEC)
        } else {
            (p.email.as_str(), OFFICE_EMAIL)
        };
        let message_id = format!("demo.{n}@{}", from.rsplit('@').next().unwrap_or("x"));
        let body = format!("Buongiorno,\n{text}\n\nCordiali saluti,\n{}\n", p.name);
        let mail = Mail {
            from_name: &p.name,
            from,
            to,
            subject: &subject,
            body: &body,
            message_id: &message_id,
            in_reply_to: last.as_ref().map(|m| m.message_id.as_str()),
            date: now - Duration::minutes(2),
            parts: &parts,
        }
        .render();
        let raw = if pec {
            self.provider
                .envelope(from, &subject, &message_id, &mail, now)?
        } else {
            mail
        };
        let channel = if pec { Channel::Pec } else { Channel::Email };
        self.ingest_mail(raw, channel, story.case_type).await?;
        Ok(())
    }

    /// The citizen asks how the case is going.
    pub(super) async fn follow_up(&mut self, story: &Story, i: usize) -> anyhow::Result<()> {
        let reference = self.reference(i)?;
        let text =
            format!("Buongiorno, vorrei sapere a che punto è la pratica {reference}. Grazie.");
        match story.channel {
            Channel::Whatsapp => {
                self.whatsapp(story, &text).await?;
            }
            Channel::Telegram => {
                self.telegram(story, i, &text).await?;
            }
            Channel::Pec => {
                self.mail_reply(story, &reference, &text, true, false)
                    .await?
            }
            Channel::Fax => {}
            _ if story.gives_email => {
                self.mail_reply(story, &reference, &text, false, false)
                    .await?
            }
            _ => {}
        }
        Ok(())
    }
}

/// The application form a citizen fills in, as a one-page PDF.
fn application_form(story: &Story, reference: &str) -> anyhow::Result<Vec<u8>> {
    let mut lines = Vec::new();
    if !reference.is_empty() {
        lines.push(format!("Pratica {reference}"));
    }
    lines.push(format!("Richiedente: {}", story.person.name));
    lines.push(format!("Oggetto: {}", story.subject));
    if !story.plates.is_empty() {
        lines.push(format!("Targhe: {}", story.plates.join(", ")));
    }
    lines.push("Allegati: documento di identità, carta di circolazione".to_owned());
    let rows: Vec<sportello_paper::table::Row> =
        lines.into_iter().map(|l| vec![(40.0, l, 90)]).collect();
    Ok(sportello_paper::table::render(
        "Domanda",
        "Modulo compilato dal richiedente",
        &Vec::new(),
        &rows,
        sportello_paper::table::A4_PORTRAIT,
    )?)
}

/// A document a citizen sends (a scan of their vehicle's registration, their CUDE…).
fn document_pdf(story: &Story, document: &str) -> anyhow::Result<Vec<u8>> {
    let rows: Vec<sportello_paper::table::Row> = [
        format!("Documento: {}", document.replace('_', " ")),
        format!("Intestatario: {}", story.person.name),
        format!("Targhe: {}", story.plates.join(", ")),
    ]
    .into_iter()
    .map(|l| vec![(40.0, l, 90)])
    .collect();
    Ok(sportello_paper::table::render(
        "Documento",
        "Copia inviata dal cittadino",
        &Vec::new(),
        &rows,
        sportello_paper::table::A4_PORTRAIT,
    )?)
}
