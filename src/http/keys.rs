//! `/token/keys/`: API keys for programs. Only an unscoped token reaches these routes (a key
//! cannot make, list or end keys).

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use crate::accounts::{self, CreatedKey};
use crate::domain::{ClientInfo, messages};
use crate::sessions::{self, KeyView, join_scope};
use crate::state::AppState;

use super::ApiTags;
use super::body::DrfBody;
use super::error::ApiError;
use super::security::Authenticated;
use super::sessions::{internal, iso};
use super::types::{ApiKey, ApiKeyRequest, CreatedApiKey};
use super::users::NoContent;

#[derive(ApiResponse)]
enum Created {
    /// The key, shown this once.
    #[oai(status = 201)]
    Key(Json<CreatedApiKey>),
}

impl From<KeyView> for ApiKey {
    fn from(view: KeyView) -> Self {
        Self {
            id: view.id,
            name: view.name,
            scope: join_scope(&view.scope),
            expires: iso(view.expires),
            created: iso(view.created),
        }
    }
}

impl From<CreatedKey> for CreatedApiKey {
    fn from(created: CreatedKey) -> Self {
        let view = ApiKey::from(created.view);
        Self {
            id: view.id,
            name: view.name,
            key: created.key,
            scope: view.scope,
            expires: view.expires,
            created: view.created,
        }
    }
}

pub struct KeysApi;

#[OpenApi(tag = "ApiTags::Token")]
impl KeysApi {
    /// Create an API key
    ///
    /// For a program acting for me: it works as `X-API-Key: <key>` or `Authorization: Token
    /// <key>`, may do at most its `scope`, cannot reach account routes or log out, and lives
    /// until `expires` (no idle limit). Needs my `current_password`; my mailbox is told.
    #[oai(
        path = "/token/keys",
        method = "post",
        operation_id = "token_keys_create"
    )]
    async fn create(
        &self,
        auth: Authenticated,
        state: Data<&AppState>,
        client: ClientInfo,
        body: DrfBody<ApiKeyRequest>,
    ) -> Result<Created, ApiError> {
        let caller = auth.unscoped()?;
        let fields = body.fields().await?;
        let created =
            accounts::create_key(&state, &state.hasher.admit()?, &client, caller, &fields).await?;
        Ok(Created::Key(Json(created.into())))
    }

    /// My API keys
    ///
    /// Live keys, oldest first, without the keys themselves.
    #[oai(path = "/token/keys", method = "get", operation_id = "token_keys_list")]
    async fn list(
        &self,
        auth: Authenticated,
        state: Data<&AppState>,
    ) -> Result<Json<Vec<ApiKey>>, ApiError> {
        let keys = sessions::list_keys(&state, auth.unscoped()?)
            .await
            .map_err(internal)?;
        Ok(Json(keys.into_iter().map(ApiKey::from).collect()))
    }

    /// Delete one of my API keys
    ///
    /// It stops working at once. Another user's key is not found.
    #[oai(
        path = "/token/keys/:id",
        method = "delete",
        operation_id = "token_keys_destroy"
    )]
    async fn delete(
        &self,
        auth: Authenticated,
        state: Data<&AppState>,
        client: ClientInfo,
        id: Path<String>,
    ) -> Result<NoContent, ApiError> {
        match sessions::end_key(&state, auth.unscoped()?, &id.0, &client)
            .await
            .map_err(internal)?
        {
            true => Ok(NoContent::Done),
            false => Err(ApiError::NotFound(messages::NOT_FOUND)),
        }
    }
}
