//! The audit trail: what happened to an account, when, from where. Each event is a row of
//! `audit_event`, written in the transaction of the change it records where there is one (a
//! separate, bounded write for failed logins and refusals), and a log line on target `audit`.
//! docs/audit.md lists the kinds, the keys of `details` for each, and how floods are counted.
//!
//! What an event may hold is decided here, by type: the details of each kind are a variant of
//! [`What`] with fixed fields, none of which can carry a password, a token, a link or a header.
//! A login value typed for no account is never recorded (people type passwords into it).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::domain::ClientInfo;
use crate::store::audit::{self as rows, NewEvent};
use crate::store::{Conn, DbErr, Principal};

pub use crate::store::audit::{Event, Filter};

/// The most characters of a User-Agent kept, escapes included.
pub const USER_AGENT_MAX: usize = 256;
/// Events per page of `GET /users/me/events/`.
pub const PAGE_SIZE: u64 = 50;
/// The window over which repeated events of the counted kinds share one row.
const WINDOW_SECONDS: i64 = 60;
/// The most windows a [`Tally`] holds between flushes; past it, refusals are written at once.
const TALLY_WINDOWS: usize = 10_000;

/// Every kind of event, as stored in `audit_event.kind`.
pub const KINDS: &[&str] = &[
    "login.succeeded",
    "login.failed",
    "logout",
    "session.ended",
    "sessions.ended_all",
    "token.refreshed",
    "refresh.reuse_detected",
    "password.changed",
    "password.reset",
    "username.changed",
    "email.changed",
    "account.activated",
    "account.deactivated",
    "account.deleted",
    "api_key.created",
    "api_key.revoked",
    "client.created",
    "client.deleted",
    "authorization.changed",
    "throttled",
];

/// What happened, with its details: each variant's fields are the keys of its `details`.
/// Values written as `&'static str` come from a fixed list (docs/audit.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum What {
    /// `method`: `token` (Djoser) or `password_grant` (OAuth2). `sessions_evicted`: the oldest
    /// sessions the per-user limit ended to make room.
    LoginSucceeded {
        method: &'static str,
        sessions_evicted: u64,
    },
    /// `reason`: `invalid_credentials` (a known account: wrong password, or inactive),
    /// `unknown_account` (counted per client address and minute), or `current_password` (a
    /// failed check made with a session). `count`: 1, or the attempts the row counts.
    LoginFailed {
        reason: &'static str,
        count: u64,
    },
    /// `via`: `logout` (`POST /token/logout/`) or `revoke` (`POST /oauth/revoke`).
    Logout {
        via: &'static str,
    },
    /// A login ended by its owner from the session list: `session_kind` `token` or `oauth`.
    SessionEnded {
        session_kind: &'static str,
    },
    SessionsEndedAll {
        sessions_ended: u64,
    },
    /// `within_grace`: a retired refresh token came back within the reuse grace.
    TokenRefreshed {
        within_grace: bool,
        scope_requested: bool,
    },
    /// The family is revoked. `superseded`: the token was one a retry had retired.
    RefreshReuseDetected {
        superseded: bool,
    },
    /// `by`: `self` or `operator`.
    PasswordChanged {
        by: &'static str,
        sessions_ended: u64,
    },
    PasswordReset {
        sessions_ended: u64,
    },
    /// `via`: `set_username` or `reset_username`; `previous`: the name before.
    UsernameChanged {
        via: &'static str,
        previous: String,
    },
    /// `via`: `update` (`PUT`/`PATCH`), `set_username` or `reset_username` (under
    /// LOGIN_FIELD=email); `actor_id`: who changed it (staff, or the user); `reactivation_required`:
    /// the account must prove the new address before it works again.
    EmailChanged {
        via: &'static str,
        actor_id: Option<i64>,
        reactivation_required: bool,
    },
    /// `via`: `link` (the activation email) or `operator`.
    AccountActivated {
        via: &'static str,
    },
    AccountDeactivated {
        sessions_ended: u64,
    },
    /// `actor_id`: the user who deleted it (the account itself, or staff).
    AccountDeleted {
        actor_id: i64,
    },
    ApiKeyCreated {
        permissions: u64,
        expires: String,
    },
    /// `via`: `keys` (`DELETE /token/keys/{id}/`), `sessions` (`DELETE /token/sessions/{id}/`)
    /// or `revoke` (`POST /oauth/revoke`).
    ApiKeyRevoked {
        via: &'static str,
    },
    ClientCreated {
        name: String,
        public: bool,
    },
    ClientDeleted {
        sessions_ended: u64,
    },
    /// `actor_id`: the user who made the change (`None`: the operator's command line).
    /// `change`: `user_groups`, `user_permissions`, `user_roles` (the row's user is the one
    /// changed), or `group_created`, `group_changed`, `group_deleted`, `permission_created`,
    /// `permission_changed`, `permission_deleted` (no user). `target`: the group or permission.
    AuthorizationChanged {
        actor_id: Option<i64>,
        change: &'static str,
        target: Option<String>,
        granted: Vec<String>,
        revoked: Vec<String>,
    },
    /// `limit`: a failed-password limit (`ip_account`, `account`, `ip`, `session`) or a request
    /// rate (`anon`, `user`). `count`: the refusals the row counts within its minute.
    Throttled {
        limit: &'static str,
        count: u64,
    },
}

