//! The account lifecycle by email: activation, resend, password and username resets, and the
//! messages other changes send. Link tokens are bound to one purpose, single use, expiring,
//! and dead once the password or email changes; only their digest is stored.

use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::audit::What;
use crate::crypto::{self, Admission};
use crate::domain::fields::CharField;
use crate::domain::{ClientInfo, FieldErrors, Input, RawFields, email, messages, password, uid};
use crate::mail::{Kind, Mailer};
use crate::state::AppState;
use crate::store::Conn;
use crate::store::entity::email_token;
use crate::store::{self, Principal, email_tokens, known_addresses, outbox, sessions, users};

use super::{Error, Result, collect, credentials};

/// What a link token may be used for (stored with the link, the request and the message).
pub use crate::store::Purpose;

impl Purpose {
    /// Which accounts a request for this purpose is for.
    pub(super) fn holders(self) -> users::Holders {
        match self {
            Purpose::Activation => users::Holders::AwaitingActivation,
            Purpose::PasswordReset | Purpose::UsernameReset => users::Holders::Active,
        }
    }

    pub(super) fn kind(self) -> Kind {
        match self {
            Purpose::Activation => Kind::Activation,
            Purpose::PasswordReset => Kind::PasswordReset,
            Purpose::UsernameReset => Kind::UsernameReset,
        }
    }

    /// The purpose of the link a message carries, if it carries one.
    fn of(kind: Kind) -> Option<Self> {
        match kind {
            Kind::Activation => Some(Purpose::Activation),
            Kind::PasswordReset => Some(Purpose::PasswordReset),
            Kind::UsernameReset => Some(Purpose::UsernameReset),
            Kind::Confirmation
            | Kind::PasswordChangedConfirmation
            | Kind::UsernameChangedConfirmation
            | Kind::EmailChangedNotice
            | Kind::ApiKeyCreatedNotice => None,
        }
    }
}

/// Ties a link to the account as it was: a password change (its version, not its hash, so a
/// rehash at a new cost keeps links alive) or a new email address kills it. Migration 4 holds
/// a frozen copy, with which it rewrote the previous release's fingerprints.
pub(super) fn fingerprint(user: &Principal) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"authd link v2\0");
    hasher.update(user.password_version.to_string().as_bytes());
    hasher.update([0]);
    hasher.update(user.email.as_bytes());
    hex::encode(hasher.finalize())
}

/// Inside a write transaction: spends the link token and returns the account, locked, if the
/// token was still unused and the account is still as it was when the link was issued (and,
/// for activation, still waiting for it). Nothing read before the transaction (before a slow
/// hash, say) is trusted.
async fn redeem(
    txn: &impl Conn,
    token: &email_token::Model,
    purpose: Purpose,
) -> Result<Option<Principal>> {
    if !email_tokens::consume(txn, token.id).await? {
        return Ok(None);
    }
    Ok(users::lock(txn, token.user_id).await?.filter(|user| {
        fingerprint(user) == token.fingerprint
            && (purpose != Purpose::Activation || awaits_activation(user))
    }))
}

/// Inactive because it never proved its address (new, or after an email change), not because
/// an operator deactivated it.
pub(super) fn awaits_activation(user: &Principal) -> bool {
    !user.is_active && user.activation_pending
}

/// Writes `kind` for `user` to the outbox inside the caller's transaction. A message with a
/// link is only recorded (kind, account, fingerprint): its link is minted when it is
/// delivered, so no working link rests in the database. Users without an address get nothing
/// (as in djoser).
pub(crate) async fn send(
    db: &impl Conn,
    mailer: &Mailer,
    kind: Kind,
    user: &Principal,
) -> Result<()> {
    if user.email.is_empty() {
        return Ok(());
    }
    match Purpose::of(kind) {
        Some(purpose) => {
            let message = outbox::LinkMessage {
                message_id: crate::mail::new_message_id(),
                kind: purpose,
                user_id: user.id,
                recipient: user.email.clone(),
                fingerprint: fingerprint(user),
            };
            outbox::enqueue_link(db, message).await?;
        }
        None => {
            if let Some(message) = mailer.compose(kind, user, None).map_err(Error::Mail)? {
                outbox::enqueue(db, message).await?;
            }
        }
    }
    Ok(())
}

