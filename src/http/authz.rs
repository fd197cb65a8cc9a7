//! `/permissions/`, `/groups/` and a user's `/groups/`, `/permissions/` and `/roles/`: Django's
//! authorization model, managed as the Django admin would (DRF bodies and status codes).

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::authz::{self, Edit, GroupChange, PermissionChange, RolesChange, Who};
use crate::domain::{ClientInfo, FieldErrors};
use crate::state::AppState;
use crate::store::authz::Permission;

use super::ApiTags;
use super::body::DrfBody;
use super::error::ApiError;
use super::security::Authenticated;
use super::users::NoContent;

/// A permission, named `app_label.codename` wherever it is granted.
#[derive(Debug, Object)]
pub struct PermissionView {
    pub id: i64,
    /// A Python identifier: the Django app (the content type's `app_label`).
    pub app_label: String,
    /// No spaces; `add_post`, `view_contact`.
    pub codename: String,
    /// Human-readable, such as "Can add post".
    pub name: String,
}

impl From<Permission> for PermissionView {
    fn from(permission: Permission) -> Self {
        Self {
            id: permission.id,
            app_label: permission.app_label,
            codename: permission.codename,
            name: permission.name,
        }
    }
}

#[derive(Debug, Object)]
pub struct PermissionRequest {
    pub app_label: String,
    pub codename: String,
    pub name: String,
}

/// Only superusers may change `app_label` or `codename` (every holder's permission changes).
#[derive(Debug, Object)]
pub struct PatchedPermissionRequest {
    pub app_label: Option<String>,
    pub codename: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Object)]
pub struct GroupView {
    pub id: i64,
    pub name: String,
    /// `app_label.codename`, sorted.
    pub permissions: Vec<String>,
}

impl From<authz::GroupView> for GroupView {
    fn from(group: authz::GroupView) -> Self {
        Self {
            id: group.id,
            name: group.name,
            permissions: group.permissions,
        }
    }
}

#[derive(Debug, Object)]
pub struct GroupRequest {
    pub name: String,
    /// `app_label.codename` of each; left out, a new group has none and a changed one keeps its own.
    pub permissions: Option<Vec<String>>,
}

#[derive(Debug, Object)]
pub struct PatchedGroupRequest {
    pub name: Option<String>,
    pub permissions: Option<Vec<String>>,
}

/// A user's groups, by name.
#[derive(Debug, Object)]
pub struct UserGroups {
    pub groups: Vec<String>,
}

/// A user's own permissions (not their groups'), `app_label.codename`.
#[derive(Debug, Object)]
pub struct UserPermissions {
    pub permissions: Vec<String>,
}

#[derive(Debug, Object)]
pub struct Roles {
    pub is_staff: bool,
    pub is_superuser: bool,
}

impl From<authz::Roles> for Roles {
    fn from(roles: authz::Roles) -> Self {
        Self {
            is_staff: roles.is_staff,
            is_superuser: roles.is_superuser,
        }
    }
}

#[derive(Debug, Object)]
pub struct PatchedRolesRequest {
    pub is_staff: Option<bool>,
    pub is_superuser: Option<bool>,
}

#[derive(ApiResponse)]
pub enum PermissionCreated {
    #[oai(status = 201)]
    Created(Json<PermissionView>),
}

#[derive(ApiResponse)]
pub enum GroupCreated {
    #[oai(status = 201)]
    Created(Json<GroupView>),
}

type ApiResult<T> = Result<T, ApiError>;

/// Every route here is an admin route: only an unscoped token reaches it.
fn who(auth: &Authenticated, client: &ClientInfo) -> ApiResult<Who> {
    Ok(Who::User(auth.unscoped()?.user.id, client.ip))
}

/// A required list field (`PUT` replaces the whole list).
fn list_body(body: &crate::domain::RawFields, field: &str) -> Result<Edit, FieldErrors> {
    let mut errors = FieldErrors::new();
    match authz::names_field(body, field, &mut errors) {
        Some(edit) => Ok(edit),
        None if errors.is_empty() => Err(FieldErrors::single(
            field,
            crate::domain::messages::REQUIRED,
        )),
        None => Err(errors),
    }
}

pub struct AuthzApi;

