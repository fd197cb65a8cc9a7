//! `/oauth/token`, `/oauth/revoke` and `/oauth/introspect`, mounted beside the DRF gate and
//! speaking RFC 6749's dialect: form bodies (JSON too), `{"error", "error_description"}`,
//! client credentials in HTTP Basic (or, for public clients, `client_id` in the body).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::web::Data;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};
use poem_openapi::auth::Basic;
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme};

use crate::domain::{ClientInfo, RawFields, messages};
use crate::oauth::{self, OAuthError, Presented};
use crate::state::AppState;
use crate::throttle::throttled_detail;

use super::ApiTags;
use super::body::{DrfBody, Fields};
use super::error::{ApiError, database_away, retry_after_header};

/// Token requests are small; a larger body is refused before it is read whole.
const MAX_OAUTH_BODY_BYTES: usize = 64 * 1024;

/// A registered confidential client: its `client_id` and `client_secret` as HTTP Basic.
#[derive(SecurityScheme)]
#[oai(rename = "clientBasic", ty = "basic")]
pub struct ClientBasic(Basic);

/// RFC 6749 §5.1.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case", skip_serializing_if_is_none)]
pub struct TokenPair {
    /// Use it as `Authorization: Bearer <access_token>` (or `Token`) on every Djoser route.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds the access token lives.
    pub expires_in: u64,
    /// Trade it at this endpoint (`grant_type=refresh_token`) for a new pair; each works once.
    pub refresh_token: String,
    /// The permissions the tokens are limited to (`app_label.codename`, space-separated,
    /// sorted); absent for unscoped tokens, which may do whatever their user may.
    pub scope: Option<String>,
}

/// A token request: `grant_type=password` with `username` (the login field's value) and
/// `password`, or `grant_type=refresh_token` with `refresh_token`. A public client may name
/// itself with `client_id`; a confidential one authenticates with HTTP Basic.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct TokenRequest {
    pub grant_type: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub refresh_token: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Names the session (else the client's name, else the User-Agent).
    pub device_name: Option<String>,
    /// RFC 6749 §3.3: permissions (`app_label.codename`), space-separated, to limit the tokens
    /// to. The password grant: each must be held (and within the client's set); without it the
    /// tokens get everything the user holds (the client's set ∩ that, for a client with a set).
    /// The refresh grant: keeps or narrows the session's scope, never widens it. Anything else
    /// is 400 `invalid_scope`, answered only after a right password.
    pub scope: Option<String>,
}

/// A token to revoke or introspect; `token_type_hint` is only a hint.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct TokenQuery {
    pub token: String,
    pub token_type_hint: Option<String>,
}

// Documented as an `Object`, sent through serde (see `SerdeJson`): both skip absent fields.
/// RFC 7662 §2.2: only `active` when the token is not active.
#[derive(Debug, Object, serde::Serialize)]
#[oai(rename_all = "snake_case", skip_serializing_if_is_none)]
pub struct Introspection {
    pub active: bool,
    /// The user's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Expiry, seconds since the epoch; absent when the token never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// `Bearer` (RFC 6749 §7.1) for access and Djoser tokens, which resource servers may
    /// accept; absent for a refresh token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Which kind of authd token it is: `access_token`, `refresh_token` (answered only to the
    /// client it was issued to) or `token` (a Djoser login token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_use: Option<String>,
    /// The registered client the token was issued through, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The permissions the token is limited to, space-separated, as granted; absent for an
    /// unscoped token. A scoped token's authority is its scope: it reports no staff or
    /// superuser status and no groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_staff: Option<bool>,
    /// An active superuser holds every permission.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_superuser: Option<bool>,
    /// The user's groups, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// The token's effective permissions, `app_label.codename`, sorted: the user's own and
    /// their groups' (a superuser's are every permission there is), within the scope if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
}

/// RFC 6749 §5.2.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct OAuthErrorBody {
    pub error: String,
    pub error_description: Option<String>,
}

#[derive(ApiResponse)]
pub enum Issued {
    /// A new pair; the response must not be cached.
    #[oai(status = 200)]
    Pair(
        Json<TokenPair>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "Pragma")] String,
    ),
}

#[derive(ApiResponse)]
pub enum Revoked {
    /// Revoked, or unknown: the answer is the same.
    #[oai(status = 200)]
    Done,
}

/// A JSON body serialised straight from `T` with serde, documented by `T`'s schema: poem-openapi's
/// `Json` builds a `serde_json::Value` tree first, which costs introspection answers carrying a
/// user's permissions a tenth of their throughput.
pub struct SerdeJson<T>(pub T);