impl What {
    pub fn kind(&self) -> &'static str {
        match self {
            What::LoginSucceeded { .. } => "login.succeeded",
            What::LoginFailed { .. } => "login.failed",
            What::Logout { .. } => "logout",
            What::SessionEnded { .. } => "session.ended",
            What::SessionsEndedAll { .. } => "sessions.ended_all",
            What::TokenRefreshed { .. } => "token.refreshed",
            What::RefreshReuseDetected { .. } => "refresh.reuse_detected",
            What::PasswordChanged { .. } => "password.changed",
            What::PasswordReset { .. } => "password.reset",
            What::UsernameChanged { .. } => "username.changed",
            What::EmailChanged { .. } => "email.changed",
            What::AccountActivated { .. } => "account.activated",
            What::AccountDeactivated { .. } => "account.deactivated",
            What::AccountDeleted { .. } => "account.deleted",
            What::ApiKeyCreated { .. } => "api_key.created",
            What::ApiKeyRevoked { .. } => "api_key.revoked",
            What::ClientCreated { .. } => "client.created",
            What::ClientDeleted { .. } => "client.deleted",
            What::AuthorizationChanged { .. } => "authorization.changed",
            What::Throttled { .. } => "throttled",
        }
    }

    /// A throttled attempt, counted per window.
    pub fn throttled(limit: &'static str) -> Self {
        What::Throttled { limit, count: 1 }
    }

    /// Starts an event with nobody and nowhere attached.
    pub fn event(self) -> Record {
        Record {
            what: self,
            user: None,
            session_id: None,
            client_ip: None,
            user_agent: None,
            client_id: None,
        }
    }
}

/// An event about to be recorded.
#[derive(Debug, Clone)]
#[must_use = "an event is written by `record` or `count`"]
pub struct Record {
    what: What,
    user: Option<(i64, String)>,
    session_id: Option<String>,
    client_ip: Option<IpAddr>,
    user_agent: Option<String>,
    client_id: Option<String>,
}

impl Record {
    /// The account it is about (its name now is kept: names change).
    pub fn user(self, user: &Principal) -> Self {
        self.user_named(user.id, &user.username)
    }

    pub fn user_named(mut self, id: i64, username: &str) -> Self {
        self.user = Some((id, username.to_owned()));
        self
    }

    /// Whether the event is about this user.
    pub fn is_about(&self, user_id: i64) -> bool {
        self.user.as_ref().is_some_and(|(id, _)| *id == user_id)
    }

    /// The session's public id.
    pub fn session(mut self, public_id: &str) -> Self {
        self.session_id = Some(public_id.to_owned());
        self
    }

    /// The client's address and User-Agent; `None`: the command line.
    pub fn from(mut self, client: Option<&ClientInfo>) -> Self {
        if let Some(client) = client {
            self.client_ip = Some(client.ip);
            self.user_agent = client.user_agent.as_deref().map(user_agent);
        }
        self
    }

