//! CORS for single-page apps on other origins, as django-cors-headers gives a Djoser project:
//! requests and preflights from an origin in AUTHD_CORS_ALLOWED_ORIGINS get the CORS headers;
//! any other origin gets none, and the browser keeps the answer from the page. (poem's own
//! `Cors` answers other origins with a 403 instead, which would also refuse non-browser
//! clients that happen to send `Origin`.)

use std::collections::HashSet;
use std::sync::Arc;

use poem::http::{HeaderValue, Method, header};
use poem::{Endpoint, EndpointExt, Request, Response};

/// The request headers a browser may send: the token or API key, and the body's media type.
const ALLOWED_HEADERS: &str = "authorization, x-api-key, content-type, accept";
/// What scripts may read besides the simple headers: when to retry, and the auth challenge.
const EXPOSED_HEADERS: &str = "retry-after, www-authenticate";
const ALLOWED_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
/// How long a browser may reuse a preflight's answer, in seconds.
const MAX_AGE: &str = "600";

/// Wraps the app; with no allowed origins it changes nothing.
pub fn with_cors<E>(app: E, allowed: Vec<String>) -> impl Endpoint<Output = Response>
where
    E: Endpoint<Output = Response> + 'static,
{
    let allowed: Arc<HashSet<String>> = Arc::new(allowed.into_iter().collect());
    app.around(move |endpoint, request: Request| {
        let allowed = Arc::clone(&allowed);
        async move {
            let origin = request
                .headers()
                .get(header::ORIGIN)
                .and_then(|value| value.to_str().ok())
                .filter(|origin| allowed.contains(*origin))
                .and_then(|origin| HeaderValue::from_str(origin).ok());
            let preflight = request.method() == Method::OPTIONS
                && request
                    .headers()
                    .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
            let mut response = endpoint.call(request).await?;
            if allowed.is_empty() {
                return Ok(response);
            }
            let headers = response.headers_mut();
            // Answers differ by origin, so caches must keep them apart.
            let vary = match headers.get(header::VARY).and_then(|v| v.to_str().ok()) {
                Some(existing) => format!("{existing}, Origin"),
                None => "Origin".to_owned(),
            };
            if let Ok(vary) = HeaderValue::from_str(&vary) {
                headers.insert(header::VARY, vary);
            }
            let Some(origin) = origin else {
                return Ok(response);
            };
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            if preflight {
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(ALLOWED_METHODS),
                );
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static(ALLOWED_HEADERS),
                );
                headers.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static(MAX_AGE),
                );
            } else {
                headers.insert(
                    header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static(EXPOSED_HEADERS),
                );
            }
            Ok(response)
        }
    })
}
