//! The background tasks, owned in one place: the mail delivery worker, the listener that keeps
//! the token cache in step with other instances and processes, the writer of sessions' last
//! uses, the writer of throttled requests to the audit trail, the periodic purge of spent rows,
//! and the dummy hash that follows the legacy hashes. Each task takes only what it needs. They
//! stop in that order, after the server stopped taking requests: the worker finishes its send
//! or hands its messages back, and the last uses and refusals are written one last time.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::accounts::delivery::Delivery;
use crate::audit;
use crate::auth::{Authenticator, Invalidation};
use crate::config::{Mail, Maintenance};
use crate::crypto::{HashError, PasswordHasher, Scheme};
use crate::meter::{self, Ended};
use crate::state::AppState;
use crate::store::{self, Heard, email_tokens, outbox};
use crate::store::{Db, DbErr};
use crate::throttle::FailureLimits;

/// How often the mail worker looks for due work when nobody wakes it.
const MAIL_POLL: Duration = Duration::from_millis(500);
/// How long a task may take to stop before it is aborted.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Cache invalidations are read within a poll; an hour is far more than any reader needs.
const INVALIDATION_RETENTION: Duration = Duration::from_secs(3600);
/// How often throttled requests counted in memory are written to the audit trail.
const REFUSAL_WRITES: Duration = Duration::from_secs(2);
/// How often queued last uses are written, at most (each session's is queued at most once a
/// minute, or once a quarter of a shorter idle limit).
const LAST_USE_WRITES: Duration = Duration::from_secs(10);
/// Rows deleted per statement by the purge, so that it never holds a lock for long.
const PURGE_BATCH: u64 = 1000;
/// How often the dummy hash is matched to the legacy hashes again: an import may run while
/// authd serves, and its accounts answer slower than unknown names until then.
const LEGACY_REFRESH: Duration = Duration::from_secs(60);
/// Legacy hashes read to find the most common: plenty to find a site's default, few enough to
/// read every minute.
const LEGACY_SAMPLE: u64 = 10_000;

pub struct Tasks {
    stop: CancellationToken,
    running: Vec<(&'static str, JoinHandle<()>)>,
}

impl Tasks {
    pub fn start(state: &AppState) -> Self {
        let stop = CancellationToken::new();
        let delivery = Delivery {
            db: state.db.clone(),
            mailer: Arc::clone(&state.mailer),
        };
        let mail = tokio::spawn(deliver_mail(delivery, stop.child_token()));
        let imported = Arc::new(Notify::new());
        let listener = tokio::spawn(follow_invalidations(
            state.db.clone(),
            Arc::clone(&state.auth),
            Arc::clone(&imported),
            stop.child_token(),
        ));
        let last_uses = tokio::spawn(write_last_uses(Arc::clone(&state.auth), stop.child_token()));
        let refusals = tokio::spawn(write_refusals(
            state.db.clone(),
            Arc::clone(&state.refusals),
            stop.child_token(),
        ));
        let legacy = tokio::spawn(follow_legacy_periodically(
            state.db.clone(),
            Arc::clone(&state.hasher),
            imported,
            stop.child_token(),
        ));
        let purge = tokio::spawn(purge_periodically(
            state.db.clone(),
            Purge {
                mail: state.settings.mail.clone(),
                maintenance: state.settings.maintenance.clone(),
                token_idle: state.settings.tokens.idle,
                failures: state.settings.throttling.failures,
            },
            stop.child_token(),
        ));
        Self {
            stop,
            running: vec![
                ("mail worker", mail),
                ("cache listener", listener),
                ("last-use writer", last_uses),
                ("refusal writer", refusals),
                ("purge", purge),
                ("legacy hash follower", legacy),
            ],
        }
    }

    /// Asks every task to stop, then waits for each, in the order they were started.
    pub async fn stop(self) {
        self.stop.cancel();
        for (name, mut task) in self.running {
            if tokio::time::timeout(STOP_TIMEOUT, &mut task).await.is_err() {
                tracing::warn!(task = name, "did not stop in time; aborted");
                task.abort();
            }
            tracing::debug!(task = name, "stopped");
        }
    }
}

/// Writes the throttled requests counted since the last time, and once more when stopping.
async fn write_refusals(db: Db, refusals: Arc<audit::Tally>, stop: CancellationToken) {
    loop {
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = tokio::time::sleep(REFUSAL_WRITES) => false,
        };
        if let Err(err) = refusals.flush(&db).await {
            tracing::warn!(
                error = %crate::telemetry::chain(&err),
                "cannot write throttled requests to the audit trail"
            );
        }
        if stopping {
            return;
        }
    }
}

async fn deliver_mail(delivery: Delivery, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let worked = match delivery.step(&stop).await {
            Ok(worked) => worked,
            Err(err) => {
                tracing::error!(error = %crate::telemetry::chain(&err), "email worker step failed");
                0
            }
        };
        if worked == 0 {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = delivery.woken() => {}
                _ = tokio::time::sleep(MAIL_POLL) => {}
            }
        }
    }
}

/// Keeps the token cache in step, confirms each change to the server that made it, hears the
/// confirmations of this server's own changes, and tells the legacy hash follower when an
/// import brought hashes of another scheme.
async fn follow_invalidations(
    db: Db,
    auth: Arc<Authenticator>,
    imported: Arc<Notify>,
    stop: CancellationToken,
) {
    let channels = auth.channels();
    let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
    let listening = store::listen(&db, &channels, |heard| {
        if let Heard::Notice(notice) = heard
            && notice.channel == Invalidation::CHANNEL
            && Invalidation::parse(notice.payload) == Some(Invalidation::LegacyHashes)
        {
            imported.notify_one();
        }
        auth.on_heard(heard)
    });
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = listening => {}
    }
}

