//! Request and response bodies as the API documents them. Requests are parsed leniently by
//! [`super::body::DrfBody`]; these types only describe them.

use std::collections::BTreeMap;

use poem_openapi::Object;

use crate::config::UserExtraField;
use crate::store::Principal;
use crate::store::authz::Grants;

/// `{"detail": "…"}`
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct Detail {
    pub detail: String,
}

pub type ValidationErrors = BTreeMap<String, Vec<String>>;

/// A user as djoser's `user` serializer shows one.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct UserView {
    pub email: String,
    pub id: i64,
    pub username: String,
    /// Group names; only with `groups` in AUTHD_USER_EXTRA_FIELDS.
    #[oai(read_only, skip_serializing_if_is_none)]
    pub groups: Option<Vec<String>>,
    /// Effective permissions (`app_label.codename`, sorted); only with `permissions` in
    /// AUTHD_USER_EXTRA_FIELDS.
    #[oai(read_only, skip_serializing_if_is_none)]
    pub permissions: Option<Vec<String>>,
    /// Only with `is_staff` in AUTHD_USER_EXTRA_FIELDS.
    #[oai(read_only, skip_serializing_if_is_none)]
    pub is_staff: Option<bool>,
    /// Only with `is_superuser` in AUTHD_USER_EXTRA_FIELDS.
    #[oai(read_only, skip_serializing_if_is_none)]
    pub is_superuser: Option<bool>,
    /// ISO 8601 UTC; only with `date_joined` in AUTHD_USER_EXTRA_FIELDS.
    #[oai(read_only, skip_serializing_if_is_none)]
    pub date_joined: Option<String>,
    /// ISO 8601 UTC, `null` before the first login; only with `last_login` in
    /// AUTHD_USER_EXTRA_FIELDS.
    #[oai(read_only, nullable, skip_serializing_if_is_none)]
    pub last_login: Option<Option<String>>,
}

impl UserView {
    /// Djoser's three fields, and the extra ones `fields` names (`grants` are loaded when
    /// `groups` or `permissions` is among them).
    pub fn show(user: Principal, grants: Option<Grants>, fields: &[UserExtraField]) -> Self {
        let wants = |field: UserExtraField| fields.contains(&field);
        let iso = |time: chrono::DateTime<chrono::Utc>| {
            time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        };
        let (groups, permissions) = match grants {
            Some(grants) => (Some(grants.groups), Some(grants.permissions)),
            None => (None, None),
        };
        Self {
            email: user.email,
            id: user.id,
            username: user.username,
            groups: groups.filter(|_| wants(UserExtraField::Groups)),
            permissions: permissions.filter(|_| wants(UserExtraField::Permissions)),
            is_staff: wants(UserExtraField::IsStaff).then_some(user.is_staff),
            is_superuser: wants(UserExtraField::IsSuperuser).then_some(user.is_superuser),
            date_joined: wants(UserExtraField::DateJoined).then(|| iso(user.date_joined)),
            last_login: wants(UserExtraField::LastLogin).then(|| user.last_login.map(iso)),
        }
    }
}

/// A new user as djoser's `user_create` serializer shows one (its own key order).
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct CreatedUser {
    pub email: String,
    pub username: String,
    pub id: i64,
}

impl From<Principal> for CreatedUser {
    fn from(user: Principal) -> Self {
        Self {
            email: user.email,
            username: user.username,
            id: user.id,
        }
    }
}

/// One login: a Djoser token, or an OAuth2 refresh family with its access tokens.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct Session {
    /// Opaque; `DELETE /token/sessions/{id}/` ends the session.
    pub id: String,
    /// `token` (a Djoser login), `oauth` (an OAuth2 refresh family) or `api_key`.
    pub kind: String,
    /// The `device_name` given at login, else the client's User-Agent (at most 64 characters).
    pub name: String,
    /// ISO 8601 UTC, such as `2026-11-23T08:15:00Z`.
    pub created: String,
    /// `null` until the first use is recorded; recorded at most once a minute.
    #[oai(nullable)]
    pub last_used: Option<String>,
    /// `null`: never expires.
    #[oai(nullable)]
    pub expires: Option<String>,
    /// The session of the token that made this request.
    pub current: bool,
}

/// A new API key. Needs the caller's `current_password`.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct ApiKeyRequest {
    /// What the key is for (at most 64 characters).
    pub name: String,
    /// Permission names (`app_label.codename`), space-separated or as a list, each one held by
    /// the caller. Omitted: everything the caller holds now (fixed at creation). An empty list:
    /// a key that only says whose it is.
    pub scope: Option<String>,
    /// Seconds the key lives; at most, and by default, AUTHD_API_KEY_MAX_TTL_SECONDS.
    pub expires_in: Option<i64>,
    pub current_password: String,
}

