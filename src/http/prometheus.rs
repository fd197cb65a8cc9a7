//! Metrics over HTTP: each answered request counted and timed under bounded labels, and
//! `GET /metrics` (Prometheus' text format) on the listener `AUTHD_METRICS_BIND` names, never
//! on the API's. The gauges that are a reading of some state (pool, token cache, hashing queue,
//! outbox) are read when scraped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::gauge;
use metrics_exporter_prometheus::PrometheusHandle;
use poem::http::{Method, StatusCode};
use poem::web::Data;
use poem::{Endpoint, EndpointExt, Request, Response, Route, get, handler};

use crate::config::Settings;
use crate::meter;
use crate::state::AppState;
use crate::store;

use super::routes;

/// The longest a scrape waits for the outbox counts: a slow database must not make the scrape
/// time out, and then the outbox gauges keep their last reading.
const OUTBOX_COUNT_TIMEOUT: Duration = Duration::from_secs(1);

/// Counts and times every request, once metrics are on.
#[derive(Clone)]
pub(super) struct Metered {
    on: bool,
    /// The URL prefix, which the `route` label leaves out.
    prefix: Arc<str>,
}

impl Metered {
    pub(super) fn new(settings: &Settings) -> Self {
        Self {
            on: settings.metrics_bind.is_some(),
            prefix: settings.url_prefix.as_str().into(),
        }
    }

    pub(super) async fn call<E: Endpoint<Output = Response>>(
        self,
        endpoint: Arc<E>,
        request: Request,
    ) -> poem::Result<Response> {
        if !self.on {
            return endpoint.call(request).await;
        }
        let started = Instant::now();
        let route = request
            .original_uri()
            .path()
            .strip_prefix(&*self.prefix)
            .map_or("unmatched", routes::template);
        let method = method_label(request.method());
        let response = endpoint.call(request).await?;
        meter::request(
            route,
            method,
            response.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
        Ok(response)
    }
}

/// The methods authd answers, or `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The metrics listener's endpoint: `GET /metrics` and nothing else.
pub fn endpoint(handle: PrometheusHandle, state: AppState) -> impl Endpoint<Output = Response> {
    Route::new()
        .at("/metrics", get(scrape))
        .data(handle)
        .data(state)
        .map_to_response()
}

#[handler]
async fn scrape(handle: Data<&PrometheusHandle>, state: Data<&AppState>) -> Response {
    read_gauges(&state).await;
    Response::builder()
        .status(StatusCode::OK)
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}

async fn read_gauges(state: &AppState) {
    let pool = store::pool_connections(&state.db);
    gauge!(meter::DB_POOL_CONNECTIONS, "state" => "idle").set(pool.idle as f64);
    gauge!(meter::DB_POOL_CONNECTIONS, "state" => "in_use").set(pool.in_use as f64);
    gauge!(meter::TOKEN_CACHE_ENTRIES).set(state.auth.cached_tokens() as f64);
    gauge!(meter::HASH_QUEUE_DEPTH).set(state.hasher.queue_depth() as f64);
    match tokio::time::timeout(
        OUTBOX_COUNT_TIMEOUT,
        store::outbox::count_by_state(&state.db),
    )
    .await
    {
        Ok(Ok(counts)) => {
            gauge!(meter::OUTBOX_MESSAGES, "state" => "pending").set(counts.pending as f64);
            gauge!(meter::OUTBOX_MESSAGES, "state" => "sent").set(counts.sent as f64);
            gauge!(meter::OUTBOX_MESSAGES, "state" => "failed").set(counts.failed as f64);
        }
        Ok(Err(err)) => tracing::warn!(
            error = %crate::telemetry::chain(&err),
            "cannot count the outbox for /metrics"
        ),
        Err(_) => tracing::warn!("counting the outbox for /metrics took too long"),
    }
}
