//! Settings: command-line flags win over the environment (`AUTHD_<NAME>`, and `DATABASE_URL`),
//! which wins over an optional TOML file (the same names in lower case), which wins over
//! Djoser's defaults. A bad value stops start-up with a message naming the setting.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::crypto::HashCost;
use crate::store::DatabaseKind;

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
    fn parse(value: &str) -> Result<Self, &'static str> {
        let value = value.trim();
        if value == "console" {
            return Ok(EmailBackend::Console);
        }
        if let Some(path) = value.strip_prefix("file://") {
            return if path.starts_with('/') {
                Ok(EmailBackend::File(PathBuf::from(path)))
            } else {
                Err("expected file:///absolute/directory")
            };
        }
        if value.starts_with("smtp://") || value.starts_with("smtps://") {
            return url::Url::parse(value)
                .ok()
                .filter(|url| url.host_str().is_some())
                .map(|_| EmailBackend::Smtp(DatabaseUrl::new(value)))
                .ok_or("expected smtp://[user:password@]host[:port][?tls=required] or smtps://…");
        }
        Err("expected console, file:///directory, smtp://… or smtps://…")
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
    pub frontend_site_name: String,
    /// How long an activation or reset link works.
    pub token_lifetime: Duration,
    /// Operator templates that replace the built-in ones, file by file.
    pub templates_dir: Option<PathBuf>,
    /// The first retry waits this long; each further one twice as long (at most an hour).
    pub retry_base: Duration,
    pub max_attempts: u32,
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
            frontend_site_name: "localhost:8000".into(),
            token_lifetime: Duration::from_secs(24 * 3600),
            templates_dir: None,
            retry_base: Duration::from_secs(5),
            max_attempts: 10,
        }
    }
}

/// A database URL whose password never reaches a log line or a `Debug` dump.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> DatabaseKind {
        DatabaseKind::of_url(&self.0).unwrap_or(DatabaseKind::Sqlite)
    }

    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            _ => self.0.clone(),
        }
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
    pub database_url: DatabaseUrl,
    /// Empty, or a path such as `/auth` that every route moves under.
    pub url_prefix: String,
    /// Accepted `Authorization` keywords; the first one is named in `WWW-Authenticate`.
    pub token_keywords: Vec<String>,
    pub hash_cost: HashCost,
    pub hash_threads: usize,
    pub database_max_connections: u32,
    /// How long a verified token may be served from memory (zero: never).
    pub token_cache_ttl: Duration,
    pub djoser: Djoser,
    pub mail: Mail,
}

pub const DEFAULT_BIND: &str = "127.0.0.1:8000";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://authd.sqlite3?mode=rwc";

impl Settings {
    /// Defaults for a given database: what a test or an embedding program starts from.
    pub fn for_database(url: impl Into<String>) -> Self {
        let database_url = DatabaseUrl::new(url);
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Self {
            bind: DEFAULT_BIND.parse().expect("static address"),
            database_max_connections: match database_url.kind() {
                DatabaseKind::Sqlite => 8,
                DatabaseKind::Postgres => 10,
            },
            database_url,
            url_prefix: String::new(),
            token_keywords: vec!["Token".into(), "Bearer".into()],
            hash_cost: HashCost::OWASP_MINIMUM,
            // One core stays free for token checks however many logins arrive.
            hash_threads: cores.saturating_sub(1).max(1),
            token_cache_ttl: Duration::from_secs(10),
            djoser: Djoser::default(),
            mail: Mail::default(),
        }
    }

