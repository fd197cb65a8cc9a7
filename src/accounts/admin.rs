use crate::audit::What;
use crate::domain::password::{self, UserContext};
use crate::domain::{FieldErrors, RawFields, username};
use crate::state::AppState;
use crate::store::{self, Principal, email_tokens, sessions, users};

use super::register::{Creator, create};
use super::{Error, Result, check_password, commit_change};
use crate::meter::{self, Ended};

/// `authd createsuperuser`: the same rules as registration; an active staff superuser.
pub async fn create_superuser(
    state: &AppState,
    name: &str,
    email_address: &str,
    password: &str,
) -> Result<Principal> {
    let fields = RawFields::from_pairs([
        ("username", name),
        ("email", email_address),
        ("password", password),
        ("re_password", password),
    ]);
    create(state, &state.hasher.admit()?, &fields, Creator::Operator).await
}

/// The account named `name` now, for the operator's commands.
pub async fn user_named(state: &AppState, name: &str) -> Result<Principal> {
    find(state, name).await
}

async fn find(state: &AppState, name: &str) -> Result<Principal> {
    users::find_by_username(&state.db, &username::canonical(name))
        .await?
        .map(|found| found.principal)
        .ok_or(Error::NoSuchUser)
}

/// `authd changepassword`: the validators apply; every token of the user is revoked.
pub async fn change_password(state: &AppState, name: &str, new_password: &str) -> Result<()> {
    let user = find(state, name).await?;
    let new_password = password::parse_field(&crate::domain::Input::Text(new_password.to_owned()))
        .map_err(|problems| Error::Invalid(FieldErrors::field("password", problems)))?;
    check_password(
        "password",
        &new_password,
        Some(UserContext {
            username: &user.username,
            email: &user.email,
        }),
    )?;
    let hash = state.hasher.admit()?.hash(new_password).await?;
    let txn = store::begin_write(&state.db).await?;
    users::set_password(&txn, user.id, &hash).await?;
    let ended = sessions::delete_for_user(&txn, user.id, None).await?;
    What::PasswordChanged {
        by: "operator",
        sessions_ended: ended,
    }
    .event()
    .user(&user)
    .record(&txn)
    .await?;
    commit_change(state, txn, &user, None).await?;
    meter::sessions_ended(Ended::PasswordChange, ended);
    Ok(())
}

/// `authd deactivate`: the account can no longer log in, and cannot reactivate itself by
/// email; every token and every outstanding link dies, on every running instance at once.
pub async fn deactivate(state: &AppState, name: &str) -> Result<()> {
    let user = find(state, name).await?;
    let txn = store::begin_write(&state.db).await?;
    users::set_activation(&txn, user.id, false, false).await?;
    let revoked = sessions::delete_for_user(&txn, user.id, None).await?;
    email_tokens::revoke_live(&txn, user.id, None).await?;
    What::AccountDeactivated {
        sessions_ended: revoked,
    }
    .event()
    .user(&user)
    .record(&txn)
    .await?;
    commit_change(state, txn, &user, None).await?;
    meter::sessions_ended(Ended::Deactivated, revoked);
    tracing::info!(
        user_id = user.id,
        ended_sessions = revoked,
        "account deactivated"
    );
    Ok(())
}

/// `authd activate`: the account may log in again (whether it was deactivated or still
/// waiting for activation by email).
pub async fn activate(state: &AppState, name: &str) -> Result<()> {
    let user = find(state, name).await?;
    let txn = store::begin_write(&state.db).await?;
    users::set_activation(&txn, user.id, true, false).await?;
    What::AccountActivated { via: "operator" }
        .event()
        .user(&user)
        .record(&txn)
        .await?;
    commit_change(state, txn, &user, None).await?;
    tracing::info!(user_id = user.id, "account activated by an operator");
    Ok(())
}
