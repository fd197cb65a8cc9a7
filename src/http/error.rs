//! The one place where failures become DRF-shaped responses.

use poem::http::{StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::Type;

use crate::crypto::HashError;
use crate::domain::{FieldErrors, messages};
use crate::throttle::throttled_detail;
use crate::{accounts, auth, authz, store};

use super::types::{Detail, ValidationErrors};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `{"field": ["…"]}` (DRF error shape B).
    #[error("invalid input")]
    Invalid(FieldErrors),
    /// 400 `["…"]` (shape C).
    #[error("bad request")]
    BareList(&'static str),
    /// 409 with the body of the refusal inside: a sign-up whose username or email is taken,
    /// under AUTHD_REGISTER_CONFLICT_STATUS=409.
    #[error("conflict")]
    Conflict(Box<ApiError>),
    /// 400 `{"detail": "…"}` for a body that cannot be parsed.
    #[error("unparsable body")]
    Unparsable(String),
    /// 400 `{"detail": "…"}` for a query parameter DRF refuses (a pagination cursor).
    #[error("invalid query parameter")]
    InvalidQuery(&'static str),
    #[error("not authenticated")]
    NotAuthenticated,
    #[error("authentication failed")]
    AuthenticationFailed(&'static str),
    #[error("permission denied")]
    Forbidden(&'static str),
    /// djoser's `resend_activation` answer while activation emails are off: no body at all.
    #[error("bad request")]
    EmptyBadRequest,
    #[error("not found")]
    NotFound(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed(String),
    #[error("not acceptable")]
    NotAcceptable,
    #[error("request body too large")]
    PayloadTooLarge,
    /// The body did not arrive whole by its deadline: 408, and the connection closes.
    #[error("request body not received in time")]
    RequestTimeout,
    /// The body's framing cannot be decoded (a malformed chunk).
    #[error("malformed request")]
    Malformed,
    #[error("unsupported media type")]
    UnsupportedMediaType(String),
    /// A throttle: DRF's 429, with `Retry-After` (seconds).
    #[error("throttled")]
    Throttled(u64),
    /// Load shed (the password hashing queue): DRF's 503, with `Retry-After`.
    #[error("service unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid(_)
            | ApiError::BareList(_)
            | ApiError::Unparsable(_)
            | ApiError::InvalidQuery(_)
            | ApiError::EmptyBadRequest
            | ApiError::Malformed => StatusCode::BAD_REQUEST,
            ApiError::NotAuthenticated | ApiError::AuthenticationFailed(_) => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> serde_json::Value {
        let detail = |text: &str| serde_json::json!({ "detail": text });
        match self {
            ApiError::Invalid(errors) => serde_json::Value::Object(
                errors
                    .iter()
                    .map(|(field, list)| (field.to_owned(), serde_json::json!(list)))
                    .collect(),
            ),
            ApiError::BareList(message) => serde_json::json!([message]),
            ApiError::Conflict(refusal) => refusal.body(),
            ApiError::Unparsable(message) => detail(message),
            ApiError::InvalidQuery(message) => detail(message),
            ApiError::NotAuthenticated => detail(messages::NOT_AUTHENTICATED),
            ApiError::AuthenticationFailed(message) => detail(message),
            ApiError::Forbidden(message) => detail(message),
            ApiError::EmptyBadRequest => serde_json::Value::Null,
            ApiError::NotFound(message) => detail(message),
            ApiError::MethodNotAllowed(method) => {
                detail(&format!("Method \"{method}\" not allowed."))
            }
            ApiError::NotAcceptable => detail("Could not satisfy the request Accept header."),
            ApiError::PayloadTooLarge => detail("Request body is too large."),
            ApiError::RequestTimeout => detail(messages::BODY_TIMEOUT),
            ApiError::Malformed => detail(messages::MALFORMED_REQUEST),
            ApiError::UnsupportedMediaType(media_type) => detail(&format!(
                "Unsupported media type \"{media_type}\" in request."
            )),
            ApiError::Throttled(wait) => detail(&throttled_detail(*wait)),
            ApiError::Unavailable => detail(messages::SERVICE_UNAVAILABLE),
            ApiError::Internal(_) => detail("A server error occurred."),
        }
    }
}

/// Compact JSON with DRF's bare `application/json` content type.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = match self {
            ApiError::Internal(cause) => match database_away(cause.as_ref(), "request failed") {
                true => ApiError::Unavailable,
                false => ApiError::Internal(cause),
            },
            ApiError::EmptyBadRequest => {
                return Response::builder().status(StatusCode::BAD_REQUEST).finish();
            }
            other => other,
        };
        let mut response = json_response(error.status(), &error.body());
        let retry_after = match error {
            ApiError::Unavailable => Some(1),
            ApiError::Throttled(wait) => Some(wait),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, poem::http::HeaderValue::from(seconds));
        }
        if let ApiError::RequestTimeout = error {
            // The rest of the body may still come; hyper closes rather than read it as a request.
            response.headers_mut().insert(
                header::CONNECTION,
                poem::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

impl From<ApiError> for poem::Error {
    fn from(err: ApiError) -> Self {
        poem::Error::from_response(err.into_response())
    }
}

impl From<accounts::Error> for ApiError {
    fn from(err: accounts::Error) -> Self {
        match err {
            accounts::Error::Invalid(errors) => ApiError::Invalid(errors),
            accounts::Error::CannotCreateUser => ApiError::BareList(messages::CANNOT_CREATE_USER),
            accounts::Error::Conflict(refusal) => ApiError::Conflict(Box::new((*refusal).into())),
            accounts::Error::NotFound => ApiError::NotFound(messages::NOT_FOUND),
            accounts::Error::NoSuchUser => ApiError::NotFound(messages::NO_USER_MATCHES),
            accounts::Error::PermissionDenied => ApiError::Forbidden(messages::PERMISSION_DENIED),
            accounts::Error::StaleToken => ApiError::Forbidden(messages::STALE_TOKEN),
            accounts::Error::EmailNotFound => ApiError::BareList(messages::EMAIL_NOT_FOUND),
            accounts::Error::ActivationDisabled => ApiError::EmptyBadRequest,
            accounts::Error::TokenLimit => ApiError::Forbidden(messages::TOKEN_LIMIT),
            accounts::Error::KeyLimit => ApiError::Forbidden(messages::API_KEY_LIMIT),
            accounts::Error::Throttled(wait) => ApiError::Throttled(wait),
            accounts::Error::Hashing(err) => err.into(),
            err @ (accounts::Error::Database(_)
            | accounts::Error::InvalidScope
            | accounts::Error::Random
            | accounts::Error::Mail(_)) => ApiError::Internal(Box::new(err)),
        }
    }
}

impl From<authz::Error> for ApiError {
    fn from(err: authz::Error) -> Self {
        match err {
            authz::Error::Invalid(errors) => ApiError::Invalid(errors),
            authz::Error::NotFound(message) => ApiError::NotFound(message),
            authz::Error::Forbidden => ApiError::Forbidden(messages::PERMISSION_DENIED),
            err @ authz::Error::Database(_) => ApiError::Internal(Box::new(err)),
        }
    }
}

impl From<HashError> for ApiError {
    fn from(err: HashError) -> Self {
        match err {
            HashError::Overloaded => ApiError::Unavailable,
            err => ApiError::Internal(Box::new(err)),
        }
    }
}

impl From<auth::TokenRejected> for ApiError {
    fn from(err: auth::TokenRejected) -> Self {
        match err {
            auth::TokenRejected::Invalid => ApiError::AuthenticationFailed(messages::INVALID_TOKEN),
            auth::TokenRejected::Inactive => {
                ApiError::AuthenticationFailed(messages::USER_INACTIVE)
            }
            err @ auth::TokenRejected::Database(_) => ApiError::Internal(Box::new(err)),
        }
    }
}

/// Turns errors raised by poem or poem-openapi themselves (no route, a missing security
/// header, an unparsable path) into DRF bodies; our own errors pass through unchanged.
pub fn from_poem_error(err: poem::Error, method: &str) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    let api_error = if err.is::<poem_openapi::error::AuthorizationError>() {
        ApiError::NotAuthenticated
    } else if err.is::<poem_openapi::error::ParsePathError>() {
        ApiError::NotFound(messages::NOT_FOUND)
    } else {
        match err.status() {
            StatusCode::NOT_FOUND => ApiError::NotFound(messages::NOT_FOUND),
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed(method.to_owned()),
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            status if status.is_client_error() => ApiError::Unparsable(err.to_string()),
            _ => ApiError::Internal(err.to_string().into()),
        }
    };
    api_error.into_response()
}

/// Logs an internal error and says whether it is the database being away (a warning; the
/// answer is 503, and it heals by itself) rather than a fault (an error; the answer is 500).
pub(super) fn database_away(cause: &(dyn std::error::Error + 'static), failed: &str) -> bool {
    let chain = crate::telemetry::chain(cause);
    let away = store::unavailable(cause);
    match away {
        true => {
            crate::meter::database_unavailable();
            tracing::warn!(error = %chain, "the database is unavailable")
        }
        false => tracing::error!(error = %chain, "{failed}"),
    }
    away
}

/// `Retry-After` on 429s and 503s, in whole seconds.
pub(super) fn retry_after_header() -> MetaHeader {
    MetaHeader {
        name: "Retry-After".into(),
        description: Some("Seconds to wait before trying again".into()),
        required: true,
        deprecated: false,
        schema: u32::schema_ref(),
    }
}

fn detail_response(status: u16, description: &'static str) -> MetaResponse {
    MetaResponse {
        description,
        status: Some(status),
        status_range: None,
        content: vec![MetaMediaType {
            content_type: "application/json",
            schema: Detail::schema_ref(),
        }],
        headers: vec![],
    }
}

/// What the documentation says every operation may answer besides its success.
impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![
                MetaResponse {
                    description: "Validation failed: each field maps to its messages (`non_field_errors` for the whole body); an unparsable body gives `{\"detail\": …}`, and a lost race at sign-up djoser's bare list `[\"Unable to create account.\"]`",
                    status: Some(400),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: "application/json",
                        schema: ValidationErrors::schema_ref(),
                    }],
                    headers: vec![],
                },
                detail_response(
                    401,
                    "Missing, malformed or unknown token (`WWW-Authenticate: Token`)",
                ),
                detail_response(403, "Authenticated, but not allowed"),
                detail_response(404, "No such user, or hidden by HIDE_USERS"),
                detail_response(
                    408,
                    "The body did not arrive whole within `AUTHD_BODY_READ_TIMEOUT_SECONDS` (`Connection: close`)",
                ),
                detail_response(415, "The body is not JSON, urlencoded or multipart"),
                MetaResponse {
                    headers: vec![retry_after_header()],
                    ..detail_response(
                        429,
                        "Throttled: too many failed password checks for this account or client (login), or for this session (`current_password`), or over `AUTHD_THROTTLE_ANON`/`AUTHD_THROTTLE_USER`; `{\"detail\": \"Request was throttled. Expected available in N seconds.\"}`, and `Retry-After: N`",
                    )
                },
                MetaResponse {
                    headers: vec![retry_after_header()],
                    ..detail_response(
                        503,
                        "Too many requests are waiting to hash a password (or for the password checks of one account ahead of them), or request bodies fill `AUTHD_BODY_MEMORY_BYTES`, or the database is unavailable (restarting, or SQLite's lock held past `AUTHD_DATABASE_TIMEOUT_MS`); try again after `Retry-After` seconds",
                    )
                },
            ],
        }
    }

    fn register(registry: &mut Registry) {
        Detail::register(registry);
        ValidationErrors::register(registry);
    }
}