    /// Only the client's address (authorization changes know no more).
    pub fn from_ip(mut self, ip: Option<IpAddr>) -> Self {
        self.client_ip = ip;
        self
    }

    /// The registered OAuth2 client's `client_id`.
    pub fn client_id(mut self, client_id: Option<String>) -> Self {
        self.client_id = client_id;
        self
    }

    fn row(self, created_at: DateTime<Utc>) -> NewEvent {
        let details = serde_json::to_string(&self.what).unwrap_or_else(|_| "{}".to_owned());
        let (user_id, username) = self.user.unzip();
        NewEvent {
            created_at,
            kind: self.what.kind(),
            user_id,
            username,
            session_id: self.session_id,
            client_ip: self.client_ip.map(|ip| ip.to_string()),
            user_agent: self.user_agent,
            client_id: self.client_id,
            details,
        }
    }

    /// Writes the event (inside the caller's transaction, when it records a change) and logs it.
    pub async fn record(self, db: &impl Conn) -> Result<(), DbErr> {
        let event = self.row(Utc::now());
        rows::insert(db, event.clone()).await?;
        log(&event, None);
        Ok(())
    }

    /// Writes the event as one more of its kind within the minute for `scope` (who it counts
    /// against: an account, a client address): the first makes the row, the rest raise its
    /// `details.count`. So a flood costs one row per scope and minute. Logged the first time.
    pub async fn count(self, db: &impl Conn, scope: &str) -> Result<(), DbErr> {
        let now = Utc::now();
        let key = self.window_key(scope, now);
        write_counted(db, self.row(now), &key).await
    }

    /// [`Record::count`], but counted in `tally` until its next flush: a refusal must stay
    /// cheaper than the request it refuses, so a flood of them costs the database one
    /// statement per scope and flush, not one per refusal.
    pub async fn tally(self, tally: &Tally, db: &impl Conn, scope: &str) -> Result<(), DbErr> {
        let now = Utc::now();
        let key = self.window_key(scope, now);
        let Some(record) = tally.add(key.clone(), self, now) else {
            return Ok(());
        };
        write_counted(db, record.row(now), &key).await
    }

    fn window_key(&self, scope: &str, now: DateTime<Utc>) -> String {
        let window = now.timestamp().div_euclid(WINDOW_SECONDS);
        format!("{}|{scope}|{window}", self.what.kind())
    }

    /// The same event standing for `refusals` of them.
    fn standing_for(mut self, refusals: u64) -> Self {
        if let What::Throttled { count, .. } = &mut self.what {
            *count = refusals;
        }
        self
    }
}

/// Writes a counted event into its window's row; logged when it made the row.
async fn write_counted(db: &impl Conn, event: NewEvent, key: &str) -> Result<(), DbErr> {
    let count = rows::count_in_window(db, event.clone(), key).await?;
    let standing_for = serde_json::from_str::<serde_json::Value>(&event.details)
        .ok()
        .and_then(|details| details["count"].as_i64())
        .unwrap_or(1);
    if count == standing_for {
        log(&event, Some(count));
    } else {
        tracing::debug!(target: "audit", kind = event.kind, count, "counted in this minute's row");
    }
    Ok(())
}

/// Refusals counted in memory per window between flushes (every few seconds, and when authd
/// stops). Bounded: with [`TALLY_WINDOWS`] windows held, a refusal in a new one is handed back
/// to be written at once.
#[derive(Debug, Default)]
pub struct Tally {
    pending: Mutex<HashMap<String, Counted>>,
}

/// One window's refusals so far: the first of them, when it came, and how many.
#[derive(Debug)]
struct Counted {
    record: Record,
    first: DateTime<Utc>,
    refusals: u64,
}

impl Tally {
    /// Counts the refusal; hands it back when the tally is full.
    fn add(&self, key: String, record: Record, at: DateTime<Utc>) -> Option<Record> {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(counted) = pending.get_mut(&key) {
            counted.refusals += 1;
            return None;
        }
        if pending.len() >= TALLY_WINDOWS {
            return Some(record);
        }
        pending.insert(
            key,
            Counted {
                record,
                first: at,
                refusals: 1,
            },
        );
        None
    }

