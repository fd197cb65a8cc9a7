use super::{
    Error, Result, check_password, collect, email_canonical, email_login, parse_email,
    username_problems,
};
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
        return Err(errors.into());
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
        .on_constraint(|_: Taken| Error::CannotCreateUser)?;
    if activation {
        send_sign_up(&txn, &state.mailer, Kind::Activation, &user).await?;
    } else if creator == Creator::SignUp && djoser.send_confirmation_email {
        send_sign_up(&txn, &state.mailer, Kind::Confirmation, &user).await?;
    }
    txn.commit().await?;
    state.mailer.wake();
    Ok(user)
}
