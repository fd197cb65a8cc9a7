//! OAuth2 beside Djoser: the token endpoint with the password and refresh_token grants
//! (RFC 6749), revocation (RFC 7009), introspection for resource servers (RFC 7662), and the
//! registered clients. Errors speak RFC 6749 §5.2, not DRF.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::accounts::{self, PasswordLogin};
use crate::audit::What;
use crate::auth::{Invalidation, TokenKind};
use crate::crypto::{self, HashError};
use crate::domain::fields::python_strip;
use crate::domain::{ClientInfo, Input, RawFields};
use crate::meter::{self, Ended, Login, Refresh};
use crate::sessions::{self, Issued, Pair, RefreshError, ScopeRequest};
use crate::state::AppState;
use crate::store::DbErr;
use crate::store::entity::oauth_client;
use crate::store::{self, clients};

pub type Client = oauth_client::Model;

/// RFC 6749 §5.2's errors, and the two answers a server gives besides.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// Unknown client, wrong secret, or (for introspection) no confidential client.
    #[error("invalid_client")]
    InvalidClient,
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    /// An unknown or unheld permission, one beyond the client's set, or a refresh widening
    /// its session's scope.
    #[error("invalid_scope")]
    InvalidScope,
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// Too many failed password checks: `invalid_grant` with a 429 and `Retry-After` (seconds).
    #[error("throttled")]
    Throttled(u64),
    /// The password hashing queue is full: try again shortly.
    #[error("temporarily_unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<DbErr> for OAuthError {
    fn from(err: DbErr) -> Self {
        OAuthError::Internal(Box::new(err))
    }
}

impl From<HashError> for OAuthError {
    fn from(err: HashError) -> Self {
        match err {
            HashError::Overloaded => OAuthError::Unavailable,
            err => OAuthError::Internal(Box::new(err)),
        }
    }
}

impl From<accounts::Error> for OAuthError {
    fn from(err: accounts::Error) -> Self {
        match err {
            accounts::Error::Hashing(err) => err.into(),
            accounts::Error::Throttled(wait) => OAuthError::Throttled(wait),
            accounts::Error::InvalidScope => OAuthError::InvalidScope,
            accounts::Error::TokenLimit => OAuthError::InvalidGrant(
                "Maximum amount of tokens allowed per user exceeded.".into(),
            ),
            err => OAuthError::Internal(Box::new(err)),
        }
    }
}

