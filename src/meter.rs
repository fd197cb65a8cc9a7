//! Prometheus metrics: the families authd exports, their label values, and the one recorder.
//!
//! Code records through the `metrics` facade (`metrics::counter!(…)`), which does nothing until
//! [`install`] puts the Prometheus recorder in place: authd without `AUTHD_METRICS_BIND` pays a
//! relaxed atomic load per call site. Every label value is a `&'static str` chosen here or by
//! the route table, never text a client sent, so the series stay bounded. docs/metrics.md
//! explains each family. A leaf: it names no other module of the crate, so the guard (`auth`),
//! which may depend only on `store` and `crypto`, records through the facade with the names
//! declared here.

use std::sync::OnceLock;

use metrics::{
    Label, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "authd_http_requests_total";
pub const HTTP_DURATION: &str = "authd_http_request_duration_seconds";
pub const LOGINS: &str = "authd_logins_total";
pub const REFRESHES: &str = "authd_refreshes_total";
pub const REFRESH_REUSE: &str = "authd_refresh_reuse_total";
pub const PASSWORD_HASHES: &str = "authd_password_hashes_total";
pub const HASH_QUEUE_DEPTH: &str = "authd_hash_queue_depth";
pub const HASH_QUEUE_WAIT: &str = "authd_hash_queue_wait_seconds";
pub const ADMISSION_REFUSALS: &str = "authd_admission_refusals_total";
pub const TOKEN_CACHE_REQUESTS: &str = "authd_token_cache_requests_total";
pub const TOKEN_CACHE_ENTRIES: &str = "authd_token_cache_entries";
pub const SESSIONS_OPENED: &str = "authd_sessions_opened_total";
pub const SESSIONS_ENDED: &str = "authd_sessions_ended_total";
pub const THROTTLED: &str = "authd_throttled_total";
pub const DATABASE_UNAVAILABLE: &str = "authd_database_unavailable_total";
pub const DB_POOL_CONNECTIONS: &str = "authd_db_pool_connections";
pub const OUTBOX_MESSAGES: &str = "authd_outbox_messages";
pub const OUTBOX_DROPPED: &str = "authd_outbox_dropped_total";
pub const PURGED_ROWS: &str = "authd_purged_rows_total";
pub const CONNECTIONS_OPEN: &str = "authd_connections_open";
pub const CONNECTIONS_CLOSED: &str = "authd_connections_closed_total";
pub const BODY_BUDGET_IN_USE: &str = "authd_body_budget_bytes_in_use";

/// Bucket bounds of both latency histograms, in seconds: 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How a password login ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    Success,
    /// Wrong password, no such account, or a field missing or too long.
    BadCredentials,
    /// The right password for a deactivated account.
    Inactive,
    /// Refused by a failed-login limit before its password was checked.
    Throttled,
    /// Shed by the hashing queue or the failed-login limits' patience (503).
    Overloaded,
}

impl Login {
    const ALL: [Login; 5] = [
        Login::Success,
        Login::BadCredentials,
        Login::Inactive,
        Login::Throttled,
        Login::Overloaded,
    ];

    fn label(self) -> &'static str {
        match self {
            Login::Success => "success",
            Login::BadCredentials => "bad_credentials",
            Login::Inactive => "inactive",
            Login::Throttled => "throttled",
            Login::Overloaded => "overloaded",
        }
    }
}

pub fn login(outcome: Login) {
    counter!(LOGINS, "outcome" => outcome.label()).increment(1);
}

/// How a refresh-token rotation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    Success,
    InvalidGrant,
    /// A retired refresh token presented again: its family was revoked.
    Reuse,
}

impl Refresh {
    const ALL: [Refresh; 3] = [Refresh::Success, Refresh::InvalidGrant, Refresh::Reuse];

    fn label(self) -> &'static str {
        match self {
            Refresh::Success => "success",
            Refresh::InvalidGrant => "invalid_grant",
            Refresh::Reuse => "reuse",
        }
    }
}

