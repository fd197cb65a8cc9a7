//! What DRF and Django's `CommonMiddleware` do around every API view, in their order:
//! URL match (with the trailing-slash 301), content negotiation, authentication on every
//! route (login and register included), the 405-versus-401 rule, and the `Allow`, `Vary` and
//! `WWW-Authenticate` headers. Authenticated callers reach the handlers as an [`auth::Caller`](crate::auth::Caller).

use poem::http::{HeaderValue, Method, StatusCode, Uri, header};
use poem::{Endpoint, IntoResponse, Request, Response};

use crate::audit::What;
use crate::auth::Caller;
use crate::domain::ClientInfo;
use crate::domain::messages;
use crate::state::AppState;
use crate::throttle::Requester;

use super::body::MAX_BODY_BYTES;
use super::client::client_info;
use super::error::{ApiError, from_poem_error};
use super::routes::{self, Access, ApiRoute};
use super::security::{API_KEY_HEADER, parse_authorization};

pub struct Gate<E> {
    inner: E,
    state: AppState,
    www_authenticate: HeaderValue,
}

impl<E> Gate<E> {
    pub fn new(inner: E, state: AppState) -> Self {
        let keyword = state
            .settings
            .token_keywords
            .first()
            .cloned()
            .unwrap_or_else(|| "Token".into());
        let www_authenticate =
            HeaderValue::from_str(&keyword).unwrap_or(HeaderValue::from_static("Token"));
        Self {
            inner,
            state,
            www_authenticate,
        }
    }
}

impl<E: Endpoint> Endpoint for Gate<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> poem::Result<Response> {
        let path = request.uri().path().to_owned();
        let has_slash = path.ends_with('/') && path.len() > 1;
        let Some(route) = routes::find(&path) else {
            return Ok(ApiError::NotFound(crate::domain::messages::NOT_FOUND).into_response());
        };
        if !has_slash && !route.slash_optional {
            return Ok(redirect_with_slash(request.original_uri()));
        }
        let method = request.method().clone();
        let mut response = if method == Method::OPTIONS {
            Response::builder().status(StatusCode::OK).finish()
        } else {
            match self.guard(&mut request, route).await {
                Err(err) => err.into_response(),
                Ok(anonymous) => {
                    strip_trailing_slash(&mut request);
                    match self.inner.call(request).await {
                        Ok(output) => output.into_response(),
                        Err(err) if err.status() == StatusCode::METHOD_NOT_ALLOWED => {
                            method_not_allowed(route, anonymous, &method).into_response()
                        }
                        Err(err) => from_poem_error(err, method.as_str()),
                    }
                }
            }
        };
        let headers = response.headers_mut();
        // DRF sends a bare `application/json`; poem-openapi adds a charset.
        if headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json;"))
        {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        headers.insert(header::ALLOW, HeaderValue::from_static(route.allow));
        headers.insert(header::VARY, HeaderValue::from_static("Accept"));
        if response.status() == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, self.www_authenticate.clone());
        }
        Ok(response)
    }
}

impl<E> Gate<E> {
    /// Negotiation, size, authentication, then DRF's request-rate throttles. Returns whether
    /// the caller is anonymous.
    async fn guard(&self, request: &mut Request, route: &ApiRoute) -> Result<bool, ApiError> {
        if !accepts_json(request) {
            return Err(ApiError::NotAcceptable);
        }
        let declared_length = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared_length.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
            return Err(ApiError::PayloadTooLarge);
        }
        let raw = authorization_bytes(request);
        let token = parse_authorization(&raw, &self.state.settings.token_keywords)
            .map_err(ApiError::AuthenticationFailed)?;
        let api_key = api_key_header(request)?;
        let caller = match (token, api_key) {
            (None, None) => None,
            (Some(token), None) => Some(self.state.auth.authenticate(token).await?),
            (None, Some(key)) if raw.is_empty() => {
                Some(self.state.auth.authenticate_api_key(&key).await?)
            }
            // Two credentials (whatever the `Authorization` scheme): which one would a proxy
            // or the service behind authd believe? Neither.
            _ => return Err(ApiError::AuthenticationFailed(messages::INVALID_TOKEN)),
        };
        let user = caller.map(|caller| {
            let id = caller.user.id;
            request.extensions_mut().insert(caller);
            id
        });
        self.throttle(request, route, user).await?;
        Ok(user.is_none())
    }

    /// DRF checks permissions before throttles: an anonymous caller about to hear 401 is
    /// neither counted nor refused.
    async fn throttle(
        &self,
        request: &Request,
        route: &ApiRoute,
        user: Option<i64>,
    ) -> Result<(), ApiError> {
        let Some(throttle) = self.state.requests.as_ref().filter(|_| route.throttled) else {
            return Ok(());
        };
        let client = client_info(request, &self.state.settings.trusted_proxies);
        let verdict = match user {
            Some(id) => throttle.check(Requester::User { id }).await,
            None if route.admits_anonymous(request.method().as_str()) => {
                throttle
                    .check(Requester::Anonymous {
                        client: &client.throttle_key(),
                    })
                    .await
            }
            None => Ok(()),
        };
        if verdict.is_err() {
            crate::meter::throttled(if user.is_some() { "user" } else { "anon" });
            let caller = request.extensions().get::<std::sync::Arc<Caller>>();
            self.record_throttled(caller.map(|caller| &**caller), &client)
                .await;
        }
        verdict.map_err(ApiError::Throttled)
    }

    /// A request refused by a request rate, in the audit trail: counted per minute, for a user
    /// (limit `user`) or, anonymous, for the client's address (limit `anon`, whichever rate
    /// refused it). A failed write is logged and the answer stays 429.
    async fn record_throttled(&self, caller: Option<&Caller>, client: &ClientInfo) {
        let recorded = match caller {
            Some(caller) => {
                What::throttled("user")
                    .event()
                    .user(&caller.user)
                    .session(&caller.session_public_id)
                    .from(Some(client))
                    .tally(
                        &self.state.refusals,
                        &self.state.db,
                        &format!("user|user:{}", caller.user.id),
                    )
                    .await
            }
            None => {
                What::throttled("anon")
                    .event()
                    .from(Some(client))
                    .tally(
                        &self.state.refusals,
                        &self.state.db,
                        &format!("anon|ip:{}", client.throttle_key()),
                    )
                    .await
            }
        };
        if let Err(err) = recorded {
            tracing::warn!(error = %crate::telemetry::chain(&err), "cannot record a throttled request in the audit trail");
        }
    }
}

