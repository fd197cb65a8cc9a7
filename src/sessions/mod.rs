//! Sessions: one a login, a Djoser token or an OAuth2 refresh family with its access tokens, or
//! one API key. Opening one (with the per-user limits), listing and ending them, and the refresh
//! family's rotation with reuse detection. Logins themselves (the password) are `accounts`' business;
//! this module starts where the password was checked.

use chrono::{DateTime, Utc};

use crate::audit::What;
use crate::auth::{Caller, Invalidation, TokenKind};
use crate::config::{LimitPolicy, Tokens};
use crate::crypto;
use crate::domain::ClientInfo;
use crate::meter::{self, Ended};
use crate::state::AppState;
use crate::store::entity::auth_session;
use crate::store::sessions::Which;
use crate::store::{self, authz, clients, sessions, tokens, users};
use crate::store::{Conn, DbErr, SessionKind, Tx};

/// The longest session name kept, in characters.
pub const NAME_MAX: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// AUTHD_TOKEN_LIMIT_POLICY=deny and the user has as many sessions as allowed.
    #[error("token limit reached")]
    LimitReached,
    /// The user holds AUTHD_API_KEYS_PER_USER live API keys.
    #[error("API key limit reached")]
    KeyLimitReached,
    #[error("the OS random number generator failed")]
    Random,
    #[error("database error")]
    Database(#[from] DbErr),
}

/// What kind of session a login opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A Djoser login token.
    Token,
    /// An OAuth2 refresh family, minted through a registered client (its row id) or none.
    OAuth { client: Option<i64> },
}

impl Kind {
    /// What its row records (the client goes into a column of its own).
    fn stored(self) -> SessionKind {
        match self {
            Kind::Token => SessionKind::Token,
            Kind::OAuth { .. } => SessionKind::OAuth,
        }
    }

    /// Its `kind` label in `authd_sessions_opened_total`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Token => "token",
            Kind::OAuth { .. } => "oauth",
        }
    }
}

/// An OAuth2 token pair, as the token endpoint hands it out.
#[derive(Debug)]
pub struct Pair {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds the access token lives.
    pub expires_in: u64,
    /// The session's scope (space-separated), `None` when unscoped.
    pub scope: Option<String>,
}

/// What a login asks its tokens to be limited to (RFC 6749 §3.3), before the password is
/// checked: the names in `scope`, and the set the registered client may be granted at most.
#[derive(Debug, Clone, Default)]
pub struct ScopeRequest {
    pub asked: Option<Vec<String>>,
    pub allowed: Option<Vec<String>>,
}

impl ScopeRequest {
    /// Nothing asked and no client's set: an unscoped session.
    pub fn is_unlimited(&self) -> bool {
        self.asked.is_none() && self.allowed.is_none()
    }

    /// The scope to store, given what the user holds now (sorted; a superuser's: every
    /// permission there is). Asked names must all be held and within the client's set (`None`
    /// otherwise); nothing asked through a client with a set: that set ∩ what is held.
    pub fn resolve(&self, held: &[String]) -> Option<Option<Vec<String>>> {
        let within = |name: &String| {
            held.binary_search(name).is_ok()
                && self
                    .allowed
                    .as_ref()
                    .is_none_or(|allowed| allowed.binary_search(name).is_ok())
        };
        match (&self.asked, &self.allowed) {
            (Some(asked), _) => asked.iter().all(within).then(|| Some(asked.clone())),
            (None, Some(allowed)) => Some(Some(
                allowed.iter().filter(|n| within(n)).cloned().collect(),
            )),
            (None, None) => Some(None),
        }
    }
}

/// A scope parameter as a sorted, deduplicated list; an empty one is no scope (RFC 6749 treats
/// a parameter without a value as omitted).
pub fn parse_scope(text: &str) -> Option<Vec<String>> {
    let names = crate::auth::parse_scope(text);
    (!names.is_empty()).then_some(names)
}

