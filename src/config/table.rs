//! Every setting, declared once: its file key, environment variable, flag, bounds, an example
//! value and its documentation. Loading, the unknown-key check, the round-trip test and the
//! settings table in README.md all read this list.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;

use super::{
    ConflictStatus, DatabaseUrl, EmailBackend, LimitPolicy, LoginField, Settings, UserExtraField,
    check_mail_text, parse_keywords, parse_prefix,
};
use crate::telemetry::LogFormat;
use crate::throttle::Rate;

/// Where a setting is listed in the documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Server,
    Tokens,
    Throttling,
    Passwords,
    Djoser,
    Email,
    Maintenance,
}

impl Section {
    pub const ALL: [Section; 7] = [
        Section::Server,
        Section::Tokens,
        Section::Throttling,
        Section::Passwords,
        Section::Djoser,
        Section::Email,
        Section::Maintenance,
    ];

    fn title(self) -> &'static str {
        match self {
            Section::Server => "Server and database",
            Section::Tokens => "Tokens",
            Section::Throttling => "Throttling",
            Section::Passwords => "Passwords and hashing",
            Section::Djoser => "Djoser switches (djoser's names and defaults)",
            Section::Email => "Email",
            Section::Maintenance => "Maintenance",
        }
    }
}

/// One setting.
pub struct Def {
    /// The key in the TOML file: the variable's name in lower case, without `AUTHD_`.
    pub key: &'static str,
    pub env: &'static str,
    pub flag: Option<&'static str>,
    pub section: Section,
    pub doc: &'static str,
    /// The default as documented, when it depends on something else (cores, the database).
    pub default_doc: Option<&'static str>,
    /// A valid value other than the default; the round-trip test sets it through every source.
    pub example: &'static str,
    pub(super) set: fn(&mut Settings, &str) -> Result<(), String>,
    pub(super) get: fn(&Settings) -> String,
    allowed: fn() -> String,
}

impl Def {
    /// The value a loaded `Settings` holds for this setting, written as the file or the
    /// environment would give it.
    pub fn show(&self, settings: &Settings) -> String {
        (self.get)(settings)
    }
}

/// How one kind of value is read, written back and described.
trait Kind {
    type Value;
    fn parse(&self, text: &str) -> Result<Self::Value, String>;
    fn show(&self, value: &Self::Value) -> String;
    fn allowed(&self) -> String;
}

struct Bool;

impl Kind for Bool {
    type Value = bool;
    fn parse(&self, text: &str) -> Result<bool, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(format!("expected true/false or 1/0, got {text:?}")),
        }
    }
    fn show(&self, value: &bool) -> String {
        value.to_string()
    }
    fn allowed(&self) -> String {
        "`true`/`false`".into()
    }
}

/// A whole number within bounds.
struct Int<T> {
    min: T,
    max: T,
}

impl<T: FromStr + Display + PartialOrd + Copy> Kind for Int<T> {
    type Value = T;
    fn parse(&self, text: &str) -> Result<T, String> {
        let out_of_range = || {
            format!(
                "expected a whole number from {} to {}, got {text:?}",
                self.min, self.max
            )
        };
        let value: T = text.trim().parse().map_err(|_| out_of_range())?;
        if value < self.min || value > self.max {
            return Err(out_of_range());
        }
        Ok(value)
    }
    fn show(&self, value: &T) -> String {
        value.to_string()
    }
    fn allowed(&self) -> String {
        format!("{}–{}", self.min, self.max)
    }
}

/// An optional whole number: the default is derived from other settings.
struct Derived<T>(Int<T>);

impl<T: FromStr + Display + PartialOrd + Copy> Kind for Derived<T> {
    type Value = Option<T>;
    fn parse(&self, text: &str) -> Result<Option<T>, String> {
        self.0.parse(text).map(Some)
    }
    fn show(&self, value: &Option<T>) -> String {
        value.map(|v| v.to_string()).unwrap_or_default()
    }
    fn allowed(&self) -> String {
        self.0.allowed()
    }
}

/// A duration in whole units of `unit`.
struct Span {
    unit: Duration,
    min: u64,
    max: u64,
}

impl Span {
    const fn seconds(min: u64, max: u64) -> Self {
        Span {
            unit: Duration::from_secs(1),
            min,
            max,
        }
    }
    const fn millis(min: u64, max: u64) -> Self {
        Span {
            unit: Duration::from_millis(1),
            min,
            max,
        }
    }
}

impl Kind for Span {
    type Value = Duration;
    fn parse(&self, text: &str) -> Result<Duration, String> {
        let count = Int {
            min: self.min,
            max: self.max,
        }
        .parse(text)?;
        Ok(self.unit * u32::try_from(count).map_err(|_| format!("{count} is too large"))?)
    }
    fn show(&self, value: &Duration) -> String {
        (value.as_nanos() / self.unit.as_nanos()).to_string()
    }
    fn allowed(&self) -> String {
        format!("{}–{}", self.min, self.max)
    }
}

