//! Settings: command-line flags win over the environment (`AUTHD_<NAME>`, and `DATABASE_URL`),
//! which wins over an optional TOML file (the same names in lower case, without `AUTHD_`),
//! which wins over the defaults (Djoser's, where Djoser has the setting). Every setting is
//! declared once, in [`table::SETTINGS`]; a bad value stops start-up with a message naming it.

pub mod table;

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use crate::crypto::HashCost;
use crate::store::DatabaseKind;
use crate::throttle::{FailureLimits, Rate};

/// The field users log in with (djoser's `LOGIN_FIELD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginField {
    Username,
    Email,
}

impl LoginField {
    pub fn name(self) -> &'static str {
        match self {
            LoginField::Username => "username",
            LoginField::Email => "email",
        }
    }
}

/// The djoser switches authd honours, with djoser's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Djoser {
    pub user_create_password_retype: bool,
    pub set_password_retype: bool,
    pub set_username_retype: bool,
    pub logout_on_password_change: bool,
    pub hide_users: bool,
    pub login_field: LoginField,
    pub send_activation_email: bool,
    pub send_confirmation_email: bool,
    pub password_changed_email_confirmation: bool,
    pub username_changed_email_confirmation: bool,
    pub password_reset_confirm_retype: bool,
    pub username_reset_confirm_retype: bool,
    pub password_reset_show_email_not_found: bool,
    pub username_reset_show_email_not_found: bool,
}

impl Djoser {
    /// djoser ORs the two flags in shared code: either one reveals unknown addresses on all
    /// three email endpoints.
    pub fn show_email_not_found(&self) -> bool {
        self.password_reset_show_email_not_found || self.username_reset_show_email_not_found
    }
}

impl Default for Djoser {
    fn default() -> Self {
        Self {
            user_create_password_retype: false,
            set_password_retype: false,
            set_username_retype: false,
            logout_on_password_change: false,
            hide_users: true,
            login_field: LoginField::Username,
            send_activation_email: false,
            send_confirmation_email: false,
            password_changed_email_confirmation: false,
            username_changed_email_confirmation: false,
            password_reset_confirm_retype: false,
            username_reset_confirm_retype: false,
            password_reset_show_email_not_found: false,
            username_reset_show_email_not_found: false,
        }
    }
}

/// How mail leaves: `AUTHD_EMAIL_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum EmailBackend {
    /// Whole messages on stdout: the zero-set-up default, for development.
    Console,
    /// One `.eml` file per message in a directory.
    File(PathBuf),
    /// `smtp://` (plain, or STARTTLS with `?tls=required`) or `smtps://`, through lettre.
    Smtp(DatabaseUrl),
}

impl fmt::Debug for EmailBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmailBackend::Console => f.write_str("console"),
            EmailBackend::File(dir) => write!(f, "file://{}", dir.display()),
            EmailBackend::Smtp(url) => write!(f, "{url:?}"),
        }
    }
}

impl EmailBackend {
    fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if value == "console" {
            return Ok(EmailBackend::Console);
        }
        if let Some(path) = value.strip_prefix("file://") {
            return if path.starts_with('/') {
                Ok(EmailBackend::File(PathBuf::from(path)))
            } else {
                Err("expected file:///absolute/directory".into())
            };
        }
        if value.starts_with("smtp://") || value.starts_with("smtps://") {
            DatabaseUrl::new(value).check_userinfo()?;
            return url::Url::parse(value)
                .ok()
                .filter(|url| url.host_str().is_some())
                .map(|_| EmailBackend::Smtp(DatabaseUrl::new(value)))
                .ok_or_else(|| {
                    "expected smtp://[user:password@]host[:port][?tls=required] or smtps://…".into()
                });
        }
        Err("expected console, file:///directory, smtp://… or smtps://…".into())
    }

    /// The setting's text (with the SMTP password, which only the round-trip test reads).
    fn to_setting(&self) -> String {
        match self {
            EmailBackend::Console => "console".into(),
            EmailBackend::File(dir) => format!("file://{}", dir.display()),
            EmailBackend::Smtp(url) => url.expose().to_owned(),
        }
    }
}

