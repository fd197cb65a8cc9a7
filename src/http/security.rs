//! DRF's `TokenAuthentication` header rules, and the security scheme the docs show.

use std::sync::Arc;

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::{ApiKey, Bearer};

use crate::auth::Caller;
use crate::domain::messages;

use super::error::ApiError;

/// Paste `Token <key>` here (the word `Token`, a space, then the `auth_token` that
/// `POST /token/login/` returned, or a DRF key that `authd import-django` brought over).
/// `Bearer <key>` is accepted too.
#[derive(SecurityScheme)]
#[oai(
    rename = "tokenAuth",
    ty = "api_key",
    key_name = "Authorization",
    key_in = "header",
    checker = "require_caller"
)]
pub struct TokenAuth(pub Arc<Caller>);

/// Log in with your username (or email, with LOGIN_FIELD=email) and password: Swagger UI gets an
/// access token from `/oauth/token` (the OAuth2 password grant) and sends it as
/// `Bearer <token>`. Leave client_id and client_secret empty.
#[derive(SecurityScheme)]
#[oai(
    rename = "oauth2",
    ty = "oauth2",
    flows(password(token_url = "/oauth/token")),
    checker = "require_bearer_caller"
)]
pub struct OAuth2Auth(pub Arc<Caller>);

/// The name of the header that carries an API key on its own.
pub const API_KEY_HEADER: &str = "X-API-Key";

/// An API key (`authd_key_…`, from `POST /token/keys/`), as it is. A key also works as
/// `Authorization: Token <key>`; sending both headers is refused.
#[derive(SecurityScheme)]
#[oai(
    rename = "apiKeyAuth",
    ty = "api_key",
    key_name = "X-API-Key",
    key_in = "header",
    checker = "require_caller"
)]
pub struct ApiKeyAuth(pub Arc<Caller>);

/// A caller authenticated by a `Token` or a `Bearer` (OAuth2 access) token, or an API key.
#[derive(SecurityScheme)]
pub enum Authenticated {
    Token(TokenAuth),
    OAuth2(OAuth2Auth),
    ApiKey(ApiKeyAuth),
}

impl Authenticated {
    pub fn caller(&self) -> &Arc<Caller> {
        match self {
            Authenticated::Token(auth) => &auth.0,
            Authenticated::OAuth2(auth) => &auth.0,
            Authenticated::ApiKey(auth) => &auth.0,
        }
    }

    /// The caller, on account and admin routes: a scoped token's authority is its scope, so
    /// only an unscoped token reaches them. Checked before the body is read.
    pub fn unscoped(&self) -> Result<&Arc<Caller>, ApiError> {
        let caller = self.caller();
        match caller.is_scoped() {
            true => Err(ApiError::Forbidden(messages::PERMISSION_DENIED)),
            false => Ok(caller),
        }
    }
}

async fn require_bearer_caller(request: &Request, _bearer: Bearer) -> poem::Result<Arc<Caller>> {
    caller_of(request)
}

/// Authentication already ran in the gate (on every route, as DRF does); the scheme only asks
/// whether it found someone.
async fn require_caller(request: &Request, _header: ApiKey) -> poem::Result<Arc<Caller>> {
    caller_of(request)
}

fn caller_of(request: &Request) -> poem::Result<Arc<Caller>> {
    request
        .extensions()
        .get::<Arc<Caller>>()
        .cloned()
        .ok_or_else(|| ApiError::NotAuthenticated.into())
}

/// `TokenAuthentication.authenticate` up to the database lookup, on the header's raw bytes.
/// `Ok(None)`: no header, or another scheme (`Basic …`): the request stays anonymous.
pub fn parse_authorization<'a>(
    raw: &'a [u8],
    keywords: &[String],
) -> Result<Option<&'a str>, &'static str> {
    let mut words = raw
        .split(|b| b.is_ascii_whitespace() || *b == 0x0b)
        .filter(|w| !w.is_empty());
    let Some(keyword) = words.next() else {
        return Ok(None);
    };
    if !keywords
        .iter()
        .any(|k| k.as_bytes().eq_ignore_ascii_case(keyword))
    {
        return Ok(None);
    }
    let Some(key) = words.next() else {
        return Err(messages::TOKEN_HEADER_EMPTY);
    };
    if words.next().is_some() {
        return Err(messages::TOKEN_HEADER_SPACES);
    }
    std::str::from_utf8(key)
        .map(Some)
        .map_err(|_| messages::TOKEN_HEADER_INVALID_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Option<&str>, &'static str> {
        parse_authorization(raw, &["Token".to_owned(), "Bearer".to_owned()])
    }

    #[test]
    fn follows_drf() {
        assert_eq!(parse(b""), Ok(None));
        assert_eq!(parse(b"Basic abc"), Ok(None));
        assert_eq!(parse(b"Tokenx abc"), Ok(None));
        assert_eq!(parse(b"Token"), Err(messages::TOKEN_HEADER_EMPTY));
        assert_eq!(parse(b"Token "), Err(messages::TOKEN_HEADER_EMPTY));
        assert_eq!(parse(b"Token a b"), Err(messages::TOKEN_HEADER_SPACES));
        assert_eq!(
            parse(b"Token \xe9"),
            Err(messages::TOKEN_HEADER_INVALID_CHARS)
        );
        assert_eq!(parse(b"token  abc"), Ok(Some("abc")));
        assert_eq!(parse(b"TOKEN\tabc"), Ok(Some("abc")));
        assert_eq!(parse(b"bearer abc"), Ok(Some("abc")));
        assert_eq!(parse("Token é".as_bytes()), Ok(Some("é")));
    }
}