/// A scope as stored and shown: space-separated.
pub fn join_scope(names: &[String]) -> String {
    names.join(" ")
}

/// The session a login opens.
#[derive(Debug)]
pub struct Opening {
    pub kind: Kind,
    pub name: String,
    /// The permissions its tokens are limited to (sorted), `None` for unscoped.
    pub scope: Option<Vec<String>>,
}

/// What a new session hands out.
#[derive(Debug)]
pub enum Issued {
    Token(String),
    Pair(Pair),
}

/// A session just opened: what it hands out, its public id, and the sessions the per-user limit
/// ended to make room (for the caller to announce when it commits).
#[derive(Debug)]
pub struct Opened {
    pub issued: Issued,
    pub public_id: String,
    pub evicted: Vec<i64>,
}

/// A session as its owner sees it.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub id: String,
    pub kind: SessionKind,
    pub name: String,
    pub created: DateTime<Utc>,
    pub last_used: Option<DateTime<Utc>>,
    pub expires: Option<DateTime<Utc>>,
    pub current: bool,
}

fn after(now: DateTime<Utc>, span: std::time::Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(span).unwrap_or(chrono::Duration::MAX)
}

/// A session's name: the device name the client gave, else its User-Agent, at most
/// [`NAME_MAX`] characters.
pub fn name(device_name: Option<&str>, client: &ClientInfo) -> String {
    device_name
        .or(client.user_agent.as_deref())
        .unwrap_or_default()
        .trim()
        .chars()
        .take(NAME_MAX)
        .collect()
}

/// Opens a session inside the login's transaction, whose account row is locked, so the
/// per-user limit holds under concurrent logins.
pub async fn open(
    txn: &Tx,
    settings: &Tokens,
    user_id: i64,
    opening: Opening,
    client: &ClientInfo,
) -> Result<Opened, SessionError> {
    let Opening { kind, name, scope } = opening;
    let now = Utc::now();
    let evicted = make_room(txn, settings, user_id, now).await?;
    let expires_at = match kind {
        Kind::Token if settings.ttl.is_zero() => None,
        Kind::Token => Some(after(now, settings.ttl)),
        Kind::OAuth { .. } => Some(after(now, settings.refresh_ttl)),
    };
    let session = sessions::insert(
        txn,
        sessions::NewSession {
            public_id: crypto::random_hex(16),
            user_id,
            kind: kind.stored(),
            client_id: match kind {
                Kind::OAuth { client } => client,
                Kind::Token => None,
            },
            name,
            client_ip: Some(client.ip.to_string()),
            expires_at,
            scope: scope.as_deref().map(join_scope),
        },
    )
    .await?;
    let issued = match kind {
        Kind::Token => Issued::Token(mint(txn, &session, TokenKind::Login, expires_at).await?),
        Kind::OAuth { .. } => Issued::Pair(mint_pair(txn, settings, &session, now).await?),
    };
    Ok(Opened {
        issued,
        public_id: session.public_id,
        evicted,
    })
}

/// The `client_id` of the registered client a session was minted through (its row id), for
/// the audit trail.
pub async fn client_id_of(db: &impl Conn, row: Option<i64>) -> Result<Option<String>, DbErr> {
    Ok(match row {
        Some(row) => clients::find_by_row(db, row)
            .await?
            .map(|client| client.client_id),
        None => None,
    })
}

/// Records `what` about `session` (its user, public id and client) in `db`.
async fn record(
    db: &impl Conn,
    what: What,
    session: &auth_session::Model,
    from: Option<&ClientInfo>,
) -> Result<(), DbErr> {
    let mut event = what
        .event()
        .session(&session.public_id)
        .from(from)
        .client_id(client_id_of(db, session.client_id).await?);
    if let Some(user) = users::find_by_id(db, session.user_id).await? {
        event = event.user(&user);
    }
    event.record(db).await
}