impl<T: Type> Payload for SerdeJson<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: serde::Serialize + Send> IntoResponse for SerdeJson<T> {
    fn into_response(self) -> Response {
        poem::web::Json(self.0).into_response()
    }
}

#[derive(ApiResponse)]
pub enum Introspected {
    /// Active or not; the answer must not be cached by intermediaries.
    #[oai(status = 200)]
    Answer(
        SerdeJson<Introspection>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "Pragma")] String,
    ),
}

/// An RFC 6749 error as a response; or a body that did not arrive in time, which is no
/// OAuth2 matter: 408 (in RFC 6749's error shape), and the connection closes.
#[derive(Debug)]
pub enum OAuthReply {
    Error(OAuthError),
    BodyTimeout,
}

impl From<OAuthError> for OAuthReply {
    fn from(err: OAuthError) -> Self {
        Self::Error(err)
    }
}

/// What reading a token request's body failed on.
impl From<ApiError> for OAuthReply {
    fn from(err: ApiError) -> Self {
        match err {
            ApiError::RequestTimeout => Self::BodyTimeout,
            ApiError::Unavailable => Self::Error(OAuthError::Unavailable),
            err => Self::Error(OAuthError::InvalidRequest(format!(
                "The request body cannot be read: {err}."
            ))),
        }
    }
}

impl OAuthReply {
    fn parts(err: &OAuthError) -> (StatusCode, &'static str, Option<String>) {
        match err {
            OAuthError::InvalidRequest(why) => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                Some(why.clone()),
            ),
            OAuthError::InvalidClient => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                Some("Client authentication failed.".into()),
            ),
            OAuthError::InvalidGrant(why) => {
                (StatusCode::BAD_REQUEST, "invalid_grant", Some(why.clone()))
            }
            OAuthError::InvalidScope => (
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                Some(
                    "The requested scope is invalid, unknown, or exceeds what may be granted."
                        .into(),
                ),
            ),
            OAuthError::UnsupportedGrantType => (
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                Some("Use grant_type=password or grant_type=refresh_token.".into()),
            ),
            OAuthError::Throttled(wait) => (
                StatusCode::TOO_MANY_REQUESTS,
                "invalid_grant",
                Some(throttled_detail(*wait)),
            ),
            OAuthError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                Some("Service temporarily unavailable, try again later.".into()),
            ),
            OAuthError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                Some("A server error occurred.".into()),
            ),
        }
    }
}

/// RFC 6749's error body, never cached; 401s challenge for Basic; 429s and 503s say when to
/// retry.
fn oauth_error_response(
    status: StatusCode,
    error: &str,
    description: Option<String>,
    retry_after: Option<u64>,
) -> Response {
    let body = serde_json::json!({ "error": error, "error_description": description });
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::PRAGMA, "no-cache")
        .body(body.to_string());
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"authd\""),
        );
    }
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

impl IntoResponse for OAuthReply {
    fn into_response(self) -> Response {
        let err = match self {
            OAuthReply::BodyTimeout => {
                let mut response = oauth_error_response(
                    StatusCode::REQUEST_TIMEOUT,
                    "invalid_request",
                    Some(messages::BODY_TIMEOUT.into()),
                    None,
                );
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return response;
            }
            OAuthReply::Error(OAuthError::Internal(cause)) => {
                match database_away(cause.as_ref(), "OAuth2 request failed") {
                    true => OAuthError::Unavailable,
                    false => OAuthError::Internal(cause),
                }
            }
            OAuthReply::Error(other) => other,
        };
        let (status, error, description) = OAuthReply::parts(&err);
        let retry_after = match err {
            OAuthError::Throttled(wait) => Some(wait),
            OAuthError::Unavailable => Some(1),
            _ => None,
        };
        oauth_error_response(status, error, description, retry_after)
    }
}

