//! Who is calling: the token guard on every request, the verified tokens it keeps in memory,
//! their expiry (absolute and idle, checked on every request without touching the database),
//! the last uses it writes back in batches, and how a change that revokes tokens reaches every
//! instance's memory before it answers. Depends only on `store` and `crypto`.

mod barrier;
mod cache;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::crypto;
use crate::store::authz::Grants;
use crate::store::entity::{auth_session, auth_token, oauth_client};
use crate::store::{self, Principal, clients, sessions, tokens};
use crate::store::{Db, DbErr, Heard, Reply, Tx};

pub use crate::store::TokenKind;
pub use barrier::{BARRIER_TIMEOUT, Barriers};
pub use cache::{Invalidation, TokenCache};

/// A session's last use is written at most this often, and more often under a short idle
/// limit ([`Authenticator::last_use_interval`]).
const LAST_USE_WRITE_INTERVAL: Duration = Duration::from_secs(60);
/// Registered clients stay in memory this long at most (a deletion evicts them at once).
const CLIENT_CACHE_TTL: Duration = Duration::from_secs(60);

/// A live token and what it stands for: the user with their groups and permissions, the
/// session, the token itself.
#[derive(Debug)]
pub struct Caller {
    /// Shared by every cached token of the user (see [`TokenCache::share`]).
    pub user: Arc<Principal>,
    /// The user's groups and effective permissions when the token was looked up; a change to
    /// either evicts the entry (the user's, or every one). Shared like `user`.
    pub grants: Arc<Grants>,
    pub session_id: i64,
    /// The session's public id (what `/token/sessions/` and the audit trail show).
    pub session_public_id: String,
    pub token_id: i64,
    pub kind: TokenKind,
    pub issued_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The registered client its session was minted through (the row id), if any.
    pub client_id: Option<i64>,
    /// The permissions its session was granted (sorted), `None` when unscoped.
    scope: Option<Vec<String>>,
    /// The latest use this instance saw (Unix seconds), for the idle limit.
    last_seen: AtomicI64,
    /// When this instance last queued the session's last use for writing (Unix seconds).
    last_queued: AtomicI64,
}

impl Caller {
    pub fn new(
        user: Arc<Principal>,
        grants: Arc<Grants>,
        token: &auth_token::Model,
        session: &auth_session::Model,
        kind: TokenKind,
    ) -> Self {
        let last_seen = session
            .last_used
            .map_or(token.created, |used| used.max(token.created));
        Self {
            user,
            grants,
            session_id: session.id,
            session_public_id: session.public_id.clone(),
            token_id: token.id,
            kind,
            issued_at: token.created,
            expires_at: token.expires_at,
            client_id: session.client_id,
            scope: session.scope.as_deref().map(parse_scope),
            last_seen: AtomicI64::new(last_seen.timestamp()),
            last_queued: AtomicI64::new(session.last_used.map_or(0, |used| used.timestamp())),
        }
    }

    /// The permissions the token is limited to, or `None` when it may do whatever its user
    /// may.
    pub fn scope(&self) -> Option<&[String]> {
        self.scope.as_deref()
    }

    /// A scoped token's authority is its scope: no staff or superuser status, no groups, and
    /// no account or admin routes. An API key is always scoped.
    pub fn is_scoped(&self) -> bool {
        self.scope.is_some() || self.is_api_key()
    }

    pub fn is_api_key(&self) -> bool {
        self.kind == TokenKind::ApiKey
    }

    /// Staff status as the token may use it: none for a scoped token.
    pub fn acts_as_staff(&self) -> bool {
        self.user.is_staff && !self.is_scoped()
    }

    /// What the token may do now, sorted: the scope ∩ what the user holds (a superuser holds
    /// every permission there is), or, unscoped, everything the user holds.
    pub fn effective_permissions(&self) -> Vec<String> {
        match self.scope() {
            Some(scope) => self
                .grants
                .permissions
                .iter()
                .filter(|name| scope.binary_search(name).is_ok())
                .cloned()
                .collect(),
            None => self.grants.permissions.clone(),
        }
    }