async fn write_last_uses(auth: Arc<Authenticator>, stop: CancellationToken) {
    let every = LAST_USE_WRITES.min(auth.last_use_interval());
    loop {
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = tokio::time::sleep(every) => false,
        };
        if let Err(err) = auth.write_last_uses().await {
            tracing::error!(error = %crate::telemetry::chain(&err), "cannot record sessions' last uses");
        }
        if stopping {
            return;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("cannot read the legacy password hashes")]
    Read(#[from] DbErr),
    #[error(transparent)]
    Dummy(#[from] HashError),
}

/// Makes the dummy hash that logins with no usable hash check a hash of the most common legacy
/// scheme in the database ([`PasswordHasher::follow_legacy`]), from a bounded sample. Returns
/// the scheme in use.
pub async fn follow_legacy_hashes(db: &Db, hasher: &PasswordHasher) -> Result<Scheme, FollowError> {
    let legacy = store::users::legacy_hashes(db, LEGACY_SAMPLE).await?;
    Ok(hasher.follow_legacy(&legacy).await?)
}

/// [`follow_legacy_hashes`] every [`LEGACY_REFRESH`], and at once when an import announces
/// hashes of another scheme; start-up did it first.
async fn follow_legacy_periodically(
    db: Db,
    hasher: Arc<PasswordHasher>,
    imported: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(LEGACY_REFRESH) => {}
            _ = imported.notified() => {}
        }
        if let Err(err) = follow_legacy_hashes(&db, &hasher).await {
            tracing::warn!(error = %crate::telemetry::chain(&err), "the dummy hash cannot follow the legacy hashes");
        }
    }
}

/// What the purge needs to know.
struct Purge {
    mail: Mail,
    maintenance: Maintenance,
    token_idle: Duration,
    failures: FailureLimits,
}

async fn purge_periodically(db: Db, purge: Purge, stop: CancellationToken) {
    loop {
        if let Err(err) = purge.run(&db).await {
            tracing::error!(error = %crate::telemetry::chain(&err), "purge failed");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(purge.maintenance.purge_interval) => {}
        }
    }
}

impl Purge {
    /// Deletes what can never be used again, in bounded batches: expired or idle sessions (with
    /// their tokens), expired access tokens, expired links (used or not), mail delivered or given up
    /// longer ago than the retention, closed send windows, old cache invalidations, failed
    /// logins past every throttle window, login addresses no longer known, audit events past
    /// AUTHD_AUDIT_RETENTION_SECONDS. Retired refresh tokens stay until their family ends:
    /// reuse detection needs them.
    async fn run(&self, db: &Db) -> Result<(), DbErr> {
        let now = Utc::now();
        let ago = |span: Duration| {
            now - chrono::Duration::from_std(span).unwrap_or(chrono::Duration::MAX)
        };
        let idle_before = (!self.token_idle.is_zero()).then(|| ago(self.token_idle));
        let mut sessions = 0;
        loop {
            let dead = store::sessions::dead(db, now, idle_before, PURGE_BATCH).await?;
            let count = dead.len() as u64;
            let expired = dead
                .iter()
                .filter(|(_, end)| end.is_some_and(|end| end <= now))
                .count() as u64;
            let ids = dead.into_iter().map(|(id, _)| id).collect();
            let deleted = store::sessions::delete_ids(db, ids).await?;
            meter::sessions_ended(Ended::Expired, expired.min(deleted));
            meter::sessions_ended(Ended::Idle, deleted.saturating_sub(expired));
            sessions += deleted;
            if count < PURGE_BATCH {
                break;
            }
        }
        let mut tokens = 0;
        loop {
            let count = store::tokens::purge_expired(db, now, PURGE_BATCH).await?;
            tokens += count;
            if count < PURGE_BATCH {
                break;
            }
        }
        let links = email_tokens::purge(db, now).await?;
        let messages = outbox::purge(db, ago(self.maintenance.email_retention)).await?;
        let windows = outbox::purge_windows(db, ago(self.mail.send_window)).await?;
        let invalidations = store::purge_invalidations(db, ago(INVALIDATION_RETENTION)).await?;
        // Failures older than every window count against nothing.
        let failures =
            store::failures::purge(db, ago(self.failures.longest().unwrap_or_default())).await?;
        let addresses =
            store::known_addresses::purge(db, ago(crate::throttle::KNOWN_ADDRESS_LIFETIME)).await?;
        let events = audit::purge(db, ago(self.maintenance.audit_retention), PURGE_BATCH).await?;
        for (table, rows) in [
            ("sessions", sessions),
            ("tokens", tokens),
            ("links", links),
            ("messages", messages),
            ("windows", windows),
            ("invalidations", invalidations),
            ("failures", failures),
            ("addresses", addresses),
            ("events", events),
        ] {
            meter::purged(table, rows);
        }
        if sessions
            + tokens
            + links
            + messages
            + windows
            + invalidations
            + failures
            + addresses
            + events
            > 0
        {
            tracing::info!(
                sessions,
                tokens,
                links,
                messages,
                windows,
                invalidations,
                failures,
                addresses,
                events,
                "purged spent rows"
            );
        }
        Ok(())
    }
}
