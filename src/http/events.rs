//! `GET /users/me/events/`: the caller's own audit trail, newest first.

use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;

use crate::audit;
use crate::domain::messages;
use crate::state::AppState;

use super::ApiTags;
use super::error::ApiError;
use super::security::Authenticated;
use super::sessions::internal;
use super::types::{AccountEvent, AccountEventPage};

pub struct EventsApi;

impl From<audit::Event> for AccountEvent {
    fn from(event: audit::Event) -> Self {
        Self {
            kind: event.kind,
            time: audit::time(event.created_at),
            ip: event.client_ip,
            user_agent: event.user_agent,
            session_id: event.session_id,
        }
    }
}

/// A cursor as `next` writes it: an event id, digits only.
fn parse_cursor(cursor: &str) -> Result<i64, ApiError> {
    let invalid = || ApiError::InvalidQuery(messages::INVALID_CURSOR);
    if cursor.is_empty() || !cursor.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    cursor.parse().map_err(|_| invalid())
}

#[OpenApi(tag = "ApiTags::Users")]
impl EventsApi {
    /// My account's history
    ///
    /// Logins (and failed ones), logouts, password, username and email changes, API keys,
    /// throttled attempts: the audit trail of the account, newest first, 50 a page. `next` is
    /// the following page as a relative path (`?cursor=…`), `null` on the last. An unscoped
    /// token only: a scoped token or an API key is refused (403). A cursor that `next` did not
    /// write: 400 `{"detail": "Invalid cursor"}`.
    #[oai(
        path = "/users/me/events",
        method = "get",
        operation_id = "users_me_events"
    )]
    async fn list(
        &self,
        auth: Authenticated,
        state: Data<&AppState>,
        /// Where the page starts: the value `next` carries.
        cursor: Query<Option<String>>,
    ) -> Result<Json<AccountEventPage>, ApiError> {
        let caller = auth.unscoped()?;
        let cursor = cursor.0.as_deref().map(parse_cursor).transpose()?;
        let page = audit::history(&state.db, caller.user.id, cursor)
            .await
            .map_err(internal)?;
        let prefix = &state.settings.url_prefix;
        Ok(Json(AccountEventPage {
            results: page.events.into_iter().map(AccountEvent::from).collect(),
            next: page
                .next
                .map(|id| format!("{prefix}/users/me/events/?cursor={id}")),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_event_ids() {
        assert_eq!(parse_cursor("42").ok(), Some(42));
        for bad in ["", "-1", "+1", "1.0", "abc", " 1", "99999999999999999999"] {
            assert!(parse_cursor(bad).is_err(), "{bad:?}");
        }
    }
}