/// A duration in seconds: zero (off), or within bounds.
struct SecondsOrOff {
    min: u64,
    max: u64,
}

impl Kind for SecondsOrOff {
    type Value = Duration;
    fn parse(&self, text: &str) -> Result<Duration, String> {
        if text.trim() == "0" {
            return Ok(Duration::ZERO);
        }
        Span::seconds(self.min, self.max).parse(text).map_err(|_| {
            format!(
                "expected 0 (off) or a whole number from {} to {}, got {text:?}",
                self.min, self.max
            )
        })
    }
    fn show(&self, value: &Duration) -> String {
        value.as_secs().to_string()
    }
    fn allowed(&self) -> String {
        format!("`0`, {}–{}", self.min, self.max)
    }
}

/// Free text, checked by a function that explains what is wrong.
struct Text(fn(&str) -> Result<String, String>);

impl Kind for Text {
    type Value = String;
    fn parse(&self, text: &str) -> Result<String, String> {
        (self.0)(text)
    }
    fn show(&self, value: &String) -> String {
        value.clone()
    }
    fn allowed(&self) -> String {
        String::new()
    }
}

/// Text whose default is derived from another setting.
struct OptionalText(fn(&str) -> Result<String, String>);

impl Kind for OptionalText {
    type Value = Option<String>;
    fn parse(&self, text: &str) -> Result<Option<String>, String> {
        (self.0)(text).map(Some)
    }
    fn show(&self, value: &Option<String>) -> String {
        value.clone().unwrap_or_default()
    }
    fn allowed(&self) -> String {
        String::new()
    }
}

/// Any value of a type that parses itself.
struct Parsed<T>(fn(&str) -> Result<T, String>, fn(&T) -> String);

impl<T> Kind for Parsed<T> {
    type Value = T;
    fn parse(&self, text: &str) -> Result<T, String> {
        (self.0)(text)
    }
    fn show(&self, value: &T) -> String {
        (self.1)(value)
    }
    fn allowed(&self) -> String {
        String::new()
    }
}

fn socket_address(text: &str) -> Result<SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| "expected an address such as 127.0.0.1:8000".into())
}

fn optional_socket_address(text: &str) -> Result<Option<SocketAddr>, String> {
    match text.trim() {
        "" => Ok(None),
        address => socket_address(address).map(Some),
    }
}

fn cidr_list(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!("expected addresses or CIDR ranges such as 10.0.0.0/8, got {item:?}")
                })
        })
        .collect()
}

fn rate(text: &str) -> Result<Option<Rate>, String> {
    Rate::parse(text)
}

fn show_rate(rate: &Option<Rate>) -> String {
    rate.map_or("off".to_owned(), |rate| rate.to_string())
}

fn redis_url(text: &str) -> Result<Option<DatabaseUrl>, String> {
    match text.trim() {
        "" => Ok(None),
        url if url.starts_with("redis://") || url.starts_with("rediss://") => {
            let url = DatabaseUrl::new(url);
            url.check_userinfo()?;
            Ok(Some(url))
        }
        _ => Err("expected redis://host:port[/db]".into()),
    }
}

fn redis_prefix(text: &str) -> Result<String, String> {
    match text.trim() {
        "" => Err("expected a key prefix such as `authd:throttle:`".into()),
        prefix if prefix.len() > 64 => Err("at most 64 bytes".into()),
        prefix => Ok(prefix.to_owned()),
    }
}

fn log_format(text: &str) -> Result<LogFormat, String> {
    match text.trim() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected `text` or `json`".into()),
    }
}

fn limit_policy(text: &str) -> Result<LimitPolicy, String> {
    match text.trim() {
        "evict_oldest" => Ok(LimitPolicy::EvictOldest),
        "deny" => Ok(LimitPolicy::Deny),
        _ => Err("expected `evict_oldest` or `deny`".into()),
    }
}

/// Exact browser origins: `scheme://host[:port]`, nothing after.
fn origins(text: &str) -> Result<Vec<String>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let url = url::Url::parse(item).map_err(|_| format!("{item:?} is not an origin"))?;
            let origin = url.origin().ascii_serialization();
            let bare = matches!(url.scheme(), "http" | "https")
                && url.path() == "/"
                && url.query().is_none()
                && url.fragment().is_none()
                && item.trim_end_matches('/') == origin;
            if bare {
                Ok(origin)
            } else {
                Err(format!(
                    "expected origins such as https://app.example.com (scheme, host, port; no path), got {item:?}"
                ))
            }
        })
        .collect()
}

fn user_extra_fields(text: &str) -> Result<Vec<UserExtraField>, String> {
    let mut fields = Vec::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let field = UserExtraField::ALL
            .into_iter()
            .find(|field| field.name() == item)
            .ok_or_else(|| {
                let known: Vec<&str> = UserExtraField::ALL.iter().map(|f| f.name()).collect();
                format!("{item:?} is not one of {}", known.join(","))
            })?;
        if !fields.contains(&field) {
            fields.push(field);
        }
    }
    fields.sort();
    Ok(fields)
}

