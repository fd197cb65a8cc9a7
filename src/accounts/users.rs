use crate::audit::{Record, What};
use crate::auth::Caller;
use crate::config::UserExtraField;
use crate::crypto::Admission;
use crate::domain::{ClientInfo, FieldErrors, RawFields, messages};
use crate::mail::Kind;
use crate::state::AppState;
use crate::store::OnConstraint;
use crate::store::authz::{self, Grants};
use crate::store::users::Taken;
use crate::store::{self, Conn, Principal, email_tokens, users};

use super::credentials::{current_password_changed, current_password_problems, still_verified};
use super::email::{awaits_activation, send_email_change_notice};
use super::{Error, Result, collect, commit_change, email_canonical, email_login, parse_email};

/// `GET /users/`: everyone for staff or without HIDE_USERS, otherwise only the caller.
pub async fn list_users(state: &AppState, caller: &Caller) -> Result<Vec<Principal>> {
    if state.settings.djoser.hide_users && !caller.acts_as_staff() {
        return Ok(vec![Principal::clone(&caller.user)]);
    }
    Ok(users::list(&state.db).await?)
}

/// Which user a `/users/…` request is about.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Me,
    Id(&'a str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Retrieve,
    Update,
    Destroy,
}

/// DRF's `get_object` plus djoser's `CurrentUserOrAdmin` and HIDE_USERS conversion.
async fn resolve(
    state: &AppState,
    caller: &Caller,
    target: Target<'_>,
    action: Action,
) -> Result<Principal> {
    let id_text = match target {
        Target::Me => return Ok(Principal::clone(&caller.user)),
        Target::Id(id_text) => id_text,
    };
    let id: i64 = id_text.trim().parse().map_err(|_| Error::NotFound)?;
    let user = users::find_by_id(&state.db, id)
        .await?
        .ok_or(Error::NoSuchUser)?;
    if user.id == caller.user.id {
        return Ok(user);
    }
    if caller.acts_as_staff() {
        if action != Action::Retrieve && !may_take_over(&state.db, caller, &user).await? {
            return Err(Error::PermissionDenied);
        }
        return Ok(user);
    }
    if state.settings.djoser.hide_users && action != Action::Destroy {
        return Err(Error::NotFound);
    }
    Err(Error::PermissionDenied)
}

/// Staff write another user's record only when that is no escalation ([`authz::Actor::may_take_over`]),
/// checked again inside the write's transaction.
async fn may_take_over(db: &impl Conn, caller: &Caller, target: &Principal) -> Result<bool> {
    if target.id == caller.user.id {
        return Ok(true);
    }
    crate::authz::may_take_over(db, caller.user.id, target)
        .await
        .map_err(|err| match err {
            crate::authz::Error::Database(err) => Error::Database(err),
            _ => Error::PermissionDenied,
        })
}

/// Each user with their groups and effective permissions when AUTHD_USER_EXTRA_FIELDS shows
/// either: the caller's from the guard's cache, anyone else's from the database.
pub async fn with_grants(
    state: &AppState,
    caller: &Caller,
    users: Vec<Principal>,
) -> Result<Vec<(Principal, Option<Grants>)>> {
    let shown = &state.settings.user_extra_fields;
    if !shown.contains(&UserExtraField::Groups) && !shown.contains(&UserExtraField::Permissions) {
        return Ok(users.into_iter().map(|user| (user, None)).collect());
    }
    let mut answered = Vec::with_capacity(users.len());
    for user in users {
        // A scoped token's own record shows what the token may do: no groups, and the scope ∩
        // what the user holds.
        let grants = if user.id == caller.user.id && caller.is_scoped() {
            Grants {
                groups: Vec::new(),
                permissions: caller.effective_permissions(),
            }
        } else if user.id == caller.user.id {
            Grants::clone(&caller.grants)
        } else if user.is_active {
            authz::grants(&state.db, user.id, user.is_superuser).await?
        } else {
            Grants::default()
        };
        answered.push((user, Some(grants)));
    }
    Ok(answered)
}

pub async fn get_user(state: &AppState, caller: &Caller, target: Target<'_>) -> Result<Principal> {
    resolve(state, caller, target, Action::Retrieve).await
}

/// The user a `PUT`/`PATCH` may change (404/403 come before the body is read).
pub async fn user_to_update(
    state: &AppState,
    caller: &Caller,
    target: Target<'_>,
) -> Result<Principal> {
    resolve(state, caller, target, Action::Update).await
}

/// Whether changing `target`'s email needs the caller's `current_password`: the email recovers
/// the account, so a stolen token alone must not move it (AUTHD_EMAIL_CHANGE_REQUIRES_PASSWORD).
/// Staff changing a non-staff account need none, as in Djoser; a staff or superuser account's
/// address needs the caller's own password, whoever the caller is.
fn change_needs_password(state: &AppState, caller: &Caller, target: &Principal) -> bool {
    state.settings.email_change_requires_password
        && !(caller.user.is_staff && !target.is_staff && !target.is_superuser)
}