    /// Django's `has_perms`: every name is held (an unknown one is not), and within the scope.
    /// An active superuser on an unscoped token holds every name, even one that does not exist.
    pub fn has_perms(&self, names: &[String]) -> bool {
        let scope = self.scope();
        if self.user.is_active && self.user.is_superuser && scope.is_none() {
            return true;
        }
        names.iter().all(|name| {
            self.grants.permissions.binary_search(name).is_ok()
                && scope.is_none_or(|scope| scope.binary_search(name).is_ok())
        })
    }

    /// Not expired, and (with an idle limit) used recently enough. The idle limit is about
    /// tokens people use: a refresh family's end is its absolute lifetime, and an API key's
    /// program may call once a month.
    fn alive(&self, now: DateTime<Utc>, idle: Duration) -> bool {
        let expired = self.expires_at.is_some_and(|expires| expires <= now);
        let idle_for = now.timestamp() - self.last_seen.load(Ordering::Relaxed);
        let idles = matches!(self.kind, TokenKind::Login | TokenKind::Access);
        let idled = !idle.is_zero() && idles && idle_for > idle.as_secs() as i64;
        !expired && !idled
    }
}

/// A stored scope (space-separated) as a sorted, deduplicated list.
pub fn parse_scope(stored: &str) -> Vec<String> {
    let mut names: Vec<String> = stored.split_whitespace().map(str::to_owned).collect();
    names.sort();
    names.dedup();
    names
}

#[derive(Debug, thiserror::Error)]
pub enum TokenRejected {
    #[error("invalid token")]
    Invalid,
    #[error("user inactive or deleted")]
    Inactive,
    #[error("database error")]
    Database(#[from] DbErr),
}

/// The guard, its memory, and the last uses waiting to be written.
pub struct Authenticator {
    db: Db,
    cache: TokenCache,
    idle: Duration,
    /// How often at most a session's last use is queued for writing.
    last_use_interval: Duration,
    uses: Mutex<HashMap<i64, DateTime<Utc>>>,
    /// Registered OAuth2 clients by `client_id`, and by row (what sessions point to).
    clients: moka::sync::Cache<String, Arc<oauth_client::Model>>,
    clients_by_row: moka::sync::Cache<i64, Arc<oauth_client::Model>>,
    barriers: Barriers,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("cache", &self.cache)
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// `cache_ttl` of zero: every request asks the database; `idle` of zero: no idle limit.
    /// `cache_ttl` and `cache_capacity`: how long and how many verified tokens are answered
    /// from memory.
    pub fn new(db: Db, cache_ttl: Duration, cache_capacity: u64, idle: Duration) -> Self {
        // A session read back from the database (the cache expired, another instance answers)
        // is judged by its written last use: written every quarter of the idle limit at most,
        // it is never stale enough to idle a token in use out.
        let last_use_interval = match idle.is_zero() {
            true => LAST_USE_WRITE_INTERVAL,
            false => LAST_USE_WRITE_INTERVAL.min(idle / 4),
        };
        Self {
            db,
            cache: TokenCache::new(cache_ttl, cache_capacity),
            idle,
            last_use_interval,
            uses: Mutex::new(HashMap::new()),
            clients: moka::sync::Cache::builder()
                .time_to_live(CLIENT_CACHE_TTL)
                .build(),
            clients_by_row: moka::sync::Cache::builder()
                .time_to_live(CLIENT_CACHE_TTL)
                .build(),
            barriers: Barriers::new(),
        }
    }

    /// A registered client, from memory or the database.
    pub async fn client(&self, client_id: &str) -> Result<Option<Arc<oauth_client::Model>>, DbErr> {
        if let Some(client) = self.clients.get(client_id) {
            return Ok(Some(client));
        }
        let found = clients::find(&self.db, client_id).await?.map(Arc::new);
        if let Some(client) = &found {
            self.clients
                .insert(client.client_id.clone(), Arc::clone(client));
        }
        Ok(found)
    }