fn show_user_extra_fields(fields: &[UserExtraField]) -> String {
    fields
        .iter()
        .map(|field| field.name())
        .collect::<Vec<_>>()
        .join(",")
}

fn conflict_status(text: &str) -> Result<ConflictStatus, String> {
    match text.trim() {
        "400" => Ok(ConflictStatus::BadRequest),
        "409" => Ok(ConflictStatus::Conflict),
        _ => Err("expected `400` or `409`".into()),
    }
}

fn login_field(text: &str) -> Result<LoginField, String> {
    match text.trim() {
        "username" => Ok(LoginField::Username),
        "email" => Ok(LoginField::Email),
        _ => Err("expected `username` or `email`".into()),
    }
}

fn path(text: &str) -> Result<PathBuf, String> {
    match text.trim() {
        "" => Err("must not be empty".into()),
        path => Ok(PathBuf::from(path)),
    }
}

macro_rules! mail_text {
    ($name:literal) => {
        |text: &str| check_mail_text($name, text)
    };
}

macro_rules! optional {
    () => {
        None
    };
    ($value:expr) => {
        Some($value)
    };
}

/// Declares one setting: the kind decides parsing, bounds and how the value is written back.
macro_rules! setting {
    (
        $key:literal, $env:literal, $section:ident, $kind:expr, |$s:ident| $field:expr,
        example $example:literal, $doc:literal
        $(, default $default:literal)? $(, flag $flag:literal)?
    ) => {
        Def {
            key: $key,
            env: $env,
            flag: optional!($($flag)?),
            section: Section::$section,
            doc: $doc,
            default_doc: optional!($($default)?),
            example: $example,
            set: |$s: &mut Settings, text: &str| {
                $field = $kind.parse(text)?;
                Ok(())
            },
            get: |$s: &Settings| $kind.show(&$field),
            allowed: || $kind.allowed(),
        }
    };
}

macro_rules! djoser_flag {
    ($key:literal, $env:literal, $field:ident, $doc:literal) => {
        setting!($key, $env, Djoser, Bool, |s| s.djoser.$field, example "true", $doc)
    };
}

