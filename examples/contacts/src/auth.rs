//! Who is asking: each request's token is checked with authd's `POST /oauth/introspect`, as a
//! confidential client. Active answers are cached by the token's SHA-256 for a few seconds
//! (never past the token's `exp`), so a revoked token stops working within that time; inactive
//! answers are not cached.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Django's permission names for this app.
pub const VIEW: &str = "contacts.view_contact";
pub const CHANGE: &str = "contacts.change_contact";
pub const DELETE: &str = "contacts.delete_contact";

/// An authenticated user: authd's user id and their effective permissions. `is_staff` is not
/// kept: as in Django, it grants nothing by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: i64,
    permissions: HashSet<String>,
}

impl Principal {
    pub fn has(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials")]
    NotProvided,
    #[error("the token is not active")]
    InvalidToken,
    #[error("authd could not be asked: {0}")]
    Unavailable(String),
}

/// authd's answer; only what the example uses.
#[derive(Debug, Deserialize)]
struct Introspection {
    active: bool,
    sub: Option<String>,
    exp: Option<i64>,
    #[serde(default)]
    permissions: Vec<String>,
}

#[derive(Clone)]
struct Cached {
    principal: Principal,
    until: Instant,
}

pub struct Introspector {
    http: reqwest::Client,
    endpoint: String,
    client_id: String,
    client_secret: String,
    cache_for: Duration,
    cache: moka::sync::Cache<[u8; 32], Cached>,
}

impl Introspector {
    /// `cache_for`: how long an active answer is trusted (the service uses 5 s).
    pub fn new(
        authd_url: &str,
        client_id: String,
        client_secret: String,
        cache_for: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            http,
            endpoint: format!("{}/oauth/introspect", authd_url.trim_end_matches('/')),
            client_id,
            client_secret,
            cache_for,
            cache: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(cache_for.max(Duration::from_millis(1)))
                .build(),
        })
    }

    /// The principal behind an `Authorization` header (`Token …` as DRF, or `Bearer …`).
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let token = token_in(header).ok_or(AuthError::NotProvided)?;
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(cached) = self.cache.get(&key)
            && Instant::now() < cached.until
        {
            return Ok(cached.principal);
        }
        let answer = self.introspect(token).await?;
        let (true, Some(sub)) = (answer.active, answer.sub) else {
            self.cache.invalidate(&key);
            return Err(AuthError::InvalidToken);
        };
        let user_id = sub
            .parse()
            .map_err(|_| AuthError::Unavailable(format!("sub is not a user id: {sub}")))?;
        let principal = Principal {
            user_id,
            permissions: answer.permissions.into_iter().collect(),
        };
        if let Some(until) = cache_until(
            Instant::now(),
            SystemTime::now(),
            self.cache_for,
            answer.exp,
        ) {
            self.cache.insert(
                key,
                Cached {
                    principal: principal.clone(),
                    until,
                },
            );
        }
        Ok(principal)
    }

    async fn introspect(&self, token: &str) -> Result<Introspection, AuthError> {
        let unavailable = |e: reqwest::Error| AuthError::Unavailable(e.without_url().to_string());
        let response = self
            .http
            .post(&self.endpoint)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[("token", token)])
            .send()
            .await
            .map_err(unavailable)?;
        if !response.status().is_success() {
            return Err(AuthError::Unavailable(format!(
                "introspection answered {}",
                response.status()
            )));
        }
        response.json().await.map_err(unavailable)
    }
}

/// The token of `Token <key>` or `Bearer <key>` (schemes are case-insensitive).
fn token_in(header: Option<&str>) -> Option<&str> {
    let (scheme, token) = header?.trim().split_once(' ')?;
    let token = token.trim();
    let known = scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer");
    (known && !token.is_empty() && !token.contains(' ')).then_some(token)
}

/// Until when an answer may be reused: `cache_for` from now, but never past `exp`; `None`
/// when it may not be cached at all.
fn cache_until(
    now: Instant,
    wall: SystemTime,
    cache_for: Duration,
    exp: Option<i64>,
) -> Option<Instant> {
    let mut lifetime = cache_for;
    if let Some(exp) = exp {
        let now_seconds = wall.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
        let left = exp as f64 - now_seconds;
        if left <= 0.0 {
            return None;
        }
        lifetime = lifetime.min(Duration::from_secs_f64(left));
    }
    (!lifetime.is_zero()).then(|| now + lifetime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_schemes_are_read() {
        assert_eq!(token_in(Some("Token abc")), Some("abc"));
        assert_eq!(token_in(Some("bearer abc")), Some("abc"));
        assert_eq!(token_in(Some("Basic abc")), None);
        assert_eq!(token_in(Some("Token")), None);
        assert_eq!(token_in(Some("Token a b")), None);
        assert_eq!(token_in(None), None);
    }

    #[test]
    fn the_cache_never_outlives_the_token() {
        let now = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_000);
        let five = Duration::from_secs(5);
        assert_eq!(cache_until(now, wall, five, None), Some(now + five));
        assert_eq!(cache_until(now, wall, five, Some(2_000)), Some(now + five));
        assert_eq!(
            cache_until(now, wall, five, Some(1_002)),
            Some(now + Duration::from_secs(2))
        );
        assert_eq!(cache_until(now, wall, five, Some(1_000)), None);
        assert_eq!(cache_until(now, wall, five, Some(900)), None);
        assert_eq!(cache_until(now, wall, Duration::ZERO, None), None);
    }
}
