//! The background half of the email flows: it resolves queued reset and resend requests into
//! messages (at most one per account and purpose per window), mints each link when its
//! message goes out (for the account as it is then, or not at all), and sends due messages
//! with retries and exponential backoff. Rows are leased, so several instances (or a
//! restarted one) never send a message twice unless a send succeeded and the instance died
//! before recording it: SMTP offers no stronger guarantee. On a graceful stop, unsent rows are
//! handed back at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::crypto;
use crate::domain::uid;
use crate::mail::{Link, Mailer};
use crate::store::entity::{email_outbox, email_request};
use crate::store::outbox::NewMessage;
use crate::store::{self, email_tokens, outbox, users};
use crate::store::{Db, DbErr};

use super::Error;
use super::email::{Purpose, addresses, awaits_activation, fingerprint, send, send_sign_up};

/// How long a claimed row stays ours; a crashed instance's rows come back after it.
const LEASE_SECONDS: i64 = 120;
/// Rows are claimed one at a time: a crash then strands only the row in hand for the lease,
/// not a batch behind it. A claim is one short query; the worker loops while there is work.
const BATCH: u64 = 1;
const LONGEST_WAIT: Duration = Duration::from_secs(3600);
/// How long a send already under way may go on after a stop was asked for.
const SEND_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("database error")]
    Database(#[from] DbErr),
    #[error(transparent)]
    Account(#[from] Error),
}

/// What the background delivery needs: the database and the mailer.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub db: Db,
    pub mailer: Arc<Mailer>,
}

impl Delivery {
    /// One round of work; returns how many rows it handled. When `stop` fires, a send under
    /// way gets [`SEND_GRACE`] to finish, and every claimed row not sent is released.
    pub async fn step(&self, stop: &CancellationToken) -> Result<usize, WorkerError> {
        let lease = chrono::Duration::seconds(LEASE_SECONDS);
        let mut worked = 0;
        for request in outbox::claim_requests(&self.db, BATCH, lease).await? {
            self.resolve(request).await?;
            worked += 1;
        }
        let mut due: VecDeque<email_outbox::Model> =
            outbox::claim_due(&self.db, BATCH, lease).await?.into();
        while let Some(row) = due.front() {
            let grace = async {
                stop.cancelled().await;
                tokio::time::sleep(SEND_GRACE).await;
            };
            let outcome = tokio::select! {
                biased;
                outcome = self.deliver(row), if !stop.is_cancelled() => outcome?,
                () = grace => {
                    let unsent: Vec<i64> = due.iter().map(|row| row.id).collect();
                    outbox::release(&self.db, &unsent).await?;
                    tracing::info!(released = unsent.len(), "email worker stopping; unsent messages released");
                    return Ok(worked);
                }
            };
            self.record(row, outcome).await?;
            due.pop_front();
            worked += 1;
        }
        Ok(worked)
    }

    /// The worker's half of `request_link`: a message for each matching account whose window
    /// is open (for a resent activation, a sign-up message: the address's window).
    async fn resolve(&self, request: email_request::Model) -> Result<(), WorkerError> {
        let purpose = request.kind;
        let matching =
            users::find_by_address(&self.db, &addresses(&request.email), purpose.holders()).await?;
        let window = self.mailer.settings().send_window;
        let txn = store::begin_write(&self.db).await?;
        let mut queued = 0;
        for user in &matching {
            let sent = match purpose {
                Purpose::Activation => {
                    send_sign_up(&txn, &self.mailer, purpose.kind(), user).await?
                }
                _ if outbox::claim_window(&txn, user.id, purpose, window).await? => {
                    send(&txn, &self.mailer, purpose.kind(), user).await?;
                    true
                }
                _ => false,
            };
            queued += usize::from(sent);
        }
        outbox::finish_request(&txn, request.id).await?;
        txn.commit().await?;
        if queued > 0 {
            self.mailer.wake();
        }
        Ok(())
    }

