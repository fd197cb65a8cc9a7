use crate::auth::Invalidation;
use crate::domain::password::{self, UserContext};
use crate::domain::{FieldErrors, RawFields, username};
use crate::state::AppState;
use crate::store::{self, User, tokens, users};

use super::{Error, Result, check_password, register};

/// `authd createsuperuser`: the same rules as registration, then staff + superuser.
pub async fn create_superuser(
    state: &AppState,
    name: &str,
    email_address: &str,
    password: &str,
) -> Result<User> {
    let fields = RawFields::from_pairs([
        ("username", name),
        ("email", email_address),
        ("password", password),
        ("re_password", password),
    ]);
    let user = register(state, &state.hasher.admit()?, &fields).await?;
    users::set_privileges(&state.db, user.id, true, true).await?;
    Ok(User {
        is_staff: true,
        is_superuser: true,
        ..user
    })
}

/// `authd changepassword`: the validators apply; every token of the user is revoked.
pub async fn change_password(state: &AppState, name: &str, new_password: &str) -> Result<()> {
    let user = users::find_by_username(&state.db, &username::canonical(name))
        .await?
        .ok_or(Error::NoSuchUser)?;
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
    tokens::delete_for_user(&txn, user.id, None).await?;
    state
        .auth
        .commit(txn, &[Invalidation::User(user.id)])
        .await?;
    Ok(())
}
