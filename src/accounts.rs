//! The use cases behind every endpoint and command: Djoser's validation order and messages,
//! authd's token rules. No HTTP types here; queries go through `store`.

use std::sync::Arc;

use sea_orm::DbErr;

use crate::config::LoginField;
use crate::crypto::{self, HashError};
use crate::domain::fields::CharField;
use crate::domain::password::{self, UserContext};
use crate::domain::{FieldErrors, RawFields, email, messages, username};
use crate::email_flows;
use crate::mail::Kind;
use crate::state::AppState;
use crate::store::{self, User, tokens, users};
use crate::token_cache::Invalidation;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid input")]
    Invalid(FieldErrors),
    /// Lost a race at the unique index: djoser's bare-list answer.
    #[error("unable to create account")]
    CannotCreateUser,
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
}

impl From<FieldErrors> for Error {
    fn from(errors: FieldErrors) -> Self {
        Error::Invalid(errors)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A request authenticated by a token: the user and the token that was presented.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub token_id: i64,
    /// SHA-256 of the presented token (what the database stores; not a secret).
    pub token_digest: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenRejected {
    #[error("invalid token")]
    Invalid,
    #[error("user inactive or deleted")]
    Inactive,
    #[error("database error")]
    Database(#[from] DbErr),
}

/// The guard: the token's SHA-256 digest, looked up in memory or with one indexed query
/// joined to its user. Only active users' tokens are kept in memory.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Arc<Caller>, TokenRejected> {
    if !token.starts_with(crypto::TOKEN_PREFIX) {
        return Err(TokenRejected::Invalid);
    }
    let digest = crypto::token_digest(token);
    if let Some(caller) = state.token_cache.get(&digest) {
        return Ok(caller);
    }
    let (token, user) = tokens::find_with_user(&state.db, &digest)
        .await?
        .ok_or(TokenRejected::Invalid)?;
    if !user.is_active {
        return Err(TokenRejected::Inactive);
    }
    let caller = Arc::new(Caller {
        user,
        token_id: token.id,
        token_digest: digest.clone(),
    });
    state.token_cache.insert(digest, Arc::clone(&caller));
    Ok(caller)
}

/// Drops what memory holds about a user or a token, here and (PostgreSQL) on every other
/// instance. Called after every change that revokes a token or alters a user.
pub(crate) async fn forget(state: &AppState, what: Invalidation) {
    what.apply(&state.token_cache);
    if let Err(err) = store::notify(&state.db, Invalidation::CHANNEL, &what.payload()).await {
        tracing::error!(error = %err, "could not tell other instances to drop cached tokens");
    }
}

fn login_field(state: &AppState) -> LoginField {
    state.settings.djoser.login_field
}

fn email_login(state: &AppState) -> bool {
    login_field(state) == LoginField::Email
}

fn email_canonical(state: &AppState, email: &str) -> Option<String> {
    if email_login(state) {
        email::canonical(email)
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
    let parsed = email::parse_field(fields.get("email"), required);
    let Ok(Some(value)) = &parsed else {
        return Ok(parsed);
    };
    if email_login(state) {
        if value.is_empty() {
            return Ok(Err(vec![messages::BLANK.to_owned()]));
        }
        if let Some(canonical) = email::canonical(value)
            && !value.contains('\0')
            && users::email_taken(&state.db, &canonical, owner).await?
        {
            return Ok(Err(vec![messages::EMAIL_TAKEN.to_owned()]));
        }
    }
    Ok(parsed)
}

async fn username_problems(state: &AppState, name: &str) -> Result<Vec<String>> {
    let taken = username::can_query(name)
        && users::username_taken(&state.db, &username::canonical(name)).await?;
    Ok(username::field_messages(name, taken))
}

/// `POST /users/`.
pub async fn register(state: &AppState, fields: &RawFields) -> Result<User> {
    let retype = state.settings.djoser.user_create_password_retype;
    let mut errors = FieldErrors::new();

    // An account that must activate by email, or log in with it, needs an address.
    let djoser = &state.settings.djoser;
    let email_required = email_login(state) || djoser.send_activation_email;
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

    let password_hash = state.hasher.hash(password).await?;
    let email = email::normalize(&email);
    let new_user = users::NewUser {
        username: username::normalize(&name),
        username_canonical: username::canonical(&name),
        email_canonical: email_canonical(state, &email),
        email,
        password_hash,
        is_active: !djoser.send_activation_email,
        is_staff: false,
        is_superuser: false,
    };
    let txn = store::begin_write(&state.db).await?;
    let user = match users::insert(&txn, new_user).await {
        Ok(user) => user,
        Err(err) if store::is_unique_violation(&err) => return Err(Error::CannotCreateUser),
        Err(err) => return Err(err.into()),
    };
    if djoser.send_activation_email {
        email_flows::send(&txn, state, Kind::Activation, &user).await?;
    } else if djoser.send_confirmation_email {
        email_flows::send(&txn, state, Kind::Confirmation, &user).await?;
    }
    txn.commit().await?;
    state.mailer.wake();
    Ok(user)
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

/// `POST /token/login/`: a new token for every successful login (one per device).
pub async fn login(state: &AppState, fields: &RawFields) -> Result<String> {
    let field = login_field(state).name();
    let mut errors = FieldErrors::new();
    let password = collect(
        &mut errors,
        "password",
        CharField::OPTIONAL.parse(fields.get("password")),
    );
    let identifier = collect(
        &mut errors,
        field,
        CharField::OPTIONAL.parse(fields.get(field)),
    );
    errors.into_result()?;
    let invalid = || Error::Invalid(FieldErrors::non_field(messages::INVALID_CREDENTIALS));

    let (Some(Some(password)), Some(Some(identifier))) = (password, identifier) else {
        return Err(invalid());
    };
    if password.len() > password::MAX_BYTES || identifier.contains('\0') {
        return Err(invalid());
    }
    let found = match login_field(state) {
        LoginField::Username => {
            users::find_by_username(&state.db, &username::canonical(&identifier)).await?
        }
        LoginField::Email => match email::canonical(&identifier) {
            Some(canonical) => users::find_by_email(&state.db, &canonical).await?,
            None => None,
        },
    };
    let Some(user) = found else {
        state.hasher.verify_dummy(password).await?;
        return Err(invalid());
    };
    let verified = state
        .hasher
        .verify(password.clone(), user.password.clone())
        .await?;
    if !verified.matches || !user.is_active {
        return Err(invalid());
    }
    if verified.outdated {
        let rehashed = state.hasher.hash(password).await?;
        users::set_password(&state.db, user.id, &rehashed).await?;
    }
    let token = crypto::generate_token().map_err(|_| Error::Random)?;
    let txn = store::begin_write(&state.db).await?;
    tokens::insert(&txn, user.id, token.digest.clone()).await?;
    users::touch_last_login(&txn, user.id).await?;
    txn.commit().await?;
    tracing::info!(user_id = user.id, "login succeeded");
    Ok(token.secret)
}

/// `POST /token/logout/`: revokes the presented token only.
pub async fn logout(state: &AppState, caller: &Caller) -> Result<()> {
    tokens::delete(&state.db, caller.token_id).await?;
    forget(state, Invalidation::Token(caller.token_digest.clone())).await;
    Ok(())
}

/// `GET /users/`: everyone for staff or without HIDE_USERS, otherwise only the caller.
pub async fn list_users(state: &AppState, caller: &Caller) -> Result<Vec<User>> {
    if state.settings.djoser.hide_users && !caller.user.is_staff {
        return Ok(vec![caller.user.clone()]);
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
) -> Result<User> {
    let id_text = match target {
        Target::Me => return Ok(caller.user.clone()),
        Target::Id(id_text) => id_text,
    };
    let id: i64 = id_text.trim().parse().map_err(|_| Error::NotFound)?;
    let user = users::find_by_id(&state.db, id)
        .await?
        .ok_or(Error::NoSuchUser)?;
    if caller.user.is_staff || user.id == caller.user.id {
        return Ok(user);
    }
    if state.settings.djoser.hide_users && action != Action::Destroy {
        return Err(Error::NotFound);
    }
    Err(Error::PermissionDenied)
}

pub async fn get_user(state: &AppState, caller: &Caller, target: Target<'_>) -> Result<User> {
    resolve(state, caller, target, Action::Retrieve).await
}

/// The user a `PUT`/`PATCH` may change (404/403 come before the body is read).
pub async fn user_to_update(state: &AppState, caller: &Caller, target: Target<'_>) -> Result<User> {
    resolve(state, caller, target, Action::Update).await
}

/// `PUT`/`PATCH` on a user: `email` is the only writable field; it is not normalised here
/// (Django does not either).
pub async fn update_user(state: &AppState, mut user: User, fields: &RawFields) -> Result<User> {
    let new_email = match parse_email(state, fields, false, Some(user.id)).await? {
        Ok(value) => value,
        Err(problems) => {
            return Err(FieldErrors::field("email", problems).into());
        }
    };
    let send_activation = state.settings.djoser.send_activation_email;
    let txn = store::begin_write(&state.db).await?;
    if let Some(new_email) = new_email.filter(|new_email| *new_email != user.email) {
        let canonical = email_canonical(state, &new_email);
        match users::set_email(&txn, user.id, &new_email, canonical.clone()).await {
            Err(err) if store::is_unique_violation(&err) => {
                return Err(FieldErrors::single("email", messages::EMAIL_TAKEN).into());
            }
            other => other?,
        }
        user.email = new_email;
        user.email_canonical = canonical;
        // With activation by email, a new address must be proven before the account works.
        if send_activation {
            users::set_active(&txn, user.id, false).await?;
            user.is_active = false;
        }
    }
    // djoser sends whenever the updated user ends up inactive, changed address or not.
    if send_activation && !user.is_active {
        email_flows::send(&txn, state, Kind::Activation, &user).await?;
    }
    txn.commit().await?;
    forget(state, Invalidation::User(user.id)).await;
    state.mailer.wake();
    Ok(user)
}

/// Checks `current_password` against the caller (djoser checks the requester, not the target).
async fn current_password_problems(
    state: &AppState,
    caller: &Caller,
    fields: &RawFields,
) -> Result<Option<Vec<String>>> {
    match password::parse_field(fields.get("current_password")) {
        Err(problems) => Ok(Some(problems)),
        Ok(current) => {
            let verified = state
                .hasher
                .verify(current, caller.user.password.clone())
                .await?;
            Ok((!verified.matches).then(|| vec![messages::INVALID_PASSWORD.to_owned()]))
        }
    }
}

/// The user a `DELETE` may remove (404/403 come before the body is read).
pub async fn user_to_delete(state: &AppState, caller: &Caller, target: Target<'_>) -> Result<User> {
    resolve(state, caller, target, Action::Destroy).await
}

/// `DELETE` on a user; the cascade removes the target's tokens.
pub async fn delete_user(
    state: &AppState,
    caller: &Caller,
    user: User,
    fields: &RawFields,
) -> Result<()> {
    if let Some(problems) = current_password_problems(state, caller, fields).await? {
        return Err(FieldErrors::field("current_password", problems).into());
    }
    users::delete(&state.db, user.id).await?;
    forget(state, Invalidation::User(user.id)).await;
    tracing::info!(user_id = user.id, by = caller.user.id, "user deleted");
    Ok(())
}

/// `POST /users/set_password/`: revokes the caller's other tokens (all of them with
/// LOGOUT_ON_PASSWORD_CHANGE).
pub async fn set_password(state: &AppState, caller: &Caller, fields: &RawFields) -> Result<()> {
    let djoser = &state.settings.djoser;
    let mut errors = FieldErrors::new();
    let new_password = collect(
        &mut errors,
        "new_password",
        password::parse_field(fields.get("new_password")),
    );
    let retyped = if djoser.set_password_retype {
        collect(
            &mut errors,
            "re_new_password",
            password::parse_field(fields.get("re_new_password")),
        )
    } else {
        None
    };
    if let Some(problems) = current_password_problems(state, caller, fields).await? {
        errors.extend("current_password", problems);
    }
    let Some(new_password) = new_password.filter(|_| errors.is_empty()) else {
        return Err(errors.into());
    };

    let context = UserContext {
        username: &caller.user.username,
        email: &caller.user.email,
    };
    check_password("new_password", &new_password, Some(context))?;
    if djoser.set_password_retype && retyped.as_deref() != Some(new_password.as_str()) {
        return Err(FieldErrors::non_field(messages::PASSWORD_MISMATCH).into());
    }

    let hash = state.hasher.hash(new_password).await?;
    let keep = (!djoser.logout_on_password_change).then_some(caller.token_id);
    let txn = store::begin_write(&state.db).await?;
    users::set_password(&txn, caller.user.id, &hash).await?;
    let revoked = tokens::delete_for_user(&txn, caller.user.id, keep).await?;
    if djoser.password_changed_email_confirmation {
        email_flows::send(&txn, state, Kind::PasswordChangedConfirmation, &caller.user).await?;
    }
    txn.commit().await?;
    forget(state, Invalidation::User(caller.user.id)).await;
    state.mailer.wake();
    tracing::info!(
        user_id = caller.user.id,
        revoked_tokens = revoked,
        "password changed"
    );
    Ok(())
}

/// `POST /users/set_username/`: `new_<LOGIN_FIELD>`; setting your own name again is "taken",
/// as in djoser.
pub async fn set_username(state: &AppState, caller: &Caller, fields: &RawFields) -> Result<()> {
    let field = login_field(state).name();
    let new_field = format!("new_{field}");
    let retype_field = format!("re_new_{field}");
    let retype = state.settings.djoser.set_username_retype;
    let mut errors = FieldErrors::new();

    if let Some(problems) = current_password_problems(state, caller, fields).await? {
        errors.extend("current_password", problems);
    }
    let new_value = parse_new_identifier(state, fields, &new_field, &mut errors).await?;
    let retyped = if retype {
        collect(
            &mut errors,
            &retype_field,
            CharField::REQUIRED.parse(fields.get(&retype_field)),
        )
    } else {
        None
    };
    let Some(new_value) = new_value.filter(|_| errors.is_empty()) else {
        return Err(errors.into());
    };
    if retype && retyped.flatten().as_deref() != Some(new_value.as_str()) {
        return Err(FieldErrors::non_field(messages::username_mismatch(field)).into());
    }

    let txn = store::begin_write(&state.db).await?;
    rename(txn, state, &new_field, caller.user.clone(), new_value).await
}

/// `new_<LOGIN_FIELD>` as djoser's username serializers check it: the username rules (or the
/// email rules under LOGIN_FIELD=email), uniqueness included. Problems go into `errors`.
pub(crate) async fn parse_new_identifier(
    state: &AppState,
    fields: &RawFields,
    new_field: &str,
    errors: &mut FieldErrors,
) -> Result<Option<String>> {
    let parsed = match login_field(state) {
        LoginField::Username => match username::parse_text(fields.get(new_field)) {
            Ok(name) => {
                let problems = username_problems(state, &name).await?;
                if problems.is_empty() {
                    Ok(Some(name))
                } else {
                    Err(problems)
                }
            }
            Err(problems) => Err(problems),
        },
        LoginField::Email => {
            let mut renamed = RawFields::default();
            renamed.insert("email", fields.get(new_field).clone());
            parse_email(state, &renamed, true, None).await?
        }
    };
    Ok(collect(errors, new_field, parsed).flatten())
}

/// Gives `user` a new username (or email, under LOGIN_FIELD=email) and commits `txn`: the
/// confirmation email if asked for, then every cached token of the user forgotten. Losing a
/// race at the unique index reads as "taken".
pub(crate) async fn rename(
    txn: sea_orm::DatabaseTransaction,
    state: &AppState,
    new_field: &str,
    user: User,
    value: String,
) -> Result<()> {
    let written = match login_field(state) {
        LoginField::Username => {
            users::set_username(&txn, user.id, &value, &username::canonical(&value)).await
        }
        LoginField::Email => {
            users::set_email(&txn, user.id, &value, email::canonical(&value)).await
        }
    };
    match written {
        Err(err) if store::is_unique_violation(&err) => {
            let taken = match login_field(state) {
                LoginField::Username => messages::USERNAME_TAKEN,
                LoginField::Email => messages::EMAIL_TAKEN,
            };
            Err(FieldErrors::single(new_field, taken).into())
        }
        Err(err) => Err(err.into()),
        Ok(()) => {
            let renamed = match login_field(state) {
                LoginField::Username => User {
                    username: value,
                    ..user
                },
                LoginField::Email => User {
                    email: value,
                    ..user
                },
            };
            if state.settings.djoser.username_changed_email_confirmation {
                email_flows::send(&txn, state, Kind::UsernameChangedConfirmation, &renamed).await?;
            }
            txn.commit().await?;
            forget(state, Invalidation::User(renamed.id)).await;
            state.mailer.wake();
            Ok(())
        }
    }
}

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
    let user = register(state, &fields).await?;
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
    let hash = state.hasher.hash(new_password).await?;
    let txn = store::begin_write(&state.db).await?;
    users::set_password(&txn, user.id, &hash).await?;
    tokens::delete_for_user(&txn, user.id, None).await?;
    txn.commit().await?;
    forget(state, Invalidation::User(user.id)).await;
    Ok(())
}