pub fn refresh(outcome: Refresh) {
    counter!(REFRESHES, "outcome" => outcome.label()).increment(1);
    if outcome == Refresh::Reuse {
        counter!(REFRESH_REUSE).increment(1);
    }
}

/// The password hash classes, as `crypto::HashClass::name` spells them.
pub const HASH_ALGORITHMS: [&str; 7] = [
    "argon2id",
    "argon2",
    "pbkdf2_sha256",
    "pbkdf2_sha1",
    "bcrypt_sha256",
    "bcrypt",
    "scrypt",
];

/// Why a request was shed before it could hash, or hold its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every place in the hashing queue taken (`AUTHD_HASH_QUEUE_LIMIT`).
    QueueFull,
    /// The wait expected, or waited, for a hash thread is past `AUTHD_HASH_QUEUE_TIMEOUT_MS`.
    ExpectedWait,
    /// No room in `AUTHD_BODY_MEMORY_BYTES` before the body's deadline.
    BodyBudget,
}

impl Refusal {
    const ALL: [Refusal; 3] = [
        Refusal::QueueFull,
        Refusal::ExpectedWait,
        Refusal::BodyBudget,
    ];

    fn label(self) -> &'static str {
        match self {
            Refusal::QueueFull => "queue_full",
            Refusal::ExpectedWait => "expected_wait",
            Refusal::BodyBudget => "body_budget",
        }
    }
}

pub fn refused(reason: Refusal) {
    counter!(ADMISSION_REFUSALS, "reason" => reason.label()).increment(1);
}

/// The token cache's `result` labels (recorded by `auth` through the facade).
pub const CACHE_RESULTS: [&str; 2] = ["hit", "miss"];

/// What a session was opened as.
pub const SESSION_KINDS: [&str; 3] = ["token", "oauth", "api_key"];

pub fn session_opened(kind: &'static str) {
    counter!(SESSIONS_OPENED, "kind" => kind).increment(1);
}

/// Why sessions ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Logout,
    LogoutAll,
    Expired,
    Idle,
    /// OAuth2 revocation, `DELETE /token/sessions/{id}/`, `DELETE /token/keys/{id}/`.
    Revoked,
    /// Ended to make room under `AUTHD_TOKEN_LIMIT_PER_USER`.
    Evicted,
    PasswordChange,
    Deactivated,
}

impl Ended {
    const ALL: [Ended; 8] = [
        Ended::Logout,
        Ended::LogoutAll,
        Ended::Expired,
        Ended::Idle,
        Ended::Revoked,
        Ended::Evicted,
        Ended::PasswordChange,
        Ended::Deactivated,
    ];

    fn label(self) -> &'static str {
        match self {
            Ended::Logout => "logout",
            Ended::LogoutAll => "logoutall",
            Ended::Expired => "expired",
            Ended::Idle => "idle",
            Ended::Revoked => "revoked",
            Ended::Evicted => "evicted",
            Ended::PasswordChange => "password_change",
            Ended::Deactivated => "deactivated",
        }
    }
}

pub fn sessions_ended(reason: Ended, count: u64) {
    if count > 0 {
        counter!(SESSIONS_ENDED, "reason" => reason.label()).increment(count);
    }
}

/// The limits that refuse with 429: the failed-login limits (`ip_account`, `account`, `ip`,
/// and `session` for `current_password` checks) and DRF's request rates (`anon`, `user`).
pub const THROTTLE_LIMITS: [&str; 6] = ["ip_account", "account", "ip", "session", "anon", "user"];

pub fn throttled(limit: &'static str) {
    counter!(THROTTLED, "limit" => limit).increment(1);
}

pub fn database_unavailable() {
    counter!(DATABASE_UNAVAILABLE).increment(1);
}

pub fn outbox_dropped() {
    counter!(OUTBOX_DROPPED).increment(1);
}

