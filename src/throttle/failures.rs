//! Failed password checks, limited per (client IP, account), per account and per client IP,
//! in the database, so the limits hold across instances. Each attempt records itself before
//! its password is checked (a row per limit), and counts what came before it: two attempts at
//! once both see each other, so concurrency can only make the limit stricter. A failure keeps
//! its rows; a success takes them back and clears its (IP, account) counter; a throttled
//! attempt takes them back at once and never reaches the hash.

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use sha2::{Digest, Sha256};

use crate::store::{self, failures};

use super::rate::Rate;

/// The three limits; `None` is `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimits {
    pub per_ip_account: Option<Rate>,
    pub per_account: Option<Rate>,
    pub per_ip: Option<Rate>,
}

impl FailureLimits {
    /// No limit: for tests and benchmarks that log in many times at once.
    pub const OFF: FailureLimits = FailureLimits {
        per_ip_account: None,
        per_account: None,
        per_ip: None,
    };

    /// The longest window: failures older than it count against nothing.
    pub fn longest(&self) -> Option<std::time::Duration> {
        [self.per_ip_account, self.per_account, self.per_ip]
            .into_iter()
            .flatten()
            .map(|rate| rate.period)
            .max()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Over a limit: an attempt would be admitted in this many seconds (at least 1).
    #[error("throttled for {0} s")]
    Throttled(u64),
    #[error("database error")]
    Database(#[from] DbErr),
}

/// An attempt under way: its rows, and the (IP, account) counter a success clears.
#[derive(Debug)]
#[must_use = "an attempt ends as a failure or a success"]
pub struct Attempt {
    ids: Vec<i64>,
    ip_account: Option<String>,
}

fn key(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// Records an attempt against `account` (the canonical login value, whether or not such an
/// account exists) from `ip` (the client's throttle key), or refuses it.
pub async fn begin_attempt(
    db: &DatabaseConnection,
    limits: &FailureLimits,
    ip: &str,
    account: &str,
) -> Result<Attempt, Refused> {
    let ip_account = key(&["ip+account", ip, account]);
    let counted: Vec<(String, Rate)> = [
        limits.per_ip_account.map(|rate| (ip_account.clone(), rate)),
        limits
            .per_account
            .map(|rate| (key(&["account", account]), rate)),
        limits.per_ip.map(|rate| (key(&["ip", ip]), rate)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if counted.is_empty() {
        return Ok(Attempt {
            ids: Vec::new(),
            ip_account: None,
        });
    }
    let now = Utc::now();
    let txn = store::begin_write(db).await?;
    let mut ids = Vec::with_capacity(counted.len());
    for (key, _) in &counted {
        ids.push(failures::insert(&txn, key, now).await?);
    }
    txn.commit().await?;
    let mut wait = 0;
    for ((key, rate), own) in counted.iter().zip(&ids) {
        let since = now - chrono::Duration::from_std(rate.period).unwrap_or(chrono::Duration::MAX);
        let before = failures::recent(db, key, since, *own, u64::from(rate.count)).await?;
        if before.len() >= rate.count as usize {
            // Admitted once the oldest of the last `count` failures leaves the window.
            wait = wait.max(seconds_until(before[before.len() - 1], rate, now));
        }
    }
    if wait > 0 {
        failures::delete_ids(db, ids).await?;
        return Err(Refused::Throttled(wait));
    }
    Ok(Attempt {
        ids,
        ip_account: limits.per_ip_account.map(|_| ip_account),
    })
}

fn seconds_until(oldest: DateTime<Utc>, rate: &Rate, now: DateTime<Utc>) -> u64 {
    let admitted =
        oldest + chrono::Duration::from_std(rate.period).unwrap_or(chrono::Duration::MAX);
    let millis = (admitted - now).num_milliseconds().max(1) as u64;
    millis.div_ceil(1000)
}

impl Attempt {
    /// The password was wrong: the attempt stays counted.
    pub fn failed(self) {}

    /// The password was right: the attempt is not a failure, and its (IP, account) counter
    /// starts again.
    pub async fn succeeded(self, db: &DatabaseConnection) -> Result<(), DbErr> {
        failures::delete_ids(db, self.ids).await?;
        if let Some(ip_account) = self.ip_account {
            failures::delete_key(db, &ip_account).await?;
        }
        Ok(())
    }

    /// No password was checked (the hash queue was full, the database failed): the attempt
    /// counts against nothing.
    pub async fn abandon(self, db: &DatabaseConnection) {
        if let Err(err) = failures::delete_ids(db, self.ids).await {
            tracing::warn!(error = %err, "could not take back an unchecked login attempt");
        }
    }
}