/// What the audit trail calls a session of this kind.
fn kind_name(kind: SessionKind) -> &'static str {
    match kind {
        SessionKind::Token => "token",
        SessionKind::OAuth => "oauth",
        SessionKind::ApiKey => "api_key",
    }
}

/// What ending a session by its owner records: an API key's revocation, or a login's end.
fn owner_ended(kind: SessionKind, via: &'static str) -> What {
    match kind {
        SessionKind::ApiKey => What::ApiKeyRevoked { via },
        kind => What::SessionEnded {
            session_kind: kind_name(kind),
        },
    }
}

/// AUTHD_TOKEN_LIMIT_PER_USER: ends the oldest sessions, or refuses the login.
async fn make_room(
    txn: &Tx,
    settings: &Tokens,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, SessionError> {
    let limit = u64::from(settings.limit_per_user);
    if limit == 0 {
        return Ok(Vec::new());
    }
    let live = sessions::live_for_user(txn, user_id, now, Which::Logins).await?;
    if (live.len() as u64) < limit {
        return Ok(Vec::new());
    }
    if settings.limit_policy == LimitPolicy::Deny {
        return Err(SessionError::LimitReached);
    }
    let excess = live.len() as u64 + 1 - limit;
    let evicted: Vec<i64> = live.iter().take(excess as usize).map(|s| s.id).collect();
    sessions::delete_ids(txn, evicted.clone()).await?;
    Ok(evicted)
}

async fn mint(
    db: &impl Conn,
    session: &auth_session::Model,
    kind: TokenKind,
    expires_at: Option<DateTime<Utc>>,
) -> Result<String, SessionError> {
    let token = crypto::generate_token().map_err(|_| SessionError::Random)?;
    tokens::insert(
        db,
        tokens::NewToken {
            digest: token.digest,
            user_id: session.user_id,
            session_id: session.id,
            kind,
            expires_at,
        },
    )
    .await?;
    Ok(token.secret)
}

/// An access token (capped by the family's end) and a refresh token (living to the family's
/// end: rotation never extends it).
async fn mint_pair(
    db: &impl Conn,
    settings: &Tokens,
    session: &auth_session::Model,
    now: DateTime<Utc>,
) -> Result<Pair, SessionError> {
    let family_end = session.expires_at.unwrap_or(DateTime::<Utc>::MAX_UTC);
    let access_expires = after(now, settings.access_ttl).min(family_end);
    let access_token = mint(db, session, TokenKind::Access, Some(access_expires)).await?;
    let refresh_token = mint(db, session, TokenKind::Refresh, Some(family_end)).await?;
    Ok(Pair {
        access_token,
        refresh_token,
        expires_in: (access_expires - now).num_seconds().max(0) as u64,
        scope: session.scope.clone(),
    })
}

/// `GET /token/sessions/`: the caller's live sessions, oldest first.
pub async fn list(state: &AppState, caller: &Caller) -> Result<Vec<SessionView>, DbErr> {
    let now = Utc::now();
    Ok(
        sessions::live_for_user(&state.db, caller.user.id, now, Which::All)
            .await?
            .into_iter()
            .map(|session| SessionView {
                current: session.id == caller.session_id,
                kind: session.kind,
                id: session.public_id,
                name: session.name,
                created: session.created,
                last_used: session.last_used,
                expires: session.expires_at,
            })
            .collect(),
    )
}

/// Ends one session: its tokens die on every instance, and `what` is recorded with it.
/// `false` for an unknown one (nothing recorded).
pub async fn end(
    state: &AppState,
    session_id: i64,
    what: What,
    from: Option<&ClientInfo>,
) -> Result<bool, DbErr> {
    let txn = store::begin_write(&state.db).await?;
    let Some(session) = sessions::lock(&txn, session_id).await? else {
        return Ok(false);
    };
    let ended = sessions::delete(&txn, session_id).await?;
    record(&txn, what, &session, from).await?;
    state
        .auth
        .commit(txn, &[Invalidation::Session(session_id)])
        .await?;
    Ok(ended)
}

/// `DELETE /token/sessions/{id}/`: one of the caller's sessions; `false` for an unknown id or
/// another user's.
pub async fn end_by_id(
    state: &AppState,
    caller: &Caller,
    public_id: &str,
    from: &ClientInfo,
) -> Result<bool, DbErr> {
    let ended = match sessions::find_public(&state.db, caller.user.id, public_id).await? {
        Some(session) => {
            let what = owner_ended(session.kind, "sessions");
            end(state, session.id, what, Some(from)).await?
        }
        None => false,
    };
    meter::sessions_ended(Ended::Revoked, u64::from(ended));
    Ok(ended)
}

/// `POST /token/logoutall/`: every session of the caller.
pub async fn end_all(state: &AppState, caller: &Caller, from: &ClientInfo) -> Result<u64, DbErr> {
    let txn = store::begin_write(&state.db).await?;
    let ended = sessions::delete_for_user(&txn, caller.user.id, None).await?;
    What::SessionsEndedAll {
        sessions_ended: ended,
    }
    .event()
    .user(&caller.user)
    .session(&caller.session_public_id)
    .from(Some(from))
    .record(&txn)
    .await?;
    state
        .auth
        .commit(txn, &[Invalidation::User(caller.user.id)])
        .await?;
    meter::sessions_ended(Ended::LogoutAll, ended);
    Ok(ended)
}

/// An API key about to be created: its scope is settled (within what the user holds).
#[derive(Debug)]
pub struct NewKey {
    pub name: String,
    pub scope: Vec<String>,
    pub expires_at: DateTime<Utc>,
}

/// An API key as its owner sees it (the key itself is shown once, at creation).
#[derive(Debug, Clone)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub scope: Vec<String>,
    pub expires: DateTime<Utc>,
    pub created: DateTime<Utc>,
}

