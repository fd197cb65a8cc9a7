//! Verified tokens kept in memory (five minutes by default), so the guard does not query the
//! database on every request. Correctness comes from eviction, not from the TTL: every change made
//! through authd (logout, password or username change, user update or deletion) evicts at once,
//! and on PostgreSQL tells the other instances through `NOTIFY`. The TTL only bounds how long
//! a change made around authd (SQL by hand) can go unnoticed. Unknown tokens are never cached.
//!
//! A lookup reads the database and then caches what it read; an eviction between the two must
//! win. Every eviction first advances an epoch; a lookup remembers the epoch it started in and
//! takes its own entry back out if the epoch moved meanwhile. Either the eviction comes after
//! the entry is in (and removes it), or the lookup sees the new epoch (and removes it).
//!
//! Evicting a user's, a session's or a client's tokens must be exact and immediate too, so the
//! cache keeps an index from each of them to its tokens' digests and removes those entries one
//! by one. (moka's `invalidate_entries_if` spares entries inserted in the same clock tick as
//! the predicate, which let a token outlive its logout under load.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::notification::RemovalCause;
use moka::sync::Cache;

use super::Caller;
use crate::store::Principal;
use crate::store::authz::Grants;

/// A token's SHA-256, as bytes.
pub type Key = [u8; 32];

/// What a group of cached tokens is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Group {
    User(i64),
    Session(i64),
    Client(i64),
}

fn groups(caller: &Caller) -> impl Iterator<Item = Group> {
    [
        Some(Group::User(caller.user.id)),
        Some(Group::Session(caller.session_id)),
        caller.client_id.map(Group::Client),
    ]
    .into_iter()
    .flatten()
}

/// The cached tokens of one group, each with the entry it was cached as (so that the removal
/// of an old entry never unindexes a newer one under the same key). A session's group, and
/// most users', holds one token: kept inline, it costs no map of its own.
enum Members {
    One(Key, Arc<Caller>),
    Many(HashMap<Key, Arc<Caller>>),
}

impl Members {
    fn add(&mut self, digest: Key, caller: &Arc<Caller>) {
        match self {
            Members::One(key, cached) if *key == digest => *cached = Arc::clone(caller),
            Members::One(key, cached) => {
                let many =
                    HashMap::from([(*key, Arc::clone(cached)), (digest, Arc::clone(caller))]);
                *self = Members::Many(many);
            }
            Members::Many(members) => {
                members.insert(digest, Arc::clone(caller));
            }
        }
    }

    /// Unindexes `digest` if it is indexed as `caller`; whether the group is empty now.
    fn remove(&mut self, digest: &Key, caller: &Arc<Caller>) -> bool {
        match self {
            Members::One(key, cached) => key == digest && Arc::ptr_eq(cached, caller),
            Members::Many(members) => {
                if members
                    .get(digest)
                    .is_some_and(|indexed| Arc::ptr_eq(indexed, caller))
                {
                    members.remove(digest);
                }
                members.is_empty()
            }
        }
    }

    fn any(&self) -> Option<&Arc<Caller>> {
        match self {
            Members::One(_, cached) => Some(cached),
            Members::Many(members) => members.values().next(),
        }
    }

    fn into_keys(self) -> Vec<Key> {
        match self {
            Members::One(key, _) => vec![key],
            Members::Many(members) => members.into_keys().collect(),
        }
    }
}

/// Group → its cached tokens.
#[derive(Default)]
struct Index(HashMap<Group, Members>);

impl Index {
    fn add(&mut self, digest: Key, caller: &Arc<Caller>) {
        for group in groups(caller) {
            match self.0.get_mut(&group) {
                Some(members) => members.add(digest, caller),
                None => {
                    self.0
                        .insert(group, Members::One(digest, Arc::clone(caller)));
                }
            }
        }
    }

    fn remove(&mut self, digest: &Key, caller: &Arc<Caller>) {
        for group in groups(caller) {
            if self
                .0
                .get_mut(&group)
                .is_some_and(|members| members.remove(digest, caller))
            {
                self.0.remove(&group);
            }
        }
    }

    fn take(&mut self, group: Group) -> Vec<Key> {
        self.0
            .remove(&group)
            .map(Members::into_keys)
            .unwrap_or_default()
    }
}

pub struct TokenCache {
    entries: Option<Cache<Key, Arc<Caller>>>,
    index: Arc<Mutex<Index>>,
    epoch: AtomicU64,
}

