//! `/healthz` (the process answers) and `/readyz` (this instance should get traffic), for load
//! balancers: readiness answers within [`READINESS_DEADLINE`] whatever the database does, on a
//! connection of its own, and says 503 from the moment shutdown begins so balancers drain
//! first.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{Response, handler};

use crate::store::probe::Probe;

use super::error::json_response;

/// The longest a readiness check waits for the database: balancers probe every few seconds
/// and time out in a few more.
pub const READINESS_DEADLINE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Readiness {
    probe: Probe,
    draining: AtomicBool,
}

impl Readiness {
    pub fn new(database_url: &str) -> Arc<Self> {
        Arc::new(Self {
            probe: Probe::new(database_url),
            draining: AtomicBool::new(false),
        })
    }

    /// Shutdown began: from now on, not ready.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
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
    match readiness.probe.check(READINESS_DEADLINE).await {
        Ok(()) => status(StatusCode::OK, "ok"),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            status(StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
    }
}