/// Where the links in emails point, who sends them, and how they are delivered.
#[derive(Debug, Clone)]
pub struct Mail {
    pub backend: EmailBackend,
    pub default_from_email: String,
    /// djoser's URL templates, relative to the frontend, with `{uid}` and `{token}`.
    pub activation_url: String,
    pub password_reset_confirm_url: String,
    pub username_reset_confirm_url: String,
    pub frontend_protocol: String,
    pub frontend_domain: String,
    /// `None`: the domain.
    pub site_name: Option<String>,
    /// How long an activation or reset link works.
    pub token_lifetime: Duration,
    /// At most one requested message per account and purpose, and one sign-up message per
    /// address, in this window (zero: no limit).
    pub send_window: Duration,
    /// Reset and resend requests that may wait for the worker; past it, requests are dropped.
    pub queue_limit: u64,
    /// Operator templates that replace the built-in ones, file by file.
    pub templates_dir: Option<PathBuf>,
    /// The first retry waits this long; each further one twice as long (at most an hour).
    pub retry_base: Duration,
    pub max_attempts: u32,
}

impl Mail {
    pub fn site_name(&self) -> &str {
        self.site_name.as_deref().unwrap_or(&self.frontend_domain)
    }
}

impl Default for Mail {
    fn default() -> Self {
        Self {
            backend: EmailBackend::Console,
            default_from_email: "webmaster@localhost".into(),
            activation_url: "#/activate/{uid}/{token}".into(),
            password_reset_confirm_url: "#/password/reset/confirm/{uid}/{token}".into(),
            username_reset_confirm_url: "#/username/reset/confirm/{uid}/{token}".into(),
            frontend_protocol: "http".into(),
            frontend_domain: "localhost:8000".into(),
            site_name: None,
            token_lifetime: Duration::from_secs(24 * 3600),
            send_window: Duration::from_secs(300),
            queue_limit: 10_000,
            templates_dir: None,
            retry_base: Duration::from_secs(5),
            max_attempts: 10,
        }
    }
}

/// What happens when a user who has as many sessions as allowed logs in again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitPolicy {
    /// The oldest session (by creation) ends.
    EvictOldest,
    /// The login is refused with knox's 403.
    Deny,
}

impl LimitPolicy {
    pub fn name(self) -> &'static str {
        match self {
            LimitPolicy::EvictOldest => "evict_oldest",
            LimitPolicy::Deny => "deny",
        }
    }
}

/// Token lifetimes and the sessions they make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// Absolute lifetime of a Djoser login token; zero: never expires (as in DRF).
    pub ttl: Duration,
    /// A token unused this long dies; zero: no idle limit.
    pub idle: Duration,
    /// Sessions per user; zero: no limit.
    pub limit_per_user: u32,
    pub limit_policy: LimitPolicy,
    pub access_ttl: Duration,
    /// How long an OAuth2 refresh family lives from its password grant (rotation never extends it).
    pub refresh_ttl: Duration,
    /// How long a retired refresh token may still be presented (a retry after a lost answer).
    pub refresh_reuse_grace: Duration,
    /// API keys a user may hold at once; zero: none can be created.
    pub api_keys_per_user: u32,
    /// The longest an API key lives (and how long one lives that asks for no lifetime).
    pub api_key_max_ttl: Duration,
    /// Whether a user's own `set_password` leaves their API keys working.
    pub api_keys_survive_password_change: bool,
}

impl Default for Tokens {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30 * 24 * 3600),
            idle: Duration::ZERO,
            limit_per_user: 0,
            limit_policy: LimitPolicy::EvictOldest,
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_reuse_grace: Duration::from_secs(10),
            api_keys_per_user: 20,
            api_key_max_ttl: Duration::from_secs(365 * 24 * 3600),
            api_keys_survive_password_change: true,
        }
    }
}

/// Failed-login limits and DRF's request-rate throttles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttling {
    pub failures: FailureLimits,
    /// DRF's AnonRateThrottle: anonymous callers, by client IP.
    pub anon: Option<Rate>,
    /// DRF's UserRateThrottle: users by id (anonymous callers by client IP).
    pub user: Option<Rate>,
    /// Shares the request-rate throttles across instances; `None`: each instance counts alone.
    pub redis_url: Option<DatabaseUrl>,
    /// Begins every Redis key, so deployments can share one Redis.
    pub redis_prefix: String,
}

