//! Failed password checks, limited in the database so the limits hold across instances: per
//! (client address, account), per account and per client address for logins, per session for
//! the `current_password` checks made with one. Each attempt records itself, in flight, before
//! its password is checked (a row per limit), then counts what came before it:
//! - past a limit's count of failures, it is refused (429) and never reaches the hash;
//! - when failures and the attempts in flight ahead of it fill a limit, it waits for those to
//!   finish, at most `patience` (AUTHD_HASH_QUEUE_TIMEOUT_MS), then gives up (503, since nothing
//!   was checked). So a burst of right passwords logs in, and a burst of guesses still gets no
//!   more checks than the limit: concurrency only ever makes the limit stricter.
//!
//! A failure keeps its rows; a success takes them back and clears the failures of its own
//! limit, (address, account) or the session's; an attempt that checked nothing takes them back. An attempt dropped half-way (its
//! client went away) counts as a failure.
//!
//! What keeps the owner in: an address the account logged in from recently is exempt from the
//! per-account limit (its (address, account) limit still holds), and a session's checks count
//! only against the session. Every row about one account carries it, so that a password reset
//! can clear them all.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::store::{self, failures};
use crate::store::{Db, DbErr};

use super::rate::Rate;

/// An address an account logged in from (with its password) within this long is exempt from
/// the account's per-account limit.
pub const KNOWN_ADDRESS_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// How many of an account's latest login addresses are known.
pub const KNOWN_ADDRESSES_PER_ACCOUNT: u64 = 10;
/// Rows read per key beyond the limit's count, for the attempts in flight: more than that many
/// in flight fill any limit anyway.
const IN_FLIGHT_READ: u64 = 256;
/// How often a waiting attempt looks again at the attempts ahead of it.
const POLL: Duration = Duration::from_millis(25);
/// An attempt still in flight this long after its patience ran out belongs to an instance that
/// died during the check: it counts as a failure.
const STALE_MARGIN: Duration = Duration::from_secs(60);

/// The four limits; `None` is `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimits {
    pub per_ip_account: Option<Rate>,
    pub per_account: Option<Rate>,
    pub per_ip: Option<Rate>,
    /// `current_password` checks made with one session, instead of the three above.
    pub per_session: Option<Rate>,
}

impl FailureLimits {
    /// No limit: for tests and benchmarks that log in many times at once.
    pub const OFF: FailureLimits = FailureLimits {
        per_ip_account: None,
        per_account: None,
        per_ip: None,
        per_session: None,
    };

    /// The longest window: failures older than it count against nothing.
    pub fn longest(&self) -> Option<Duration> {
        [
            self.per_ip_account,
            self.per_account,
            self.per_ip,
            self.per_session,
        ]
        .into_iter()
        .flatten()
        .map(|rate| rate.period)
        .max()
    }
}

/// Who checks a password, as the limits see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// A login (Djoser's, or the OAuth2 password grant) from a client address (its throttle
    /// key). `known`: the account logged in from this address recently, which exempts it from
    /// the per-account limit.
    Login { address: &'a str, known: bool },
    /// A `current_password` check made with a live session of the account (its row id): the
    /// session is the proof, so only the per-session limit applies.
    Session(i64),
}

