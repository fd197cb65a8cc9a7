//! The use cases behind every endpoint and command: Djoser's validation order and messages,
//! authd's token and link rules. No HTTP types here; queries go through `store`.

/// `authd` commands an operator runs: superusers, password changes.
mod admin;
/// Login, logout, password and username changes.
mod credentials;
/// The background half of the email flows: requests resolved, links minted, mail sent.
pub mod delivery;
/// The account lifecycle by email: activation, resets, confirmations.
pub mod email;
/// API keys for programs.
mod keys;
/// Registration.
mod register;
/// Reading, updating and deleting users.
mod users;

use crate::auth::Invalidation;
use crate::config::LoginField;
use crate::crypto::HashError;
use crate::domain::password::{self, UserContext};
use crate::domain::{FieldErrors, RawFields, email as address, messages, username};
use crate::mail::Kind;
use crate::mail::MailError;
use crate::state::AppState;
use crate::store::users as user_rows;
use crate::store::{DbErr, Principal, Tx};

pub use admin::{activate, change_password, create_superuser, deactivate, user_named};
pub use credentials::{PasswordLogin, log_in, login, logout, set_password, set_username};
pub use keys::{CreatedKey, create_key};
pub use register::register;
pub use users::{
    Target, delete_user, get_user, list_users, update_user, user_to_delete, user_to_update,
    with_grants,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid input")]
    Invalid(FieldErrors),
    /// Lost a race at the unique index: djoser's bare-list answer.
    #[error("unable to create account")]
    CannotCreateUser,
    /// A sign-up refused only because its username or email is taken (`Invalid` or
    /// `CannotCreateUser` inside), under AUTHD_REGISTER_CONFLICT_STATUS=409: the same refusal,
    /// as a conflict.
    #[error("username or email taken")]
    Conflict(Box<Error>),
    /// A malformed id, or another user hidden by HIDE_USERS.
    #[error("not found")]
    NotFound,
    #[error("no user matches the given query")]
    NoSuchUser,
    #[error("permission denied")]
    PermissionDenied,
    #[error("database error")]
    Database(#[from] DbErr),
    #[error("password hashing failed")]
    Hashing(#[from] HashError),
    #[error("the OS random number generator failed")]
    Random,
    /// The activation link was already used (the account is active): djoser's 403.
    #[error("stale token")]
    StaleToken,
    /// Only with a SHOW_EMAIL_NOT_FOUND flag.
    #[error("no user with that email")]
    EmailNotFound,
    /// `resend_activation` while SEND_ACTIVATION_EMAIL is off: djoser's empty 400.
    #[error("activation emails are off")]
    ActivationDisabled,
    #[error(transparent)]
    Mail(crate::mail::MailError),
    /// Too many failed password checks: try again in this many seconds (DRF's 429).
    #[error("throttled for {0} s")]
    Throttled(u64),
    /// AUTHD_TOKEN_LIMIT_POLICY=deny, and the user has as many sessions as allowed: knox's 403.
    #[error("token limit reached")]
    TokenLimit,
    /// The user holds AUTHD_API_KEYS_PER_USER live API keys: the same 403.
    #[error("API key limit reached")]
    KeyLimit,
    /// A scope asking for a permission that is unknown, not held, or beyond the client's set:
    /// RFC 6749's `invalid_scope`, answered only after a right password.
    #[error("invalid scope")]
    InvalidScope,
}

impl From<crate::sessions::SessionError> for Error {
    fn from(err: crate::sessions::SessionError) -> Self {
        match err {
            crate::sessions::SessionError::LimitReached => Error::TokenLimit,
            crate::sessions::SessionError::KeyLimitReached => Error::KeyLimit,
            crate::sessions::SessionError::Random => Error::Random,
            crate::sessions::SessionError::Database(err) => Error::Database(err),
        }
    }
}

impl From<crate::throttle::Refused> for Error {
    fn from(err: crate::throttle::Refused) -> Self {
        match err {
            crate::throttle::Refused::Throttled(wait, _) => Error::Throttled(wait),
            // Nothing was checked and nothing counted: the overload answer, never a 429.
            crate::throttle::Refused::Busy => Error::Hashing(HashError::Overloaded),
            crate::throttle::Refused::Database(err) => Error::Database(err),
        }
    }
}

impl From<FieldErrors> for Error {
    fn from(errors: FieldErrors) -> Self {
        Error::Invalid(errors)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Commits a change to an account: with it the message `message` names (a confirmation, an
/// activation), then every cached token of the account forgotten on every instance, and the
/// mail worker woken.
async fn commit_change(
    state: &AppState,
    txn: Tx,
    user: &Principal,
    message: Option<Kind>,
) -> Result<()> {
    if let Some(kind) = message {
        email::send(&txn, &state.mailer, kind, user).await?;
    }
    state
        .auth
        .commit(txn, &[Invalidation::User(user.id)])
        .await?;
    if message.is_some() {
        state.mailer.wake();
    }
    Ok(())
}

fn login_field(state: &AppState) -> LoginField {
    state.settings.djoser.login_field
}

fn email_login(state: &AppState) -> bool {
    login_field(state) == LoginField::Email
}

fn email_canonical(state: &AppState, email: &str) -> Option<String> {
    if email_login(state) {
        address::canonical(email)
    } else {
        None
    }
}

/// The `email` field as djoser's user serializers declare it; with email login it must be
/// present on registration, may never be blank, and is unique.
async fn parse_email(
    state: &AppState,
    fields: &RawFields,
    required: bool,
    owner: Option<i64>,
) -> Result<Result<Option<String>, Vec<String>>> {
    let parsed = address::parse_field(fields.get("email"), required);
    let Ok(Some(value)) = &parsed else {
        return Ok(parsed);
    };
    // Lowercasing the domain can lengthen it ("İ" is two characters in lower case).
    if address::normalize(value).chars().count() > address::MAX_LENGTH {
        return Ok(Err(vec![messages::max_length(address::MAX_LENGTH)]));
    }
    if email_login(state) {
        if address::canonical(value)
            .is_some_and(|canonical| canonical.chars().count() > address::CANONICAL_MAX_LENGTH)
        {
            return Ok(Err(vec![messages::INVALID_EMAIL.to_owned()]));
        }
        if value.is_empty() {
            return Ok(Err(vec![messages::BLANK.to_owned()]));
        }
        if let Some(canonical) = address::canonical(value)
            && !value.contains('\0')
            && user_rows::email_taken(&state.db, &canonical, owner).await?
        {
            return Ok(Err(vec![messages::EMAIL_TAKEN.to_owned()]));
        }
    }
    Ok(parsed)
}

async fn username_problems(state: &AppState, name: &str) -> Result<Vec<String>> {
    let taken = username::can_query(name)
        && user_rows::username_taken(&state.db, &username::canonical(name)).await?;
    Ok(username::field_messages(name, taken))
}

/// Django's validators on a new password; failures belong to `field`.
pub(crate) fn check_password(
    field: &str,
    password: &str,
    user: Option<UserContext<'_>>,
) -> Result<()> {
    let problems = password::validate(password, user);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(FieldErrors::field(field, problems).into())
    }
}

/// A parsed field's value, or its problems added to `errors`.
pub(crate) fn collect<T>(
    errors: &mut FieldErrors,
    field: &str,
    parsed: Result<T, Vec<String>>,
) -> Option<T> {
    match parsed {
        Ok(value) => Some(value),
        Err(problems) => {
            errors.extend(field, problems);
            None
        }
    }
}

impl From<MailError> for Error {
    fn from(err: MailError) -> Self {
        Error::Mail(err)
    }
}
