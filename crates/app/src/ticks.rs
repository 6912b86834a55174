//! The background ticks `serve` runs every minute: what the office does by itself.

use chrono::Duration;
use sportello_domain::calendar::rome_date;
use sportello_domain::outbound::templates::TemplateKind;
use sportello_domain::workflow::INTEGRATION_DAYS;

use crate::outbound::{Written, call_script, template_context, write_occasion};
use crate::{App, AppError, Lang};

/// The contact centre's minute: PEC messages without a delivery receipt in time are
/// flagged; reminders go out before the integration deadline; cases whose citizen has not
/// answered for `outbound.callback_after_days` become call-back tasks.
pub async fn contact(app: &App) {
    let out = &app.config.outbound;
    if out.acknowledge {
        acknowledge_new_cases(app).await;
    }
    match app
        .store
        .flag_undelivered_pec(i64::from(out.pec_delivery_hours))
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::warn!(messages = n, "PEC messages without a delivery receipt"),
        Err(e) => tracing::warn!(error = %e, "PEC delivery check failed"),
    }
    let today = rome_date(app.store.clock().now());
    let started_by = today - Duration::days(INTEGRATION_DAYS - i64::from(out.reminder_days_before));
    match app.store.cases_due_for_reminder(started_by).await {
        Ok(due) => {
            for (reference, day) in due {
                if let Err(e) = send_reminder(app, &reference, &day).await {
                    tracing::warn!(%reference, error = %e, "reminder not queued");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "reminders not checked"),
    }
    match app
        .store
        .cases_without_answer(i64::from(out.callback_after_days))
        .await
    {
        Ok(cases) => {
            for (reference, phone, missing) in cases {
                // What the operator reads out: the documents by their names.
                let missing: Vec<String> = missing
                    .iter()
                    .map(|d| app.names.name(Lang::It, "document", d))
                    .collect();
                let script = call_script(&reference, "nessuna risposta dal cittadino.", &missing);
                if let Err(e) = app
                    .store
                    .open_call_task(&reference, "no_answer", Some(&phone), &script, "system")
                    .await
                {
                    tracing::warn!(%reference, error = %e, "call-back task not opened");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "unanswered cases not checked"),
    }
}

/// The acknowledgement of receipt (art. 8 L. 241/1990: the reference, the office, the
/// legal term) for the cases of the last day, on each citizen's default channel, once
/// (`ack:{reference}`). Nothing happens while the office has no channel to write on; a
/// citizen the office cannot write to is journaled once (`acknowledgement_skipped`).
async fn acknowledge_new_cases(app: &App) {
    use sportello_outbound::Channel as C;
    let any = [C::Email, C::Pec, C::Fax, C::Sms, C::Whatsapp, C::Telegram]
        .into_iter()
        .any(|c| app.transports.is_configured(c));
    if !any {
        return;
    }
    let since = app.store.clock().now() - Duration::days(1);
    let cases = match app.store.cases_to_acknowledge(since, 200).await {
        Ok(cases) => cases,
        Err(e) => {
            tracing::warn!(error = %e, "cases to acknowledge not read");
            return;
        }
    };
    for reference in cases {
        let result = match write_occasion(
            app,
            &reference,
            TemplateKind::Acknowledgement,
            &format!("ack:{reference}"),
            "system",
            None,
            None,
        )
        .await
        {
            Ok(Written::Queued) => Ok(()),
            Ok(Written::Unreachable(_)) => app
                .store
                .acknowledgement_skipped(&reference, "no channel the office can write to")
                .await
                .map_err(AppError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(%reference, error = %e, "acknowledgement not queued");
        }
    }
}

/// Queues the reminder of an integration request on the citizen's default channel, once
/// per request (`reminder:{reference}:{day}`); a citizen the office cannot write to gets
/// a call instead (and the case leaves the reminders' list while the call is open).
async fn send_reminder(app: &App, reference: &str, day: &str) -> Result<(), AppError> {
    let written = write_occasion(
        app,
        reference,
        TemplateKind::Reminder,
        &format!("reminder:{reference}:{day}"),
        "system",
        None,
        None,
    )
    .await?;
    if let Written::Unreachable(case) = written
        && let Some(phone) = case.citizen.phone.as_deref()
    {
        let ctx = template_context(app, &case, Lang::It, None, None).await;
        let headline = "promemoria, il termine per le integrazioni è vicino.";
        let script = call_script(reference, headline, &ctx.missing);
        app.store
            .open_call_task(
                reference,
                "no_digital_contact",
                Some(phone),
                &script,
                "system",
            )
            .await?;
    }
    Ok(())
}