impl KeyView {
    fn of(session: auth_session::Model) -> Self {
        Self {
            id: session.public_id,
            name: session.name,
            scope: session
                .scope
                .as_deref()
                .map(crate::auth::parse_scope)
                .unwrap_or_default(),
            expires: session.expires_at.unwrap_or(DateTime::<Utc>::MAX_UTC),
            created: session.created,
        }
    }
}

/// Creates an API key inside the transaction that locked its user's row, so that
/// AUTHD_API_KEYS_PER_USER holds under concurrent creations. Returns the key and its view.
pub async fn open_key(
    txn: &Tx,
    settings: &Tokens,
    user_id: i64,
    key: NewKey,
    client: &ClientInfo,
) -> Result<(String, KeyView), SessionError> {
    let held = sessions::live_for_user(txn, user_id, Utc::now(), Which::ApiKeys).await?;
    if held.len() as u64 >= u64::from(settings.api_keys_per_user) {
        return Err(SessionError::KeyLimitReached);
    }
    let session = sessions::insert(
        txn,
        sessions::NewSession {
            public_id: crypto::random_hex(16),
            user_id,
            kind: SessionKind::ApiKey,
            client_id: None,
            name: key.name,
            client_ip: Some(client.ip.to_string()),
            expires_at: Some(key.expires_at),
            // Stored even when empty: a key that may do nothing but say who it belongs to.
            scope: Some(join_scope(&key.scope)),
        },
    )
    .await?;
    let secret = crypto::generate_api_key().map_err(|_| SessionError::Random)?;
    tokens::insert(
        txn,
        tokens::NewToken {
            digest: secret.digest,
            user_id,
            session_id: session.id,
            kind: TokenKind::ApiKey,
            expires_at: Some(key.expires_at),
        },
    )
    .await?;
    Ok((secret.secret, KeyView::of(session)))
}