/// The failures of `POST /users/`: every operation's, and the 409 that
/// AUTHD_REGISTER_CONFLICT_STATUS=409 gives a username or email already taken. The document
/// lists the 409 whatever the setting, so that clients can be written for both.
#[derive(Debug)]
pub struct SignUpError(ApiError);

impl<E: Into<ApiError>> From<E> for SignUpError {
    fn from(err: E) -> Self {
        SignUpError(err.into())
    }
}

impl From<SignUpError> for poem::Error {
    fn from(err: SignUpError) -> Self {
        err.0.into()
    }
}

impl IntoResponse for SignUpError {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl ApiResponse for SignUpError {
    fn meta() -> MetaResponses {
        let mut meta = ApiError::meta();
        let conflict = MetaResponse {
            description: "With `AUTHD_REGISTER_CONFLICT_STATUS=409`: the username or email is taken and nothing else is wrong; the body is the 400's (a field error, or `[\"Unable to create account.\"]` for a lost race)",
            status: Some(409),
            status_range: None,
            content: vec![MetaMediaType {
                content_type: "application/json",
                schema: ValidationErrors::schema_ref(),
            }],
            headers: vec![],
        };
        let at = meta
            .responses
            .iter()
            .position(|response| response.status.is_some_and(|status| status > 409))
            .unwrap_or(meta.responses.len());
        meta.responses.insert(at, conflict);
        meta
    }

    fn register(registry: &mut Registry) {
        ApiError::register(registry);
    }
}
