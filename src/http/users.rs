//! `/users/…`: registration, the current user, user management, password and username changes.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use crate::accounts::email::{self as email_flows, Purpose};
use crate::accounts::{self, Target};
use crate::domain::ClientInfo;
use crate::state::AppState;
use crate::store::Principal;

use super::ApiTags;
use super::body::DrfBody;
use super::error::{ApiError, SignUpError};
use super::security::Authenticated;
use super::types::{
    ActivationRequest, CreatedUser, DeleteUserRequest, EmailRequest, PasswordResetConfirmRequest,
    RegisterRequest, SetPasswordRequest, SetUsernameRequest, UpdateUserRequest, UserView,
    UsernameResetConfirmRequest,
};

#[derive(ApiResponse)]
pub enum Registered {
    /// The account exists; log in with `POST /token/login/`.
    #[oai(status = 201)]
    Created(Json<CreatedUser>),
}

#[derive(ApiResponse)]
pub enum NoContent {
    #[oai(status = 204)]
    Done,
}

pub struct UsersApi;

type ApiResult<T> = Result<T, ApiError>;

#[OpenApi(tag = "ApiTags::Users")]
impl UsersApi {
    /// Register a new user
    ///
    /// No token is returned; log in afterwards.
    #[oai(path = "/users", method = "post", operation_id = "users_create")]
    async fn register(
        &self,
        state: Data<&AppState>,
        body: DrfBody<RegisterRequest>,
    ) -> Result<Registered, SignUpError> {
        let fields = body.fields().await?;
        let user = accounts::register(&state, &state.hasher.admit()?, &fields).await?;
        Ok(Registered::Created(Json(user.into())))
    }

    /// List users
    ///
    /// Staff see everyone; others see only themselves while HIDE_USERS is on.
    #[oai(path = "/users", method = "get", operation_id = "users_list")]
    async fn list(
        &self,
        auth: Authenticated,
        state: Data<&AppState>,
    ) -> ApiResult<Json<Vec<UserView>>> {
        let users = accounts::list_users(&state, auth.caller()).await?;
        Ok(Json(views(&state, &auth, users).await?))
    }

    /// Who am I
    #[oai(path = "/users/me", method = "get", operation_id = "users_me_retrieve")]
    async fn me(&self, auth: Authenticated, state: Data<&AppState>) -> ApiResult<Json<UserView>> {
        let user = accounts::get_user(&state, auth.caller(), Target::Me).await?;
        view(&state, &auth, user).await
    }

    /// Replace my email
    #[oai(path = "/users/me", method = "put", operation_id = "users_me_update")]
    async fn me_put(
        &self,
        auth: Authenticated,
        state: Data<&AppState>,
        client: ClientInfo,
        body: DrfBody<UpdateUserRequest>,
    ) -> ApiResult<Json<UserView>> {
        update(&state, auth, client, Target::Me, body).await
    }

