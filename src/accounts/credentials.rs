use chrono::Utc;

use crate::audit::What;
use crate::auth::{Caller, Invalidation};
use crate::config::LoginField;
use crate::crypto::Admission;
use crate::domain::fields::CharField;
use crate::domain::password::{self, UserContext};
use crate::domain::{ClientInfo, FieldErrors, Input, RawFields, email, messages, username};
use crate::mail::Kind;
use crate::meter::{self, Ended, Login};
use crate::sessions::{self, Issued, ScopeRequest};
use crate::state::AppState;
use crate::store::OnConstraint;
use crate::store::users::Taken;
use crate::store::{
    self, Credentials, Principal, authz, email_tokens, known_addresses, sessions as session_rows,
    users,
};
use crate::throttle;

use super::{
    Error, Result, check_password, collect, commit_change, login_field, parse_email,
    username_problems,
};

/// `POST /token/login/`: a new token, and a new session, for every successful login (one per
/// device). `device_name` names the session (else the User-Agent).
pub async fn login(
    state: &AppState,
    hashing: &Admission,
    client: &ClientInfo,
    fields: &RawFields,
) -> Result<String> {
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
    let device_name = match fields.get("device_name") {
        Input::Text(name) => Some(name.as_str()),
        _ => None,
    };
    let login = PasswordLogin {
        identifier: &identifier,
        password,
        name: sessions::name(device_name, client),
        kind: sessions::Kind::Token,
        scope: ScopeRequest::default(),
    };
    match log_in(state, hashing, client, login).await? {
        Some(Issued::Token(secret)) => Ok(secret),
        _ => Err(invalid()),
    }
}

/// A login with a password, by the Djoser endpoint or the OAuth2 password grant.
#[derive(Debug)]
pub struct PasswordLogin<'a> {
    /// The login field's value (username or email).
    pub identifier: &'a str,
    pub password: String,
    /// The session's name.
    pub name: String,
    pub kind: sessions::Kind,
    /// What the tokens are to be limited to (an OAuth2 `scope`); nothing for a Djoser login.
    pub scope: ScopeRequest,
}