/// Client credentials as a request presented them: HTTP Basic, or `client_id` (and
/// `client_secret`) in the body.
#[derive(Clone, PartialEq, Eq)]
pub struct Presented {
    pub id: String,
    pub secret: Option<String>,
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Presented {
    /// From the body's `client_id` and `client_secret`, when no Basic credentials came.
    pub fn from_fields(fields: &RawFields) -> Option<Self> {
        let text = |name| match fields.get(name) {
            Input::Text(text) if !text.is_empty() => Some(text.clone()),
            _ => None,
        };
        text("client_id").map(|id| Presented {
            id,
            secret: text("client_secret"),
        })
    }
}

fn secret_digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The registered client that `presented` names and proves, `None` when no client was
/// presented. A public client has no secret to prove; a confidential one must prove its own.
pub async fn identify(
    state: &AppState,
    presented: Option<Presented>,
) -> Result<Option<Arc<Client>>, OAuthError> {
    let Some(presented) = presented else {
        return Ok(None);
    };
    let client = state
        .auth
        .client(&presented.id)
        .await?
        .ok_or(OAuthError::InvalidClient)?;
    let proven = match (&client.secret_digest, &presented.secret) {
        (Some(expected), Some(secret)) => secret_digest(secret) == *expected,
        (None, None) => true,
        _ => false,
    };
    if proven {
        Ok(Some(client))
    } else {
        Err(OAuthError::InvalidClient)
    }
}

/// A required text parameter; RFC 6749 treats one sent without a value as omitted.
fn required(fields: &RawFields, name: &str) -> Result<String, OAuthError> {
    match fields.get(name) {
        Input::Text(text) if !text.is_empty() => Ok(text.clone()),
        _ => Err(OAuthError::InvalidRequest(format!(
            "The {name} parameter is missing."
        ))),
    }
}

/// The `scope` parameter (RFC 6749 §3.3), `None` when absent or empty.
fn scope_of(fields: &RawFields) -> Option<Vec<String>> {
    match fields.get("scope") {
        Input::Text(text) => sessions::parse_scope(text),
        _ => None,
    }
}

/// `POST /oauth/token`: the password grant opens a session (an OAuth2 refresh family);
/// the refresh_token grant rotates one.
pub async fn token(
    state: &AppState,
    client: Option<Arc<Client>>,
    from: &ClientInfo,
    fields: &RawFields,
) -> Result<Pair, OAuthError> {
    let client_row = client.as_ref().map(|client| client.id);
    match required(fields, "grant_type")?.as_str() {
        "password" => {
            // Trimmed as Djoser's login trims them, so the same credentials work on both.
            let username = python_strip(&required(fields, "username")?).to_owned();
            let password = python_strip(&required(fields, "password")?).to_owned();
            let device_name = match fields.get("device_name") {
                Input::Text(name) => Some(name.clone()),
                _ => client.as_ref().map(|client| client.name.clone()),
            };
            let hashing = state
                .hasher
                .admit()
                .inspect_err(|_| meter::login(Login::Overloaded))?;
            let login = PasswordLogin {
                identifier: &username,
                password,
                name: sessions::name(device_name.as_deref(), from),
                kind: sessions::Kind::OAuth { client: client_row },
                scope: ScopeRequest {
                    asked: scope_of(fields),
                    allowed: client
                        .as_ref()
                        .and_then(|client| client.scope.as_deref())
                        .map(crate::auth::parse_scope),
                },
            };
            match accounts::log_in(state, &hashing, from, login).await? {
                Some(Issued::Pair(pair)) => Ok(pair),
                _ => Err(OAuthError::InvalidGrant(
                    "Invalid username or password.".into(),
                )),
            }
        }
        "refresh_token" => {
            let presented = required(fields, "refresh_token")?;
            let refreshed =
                sessions::refresh(state, &presented, client_row, scope_of(fields), from).await;
            match &refreshed {
                Ok(_) => meter::refresh(Refresh::Success),
                Err(RefreshError::InvalidGrant) => meter::refresh(Refresh::InvalidGrant),
                Err(RefreshError::Reused) => meter::refresh(Refresh::Reuse),
                Err(_) => {}
            }
            refreshed.map_err(|err| match err {
                RefreshError::InvalidGrant | RefreshError::Reused => OAuthError::InvalidGrant(
                    "The refresh token is invalid, expired, revoked or was used already.".into(),
                ),
                RefreshError::InvalidScope => OAuthError::InvalidScope,
                RefreshError::Session(err) => OAuthError::from(accounts::Error::from(err)),
            })
        }
        _ => Err(OAuthError::UnsupportedGrantType),
    }
}

/// `POST /oauth/revoke` (RFC 7009 §2.1): ends the session of an authd token, for the client it
/// was issued to. `client` is the client the request authenticated as (its credentials were
/// checked already, known token or not). A token issued to a confidential client needs that
/// client's credentials, one issued to a public client that client's `client_id`; a token
/// issued to no client is revocable by whoever holds it. An unknown token is fine (the answer
/// is the same as for a revoked one).
pub async fn revoke(
    state: &AppState,
    client: Option<Arc<Client>>,
    from: &ClientInfo,
    fields: &RawFields,
) -> Result<(), OAuthError> {
    let token = required(fields, "token")?;
    let Some(holder) = sessions::holder(state, &token).await? else {
        return Ok(());
    };
    if let Some(issuer) = holder.client
        && client.as_ref().map(|client| client.id) != Some(issuer)
    {
        let public = state
            .auth
            .client_by_row(issuer)
            .await?
            .is_some_and(|issuer| issuer.secret_digest.is_none());
        return Err(match (client, public) {
            (None, true) => OAuthError::InvalidRequest(
                "The client_id parameter is missing: the token was issued to a client.".into(),
            ),
            _ => OAuthError::InvalidClient,
        });
    }
    let what = match holder.kind {
        store::SessionKind::ApiKey => What::ApiKeyRevoked { via: "revoke" },
        _ => What::Logout { via: "revoke" },
    };
    if sessions::end(state, holder.session_id, what, Some(from)).await? {
        meter::sessions_ended(Ended::Revoked, 1);
    }
    Ok(())
}

/// What introspection says about an active token (RFC 7662 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    pub sub: String,
    pub username: String,
    pub exp: Option<i64>,
    pub iat: i64,
    /// RFC 6749 §7.1's type: `Bearer` for the tokens a resource server may accept (access and
    /// Djoser tokens); none for a refresh token.
    pub token_type: Option<&'static str>,
    /// Which kind of authd token it is: `access_token`, `refresh_token`, `token` (Djoser's) or
    /// `api_key`.
    pub token_use: &'static str,
    pub client_id: Option<String>,
    /// The stored scope, space-separated; `None` for an unscoped token.
    pub scope: Option<String>,
    /// A scoped token's authority is its scope: no staff or superuser status, no groups.
    pub is_staff: bool,
    pub is_superuser: bool,
    /// Group names, sorted.
    pub groups: Vec<String>,
    /// Effective permissions (`app_label.codename`), sorted: a superuser's are every one there
    /// is; a scoped token's, the scope ∩ those.
    pub permissions: Vec<String>,
}