#[OpenApi(tag = "ApiTags::Authorization")]
impl AuthzApi {
    /// List permissions
    ///
    /// Needs `auth.view_permission` (staff) or a superuser.
    #[oai(
        path = "/permissions",
        method = "get",
        operation_id = "permissions_list"
    )]
    async fn list_permissions(
        &self,
        auth: Authenticated,
        client: ClientInfo,
        state: Data<&AppState>,
    ) -> ApiResult<Json<Vec<PermissionView>>> {
        let who = who(&auth, &client)?;
        let permissions = authz::list_permissions(&state, who).await?;
        Ok(Json(permissions.into_iter().map(Into::into).collect()))
    }

    /// Create a permission
    ///
    /// Needs `auth.add_permission` (staff) or a superuser; the `auth` app is for superusers.
    #[oai(
        path = "/permissions",
        method = "post",
        operation_id = "permissions_create"
    )]
    async fn create_permission(
        &self,
        auth: Authenticated,
        client: ClientInfo,
        state: Data<&AppState>,
        body: DrfBody<PermissionRequest>,
    ) -> ApiResult<PermissionCreated> {
        let who = who(&auth, &client)?;
        let fields = body.fields().await?;
        let change = PermissionChange::parse(&fields, false);
        let created = authz::create_permission(&state, who, change).await?;
        Ok(PermissionCreated::Created(Json(created.into())))
    }

    /// A permission
    #[oai(
        path = "/permissions/:id",
        method = "get",
        operation_id = "permissions_retrieve"
    )]
    async fn get_permission(
        &self,
        auth: Authenticated,
        client: ClientInfo,
        state: Data<&AppState>,
        id: Path<String>,
    ) -> ApiResult<Json<PermissionView>> {
        let who = who(&auth, &client)?;
        let permission = authz::get_permission(&state, who, &id.0).await?;
        Ok(Json(permission.into()))
    }

    /// Change a permission
    ///
    /// Needs `auth.change_permission` (staff) or a superuser; renaming (`app_label`,
    /// `codename`) is for superusers.
    #[oai(
        path = "/permissions/:id",
        method = "patch",
        operation_id = "permissions_partial_update"
    )]
    async fn patch_permission(
        &self,
        auth: Authenticated,
        client: ClientInfo,
        state: Data<&AppState>,
        id: Path<String>,
        body: DrfBody<PatchedPermissionRequest>,
    ) -> ApiResult<Json<PermissionView>> {
        let who = who(&auth, &client)?;
        let fields = body.fields().await?;
        let change = PermissionChange::parse(&fields, true);
        let permission = authz::update_permission(&state, who, &id.0, change).await?;
        Ok(Json(permission.into()))
    }

    /// Delete a permission
    ///
    /// Everyone who held it loses it. Needs `auth.delete_permission` (staff) or a superuser;
    /// an `auth.*` permission, a superuser.
    #[oai(
        path = "/permissions/:id",
        method = "delete",
        operation_id = "permissions_destroy"
    )]
    async fn delete_permission(
        &self,
        auth: Authenticated,
        client: ClientInfo,
        state: Data<&AppState>,
        id: Path<String>,
    ) -> ApiResult<NoContent> {
        let who = who(&auth, &client)?;
        authz::delete_permission(&state, who, &id.0).await?;
        Ok(NoContent::Done)
    }

    /// List groups
    ///
    /// Needs `auth.view_group` (staff) or a superuser.
    #[oai(path = "/groups", method = "get", operation_id = "groups_list")]
    async fn list_groups(
        &self,
        auth: Authenticated,
        client: ClientInfo,
        state: Data<&AppState>,
    ) -> ApiResult<Json<Vec<GroupView>>> {
        let who = who(&auth, &client)?;
        let groups = authz::list_groups(&state, who).await?;
        Ok(Json(groups.into_iter().map(Into::into).collect()))
    }

    /// Create a group
    ///
    /// Needs `auth.add_group` (staff) or a superuser. Staff may give it only permissions they
    /// hold themselves, and no `auth.*` permission.
    #[oai(path = "/groups", method = "post", operation_id = "groups_create")]
    async fn create_group(
        &self,
        auth: Authenticated,
        client: ClientInfo,
        state: Data<&AppState>,
        body: DrfBody<GroupRequest>,
    ) -> ApiResult<GroupCreated> {
        let who = who(&auth, &client)?;
        let fields = body.fields().await?;
        let change = GroupChange::parse(&fields, false);
        let group = authz::create_group(&state, who, change).await?;
        Ok(GroupCreated::Created(Json(group.into())))
    }

    /// A group
    #[oai(path = "/groups/:id", method = "get", operation_id = "groups_retrieve")]
    async fn get_group(
        &self,
        auth: Authenticated,
        client: ClientInfo,
        state: Data<&AppState>,
        id: Path<String>,
    ) -> ApiResult<Json<GroupView>> {
        let who = who(&auth, &client)?;
        Ok(Json(authz::get_group(&state, who, &id.0).await?.into()))
    }

    /// Replace a group
    ///
    /// Needs `auth.change_group` (staff) or a superuser. Staff may add only permissions they
    /// hold, and neither add nor remove `auth.*` ones.
    #[oai(path = "/groups/:id", method = "put", operation_id = "groups_update")]
    async fn put_group(
        &self,
        auth: Authenticated,
        client: ClientInfo,
        state: Data<&AppState>,
        id: Path<String>,
        body: DrfBody<GroupRequest>,
    ) -> ApiResult<Json<GroupView>> {
        let who = who(&auth, &client)?;
        let fields = body.fields().await?;
        let change = GroupChange::parse(&fields, false);
        Ok(Json(
            authz::update_group(&state, who, &id.0, change)
                .await?
                .into(),
        ))
    }

    /// Change a group
    #[oai(
        path = "/groups/:id",
        method = "patch",
        operation_id = "groups_partial_update"
    )]
    async fn patch_group(
        &self,
        auth: Authenticated,
        client: ClientInfo,
        state: Data<&AppState>,
        id: Path<String>,
        body: DrfBody<PatchedGroupRequest>,
    ) -> ApiResult<Json<GroupView>> {
        let who = who(&auth, &client)?;
        let fields = body.fields().await?;
        let change = GroupChange::parse(&fields, true);
        Ok(Json(
            authz::update_group(&state, who, &id.0, change)
                .await?
                .into(),
        ))
    }

    /// Delete a group
    ///
    /// Its members lose what it gave them. Needs `auth.delete_group` (staff) or a superuser.
    #[oai(
        path = "/groups/:id",
        method = "delete",
        operation_id = "groups_destroy"
    )]
    async fn delete_group(
        &self,
        auth: Authenticated,
        client: ClientInfo,
        state: Data<&AppState>,
        id: Path<String>,
    ) -> ApiResult<NoContent> {
        let who = who(&auth, &client)?;
        authz::delete_group(&state, who, &id.0).await?;
        Ok(NoContent::Done)
    }

    /// A user's groups
    ///
    /// Needs `auth.view_user` (staff) or a superuser.
    #[oai(
        path = "/users/:id/groups",
        method = "get",
        operation_id = "users_groups_retrieve"
    )]
    async fn user_groups(
        &self,
        auth: Authenticated,
        client: ClientInfo,
        state: Data<&AppState>,
        id: Path<String>,
    ) -> ApiResult<Json<UserGroups>> {
        let who = who(&auth, &client)?;
        let groups = authz::user_groups(&state, who, &id.0).await?;
        Ok(Json(UserGroups { groups }))
    }

    /// Set a user's groups
    ///
    /// Needs `auth.change_user` (staff) or a superuser. Joining a group grants its
    /// permissions: staff may add a user only to groups whose permissions they hold, none of
    /// them `auth.*`.
    #[oai(
        path = "/users/:id/groups",
        method = "put",
        operation_id = "users_groups_update"
    )]
    async fn set_user_groups(
        &self,
        auth: Authenticated,
        client: ClientInfo,
        state: Data<&AppState>,
        id: Path<String>,
        body: DrfBody<UserGroups>,
    ) -> ApiResult<Json<UserGroups>> {
        let who = who(&auth, &client)?;
        let fields = body.fields().await?;
        let edit = list_body(&fields, "groups");
        let groups = authz::set_user_groups(&state, who, &id.0, edit).await?;
        Ok(Json(UserGroups { groups }))
    }

    /// A user's own permissions
    ///
    /// Not those of their groups. Needs `auth.view_user` (staff) or a superuser.
    #[oai(
        path = "/users/:id/permissions",
        method = "get",
        operation_id = "users_permissions_retrieve"
    )]
    async fn user_permissions(
        &self,
        auth: Authenticated,
        client: ClientInfo,
        state: Data<&AppState>,
        id: Path<String>,
    ) -> ApiResult<Json<UserPermissions>> {
        let who = who(&auth, &client)?;
        let permissions = authz::user_permissions(&state, who, &id.0).await?;
        Ok(Json(UserPermissions { permissions }))
    }

    /// Set a user's own permissions
    ///
    /// Needs `auth.change_user` (staff) or a superuser. Staff may grant only permissions they
    /// hold, and neither grant nor revoke `auth.*` ones.
    #[oai(
        path = "/users/:id/permissions",
        method = "put",
        operation_id = "users_permissions_update"
    )]
    async fn set_user_permissions(
        &self,
        auth: Authenticated,
        client: ClientInfo,
        state: Data<&AppState>,
        id: Path<String>,
        body: DrfBody<UserPermissions>,
    ) -> ApiResult<Json<UserPermissions>> {
        let who = who(&auth, &client)?;
        let fields = body.fields().await?;
        let edit = list_body(&fields, "permissions");
        let permissions = authz::set_user_permissions(&state, who, &id.0, edit).await?;
        Ok(Json(UserPermissions { permissions }))
    }

    /// A user's roles
    ///
    /// Needs `auth.view_user` (staff) or a superuser.
    #[oai(
        path = "/users/:id/roles",
        method = "get",
        operation_id = "users_roles_retrieve"
    )]
    async fn user_roles(
        &self,
        auth: Authenticated,
        client: ClientInfo,
        state: Data<&AppState>,
        id: Path<String>,
    ) -> ApiResult<Json<Roles>> {
        let who = who(&auth, &client)?;
        Ok(Json(authz::user_roles(&state, who, &id.0).await?.into()))
    }

    /// Set a user's roles
    ///
    /// Superusers only: making someone staff or a superuser is theirs alone.
    #[oai(
        path = "/users/:id/roles",
        method = "patch",
        operation_id = "users_roles_partial_update"
    )]
    async fn patch_user_roles(
        &self,
        auth: Authenticated,
        client: ClientInfo,
        state: Data<&AppState>,
        id: Path<String>,
        body: DrfBody<PatchedRolesRequest>,
    ) -> ApiResult<Json<Roles>> {
        let who = who(&auth, &client)?;
        let fields = body.fields().await?;
        let change = RolesChange::parse(&fields);
        Ok(Json(
            authz::update_roles(&state, who, &id.0, change)
                .await?
                .into(),
        ))
    }
}