impl Default for Throttling {
    fn default() -> Self {
        let rate = |text| Rate::parse(text).ok().flatten();
        Self {
            failures: FailureLimits {
                per_ip_account: rate("10/15m"),
                per_account: rate("100/h"),
                per_ip: rate("100/h"),
                per_session: rate("10/15m"),
            },
            anon: None,
            user: None,
            redis_url: None,
            redis_prefix: "authd:throttle:".to_owned(),
        }
    }
}

/// hyper's smallest read buffer, which is what bounds a request head (`AUTHD_MAX_HEADER_BYTES`).
pub const MIN_HEADER_BYTES: usize = 8192;

/// What a connection may cost the server: how long each part of a request may take to arrive,
/// how large a head may be, and how many connections may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connections {
    /// From the moment a connection can take a request to the end of its head.
    pub header_read_timeout: Duration,
    /// From a request's head to the end of its body; also the write-progress window.
    pub body_read_timeout: Duration,
    /// Between requests: from the end of an answer (or the opening) to the next first byte.
    pub keep_alive_timeout: Duration,
    /// Request line and header fields together; beyond, 431.
    pub max_header_bytes: usize,
    /// Open connections, all clients together; beyond, new ones wait to be accepted.
    pub max_connections: usize,
    /// Memory for request bodies being read or waiting for a hash thread.
    pub body_memory_bytes: usize,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_connections: 4096,
            // Bodies this large are never an honest authd request (those are under 64 KiB and
            // never count), so the budget only bounds what a flood can make authd hold: 32 MiB
            // keeps a 300-body flood of 1.6 MB logins under 100 MB of RSS beside two hash
            // threads' Argon2 memory (bench/memory.py), and still reads twelve 2.5 MB bodies
            // at once.
            body_memory_bytes: 32 * 1024 * 1024,
        }
    }
}

/// Password hashing: the Argon2id cost and the pool that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashing {
    pub cost: HashCost,
    pub threads: usize,
    /// Requests that may wait for or hold a hash thread; `None`: 64 per thread.
    pub queue_limit: Option<usize>,
    /// The longest wait for a hash thread.
    pub queue_timeout: Duration,
}

impl Hashing {
    pub fn queue_limit(&self) -> usize {
        self.queue_limit.unwrap_or(64 * self.threads)
    }
}

/// Periodic clean-up of spent rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintenance {
    pub purge_interval: Duration,
    /// How long delivered or given-up messages are kept.
    pub email_retention: Duration,
    /// How long audit events are kept.
    pub audit_retention: Duration,
}

