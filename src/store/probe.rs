//! The readiness probe's own connection: a pool exhausted by load is not the database being
//! down, so readiness never waits in the pool's queue.

use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::Mutex;

/// Why the database did not answer a probe in time.
#[derive(Debug, thiserror::Error)]
pub enum ProbeFailed {
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    #[error(transparent)]
    Database(#[from] DbErr),
}

pub struct Probe {
    url: String,
    connection: Mutex<Option<DatabaseConnection>>,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe").finish_non_exhaustive()
    }
}

impl Probe {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            connection: Mutex::new(None),
        }
    }

    /// Whether the database answers `SELECT 1` within `deadline`, connecting first if the
    /// probe has no connection. A connection that failed or ran late is dropped, so the next
    /// probe starts afresh.
    pub async fn check(&self, deadline: Duration) -> Result<(), ProbeFailed> {
        let started = tokio::time::Instant::now();
        let Ok(mut connection) = tokio::time::timeout(deadline, self.connection.lock()).await
        else {
            return Err(ProbeFailed::TimedOut(deadline));
        };
        let left = deadline.saturating_sub(started.elapsed());
        let answered = tokio::time::timeout(left, async {
            let db = match &mut *connection {
                Some(db) => db,
                none => none.insert(super::connect(&self.url, 1, left).await?),
            };
            super::ping(db).await
        })
        .await;
        match answered {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => {
                *connection = None;
                Err(err.into())
            }
            Err(_) => {
                *connection = None;
                Err(ProbeFailed::TimedOut(deadline))
            }
        }
    }
}