pub static SETTINGS: &[Def] = &[
    setting!("bind", "AUTHD_BIND", Server, Parsed(socket_address, |a: &SocketAddr| a.to_string()),
        |s| s.bind, example "127.0.0.1:9000", "address to listen on", flag "--bind"),
    setting!("metrics_bind", "AUTHD_METRICS_BIND", Server,
        Parsed(optional_socket_address, |a: &Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default()),
        |s| s.metrics_bind, example "127.0.0.1:9100",
        "address of a separate listener that serves Prometheus metrics at `GET /metrics` (docs/metrics.md), under the same connection limits; unset: no metrics. Keep it off the public network: the main port never serves `/metrics`"),
    setting!("tls_cert_file", "AUTHD_TLS_CERT_FILE", Server,
        Parsed(|t: &str| path(t).map(Some), |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).unwrap_or_default()),
        |s| s.tls_cert_file, example "/etc/authd/tls/cert.pem",
        "PEM certificate chain (server certificate first): with `AUTHD_TLS_KEY_FILE`, `AUTHD_BIND` serves HTTPS (HTTP/1.1 only); `SIGHUP` reloads both files (see TLS); unset: plain HTTP"),
    setting!("tls_key_file", "AUTHD_TLS_KEY_FILE", Server,
        Parsed(|t: &str| path(t).map(Some), |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).unwrap_or_default()),
        |s| s.tls_key_file, example "/etc/authd/tls/key.pem",
        "PEM private key (PKCS#8, RSA or SEC1) of the certificate in `AUTHD_TLS_CERT_FILE`; set both or neither"),
    setting!("database_url", "DATABASE_URL", Server,
        Parsed(|t: &str| super::DatabaseUrl::parse(t), |u: &super::DatabaseUrl| u.expose().to_owned()),
        |s| s.database_url, example "postgres://authd@db.example.com/authd",
        "`sqlite://PATH?mode=rwc` or `postgres://user:pass@host/db`", flag "--database-url"),
    setting!("database_max_connections", "AUTHD_DATABASE_MAX_CONNECTIONS", Server,
        Int { min: 1u32, max: 1000 }, |s| s.database_max_connections, example "20",
        "connection pool size", default "8 (SQLite), 10 (PostgreSQL)"),
    setting!("database_timeout_ms", "AUTHD_DATABASE_TIMEOUT_MS", Server,
        Span::millis(100, 600_000), |s| s.database_timeout, example "2000",
        "the longest wait for the database (a pooled or new connection, SQLite's lock); past it the request gets 503 with `Retry-After`"),
    setting!("url_prefix", "AUTHD_URL_PREFIX", Server, Text(parse_prefix), |s| s.url_prefix,
        example "/auth", "e.g. `/auth`: every route, docs and health checks included, moves under it"),
    setting!("log_format", "AUTHD_LOG_FORMAT", Server,
        Parsed(log_format, |f: &LogFormat| f.name().to_owned()), |s| s.log_format, example "json",
        "`text` (lines for people) or `json` (one object per line on stderr, for log shippers; the shape is in docs/logging.md)"),
    setting!("trusted_proxies", "AUTHD_TRUSTED_PROXIES", Server,
        Parsed(cidr_list, |list: &Vec<IpNet>| list.iter().map(IpNet::to_string).collect::<Vec<_>>().join(",")),
        |s| s.trusted_proxies, example "10.0.0.0/8,192.168.1.7/32",
        "reverse proxies (addresses or CIDR ranges, comma-separated) whose `X-Forwarded-For` is believed: the client is the rightmost hop that is not one of them. Name only your own proxies: a range that includes clients lets them claim any address, an account owner's included, whose logins the per-account failure limit exempts"),
    setting!("header_read_timeout_seconds", "AUTHD_HEADER_READ_TIMEOUT_SECONDS", Server,
        Span::seconds(1, 3600), |s| s.connections.header_read_timeout, example "5",
        "from the moment a connection can take a request (just opened, or the previous answer sent) to the end of the request's head, however it trickles in; else the connection closes. So it also bounds the idle wait between requests"),
    setting!("body_read_timeout_seconds", "AUTHD_BODY_READ_TIMEOUT_SECONDS", Server,
        Span::seconds(1, 3600), |s| s.connections.body_read_timeout, example "10",
        "a request's body must arrive whole within this time of its head, else 408 and the connection closes; and a connection with answers waiting must take at least 1 KiB of them in each such period, else it closes"),
    setting!("keep_alive_timeout_seconds", "AUTHD_KEEP_ALIVE_TIMEOUT_SECONDS", Server,
        Span::seconds(1, 3600), |s| s.connections.keep_alive_timeout, example "5",
        "a connection on which no request begins within this time of the last answer (or of opening) closes; the header read timeout bounds this wait too, so the smaller of the two applies (a larger value logs a warning)"),
    setting!("max_header_bytes", "AUTHD_MAX_HEADER_BYTES", Server,
        Int { min: super::MIN_HEADER_BYTES, max: 262_144 }, |s| s.connections.max_header_bytes, example "8192",
        "largest request head (request line and header fields); beyond it, 431 and the connection closes"),
    setting!("max_connections", "AUTHD_MAX_CONNECTIONS", Server,
        Int { min: 1usize, max: 1_000_000 }, |s| s.connections.max_connections, example "512",
        "open connections, all clients together; at the cap, new connections wait in the listen backlog until one closes. One host (IPv6: one /64) may hold an eighth of them; `AUTHD_TRUSTED_PROXIES` are exempt"),
    setting!("body_memory_bytes", "AUTHD_BODY_MEMORY_BYTES", Server,
        Int { min: 20_971_520usize, max: 68_719_476_736 }, |s| s.connections.body_memory_bytes, example "134217728",
        "memory that request bodies being read, or waiting for a hash thread, may hold at once; bodies up to 64 KiB never wait for it, one client holds at most an eighth of it, and a body that finds no room by its deadline gets 503"),
    setting!("token_keywords", "AUTHD_TOKEN_KEYWORDS", Tokens,
        Parsed(parse_keywords, |k: &Vec<String>| k.join(",")), |s| s.token_keywords,
        example "Bearer", "accepted `Authorization` keywords; the first is sent in `WWW-Authenticate`"),
    setting!("token_cache_seconds", "AUTHD_TOKEN_CACHE_SECONDS", Tokens, Span::seconds(0, 3600),
        |s| s.token_cache_ttl, example "30",
        "how long a verified token may be answered from memory; `0` asks the database every time"),
    setting!("token_cache_entries", "AUTHD_TOKEN_CACHE_ENTRIES", Tokens,
        Int { min: 1u64, max: 100_000_000 }, |s| s.token_cache_entries, example "500000",
        "the most verified tokens held in memory at once, about 1 KB each (see memory to plan for); beyond it the least used are dropped (and asked of the database again). Size it to the tokens in use within `AUTHD_TOKEN_CACHE_SECONDS`"),
    setting!("token_ttl_seconds", "AUTHD_TOKEN_TTL_SECONDS", Tokens, Span::seconds(0, 315_360_000),
        |s| s.tokens.ttl, example "3600",
        "absolute lifetime of a Djoser login token, fixed when it is minted; `0`: never expires (as in DRF)"),
    setting!("token_idle_seconds", "AUTHD_TOKEN_IDLE_SECONDS", Tokens,
        SecondsOrOff { min: 60, max: 315_360_000 },
        |s| s.tokens.idle, example "1800",
        "a token (Djoser or access) unused this long dies; `0`: no idle limit. At least a minute: each session's last use is written in the background every quarter of this (at most every minute), so a shorter limit would log out tokens in use"),
    setting!("token_limit_per_user", "AUTHD_TOKEN_LIMIT_PER_USER", Tokens, Int { min: 0u32, max: 100_000 },
        |s| s.tokens.limit_per_user, example "5", "sessions a user may have at once; `0`: no limit"),
    setting!("token_limit_policy", "AUTHD_TOKEN_LIMIT_POLICY", Tokens,
        Parsed(limit_policy, |p: &LimitPolicy| p.name().to_owned()), |s| s.tokens.limit_policy,
        example "deny",
        "at the limit: `evict_oldest` ends the oldest session, `deny` refuses the login (403)"),
    setting!("access_token_ttl_seconds", "AUTHD_ACCESS_TOKEN_TTL_SECONDS", Tokens,
        Span::seconds(1, 86_400), |s| s.tokens.access_ttl, example "300",
        "lifetime of an OAuth2 access token"),
    setting!("refresh_token_ttl_seconds", "AUTHD_REFRESH_TOKEN_TTL_SECONDS", Tokens,
        Span::seconds(1, 315_360_000), |s| s.tokens.refresh_ttl, example "86400",
        "lifetime of an OAuth2 refresh family from its password grant; rotation never extends it"),
    setting!("refresh_reuse_grace_seconds", "AUTHD_REFRESH_REUSE_GRACE_SECONDS", Tokens,
        Span::seconds(0, 3600), |s| s.tokens.refresh_reuse_grace, example "0",
        "a retired refresh token presented again within this time gets a new pair (a retry after a lost answer), and the pair its first rotation returned is retired with no grace of its own (presented, it revokes the family); after this time, the whole family is revoked"),
    setting!("api_keys_per_user", "AUTHD_API_KEYS_PER_USER", Tokens, Int { min: 0u32, max: 10_000 },
        |s| s.tokens.api_keys_per_user, example "5",
        "API keys a user may hold at once (they do not count toward `AUTHD_TOKEN_LIMIT_PER_USER`); `0`: no keys can be created"),
    setting!("api_key_max_ttl_seconds", "AUTHD_API_KEY_MAX_TTL_SECONDS", Tokens,
        Span::seconds(60, 315_360_000), |s| s.tokens.api_key_max_ttl, example "2592000",
        "the longest an API key lives, and the lifetime of one created without `expires_in`; keys have no idle limit"),
    setting!("api_keys_survive_password_change", "AUTHD_API_KEYS_SURVIVE_PASSWORD_CHANGE", Tokens,
        Bool, |s| s.tokens.api_keys_survive_password_change, example "false",
        "a user's own `set_password` leaves their API keys working (a program's key should not break when its person changes a password); a reset, `authd changepassword`, deactivation and `logoutall` always end them"),
    setting!("cors_allowed_origins", "AUTHD_CORS_ALLOWED_ORIGINS", Server,
        Parsed(origins, |list: &Vec<String>| list.join(",")), |s| s.cors_allowed_origins,
        example "https://app.example.com,http://localhost:3000",
        "browser origins allowed to call the API (exact, comma-separated); others get no CORS headers"),
    setting!("throttle_failures_per_ip_account", "AUTHD_THROTTLE_FAILURES_PER_IP_ACCOUNT", Throttling,
        Parsed(rate, show_rate), |s| s.throttling.failures.per_ip_account, example "5/m",
        "failed password checks allowed per client IP and account (login and the OAuth2 password grant); DRF's rate syntax with a count before the unit, or `off`",
        default "`10/15m`"),
    setting!("throttle_failures_per_account", "AUTHD_THROTTLE_FAILURES_PER_ACCOUNT", Throttling,
        Parsed(rate, show_rate), |s| s.throttling.failures.per_account, example "50/h",
        "failed password checks allowed per account from addresses it did not log in from in the last 30 days (NIST 800-63B: at most 100); each of its last ten login addresses (IPv6: /64) is exempt, and held only by the limit above. The exemption trusts the client address: see `AUTHD_TRUSTED_PROXIES`",
        default "`100/h`"),
    setting!("throttle_failures_per_ip", "AUTHD_THROTTLE_FAILURES_PER_IP", Throttling,
        Parsed(rate, show_rate), |s| s.throttling.failures.per_ip, example "off",
        "failed password checks allowed per client IP (IPv6: per /64), across accounts",
        default "`100/h`"),
    setting!("throttle_anon", "AUTHD_THROTTLE_ANON", Throttling, Parsed(rate, show_rate),
        |s| s.throttling.anon, example "100/h",
        "DRF's AnonRateThrottle: requests per anonymous client IP, on every DRF route but `/token/verify/`"),
    setting!("throttle_user", "AUTHD_THROTTLE_USER", Throttling, Parsed(rate, show_rate),
        |s| s.throttling.user, example "1000/d",
        "DRF's UserRateThrottle: requests per user (anonymous callers per IP), on every DRF route but `/token/verify/`"),
    setting!("throttle_redis_url", "AUTHD_THROTTLE_REDIS_URL", Throttling,
        Parsed(redis_url, |url: &Option<DatabaseUrl>| url.as_ref().map(|u| u.expose().to_owned()).unwrap_or_default()),
        |s| s.throttling.redis_url, example "redis://127.0.0.1:6379/2",
        "shares the request-rate throttles across instances; unset, each instance counts alone"),
    setting!("throttle_redis_prefix", "AUTHD_THROTTLE_REDIS_PREFIX", Throttling, Text(redis_prefix),
        |s| s.throttling.redis_prefix, example "auth-staging:",
        "begins every Redis key authd writes, so deployments can share one Redis", default "`authd:throttle:`"),
    setting!("argon2_memory_kib", "AUTHD_ARGON2_MEMORY_KIB", Passwords,
        Int { min: 7168u32, max: 4_194_304 }, |s| s.hashing.cost.memory_kib, example "65536",
        "Argon2id memory cost; with the two below, never below OWASP's minimum; older hashes are upgraded at the next login"),
    setting!("argon2_iterations", "AUTHD_ARGON2_ITERATIONS", Passwords,
        Int { min: 1u32, max: 100 }, |s| s.hashing.cost.iterations, example "3", "Argon2id time cost"),
    setting!("argon2_parallelism", "AUTHD_ARGON2_PARALLELISM", Passwords,
        Int { min: 1u32, max: 64 }, |s| s.hashing.cost.parallelism, example "2", "Argon2id lanes"),
    setting!("hash_threads", "AUTHD_HASH_THREADS", Passwords, Int { min: 1usize, max: 256 },
        |s| s.hashing.threads, example "3",
        "threads that hash passwords, in the batch scheduling class (they never preempt a token check on wakeup)",
        default "the number of cores"),
    setting!("hash_queue_limit", "AUTHD_HASH_QUEUE_LIMIT", Passwords,
        Derived(Int { min: 1usize, max: 100_000 }), |s| s.hashing.queue_limit, example "100",
        "requests that may wait for or use a hash thread; beyond it, 503 at once",
        default "64 × hash threads"),
    setting!("hash_queue_timeout_ms", "AUTHD_HASH_QUEUE_TIMEOUT_MS", Passwords,
        Span::millis(1, 600_000), |s| s.hashing.queue_timeout, example "500",
        "longest wait for a hash thread: a request whose expected wait (requests ahead × recent hash time ÷ threads) is longer gets 503 at once, and one that waits longer anyway gets 503 then; also the longest a password check waits for the checks of the same account already in flight"),
    djoser_flag!(
        "user_create_password_retype",
        "AUTHD_USER_CREATE_PASSWORD_RETYPE",
        user_create_password_retype,
        "register needs `re_password`"
    ),
    djoser_flag!(
        "set_password_retype",
        "AUTHD_SET_PASSWORD_RETYPE",
        set_password_retype,
        "set_password needs `re_new_password`"
    ),
    djoser_flag!(
        "set_username_retype",
        "AUTHD_SET_USERNAME_RETYPE",
        set_username_retype,
        "set_username needs `re_new_username`"
    ),
    djoser_flag!(
        "logout_on_password_change",
        "AUTHD_LOGOUT_ON_PASSWORD_CHANGE",
        logout_on_password_change,
        "set_password revokes every token, the one in use too"
    ),
    setting!("hide_users", "AUTHD_HIDE_USERS", Djoser, Bool, |s| s.djoser.hide_users,
        example "false", "other users' records answer 404 instead of 403"),
    setting!("login_field", "AUTHD_LOGIN_FIELD", Djoser,
        Parsed(login_field, |f: &LoginField| f.name().to_owned()), |s| s.djoser.login_field,
        example "email", "`email`: log in with the email, which becomes required, unique and read-only outside set_username"),
    setting!("register_conflict_status", "AUTHD_REGISTER_CONFLICT_STATUS", Djoser,
        Parsed(conflict_status, |c: &ConflictStatus| c.code().to_string()),
        |s| s.register_conflict_status, example "409",
        "the status of a sign-up (`POST /users/`) refused only because its username or email is taken, a lost race included: `400` as in Djoser, or `409`; the body is the same. Any other problem keeps the 400 with every error, and later changes of username or email answer 400 either way"),
    setting!("user_extra_fields", "AUTHD_USER_EXTRA_FIELDS", Djoser,
        Parsed(user_extra_fields, |fields: &Vec<UserExtraField>| show_user_extra_fields(fields)),
        |s| s.user_extra_fields,
        example "groups,permissions,is_staff",
        "read-only fields `/users/me/`, `/users/{id}/` and `/users/` show beyond Djoser's `email`, `id`, `username`, as a Djoser site adds them with its own serializer: any of `groups` (names), `permissions` (effective, `app_label.codename`), `is_staff`, `is_superuser`, `date_joined`, `last_login`; empty (the default) shows Djoser's three",
        default "empty"),
    djoser_flag!(
        "send_activation_email",
        "AUTHD_SEND_ACTIVATION_EMAIL",
        send_activation_email,
        "new accounts (and accounts whose email changes) stay inactive until the emailed link is used; an email address becomes required"
    ),
    djoser_flag!(
        "send_confirmation_email",
        "AUTHD_SEND_CONFIRMATION_EMAIL",
        send_confirmation_email,
        "email after registration (without activation) and after activation"
    ),
    djoser_flag!(
        "password_changed_email_confirmation",
        "AUTHD_PASSWORD_CHANGED_EMAIL_CONFIRMATION",
        password_changed_email_confirmation,
        "email after `set_password` and a password reset"
    ),
    djoser_flag!(
        "username_changed_email_confirmation",
        "AUTHD_USERNAME_CHANGED_EMAIL_CONFIRMATION",
        username_changed_email_confirmation,
        "email after `set_username` and a username reset"
    ),
    djoser_flag!(
        "password_reset_confirm_retype",
        "AUTHD_PASSWORD_RESET_CONFIRM_RETYPE",
        password_reset_confirm_retype,
        "reset_password_confirm needs `re_new_password`"
    ),
    djoser_flag!(
        "username_reset_confirm_retype",
        "AUTHD_USERNAME_RESET_CONFIRM_RETYPE",
        username_reset_confirm_retype,
        "reset_username_confirm needs `re_new_username`"
    ),
    djoser_flag!(
        "password_reset_show_email_not_found",
        "AUTHD_PASSWORD_RESET_SHOW_EMAIL_NOT_FOUND",
        password_reset_show_email_not_found,
        "unknown addresses get a 400 on all three email endpoints (as in djoser); this reveals who has an account"
    ),
    djoser_flag!(
        "username_reset_show_email_not_found",
        "AUTHD_USERNAME_RESET_SHOW_EMAIL_NOT_FOUND",
        username_reset_show_email_not_found,
        "the same as the one above (djoser reads either)"
    ),
    setting!("email_url", "AUTHD_EMAIL_URL", Email,
        Parsed(EmailBackend::parse, EmailBackend::to_setting), |s| s.mail.backend,
        example "file:///var/mail/authd",
        "`console` (whole messages on stdout; development only), `file:///dir` (one `.eml` per message), `smtp://user:pass@host:587?tls=required` (STARTTLS), `smtp://host:25`, `smtps://user:pass@host:465`"),
    setting!("default_from_email", "AUTHD_DEFAULT_FROM_EMAIL", Email,
        Text(mail_text!("DEFAULT_FROM_EMAIL")), |s| s.mail.default_from_email,
        example "authd@example.com", "sender of every message"),
    setting!("activation_url", "AUTHD_ACTIVATION_URL", Email, Text(mail_text!("ACTIVATION_URL")),
        |s| s.mail.activation_url, example "#/activate?uid={uid}&token={token}",
        "link path in the activation email (with `{uid}` and `{token}`)"),
    setting!("password_reset_confirm_url", "AUTHD_PASSWORD_RESET_CONFIRM_URL", Email,
        Text(mail_text!("PASSWORD_RESET_CONFIRM_URL")), |s| s.mail.password_reset_confirm_url,
        example "reset/{uid}/{token}", "link path in the password reset email"),
    setting!("username_reset_confirm_url", "AUTHD_USERNAME_RESET_CONFIRM_URL", Email,
        Text(mail_text!("USERNAME_RESET_CONFIRM_URL")), |s| s.mail.username_reset_confirm_url,
        example "username/{uid}/{token}", "link path in the username reset email"),
    setting!("email_frontend_protocol", "AUTHD_EMAIL_FRONTEND_PROTOCOL", Email,
        Text(mail_text!("EMAIL_FRONTEND_PROTOCOL")), |s| s.mail.frontend_protocol,
        example "https", "links are `{protocol}://{domain}/{url}`"),
    setting!("email_frontend_domain", "AUTHD_EMAIL_FRONTEND_DOMAIN", Email,
        Text(mail_text!("EMAIL_FRONTEND_DOMAIN")), |s| s.mail.frontend_domain,
        example "app.example.com",
        "required with SMTP; links never use the request's `Host` header"),
    setting!("email_frontend_site_name", "AUTHD_EMAIL_FRONTEND_SITE_NAME", Email,
        OptionalText(mail_text!("EMAIL_FRONTEND_SITE_NAME")), |s| s.mail.site_name,
        example "Example", "shown in subjects and bodies", default "the domain"),
    setting!("email_token_lifetime_seconds", "AUTHD_EMAIL_TOKEN_LIFETIME_SECONDS", Email,
        Span::seconds(1, 7_776_000), |s| s.mail.token_lifetime, example "3600",
        "how long a link works"),
    setting!("email_send_window_seconds", "AUTHD_EMAIL_SEND_WINDOW_SECONDS", Email,
        Span::seconds(0, 86_400), |s| s.mail.send_window, example "60",
        "`reset_password` and `reset_username` send at most one message per account and purpose in this window, and sign-up mail (the activation or confirmation of a registration, `resend_activation`) at most one per address (NFKC, case folded), whatever the accounts naming it; `0` turns the limits off"),
    setting!("email_templates_dir", "AUTHD_EMAIL_TEMPLATES_DIR", Email,
        Parsed(|t: &str| path(t).map(Some), |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).unwrap_or_default()),
        |s| s.mail.templates_dir, example "/etc/authd/templates",
        "a directory of replacement templates"),
    setting!("email_retry_seconds", "AUTHD_EMAIL_RETRY_SECONDS", Email, Span::seconds(1, 3600),
        |s| s.mail.retry_base, example "30",
        "first retry delay after a failed delivery (doubling, at most an hour)"),
    setting!("email_max_attempts", "AUTHD_EMAIL_MAX_ATTEMPTS", Email, Int { min: 1u32, max: 100 },
        |s| s.mail.max_attempts, example "3", "delivery attempts before giving up"),
    setting!("purge_interval_seconds", "AUTHD_PURGE_INTERVAL_SECONDS", Maintenance,
        Span::seconds(1, 86_400), |s| s.maintenance.purge_interval, example "600",
        "how often expired links, old mail and other spent rows are deleted"),
    setting!("email_retention_seconds", "AUTHD_EMAIL_RETENTION_SECONDS", Maintenance,
        Span::seconds(1, 31_536_000), |s| s.maintenance.email_retention, example "86400",
        "how long delivered or given-up messages are kept (their bodies are blanked at once)"),
    setting!("audit_retention_seconds", "AUTHD_AUDIT_RETENTION_SECONDS", Maintenance,
        Span::seconds(1, 315_360_000), |s| s.maintenance.audit_retention, example "2592000",
        "how long audit events are kept (docs/audit.md); the purge deletes older ones"),
    setting!("email_change_requires_password", "AUTHD_EMAIL_CHANGE_REQUIRES_PASSWORD", Passwords,
        Bool, |s| s.email_change_requires_password, example "false",
        "changing an email with `PUT`/`PATCH` needs the caller's `current_password` (staff changing a non-staff user excepted): the email recovers the account, so a stolen token must not move it; `false` restores Djoser's behaviour. The previous address is told of every change either way"),
    setting!("throttle_failures_per_session", "AUTHD_THROTTLE_FAILURES_PER_SESSION", Throttling,
        Parsed(rate, show_rate), |s| s.throttling.failures.per_session, example "5/15m",
        "failed `current_password` checks allowed per session (set_password, set_username, `DELETE`, email changes); made with a live session of the account, they are limited by this instead of the three limits above",
        default "`10/15m`"),
    setting!("email_queue_limit", "AUTHD_EMAIL_QUEUE_LIMIT", Email, Int { min: 1u64, max: 1_000_000 },
        |s| s.mail.queue_limit, example "500",
        "`reset_password`, `reset_username` and `resend_activation` requests that may wait for the mail worker (one per kind and address: a repeat is merged); past it, requests are answered as usual, dropped and logged"),
];

