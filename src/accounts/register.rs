use super::{
    Error, Result, check_password, collect, email_canonical, email_login, parse_email,
    username_problems,
};
use crate::config::ConflictStatus;
use crate::crypto::Admission;
use crate::domain::password::{self, UserContext};
use crate::domain::{FieldErrors, RawFields, email, messages, username};
use crate::mail::Kind;
use crate::state::AppState;
use crate::store::OnConstraint;
use crate::store::users::Taken;
use crate::store::{self, Principal, users};

use super::email::send_sign_up;

/// Who creates the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Creator {
    /// `POST /users/`: djoser's sign-up, with activation or confirmation by email.
    SignUp,
    /// `authd createsuperuser`: an active staff superuser, as Django's command makes, and no
    /// mail.
    Operator,
}

/// The field errors' refusal: a conflict if every one of them is a username or email already
/// taken (see [`conflict`]).
fn refuse(state: &AppState, creator: Creator, errors: FieldErrors) -> Error {
    let taken = |field: &str, message: &str| {
        (field == "username" && message == messages::USERNAME_TAKEN)
            || (field == "email" && message == messages::EMAIL_TAKEN)
    };
    let only_taken = !errors.is_empty()
        && errors
            .iter()
            .all(|(field, list)| list.iter().all(|message| taken(field, message)));
    if only_taken {
        conflict(state, creator, errors.into())
    } else {
        errors.into()
    }
}

/// A sign-up refused because what it asked for is taken: a conflict under
/// AUTHD_REGISTER_CONFLICT_STATUS=409, Djoser's refusal otherwise (and for an operator's
/// command, which has no status).
fn conflict(state: &AppState, creator: Creator, refusal: Error) -> Error {
    match (creator, state.settings.register_conflict_status) {
        (Creator::SignUp, ConflictStatus::Conflict) => Error::Conflict(Box::new(refusal)),
        _ => refusal,
    }
}

/// `POST /users/`.
pub async fn register(
    state: &AppState,
    hashing: &Admission,
    fields: &RawFields,
) -> Result<Principal> {
    create(state, hashing, fields, Creator::SignUp).await
}

/// Registration's rules, in djoser's order, for whoever creates the account.
pub(super) async fn create(
    state: &AppState,
    hashing: &Admission,
    fields: &RawFields,
    creator: Creator,
) -> Result<Principal> {
    let retype = state.settings.djoser.user_create_password_retype;
    let mut errors = FieldErrors::new();

    // An account that must activate by email, or log in with it, needs an address.
    let djoser = &state.settings.djoser;
    let activation = creator == Creator::SignUp && djoser.send_activation_email;
    let email_required = email_login(state) || activation;
    let email = parse_email(state, fields, email_required, None).await?;
    if let Err(problems) = &email {
        errors.extend("email", problems.clone());
    }
    let name = match username::parse_text(fields.get("username")) {
        Ok(name) => {
            let problems = username_problems(state, &name).await?;
            if problems.is_empty() {
                Some(name)
            } else {
                errors.extend("username", problems);
                None
            }
        }
        Err(problems) => {
            errors.extend("username", problems);
            None
        }
    };
    let password = collect(
        &mut errors,
        "password",
        password::parse_field(fields.get("password")),
    );
    let retyped = if retype {
        collect(
            &mut errors,
            "re_password",
            password::parse_field(fields.get("re_password")),
        )
    } else {
        None
    };
    let (true, Ok(email), Some(name), Some(password)) = (errors.is_empty(), email, name, password)
    else {
        return Err(refuse(state, creator, errors));
    };
    let email = email.unwrap_or_default();

    check_password(
        "password",
        &password,
        Some(UserContext {
            username: &name,
            email: &email,
        }),
    )?;
    if retype && retyped.as_deref() != Some(password.as_str()) {
        return Err(FieldErrors::non_field(messages::PASSWORD_MISMATCH).into());
    }

    let password_hash = hashing.hash(password).await?;
    let email = email::normalize(&email);
    let new_user = users::NewUser {
        username: username::normalize(&name),
        username_canonical: username::canonical(&name),
        email_canonical: email_canonical(state, &email),
        email,
        password_hash,
        is_active: !activation,
        activation_pending: activation,
        is_staff: creator == Creator::Operator,
        is_superuser: creator == Creator::Operator,
    };
    let txn = store::begin_write(&state.db).await?;
    let user = users::insert(&txn, new_user)
        .await
        .on_constraint(|_: Taken| conflict(state, creator, Error::CannotCreateUser))?;
    if activation {
        send_sign_up(&txn, &state.mailer, Kind::Activation, &user).await?;
    } else if creator == Creator::SignUp && djoser.send_confirmation_email {
        send_sign_up(&txn, &state.mailer, Kind::Confirmation, &user).await?;
    }
    txn.commit().await?;
    state.mailer.wake();
    Ok(user)
}