#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Over a limit: an attempt would be admitted in this many seconds (at least 1); the
    /// limit that refuses it longest, by its name (`ip_account`, `account`, `ip`, `session`).
    #[error("throttled for {0} s")]
    Throttled(u64, &'static str),
    /// The attempts ahead did not finish within the patience: nothing was checked.
    #[error("attempts ahead did not finish in time")]
    Busy,
    #[error("database error")]
    Database(#[from] DbErr),
}

/// An attempt under way: its rows, and the key a success clears (its (address, account) or
/// its session's). Dropped without an outcome (its request was abandoned), it counts as a
/// failure.
#[derive(Debug)]
#[must_use = "an attempt ends as a failure, a success, or abandoned"]
pub struct Attempt {
    db: Option<Db>,
    ids: Vec<i64>,
    clears: Option<String>,
}

fn key(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// What the rows of an account are marked with: the key of its per-account limit.
fn account_key(account: &str) -> String {
    key(&["account", account])
}

/// One limit an attempt counts against.
struct Counted {
    /// The limit's name, as the audit trail records a refusal.
    name: &'static str,
    key: String,
    rate: Rate,
    /// The account, for keys about one account.
    account: Option<String>,
}

/// Records an attempt against `account` (the canonical login value, whether or not such an
/// account exists) from `source`, and admits it, makes it wait, or refuses it.
pub async fn begin_attempt(
    db: &Db,
    limits: &FailureLimits,
    patience: Duration,
    source: Source<'_>,
    account: &str,
) -> Result<Attempt, Refused> {
    let of_account = Some(account_key(account));
    // The limit of this very source and account, whose failures a success clears.
    let own = match source {
        Source::Login { address, .. } => limits
            .per_ip_account
            .map(|rate| ("ip_account", key(&["ip+account", address, account]), rate)),
        Source::Session(session) => limits
            .per_session
            .map(|rate| ("session", key(&["session", &session.to_string()]), rate)),
    };
    let mut counted: Vec<Counted> = own
        .iter()
        .map(|(name, key, rate)| Counted {
            name,
            key: key.clone(),
            rate: *rate,
            account: of_account.clone(),
        })
        .collect();
    if let Source::Login { address, known } = source {
        counted.extend(limits.per_account.filter(|_| !known).map(|rate| Counted {
            name: "account",
            key: account_key(account),
            rate,
            account: of_account.clone(),
        }));
        counted.extend(limits.per_ip.map(|rate| Counted {
            name: "ip",
            key: key(&["ip", address]),
            rate,
            account: None,
        }));
    }
    if counted.is_empty() {
        return Ok(Attempt {
            db: None,
            ids: Vec::new(),
            clears: None,
        });
    }
    let started = Utc::now();
    let txn = store::begin_write(db).await?;
    let keys: Vec<&str> = counted.iter().map(|limit| limit.key.as_str()).collect();
    failures::lock_keys(&txn, &keys).await?;
    let mut ids = Vec::with_capacity(counted.len());
    for limit in &counted {
        ids.push(failures::insert(&txn, &limit.key, limit.account.as_deref(), started).await?);
    }
    // The guard exists before the commit: a request dropped while its commit is under way (the
    // rows may be in) still settles them as a failure. Settling rows that never committed
    // changes nothing.
    let attempt = Attempt {
        db: Some(db.clone()),
        ids,
        clears: own.map(|(_, key, _)| key),
    };
    txn.commit().await?;
    let stale = chrono::Duration::from_std(patience.saturating_mul(2) + STALE_MARGIN)
        .unwrap_or(chrono::Duration::MAX);
    let give_up = tokio::time::Instant::now() + patience;
    loop {
        match admission(db, &counted, &attempt.ids, stale).await {
            Err(err) => {
                attempt.abandon().await;
                return Err(err.into());
            }
            Ok(Admission::Refused(wait, limit)) => {
                attempt.abandon().await;
                return Err(Refused::Throttled(wait, limit));
            }
            Ok(Admission::Admitted) => return Ok(attempt),
            Ok(Admission::Wait) if tokio::time::Instant::now() >= give_up => {
                attempt.abandon().await;
                return Err(Refused::Busy);
            }
            Ok(Admission::Wait) => tokio::time::sleep(POLL).await,
        }
    }
}

enum Admission {
    Admitted,
    /// Seconds until the limit that refuses it would admit it, and that limit's name.
    Refused(u64, &'static str),
    Wait,
}

/// Whether the attempt whose rows are `own` may check its password now. Each key's rows are read
/// in one statement; the attempts ahead on a key are the rows in flight with smaller ids, which
/// committed before this attempt's (see `failures::lock_keys`), so two attempts at once never
/// both miss each other.
async fn admission(
    db: &Db,
    counted: &[Counted],
    own: &[i64],
    stale: chrono::Duration,
) -> Result<Admission, DbErr> {
    let now = Utc::now();
    let stale_before = now - stale;
    let mut wait = 0;
    // Every limit that refuses is counted in the metrics; the one that keeps the attempt out
    // longest is the one the audit trail names.
    let mut refusing = Vec::new();
    let mut longest = "";
    let mut full = false;
    for (limit, own) in counted.iter().zip(own) {
        let rate = &limit.rate;
        let since = now - chrono::Duration::from_std(rate.period).unwrap_or(chrono::Duration::MAX);
        let count = u64::from(rate.count);
        let rows = failures::window(
            db,
            &limit.key,
            since,
            stale_before,
            *own,
            count + IN_FLIGHT_READ,
        )
        .await?;
        let (in_flight, failed): (Vec<_>, Vec<_>) = rows
            .into_iter()
            .partition(|row| row.in_flight && row.at >= stale_before);
        let failed: Vec<DateTime<Utc>> = failed
            .into_iter()
            .map(|row| row.at)
            .filter(|at| *at > since)
            .collect();
        if failed.len() as u64 >= count {
            // Admitted once the oldest of the last `count` failures leaves the window.
            let until = seconds_until(failed[count as usize - 1], rate, now);
            refusing.push(limit.name);
            if until > wait {
                (wait, longest) = (until, limit.name);
            }
        } else {
            let ahead = in_flight.iter().filter(|row| row.id < *own).count();
            full |= (failed.len() + ahead) as u64 >= count;
        }
    }
    for limit in refusing {
        crate::meter::throttled(limit);
    }
    Ok(match (wait, full) {
        (0, false) => Admission::Admitted,
        (0, true) => Admission::Wait,
        (wait, _) => Admission::Refused(wait, longest),
    })
}

fn seconds_until(oldest: DateTime<Utc>, rate: &Rate, now: DateTime<Utc>) -> u64 {
    let admitted =
        oldest + chrono::Duration::from_std(rate.period).unwrap_or(chrono::Duration::MAX);
    let millis = (admitted - now).num_milliseconds().max(1) as u64;
    millis.div_ceil(1000)
}

/// A completed password reset: every failure counted against the account (per account, per
/// address and account, per session) is forgotten.
pub async fn clear_account(db: &impl store::Conn, account: &str) -> Result<u64, DbErr> {
    failures::delete_account(db, &account_key(account)).await
}

impl Attempt {
    fn take(&mut self) -> Option<(Db, Vec<i64>)> {
        let db = self.db.take()?;
        Some((db, std::mem::take(&mut self.ids)))
    }

    /// The password was wrong: the attempt counts as a failure.
    pub async fn failed(mut self) {
        if let Some((db, ids)) = self.take()
            && let Err(err) = failures::settle(&db, ids).await
        {
            tracing::warn!(error = %err, "could not record a failed password check; it counts once stale");
        }
    }

    /// The password was right: the attempt is not a failure, and the failures of its own
    /// limit ((address, account), or the session's) are forgotten.
    pub async fn succeeded(mut self) -> Result<(), DbErr> {
        let clears = self.clears.take();
        let Some((db, ids)) = self.take() else {
            return Ok(());
        };
        failures::delete_ids(&db, ids).await?;
        if let Some(key) = clears {
            failures::delete_failures(&db, &key).await?;
        }
        Ok(())
    }

    /// No password was checked (the hash queue was full, the database failed): the attempt
    /// counts against nothing.
    pub async fn abandon(mut self) {
        if let Some((db, ids)) = self.take()
            && let Err(err) = failures::delete_ids(&db, ids).await
        {
            tracing::warn!(error = %err, "could not take back an unchecked password check");
        }
    }
}

impl Drop for Attempt {
    /// A request dropped during its check (the client went away) must not escape the count:
    /// its attempt becomes a failure.
    fn drop(&mut self) {
        if let Some((db, ids)) = self.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Err(err) = failures::settle(&db, ids).await {
                    tracing::warn!(error = %err, "could not record an abandoned password check");
                }
            });
        }
    }
}
