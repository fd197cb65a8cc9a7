//! `/token/login/` and `/token/logout/`.

use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::payload::Json;

use crate::accounts;
use crate::domain::ClientInfo;
use crate::meter::{self, Login};
use crate::state::AppState;

use super::ApiTags;
use super::body::DrfBody;
use super::error::ApiError;
use super::security::Authenticated;
use super::types::{AuthToken, LoginRequest};
use super::users::NoContent;

pub struct TokenApi;

#[OpenApi(tag = "ApiTags::Token")]
impl TokenApi {
    /// Log in
    ///
    /// Every successful login mints a new token (one per device); only its SHA-256 digest is
    /// stored. Send it as `Authorization: Token <auth_token>`.
    #[oai(path = "/token/login", method = "post", operation_id = "token_login")]
    async fn login(
        &self,
        state: Data<&AppState>,
        client: ClientInfo,
        body: DrfBody<LoginRequest>,
    ) -> Result<Json<AuthToken>, ApiError> {
        // The body is read before a place in the hashing queue is taken, so a place is never
        // held by a body that is still arriving.
        let fields = body.fields().await?;
        let hashing = (state.hasher.admit()).inspect_err(|_| meter::login(Login::Overloaded))?;
        let auth_token = accounts::login(&state, &hashing, &client, &fields).await?;
        Ok(Json(AuthToken { auth_token }))
    }

    /// Log out
    ///
    /// Revokes the token that authenticated this request; other devices stay logged in.
    #[oai(path = "/token/logout", method = "post", operation_id = "token_logout")]
    async fn logout(
        &self,
        auth: Authenticated,
        state: Data<&AppState>,
        client: ClientInfo,
    ) -> Result<NoContent, ApiError> {
        accounts::logout(&state, auth.caller(), &client).await?;
        Ok(NoContent::Done)
    }
}