    /// The client a session was minted through, from its row id.
    pub async fn client_by_row(&self, id: i64) -> Result<Option<Arc<oauth_client::Model>>, DbErr> {
        if let Some(client) = self.clients_by_row.get(&id) {
            return Ok(Some(client));
        }
        let found = clients::find_by_row(&self.db, id).await?.map(Arc::new);
        if let Some(client) = &found {
            self.clients_by_row.insert(id, Arc::clone(client));
        }
        Ok(found)
    }

    /// The guard: a live Djoser or access token of an active user. An expired, idle, revoked or
    /// unknown token, and a refresh token, are all simply invalid.
    pub async fn authenticate(&self, token: &str) -> Result<Arc<Caller>, TokenRejected> {
        match self.find(token).await? {
            Some(caller) if caller.kind != TokenKind::Refresh => {
                if caller.user.is_active {
                    self.record_use(&caller);
                    Ok(caller)
                } else {
                    Err(TokenRejected::Inactive)
                }
            }
            _ => Err(TokenRejected::Invalid),
        }
    }

    /// The guard for `X-API-Key`, which carries API keys only: a login or access token sent
    /// there is invalid (checked by its prefix before any lookup).
    pub async fn authenticate_api_key(&self, key: &str) -> Result<Arc<Caller>, TokenRejected> {
        if !key.starts_with(crypto::API_KEY_PREFIX) {
            return Err(TokenRejected::Invalid);
        }
        let caller = self.authenticate(key).await?;
        match caller.is_api_key() {
            true => Ok(caller),
            false => Err(TokenRejected::Invalid),
        }
    }

    /// Any live token, of any kind, of an active user: what introspection answers about. Being
    /// asked about is not a use: a resource server polling authd must not keep an idle token
    /// alive.
    pub async fn inspect(&self, token: &str) -> Result<Option<Arc<Caller>>, DbErr> {
        let found = match self.find(token).await {
            Ok(found) => found,
            Err(TokenRejected::Database(err)) => return Err(err),
            Err(_) => None,
        };
        Ok(found.filter(|caller| caller.user.is_active))
    }

    /// A live token: from memory, or with one indexed query reading its user, its session and
    /// what the user holds.
    /// Only live tokens of active users, other than refresh tokens, are kept in memory.
    async fn find(&self, token: &str) -> Result<Option<Arc<Caller>>, TokenRejected> {
        // authd's own tokens, and DRF keys brought by `authd import-django`; anything else is
        // refused without a lookup. The prefix test decides authd's tokens first.
        if !token.starts_with(crypto::TOKEN_PREFIX) && !crypto::is_drf_key(token) {
            return Ok(None);
        }
        let key = crypto::token_digest_bytes(token);
        let now = Utc::now();
        if let Some(caller) = self.cache.get(&key) {
            metrics::counter!("authd_token_cache_requests_total", "result" => "hit").increment(1);
            if caller.alive(now, self.idle) {
                return Ok(Some(caller));
            }
            self.cache.forget_token(&key);
            return Ok(None);
        }
        metrics::counter!("authd_token_cache_requests_total", "result" => "miss").increment(1);
        let started = self.cache.epoch();
        let Some(live) = tokens::find_live(&self.db, &hex::encode(key)).await? else {
            return Ok(None);
        };
        let kind = live.token.kind;
        if live.token.retired_at.is_some() {
            return Ok(None);
        }
        // An inactive user holds nothing (and is never answered for).
        let grants = match live.user.is_active {
            true => live.grants,
            false => Grants::default(),
        };
        let (user, grants) = self.cache.share(live.user, grants);
        let caller = Arc::new(Caller::new(user, grants, &live.token, &live.session, kind));
        if !caller.alive(now, self.idle) {
            return Ok(None);
        }
        if caller.user.is_active && kind != TokenKind::Refresh {
            self.cache.insert(key, Arc::clone(&caller), started);
        }
        Ok(Some(caller))
    }