/// `POST /oauth/introspect`: for a registered confidential client only. Access and Djoser
/// tokens are answered for to any such client; a refresh token only to the client it was
/// issued to (to none when it was issued to none), since a resource server that checks only
/// `active` would otherwise accept it as a Bearer token. `None` (inactive) for anything else,
/// and for unknown, expired or revoked tokens. Served from memory like the guard; being asked
/// about is not a use of the token.
pub async fn introspect(
    state: &AppState,
    client: Option<Arc<Client>>,
    fields: &RawFields,
) -> Result<Option<Active>, OAuthError> {
    let Some(client) = client.filter(|client| client.secret_digest.is_some()) else {
        return Err(OAuthError::InvalidClient);
    };
    let token = required(fields, "token")?;
    let Some(caller) = state.auth.inspect(token.trim()).await? else {
        return Ok(None);
    };
    if caller.kind == TokenKind::Refresh && caller.client_id != Some(client.id) {
        return Ok(None);
    }
    let client_id = match caller.client_id {
        Some(row) => state
            .auth
            .client_by_row(row)
            .await?
            .map(|client| client.client_id.clone()),
        None => None,
    };
    let (token_type, token_use) = match caller.kind {
        TokenKind::Login => (Some("Bearer"), "token"),
        TokenKind::Access => (Some("Bearer"), "access_token"),
        TokenKind::Refresh => (None, "refresh_token"),
        TokenKind::ApiKey => (Some("Bearer"), "api_key"),
    };
    Ok(Some(Active {
        sub: caller.user.id.to_string(),
        username: caller.user.username.clone(),
        exp: caller.expires_at.map(|at| at.timestamp()),
        iat: caller.issued_at.timestamp(),
        token_type,
        token_use,
        client_id,
        scope: caller.scope().map(sessions::join_scope),
        is_staff: caller.acts_as_staff(),
        is_superuser: caller.user.is_superuser && !caller.is_scoped(),
        groups: match caller.is_scoped() {
            true => Vec::new(),
            false => caller.grants.groups.clone(),
        },
        permissions: caller.effective_permissions(),
    }))
}

/// A client just registered: the only time its secret is known.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct Registered {
    pub client_id: String,
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// `authd client create NAME [--public] [--scope P]…`: a public client has no secret; a
/// confidential one gets a 256-bit secret, of which only the SHA-256 digest is kept. With
/// scopes (existing permission names, checked by the caller), the client may be granted at
/// most those.
pub async fn create_client(
    state: &AppState,
    name: &str,
    public: bool,
    scopes: &[String],
) -> Result<Registered, OAuthError> {
    let client_id = format!("authd-client-{}", crypto::random_hex(12));
    let secret = match public {
        true => None,
        false => Some(
            crypto::generate_link_token()
                .map_err(|e| OAuthError::Internal(Box::new(e)))?
                .secret,
        ),
    };
    let txn = store::begin_write(&state.db).await?;
    let created = clients::insert(
        &txn,
        client_id.clone(),
        name.trim().to_owned(),
        secret.as_deref().map(secret_digest),
        sessions::parse_scope(&scopes.join(" ")).map(|names| sessions::join_scope(&names)),
    )
    .await?;
    What::ClientCreated {
        name: created.name,
        public,
    }
    .event()
    .client_id(Some(client_id.clone()))
    .record(&txn)
    .await?;
    txn.commit().await?;
    Ok(Registered {
        client_id,
        client_secret: secret,
    })
}

/// A registered client as `authd client list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listed {
    pub client_id: String,
    pub name: String,
    pub public: bool,
    pub created: String,
}

pub async fn list_clients(state: &AppState) -> Result<Vec<Listed>, OAuthError> {
    Ok(clients::list(&state.db)
        .await?
        .into_iter()
        .map(|client| Listed {
            public: client.secret_digest.is_none(),
            client_id: client.client_id,
            name: client.name,
            created: client
                .created
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
        .collect())
}

/// `authd client delete CLIENT_ID`: the client, and every session minted through it, on every
/// instance at once. `false` for an unknown client.
pub async fn delete_client(state: &AppState, client_id: &str) -> Result<bool, OAuthError> {
    let Some(client) = clients::find(&state.db, client_id).await? else {
        return Ok(false);
    };
    let txn = store::begin_write(&state.db).await?;
    let ended = store::sessions::count_for_client(&txn, client.id).await?;
    clients::delete(&txn, client.id).await?;
    What::ClientDeleted {
        sessions_ended: ended,
    }
    .event()
    .client_id(Some(client.client_id.clone()))
    .record(&txn)
    .await?;
    state
        .auth
        .commit(txn, &[Invalidation::Client(client.id)])
        .await?;
    tracing::info!(client = client_id, "client deleted with its sessions");
    Ok(true)
}