    /// Writes every window counted since the last flush, one statement each, each at the time
    /// of its first refusal. Returns the windows written.
    pub async fn flush(&self, db: &impl Conn) -> Result<usize, DbErr> {
        let taken = std::mem::take(
            &mut *self
                .pending
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        let windows = taken.len();
        let mut taken: Vec<_> = taken.into_iter().collect();
        taken.sort_by_key(|(_, counted)| counted.first);
        for (key, counted) in taken {
            let event = counted.record.standing_for(counted.refusals);
            write_counted(db, event.row(counted.first), &key).await?;
        }
        Ok(windows)
    }
}

fn log(event: &NewEvent, counted: Option<i64>) {
    tracing::info!(
        target: "audit",
        kind = event.kind,
        user_id = event.user_id,
        username = event.username.as_deref(),
        session_id = event.session_id.as_deref(),
        client_ip = event.client_ip.as_deref(),
        user_agent = event.user_agent.as_deref(),
        client_id = event.client_id.as_deref(),
        details = %event.details,
        counted_per_minute = counted.is_some(),
        "audit event"
    );
}

/// A User-Agent as the trail keeps it: control, format and line-separator characters escaped
/// (`\n`, `\r`, `\t`, `\\`, others as `\u{…}`), so that it can never forge a line of a log or
/// of `authd audit`, nor reorder text around it; then at most [`USER_AGENT_MAX`] characters,
/// never cutting an escape in half.
pub fn user_agent(raw: &str) -> String {
    use unicode_general_category::{GeneralCategory, get_general_category};
    let mut kept = String::new();
    let mut length = 0;
    for c in raw.chars() {
        let escaped = match c {
            '\\' => "\\\\".to_owned(),
            '\n' => "\\n".to_owned(),
            '\r' => "\\r".to_owned(),
            '\t' => "\\t".to_owned(),
            c if matches!(
                get_general_category(c),
                GeneralCategory::Control
                    | GeneralCategory::Format
                    | GeneralCategory::LineSeparator
                    | GeneralCategory::ParagraphSeparator
            ) =>
            {
                format!("\\u{{{:x}}}", c as u32)
            }
            c => c.to_string(),
        };
        let width = escaped.chars().count();
        if length + width > USER_AGENT_MAX {
            break;
        }
        length += width;
        kept.push_str(&escaped);
    }
    kept
}

/// One page of a user's history, newest first, and the cursor of the next (the last event's id).
#[derive(Debug)]
pub struct Page {
    pub events: Vec<Event>,
    pub next: Option<i64>,
}

/// `GET /users/me/events/`: the events about `user_id`, older than `cursor` when given.
pub async fn history(db: &impl Conn, user_id: i64, cursor: Option<i64>) -> Result<Page, DbErr> {
    let mut events = rows::for_user(db, user_id, cursor, PAGE_SIZE + 1).await?;
    let more = events.len() as u64 > PAGE_SIZE;
    events.truncate(PAGE_SIZE as usize);
    let next = match more {
        true => events.last().map(|event| event.id),
        false => None,
    };
    Ok(Page { events, next })
}

/// Events read per query by [`search`].
const SEARCH_BATCH: u64 = 1000;

/// `authd audit`: every event matching `filter`, oldest first, handed to `each` in batches (so
/// a long history is never held in memory at once).
pub async fn search(
    db: &impl Conn,
    filter: &Filter,
    mut each: impl FnMut(&Event) -> std::io::Result<()>,
) -> Result<u64, SearchError> {
    let mut after = 0;
    let mut seen = 0;
    loop {
        let batch = rows::list(db, filter, after, SEARCH_BATCH).await?;
        for event in &batch {
            each(event)?;
            after = event.id;
            seen += 1;
        }
        if (batch.len() as u64) < SEARCH_BATCH {
            return Ok(seen);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("cannot read the audit trail")]
    Database(#[from] DbErr),
    #[error("cannot write the output")]
    Output(#[from] std::io::Error),
}

/// Deletes events older than `before`, in batches; returns how many.
pub async fn purge(db: &impl Conn, before: DateTime<Utc>, batch: u64) -> Result<u64, DbErr> {
    let mut purged = 0;
    loop {
        let count = rows::purge(db, before, batch).await?;
        purged += count;
        if count < batch {
            return Ok(purged);
        }
    }
}

/// An event as `authd audit --json` prints it: the row's columns, `details` as an object.
pub fn to_json(event: &Event) -> serde_json::Value {
    serde_json::json!({
        "id": event.id,
        "time": time(event.created_at),
        "kind": event.kind,
        "user_id": event.user_id,
        "username": event.username,
        "session_id": event.session_id,
        "client_ip": event.client_ip,
        "user_agent": event.user_agent,
        "client_id": event.client_id,
        "details": serde_json::from_str::<serde_json::Value>(&event.details)
            .unwrap_or(serde_json::Value::Null),
    })
}

/// An event as one line of text, for a person reading `authd audit`.
pub fn to_line(event: &Event) -> String {
    let mut line = format!("{} {}", time(event.created_at), event.kind);
    if let Some(id) = event.user_id {
        let name = event.username.as_deref().unwrap_or("?");
        line.push_str(&format!(" user={name}({id})"));
    }
    let fields = [
        ("ip", &event.client_ip),
        ("session", &event.session_id),
        ("client", &event.client_id),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            line.push_str(&format!(" {name}={value}"));
        }
    }
    line.push_str(&format!(" {}", event.details));
    if let Some(agent) = &event.user_agent {
        line.push_str(&format!(" agent=\"{agent}\""));
    }
    line
}

/// `authd audit --since`: a span back from `now` (`30s`, `30m`, `24h`, `7d`) or an RFC 3339
/// time (`2026-12-01T00:00:00Z`).
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let refuse = || {
        format!(
            "{text:?} is neither a span such as 30m, 24h or 7d (s, m, h, d) nor an RFC 3339 time such as 2026-12-01T00:00:00Z"
        )
    };
    let split = text.len().saturating_sub(1);
    let (number, unit) = text.split_at_checked(split).ok_or_else(refuse)?;
    let seconds: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(refuse()),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse());
    }
    let span = number
        .parse::<i64>()
        .ok()
        .and_then(|count| count.checked_mul(seconds))
        .and_then(chrono::Duration::try_seconds)
        .ok_or_else(refuse)?;
    now.checked_sub_signed(span).ok_or_else(refuse)
}