/// A URL whose password never reaches a log line or a `Debug` dump.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        match DatabaseKind::of_url(text) {
            Some(_) => {
                let url = Self::new(text);
                url.check_userinfo()?;
                Ok(url)
            }
            None => Err("expected a sqlite:// or postgres:// URL".into()),
        }
    }

    /// `/`, `?`, `#` and `@` end or split a URL's authority: unencoded in a user name or
    /// password, they make a URL that parses as something else, and that drivers echo whole in
    /// their errors. Such a URL is refused, without echoing it.
    pub fn check_userinfo(&self) -> Result<(), String> {
        let Some((_, rest)) = self.0.split_once("://") else {
            return Ok(());
        };
        if self.0.starts_with("sqlite:") {
            return Ok(());
        }
        match rest.rfind('@') {
            Some(at) if rest[..at].contains(['/', '?', '#', '@']) => Err(
                "the password must be percent-encoded (%2F for /, %3F for ?, %23 for #, %40 for @)"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    /// `text` (a library's error about this URL) scrubbed of the URL's password in every
    /// spelling; see [`crate::telemetry::scrub_url_secret`].
    pub fn scrub(&self, text: &str) -> String {
        crate::telemetry::scrub_url_secret(text, &self.0)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> DatabaseKind {
        DatabaseKind::of_url(&self.0).unwrap_or(DatabaseKind::Sqlite)
    }

    /// The URL with its password replaced by `***`, even when it does not parse as a URL.
    pub fn redacted(&self) -> String {
        crate::telemetry::redact_url(&self.0)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    /// Where `/metrics` is served, apart from the API; `None`: no metrics at all.
    pub metrics_bind: Option<SocketAddr>,
    /// The certificate chain and key served on `bind` (both or neither).
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub database_url: DatabaseUrl,
    pub database_max_connections: u32,
    /// The longest wait for the database: a connection, or SQLite's lock.
    pub database_timeout: Duration,
    /// Empty, or a path such as `/auth` that every route moves under.
    pub url_prefix: String,
    /// How log lines are written.
    pub log_format: crate::telemetry::LogFormat,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Accepted `Authorization` keywords; the first one is named in `WWW-Authenticate`.
    pub token_keywords: Vec<String>,
    /// How long a verified token may be served from memory (zero: never).
    pub token_cache_ttl: Duration,
    /// The most verified tokens held in memory at once.
    pub token_cache_entries: u64,
    pub tokens: Tokens,
    /// Browser origins (`https://app.example.com`) allowed to call the API from another origin.
    pub cors_allowed_origins: Vec<String>,
    pub connections: Connections,
    pub throttling: Throttling,
    pub hashing: Hashing,
    pub djoser: Djoser,
    pub mail: Mail,
    pub maintenance: Maintenance,
    /// Changing an email through `PUT`/`PATCH` needs `current_password` (staff changing a
    /// non-staff user excepted); `false` is Djoser's behaviour.
    pub email_change_requires_password: bool,
    /// The status of a sign-up refused only because its username or email is taken.
    pub register_conflict_status: ConflictStatus,
    /// Read-only fields `/users/me/` and `/users/{id}/` show beyond Djoser's three.
    pub user_extra_fields: Vec<UserExtraField>,
}

/// A field a Djoser site adds to its user serializer, as authd can show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum UserExtraField {
    /// Group names.
    Groups,
    /// Effective permissions, `app_label.codename`.
    Permissions,
    IsStaff,
    IsSuperuser,
    DateJoined,
    LastLogin,
}

impl UserExtraField {
    pub const ALL: [UserExtraField; 6] = [
        UserExtraField::Groups,
        UserExtraField::Permissions,
        UserExtraField::IsStaff,
        UserExtraField::IsSuperuser,
        UserExtraField::DateJoined,
        UserExtraField::LastLogin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            UserExtraField::Groups => "groups",
            UserExtraField::Permissions => "permissions",
            UserExtraField::IsStaff => "is_staff",
            UserExtraField::IsSuperuser => "is_superuser",
            UserExtraField::DateJoined => "date_joined",
            UserExtraField::LastLogin => "last_login",
        }
    }
}

/// The status of a sign-up whose only problem is a username or email already taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictStatus {
    /// 400, as Djoser answers.
    BadRequest,
    /// 409 Conflict, with the body the 400 would have.
    Conflict,
}

impl ConflictStatus {
    pub fn code(self) -> u16 {
        match self {
            ConflictStatus::BadRequest => 400,
            ConflictStatus::Conflict => 409,
        }
    }
}

pub const DEFAULT_BIND: &str = "127.0.0.1:8000";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://authd.sqlite3?mode=rwc";

impl Default for Settings {
    fn default() -> Self {
        Self::for_database(DEFAULT_DATABASE_URL)
    }
}

impl Settings {
    /// Defaults for a given database: what a test or an embedding program starts from.
    pub fn for_database(url: impl Into<String>) -> Self {
        let database_url = DatabaseUrl::new(url);
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Self {
            bind: DEFAULT_BIND.parse().expect("static address"),
            metrics_bind: None,
            tls_cert_file: None,
            tls_key_file: None,
            database_max_connections: match database_url.kind() {
                DatabaseKind::Sqlite => 8,
                DatabaseKind::Postgres => 10,
            },
            database_timeout: Duration::from_secs(5),
            database_url,
            url_prefix: String::new(),
            log_format: crate::telemetry::LogFormat::Text,
            trusted_proxies: Vec::new(),
            token_keywords: vec!["Token".into(), "Bearer".into()],
            token_cache_ttl: Duration::from_secs(300),
            token_cache_entries: 100_000,
            tokens: Tokens::default(),
            cors_allowed_origins: Vec::new(),
            connections: Connections::default(),
            throttling: Throttling::default(),
            hashing: Hashing {
                cost: HashCost::OWASP_MINIMUM,
                // One hash thread per core: they are batch-class (never preempt a token check on
                // wakeup) and the queue in front of them is bounded.
                threads: cores,
                queue_limit: None,
                queue_timeout: Duration::from_millis(2000),
            },
            djoser: Djoser::default(),
            mail: Mail::default(),
            maintenance: Maintenance {
                purge_interval: Duration::from_secs(3600),
                email_retention: Duration::from_secs(7 * 24 * 3600),
                audit_retention: Duration::from_secs(90 * 24 * 3600),
            },
            email_change_requires_password: true,
            register_conflict_status: ConflictStatus::BadRequest,
            user_extra_fields: Vec::new(),
        }
    }

    /// Reads every source. `env` is the process environment in production.
    pub fn load(flags: &Flags, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let file = match &flags.config {
            Some(path) => Some(ConfigFile::read(path)?),
            None => None,
        };
        let source = Source {
            flags,
            env: &env,
            file: file.as_ref(),
        };
        // The database decides some defaults, so it is read first.
        let database = lookup("database_url");
        let mut settings = match source.value(database) {
            Some((text, origin)) => {
                let url =
                    DatabaseUrl::parse(&text).map_err(|m| ConfigError::invalid(&origin, m))?;
                Settings::for_database(url.expose())
            }
            None => Settings::default(),
        };
        let mut given = HashSet::new();
        for def in table::SETTINGS {
            if let Some((text, origin)) = source.value(def) {
                (def.set)(&mut settings, &text).map_err(|m| ConfigError::invalid(&origin, m))?;
                given.insert(def.key);
            }
        }
        settings.check(&given)?;
        Ok(settings)
    }

    /// The rules that tie several settings together.
    fn check(&self, given: &HashSet<&str>) -> Result<(), ConfigError> {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    "AUTHD_TLS_KEY_FILE",
                    "must be set with AUTHD_TLS_CERT_FILE (set both to serve HTTPS, or neither)",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "AUTHD_TLS_CERT_FILE",
                    "must be set with AUTHD_TLS_KEY_FILE (set both to serve HTTPS, or neither)",
                ));
            }
            _ => {}
        }
        if let Err(message) = check_cost(self.hashing.cost) {
            return Err(ConfigError::invalid("AUTHD_ARGON2_*", message));
        }
        if matches!(self.mail.backend, EmailBackend::Smtp(_))
            && !given.contains("email_frontend_domain")
        {
            return Err(ConfigError::invalid(
                "AUTHD_EMAIL_FRONTEND_DOMAIN",
                "must be set when AUTHD_EMAIL_URL sends real mail: links are built only from settings, and would point to localhost",
            ));
        }
        Ok(())
    }
}

