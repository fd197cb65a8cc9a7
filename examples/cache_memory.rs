//! The heap one cached token costs: 100,000 verified tokens (as the guard caches them, each in
//! a session of its own) put in a token cache at the default capacity, counted by a global
//! allocator that tallies what is allocated and not yet freed. Once with every token of a user
//! of its own (the worst case: nothing to share), once with a thousand users holding a hundred
//! tokens each. Heap only: what the allocator keeps beside it shows in the process's RSS
//! (`bench/scale.py`).
//!
//! `cargo run --release --example cache_memory` prints
//! `{"bytes_per_token_distinct_users": …, "bytes_per_token_shared_users": …}`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use authd::auth::{Caller, TokenCache, TokenKind};
use authd::crypto;
use authd::store::authz::Grants;
use authd::store::entity::{auth_session, auth_token};
use authd::store::{Principal, SessionKind};
use chrono::{DateTime, Utc};

const TOKENS: usize = 100_000;

/// Bytes allocated and not yet freed.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is passed to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `layout` is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A user as registration leaves one: a ten-character name with an email address (read back
/// alike for each of their tokens).
fn user(id: i64) -> Principal {
    let joined = DateTime::from_timestamp(1_765_000_000 + id, 0).unwrap_or_default();
    let name = format!("user{id:06}");
    let email = format!("{name}@example.com");
    Principal {
        id,
        username: name.clone(),
        username_canonical: name,
        email: email.clone(),
        email_canonical: Some(email),
        password_version: 0,
        is_active: true,
        activation_pending: false,
        is_staff: false,
        is_superuser: false,
        date_joined: joined,
        last_login: Some(joined),
    }
}

fn cached(cache: &TokenCache, index: usize, users: usize) {
    let now = Utc::now();
    let user_id = (index % users) as i64 + 1;
    let session = auth_session::Model {
        id: index as i64 + 1,
        public_id: crypto::random_hex(16),
        user_id,
        kind: SessionKind::Token,
        client_id: None,
        name: String::new(),
        client_ip: None,
        created: now,
        last_used: None,
        expires_at: None,
        scope: None,
    };
    let secret = format!("authd_{index:043}");
    let token = auth_token::Model {
        id: index as i64 + 1,
        digest: crypto::token_digest(&secret),
        user_id,
        created: now,
        session_id: Some(session.id),
        kind: TokenKind::Login,
        expires_at: None,
        expiry_pending: false,
        retired_at: None,
        superseded: false,
    };
    let (user, grants) = cache.share(user(user_id), Grants::default());
    let caller = Arc::new(Caller::new(
        user,
        grants,
        &token,
        &session,
        TokenKind::Login,
    ));
    cache.insert(crypto::token_digest_bytes(&secret), caller, cache.epoch());
}

/// Heap bytes per token of a cache holding `TOKENS` tokens of `users` users.
fn per_token(users: usize) -> f64 {
    let before = LIVE.load(Ordering::Relaxed);
    let cache = TokenCache::new(Duration::from_secs(300), TOKENS as u64);
    for index in 0..TOKENS {
        cached(&cache, index, users);
    }
    let held = cache.entry_count();
    assert!(
        held as usize >= TOKENS * 99 / 100,
        "only {held} tokens held"
    );
    let grown = LIVE.load(Ordering::Relaxed) - before;
    drop(cache);
    grown as f64 / held as f64
}

fn main() {
    let distinct = per_token(TOKENS);
    let shared = per_token(1_000);
    println!(
        "{{\"bytes_per_token_distinct_users\": {distinct:.0}, \"bytes_per_token_shared_users\": {shared:.0}}}"
    );
}