/// What the mail limits key an address by: the SHA-256 of its canonical form (NFKC, case
/// folded: the form authd's unique-email rule uses), so that no spelling of one mailbox gets a
/// window or a queue place of its own. `None` for an empty address.
pub(super) fn address_key(address: &str) -> Option<String> {
    email::canonical(address).map(|canonical| hex::encode(Sha256::digest(canonical.as_bytes())))
}

/// Sign-up mail (activation, confirmation, a resent activation) to `user`, at most one per
/// address per send window, whatever the accounts and purposes naming it: nobody proved the
/// mailbox yet, so nothing else bounds how often a stranger can make authd write to it. Inside
/// the window the message is dropped (and logged); the account is made all the same, and
/// `resend_activation` works once the window has passed. Returns whether it was queued.
pub(super) async fn send_sign_up(
    db: &impl Conn,
    mailer: &Mailer,
    kind: Kind,
    user: &Principal,
) -> Result<bool> {
    let Some(key) = address_key(&user.email) else {
        return Ok(false);
    };
    if !outbox::claim_address_window(db, &key, mailer.settings().send_window).await? {
        tracing::info!(
            user_id = user.id,
            kind = kind.name(),
            "sign-up mail not sent: its address got one within the send window"
        );
        return Ok(false);
    }
    send(db, mailer, kind, user).await?;
    Ok(true)
}

