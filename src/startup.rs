//! Opening the database and serving: `Application::build` binds and migrates, `run` serves
//! until the shutdown signal and lets in-flight requests finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::config::{EmailBackend, LoginField, MIN_HEADER_BYTES, Settings};
use crate::crypto::PasswordHasher;
use crate::domain::{email, password};
use crate::http::health::Readiness;
use crate::http::prometheus;
use crate::http::server::{self, Limits, Tls, TlsFiles};
use crate::mail::Mailer;
use crate::meter;
use crate::sessions;
use crate::state::AppState;
use crate::store::{self, users};
use crate::tasks::{self, Tasks};
use crate::throttle::RequestThrottle;

/// How long in-flight requests may take to finish after a shutdown signal.
const GRACE_PERIOD: Duration = Duration::from_secs(30);

/// Connects, migrates, and brings derived columns and the previous release's tokens in line
/// with the settings: the database and nothing else (no hash pool, mailer or Redis), which is
/// all `authd migrate` needs.
pub async fn open_database(settings: &Settings) -> anyhow::Result<store::Db> {
    let kind = settings.database_url.kind();
    let url = &settings.database_url;
    if let Err(problem) = url.check_userinfo() {
        anyhow::bail!("DATABASE_URL: {problem}");
    }
    // The driver's message may hold the URL: it is printed only scrubbed of the password.
    let db = store::connect(
        url.expose(),
        settings.database_max_connections,
        settings.database_timeout,
    )
    .await
    .map_err(|err| {
        anyhow::anyhow!(
            "cannot open the {} database {}: {}",
            kind.name(),
            url.redacted(),
            url.scrub(&crate::telemetry::chain(&err))
        )
    })?;
    store::migrate(&db)
        .await
        .context("cannot apply the database migrations")?;
    let email_login = settings.djoser.login_field == LoginField::Email;
    if let Err(address) = users::sync_email_login(&db, email_login, email::canonical).await? {
        anyhow::bail!(
            "AUTHD_LOGIN_FIELD=email needs unique email addresses, but several accounts share {address:?}; \
             change them, or keep LOGIN_FIELD=username"
        );
    }
    let settled = sessions::settle_legacy_expiry(&db, &settings.tokens)
        .await
        .context("cannot set the expiry of the previous release's tokens")?;
    if settled > 0 {
        tracing::info!(
            tokens = settled,
            "tokens of the previous release now expire"
        );
    }
    Ok(db)
}

/// The database ([`open_database`]), then everything requests need beside it.
pub async fn open_state(settings: Settings) -> anyhow::Result<AppState> {
    let db = open_database(&settings).await?;
    let hashing = &settings.hashing;
    let hasher = PasswordHasher::with_queue(
        hashing.cost,
        hashing.threads,
        hashing.queue_limit(),
        hashing.queue_timeout,
    )
    .context("cannot start the password hashing pool")?;
    password::preload();
    let auth = Arc::new(Authenticator::new(
        db.clone(),
        settings.token_cache_ttl,
        settings.token_cache_entries,
        settings.tokens.idle,
    ));
    let mailer = Arc::new(Mailer::new(&settings.mail)?);
    let throttling = &settings.throttling;
    let redis = throttling.redis_url.as_ref();
    if let Some(Err(problem)) = redis.map(|url| url.check_userinfo()) {
        anyhow::bail!("AUTHD_THROTTLE_REDIS_URL: {problem}");
    }
    let requests = RequestThrottle::new(
        throttling.anon,
        throttling.user,
        redis.map(|url| (url.expose(), throttling.redis_prefix.as_str())),
    )
    .map_err(|err| {
        let said = redis.map_or(err.to_string(), |url| url.scrub(&err.to_string()));
        anyhow::anyhow!("AUTHD_THROTTLE_REDIS_URL is not a Redis URL: {said}")
    })?
    .map(Arc::new);
    if let Some(requests) = &requests {
        requests.connect().await;
    }
    Ok(AppState {
        db,
        settings: Arc::new(settings),
        hasher,
        auth,
        mailer,
        requests,
        refusals: Arc::default(),
    })
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    address: SocketAddr,
    metrics: Option<Metrics>,
    tls: Option<Tls>,
    /// `SIGHUP`, caught from start-up on: its default action would kill authd.
    hangup: Signal,
}

/// The metrics listener, bound, and the recorder's handle it renders.
struct Metrics {
    listener: TcpListener,
    address: SocketAddr,
    handle: PrometheusHandle,
}