/// Checks the password as Djoser's login does (an unknown or inactive account costs a full
/// hash too) and opens a session; `None` for wrong credentials. Whatever depends on the
/// password is written in one transaction that first re-checks it, and the client's address
/// becomes one the account is known to log in from.
pub async fn log_in(
    state: &AppState,
    hashing: &Admission,
    client: &ClientInfo,
    login: PasswordLogin<'_>,
) -> Result<Option<Issued>> {
    let PasswordLogin {
        identifier,
        password,
        name,
        kind,
        scope,
    } = login;
    // Lengths before work: nothing longer than any stored identifier is normalised.
    let longest = match login_field(state) {
        LoginField::Username => username::LOOKUP_MAX_LENGTH,
        LoginField::Email => email::LOOKUP_MAX_LENGTH,
    };
    if password.len() > password::MAX_BYTES
        || identifier.contains('\0')
        || identifier.chars().count() > longest
    {
        meter::login(Login::BadCredentials);
        return Ok(None);
    }
    let account = canonical_login(state, identifier);
    let found = find_account(state, identifier).await?;
    let address = client.throttle_key();
    // One lookup whether or not the account exists, so its time tells nothing.
    let known_since = Utc::now()
        - chrono::Duration::from_std(throttle::KNOWN_ADDRESS_LIFETIME)
            .unwrap_or(chrono::Duration::MAX);
    let known = known_addresses::is_known(
        &state.db,
        found.as_ref().map_or(0, |found| found.principal.id),
        &address,
        known_since,
    )
    .await?;
    let source = throttle::Source::Login {
        address: &address,
        known,
    };
    let principal = found.as_ref().map(|found| &found.principal);
    let attempt = begin_attempt(state, client, source, &account, principal)
        .await
        .inspect_err(count_refused_login)?;
    let checked = check_login(hashing, found.as_ref(), password.clone()).await;
    let (verified, outdated) = match checked {
        Err(err) => {
            count_refused_login(&err);
            attempt.abandon().await;
            return Err(err);
        }
        Ok(None) => {
            attempt.failed().await;
            log_failure(principal, &account, client, "password check failed");
            record_failed_login(state, principal, client).await?;
            return Ok(None);
        }
        Ok(Some(verified)) => {
            attempt.succeeded().await?;
            verified
        }
    };
    let rehashed = match outdated {
        true => Some(hashing.hash(password).await?),
        false => None,
    };
    let user = &verified.principal;
    let txn = store::begin_write(&state.db).await?;
    // The password may have changed, or the account been deactivated, while we hashed.
    if still_verified(&txn, user).await?.is_none() {
        meter::login(Login::BadCredentials);
        return Ok(None);
    }
    if let Some(rehashed) = rehashed {
        users::rehash(&txn, user.id, &verified.password_hash, &rehashed).await?;
    }
    // Only now, after the password: an unheld permission must not tell a stranger anything.
    let scope = match scope.is_unlimited() {
        true => None,
        false => {
            let held = authz::grants(&txn, user.id, user.is_superuser).await?;
            scope
                .resolve(&held.permissions)
                .ok_or(Error::InvalidScope)?
        }
    };
    let (method, client_row) = match kind {
        sessions::Kind::Token => ("token", None),
        sessions::Kind::OAuth { client } => ("password_grant", client),
    };
    let opening = sessions::Opening { kind, name, scope };
    let opened = sessions::open(&txn, &state.settings.tokens, user.id, opening, client).await?;
    What::LoginSucceeded {
        method,
        sessions_evicted: opened.evicted.len() as u64,
    }
    .event()
    .user(user)
    .session(&opened.public_id)
    .from(Some(client))
    .client_id(sessions::client_id_of(&txn, client_row).await?)
    .record(&txn)
    .await?;
    users::touch_last_login(&txn, user.id).await?;
    known_addresses::record(
        &txn,
        user.id,
        &address,
        Utc::now(),
        throttle::KNOWN_ADDRESSES_PER_ACCOUNT,
    )
    .await?;
    let evicted: Vec<Invalidation> = (opened.evicted.into_iter())
        .map(Invalidation::Session)
        .collect();
    state.auth.commit(txn, &evicted).await?;
    meter::login(Login::Success);
    meter::session_opened(kind.label());
    meter::sessions_ended(Ended::Evicted, evicted.len() as u64);
    tracing::info!(user_id = user.id, client_ip = %client.ip, "login succeeded");
    Ok(Some(opened.issued))
}

/// A login refused before its password could decide: by a failed-login limit, or shed.
fn count_refused_login(err: &super::Error) {
    match err {
        super::Error::Throttled(_) => meter::login(Login::Throttled),
        super::Error::Hashing(crate::crypto::HashError::Overloaded) => {
            meter::login(Login::Overloaded)
        }
        _ => {}
    }
}

/// The canonical login value `login_value` names: what the failure limits count an account
/// by, whether or not such an account exists (a 429 must not tell).
fn canonical_login(state: &AppState, login_value: &str) -> String {
    match login_field(state) {
        LoginField::Username => username::canonical(login_value),
        LoginField::Email => {
            email::canonical(login_value).unwrap_or_else(|| login_value.to_owned())
        }
    }
}

/// An account's own canonical login value.
pub(super) fn account_of(state: &AppState, user: &Principal) -> String {
    match login_field(state) {
        LoginField::Username => user.username_canonical.clone(),
        LoginField::Email => canonical_login(state, &user.email),
    }
}

/// The account `identifier` names, active or not.
async fn find_account(state: &AppState, identifier: &str) -> Result<Option<Credentials>> {
    Ok(match login_field(state) {
        LoginField::Username => {
            users::find_by_username(&state.db, &username::canonical(identifier)).await?
        }
        LoginField::Email => match email::canonical(identifier) {
            Some(canonical) => users::find_by_email(&state.db, &canonical).await?,
            None => None,
        },
    })
}