    /// Change my email
    #[oai(
        path = "/users/me",
        method = "patch",
        operation_id = "users_me_partial_update"
    )]
    async fn me_patch(
        &self,
        auth: Authenticated,
        state: Data<&AppState>,
        client: ClientInfo,
        body: DrfBody<UpdateUserRequest>,
    ) -> ApiResult<Json<UserView>> {
        update(&state, auth, client, Target::Me, body).await
    }

    /// Delete my account
    #[oai(
        path = "/users/me",
        method = "delete",
        operation_id = "users_me_destroy"
    )]
    async fn me_delete(
        &self,
        auth: Authenticated,
        state: Data<&AppState>,
        client: ClientInfo,
        body: DrfBody<DeleteUserRequest>,
    ) -> ApiResult<NoContent> {
        destroy(&state, auth, client, Target::Me, body).await
    }

    /// Change my password
    ///
    /// Revokes my other tokens; the one in use stays valid (unless LOGOUT_ON_PASSWORD_CHANGE).
    #[oai(
        path = "/users/set_password",
        method = "post",
        operation_id = "users_set_password"
    )]
    async fn set_password(
        &self,
        auth: Authenticated,
        state: Data<&AppState>,
        client: ClientInfo,
        body: DrfBody<SetPasswordRequest>,
    ) -> ApiResult<NoContent> {
        auth.unscoped()?;
        let fields = body.fields().await?;
        accounts::set_password(
            &state,
            &state.hasher.admit()?,
            &client,
            auth.caller(),
            &fields,
        )
        .await?;
        Ok(NoContent::Done)
    }

    /// Change my username
    #[oai(
        path = "/users/set_username",
        method = "post",
        operation_id = "users_set_username"
    )]
    async fn set_username(
        &self,
        auth: Authenticated,
        state: Data<&AppState>,
        client: ClientInfo,
        body: DrfBody<SetUsernameRequest>,
    ) -> ApiResult<NoContent> {
        auth.unscoped()?;
        let fields = body.fields().await?;
        accounts::set_username(
            &state,
            &state.hasher.admit()?,
            &client,
            auth.caller(),
            &fields,
        )
        .await?;
        Ok(NoContent::Done)
    }

    /// Activate an account
    ///
    /// With the `uid` and `token` of the activation link. Using a link again after it worked
    /// answers 403 "Stale token for given user.".
    #[oai(
        path = "/users/activation",
        method = "post",
        operation_id = "users_activation"
    )]
    async fn activation(
        &self,
        state: Data<&AppState>,
        client: ClientInfo,
        body: DrfBody<ActivationRequest>,
    ) -> ApiResult<NoContent> {
        let fields = body.fields().await?;
        email_flows::activate(&state, &client, &fields).await?;
        Ok(NoContent::Done)
    }

    /// Send the activation email again
    ///
    /// 204 whether or not the address belongs to an inactive account.
    #[oai(
        path = "/users/resend_activation",
        method = "post",
        operation_id = "users_resend_activation"
    )]
    async fn resend_activation(
        &self,
        state: Data<&AppState>,
        body: DrfBody<EmailRequest>,
    ) -> ApiResult<NoContent> {
        let fields = body.fields().await?;
        email_flows::request_link(&state, &fields, Purpose::Activation).await?;
        Ok(NoContent::Done)
    }

    /// Email a password reset link
    ///
    /// 204 whether or not the address is known, in the same time.
    #[oai(
        path = "/users/reset_password",
        method = "post",
        operation_id = "users_reset_password"
    )]
    async fn reset_password(
        &self,
        state: Data<&AppState>,
        body: DrfBody<EmailRequest>,
    ) -> ApiResult<NoContent> {
        let fields = body.fields().await?;
        email_flows::request_link(&state, &fields, Purpose::PasswordReset).await?;
        Ok(NoContent::Done)
    }

    /// Set a new password from a reset link
    ///
    /// Revokes every token of the user.
    #[oai(
        path = "/users/reset_password_confirm",
        method = "post",
        operation_id = "users_reset_password_confirm"
    )]
    async fn reset_password_confirm(
        &self,
        state: Data<&AppState>,
        client: ClientInfo,
        body: DrfBody<PasswordResetConfirmRequest>,
    ) -> ApiResult<NoContent> {
        let fields = body.fields().await?;
        let hashing = state.hasher.admit()?;
        email_flows::reset_password_confirm(&state, &hashing, &client, &fields).await?;
        Ok(NoContent::Done)
    }

    /// Email a username reset link
    ///
    /// 204 whether or not the address is known, in the same time.
    #[oai(
        path = "/users/reset_username",
        method = "post",
        operation_id = "users_reset_username"
    )]
    async fn reset_username(
        &self,
        state: Data<&AppState>,
        body: DrfBody<EmailRequest>,
    ) -> ApiResult<NoContent> {
        let fields = body.fields().await?;
        email_flows::request_link(&state, &fields, Purpose::UsernameReset).await?;
        Ok(NoContent::Done)
    }

    /// Set a new username from a reset link
    #[oai(
        path = "/users/reset_username_confirm",
        method = "post",
        operation_id = "users_reset_username_confirm"
    )]
    async fn reset_username_confirm(
        &self,
        state: Data<&AppState>,
        client: ClientInfo,
        body: DrfBody<UsernameResetConfirmRequest>,
    ) -> ApiResult<NoContent> {
        let fields = body.fields().await?;
        email_flows::reset_username_confirm(&state, &client, &fields).await?;
        Ok(NoContent::Done)
    }

    /// Get a user
    #[oai(path = "/users/:id", method = "get", operation_id = "users_retrieve")]
    async fn retrieve(
        &self,
        auth: Authenticated,
        state: Data<&AppState>,
        id: Path<String>,
    ) -> ApiResult<Json<UserView>> {
        let user = accounts::get_user(&state, auth.caller(), Target::Id(&id.0)).await?;
        view(&state, &auth, user).await
    }

    /// Replace a user's email
    #[oai(path = "/users/:id", method = "put", operation_id = "users_update")]
    async fn put(
        &self,
        auth: Authenticated,
        state: Data<&AppState>,
        client: ClientInfo,
        id: Path<String>,
        body: DrfBody<UpdateUserRequest>,
    ) -> ApiResult<Json<UserView>> {
        update(&state, auth, client, Target::Id(&id.0), body).await
    }

    /// Change a user's email
    #[oai(
        path = "/users/:id",
        method = "patch",
        operation_id = "users_partial_update"
    )]
    async fn patch(
        &self,
        auth: Authenticated,
        state: Data<&AppState>,
        client: ClientInfo,
        id: Path<String>,
        body: DrfBody<UpdateUserRequest>,
    ) -> ApiResult<Json<UserView>> {
        update(&state, auth, client, Target::Id(&id.0), body).await
    }

    /// Delete a user
    ///
    /// `current_password` is the caller's own password.
    #[oai(path = "/users/:id", method = "delete", operation_id = "users_destroy")]
    async fn delete(
        &self,
        auth: Authenticated,
        state: Data<&AppState>,
        client: ClientInfo,
        id: Path<String>,
        body: DrfBody<DeleteUserRequest>,
    ) -> ApiResult<NoContent> {
        destroy(&state, auth, client, Target::Id(&id.0), body).await
    }
}