fn lookup(key: &str) -> &'static table::Def {
    table::SETTINGS
        .iter()
        .find(|def| def.key == key)
        .expect("declared in the settings table")
}

/// `AUTHD_*` variables that are neither settings nor otherwise known: most likely typos.
pub fn unknown_variables(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut unknown: Vec<String> = names
        .into_iter()
        .filter(|name| name.starts_with("AUTHD_") && !table::is_known_variable(name))
        .collect();
    unknown.sort();
    unknown
}

/// Every mail setting ends up in a header or a link: no control characters (header injection),
/// URL templates with their placeholders, a known protocol, a parseable sender.
fn check_mail_text(name: &str, value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters such as CR or LF".into());
    }
    match name {
        "ACTIVATION_URL" | "PASSWORD_RESET_CONFIRM_URL" | "USERNAME_RESET_CONFIRM_URL" => {
            if !value.contains("{uid}") || !value.contains("{token}") {
                return Err("must contain {uid} and {token}".into());
            }
            let rest = value.replace("{uid}", "").replace("{token}", "");
            if rest.contains('{') || rest.contains('}') || value.contains(char::is_whitespace) {
                return Err("only {uid} and {token} may appear in braces, and no spaces".into());
            }
        }
        "EMAIL_FRONTEND_PROTOCOL" if value != "http" && value != "https" => {
            return Err("expected http or https".into());
        }
        "EMAIL_FRONTEND_DOMAIN" if value.contains(|c: char| c.is_whitespace() || c == '/') => {
            return Err("expected a host name, optionally with a port".into());
        }
        "DEFAULT_FROM_EMAIL" if value.parse::<lettre::message::Mailbox>().is_err() => {
            return Err(
                "expected an address such as authd@example.com or \"Site\" <authd@example.com>"
                    .into(),
            );
        }
        _ => {}
    }
    Ok(value.to_owned())
}