/// Tells the previous address of an account that its email changed (to `new_address`, shown
/// masked), inside the caller's transaction: the address that recovers the account must never
/// move unnoticed. `before` is the account as it was. The notice carries no link. Returns
/// whether a message was queued (an account without an address gets none).
pub(super) async fn send_email_change_notice(
    db: &impl Conn,
    mailer: &Mailer,
    before: &Principal,
    new_address: &str,
) -> Result<bool> {
    let change = crate::mail::EmailChange {
        new_address_masked: email::masked(new_address),
        at: Utc::now(),
    };
    match mailer
        .compose_email_change(before, &change)
        .map_err(Error::Mail)?
    {
        Some(message) => {
            outbox::enqueue(db, message).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// The `email` field of the reset and resend serializers: required, a valid address.
fn parse_email(fields: &RawFields) -> Result<String> {
    match email::parse_field(fields.get("email"), true) {
        Ok(value) => Ok(value.unwrap_or_default()),
        Err(problems) => Err(FieldErrors::field("email", problems).into()),
    }
}

/// Addresses that match what a client typed: as typed, and as registration stores it.
pub(super) fn addresses(typed: &str) -> Vec<String> {
    let mut list = vec![typed.to_owned()];
    let normalized = email::normalize(typed);
    if normalized != typed {
        list.push(normalized);
    }
    list
}

/// `reset_password`, `reset_username`, `resend_activation`: the answer never depends on
/// whether the address is known (unless a SHOW_EMAIL_NOT_FOUND flag says so), and neither
/// does the work done before answering: the request is queued, the worker resolves it. One
/// request per kind and address waits at a time (a repeat is merged into it), and at most
/// AUTHD_EMAIL_QUEUE_LIMIT in all (past it, a request is dropped and logged).
pub async fn request_link(state: &AppState, fields: &RawFields, purpose: Purpose) -> Result<()> {
    let address = parse_email(fields)?;
    let djoser = &state.settings.djoser;
    if djoser.show_email_not_found()
        && users::find_by_address(&state.db, &addresses(&address), purpose.holders())
            .await?
            .is_empty()
    {
        return Err(Error::EmailNotFound);
    }
    if purpose == Purpose::Activation && !djoser.send_activation_email {
        return Err(Error::ActivationDisabled);
    }
    let Some(key) = address_key(&address) else {
        return Ok(());
    };
    let limit = state.settings.mail.queue_limit;
    match outbox::enqueue_request(&state.db, purpose, &address, &key, limit).await? {
        outbox::Queued::Queued => state.mailer.wake(),
        outbox::Queued::Merged => {}
        outbox::Queued::Full => tracing::warn!(
            kind = ?purpose,
            limit,
            "email request dropped: AUTHD_EMAIL_QUEUE_LIMIT requests are pending"
        ),
    }
    Ok(())
}

/// The uid and token of a link, checked in djoser's order: uid first, then the token.
enum LinkCheck {
    Valid(Principal, email_token::Model),
    /// The token was issued to this user for this purpose, but is used, expired or stale.
    Spent(Principal),
}

async fn check_link(
    state: &AppState,
    uid_input: &Input,
    token_input: &Input,
    purpose: Purpose,
) -> Result<LinkCheck> {
    let user_id = match uid_input {
        Input::Text(text) => uid::decode(text),
        _ => None,
    };
    let user = match user_id {
        Some(id) => users::find_by_id(&state.db, id).await?,
        None => None,
    };
    let Some(user) = user else {
        return Err(FieldErrors::single("uid", messages::INVALID_UID).into());
    };
    let invalid_token =
        || Error::Invalid(FieldErrors::single("token", messages::INVALID_LINK_TOKEN));
    let Input::Text(token) = token_input else {
        return Err(invalid_token());
    };
    let digest = crypto::token_digest(token.trim());
    let Some(found) = email_tokens::find(&state.db, user.id, purpose, &digest).await? else {
        return Err(invalid_token());
    };
    let usable = found.used_at.is_none()
        && found.expires_at > Utc::now()
        && found.fingerprint == fingerprint(&user);
    Ok(if usable {
        LinkCheck::Valid(user, found)
    } else {
        LinkCheck::Spent(user)
    })
}

fn required_text(fields: &RawFields, name: &str, errors: &mut FieldErrors) -> Option<String> {
    collect(errors, name, CharField::REQUIRED.parse(fields.get(name))).flatten()
}

/// `POST /users/activation/`. A second use of a link that worked answers 403 "Stale token".
pub async fn activate(state: &AppState, client: &ClientInfo, fields: &RawFields) -> Result<()> {
    let mut errors = FieldErrors::new();
    required_text(fields, "uid", &mut errors);
    required_text(fields, "token", &mut errors);
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let (_, token) = match check_link(
        state,
        fields.get("uid"),
        fields.get("token"),
        Purpose::Activation,
    )
    .await?
    {
        LinkCheck::Valid(user, _) | LinkCheck::Spent(user) if user.is_active => {
            return Err(Error::StaleToken);
        }
        LinkCheck::Valid(user, token) if awaits_activation(&user) => (user, token),
        LinkCheck::Valid(..) | LinkCheck::Spent(_) => {
            return Err(FieldErrors::single("token", messages::INVALID_LINK_TOKEN).into());
        }
    };
    let txn = store::begin_write(&state.db).await?;
    let Some(user) = redeem(&txn, &token, Purpose::Activation).await? else {
        return Err(Error::StaleToken);
    };
    users::set_activation(&txn, user.id, true, false).await?;
    let activated = Principal {
        is_active: true,
        activation_pending: false,
        ..user
    };
    What::AccountActivated { via: "link" }
        .event()
        .user(&activated)
        .from(Some(client))
        .record(&txn)
        .await?;
    if state.settings.djoser.send_confirmation_email {
        send(&txn, &state.mailer, Kind::Confirmation, &activated).await?;
    }
    txn.commit().await?;
    state.mailer.wake();
    tracing::info!(user_id = activated.id, "account activated");
    Ok(())
}

/// `POST /users/reset_password_confirm/`: djoser validates the new password before it looks
/// at the link. A reset revokes every token of the user.
pub async fn reset_password_confirm(
    state: &AppState,
    hashing: &Admission,
    client: &ClientInfo,
    fields: &RawFields,
) -> Result<()> {
    let retype = state.settings.djoser.password_reset_confirm_retype;
    let mut errors = FieldErrors::new();
    required_text(fields, "uid", &mut errors);
    required_text(fields, "token", &mut errors);
    let new_password = collect(
        &mut errors,
        "new_password",
        password::parse_field(fields.get("new_password")),
    );
    let retyped = if retype {
        collect(
            &mut errors,
            "re_new_password",
            password::parse_field(fields.get("re_new_password")),
        )
    } else {
        None
    };
    let Some(new_password) = new_password.filter(|_| errors.is_empty()) else {
        return Err(errors.into());
    };
    super::check_password("new_password", &new_password, None)?;
    if retype && retyped.as_deref() != Some(new_password.as_str()) {
        return Err(FieldErrors::non_field(messages::PASSWORD_MISMATCH).into());
    }
    let (_, token) = match check_link(
        state,
        fields.get("uid"),
        fields.get("token"),
        Purpose::PasswordReset,
    )
    .await?
    {
        LinkCheck::Valid(user, token) => (user, token),
        LinkCheck::Spent(_) => {
            return Err(FieldErrors::single("token", messages::INVALID_LINK_TOKEN).into());
        }
    };
    let hash = hashing.hash(new_password).await?;
    let txn = store::begin_write(&state.db).await?;
    let Some(user) = redeem(&txn, &token, Purpose::PasswordReset).await? else {
        return Err(FieldErrors::single("token", messages::INVALID_LINK_TOKEN).into());
    };
    users::set_password(&txn, user.id, &hash).await?;
    let revoked = sessions::delete_for_user(&txn, user.id, None).await?;
    // The owner proved the mailbox: guesses counted against the account are forgotten, and so
    // are its known addresses, one of which a thief who knew the old password may have added.
    crate::throttle::clear_account(&txn, &credentials::account_of(state, &user)).await?;
    known_addresses::forget(&txn, user.id).await?;
    What::PasswordReset {
        sessions_ended: revoked,
    }
    .event()
    .user(&user)
    .from(Some(client))
    .record(&txn)
    .await?;
    let confirmation = (state.settings.djoser)
        .password_changed_email_confirmation
        .then_some(Kind::PasswordChangedConfirmation);
    super::commit_change(state, txn, &user, confirmation).await?;
    crate::meter::sessions_ended(crate::meter::Ended::PasswordChange, revoked);
    tracing::info!(
        user_id = user.id,
        ended_sessions = revoked,
        "password reset"
    );
    Ok(())
}

/// `POST /users/reset_username_confirm/`: `uid` and `token` are read from the raw body, not
/// declared fields (djoser), so they have no "required" message of their own.
pub async fn reset_username_confirm(
    state: &AppState,
    client: &ClientInfo,
    fields: &RawFields,
) -> Result<()> {
    let field = state.settings.djoser.login_field.name();
    let new_field = format!("new_{field}");
    let retype_field = format!("re_new_{field}");
    let retype = state.settings.djoser.username_reset_confirm_retype;
    let mut errors = FieldErrors::new();
    let new_value =
        credentials::parse_new_identifier(state, fields, &new_field, &mut errors).await?;
    let retyped = if retype {
        required_text(fields, &retype_field, &mut errors)
    } else {
        None
    };
    let Some(new_value) = new_value.filter(|_| errors.is_empty()) else {
        return Err(errors.into());
    };
    if retype && retyped.as_deref() != Some(new_value.as_str()) {
        return Err(FieldErrors::non_field(messages::username_mismatch(field)).into());
    }
    let uid_input = match fields.get("uid") {
        Input::Text(text) if !text.trim().is_empty() => Input::Text(text.clone()),
        _ => Input::Missing,
    };
    let (_, token) = match check_link(
        state,
        &uid_input,
        fields.get("token"),
        Purpose::UsernameReset,
    )
    .await?
    {
        LinkCheck::Valid(user, token) => (user, token),
        LinkCheck::Spent(_) => {
            return Err(FieldErrors::single("token", messages::INVALID_LINK_TOKEN).into());
        }
    };
    let txn = store::begin_write(&state.db).await?;
    let Some(user) = redeem(&txn, &token, Purpose::UsernameReset).await? else {
        return Err(FieldErrors::single("token", messages::INVALID_LINK_TOKEN).into());
    };
    let by = credentials::Renamer {
        via: "reset_username",
        session: None,
        client: Some(client),
    };
    credentials::rename(txn, state, &new_field, user, new_value, by).await
}