/// `X-API-Key`: `None` when absent; one value, or the answer for an invalid token (sent twice,
/// empty, or not text).
fn api_key_header(request: &Request) -> Result<Option<String>, ApiError> {
    let invalid = || ApiError::AuthenticationFailed(messages::INVALID_TOKEN);
    let mut values = request.headers().get_all(API_KEY_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid());
    }
    let key = value.to_str().map_err(|_| invalid())?.trim();
    match key.is_empty() {
        true => Err(invalid()),
        false => Ok(Some(key.to_owned())),
    }
}

/// Several `Authorization` headers read as one comma-joined value, as a WSGI server joins them.
fn authorization_bytes(request: &Request) -> Vec<u8> {
    let mut raw = Vec::new();
    for (index, value) in request
        .headers()
        .get_all(header::AUTHORIZATION)
        .iter()
        .enumerate()
    {
        if index > 0 {
            raw.extend_from_slice(b", ");
        }
        raw.extend_from_slice(value.as_bytes());
    }
    raw
}

/// DRF renders JSON (and its browsable HTML, which authd answers with JSON too).
fn accepts_json(request: &Request) -> bool {
    let Some(accept) = request.headers().get(header::ACCEPT) else {
        return true;
    };
    let Ok(accept) = accept.to_str() else {
        return true;
    };
    if accept.trim().is_empty() {
        return true;
    }
    accept.split(',').any(|range| {
        let media = range
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        matches!(
            media.as_str(),
            "*/*" | "application/*" | "application/json" | "text/*" | "text/html"
        )
    })
}

/// DRF's rule for an unmapped method: the permission check runs first, so an anonymous caller
/// hears 401 on user routes and logout; login answers 405 to anyone.
fn method_not_allowed(route: &ApiRoute, anonymous: bool, method: &Method) -> ApiError {
    if anonymous && route.access == Access::Authenticated {
        ApiError::NotAuthenticated
    } else {
        ApiError::MethodNotAllowed(method.as_str().to_owned())
    }
}

/// Django's `APPEND_SLASH` 301. The target is always a path on this host: a run of leading
/// slashes or backslashes, which a browser reads as the start of another host's address
/// (`//evil.example/…`, `/\evil.example/…`), collapses to one slash.
fn redirect_with_slash(original: &Uri) -> Response {
    let path = original.path().trim_start_matches(['/', '\\']);
    let location = match original.query() {
        Some(query) => format!("/{path}/?{query}"),
        None => format!("/{path}/"),
    };
    Response::builder()
        .status(StatusCode::MOVED_PERMANENTLY)
        .header(header::LOCATION, location)
        .finish()
}

/// poem-openapi registers paths without their trailing slash.
fn strip_trailing_slash(request: &mut Request) {
    let uri = request.uri();
    let path = uri.path();
    if path.len() <= 1 || !path.ends_with('/') {
        return;
    }
    let trimmed = match uri.query() {
        Some(query) => format!("{}?{query}", path.trim_end_matches('/')),
        None => path.trim_end_matches('/').to_owned(),
    };
    if let Ok(new_uri) = trimmed.parse::<Uri>() {
        *request.uri_mut() = new_uri;
    }
}