pub const POOL_STATES: [&str; 2] = ["idle", "in_use"];

pub const OUTBOX_STATES: [&str; 3] = ["pending", "sent", "failed"];

/// What the purge deletes, as its log line names it.
pub const PURGED_TABLES: [&str; 9] = [
    "sessions",
    "tokens",
    "links",
    "messages",
    "windows",
    "invalidations",
    "failures",
    "addresses",
    "events",
];

pub fn purged(table: &'static str, rows: u64) {
    if rows > 0 {
        counter!(PURGED_ROWS, "table" => table).increment(rows);
    }
}

/// Why the server closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// A request head not whole within `AUTHD_HEADER_READ_TIMEOUT_SECONDS` (or a connection
    /// idle that long, or a TLS handshake not finished that long after the accept).
    HeadTimeout,
    /// A request body not whole within `AUTHD_BODY_READ_TIMEOUT_SECONDS`.
    BodyTimeout,
    /// A client that stopped reading its answers.
    WriteStall,
    /// A host over its share of `AUTHD_MAX_CONNECTIONS`, closed at once.
    Cap,
}

impl Closed {
    const ALL: [Closed; 4] = [
        Closed::HeadTimeout,
        Closed::BodyTimeout,
        Closed::WriteStall,
        Closed::Cap,
    ];

    fn label(self) -> &'static str {
        match self {
            Closed::HeadTimeout => "head_timeout",
            Closed::BodyTimeout => "body_timeout",
            Closed::WriteStall => "write_stall",
            Closed::Cap => "cap",
        }
    }
}

pub fn connection_closed(reason: Closed) {
    counter!(CONNECTIONS_CLOSED, "reason" => reason.label()).increment(1);
}

/// One request answered: `route` is a route template or `unmatched`, `method` one authd
/// serves or `other`, `status` the three-digit code.
pub fn request(route: &'static str, method: &'static str, status: u16, seconds: f64) {
    let labels = vec![
        Label::from_static_parts("route", route),
        Label::from_static_parts("method", method),
        Label::new("status", status.to_string()),
    ];
    counter!(HTTP_REQUESTS, labels.clone()).increment(1);
    histogram!(HTTP_DURATION, labels).record(seconds);
}

/// The process's recorder, installed by the first call (later calls share it): `metrics` has
/// one recorder per process, and the test binary runs many applications in one.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), &LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(HASH_QUEUE_WAIT.into()), &LATENCY_BUCKETS)?
        .build_recorder();
    let handle = recorder.handle();
    // Two applications starting at once: the loser's recorder is dropped, the winner's kept.
    let handle = HANDLE.get_or_init(|| {
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder was installed first; /metrics shows nothing");
        }
        describe();
        register_at_zero();
        handle
    });
    Ok(handle.clone())
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template, method and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request, by route template, method and status"
    );
    describe_counter!(
        LOGINS,
        "Password logins (Djoser's and the OAuth2 password grant), by outcome"
    );
    describe_counter!(REFRESHES, "OAuth2 refresh-token rotations, by outcome");
    describe_counter!(
        REFRESH_REUSE,
        "Retired refresh tokens presented again (each revoked its family)"
    );
    describe_counter!(
        PASSWORD_HASHES,
        "Password hashes computed or checked on the hash threads, by algorithm"
    );
    describe_gauge!(
        HASH_QUEUE_DEPTH,
        "Places taken in the password hashing queue"
    );
    describe_histogram!(
        HASH_QUEUE_WAIT,
        Unit::Seconds,
        "Time a hash job waited for a hash thread"
    );
    describe_counter!(
        ADMISSION_REFUSALS,
        "Requests shed with 503 before hashing or holding their body, by reason"
    );
    describe_counter!(
        TOKEN_CACHE_REQUESTS,
        "Token lookups by the guard, answered from memory (hit) or the database (miss)"
    );
    describe_gauge!(TOKEN_CACHE_ENTRIES, "Verified tokens held in memory");
    describe_counter!(SESSIONS_OPENED, "Sessions opened, by kind");
    describe_counter!(SESSIONS_ENDED, "Sessions ended, by reason");
    describe_counter!(
        THROTTLED,
        "Requests refused with 429, by the limit that refused them"
    );
    describe_counter!(
        DATABASE_UNAVAILABLE,
        "Requests answered 503 because the database was unavailable"
    );
    describe_gauge!(
        DB_POOL_CONNECTIONS,
        "Database pool connections, idle or in use"
    );
    describe_gauge!(OUTBOX_MESSAGES, "Email outbox rows, by state");
    describe_counter!(
        OUTBOX_DROPPED,
        "Emails given up after their last attempt failed"
    );
    describe_counter!(PURGED_ROWS, "Rows deleted by the periodic purge, by table");
    describe_gauge!(
        CONNECTIONS_OPEN,
        "Open HTTP connections (the metrics listener's included)"
    );
    describe_counter!(
        CONNECTIONS_CLOSED,
        "Connections the server closed, by reason"
    );
    describe_gauge!(
        BODY_BUDGET_IN_USE,
        Unit::Bytes,
        "Bytes of AUTHD_BODY_MEMORY_BYTES held by request bodies"
    );
}

