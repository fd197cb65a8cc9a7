//! `/healthz` (the process answers) and `/readyz` (this instance should get traffic), for load
//! balancers: readiness answers within [`READINESS_DEADLINE`] whatever the database does, on a
//! connection of its own, and says 503 from the moment shutdown begins so balancers drain
//! first. One probe's answer stands for [`READINESS_REUSE`]: a flood of `/readyz` requests
//! costs the database one probe per period, and cannot make the instance look unready by
//! queueing up behind its own probes.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{Response, handler};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::store::probe::Probe;

use super::error::json_response;

/// The longest a readiness check waits for the database: balancers probe every few seconds
/// and time out in a few more.
pub const READINESS_DEADLINE: Duration = Duration::from_secs(1);

/// How long one probe's answer stands.
pub const READINESS_REUSE: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub struct Readiness {
    probe: Probe,
    draining: AtomicBool,
    last: Reused,
}

impl Readiness {
    pub fn new(database_url: &str) -> Arc<Self> {
        Arc::new(Self {
            probe: Probe::new(database_url),
            draining: AtomicBool::new(false),
            last: Reused::new(READINESS_REUSE),
        })
    }

    /// Shutdown began: from now on, not ready.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    async fn database_answers(&self) -> bool {
        self.last
            .get(async {
                match self.probe.check(READINESS_DEADLINE).await {
                    Ok(()) => true,
                    Err(err) => {
                        tracing::warn!(error = %err, "readiness check failed");
                        false
                    }
                }
            })
            .await
    }
}

/// The last answer of a check and when it was made: reused while fresh, and made by one caller
/// at a time (the others wait for it, then reuse it).
#[derive(Debug)]
struct Reused {
    fresh_for: Duration,
    last: Mutex<Option<(Instant, bool)>>,
}

impl Reused {
    fn new(fresh_for: Duration) -> Self {
        Self {
            fresh_for,
            last: Mutex::new(None),
        }
    }

    async fn get(&self, check: impl Future<Output = bool>) -> bool {
        let mut last = self.last.lock().await;
        if let Some((made, answer)) = *last
            && made.elapsed() < self.fresh_for
        {
            return answer;
        }
        let answer = check.await;
        *last = Some((Instant::now(), answer));
        answer
    }
}

fn status(status: StatusCode, text: &str) -> Response {
    json_response(status, &serde_json::json!({ "status": text }))
}

#[handler]
pub(super) fn healthz() -> Response {
    status(StatusCode::OK, "ok")
}

#[handler]
pub(super) async fn readyz(Data(readiness): Data<&Arc<Readiness>>) -> Response {
    if readiness.draining.load(Ordering::Relaxed) {
        return status(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    match readiness.database_answers().await {
        true => status(StatusCode::OK, "ok"),
        false => status(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A thousand callers at once make one check; a caller after the answer went stale makes
    /// the next.
    #[tokio::test]
    async fn one_check_answers_every_caller_while_it_is_fresh() {
        let reused = Reused::new(Duration::from_millis(200));
        let checks = AtomicUsize::new(0);
        let check = || async {
            checks.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
            true
        };
        let answers = futures::future::join_all((0..1000).map(|_| reused.get(check()))).await;
        assert!(answers.into_iter().all(|ready| ready));
        assert_eq!(checks.load(Ordering::Relaxed), 1);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(reused.get(check()).await);
        assert_eq!(checks.load(Ordering::Relaxed), 2);
    }
}