/// When a lookup started, as far as evictions are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(u64);

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("enabled", &self.entries.is_some())
            .finish()
    }
}

impl TokenCache {
    /// A `ttl` of zero turns caching off: every request asks the database. At most `capacity`
    /// tokens are held; beyond it, moka evicts by its TinyLFU policy (the least used go first)
    /// and the eviction unindexes them, so the index is bounded with the entries.
    pub fn new(ttl: Duration, capacity: u64) -> Self {
        let index = Arc::new(Mutex::new(Index::default()));
        let unindex = Arc::clone(&index);
        let entries = (!ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .eviction_listener(move |digest: Arc<Key>, caller: Arc<Caller>, cause| {
                    if cause != RemovalCause::Replaced
                        && let Ok(mut index) = unindex.lock()
                    {
                        index.remove(&digest, &caller);
                    }
                })
                .build()
        });
        Self {
            entries,
            index,
            epoch: AtomicU64::new(0),
        }
    }

    pub fn get(&self, digest: &Key) -> Option<Arc<Caller>> {
        self.entries.as_ref()?.get(digest)
    }

    pub fn entry_count(&self) -> u64 {
        self.entries.as_ref().map_or(0, Cache::entry_count)
    }

    /// To be taken before the database is read for an entry.
    pub fn epoch(&self) -> Epoch {
        Epoch(self.epoch.load(Ordering::SeqCst))
    }

    /// The user and grants to build an entry from: those of one of the user's cached tokens
    /// when they equal what was just read, so that a user's tokens share one copy (a user
    /// with a hundred devices is held once, not a hundred times); else `user` and `grants`.
    pub fn share(&self, user: Principal, grants: Grants) -> (Arc<Principal>, Arc<Grants>) {
        let cached = self.index.lock().ok().and_then(|index| {
            let caller = index.0.get(&Group::User(user.id))?.any()?;
            Some((Arc::clone(&caller.user), Arc::clone(&caller.grants)))
        });
        match cached {
            Some((cached_user, cached_grants))
                if *cached_user == user && *cached_grants == grants =>
            {
                (cached_user, cached_grants)
            }
            _ => (Arc::new(user), Arc::new(grants)),
        }
    }

    /// Caches what a lookup that started at `started` read, unless an eviction came since.
    pub fn insert(&self, digest: Key, caller: Arc<Caller>, started: Epoch) {
        if let Some(entries) = &self.entries {
            if let Ok(mut index) = self.index.lock() {
                index.add(digest, &caller);
            }
            entries.insert(digest, caller);
            if self.epoch() != started {
                entries.invalidate(&digest);
            }
        }
    }

    fn advance(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    pub fn forget_token(&self, digest: &Key) {
        self.advance();
        if let Some(entries) = &self.entries {
            entries.invalidate(digest);
        }
    }

    /// Once this returns, no token of the user is served from memory.
    pub fn forget_user(&self, user_id: i64) {
        self.forget_group(Group::User(user_id));
    }

    /// Once this returns, no token of the session is served from memory.
    pub fn forget_session(&self, session_id: i64) {
        self.forget_group(Group::Session(session_id));
    }

    /// Once this returns, no token minted through the client is served from memory.
    pub fn forget_client(&self, client_id: i64) {
        self.forget_group(Group::Client(client_id));
    }

    fn forget_group(&self, group: Group) {
        self.advance();
        let Some(entries) = &self.entries else {
            return;
        };
        let digests = match self.index.lock() {
            Ok(mut index) => index.take(group),
            // A poisoned index cannot say which entries to drop: drop them all.
            Err(_) => return entries.invalidate_all(),
        };
        for digest in digests {
            entries.invalidate(&digest);
        }
    }

    pub fn clear(&self) {
        self.advance();
        if let Some(entries) = &self.entries {
            // One by one, as `invalidate_all` also spares entries of the same clock tick.
            for (digest, _) in entries.iter() {
                entries.invalidate(&*digest);
            }
            entries.invalidate_all();
        }
    }
}

/// What one instance tells the others (PostgreSQL `NOTIFY` payloads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    User(i64),
    Token(String),
    Session(i64),
    /// Every session minted through a registered client (the client was deleted).
    Client(i64),
    /// A group's permissions, or the set of permissions, changed: every cached principal may
    /// hold something else now.
    Authorization,
    /// Accounts arrived with hashes of another scheme (`authd import-django`): the dummy hash
    /// that unknown names check must follow them now, not at its next refresh. Nothing cached
    /// changes.
    LegacyHashes,
}

