//! Everything that knows about HTTP: routes, the OpenAPI document, Swagger UI, health checks,
//! request logging. Handlers parse, call one `accounts` function, and map the result.

/// `/permissions/`, `/groups/` and a user's groups, permissions and roles.
mod authz;
/// The request bodies DRF accepts (JSON, urlencoded, multipart) as one set of fields.
mod body;
/// Who is calling from where: the `ClientInfo` extractor.
mod client;
/// CORS for the origins AUTHD_CORS_ALLOWED_ORIGINS names.
mod cors;
/// `ApiError`: every failure as a DRF-shaped response.
pub mod error;
/// `GET /users/me/events/`: the caller's audit trail.
mod events;
/// DRF's per-request steps around the views: slash redirect, auth, 405, headers.
mod gate;
/// `/healthz` and `/readyz`.
pub mod health;
/// `/token/keys/`: API keys.
mod keys;
/// The memory request bodies may hold at once, and each client's share of it.
mod memory;
/// `/oauth/*`: OAuth2 beside the DRF gate, in RFC 6749's error dialect.
mod oauth;
/// `GET /metrics` on its own listener, and the per-request series.
pub mod prometheus;
/// The route table the gate, the `Allow` headers and the OpenAPI paths read.
pub mod routes;
/// `Authorization: Token …` parsing and the documented security scheme.
pub mod security;
/// Serving HTTP/1.1 through hyper, with the limits that need no second reading of the bytes.
pub mod server;
/// `/token/sessions/` and `/token/logoutall/`.
mod sessions;
/// `/token/login/` and `/token/logout/`.
mod token;
/// Documented request and response bodies.
mod types;
/// `/users/…`.
mod users;
/// `/token/verify/`: forward auth for reverse proxies.
mod verify;

use std::sync::Arc;
use std::time::Instant;

use poem::middleware::RequestId;
use poem::web::Html;
use poem::{Endpoint, EndpointExt, IntoEndpoint, Request, Response, Route, get};
use poem_openapi::{OpenApiService, Tags};

use crate::state::AppState;

use error::from_poem_error;
use gate::Gate;
use health::Readiness;
use memory::BodyMemory;

#[derive(Tags)]
enum ApiTags {
    /// Registration and user management
    Users,
    /// Log in and out; sessions
    Token,
    /// Django's groups and permissions, and a user's roles
    Authorization,
    /// OAuth2 beside Djoser: token pairs, revocation, introspection (RFC 6749, 7009, 7662)
    #[oai(rename = "OAuth2")]
    OAuth2,
}

type DrfApis = (
    users::UsersApi,
    events::EventsApi,
    token::TokenApi,
    sessions::SessionsApi,
    authz::AuthzApi,
    verify::VerifyApi,
    keys::KeysApi,
);

fn drf_apis() -> DrfApis {
    (
        users::UsersApi,
        events::EventsApi,
        token::TokenApi,
        sessions::SessionsApi,
        authz::AuthzApi,
        verify::VerifyApi,
        keys::KeysApi,
    )
}

/// Every operation, for the document; the DRF ones and the OAuth2 ones are served apart.
fn openapi_service() -> OpenApiService<(DrfApis, oauth::OAuthApi), ()> {
    OpenApiService::new(
        (drf_apis(), oauth::OAuthApi),
        "authd",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Opaque-token authentication, wire-compatible with Djoser + DRF TokenAuthentication. \
         Log in with `POST /token/login/`, then press Authorize and enter `Token <auth_token>`; \
         or fill in username and password under `oauth2` (the OAuth2 password flow).",
    )
}