    /// Reads every source. `env` is the process environment in production.
    pub fn load(flags: &Flags, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let file = match &flags.config {
            Some(path) => Some(ConfigFile::read(path)?),
            None => None,
        };
        let source = Source {
            env: &env,
            file: file.as_ref(),
        };

        let database_url = source
            .text(
                "DATABASE_URL",
                "DATABASE_URL",
                flags.database_url.as_deref(),
            )
            .map(|(value, _)| value)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        let mut settings = Settings::for_database(database_url.clone());
        if DatabaseKind::of_url(&database_url).is_none() {
            return Err(ConfigError::invalid(
                &source.origin("DATABASE_URL", "DATABASE_URL", flags.database_url.is_some()),
                "expected a sqlite:// or postgres:// URL",
            ));
        }

        if let Some((value, origin)) = source.text("AUTHD_BIND", "bind", flags.bind.as_deref()) {
            settings.bind = value.parse().map_err(|_| {
                ConfigError::invalid(&origin, "expected an address such as 127.0.0.1:8000")
            })?;
        }
        if let Some((value, origin)) = source.text("AUTHD_URL_PREFIX", "url_prefix", None) {
            settings.url_prefix =
                parse_prefix(&value).map_err(|m| ConfigError::invalid(&origin, m))?;
        }
        if let Some((value, origin)) = source.text("AUTHD_TOKEN_KEYWORDS", "token_keywords", None) {
            settings.token_keywords =
                parse_keywords(&value).map_err(|m| ConfigError::invalid(&origin, m))?;
        }
        let cost = &mut settings.hash_cost;
        source.number("ARGON2_MEMORY_KIB", &mut cost.memory_kib)?;
        source.number("ARGON2_ITERATIONS", &mut cost.iterations)?;
        source.number("ARGON2_PARALLELISM", &mut cost.parallelism)?;
        if let Err(message) = check_cost(settings.hash_cost) {
            return Err(ConfigError::invalid("AUTHD_ARGON2_*", message));
        }
        source.number("HASH_THREADS", &mut settings.hash_threads)?;
        if settings.hash_threads == 0 {
            return Err(ConfigError::invalid(
                "AUTHD_HASH_THREADS",
                "must be at least 1",
            ));
        }
        source.number(
            "DATABASE_MAX_CONNECTIONS",
            &mut settings.database_max_connections,
        )?;
        if settings.database_max_connections == 0 {
            return Err(ConfigError::invalid(
                "AUTHD_DATABASE_MAX_CONNECTIONS",
                "must be at least 1",
            ));
        }
        let mut cache_seconds = settings.token_cache_ttl.as_secs();
        source.number("TOKEN_CACHE_SECONDS", &mut cache_seconds)?;
        settings.token_cache_ttl = Duration::from_secs(cache_seconds);

        let djoser = &mut settings.djoser;
        source.flag(
            "USER_CREATE_PASSWORD_RETYPE",
            &mut djoser.user_create_password_retype,
        )?;
        source.flag("SET_PASSWORD_RETYPE", &mut djoser.set_password_retype)?;
        source.flag("SET_USERNAME_RETYPE", &mut djoser.set_username_retype)?;
        source.flag(
            "LOGOUT_ON_PASSWORD_CHANGE",
            &mut djoser.logout_on_password_change,
        )?;
        source.flag("HIDE_USERS", &mut djoser.hide_users)?;
        if let Some((value, origin)) = source.text("AUTHD_LOGIN_FIELD", "login_field", None) {
            djoser.login_field = match value.as_str() {
                "username" => LoginField::Username,
                "email" => LoginField::Email,
                _ => {
                    return Err(ConfigError::invalid(
                        &origin,
                        "expected `username` or `email`",
                    ));
                }
            };
        }
        source.flag("SEND_ACTIVATION_EMAIL", &mut djoser.send_activation_email)?;
        source.flag(
            "SEND_CONFIRMATION_EMAIL",
            &mut djoser.send_confirmation_email,
        )?;
        source.flag(
            "PASSWORD_CHANGED_EMAIL_CONFIRMATION",
            &mut djoser.password_changed_email_confirmation,
        )?;
        source.flag(
            "USERNAME_CHANGED_EMAIL_CONFIRMATION",
            &mut djoser.username_changed_email_confirmation,
        )?;
        source.flag(
            "PASSWORD_RESET_CONFIRM_RETYPE",
            &mut djoser.password_reset_confirm_retype,
        )?;
        source.flag(
            "USERNAME_RESET_CONFIRM_RETYPE",
            &mut djoser.username_reset_confirm_retype,
        )?;
        source.flag(
            "PASSWORD_RESET_SHOW_EMAIL_NOT_FOUND",
            &mut djoser.password_reset_show_email_not_found,
        )?;
        source.flag(
            "USERNAME_RESET_SHOW_EMAIL_NOT_FOUND",
            &mut djoser.username_reset_show_email_not_found,
        )?;
        load_mail(&source, &mut settings.mail)?;
        Ok(settings)
    }
}