/// ISO 8601 in UTC, to the second, with `Z`.
pub fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flood in one window is one entry, however long; a new window, or a new scope, is
    /// another; a full tally hands the refusal back to be written at once.
    #[test]
    fn a_tally_holds_one_entry_per_window() {
        let tally = Tally::default();
        let now = Utc::now();
        let refusal = || What::throttled("anon").event();
        for _ in 0..1000 {
            assert!(
                tally
                    .add("throttled|anon|ip:a|1".into(), refusal(), now)
                    .is_none()
            );
        }
        assert!(
            tally
                .add("throttled|anon|ip:a|2".into(), refusal(), now)
                .is_none()
        );
        let pending = tally.pending.lock().expect("unpoisoned");
        assert_eq!(pending.len(), 2);
        assert_eq!(pending["throttled|anon|ip:a|1"].refusals, 1000);
        drop(pending);
        for window in 2..TALLY_WINDOWS {
            let key = format!("throttled|anon|ip:{window}|1");
            assert!(tally.add(key, refusal(), now).is_none());
        }
        assert!(
            tally
                .add("throttled|anon|ip:new|1".into(), refusal(), now)
                .is_some()
        );
        assert!(
            tally
                .add("throttled|anon|ip:a|1".into(), refusal(), now)
                .is_none()
        );
    }

    #[test]
    fn user_agents_have_their_control_characters_escaped() {
        assert_eq!(user_agent("curl/8.5.0"), "curl/8.5.0");
        assert_eq!(
            user_agent("a\nfake line\r\tx\\y"),
            "a\\nfake line\\r\\tx\\\\y"
        );
        assert_eq!(user_agent("bell\u{7}esc\u{1b}"), "bell\\u{7}esc\\u{1b}");
        assert_eq!(user_agent("del\u{7f}c1\u{85}"), "del\\u{7f}c1\\u{85}");
        // Bidi overrides and Unicode line separators reorder or break what is shown.
        assert_eq!(user_agent("a\u{202e}b\u{2028}c"), "a\\u{202e}b\\u{2028}c");
        assert_eq!(user_agent("Mozilla/5.0 (é, 日本)"), "Mozilla/5.0 (é, 日本)");
    }

    #[test]
    fn user_agents_are_cut_at_256_characters_without_splitting_an_escape() {
        let long = "é".repeat(1000);
        assert_eq!(user_agent(&long).chars().count(), USER_AGENT_MAX);
        let escapes = format!("{}\n\n", "x".repeat(USER_AGENT_MAX - 3));
        assert_eq!(
            user_agent(&escapes),
            format!("{}\\n", "x".repeat(USER_AGENT_MAX - 3))
        );
        assert!(user_agent(&"\u{1}".repeat(300)).chars().count() <= USER_AGENT_MAX);
        assert!(user_agent(&"\u{1}".repeat(300)).ends_with("\\u{1}"));
    }

    #[test]
    fn since_takes_spans_and_rfc_3339_times() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let at = |text: &str| parse_since(text, now).map(time);
        assert_eq!(at("24h").as_deref(), Ok("2026-12-06T12:00:00Z"));
        assert_eq!(at("30m").as_deref(), Ok("2026-12-07T11:30:00Z"));
        assert_eq!(at("7d").as_deref(), Ok("2026-11-30T12:00:00Z"));
        assert_eq!(at("90s").as_deref(), Ok("2026-12-07T11:58:30Z"));
        assert_eq!(
            at("2026-12-01T01:00:00+01:00").as_deref(),
            Ok("2026-12-01T00:00:00Z")
        );
        for bad in [
            "",
            "h",
            "24",
            "24w",
            "-1h",
            "1.5h",
            "yesterday",
            "99999999999999999999d",
        ] {
            assert!(parse_since(bad, now).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn details_have_the_keys_of_their_kind() {
        let json = |what: &What| serde_json::to_value(what).expect("json");
        assert_eq!(
            json(&What::LoginFailed {
                reason: "unknown_account",
                count: 1
            }),
            serde_json::json!({"reason": "unknown_account", "count": 1})
        );
        assert_eq!(
            json(&What::throttled("ip")),
            serde_json::json!({"limit": "ip", "count": 1})
        );
        assert_eq!(
            json(&What::Logout { via: "logout" }),
            serde_json::json!({"via": "logout"})
        );
    }

    #[test]
    fn every_kind_is_listed() {
        let all = [
            What::LoginSucceeded {
                method: "token",
                sessions_evicted: 0,
            },
            What::LoginFailed {
                reason: "",
                count: 1,
            },
            What::Logout { via: "" },
            What::SessionEnded { session_kind: "" },
            What::SessionsEndedAll { sessions_ended: 0 },
            What::TokenRefreshed {
                within_grace: false,
                scope_requested: false,
            },
            What::RefreshReuseDetected { superseded: false },
            What::PasswordChanged {
                by: "",
                sessions_ended: 0,
            },
            What::PasswordReset { sessions_ended: 0 },
            What::UsernameChanged {
                via: "",
                previous: String::new(),
            },
            What::EmailChanged {
                via: "",
                actor_id: None,
                reactivation_required: false,
            },
            What::AccountActivated { via: "" },
            What::AccountDeactivated { sessions_ended: 0 },
            What::AccountDeleted { actor_id: 0 },
            What::ApiKeyCreated {
                permissions: 0,
                expires: String::new(),
            },
            What::ApiKeyRevoked { via: "" },
            What::ClientCreated {
                name: String::new(),
                public: false,
            },
            What::ClientDeleted { sessions_ended: 0 },
            What::AuthorizationChanged {
                actor_id: None,
                change: "",
                target: None,
                granted: Vec::new(),
                revoked: Vec::new(),
            },
            What::throttled(""),
        ];
        let kinds: Vec<&str> = all.iter().map(What::kind).collect();
        assert_eq!(kinds, KINDS);
    }
}