/// The flags that override everything else.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub bind: Option<String>,
    pub database_url: Option<String>,
}

impl Flags {
    fn get(&self, flag: &str) -> Option<&str> {
        match flag {
            "--bind" => self.bind.as_deref(),
            "--database-url" => self.database_url.as_deref(),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid setting {setting}: {message}")]
    Invalid { setting: String, message: String },
    #[error("cannot read config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("unknown setting `{key}` in config file {path}")]
    UnknownKey { path: PathBuf, key: String },
}

impl ConfigError {
    fn invalid(setting: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            setting: setting.to_owned(),
            message: message.into(),
        }
    }
}

struct ConfigFile {
    path: PathBuf,
    table: toml::Table,
}

impl ConfigFile {
    fn read(path: &Path) -> Result<Self, ConfigError> {
        let file_error = |message: String| ConfigError::File {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| file_error(e.to_string()))?;
        if let Some(key) = table
            .keys()
            .find(|key| !table::SETTINGS.iter().any(|def| def.key == key.as_str()))
        {
            return Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                key: key.clone(),
            });
        }
        Ok(Self {
            path: path.to_owned(),
            table,
        })
    }
}

struct Source<'a> {
    flags: &'a Flags,
    env: &'a dyn Fn(&str) -> Option<String>,
    file: Option<&'a ConfigFile>,
}

impl Source<'_> {
    /// The raw text of a setting and where it came from (named as the operator wrote it),
    /// by precedence.
    fn value(&self, def: &table::Def) -> Option<(String, String)> {
        if let Some(flag) = def.flag
            && let Some(value) = self.flags.get(flag)
        {
            return Some((value.to_owned(), flag.to_owned()));
        }
        if let Some(value) = (self.env)(def.env) {
            return Some((value, def.env.to_owned()));
        }
        let file = self.file?;
        let value = file.table.get(def.key)?;
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| item.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        Some((text, format!("{} in {}", def.key, file.path.display())))
    }
}

fn parse_prefix(value: &str) -> Result<String, String> {
    let trimmed = value.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let valid = trimmed.starts_with('/')
        && trimmed[1..].split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
        });
    if valid {
        Ok(trimmed.to_owned())
    } else {
        Err("expected a path such as /auth".into())
    }
}

fn parse_keywords(value: &str) -> Result<Vec<String>, String> {
    let keywords: Vec<String> = value.split(',').map(|k| k.trim().to_owned()).collect();
    let valid = keywords
        .iter()
        .all(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()));
    if valid {
        Ok(keywords)
    } else {
        Err("expected a comma-separated list of words, such as Token,Bearer".into())
    }
}

/// OWASP's Argon2id options all cost at least m=7168 KiB × t=5; nothing cheaper is accepted.
fn check_cost(cost: HashCost) -> Result<(), String> {
    let work = u64::from(cost.memory_kib) * u64::from(cost.iterations);
    if cost.memory_kib < 7168 || work < 7168 * 5 || cost.parallelism == 0 {
        return Err(format!(
            "m={} KiB, t={}, p={} is below OWASP's Argon2id minimum (m=19456, t=2, p=1 or an equivalent)",
            cost.memory_kib, cost.iterations, cost.parallelism
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