/// Names read from the environment that are not settings but are expected there.
pub fn is_known_variable(name: &str) -> bool {
    name == "AUTHD_SUPERUSER_PASSWORD"
        || name.starts_with("AUTHD_TEST_")
        || name.starts_with("AUTHD_BENCH_")
        || SETTINGS.iter().any(|def| def.env == name)
}

/// The settings reference in Markdown, as README.md embeds it.
pub fn markdown() -> String {
    let defaults = Settings::default();
    let mut out = String::new();
    for section in Section::ALL {
        out.push_str(&format!(
            "\n#### {}\n\n| Setting | Default | Allowed | Meaning |\n|---|---|---|---|\n",
            section.title()
        ));
        for def in SETTINGS.iter().filter(|def| def.section == section) {
            let name = match def.flag {
                Some(flag) => format!("`{flag}`, `{}`", def.env),
                None => format!("`{}`", def.env),
            };
            let default = match def.default_doc {
                Some(text) => text.to_owned(),
                None => match def.show(&defaults) {
                    value if value.is_empty() => "(none)".to_owned(),
                    value => format!("`{value}`"),
                },
            };
            out.push_str(&format!(
                "| {name} | {default} | {} | {} |\n",
                (def.allowed)(),
                def.doc
            ));
        }
    }
    out
}