/// `GET /token/keys/`: the caller's live API keys, oldest first.
pub async fn list_keys(state: &AppState, caller: &Caller) -> Result<Vec<KeyView>, DbErr> {
    Ok(
        sessions::live_for_user(&state.db, caller.user.id, Utc::now(), Which::ApiKeys)
            .await?
            .into_iter()
            .map(KeyView::of)
            .collect(),
    )
}

/// `DELETE /token/keys/{id}/`: one of the caller's API keys; `false` for an unknown id,
/// another user's, or a session that is not a key.
pub async fn end_key(
    state: &AppState,
    caller: &Caller,
    public_id: &str,
    from: &ClientInfo,
) -> Result<bool, DbErr> {
    let ended = match sessions::find_public(&state.db, caller.user.id, public_id).await? {
        Some(session) if session.kind == SessionKind::ApiKey => {
            let what = owner_ended(session.kind, "keys");
            end(state, session.id, what, Some(from)).await?
        }
        _ => false,
    };
    meter::sessions_ended(Ended::Revoked, u64::from(ended));
    Ok(ended)
}

/// The session an authd token belongs to, as revocation needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub session_id: i64,
    pub kind: SessionKind,
    /// The registered client the session was minted through (its row id), if any.
    pub client: Option<i64>,
}