/// The OpenAPI document as clients must call it: paths as the route table spells them, with
/// djoser's trailing slash (poem-openapi drops it); with a URL prefix the document names it as
/// its server. A path missing from the table keeps poem-openapi's spelling, and a test fails.
pub fn openapi_document(url_prefix: &str) -> serde_json::Value {
    let mut document: serde_json::Value =
        serde_json::from_str(&openapi_service().spec()).expect("poem-openapi emits valid JSON");
    if let Some(paths) = document.get_mut("paths").and_then(|p| p.as_object_mut()) {
        *paths = std::mem::take(paths)
            .into_iter()
            .map(|(generated, mut item)| {
                let path =
                    routes::documented(&generated).map_or(generated, |route| route.path.to_owned());
                if let Some(operations) = item.as_object_mut() {
                    for operation in operations.values_mut() {
                        prune_responses(&path, operation);
                    }
                }
                (path, item)
            })
            .collect();
    }
    // OpenAPI requires `scopes` on a flow, even empty; poem-openapi leaves it out.
    if let Some(flow) = document.pointer_mut("/components/securitySchemes/oauth2/flows/password")
        && flow.get("scopes").is_none()
    {
        flow["scopes"] = serde_json::json!({});
    }
    if !url_prefix.is_empty() {
        document["servers"] = serde_json::json!([{ "url": url_prefix }]);
        // Swagger UI resolves the token URL against the page's origin, not the server entry.
        if let Some(url) =
            document.pointer_mut("/components/securitySchemes/oauth2/flows/password/tokenUrl")
        {
            *url = serde_json::json!(format!("{url_prefix}/oauth/token"));
        }
    }
    document
}

