//! Routes, the authenticated principal as an extractor, and errors as DRF's JSON bodies.

use std::sync::Arc;

use poem::error::ResponseError;
use poem::http::{StatusCode, header};
use poem::web::{Data, Json, Path, Query};
use poem::{
    Body, EndpointExt, FromRequest, IntoResponse, Request, RequestBody, Response, Route, get,
    handler,
};
use sea_orm::{DatabaseConnection, DbErr};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::{self, AuthError, Introspector, Principal};
use crate::birthdays;
use crate::contact::{ContactChange, FieldErrors};
use crate::store::{self, Contact, Scope};

pub struct State {
    pub db: DatabaseConnection,
    pub introspector: Introspector,
}

pub fn routes(state: Arc<State>) -> impl poem::Endpoint {
    Route::new()
        .at("/contacts/", get(list_contacts).post(create_contact))
        .at("/contacts/birthdays/", get(upcoming_birthdays))
        .at(
            "/contacts/:id/",
            get(read_contact)
                .put(replace_contact)
                .patch(update_contact)
                .delete(delete_contact),
        )
        .data(state)
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Authentication credentials were not provided.")]
    NotAuthenticated,
    #[error("Invalid token.")]
    InvalidToken,
    #[error("You do not have permission to perform this action.")]
    Forbidden,
    #[error("Not found.")]
    NotFound,
    #[error("invalid input")]
    Invalid(FieldErrors),
    #[error("JSON parse error - {0}")]
    BadJson(String),
    #[error("authd cannot be asked: {0}")]
    AuthdUnavailable(String),
    #[error("database: {0}")]
    Database(#[from] DbErr),
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::NotProvided => ApiError::NotAuthenticated,
            AuthError::InvalidToken => ApiError::InvalidToken,
            AuthError::Unavailable(why) => ApiError::AuthdUnavailable(why),
        }
    }
}

impl ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::NotAuthenticated | ApiError::InvalidToken => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Invalid(_) | ApiError::BadJson(_) => StatusCode::BAD_REQUEST,
            ApiError::AuthdUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn as_response(&self) -> Response {
        let body = match self {
            ApiError::Invalid(errors) => errors.clone().into_json(),
            ApiError::AuthdUnavailable(why) => {
                tracing::warn!(%why, "introspection failed");
                json!({"detail": "The authentication service is unavailable."})
            }
            ApiError::Database(error) => {
                tracing::error!(%error, "database error");
                json!({"detail": "A server error occurred."})
            }
            other => json!({"detail": other.to_string()}),
        };
        let mut response = Json(body).with_status(self.status()).into_response();
        if self.status() == StatusCode::UNAUTHORIZED {
            // DRF's TokenAuthentication names its scheme.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Token"),
            );
        }
        response
    }
}

type Result<T> = std::result::Result<T, ApiError>;

impl<'a> FromRequest<'a> for Principal {
    async fn from_request(request: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let state = request
            .data::<Arc<State>>()
            .expect("the routes carry the state");
        let header = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        Ok(state
            .introspector
            .authenticate(header)
            .await
            .map_err(ApiError::from)?)
    }
}

/// A contact as the API shows it.
#[derive(Debug, Serialize)]
struct ContactView {
    id: i64,
    first_name: String,
    last_name: String,
    email: String,
    phone: String,
    birthday: Option<chrono::NaiveDate>,
    notes: String,
    owner: i64,
}

impl From<Contact> for ContactView {
    fn from(contact: Contact) -> Self {
        Self {
            id: contact.id,
            first_name: contact.first_name,
            last_name: contact.last_name,
            email: contact.email,
            phone: contact.phone,
            birthday: contact.birthday,
            notes: contact.notes,
            owner: contact.owner,
        }
    }
}

/// What a principal may do to a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    View,
    Change,
    Delete,
}

/// Django's rules: a user's own contacts are theirs to manage; another's are visible with
/// `view_contact` and modifiable with `change_contact` / `delete_contact` (a contact one may
/// see but not modify answers 403; one they may not see, 404). `is_staff` grants nothing.
fn authorize(principal: &Principal, contact: &Contact, action: Action) -> Result<()> {
    if contact.owner == principal.user_id {
        return Ok(());
    }
    let needed = match action {
        Action::View => auth::VIEW,
        Action::Change => auth::CHANGE,
        Action::Delete => auth::DELETE,
    };
    if principal.has(needed) {
        Ok(())
    } else if principal.has(auth::VIEW) {
        Err(ApiError::Forbidden)
    } else {
        Err(ApiError::NotFound)
    }
}

fn scope(principal: &Principal) -> Scope {
    if principal.has(auth::VIEW) {
        Scope::Everyone
    } else {
        Scope::OwnedBy(principal.user_id)
    }
}