/// The session of any authd token, of any kind; `None` for an unknown token.
pub async fn holder(state: &AppState, secret: &str) -> Result<Option<Holder>, DbErr> {
    let digest = crypto::token_digest(secret.trim());
    let Some(session_id) = tokens::find(&state.db, &digest)
        .await?
        .and_then(|token| token.session_id)
    else {
        return Ok(None);
    };
    Ok(sessions::find(&state.db, session_id)
        .await?
        .map(|session| Holder {
            session_id,
            kind: session.kind,
            client: session.client_id,
        }))
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, expired, revoked or reused (which revoked its family), or bound to another
    /// client: RFC 6749's `invalid_grant`.
    #[error("invalid refresh token")]
    InvalidGrant,
    /// A retired refresh token presented again: its family is revoked (`invalid_grant` too).
    #[error("reused refresh token")]
    Reused,
    /// A scope beyond the session's (for an unscoped session: beyond what the user holds).
    #[error("invalid scope")]
    InvalidScope,
    #[error(transparent)]
    Session(#[from] SessionError),
}

impl From<DbErr> for RefreshError {
    fn from(err: DbErr) -> Self {
        RefreshError::Session(SessionError::Database(err))
    }
}

/// `grant_type=refresh_token`: rotation. The refresh token is retired and a new pair minted.
/// A retired one presented again revokes its whole family (and the reuse is logged), unless it
/// comes back within AUTHD_REFRESH_REUSE_GRACE_SECONDS of its retirement (a client retrying
/// after a lost answer): then it gets a new pair, and what the rotations since it minted is
/// retired, not deleted, with no grace of its own. Whoever holds that retired pair (the owner,
/// when a thief replayed a stolen token inside the window; the other tab, when two tabs
/// refreshed at once) revokes the family by presenting it, so a replay never silently takes a
/// session over, and owner and thief cannot take turns inside successive windows. Rotations of
/// one family serialise on its session row.
pub async fn refresh(
    state: &AppState,
    secret: &str,
    client: Option<i64>,
    scope: Option<Vec<String>>,
    from: &ClientInfo,
) -> Result<Pair, RefreshError> {
    let settings = &state.settings.tokens;
    let digest = crypto::token_digest(secret.trim());
    let Some(presented) = tokens::find(&state.db, &digest).await? else {
        return Err(RefreshError::InvalidGrant);
    };
    let (Some(session_id), TokenKind::Refresh) = (presented.session_id, presented.kind) else {
        return Err(RefreshError::InvalidGrant);
    };
    let now = Utc::now();
    let txn = store::begin_write(&state.db).await?;
    let Some(mut session) = sessions::lock(&txn, session_id).await? else {
        return Err(RefreshError::InvalidGrant);
    };
    let Some(user) = users::find_by_id(&txn, session.user_id)
        .await?
        .filter(|user| user.is_active)
    else {
        return Err(RefreshError::InvalidGrant);
    };
    let family_alive = session.expires_at.is_none_or(|end| end > now);
    if !family_alive || session.client_id != client {
        return Err(RefreshError::InvalidGrant);
    }
    // Read again under the family's lock: a concurrent rotation may have retired it.
    let Some(current) = tokens::find(&txn, &digest).await? else {
        return Err(RefreshError::InvalidGrant);
    };
    let grace =
        chrono::Duration::from_std(settings.refresh_reuse_grace).unwrap_or(chrono::Duration::MAX);
    let mut changes = vec![Invalidation::Token(digest)];
    let mut within_grace = false;
    match current.retired_at {
        None => {
            tokens::retire(&txn, current.id).await?;
        }
        Some(retired) if !current.superseded && !grace.is_zero() && now - retired <= grace => {
            let replaced = tokens::minted_after(&txn, session.id, current.id).await?;
            changes.extend(
                replaced
                    .iter()
                    .map(|token| Invalidation::Token(token.digest.clone())),
            );
            tokens::supersede(&txn, replaced.iter().map(|token| token.id).collect()).await?;
            within_grace = true;
            tracing::info!(
                session = session.id,
                user_id = session.user_id,
                superseded = replaced.len(),
                "a retired refresh token came back within the grace period; what its rotation minted is retired"
            );
        }
        Some(_) => {
            sessions::delete(&txn, session.id).await?;
            let what = What::RefreshReuseDetected {
                superseded: current.superseded,
            };
            record(&txn, what, &session, Some(from)).await?;
            state
                .auth
                .commit(txn, &[Invalidation::Session(session.id)])
                .await?;
            tracing::warn!(
                session = session.id,
                user_id = session.user_id,
                superseded = current.superseded,
                "a retired refresh token was presented again; its family is revoked"
            );
            return Err(RefreshError::Reused);
        }
    }
    // Keep or narrow, never widen: refused, the transaction (and the retirement) is dropped.
    let scope_requested = scope.is_some();
    if let Some(asked) = scope {
        let limit = match session.scope.as_deref() {
            Some(stored) => crate::auth::parse_scope(stored),
            None => {
                authz::grants(&txn, user.id, user.is_superuser)
                    .await?
                    .permissions
            }
        };
        if !asked.iter().all(|name| limit.binary_search(name).is_ok()) {
            return Err(RefreshError::InvalidScope);
        }
        let narrowed = join_scope(&asked);
        sessions::set_scope(&txn, session.id, &narrowed).await?;
        session.scope = Some(narrowed);
        changes.push(Invalidation::Session(session.id));
    }
    let pair = mint_pair(&txn, settings, &session, now).await?;
    let what = What::TokenRefreshed {
        within_grace,
        scope_requested,
    };
    record(&txn, what, &session, Some(from)).await?;
    state.auth.commit(txn, &changes).await?;
    Ok(pair)
}

/// Sets the expiry of the tokens the previous release left (creation + AUTHD_TOKEN_TTL_SECONDS),
/// at the first start after the upgrade, in batches.
pub async fn settle_legacy_expiry(db: &store::Db, settings: &Tokens) -> Result<u64, DbErr> {
    let mut settled = 0;
    loop {
        let batch = tokens::expiry_pending(db, 500).await?;
        if batch.is_empty() {
            return Ok(settled);
        }
        let txn = store::begin_write(db).await?;
        for token in &batch {
            let expires_at = (!settings.ttl.is_zero()).then(|| after(token.created, settings.ttl));
            tokens::set_expiry(&txn, token.id, expires_at).await?;
            if let Some(session_id) = token.session_id {
                sessions::set_expiry(&txn, session_id, expires_at).await?;
            }
        }
        txn.commit().await?;
        settled += batch.len() as u64;
    }
}