fn load_mail(source: &Source<'_>, mail: &mut Mail) -> Result<(), ConfigError> {
    if let Some((value, origin)) = source.text("AUTHD_EMAIL_URL", "email_url", None) {
        mail.backend = EmailBackend::parse(&value).map_err(|m| ConfigError::invalid(&origin, m))?;
    }
    let mut site_name_set = false;
    for (name, target) in [
        ("DEFAULT_FROM_EMAIL", &mut mail.default_from_email),
        ("ACTIVATION_URL", &mut mail.activation_url),
        (
            "PASSWORD_RESET_CONFIRM_URL",
            &mut mail.password_reset_confirm_url,
        ),
        (
            "USERNAME_RESET_CONFIRM_URL",
            &mut mail.username_reset_confirm_url,
        ),
        ("EMAIL_FRONTEND_PROTOCOL", &mut mail.frontend_protocol),
        ("EMAIL_FRONTEND_DOMAIN", &mut mail.frontend_domain),
        ("EMAIL_FRONTEND_SITE_NAME", &mut mail.frontend_site_name),
    ] {
        let env_name = format!("AUTHD_{name}");
        if let Some((value, origin)) = source.text(&env_name, &name.to_lowercase(), None) {
            check_mail_text(name, &value).map_err(|m| ConfigError::invalid(&origin, m))?;
            site_name_set |= name == "EMAIL_FRONTEND_SITE_NAME";
            *target = value.trim().to_owned();
        }
    }
    if !site_name_set {
        mail.frontend_site_name = mail.frontend_domain.clone();
    }
    let mut lifetime = mail.token_lifetime.as_secs();
    source.number("EMAIL_TOKEN_LIFETIME_SECONDS", &mut lifetime)?;
    if lifetime == 0 {
        return Err(ConfigError::invalid(
            "AUTHD_EMAIL_TOKEN_LIFETIME_SECONDS",
            "must be at least 1",
        ));
    }
    mail.token_lifetime = Duration::from_secs(lifetime);
    let mut retry = mail.retry_base.as_secs();
    source.number("EMAIL_RETRY_SECONDS", &mut retry)?;
    mail.retry_base = Duration::from_secs(retry.max(1));
    source.number("EMAIL_MAX_ATTEMPTS", &mut mail.max_attempts)?;
    if let Some((value, _)) = source.text("AUTHD_EMAIL_TEMPLATES_DIR", "email_templates_dir", None)
    {
        mail.templates_dir = Some(PathBuf::from(value));
    }
    if matches!(mail.backend, EmailBackend::Smtp(_))
        && source
            .text("AUTHD_EMAIL_FRONTEND_DOMAIN", "email_frontend_domain", None)
            .is_none()
    {
        return Err(ConfigError::invalid(
            "AUTHD_EMAIL_FRONTEND_DOMAIN",
            "must be set when AUTHD_EMAIL_URL sends real mail: links are built only from settings, and would point to localhost",
        ));
    }
    Ok(())
}

/// Every mail setting ends up in a header or a link: no control characters (header injection),
/// URL templates with their placeholders, a known protocol, a parseable sender.
fn check_mail_text(name: &str, value: &str) -> Result<(), String> {
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
    Ok(())
}

/// The flags that override everything else.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub bind: Option<String>,
    pub database_url: Option<String>,
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

