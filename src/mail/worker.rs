//! The delivery worker: resolves queued reset/resend requests into messages, and sends due
//! outbox messages with retries and exponential backoff. Rows are leased, so several instances
//! (or a restarted one) never send a message twice unless a send succeeded and the instance
//! died before recording it: SMTP offers no stronger guarantee.

use std::time::Duration;

use chrono::Utc;

use crate::email_flows;
use crate::state::AppState;
use crate::store::outbox;

/// How often the worker looks for due work when nobody wakes it.
const POLL: Duration = Duration::from_millis(500);
/// How long a claimed row stays ours; a crashed instance's rows come back after it.
const LEASE_SECONDS: i64 = 120;
const BATCH: u64 = 20;
const LONGEST_WAIT: Duration = Duration::from_secs(3600);

pub async fn run(state: AppState) {
    loop {
        let worked = match step(&state).await {
            Ok(worked) => worked,
            Err(err) => {
                tracing::error!(error = %err, "email worker step failed");
                0
            }
        };
        if worked == 0 {
            tokio::select! {
                _ = state.mailer.woken() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

async fn step(state: &AppState) -> Result<usize, email_flows::WorkerError> {
    let lease = chrono::Duration::seconds(LEASE_SECONDS);
    let mut worked = 0;
    for request in outbox::claim_requests(&state.db, BATCH, lease).await? {
        email_flows::resolve_request(state, request).await?;
        worked += 1;
    }
    let mail = &state.settings.mail;
    for message in outbox::claim_due(&state.db, BATCH, lease).await? {
        let attempts = message.attempts + 1;
        match state.mailer.deliver(&message).await {
            Ok(()) => {
                outbox::mark_sent(&state.db, message.id, attempts).await?;
                tracing::info!(message = message.id, attempts, "email sent");
            }
            Err(error) => {
                let retry_at = (attempts < mail.max_attempts as i32).then(|| {
                    let wait = mail
                        .retry_base
                        .saturating_mul(1 << (attempts - 1).min(20))
                        .min(LONGEST_WAIT);
                    Utc::now()
                        + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1))
                });
                outbox::mark_failed(&state.db, message.id, attempts, &error, retry_at).await?;
                match retry_at {
                    Some(at) => {
                        tracing::warn!(message = message.id, attempts, %error, retry_at = %at, "email not sent; will retry")
                    }
                    None => {
                        tracing::error!(message = message.id, attempts, %error, "email not sent; giving up")
                    }
                }
            }
        }
        worked += 1;
    }
    Ok(worked)
}