/// An API key as its creation answers it: `key` is shown here only.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct CreatedApiKey {
    /// Opaque; `DELETE /token/keys/{id}/` ends the key.
    pub id: String,
    pub name: String,
    /// Send it as `X-API-Key: <key>` or `Authorization: Token <key>`. Store it now: it is never
    /// shown again (only its SHA-256 digest is kept).
    pub key: String,
    /// The permissions it is limited to, space-separated (what it may do is this ∩ what its
    /// user holds at the time).
    pub scope: String,
    /// ISO 8601 UTC.
    pub expires: String,
    /// ISO 8601 UTC.
    pub created: String,
}

/// One of my API keys.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// The permissions it is limited to, space-separated.
    pub scope: String,
    /// ISO 8601 UTC.
    pub expires: String,
    /// ISO 8601 UTC.
    pub created: String,
}

#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct AuthToken {
    /// Send it back as `Authorization: Token <auth_token>`.
    pub auth_token: String,
}

/// Registration. `re_password` is required when USER_CREATE_PASSWORD_RETYPE is on; with
/// LOGIN_FIELD=email, `email` is required and unique.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct RegisterRequest {
    /// Letters, digits and @/./+/-/_ only; at most 150 characters.
    pub username: String,
    pub email: Option<String>,
    pub password: String,
    pub re_password: Option<String>,
}

/// Credentials: `username` (or `email` when LOGIN_FIELD=email) and `password`; `device_name`
/// names the session (else the User-Agent does).
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct LoginRequest {
    pub username: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub device_name: Option<String>,
}

/// Only `email` can be changed. Changing it needs `current_password` (the caller's own), except
/// for staff changing a non-staff user, unless AUTHD_EMAIL_CHANGE_REQUIRES_PASSWORD is off.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct UpdateUserRequest {
    pub email: Option<String>,
    /// The caller's password, when the change of address needs it.
    pub current_password: Option<String>,
}

/// The caller's own password, whoever is being deleted.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct DeleteUserRequest {
    pub current_password: String,
}

/// `re_new_password` is required when SET_PASSWORD_RETYPE is on.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct SetPasswordRequest {
    pub new_password: String,
    pub re_new_password: Option<String>,
    pub current_password: String,
}

/// `re_new_username` is required when SET_USERNAME_RETYPE is on (with LOGIN_FIELD=email the
/// fields are `new_email` and `re_new_email`).
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct SetUsernameRequest {
    pub current_password: String,
    pub new_username: String,
    pub re_new_username: Option<String>,
}

/// The `uid` and `token` from an activation link.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct ActivationRequest {
    pub uid: String,
    pub token: String,
}

/// The address to send a link to; the answer is the same whether it is known or not.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct EmailRequest {
    pub email: String,
}

/// `re_new_password` is required when PASSWORD_RESET_CONFIRM_RETYPE is on.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct PasswordResetConfirmRequest {
    pub uid: String,
    pub token: String,
    pub new_password: String,
    pub re_new_password: Option<String>,
}

/// `re_new_username` is required when USERNAME_RESET_CONFIRM_RETYPE is on (with
/// LOGIN_FIELD=email the fields are `new_email` and `re_new_email`).
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct UsernameResetConfirmRequest {
    pub uid: String,
    pub token: String,
    pub new_username: String,
    pub re_new_username: Option<String>,
}

/// One event of my account's audit trail.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct AccountEvent {
    /// What happened: `login.succeeded`, `login.failed`, `logout`, `password.changed`, … (the
    /// list is in docs/audit.md).
    pub kind: String,
    /// ISO 8601 UTC, such as `2026-11-23T08:15:00Z`. For `throttled` and the failed logins
    /// counted per minute: the first of that minute.
    pub time: String,
    /// The client's address; `null` for a command an operator ran.
    #[oai(nullable)]
    pub ip: Option<String>,
    /// The client's User-Agent (at most 256 characters, control characters escaped).
    #[oai(nullable)]
    pub user_agent: Option<String>,
    /// The session it concerns, as `GET /token/sessions/` names it.
    #[oai(nullable)]
    pub session_id: Option<String>,
}

/// A page of my audit trail, newest first.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct AccountEventPage {
    pub results: Vec<AccountEvent>,
    /// The next (older) page, as a path relative to this server; `null` on the last page.
    #[oai(nullable)]
    pub next: Option<String>,
}
