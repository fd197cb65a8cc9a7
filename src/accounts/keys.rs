//! API keys: a program's long-lived credential, created by its person with their password,
//! limited to a scope within what that person holds, and told to their mailbox.

use chrono::Utc;

use crate::audit::What;
use crate::auth::Caller;
use crate::crypto::Admission;
use crate::domain::fields::{self, CharField};
use crate::domain::{ClientInfo, FieldErrors, Input, RawFields, messages};
use crate::mail::KeyCreated;
use crate::sessions::{self, KeyView, NewKey};
use crate::state::AppState;
use crate::store::{self, authz, outbox};

use super::credentials::{current_password_changed, current_password_problems, still_verified};
use super::{Error, Result, collect};

/// A key as its creation answers it: the only time the key itself is shown.
#[derive(Debug)]
pub struct CreatedKey {
    pub key: String,
    pub view: KeyView,
}

/// `scope`: a space-separated string (as OAuth2 sends one) or a list of names (a JSON array, or
/// a form key repeated). `None`: not sent, or an empty string (RFC 6749 treats an empty scope as
/// omitted); an empty list is a key with no permissions at all.
fn parse_scope(fields: &RawFields) -> Result<Option<Vec<String>>, Vec<String>> {
    let items = match fields.get("scope") {
        Input::Missing => return Ok(None),
        Input::Null => return Err(vec![messages::NULL.into()]),
        // A form body's repeated key is a list; a JSON string is one space-separated value.
        Input::Text(text) => match fields.list("scope") {
            Ok(Some(values)) => values,
            _ => vec![text.clone()],
        },
        _ => fields.list("scope")?.unwrap_or_default(),
    };
    let names = crate::auth::parse_scope(&items.join(" "));
    let from_string = matches!(fields.get("scope"), Input::Text(_));
    Ok(match names.is_empty() && from_string {
        true => None,
        false => Some(names),
    })
}

/// `name`: DRF's CharField, and no control characters. The name is quoted in the notice mailed to
/// the owner, so whoever creates a key (a thief who has the password) must not be able to write
/// lines of their own into that mail ("…created by the security team, no action needed").
fn parse_name(fields: &RawFields) -> Result<Option<String>, Vec<String>> {
    let name = CharField::REQUIRED
        .max_length(sessions::NAME_MAX)
        .parse(fields.get("name"))?;
    match name
        .as_deref()
        .is_some_and(|name| name.chars().any(char::is_control))
    {
        true => Err(vec![messages::CONTROL_CHARACTERS.into()]),
        false => Ok(name),
    }
}

/// The asked scope's names that `held` (sorted) does not contain, as field errors.
fn unheld(asked: &[String], held: &[String]) -> Vec<String> {
    asked
        .iter()
        .filter(|name| held.binary_search(name).is_err())
        .map(|name| messages::permission_not_held(name))
        .collect()
}

/// `POST /token/keys/`: `name`, optional `scope` (else everything the caller holds now) and
/// `expires_in` (seconds, at most AUTHD_API_KEY_MAX_TTL_SECONDS, which is also the default),
/// with the caller's `current_password` under the failed-password limits. The scope is checked
/// again, and the per-user maximum counted, inside the write that creates the key, with the
/// account locked and its password as it was verified.
pub async fn create_key(
    state: &AppState,
    hashing: &Admission,
    client: &ClientInfo,
    caller: &Caller,
    fields: &RawFields,
) -> Result<CreatedKey> {
    let settings = &state.settings.tokens;
    let max_ttl = settings.api_key_max_ttl.as_secs().min(i64::MAX as u64) as i64;
    let mut errors = FieldErrors::new();
    let name = collect(&mut errors, "name", parse_name(fields)).flatten();
    let asked = collect(&mut errors, "scope", parse_scope(fields)).flatten();
    if let Some(asked) = &asked {
        errors.extend("scope", unheld(asked, &caller.grants.permissions));
    }
    let expires_in = collect(
        &mut errors,
        "expires_in",
        fields::integer(fields.get("expires_in"), 1, max_ttl),
    )
    .flatten()
    .unwrap_or(max_ttl);
    if let Some(problems) =
        current_password_problems(state, hashing, client, caller, fields).await?
    {
        errors.extend("current_password", problems);
    }
    let Some(name) = name.filter(|_| errors.is_empty()) else {
        return Err(errors.into());
    };

    let txn = store::begin_write(&state.db).await?;
    let Some(user) = still_verified(&txn, &caller.user).await? else {
        return Err(current_password_changed());
    };
    let held = authz::grants(&txn, user.id, user.is_superuser)
        .await?
        .permissions;
    let scope = match asked {
        Some(asked) => {
            // A permission taken away while the password was being checked.
            let problems = unheld(&asked, &held);
            if !problems.is_empty() {
                return Err(FieldErrors::field("scope", problems).into());
            }
            asked
        }
        None => held,
    };
    let now = Utc::now();
    let key = NewKey {
        name,
        scope,
        expires_at: now + chrono::Duration::seconds(expires_in),
    };
    let (key, view) = sessions::open_key(&txn, settings, user.id, key, client).await?;
    let notice = KeyCreated {
        name: view.name.clone(),
        scope: view.scope.clone(),
        expires: view.expires,
        at: now,
    };
    What::ApiKeyCreated {
        permissions: view.scope.len() as u64,
        expires: crate::audit::time(view.expires),
    }
    .event()
    .user(&user)
    .session(&view.id)
    .from(Some(client))
    .record(&txn)
    .await?;
    let told = match state
        .mailer
        .compose_key_created(&user, &notice)
        .map_err(Error::Mail)?
    {
        Some(message) => {
            outbox::enqueue(&txn, message).await?;
            true
        }
        None => false,
    };
    txn.commit().await?;
    crate::meter::session_opened("api_key");
    if told {
        state.mailer.wake();
    }
    tracing::info!(
        user_id = user.id,
        key = %view.id,
        permissions = view.scope.len(),
        "API key created"
    );
    Ok(CreatedKey { key, view })
}