async fn json_body(body: Body) -> Result<Value> {
    let bytes = body
        .into_bytes()
        .await
        .map_err(|e| ApiError::BadJson(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadJson(e.to_string()))
}

/// The contact at `id` if the principal may act on it; an id that is no number is not found.
async fn contact_for(
    state: &State,
    principal: &Principal,
    id: &str,
    action: Action,
) -> Result<Contact> {
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    let contact = store::find(&state.db, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    authorize(principal, &contact, action)?;
    Ok(contact)
}

#[derive(Debug, Deserialize)]
struct ListParams {
    #[serde(default)]
    search: String,
}

#[handler]
async fn list_contacts(
    principal: Principal,
    Data(state): Data<&Arc<State>>,
    Query(params): Query<ListParams>,
) -> Result<Json<Vec<ContactView>>> {
    let contacts = store::list(&state.db, scope(&principal), &params.search).await?;
    Ok(Json(contacts.into_iter().map(ContactView::from).collect()))
}

#[handler]
async fn create_contact(
    principal: Principal,
    Data(state): Data<&Arc<State>>,
    body: Body,
) -> Result<Response> {
    let change = ContactChange::parse(&json_body(body).await?, false).map_err(ApiError::Invalid)?;
    let created = store::insert(&state.db, principal.user_id, change).await?;
    Ok(Json(ContactView::from(created))
        .with_status(StatusCode::CREATED)
        .into_response())
}

#[handler]
async fn read_contact(
    principal: Principal,
    Data(state): Data<&Arc<State>>,
    Path(id): Path<String>,
) -> Result<Json<ContactView>> {
    let contact = contact_for(state, &principal, &id, Action::View).await?;
    Ok(Json(contact.into()))
}

async fn change_contact(
    state: &State,
    principal: &Principal,
    id: &str,
    body: Body,
    partial: bool,
) -> Result<Json<ContactView>> {
    let contact = contact_for(state, principal, id, Action::Change).await?;
    let change =
        ContactChange::parse(&json_body(body).await?, partial).map_err(ApiError::Invalid)?;
    match store::update(&state.db, contact, change).await {
        Ok(updated) => Ok(Json(updated.into())),
        // Deleted since it was read.
        Err(DbErr::RecordNotUpdated) => Err(ApiError::NotFound),
        Err(error) => Err(error.into()),
    }
}

#[handler]
async fn replace_contact(
    principal: Principal,
    Data(state): Data<&Arc<State>>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<ContactView>> {
    change_contact(state, &principal, &id, body, false).await
}

#[handler]
async fn update_contact(
    principal: Principal,
    Data(state): Data<&Arc<State>>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<ContactView>> {
    change_contact(state, &principal, &id, body, true).await
}

#[handler]
async fn delete_contact(
    principal: Principal,
    Data(state): Data<&Arc<State>>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let contact = contact_for(state, &principal, &id, Action::Delete).await?;
    store::delete(&state.db, contact).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct BirthdayParams {
    days: Option<String>,
}

const DEFAULT_DAYS: u32 = 7;
const MOST_DAYS: u32 = 366;

/// Contacts whose birthday falls within today (UTC) and `days` days after, soonest first.
#[handler]
async fn upcoming_birthdays(
    principal: Principal,
    Data(state): Data<&Arc<State>>,
    Query(params): Query<BirthdayParams>,
) -> Result<Json<Vec<ContactView>>> {
    let days = match params.days.as_deref() {
        None => DEFAULT_DAYS,
        Some(text) => parse_days(text)?,
    };
    let today = chrono::Utc::now().date_naive();
    let mut upcoming: Vec<(chrono::NaiveDate, Contact)> =
        store::with_birthdays(&state.db, scope(&principal))
            .await?
            .into_iter()
            .filter_map(|contact| {
                let next = birthdays::upcoming(contact.birthday?, today, days)?;
                Some((next, contact))
            })
            .collect();
    upcoming.sort_by(|(a, x), (b, y)| {
        (a, &x.last_name, &x.first_name, x.id).cmp(&(b, &y.last_name, &y.first_name, y.id))
    });
    Ok(Json(
        upcoming
            .into_iter()
            .map(|(_, contact)| contact.into())
            .collect(),
    ))
}

fn parse_days(text: &str) -> Result<u32> {
    let invalid = |message: &str| ApiError::Invalid(FieldErrors::single("days", message));
    let days: i64 = text
        .trim()
        .parse()
        .map_err(|_| invalid("A valid integer is required."))?;
    if days < 0 {
        return Err(invalid("Ensure this value is greater than or equal to 0."));
    }
    u32::try_from(days)
        .ok()
        .filter(|days| *days <= MOST_DAYS)
        .ok_or_else(|| {
            invalid(&format!(
                "Ensure this value is less than or equal to {MOST_DAYS}."
            ))
        })
}
