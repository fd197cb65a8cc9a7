//! `/healthz` (the process answers) and `/readyz` (this instance should get traffic), for load
//! balancers: readiness answers within [`READINESS_DEADLINE`] whatever the database does, on a
//! connection of its own, and says 503 from the moment shutdown begins so balancers drain
//! first. One probe's answer stands for [`READINESS_REUSE`]: a flood of `/readyz` requests
//! costs the database one probe per period, and cannot make the instance look unready by
//! queueing up behind its own probes.
//!
//! The answer names what is down. Only the database decides the status: Redis only shares the
//! request-rate throttles, which go on without it (fail-open, on purpose), so an instance
//! whose Redis is away still serves correctly and must keep its traffic.

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
use crate::throttle::RequestThrottle;

use super::error::json_response;

/// The longest a readiness check waits for the database: balancers probe every few seconds
/// and time out in a few more.
pub const READINESS_DEADLINE: Duration = Duration::from_secs(1);

/// How long one probe's answer stands.
pub const READINESS_REUSE: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub struct Readiness {
    probe: Probe,
    /// The request-rate throttles, whose Redis (if they use one) is reported on.
    requests: Option<Arc<RequestThrottle>>,
    draining: AtomicBool,
    last: Reused,
}

/// What one round of probes found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Health {
    database: bool,
    /// `None`: no Redis is configured.
    redis: Option<bool>,
}

impl Readiness {
    pub fn new(database_url: &str, requests: Option<Arc<RequestThrottle>>) -> Arc<Self> {
        Arc::new(Self {
            probe: Probe::new(database_url),
            requests,
            draining: AtomicBool::new(false),
            last: Reused::new(READINESS_REUSE),
        })
    }

    /// Shutdown began: from now on, not ready.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// The database and Redis, probed side by side within the one deadline.
    async fn health(&self) -> Health {
        self.last
            .get(async {
                let database = async {
                    match self.probe.check(READINESS_DEADLINE).await {
                        Ok(()) => true,
                        Err(err) => {
                            tracing::warn!(error = %err, "readiness check failed");
                            false
                        }
                    }
                };
                let redis = async {
                    match &self.requests {
                        Some(requests) => requests.redis_answers(READINESS_DEADLINE).await,
                        None => None,
                    }
                };
                let (database, redis) = tokio::join!(database, redis);
                Health { database, redis }
            })
            .await
    }
}

/// The last answer of a check and when it was made: reused while fresh, and made by one caller
/// at a time (the others wait for it, then reuse it).
#[derive(Debug)]
struct Reused<T = Health> {
    fresh_for: Duration,
    last: Mutex<Option<(Instant, T)>>,
}

impl<T: Copy> Reused<T> {
    fn new(fresh_for: Duration) -> Self {
        Self {
            fresh_for,
            last: Mutex::new(None),
        }
    }

    async fn get(&self, check: impl Future<Output = T>) -> T {
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

#[handler]
pub(super) fn healthz() -> Response {
    json_response(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

/// `{"status", "database", "redis"}`, and `"shutting_down": true` once shutdown began (the
/// probes still run, so the answer still says what is down).
#[handler]
pub(super) async fn readyz(Data(readiness): Data<&Arc<Readiness>>) -> Response {
    let health = readiness.health().await;
    let draining = readiness.draining.load(Ordering::Relaxed);
    let up = |answers: bool| if answers { "ok" } else { "down" };
    let ready = health.database && !draining;
    let mut body = serde_json::json!({
        "status": if ready { "ok" } else { "unavailable" },
        "database": up(health.database),
        "redis": health.redis.map_or("off", up),
    });
    if draining {
        body["shutting_down"] = serde_json::json!(true);
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &body)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A thousand callers at once make one check; a caller after the answer went stale makes
    /// the next.
    #[tokio::test]
    async fn one_check_answers_every_caller_while_it_is_fresh() {
        let reused = Reused::<bool>::new(Duration::from_millis(200));
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