/// A password check of `account` from `source`, under the failed-password limits; a refusal
/// is logged with the account (when it exists) and the client's address.
async fn begin_attempt(
    state: &AppState,
    client: &ClientInfo,
    source: throttle::Source<'_>,
    account: &str,
    found: Option<&Principal>,
) -> Result<throttle::Attempt> {
    let begun = throttle::begin_attempt(
        &state.db,
        &state.settings.throttling.failures,
        state.settings.hashing.queue_timeout,
        source,
        account,
    )
    .await;
    if let Err(throttle::Refused::Throttled(wait, limit)) = &begun {
        // Counted per minute: a flood of refusals costs one row per account (or, for a name
        // that is no account, per client address) and limit, written at the next flush.
        let event = What::throttled(limit).event().from(Some(client));
        match found {
            Some(user) => {
                let scope = format!("{limit}|user:{}", user.id);
                event
                    .user(user)
                    .tally(&state.refusals, &state.db, &scope)
                    .await?
            }
            None => {
                let scope = format!("{limit}|ip:{}", client.throttle_key());
                event.tally(&state.refusals, &state.db, &scope).await?
            }
        }
        match found {
            Some(user) => tracing::warn!(
                user_id = user.id,
                account,
                client_ip = %client.ip,
                retry_after = wait,
                "password check throttled"
            ),
            None => tracing::warn!(
                client_ip = %client.ip,
                retry_after = wait,
                "password check throttled (no such account)"
            ),
        }
    }
    Ok(begun?)
}

/// A failed login, in the audit trail: a known account's row each time (the failed-password
/// limits bound how many), a name that is no account only counted per client address and
/// minute, without the name (it may be a password typed into the wrong field).
async fn record_failed_login(
    state: &AppState,
    found: Option<&Principal>,
    client: &ClientInfo,
) -> Result<()> {
    match found {
        Some(user) => {
            What::LoginFailed {
                reason: "invalid_credentials",
                count: 1,
            }
            .event()
            .user(user)
            .from(Some(client))
            .record(&state.db)
            .await?
        }
        None => {
            What::LoginFailed {
                reason: "unknown_account",
                count: 1,
            }
            .event()
            .from(Some(client))
            .count(&state.db, &format!("ip:{}", client.throttle_key()))
            .await?
        }
    }
    Ok(())
}

/// A failed password check, as the log tells it: the canonical account only when it exists
/// (a login value typed for no account may be a password typed into the wrong field), and the
/// client's address.
fn log_failure(found: Option<&Principal>, account: &str, client: &ClientInfo, what: &str) {
    match found {
        Some(user) => {
            tracing::warn!(user_id = user.id, account, client_ip = %client.ip, "{what}")
        }
        None => tracing::warn!(client_ip = %client.ip, "{what} (no such account)"),
    }
}

/// `found`, if it is active and `password` is its password, and whether its hash is
/// outdated. No account costs a full hash too.
async fn check_login(
    hashing: &Admission,
    found: Option<&Credentials>,
    password: String,
) -> Result<Option<(Credentials, bool)>> {
    let Some(account) = found else {
        hashing.verify_dummy(password).await?;
        meter::login(Login::BadCredentials);
        return Ok(None);
    };
    let verified = hashing
        .verify(password, account.password_hash.clone())
        .await?;
    let active = account.principal.is_active;
    match (verified.matches, active) {
        (false, _) => meter::login(Login::BadCredentials),
        (true, false) => meter::login(Login::Inactive),
        (true, true) => {}
    }
    Ok((verified.matches && active).then(|| (account.clone(), verified.outdated)))
}