/// The target is resolved (404/403) before the body is parsed, as DRF's `get_object` comes first.
async fn update(
    state: &AppState,
    auth: Authenticated,
    client: ClientInfo,
    target: Target<'_>,
    body: DrfBody<UpdateUserRequest>,
) -> ApiResult<Json<UserView>> {
    auth.unscoped()?;
    let user = accounts::user_to_update(state, auth.caller(), target).await?;
    let fields = body.fields().await?;
    let user = accounts::update_user(state, &client, auth.caller(), user, &fields).await?;
    view(state, &auth, user).await
}

/// Users as the user serializer shows them: Djoser's fields, and AUTHD_USER_EXTRA_FIELDS.
async fn views(
    state: &AppState,
    auth: &Authenticated,
    users: Vec<Principal>,
) -> ApiResult<Vec<UserView>> {
    let fields = &state.settings.user_extra_fields;
    Ok(accounts::with_grants(state, auth.caller(), users)
        .await?
        .into_iter()
        .map(|(user, grants)| UserView::show(user, grants, fields))
        .collect())
}

async fn view(
    state: &AppState,
    auth: &Authenticated,
    user: Principal,
) -> ApiResult<Json<UserView>> {
    let mut shown = views(state, auth, vec![user]).await?;
    shown
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(crate::domain::messages::NOT_FOUND))
}

async fn destroy(
    state: &AppState,
    auth: Authenticated,
    client: ClientInfo,
    target: Target<'_>,
    body: DrfBody<DeleteUserRequest>,
) -> ApiResult<NoContent> {
    auth.unscoped()?;
    let user = accounts::user_to_delete(state, auth.caller(), target).await?;
    let fields = body.fields().await?;
    accounts::delete_user(
        state,
        &state.hasher.admit()?,
        &client,
        auth.caller(),
        user,
        &fields,
    )
    .await?;
    Ok(NoContent::Done)
}