const FILE_KEYS: &[&str] = &[
    "bind",
    "database_url",
    "url_prefix",
    "token_keywords",
    "argon2_memory_kib",
    "argon2_iterations",
    "argon2_parallelism",
    "hash_threads",
    "database_max_connections",
    "token_cache_seconds",
    "send_activation_email",
    "send_confirmation_email",
    "password_changed_email_confirmation",
    "username_changed_email_confirmation",
    "password_reset_confirm_retype",
    "username_reset_confirm_retype",
    "password_reset_show_email_not_found",
    "username_reset_show_email_not_found",
    "email_url",
    "default_from_email",
    "activation_url",
    "password_reset_confirm_url",
    "username_reset_confirm_url",
    "email_frontend_protocol",
    "email_frontend_domain",
    "email_frontend_site_name",
    "email_token_lifetime_seconds",
    "email_retry_seconds",
    "email_max_attempts",
    "email_templates_dir",
    "user_create_password_retype",
    "set_password_retype",
    "set_username_retype",
    "logout_on_password_change",
    "hide_users",
    "login_field",
];

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
        let known: HashSet<&str> = FILE_KEYS.iter().copied().collect();
        if let Some(key) = table.keys().find(|key| !known.contains(key.as_str())) {
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
    env: &'a dyn Fn(&str) -> Option<String>,
    file: Option<&'a ConfigFile>,
}

impl Source<'_> {
    fn origin(&self, env_name: &str, file_key: &str, from_flag: bool) -> String {
        if from_flag {
            format!("--{}", file_key.replace('_', "-"))
        } else if (self.env)(env_name).is_some() {
            env_name.to_owned()
        } else if let Some(file) = self.file {
            format!("{file_key} in {}", file.path.display())
        } else {
            env_name.to_owned()
        }
    }

    /// The raw text of a setting and where it came from, by precedence.
    fn text(&self, env_name: &str, file_key: &str, flag: Option<&str>) -> Option<(String, String)> {
        if let Some(value) = flag {
            return Some((value.to_owned(), self.origin(env_name, file_key, true)));
        }
        if let Some(value) = (self.env)(env_name) {
            return Some((value, env_name.to_owned()));
        }
        let file = self.file?;
        let value = file.table.get(file_key)?;
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
        Some((text, format!("{file_key} in {}", file.path.display())))
    }

    fn flag(&self, name: &str, target: &mut bool) -> Result<(), ConfigError> {
        let env_name = format!("AUTHD_{name}");
        if let Some((value, origin)) = self.text(&env_name, &name.to_lowercase(), None) {
            *target = parse_bool(&value).ok_or_else(|| {
                ConfigError::invalid(
                    &origin,
                    format!("expected true/false or 1/0, got {value:?}"),
                )
            })?;
        }
        Ok(())
    }

    fn number<T: std::str::FromStr>(&self, name: &str, target: &mut T) -> Result<(), ConfigError> {
        let env_name = format!("AUTHD_{name}");
        if let Some((value, origin)) = self.text(&env_name, &name.to_lowercase(), None) {
            *target = value.trim().parse().map_err(|_| {
                ConfigError::invalid(&origin, format!("expected a whole number, got {value:?}"))
            })?;
        }
        Ok(())
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

fn parse_prefix(value: &str) -> Result<String, &'static str> {
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
        Err("expected a path such as /auth")
    }
}