/// `PUT`/`PATCH` on a user: `email` is the only writable field; it is not normalised here
/// (Django does not either). A change of address may need `current_password`
/// ([`change_needs_password`]): missing or wrong, it is a field error beside the email's own,
/// under the failed-password limits. The previous address is told of every change.
pub async fn update_user(
    state: &AppState,
    client: &ClientInfo,
    caller: &Caller,
    target: Principal,
    fields: &RawFields,
) -> Result<Principal> {
    let mut errors = FieldErrors::new();
    // djoser's `read_only_fields`: the login field changes only through set_username, which
    // asks for the password.
    let (new_email, changes_address) = match email_login(state) {
        true => (None, false),
        false => {
            let parsed = parse_email(state, fields, false, Some(target.id)).await?;
            // An invalid address is a change too: the password's problems are reported beside it.
            let changes = match &parsed {
                Ok(value) => value.as_ref().is_some_and(|value| *value != target.email),
                Err(_) => true,
            };
            (collect(&mut errors, "email", parsed).flatten(), changes)
        }
    };
    let mut verified = false;
    if changes_address && change_needs_password(state, caller, &target) {
        let hashing = state.hasher.admit()?;
        match current_password_problems(state, &hashing, client, caller, fields).await? {
            Some(problems) => errors.extend("current_password", problems),
            None => verified = true,
        }
    }
    errors.into_result()?;
    let send_activation = state.settings.djoser.send_activation_email;
    let txn = store::begin_write(&state.db).await?;
    if verified && still_verified(&txn, &caller.user).await?.is_none() {
        return Err(current_password_changed());
    }
    // The account as it is now, not as a cached caller remembers it.
    let mut user = users::lock(&txn, target.id)
        .await?
        .ok_or(Error::NoSuchUser)?;
    if !may_take_over(&txn, caller, &user).await? {
        return Err(Error::PermissionDenied);
    }
    let mut notified = false;
    if let Some(new_email) = new_email.filter(|new_email| *new_email != user.email) {
        // The address changed since it was compared, or the account became staff.
        if !verified && change_needs_password(state, caller, &user) {
            return Err(
                FieldErrors::single("current_password", crate::domain::messages::REQUIRED).into(),
            );
        }
        let before = user.clone();
        let canonical = email_canonical(state, &new_email);
        users::set_email(&txn, user.id, &new_email, canonical.clone())
            .await
            .on_constraint(|_: Taken| {
                Error::from(FieldErrors::single("email", messages::EMAIL_TAKEN))
            })?;
        user.email = new_email;
        user.email_canonical = canonical;
        // Links sent to the old address die with it (even if it comes back later).
        email_tokens::revoke_live(&txn, user.id, None).await?;
        notified = send_email_change_notice(&txn, &state.mailer, &before, &user.email).await?;
        // With activation by email, a new address must be proven before the account works.
        if send_activation {
            users::set_activation(&txn, user.id, false, true).await?;
            user.is_active = false;
            user.activation_pending = true;
        }
        let what = What::EmailChanged {
            via: "update",
            actor_id: Some(caller.user.id),
            reactivation_required: send_activation,
        };
        by_caller(what.event().user(&user), caller, client)
            .record(&txn)
            .await?;
        tracing::info!(user_id = user.id, by = caller.user.id, "email changed");
    }
    // djoser sends whenever the updated user ends up inactive, changed address or not; an
    // account an operator deactivated is not waiting for activation and gets nothing.
    let activation = (send_activation && awaits_activation(&user)).then_some(Kind::Activation);
    commit_change(state, txn, &user, activation).await?;
    if notified {
        state.mailer.wake();
    }
    Ok(user)
}

/// An event made by `caller` from `client`, about the user already set on it: the caller's
/// session is named only when the event is about the caller (staff's sessions are their own).
fn by_caller(event: Record, caller: &Caller, client: &ClientInfo) -> Record {
    let own = event.is_about(caller.user.id);
    let event = event.from(Some(client));
    match own {
        true => event.session(&caller.session_public_id),
        false => event,
    }
}

/// The user a `DELETE` may remove (404/403 come before the body is read).
pub async fn user_to_delete(
    state: &AppState,
    caller: &Caller,
    target: Target<'_>,
) -> Result<Principal> {
    resolve(state, caller, target, Action::Destroy).await
}

/// `DELETE` on a user; the cascade removes the target's tokens.
pub async fn delete_user(
    state: &AppState,
    hashing: &Admission,
    client: &ClientInfo,
    caller: &Caller,
    user: Principal,
    fields: &RawFields,
) -> Result<()> {
    if let Some(problems) =
        current_password_problems(state, hashing, client, caller, fields).await?
    {
        return Err(FieldErrors::field("current_password", problems).into());
    }
    let txn = store::begin_write(&state.db).await?;
    if still_verified(&txn, &caller.user).await?.is_none() {
        return Err(current_password_changed());
    }
    let user = users::lock(&txn, user.id).await?.ok_or(Error::NoSuchUser)?;
    if !may_take_over(&txn, caller, &user).await? {
        return Err(Error::PermissionDenied);
    }
    users::delete(&txn, user.id).await?;
    let what = What::AccountDeleted {
        actor_id: caller.user.id,
    };
    by_caller(what.event().user(&user), caller, client)
        .record(&txn)
        .await?;
    commit_change(state, txn, &user, None).await?;
    tracing::info!(user_id = user.id, by = caller.user.id, "user deleted");
    Ok(())
}