/// `POST /token/logout/`: ends the caller's session (for an access token, its whole family).
pub async fn logout(state: &AppState, caller: &Caller, client: &ClientInfo) -> Result<()> {
    // A key is ended by its owner (`DELETE /token/keys/{id}/`), not by the program holding it.
    if caller.is_api_key() {
        return Err(Error::PermissionDenied);
    }
    let what = What::Logout { via: "logout" };
    if sessions::end(state, caller.session_id, what, Some(client)).await? {
        meter::sessions_ended(Ended::Logout, 1);
    }
    Ok(())
}

/// Inside a write transaction: the account, locked, if it is active and its password is still
/// the one that was verified (a rehash at a new cost keeps the version, a change bumps it).
pub(super) async fn still_verified(
    txn: &impl store::Conn,
    verified: &Principal,
) -> Result<Option<Principal>> {
    Ok(users::lock(txn, verified.id)
        .await?
        .filter(|now| now.is_active && now.password_version == verified.password_version))
}

/// `current_password` changed since it was verified: the answer a wrong one gets.
pub(super) fn current_password_changed() -> Error {
    FieldErrors::single("current_password", messages::INVALID_PASSWORD).into()
}

/// Checks `current_password` against the caller (djoser checks the requester, not the target).
/// Made with a live session of the account, it is limited per session, not per account (the
/// session is the proof): a missing field is not a check, and past the limit the check is
/// refused (429) without a hash.
pub(super) async fn current_password_problems(
    state: &AppState,
    hashing: &Admission,
    client: &ClientInfo,
    caller: &Caller,
    fields: &RawFields,
) -> Result<Option<Vec<String>>> {
    let current = match password::parse_field(fields.get("current_password")) {
        Err(problems) => return Ok(Some(problems)),
        Ok(current) => current,
    };
    // The hash as stored now: the cached caller holds none. A password changed since the
    // caller was cached fails the version check of the write that follows.
    let stored = users::credentials(&state.db, caller.user.id).await?;
    let account = account_of(state, &caller.user);
    let source = throttle::Source::Session(caller.session_id);
    let attempt = begin_attempt(state, client, source, &account, Some(&caller.user)).await?;
    let checked = match stored {
        Some(stored) => {
            (hashing.verify(current, stored.password_hash).await).map(|verified| verified.matches)
        }
        // Deleted since the token was checked: a full hash, and no match.
        None => hashing.verify_dummy(current).await.map(|()| false),
    };
    match checked {
        Err(err) => {
            attempt.abandon().await;
            Err(err.into())
        }
        Ok(true) => {
            attempt.succeeded().await?;
            Ok(None)
        }
        Ok(false) => {
            attempt.failed().await;
            log_failure(
                Some(&caller.user),
                &account,
                client,
                "current_password check failed",
            );
            What::LoginFailed {
                reason: "current_password",
                count: 1,
            }
            .event()
            .user(&caller.user)
            .session(&caller.session_public_id)
            .from(Some(client))
            .record(&state.db)
            .await?;
            Ok(Some(vec![messages::INVALID_PASSWORD.to_owned()]))
        }
    }
}