impl ApiResponse for OAuthReply {
    fn meta() -> MetaResponses {
        let body = |status, description| MetaResponse {
            description,
            status: Some(status),
            status_range: None,
            content: vec![MetaMediaType {
                content_type: "application/json",
                schema: OAuthErrorBody::schema_ref(),
            }],
            headers: vec![],
        };
        MetaResponses {
            responses: vec![
                body(
                    400,
                    "`invalid_request`, `invalid_grant` or `unsupported_grant_type` (RFC 6749 §5.2)",
                ),
                body(401, "`invalid_client`, with `WWW-Authenticate: Basic`"),
                body(
                    408,
                    "`invalid_request`: the body did not arrive whole within `AUTHD_BODY_READ_TIMEOUT_SECONDS` (`Connection: close`)",
                ),
                MetaResponse {
                    headers: vec![retry_after_header()],
                    ..body(
                        429,
                        "`invalid_grant`: too many failed password checks for this account or client; retry after `Retry-After` seconds",
                    )
                },
                MetaResponse {
                    headers: vec![retry_after_header()],
                    ..body(
                        503,
                        "`temporarily_unavailable`: too many logins are waiting to hash a password, or the database is unavailable; retry after `Retry-After` seconds",
                    )
                },
            ],
        }
    }

    fn register(registry: &mut Registry) {
        OAuthErrorBody::register(registry);
    }
}

impl From<OAuthReply> for poem::Error {
    fn from(reply: OAuthReply) -> Self {
        poem::Error::from_response(reply.into_response())
    }
}

type OAuthResult<T> = Result<T, OAuthReply>;

/// RFC 6749 §2.3.1: Basic credentials are form-encoded, then base64. Empty ones (Swagger UI
/// sends `Basic Og==` when no client is filled in) count as none.
fn basic_credentials(request: &Request) -> Result<Option<Presented>, OAuthError> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let Some(encoded) = value
        .to_str()
        .ok()
        .and_then(|text| text.strip_prefix("Basic ").or(text.strip_prefix("basic ")))
    else {
        return Ok(None);
    };
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(OAuthError::InvalidClient)?;
    let (id, secret) = decoded.split_once(':').ok_or(OAuthError::InvalidClient)?;
    Ok(presented(id, secret))
}

fn presented(id: &str, secret: &str) -> Option<Presented> {
    let decode = |text: &str| {
        url::form_urlencoded::parse(format!("x={text}").as_bytes())
            .next()
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default()
    };
    let (id, secret) = (decode(id), decode(secret));
    if id.is_empty() && secret.is_empty() {
        return None;
    }
    Some(Presented {
        id,
        secret: (!secret.is_empty()).then_some(secret),
    })
}

/// The client a request presents, by exactly one method (RFC 6749 §2.3).
fn credentials(request: &Request, fields: &RawFields) -> Result<Option<Presented>, OAuthError> {
    match (basic_credentials(request)?, Presented::from_fields(fields)) {
        (Some(_), Some(_)) => Err(OAuthError::InvalidRequest(
            "Authenticate the client one way only (HTTP Basic or client_id).".into(),
        )),
        (basic, body) => Ok(basic.or(body)),
    }
}

async fn fields_of<T>(body: DrfBody<T>) -> Result<Fields, OAuthReply> {
    Ok(body.fields_within(MAX_OAUTH_BODY_BYTES).await?)
}

pub struct OAuthApi;

#[OpenApi(tag = "ApiTags::OAuth2")]
impl OAuthApi {
    /// Get or refresh a token pair (RFC 6749)
    ///
    /// `grant_type=password` logs in (a new session, like `POST /token/login/`) and returns an
    /// access token and a refresh token; `grant_type=refresh_token` trades a refresh token for
    /// a new pair. A refresh token works once: presented again after the grace period, it ends
    /// its whole session. This is the `tokenUrl` of the OAuth2 password flow in Authorize.
    #[oai(path = "/oauth/token", method = "post", operation_id = "oauth_token")]
    async fn token(
        &self,
        request: &Request,
        state: Data<&AppState>,
        from: ClientInfo,
        body: DrfBody<TokenRequest>,
    ) -> OAuthResult<Issued> {
        let fields = fields_of(body).await?;
        let client = oauth::identify(&state, credentials(request, &fields)?).await?;
        let pair = oauth::token(&state, client, &from, &fields).await?;
        Ok(Issued::Pair(
            Json(TokenPair {
                access_token: pair.access_token,
                token_type: "Bearer".into(),
                expires_in: pair.expires_in,
                refresh_token: pair.refresh_token,
                scope: pair.scope,
            }),
            "no-store".into(),
            "no-cache".into(),
        ))
    }