fn parse_keywords(value: &str) -> Result<Vec<String>, &'static str> {
    let keywords: Vec<String> = value.split(',').map(|k| k.trim().to_owned()).collect();
    let valid = keywords
        .iter()
        .all(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()));
    if valid {
        Ok(keywords)
    } else {
        Err("expected a comma-separated list of words, such as Token,Bearer")
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
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(env: &[(&str, &str)], flags: Flags) -> Result<Settings, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load(&flags, |name| env.get(name).cloned())
    }

    #[test]
    fn defaults_are_djosers() {
        let settings = load(&[], Flags::default()).expect("defaults load");
        assert_eq!(settings.bind.to_string(), DEFAULT_BIND);
        assert_eq!(settings.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(settings.djoser, Djoser::default());
        assert_eq!(settings.token_keywords, vec!["Token", "Bearer"]);
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("authd.toml");
        std::fs::write(
            &path,
            "bind = \"127.0.0.1:1\"\nhide_users = false\nlogin_field = \"email\"\n",
        )
        .expect("write");
        let flags = Flags {
            config: Some(path.clone()),
            ..Flags::default()
        };
        let settings = load(&[("AUTHD_BIND", "127.0.0.1:2")], flags.clone()).expect("load");
        assert_eq!(settings.bind.port(), 2);
        assert!(!settings.djoser.hide_users);
        assert_eq!(settings.djoser.login_field, LoginField::Email);
        let flags = Flags {
            bind: Some("127.0.0.1:3".into()),
            ..flags
        };
        assert_eq!(
            load(&[("AUTHD_BIND", "127.0.0.1:2")], flags)
                .expect("load")
                .bind
                .port(),
            3
        );
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = load(&[("AUTHD_HIDE_USERS", "maybe")], Flags::default()).unwrap_err();
        assert!(err.to_string().contains("AUTHD_HIDE_USERS"), "{err}");
        let err = load(&[("AUTHD_ARGON2_MEMORY_KIB", "1024")], Flags::default()).unwrap_err();
        assert!(err.to_string().contains("ARGON2"), "{err}");
        let err = load(&[("DATABASE_URL", "mysql://x")], Flags::default()).unwrap_err();
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
        assert!(load(&[("AUTHD_HIDE_USERS", "TRUE")], Flags::default()).is_ok());
        assert!(load(&[("AUTHD_URL_PREFIX", "auth")], Flags::default()).is_err());
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("authd.toml");
        std::fs::write(&path, "hid_users = true\n").expect("write");
        let err = load(
            &[],
            Flags {
                config: Some(path),
                ..Flags::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("hid_users"), "{err}");
    }

    #[test]
    fn mail_settings_that_cannot_work_stop_start_up() {
        for (name, value) in [
            ("AUTHD_EMAIL_URL", "mailgun://x"),
            ("AUTHD_EMAIL_URL", "file://relative/dir"),
            ("AUTHD_ACTIVATION_URL", "#/activate/{uid}"),
            (
                "AUTHD_PASSWORD_RESET_CONFIRM_URL",
                "#/reset/{uid}/{token}/{user}",
            ),
            ("AUTHD_USERNAME_RESET_CONFIRM_URL", ""),
            ("AUTHD_EMAIL_FRONTEND_PROTOCOL", "ftp"),
            ("AUTHD_EMAIL_FRONTEND_DOMAIN", "example.com/path"),
            (
                "AUTHD_EMAIL_FRONTEND_SITE_NAME",
                "Example\r\nBcc: victim@example.com",
            ),
            ("AUTHD_DEFAULT_FROM_EMAIL", "not an address"),
            ("AUTHD_SEND_ACTIVATION_EMAIL", "yes"),
        ] {
            let err = load(&[(name, value)], Flags::default()).expect_err(name);
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
        let err = load(
            &[(
                "AUTHD_EMAIL_URL",
                "smtp://mail.example.com:587?tls=required",
            )],
            Flags::default(),
        )
        .expect_err("SMTP without a frontend domain");
        assert!(
            err.to_string().contains("AUTHD_EMAIL_FRONTEND_DOMAIN"),
            "{err}"
        );
        let settings = load(
            &[
                ("AUTHD_EMAIL_URL", "smtps://user:s3cret@mail.example.com"),
                ("AUTHD_EMAIL_FRONTEND_DOMAIN", "app.example.com"),
                ("AUTHD_SEND_ACTIVATION_EMAIL", "1"),
            ],
            Flags::default(),
        )
        .expect("valid mail settings");
        assert!(settings.djoser.send_activation_email);
        assert_eq!(
            settings.mail.frontend_site_name, "app.example.com",
            "the site name defaults to the domain"
        );
        assert!(
            !format!("{settings:?}").contains("s3cret"),
            "the SMTP password is redacted"
        );
    }

    #[test]
    fn database_password_is_redacted() {
        let url = DatabaseUrl::new("postgres://app:s3cret@db:5432/authd");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!(url.redacted().contains("***"));
    }
}
