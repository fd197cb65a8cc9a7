//! `/token/sessions/` and `/token/logoutall/`: the caller's logins, one of them ended, or all.

use chrono::{DateTime, SecondsFormat, Utc};
use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;

use crate::domain::{ClientInfo, messages};
use crate::sessions::{self, SessionView};
use crate::state::AppState;
use crate::store::SessionKind;

use super::ApiTags;
use super::error::ApiError;
use super::security::Authenticated;
use super::types::Session;
use super::users::NoContent;

pub struct SessionsApi;

/// ISO 8601 in UTC, to the second, with `Z`.
pub(super) fn iso(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl From<SessionView> for Session {
    fn from(view: SessionView) -> Self {
        Self {
            id: view.id,
            kind: match view.kind {
                SessionKind::Token => "token",
                SessionKind::OAuth => "oauth",
                SessionKind::ApiKey => "api_key",
            }
            .to_owned(),
            name: view.name,
            created: iso(view.created),
            last_used: view.last_used.map(iso),
            expires: view.expires.map(iso),
            current: view.current,
        }
    }
}

pub(super) fn internal(err: crate::store::DbErr) -> ApiError {
    ApiError::Internal(Box::new(err))
}

#[OpenApi(tag = "ApiTags::Token")]
impl SessionsApi {
    /// My sessions
    ///
    /// One per login (a Djoser token, or an OAuth2 refresh family) and one per API key;
    /// `current` marks the one this request uses.
    #[oai(
        path = "/token/sessions",
        method = "get",
        operation_id = "token_sessions_list"
    )]
    async fn list(
        &self,
        auth: Authenticated,
        state: Data<&AppState>,
    ) -> Result<Json<Vec<Session>>, ApiError> {
        let sessions = sessions::list(&state, auth.unscoped()?)
            .await
            .map_err(internal)?;
        Ok(Json(sessions.into_iter().map(Session::from).collect()))
    }

    /// End one of my sessions
    ///
    /// Its tokens stop working at once. Another user's session is not found.
    #[oai(
        path = "/token/sessions/:id",
        method = "delete",
        operation_id = "token_sessions_destroy"
    )]
    async fn end(
        &self,
        auth: Authenticated,
        state: Data<&AppState>,
        client: ClientInfo,
        id: Path<String>,
    ) -> Result<NoContent, ApiError> {
        match sessions::end_by_id(&state, auth.unscoped()?, &id.0, &client)
            .await
            .map_err(internal)?
        {
            true => Ok(NoContent::Done),
            false => Err(ApiError::NotFound(messages::NOT_FOUND)),
        }
    }

    /// Log out everywhere
    ///
    /// Ends every session of mine, this one included (knox's `logoutall`).
    #[oai(
        path = "/token/logoutall",
        method = "post",
        operation_id = "token_logoutall"
    )]
    async fn logout_all(
        &self,
        auth: Authenticated,
        state: Data<&AppState>,
        client: ClientInfo,
    ) -> Result<NoContent, ApiError> {
        sessions::end_all(&state, auth.unscoped()?, &client)
            .await
            .map_err(internal)?;
        Ok(NoContent::Done)
    }
}