    /// Verified tokens held in memory (moka's count, which may lag a little), for metrics.
    pub fn cached_tokens(&self) -> u64 {
        self.cache.entry_count()
    }

    /// How often at most a session's last use is queued for writing: a minute, or a quarter of
    /// the idle limit when that is shorter. The writer must write at least this often.
    pub fn last_use_interval(&self) -> Duration {
        self.last_use_interval
    }

    /// Remembers the use for the idle limit, and queues the session's last use for the next
    /// batch write, at most once per [`Self::last_use_interval`] per session.
    fn record_use(&self, caller: &Caller) {
        let now = Utc::now();
        let seconds = now.timestamp();
        caller.last_seen.fetch_max(seconds, Ordering::Relaxed);
        let queued = caller.last_queued.load(Ordering::Relaxed);
        let interval = self.last_use_interval.as_secs().max(1) as i64;
        if seconds - queued >= interval
            && caller
                .last_queued
                .compare_exchange(queued, seconds, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            && let Ok(mut uses) = self.uses.lock()
        {
            uses.insert(caller.session_id, now);
        }
    }

    /// Writes the queued last uses in one transaction, a statement per thousand sessions; the
    /// background task calls it.
    pub async fn write_last_uses(&self) -> Result<usize, DbErr> {
        let batch: Vec<(i64, DateTime<Utc>)> = match self.uses.lock() {
            Ok(mut uses) => uses.drain().collect(),
            Err(_) => return Ok(0),
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let txn = store::begin_write(&self.db).await?;
        sessions::touch_many(&txn, &batch).await?;
        txn.commit().await?;
        Ok(batch.len())
    }

    /// Commits a transaction that revoked tokens or changed users, so that no instance answers
    /// from memory what it changed: the message to the others is part of the transaction (it
    /// is delivered if and only if the change commits), this instance forgets at once, and on
    /// PostgreSQL this returns once every server confirmed it applied the change, or after
    /// [`BARRIER_TIMEOUT`] (see `barrier.rs`).
    pub async fn commit(&self, txn: Tx, changes: &[Invalidation]) -> Result<(), DbErr> {
        let pending = self.barriers.raise(&self.db, &txn, changes).await?;
        txn.commit().await?;
        for change in changes {
            self.forget(change);
        }
        pending.settle(&self.db).await;
        Ok(())
    }

    /// Drops what this instance's memory holds about a user, a session, a token or a client.
    pub fn forget(&self, change: &Invalidation) {
        change.apply(&self.cache);
        if let Invalidation::Client(_) = change {
            self.clients.invalidate_all();
            self.clients_by_row.invalidate_all();
        }
    }

    /// The channels this server's listener follows: the changes, and the answers to its own
    /// barriers.
    pub fn channels(&self) -> [String; 2] {
        [
            Invalidation::CHANNEL.to_owned(),
            self.barriers.ack_channel(),
        ]
    }

    /// What this server's listener heard; returns the answer to send back, if any.
    pub fn on_heard(&self, heard: Heard<'_>) -> Option<Reply> {
        match heard {
            Heard::Listening => {
                self.cache.clear();
                self.clients.invalidate_all();
                self.clients_by_row.invalidate_all();
                self.barriers.listening(true);
                None
            }
            Heard::Lost => {
                self.barriers.listening(false);
                None
            }
            Heard::Notice(notice) if notice.channel == Invalidation::CHANNEL => {
                if let Some(change) = Invalidation::parse(notice.payload) {
                    self.forget(&change);
                }
                Barriers::answer(notice.payload)
            }
            Heard::Notice(notice) => {
                self.barriers.answered(notice);
                None
            }
        }
    }
}