/// Every operation shares one error type; keep only the answers it can really give, and
/// document JSON as the bare `application/json` the server sends.
fn prune_responses(path: &str, operation: &mut serde_json::Value) {
    let has_body = operation.get("requestBody").is_some();
    let detail_route = path.contains('{');
    let id = operation["operationId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(|r| r.as_object_mut())
    else {
        return;
    };
    responses.retain(|status, _| match status.as_str() {
        "408" | "415" => has_body,
        // A pagination cursor `next` did not write: `{"detail": "Invalid cursor"}`.
        "400" => has_body || id == "users_me_events",
        // Another user's record; activation's reused link (djoser's "Stale token for given
        // user."); a login over the token limit under the `deny` policy (knox's words).
        "403" => {
            path.starts_with("/users/{")
                || path.starts_with("/permissions/")
                || path.starts_with("/groups/")
                || id == "users_activation"
                || id == "token_login"
                || id == "token_verify"
                // A user's history is refused to scoped tokens and API keys.
                || id == "users_me_events"
        }
        "404" => detail_route,
        // The failed-password limits (the password grant) and DRF's request-rate throttles
        // (every DRF operation but forward auth; OAuth2 is exempt).
        "429" => routes::find(path).is_some_and(|route| route.throttled) || id == "oauth_token",
        _ => true,
    });
    // DRF's three error shapes: field errors, `{"detail": …}` for an unparsable body, and
    // djoser's bare list (`["Unable to create account."]`). OAuth2 keeps RFC 6749's body.
    if let Some(content) = responses
        .get_mut("400")
        .and_then(|r| r.pointer_mut("/content"))
        .filter(|_| !path.starts_with("/oauth/"))
    {
        let schema = serde_json::json!({ "anyOf": [
            { "type": "object", "additionalProperties": { "type": "array", "items": { "type": "string" } } },
            { "$ref": "#/components/schemas/Detail" },
            { "type": "array", "items": { "type": "string" } },
        ]});
        for media in content
            .as_object_mut()
            .into_iter()
            .flat_map(|c| c.values_mut())
        {
            media["schema"] = schema.clone();
        }
    }
    // djoser answers resend_activation with an empty 400 (no body, no Content-Type) while
    // activation emails are off, so no media type can be promised for its 400.
    if id == "users_resend_activation"
        && let Some(response) = responses.get_mut("400").and_then(|r| r.as_object_mut())
    {
        response.remove("content");
        response.insert(
            "description".to_owned(),
            serde_json::json!(
                "An invalid `email` gives `{\"email\": [\"…\"]}` (JSON); while activation emails are off (SEND_ACTIVATION_EMAIL), djoser's empty 400: no body and no Content-Type"
            ),
        );
    }
    for response in responses.values_mut() {
        if let Some(content) = response.get_mut("content").and_then(|c| c.as_object_mut())
            && let Some(schema) = content.remove("application/json; charset=utf-8")
        {
            content.insert("application/json".to_owned(), schema);
        }
    }
}

/// `openapi.yaml`: the document without a prefix; `authd openapi` prints it and a test keeps
/// the committed file equal to it.
pub fn openapi_yaml(url_prefix: &str) -> String {
    serde_yaml::to_string(&openapi_document(url_prefix)).expect("a JSON value is valid YAML")
}

struct Docs {
    html: String,
    json: String,
    yaml: String,
}

impl Docs {
    fn new(url_prefix: &str) -> Self {
        let service = openapi_service();
        let document = openapi_document(url_prefix);
        let json = serde_json::to_string_pretty(&document).expect("serialisable");
        // poem-openapi inlines its own (slash-less) spec into the page; swap in ours.
        let html = service
            .swagger_ui_html()
            .replacen(&service.spec(), &json, 1);
        Self {
            html,
            json,
            yaml: openapi_yaml(url_prefix),
        }
    }
}

/// The whole application: API routes behind the gate, docs and health checks, all under the
/// URL prefix; DRF-shaped errors everywhere; one log line per request.
pub fn build_app(state: AppState, readiness: Arc<Readiness>) -> impl Endpoint<Output = Response> {
    let prefix = state.settings.url_prefix.clone();
    let docs = Arc::new(Docs::new(&prefix));
    let (html, json, yaml) = (docs.clone(), docs.clone(), docs);
    let routes = Route::new()
        .at("/healthz", get(health::healthz))
        .at("/readyz", get(health::readyz))
        .at(
            "/docs",
            get(poem::endpoint::make_sync(move |_| Html(html.html.clone()))),
        )
        .at(
            "/openapi.json",
            get(poem::endpoint::make_sync(move |_| {
                Response::builder()
                    .content_type("application/json")
                    .body(json.json.clone())
            })),
        )
        .at(
            "/openapi.yaml",
            get(poem::endpoint::make_sync(move |_| {
                Response::builder()
                    .content_type("application/yaml")
                    .body(yaml.yaml.clone())
            })),
        )
        .nest_no_strip(
            "/oauth",
            oauth::endpoint(OpenApiService::new(oauth::OAuthApi, "authd", "").into_endpoint()),
        )
        .nest(
            "/",
            Gate::new(
                OpenApiService::new(drf_apis(), "authd", "").into_endpoint(),
                state.clone(),
            ),
        );
    let app = if prefix.is_empty() {
        routes
    } else {
        Route::new().nest(prefix, routes)
    };
    let app = app.around(|endpoint, request| async move {
        let method = request.method().as_str().to_owned();
        Ok(match endpoint.call(request).await {
            Ok(response) => response,
            Err(err) => from_poem_error(err, &method),
        })
    });
    let body_memory = BodyMemory::new(state.settings.connections.body_memory_bytes);
    let metered = prometheus::Metered::new(&state.settings);
    cors::with_cors(app, state.settings.cors_allowed_origins.clone())
        .around(log_request)
        .around(move |endpoint, request| metered.clone().call(endpoint, request))
        .with(RequestId::default())
        .data(body_memory)
        .data(readiness)
        .data(state)
}

/// One line per request: method, path (never the query), status, latency; the request id
/// comes from the `RequestId` span around it. Headers are never logged.
async fn log_request<E: Endpoint<Output = Response>>(
    endpoint: Arc<E>,
    request: Request,
) -> poem::Result<Response> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.original_uri().path().to_owned();
    let response = endpoint.call(request).await?;
    let status = response.status().as_u16();
    // Hundredths of a millisecond: a number in JSON lines, short in text ones.
    let latency_ms = (started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0;
    tracing::info!(target: "authd::request", %method, %path, status, latency_ms);
    Ok(response)
}