impl Invalidation {
    pub const CHANNEL: &'static str = "authd_token_cache";

    pub fn payload(&self) -> String {
        match self {
            Invalidation::User(id) => format!("user:{id}"),
            Invalidation::Token(digest) => format!("token:{digest}"),
            Invalidation::Session(id) => format!("session:{id}"),
            Invalidation::Client(id) => format!("client:{id}"),
            Invalidation::Authorization => "authorization:".to_owned(),
            Invalidation::LegacyHashes => "legacy_hashes:".to_owned(),
        }
    }

    pub fn parse(payload: &str) -> Option<Self> {
        match payload.split_once(':')? {
            ("user", id) => id.parse().ok().map(Invalidation::User),
            ("token", digest) => Some(Invalidation::Token(digest.to_owned())),
            ("session", id) => id.parse().ok().map(Invalidation::Session),
            ("client", id) => id.parse().ok().map(Invalidation::Client),
            ("authorization", "") => Some(Invalidation::Authorization),
            ("legacy_hashes", "") => Some(Invalidation::LegacyHashes),
            _ => None,
        }
    }

    /// Whether it drops anything from memory (what a server must confirm it applied).
    pub fn evicts(&self) -> bool {
        !matches!(self, Invalidation::LegacyHashes)
    }

    pub fn apply(&self, cache: &TokenCache) {
        match self {
            Invalidation::User(id) => cache.forget_user(*id),
            // Not hex: no token has that digest, and nothing is cached under it.
            Invalidation::Token(digest) => {
                let mut key = [0; 32];
                if hex::decode_to_slice(digest, &mut key).is_ok() {
                    cache.forget_token(&key);
                }
            }
            Invalidation::Session(id) => cache.forget_session(*id),
            Invalidation::Client(id) => cache.forget_client(*id),
            Invalidation::Authorization => cache.clear(),
            Invalidation::LegacyHashes => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(token: &str) -> Key {
        crate::crypto::token_digest_bytes(token)
    }

    fn caller(user_id: i64) -> Arc<Caller> {
        in_session(user_id, 1)
    }

    fn in_session(user_id: i64, session_id: i64) -> Arc<Caller> {
        let user = crate::store::Principal {
            id: user_id,
            username: "u".into(),
            username_canonical: "u".into(),
            email: String::new(),
            email_canonical: None,
            password_version: 0,
            is_active: true,
            activation_pending: false,
            is_staff: false,
            is_superuser: false,
            date_joined: chrono::Utc::now(),
            last_login: None,
        };
        let now = chrono::Utc::now();
        let token = crate::store::entity::auth_token::Model {
            id: 1,
            digest: "d".into(),
            user_id,
            created: now,
            session_id: Some(session_id),
            kind: crate::store::TokenKind::Login,
            expires_at: None,
            expiry_pending: false,
            retired_at: None,
            superseded: false,
        };
        let session = crate::store::entity::auth_session::Model {
            id: session_id,
            public_id: "s".into(),
            user_id,
            kind: crate::store::SessionKind::Token,
            client_id: None,
            name: String::new(),
            client_ip: None,
            created: now,
            last_used: None,
            expires_at: None,
            scope: None,
        };
        Arc::new(Caller::new(
            Arc::new(user),
            Arc::new(Grants::default()),
            &token,
            &session,
            super::super::TokenKind::Login,
        ))
    }

    /// Past its capacity the cache evicts, and every eviction leaves the index too: a client
    /// with many tokens grows neither.
    #[test]
    fn the_capacity_bounds_the_entries_and_the_index() {
        let cache = TokenCache::new(Duration::from_secs(60), 10);
        for session in 0..200 {
            cache.insert(
                key(&format!("t{session}")),
                in_session(7, session),
                cache.epoch(),
            );
        }
        if let Some(entries) = &cache.entries {
            entries.run_pending_tasks();
        }
        assert!(cache.entry_count() <= 10, "{}", cache.entry_count());
        let index = cache.index.lock().expect("unpoisoned");
        let sessions = index
            .0
            .keys()
            .filter(|group| matches!(group, Group::Session(_)))
            .count();
        assert!(sessions <= 10, "{sessions} sessions indexed");
    }

    #[test]
    fn a_lookup_that_started_before_an_eviction_caches_nothing() {
        let cache = TokenCache::new(Duration::from_secs(60), 1000);
        let started = cache.epoch();
        cache.forget_user(7);
        cache.insert(key("d"), caller(7), started);
        assert!(cache.get(&key("d")).is_none());
        let started = cache.epoch();
        cache.insert(key("d"), caller(7), started);
        assert!(cache.get(&key("d")).is_some());
    }

    #[test]
    fn evictions_by_session_and_user_are_exact() {
        let cache = TokenCache::new(Duration::from_secs(60), 1000);
        cache.insert(key("a"), in_session(7, 1), cache.epoch());
        cache.insert(key("b"), in_session(7, 2), cache.epoch());
        cache.insert(key("b"), in_session(7, 2), cache.epoch());
        cache.insert(key("c"), in_session(8, 3), cache.epoch());
        cache.forget_session(1);
        assert!(cache.get(&key("a")).is_none());
        assert!(cache.get(&key("b")).is_some());
        cache.forget_user(7);
        assert!(
            cache.get(&key("b")).is_none(),
            "a replaced entry is still indexed"
        );
        assert!(cache.get(&key("c")).is_some());
        cache.clear();
        assert!(cache.get(&key("c")).is_none());
    }

    #[test]
    fn an_authorization_change_evicts_everyone_and_refuses_lookups_in_flight() {
        let cache = TokenCache::new(Duration::from_secs(60), 1000);
        cache.insert(key("a"), in_session(7, 1), cache.epoch());
        cache.insert(key("b"), in_session(8, 2), cache.epoch());
        let started = cache.epoch();
        Invalidation::Authorization.apply(&cache);
        assert!(cache.get(&key("a")).is_none() && cache.get(&key("b")).is_none());
        cache.insert(key("c"), in_session(9, 3), started);
        assert!(
            cache.get(&key("c")).is_none(),
            "read before the change, cached after it"
        );
    }

    /// A group grows from one inline token to a map and back: a token dropped alone leaves the
    /// user's others indexed, and the user's eviction then takes them all.
    #[test]
    fn a_users_index_follows_single_evictions() {
        let cache = TokenCache::new(Duration::from_secs(60), 1000);
        for (token, session) in [("a", 1), ("b", 2), ("c", 3)] {
            cache.insert(key(token), in_session(7, session), cache.epoch());
        }
        cache.forget_token(&key("a"));
        if let Some(entries) = &cache.entries {
            entries.run_pending_tasks();
        }
        assert!(cache.get(&key("a")).is_none() && cache.get(&key("b")).is_some());
        cache.forget_user(7);
        assert!(cache.get(&key("b")).is_none() && cache.get(&key("c")).is_none());
        assert!(cache.index.lock().expect("unpoisoned").0.is_empty());
    }

    /// A user's tokens share one principal while it is what the database holds; once it
    /// differs (changed around authd), the fresh one is used.
    #[test]
    fn a_users_cached_tokens_share_one_principal() {
        let cache = TokenCache::new(Duration::from_secs(60), 1000);
        let first = in_session(7, 1);
        cache.insert(key("a"), Arc::clone(&first), cache.epoch());
        let (user, grants) = cache.share(Principal::clone(&first.user), Grants::default());
        assert!(Arc::ptr_eq(&user, &first.user) && Arc::ptr_eq(&grants, &first.grants));
        let renamed = Principal {
            username: "renamed".into(),
            ..Principal::clone(&first.user)
        };
        let (user, _) = cache.share(renamed, Grants::default());
        assert!(!Arc::ptr_eq(&user, &first.user));
        assert_eq!(user.username, "renamed");
        let granted = Grants {
            groups: vec!["staff".into()],
            permissions: Vec::new(),
        };
        let (_, grants) = cache.share(Principal::clone(&first.user), granted);
        assert!(!Arc::ptr_eq(&grants, &first.grants));
        let (other, _) = cache.share(Principal::clone(&in_session(8, 2).user), Grants::default());
        assert_eq!(other.id, 8);
    }

    #[test]
    fn payloads_round_trip() {
        for message in [
            Invalidation::User(42),
            Invalidation::Token("ab12".into()),
            Invalidation::Session(7),
            Invalidation::Client(3),
            Invalidation::Authorization,
            Invalidation::LegacyHashes,
        ] {
            assert_eq!(Invalidation::parse(&message.payload()), Some(message));
        }
        assert_eq!(Invalidation::parse("nonsense"), None);
    }
}