    /// Sends one message; `Ok(None)` when it was dropped instead.
    async fn deliver(
        &self,
        row: &email_outbox::Model,
    ) -> Result<Option<Result<(), String>>, WorkerError> {
        let message = match &row.kind {
            None => NewMessage {
                message_id: row.message_id.clone(),
                recipient: row.recipient.clone(),
                subject: row.subject.clone(),
                text_body: row.text_body.clone(),
                html_body: row.html_body.clone(),
            },
            Some(kind) => match self.render_with_link(row, *kind).await? {
                Some(message) => message,
                None => return Ok(None),
            },
        };
        Ok(Some(self.mailer.deliver(&message).await))
    }

    /// Mints the link of a link message for the account as it is now, after killing the
    /// account's older links of that purpose, and renders the message; or drops the message
    /// when the account changed since it was requested.
    async fn render_with_link(
        &self,
        row: &email_outbox::Model,
        purpose: Purpose,
    ) -> Result<Option<NewMessage>, WorkerError> {
        let txn = store::begin_write(&self.db).await?;
        let user = match row.user_id {
            Some(id) => users::lock(&txn, id).await?,
            None => None,
        };
        let problem = match &user {
            None => Some("the account is gone"),
            Some(user) if Some(fingerprint(user)) != row.fingerprint => {
                Some("the account's password or email changed since the request")
            }
            Some(user) if purpose == Purpose::Activation && !awaits_activation(user) => {
                Some("the account no longer waits for activation")
            }
            Some(user) if purpose != Purpose::Activation && !user.is_active => {
                Some("the account is inactive")
            }
            _ => None,
        };
        let (Some(user), None) = (user, problem) else {
            let reason = format!("dropped: {}", problem.unwrap_or("the account is gone"));
            outbox::drop_message(&txn, row.id, &reason).await?;
            txn.commit().await?;
            tracing::info!(message = row.id, %reason, "email not sent");
            return Ok(None);
        };
        let token = crypto::generate_link_token().map_err(|_| Error::Random)?;
        let lifetime = chrono::Duration::from_std(self.mailer.settings().token_lifetime)
            .unwrap_or(chrono::Duration::days(1));
        email_tokens::revoke_live(&txn, user.id, Some(purpose)).await?;
        email_tokens::insert(
            &txn,
            user.id,
            purpose,
            token.digest,
            fingerprint(&user),
            Utc::now() + lifetime,
        )
        .await?;
        txn.commit().await?;
        let link = Link {
            uid: uid::encode(user.id),
            token: token.secret,
        };
        let message = self
            .mailer
            .compose(purpose.kind(), &user, Some(&link))
            .map_err(Error::Mail)?;
        Ok(message.map(|message| NewMessage {
            message_id: row.message_id.clone(),
            ..message
        }))
    }

    /// Records a send: delivered, or retried later with backoff, or given up.
    async fn record(
        &self,
        row: &email_outbox::Model,
        outcome: Option<Result<(), String>>,
    ) -> Result<(), DbErr> {
        let attempts = row.attempts + 1;
        let mail = self.mailer.settings();
        match outcome {
            None => Ok(()),
            Some(Ok(())) => {
                outbox::mark_sent(&self.db, row.id, attempts).await?;
                tracing::info!(message = row.id, attempts, "email sent");
                Ok(())
            }
            Some(Err(error)) => {
                let retry_at = (attempts < mail.max_attempts as i32).then(|| {
                    let wait = mail
                        .retry_base
                        .saturating_mul(1 << (attempts - 1).min(20))
                        .min(LONGEST_WAIT);
                    Utc::now()
                        + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1))
                });
                outbox::mark_failed(&self.db, row.id, attempts, &error, retry_at).await?;
                match retry_at {
                    Some(at) => {
                        tracing::warn!(message = row.id, attempts, %error, retry_at = %at, "email not sent; will retry")
                    }
                    None => {
                        crate::meter::outbox_dropped();
                        tracing::error!(message = row.id, attempts, %error, "email not sent; giving up")
                    }
                }
                Ok(())
            }
        }
    }

    /// Resolves when a request or a message may be waiting.
    pub async fn woken(&self) {
        self.mailer.woken().await;
    }
}