/// How often the recorder folds recorded latencies into its histograms when nobody scrapes:
/// otherwise each sample is kept until the next scrape.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // hyper panics on a smaller buffer; settings read from the environment are already
        // bounded, settings built in code are checked here.
        anyhow::ensure!(
            settings.connections.max_header_bytes >= MIN_HEADER_BYTES,
            "AUTHD_MAX_HEADER_BYTES must be at least {MIN_HEADER_BYTES}"
        );
        let bind = settings.bind;
        let hangup = signal(SignalKind::hangup()).context("cannot catch SIGHUP")?;
        // Before the database, as the listeners: a bad file stops start-up naming its setting.
        let tls = match (&settings.tls_cert_file, &settings.tls_key_file) {
            (Some(certificate), Some(key)) => Some(Tls::load(TlsFiles {
                certificate: certificate.clone(),
                key: key.clone(),
            })?),
            _ => None,
        };
        // Before the database: a wrong address fails at once, naming its setting; and every
        // family exists before the first request records into it.
        let metrics = match settings.metrics_bind {
            Some(metrics_bind) => {
                let listener = TcpListener::bind(metrics_bind).await.with_context(|| {
                    format!("AUTHD_METRICS_BIND: cannot listen on {metrics_bind}")
                })?;
                let address = listener.local_addr().with_context(|| {
                    format!("AUTHD_METRICS_BIND: cannot listen on {metrics_bind}")
                })?;
                let handle = meter::install().context("cannot set up the metrics recorder")?;
                Some(Metrics {
                    listener,
                    address,
                    handle,
                })
            }
            None => None,
        };
        let state = open_state(settings).await?;
        // Before the first request: an unknown name costs what an imported account costs. A
        // failure (the database away a moment, a hash the crates refuse to imitate) must not
        // keep authd from serving: the periodic refresh tries again.
        match tasks::follow_legacy_hashes(&state.db, &state.hasher).await {
            Ok(dummy) => tracing::debug!(%dummy, "dummy password hash"),
            Err(err) => tracing::warn!(
                error = %crate::telemetry::chain(&err),
                "the dummy hash cannot follow the legacy hashes yet; it stays authd's own"
            ),
        }
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        let address = listener
            .local_addr()
            .with_context(|| format!("cannot listen on {bind}"))?;
        Ok(Self {
            listener,
            state,
            address,
            metrics,
            tls,
            hangup,
        })
    }

    /// The bound address (the real port when the settings asked for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Where `/metrics` is served (the real port when AUTHD_METRICS_BIND asked for port 0);
    /// `None` when metrics are off.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|metrics| metrics.address)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let settings = &self.state.settings;
        tracing::info!(
            address = %self.address,
            database = settings.database_url.kind().name(),
            url_prefix = %settings.url_prefix,
            tls = self.tls.is_some(),
            hash_threads = settings.hashing.threads,
            "authd listening"
        );
        if let EmailBackend::Console = self.state.mailer.backend() {
            tracing::warn!(
                "AUTHD_EMAIL_URL=console: emails are printed to stdout; this is for development only"
            );
        }
        let connections = &settings.connections;
        if connections.keep_alive_timeout > connections.header_read_timeout {
            tracing::warn!(
                keep_alive_seconds = connections.keep_alive_timeout.as_secs(),
                header_read_seconds = connections.header_read_timeout.as_secs(),
                "AUTHD_KEEP_ALIVE_TIMEOUT_SECONDS is longer than AUTHD_HEADER_READ_TIMEOUT_SECONDS, \
                 which also bounds the wait between requests: idle connections close after the shorter"
            );
        }
        let limits = Limits {
            connections: *connections,
            trusted_proxies: settings.trusted_proxies.clone(),
            grace_period: GRACE_PERIOD,
        };
        let tasks = Tasks::start(&self.state);
        let readiness = Readiness::new(settings.database_url.expose(), self.state.requests.clone());
        let app = crate::http::build_app(self.state.clone(), Arc::clone(&readiness));
        let stopping = CancellationToken::new();
        let metrics_limits = limits.clone();
        let metrics = self.metrics.map(|metrics| {
            tracing::info!(address = %metrics.address, "metrics listening");
            let endpoint = prometheus::endpoint(metrics.handle.clone(), self.state.clone());
            let stop = stopping.clone();
            tokio::spawn(async move {
                let upkeep = keep_up(metrics.handle, stop.clone());
                let served = server::serve(
                    metrics.listener,
                    endpoint,
                    metrics_limits,
                    None,
                    stop.cancelled_owned(),
                );
                let ((), served) = tokio::join!(upkeep, served);
                served
            })
        });
        let reloads = tokio::spawn(reload_on_hangup(
            self.hangup,
            self.tls.clone(),
            stopping.clone(),
        ));
        let stop_metrics = stopping.clone();
        let shutdown = async move {
            shutdown.await;
            readiness.drain();
        };
        let served = server::serve(self.listener, app, limits, self.tls, shutdown).await;
        stop_metrics.cancel();
        if let Err(err) = reloads.await {
            tracing::warn!(error = %err, "the SIGHUP handler panicked");
        }
        if let Some(metrics) = metrics {
            match metrics.await {
                Ok(Err(err)) => tracing::warn!(error = %err, "the metrics listener failed"),
                Err(err) => tracing::warn!(error = %err, "the metrics listener panicked"),
                Ok(Ok(())) => {}
            }
        }
        tasks.stop().await;
        served
    }
}

/// On each `SIGHUP` until `stop`: reads the TLS certificate and key again (new handshakes get
/// them, open connections keep theirs); a pair that fails to load leaves the previous one.
async fn reload_on_hangup(mut hangup: Signal, tls: Option<Tls>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            received = hangup.recv() => if received.is_none() { return },
        }
        let Some(tls) = &tls else {
            tracing::info!("SIGHUP: no TLS certificate to reload (AUTHD_TLS_CERT_FILE is unset)");
            continue;
        };
        let files = tls.files();
        match tls.reload() {
            Ok(()) => tracing::info!(
                certificate = %files.certificate.display(),
                key = %files.key.display(),
                "SIGHUP: TLS certificate and key reloaded"
            ),
            Err(err) => tracing::error!(
                error = %err,
                "SIGHUP: the TLS certificate and key were not reloaded; the previous pair is still served"
            ),
        }
    }
}

/// Folds recorded latencies into the histograms every few seconds until `stop`.
async fn keep_up(handle: PrometheusHandle, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(METRICS_UPKEEP_INTERVAL) => handle.run_upkeep(),
        }
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled, so a signal that arrives as the server starts is not lost (and does
/// not kill the process before it could finish in-flight work).
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down; letting in-flight requests finish");
    })
}