/// Every family exists from start-up, each bounded label value at 0, so that dashboards and
/// `rate()` see a series before its first event. The HTTP families start with the health
/// probe's series: their labels are known only once requests arrive.
fn register_at_zero() {
    let health = [("route", "/healthz"), ("method", "GET"), ("status", "200")];
    counter!(HTTP_REQUESTS, &health).absolute(0);
    let _ = histogram!(HTTP_DURATION, &health);
    for outcome in Login::ALL {
        counter!(LOGINS, "outcome" => outcome.label()).absolute(0);
    }
    for outcome in Refresh::ALL {
        counter!(REFRESHES, "outcome" => outcome.label()).absolute(0);
    }
    counter!(REFRESH_REUSE).absolute(0);
    for algorithm in HASH_ALGORITHMS {
        counter!(PASSWORD_HASHES, "algorithm" => algorithm).absolute(0);
    }
    gauge!(HASH_QUEUE_DEPTH).set(0.0);
    let _ = histogram!(HASH_QUEUE_WAIT);
    for reason in Refusal::ALL {
        counter!(ADMISSION_REFUSALS, "reason" => reason.label()).absolute(0);
    }
    for result in CACHE_RESULTS {
        counter!(TOKEN_CACHE_REQUESTS, "result" => result).absolute(0);
    }
    gauge!(TOKEN_CACHE_ENTRIES).set(0.0);
    for kind in SESSION_KINDS {
        counter!(SESSIONS_OPENED, "kind" => kind).absolute(0);
    }
    for reason in Ended::ALL {
        counter!(SESSIONS_ENDED, "reason" => reason.label()).absolute(0);
    }
    for limit in THROTTLE_LIMITS {
        counter!(THROTTLED, "limit" => limit).absolute(0);
    }
    counter!(DATABASE_UNAVAILABLE).absolute(0);
    for state in POOL_STATES {
        gauge!(DB_POOL_CONNECTIONS, "state" => state).set(0.0);
    }
    for state in OUTBOX_STATES {
        gauge!(OUTBOX_MESSAGES, "state" => state).set(0.0);
    }
    counter!(OUTBOX_DROPPED).absolute(0);
    for table in PURGED_TABLES {
        counter!(PURGED_ROWS, "table" => table).absolute(0);
    }
    gauge!(CONNECTIONS_OPEN).set(0.0);
    for reason in Closed::ALL {
        counter!(CONNECTIONS_CLOSED, "reason" => reason.label()).absolute(0);
    }
    gauge!(BODY_BUDGET_IN_USE).set(0.0);
}