    /// Revoke a token (RFC 7009)
    ///
    /// Ends the session of an authd token: a Djoser token, an access token or a refresh token.
    /// Credentials that are sent are checked first, known token or not (401 `invalid_client`).
    /// A token issued to a confidential client is revoked only with that client's credentials
    /// (HTTP Basic), one issued to a public client only with its `client_id` (missing: 400
    /// `invalid_request`; another: 401 `invalid_client`); a refused revocation changes nothing.
    /// A token issued to no client (a Djoser token, a password grant without a client) is
    /// revocable by whoever holds it. 200 whether or not the token was known.
    #[oai(path = "/oauth/revoke", method = "post", operation_id = "oauth_revoke")]
    async fn revoke(
        &self,
        request: &Request,
        state: Data<&AppState>,
        from: ClientInfo,
        body: DrfBody<TokenQuery>,
    ) -> OAuthResult<Revoked> {
        let fields = fields_of(body).await?;
        let client = oauth::identify(&state, credentials(request, &fields)?).await?;
        oauth::revoke(&state, client, &from, &fields).await?;
        Ok(Revoked::Done)
    }

    /// Introspect a token (RFC 7662)
    ///
    /// For resource servers: a registered confidential client (HTTP Basic) asks whether a token
    /// is active, and whose it is. Access and Djoser tokens (`token_type: Bearer`) are answered
    /// for to any such client; a refresh token only to the client it was issued to. Unknown,
    /// expired and revoked ones are just `{"active": false}`. Asking is not a use of the token
    /// (it does not keep an idle token alive), and no answer may be cached.
    #[oai(
        path = "/oauth/introspect",
        method = "post",
        operation_id = "oauth_introspect"
    )]
    async fn introspect(
        &self,
        auth: ClientBasic,
        state: Data<&AppState>,
        body: DrfBody<TokenQuery>,
    ) -> OAuthResult<Introspected> {
        let fields = fields_of(body).await?;
        let client = oauth::identify(&state, presented(&auth.0.username, &auth.0.password)).await?;
        let answer = match oauth::introspect(&state, client, &fields).await? {
            Some(active) => Introspection {
                active: true,
                sub: Some(active.sub),
                username: Some(active.username),
                exp: active.exp,
                iat: Some(active.iat),
                token_type: active.token_type.map(str::to_owned),
                token_use: Some(active.token_use.to_owned()),
                client_id: active.client_id,
                scope: active.scope,
                is_staff: Some(active.is_staff),
                is_superuser: Some(active.is_superuser),
                groups: Some(active.groups),
                permissions: Some(active.permissions),
            },
            None => Introspection {
                active: false,
                sub: None,
                username: None,
                exp: None,
                iat: None,
                token_type: None,
                token_use: None,
                client_id: None,
                scope: None,
                is_staff: None,
                is_superuser: None,
                groups: None,
                permissions: None,
            },
        };
        Ok(Introspected::Answer(
            SerdeJson(answer),
            "no-store".into(),
            "no-cache".into(),
        ))
    }
}

/// The OAuth2 endpoints with their own error dialect: the trailing slash is optional, and
/// what poem or poem-openapi refuse (no route, a wrong method, missing Basic credentials)
/// comes back as an RFC 6749 error.
pub fn endpoint(inner: impl Endpoint + 'static) -> impl Endpoint<Output = Response> {
    inner.around(|endpoint, mut request: Request| async move {
        let path = request.uri().path().to_owned();
        if path.len() > 1
            && path.ends_with('/')
            && let Ok(uri) = path.trim_end_matches('/').parse()
        {
            *request.uri_mut() = uri;
        }
        let method = request.method().clone();
        if method == Method::OPTIONS {
            return Ok(Response::builder()
                .status(StatusCode::OK)
                .header(header::ALLOW, "POST, OPTIONS")
                .finish());
        }
        Ok(match endpoint.call(request).await {
            Ok(output) => {
                let mut response = output.into_response();
                if response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .is_some_and(|v| v.as_bytes().starts_with(b"application/json;"))
                {
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                }
                response
            }
            Err(err) if err.is_from_response() => err.into_response(),
            Err(err) if err.is::<poem_openapi::error::AuthorizationError>() => {
                OAuthReply::Error(OAuthError::InvalidClient).into_response()
            }
            Err(err) => match err.status() {
                StatusCode::METHOD_NOT_ALLOWED => {
                    let mut response = oauth_error_response(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "invalid_request",
                        Some(format!("Method {method} is not allowed; use POST.")),
                        None,
                    );
                    response
                        .headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
                    response
                }
                StatusCode::NOT_FOUND => oauth_error_response(
                    StatusCode::NOT_FOUND,
                    "invalid_request",
                    Some("No such endpoint.".into()),
                    None,
                ),
                status => {
                    oauth_error_response(status, "invalid_request", Some(err.to_string()), None)
                }
            },
        })
    })
}