/// `POST /users/set_password/`: revokes the caller's other tokens (all of them with
/// LOGOUT_ON_PASSWORD_CHANGE), and their API keys unless
/// AUTHD_API_KEYS_SURVIVE_PASSWORD_CHANGE keeps them.
pub async fn set_password(
    state: &AppState,
    hashing: &Admission,
    client: &ClientInfo,
    caller: &Caller,
    fields: &RawFields,
) -> Result<()> {
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
    if let Some(problems) =
        current_password_problems(state, hashing, client, caller, fields).await?
    {
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

    let hash = hashing.hash(new_password).await?;
    let keep = (!djoser.logout_on_password_change).then_some(caller.session_id);
    let txn = store::begin_write(&state.db).await?;
    if still_verified(&txn, &caller.user).await?.is_none() {
        return Err(current_password_changed());
    }
    users::set_password(&txn, caller.user.id, &hash).await?;
    let revoked = match state.settings.tokens.api_keys_survive_password_change {
        true => session_rows::delete_logins_for_user(&txn, caller.user.id, keep).await?,
        false => session_rows::delete_for_user(&txn, caller.user.id, keep).await?,
    };
    What::PasswordChanged {
        by: "self",
        sessions_ended: revoked,
    }
    .event()
    .user(&caller.user)
    .session(&caller.session_public_id)
    .from(Some(client))
    .record(&txn)
    .await?;
    let confirmation = djoser
        .password_changed_email_confirmation
        .then_some(Kind::PasswordChangedConfirmation);
    commit_change(state, txn, &caller.user, confirmation).await?;
    meter::sessions_ended(Ended::PasswordChange, revoked);
    tracing::info!(
        user_id = caller.user.id,
        ended_sessions = revoked,
        "password changed"
    );
    Ok(())
}

/// `POST /users/set_username/`: `new_<LOGIN_FIELD>`; setting your own name again is "taken",
/// as in djoser.
pub async fn set_username(
    state: &AppState,
    hashing: &Admission,
    client: &ClientInfo,
    caller: &Caller,
    fields: &RawFields,
) -> Result<()> {
    let field = login_field(state).name();
    let new_field = format!("new_{field}");
    let retype_field = format!("re_new_{field}");
    let retype = state.settings.djoser.set_username_retype;
    let mut errors = FieldErrors::new();

    if let Some(problems) =
        current_password_problems(state, hashing, client, caller, fields).await?
    {
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
    let Some(user) = still_verified(&txn, &caller.user).await? else {
        return Err(current_password_changed());
    };
    let by = Renamer {
        via: "set_username",
        session: Some(&caller.session_public_id),
        client: Some(client),
    };
    rename(txn, state, &new_field, user, new_value, by).await
}

/// Who renames an account, for the audit trail: the account itself with a session
/// (`set_username`), or whoever holds a reset link (`reset_username`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Renamer<'a> {
    pub via: &'static str,
    pub session: Option<&'a str>,
    pub client: Option<&'a ClientInfo>,
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
    txn: store::Tx,
    state: &AppState,
    new_field: &str,
    user: Principal,
    value: String,
    by: Renamer<'_>,
) -> Result<()> {
    let written = match login_field(state) {
        LoginField::Username => {
            users::set_username(&txn, user.id, &value, &username::canonical(&value)).await
        }
        LoginField::Email => {
            users::set_email(&txn, user.id, &value, email::canonical(&value)).await
        }
    };
    written.on_constraint(|taken| {
        let message = match taken {
            Taken::Username => messages::USERNAME_TAKEN,
            Taken::Email => messages::EMAIL_TAKEN,
        };
        Error::from(FieldErrors::single(new_field, message))
    })?;
    let mut notified = false;
    if login_field(state) == LoginField::Email {
        // Links sent to the old address die with it, and it is told.
        email_tokens::revoke_live(&txn, user.id, None).await?;
        notified =
            super::email::send_email_change_notice(&txn, &state.mailer, &user, &value).await?;
    }
    let (renamed, what) = match login_field(state) {
        LoginField::Username => (
            Principal {
                username: value,
                ..user.clone()
            },
            What::UsernameChanged {
                via: by.via,
                previous: user.username.clone(),
            },
        ),
        LoginField::Email => (
            Principal {
                email: value,
                ..user.clone()
            },
            What::EmailChanged {
                via: by.via,
                actor_id: by.session.map(|_| user.id),
                reactivation_required: false,
            },
        ),
    };
    let mut event = what.event().user(&renamed).from(by.client);
    if let Some(session) = by.session {
        event = event.session(session);
    }
    event.record(&txn).await?;
    let confirmation = (state.settings.djoser)
        .username_changed_email_confirmation
        .then_some(Kind::UsernameChangedConfirmation);
    commit_change(state, txn, &renamed, confirmation).await?;
    if notified {
        state.mailer.wake();
    }
    Ok(())
}
