//! Django's groups and permissions, managed over HTTP and from the command line.
//!
//! Every change runs in one write transaction that first takes the authorization lock, then
//! reads the acting user as they are now and checks them (the Django admin's rules, and the
//! escalation rules in [`rules`]), and commits with the message that makes every instance's
//! cache forget what changed: the user, or (a group's or the set of permissions changed) every
//! cached principal. Checks run in DRF's order: permission (403), lookup (404), fields (400),
//! then what the fields would grant (403).

mod rules;

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::audit::What;
use crate::auth::Invalidation;
use crate::domain::permissions::{self, PermissionName, does_not_exist};
use crate::domain::{FieldErrors, RawFields, fields, messages};
use crate::state::AppState;
use crate::store::authz::{self as rows, Group, Permission, Taken};
use crate::store::{self, Conn, DbErr, OnConstraint, Principal, users};

pub use rules::{Action, Actor, Holder, Model};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid input")]
    Invalid(FieldErrors),
    /// A malformed id, or no such row: the message is DRF's for each.
    #[error("not found")]
    NotFound(&'static str),
    #[error("permission denied")]
    Forbidden,
    #[error("database error")]
    Database(#[from] DbErr),
}

impl From<FieldErrors> for Error {
    fn from(errors: FieldErrors) -> Self {
        Error::Invalid(errors)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who asks: a signed-in user (and the client address they call from), or the operator at the
/// command line.
#[derive(Debug, Clone, Copy)]
pub enum Who {
    User(i64, IpAddr),
    Operator,
}

/// A group with its permissions' names, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub id: i64,
    pub name: String,
    pub permissions: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub is_staff: bool,
    pub is_superuser: bool,
}

/// A change to a list of names: the whole list (HTTP's `PUT`), or one name (the CLI).
#[derive(Debug, Clone)]
pub enum Edit {
    Replace(Vec<String>),
    Add(String),
    Remove(String),
}

impl Edit {
    fn names(&self) -> Vec<String> {
        match self {
            Edit::Replace(names) => names.clone(),
            Edit::Add(name) | Edit::Remove(name) => vec![name.clone()],
        }
    }

    /// The new set, from the current one and the rows the edit's names resolved to.
    fn apply<T: Ord + Clone>(&self, current: &BTreeSet<T>, named: &[T]) -> BTreeSet<T> {
        match self {
            Edit::Replace(_) => named.iter().cloned().collect(),
            Edit::Add(_) => current.iter().chain(named).cloned().collect(),
            Edit::Remove(_) => current
                .iter()
                .filter(|item| !named.contains(item))
                .cloned()
                .collect(),
        }
    }
}

/// A permission's fields as a client sent them, parsed.
#[derive(Debug, Clone, Default)]
pub struct PermissionChange {
    pub app_label: Option<String>,
    pub codename: Option<String>,
    pub name: Option<String>,
}

impl PermissionChange {
    /// `partial`: a `PATCH`, where every field may be left out.
    pub fn parse(body: &RawFields, partial: bool) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut take = |field: &str, parsed: Result<Option<String>, Vec<String>>| match parsed {
            Ok(value) => value,
            Err(problems) if partial && problems == [messages::REQUIRED] => None,
            Err(problems) => {
                errors.extend(field, problems);
                None
            }
        };
        let change = Self {
            app_label: take("app_label", permissions::app_label(body.get("app_label"))),
            codename: take("codename", permissions::codename(body.get("codename"))),
            name: take("name", permissions::PERMISSION_NAME.parse(body.get("name"))),
        };
        errors.into_result().map(|()| change)
    }
}

/// A group's fields as a client sent them, parsed.
#[derive(Debug, Clone, Default)]
pub struct GroupChange {
    pub name: Option<String>,
    pub permissions: Option<Edit>,
}

impl GroupChange {
    pub fn parse(body: &RawFields, partial: bool) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = match permissions::GROUP_NAME.parse(body.get("name")) {
            Ok(name) => name,
            Err(problems) if partial && problems == [messages::REQUIRED] => None,
            Err(problems) => {
                errors.extend("name", problems);
                None
            }
        };
        let permissions = names_field(body, "permissions", &mut errors);
        errors.into_result().map(|()| Self { name, permissions })
    }
}

/// A list field of names (`groups`, `permissions`); absent is no change.
pub fn names_field(body: &RawFields, field: &str, errors: &mut FieldErrors) -> Option<Edit> {
    match body.list(field) {
        Ok(names) => names.map(Edit::Replace),
        Err(problems) => {
            errors.extend(field, problems);
            None
        }
    }
}

/// A `PATCH` of a user's roles: either flag, or both.
#[derive(Debug, Clone, Copy, Default)]
pub struct RolesChange {
    pub is_staff: Option<bool>,
    pub is_superuser: Option<bool>,
}

impl RolesChange {
    pub fn parse(body: &RawFields) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut flag = |field: &str| match fields::boolean(body.get(field)) {
            Ok(value) => value,
            Err(problems) => {
                errors.extend(field, problems);
                None
            }
        };
        let change = Self {
            is_staff: flag("is_staff"),
            is_superuser: flag("is_superuser"),
        };
        errors.into_result().map(|()| change)
    }
}

/// The acting user as they are now: their row and their grants, read in `db`.
async fn actor(db: &impl Conn, who: Who) -> Result<Actor> {
    match who {
        Who::User(id, _) => user_actor(db, id).await,
        Who::Operator => Ok(Actor::operator()),
    }
}

async fn user_actor(db: &impl Conn, id: i64) -> Result<Actor> {
    let user = users::find_by_id(db, id).await?.ok_or(Error::Forbidden)?;
    let grants = rows::grants(db, user.id, user.is_superuser).await?;
    Ok(Actor {
        user_id: Some(user.id),
        is_active: user.is_active,
        is_staff: user.is_staff,
        is_superuser: user.is_superuser,
        permissions: grants.permissions.into_iter().collect(),
    })
}

/// Whether `actor_id` may write `target`'s record ([`Actor::may_take_over`]), both read in
/// `db` (inside the write's transaction, they are as the write finds them).
pub async fn may_take_over(db: &impl Conn, actor_id: i64, target: &Principal) -> Result<bool> {
    let actor = user_actor(db, actor_id).await?;
    // What the account would hold once active again counts too.
    let held = rows::grants(db, target.id, target.is_superuser).await?;
    Ok(actor.may_take_over(&Holder {
        is_staff: target.is_staff,
        is_superuser: target.is_superuser,
        permissions: held.permissions,
    }))
}

/// A lost race at a unique index: the field error the check before it would have given.
fn taken(which: Taken) -> Error {
    match which {
        Taken::GroupName => FieldErrors::single("name", messages::GROUP_NAME_TAKEN).into(),
        Taken::Permission => FieldErrors::non_field(messages::PERMISSION_TAKEN).into(),
    }
}

fn allowed(actor: &Actor, action: Action, model: Model) -> Result<()> {
    match actor.may(action, model) {
        true => Ok(()),
        false => Err(Error::Forbidden),
    }
}

/// A path id: djoser's lookup admits any segment; one that is not a number finds nothing.
fn parse_id(id: &str) -> Result<i64> {
    id.parse().map_err(|_| Error::NotFound(messages::NOT_FOUND))
}

/// The id's row, or DRF's 404 with `missing` as its message.
fn found<T>(row: Option<T>, missing: &'static str) -> Result<T> {
    row.ok_or(Error::NotFound(missing))
}

fn name_of(permission: &Permission) -> PermissionName {
    PermissionName {
        app_label: permission.app_label.clone(),
        codename: permission.codename.clone(),
    }
}

/// Starts a change: the write transaction, the authorization lock, the actor as they are now
/// and the model-level check.
async fn begin(
    state: &AppState,
    who: Who,
    action: Action,
    model: Model,
) -> Result<(store::Tx, Actor)> {
    let txn = store::begin_write(&state.db).await?;
    rows::lock(&txn).await?;
    let actor = actor(&txn, who).await?;
    allowed(&actor, action, model)?;
    Ok((txn, actor))
}

/// A read: the actor as they are now, and the model-level check.
async fn reader(state: &AppState, who: Who, model: Model) -> Result<()> {
    let actor = actor(&state.db, who).await?;
    allowed(&actor, Action::View, model)
}

/// Resolves permission names; unknown or malformed ones are errors on `field`.
async fn resolve_permissions(
    db: &impl Conn,
    names: &[String],
    field: &str,
) -> Result<Vec<Permission>> {
    let mut errors = FieldErrors::new();
    let mut wanted = Vec::new();
    for text in names {
        match PermissionName::parse(text) {
            Some(name) => wanted.push(name),
            None => errors.add(field, does_not_exist("app_label.codename", text)),
        }
    }
    let pairs: Vec<(String, String)> = wanted
        .iter()
        .map(|name| (name.app_label.clone(), name.codename.clone()))
        .collect();
    let rows = rows::permissions_named(db, &pairs).await?;
    for name in &wanted {
        if !rows.iter().any(|row| name_of(row) == *name) {
            errors.add(
                field,
                does_not_exist("app_label.codename", &name.to_string()),
            );
        }
    }
    errors.into_result()?;
    Ok(rows)
}

async fn resolve_groups(db: &impl Conn, names: &[String]) -> Result<Vec<Group>> {
    let rows = rows::groups_named(db, names).await?;
    let mut errors = FieldErrors::new();
    for name in names {
        if !rows.iter().any(|row| row.name == *name) {
            errors.add("groups", does_not_exist("name", name));
        }
    }
    errors.into_result()?;
    Ok(rows)
}

/// Checks what a change of held permissions gives and takes away.
fn may_change(
    actor: &Actor,
    added: impl IntoIterator<Item = PermissionName>,
    removed: impl IntoIterator<Item = PermissionName>,
) -> Result<()> {
    let granting = added.into_iter().all(|name| actor.may_grant(&name));
    let revoking = removed.into_iter().all(|name| actor.may_revoke(&name));
    match granting && revoking {
        true => Ok(()),
        false => Err(Error::Forbidden),
    }
}

fn full_names(permissions: &[Permission]) -> Vec<String> {
    let mut names: Vec<String> = permissions.iter().map(rows::full_name).collect();
    names.sort();
    names
}

/// An `authorization.changed` event: what changed, and what it granted and revoked.
fn changed(
    actor: &Actor,
    change: &'static str,
    target: Option<String>,
    granted: Vec<String>,
    revoked: Vec<String>,
) -> What {
    What::AuthorizationChanged {
        actor_id: actor.user_id,
        change,
        target,
        granted,
        revoked,
    }
}

/// Records a change inside its transaction: about `user` when one user's grants changed.
async fn record(txn: &store::Tx, who: Who, what: What, user: Option<&Principal>) -> Result<()> {
    let ip = match who {
        Who::User(_, ip) => Some(ip),
        Who::Operator => None,
    };
    let mut event = what.event().from_ip(ip);
    if let Some(user) = user {
        event = event.user(user);
    }
    event.record(txn).await?;
    Ok(())
}

fn actor_id(actor: &Actor) -> String {
    actor
        .user_id
        .map_or_else(|| "operator".to_owned(), |id| id.to_string())
}

// --- Permissions -----------------------------------------------------------------------------

pub async fn list_permissions(state: &AppState, who: Who) -> Result<Vec<Permission>> {
    reader(state, who, Model::Permission).await?;
    Ok(rows::permissions(&state.db).await?)
}

pub async fn get_permission(state: &AppState, who: Who, id: &str) -> Result<Permission> {
    reader(state, who, Model::Permission).await?;
    let id = parse_id(id)?;
    found(
        rows::permission(&state.db, id).await?,
        messages::NO_PERMISSION_MATCHES,
    )
}

/// A new permission. Only superusers add to the `auth` app, whose permissions guard this API.
pub async fn create_permission(
    state: &AppState,
    who: Who,
    change: Result<PermissionChange, FieldErrors>,
) -> Result<Permission> {
    let (txn, actor) = begin(state, who, Action::Add, Model::Permission).await?;
    let change = change?;
    let (Some(app_label), Some(codename), Some(name)) =
        (change.app_label, change.codename, change.name)
    else {
        return Err(FieldErrors::single("name", messages::REQUIRED).into());
    };
    if app_label == permissions::AUTH_APP && !actor.is_superuser {
        return Err(Error::Forbidden);
    }
    let created = rows::insert_permission(&txn, &app_label, &codename, &name)
        .await
        .on_constraint(taken)?;
    let full = rows::full_name(&created);
    let what = changed(
        &actor,
        "permission_created",
        Some(full),
        Vec::new(),
        Vec::new(),
    );
    record(&txn, who, what, None).await?;
    // A superuser holds every permission there is: theirs just grew.
    state
        .auth
        .commit(txn, &[Invalidation::Authorization])
        .await?;
    tracing::info!(target: "audit", actor = %actor_id(&actor), permission = %rows::full_name(&created), "permission created");
    Ok(created)
}

/// Changes a permission. Renaming it (`app_label` or `codename`) changes what every holder
/// holds, so only a superuser may; anyone allowed to change permissions may reword `name`.
pub async fn update_permission(
    state: &AppState,
    who: Who,
    id: &str,
    change: Result<PermissionChange, FieldErrors>,
) -> Result<Permission> {
    let (txn, actor) = begin(state, who, Action::Change, Model::Permission).await?;
    let id = parse_id(id)?;
    let mut permission = found(
        rows::permission(&txn, id).await?,
        messages::NO_PERMISSION_MATCHES,
    )?;
    let change = change?;
    let before = rows::full_name(&permission);
    let renamed = change
        .app_label
        .as_ref()
        .is_some_and(|label| *label != permission.app_label)
        || change
            .codename
            .as_ref()
            .is_some_and(|codename| *codename != permission.codename);
    if renamed && !actor.may_set_roles() {
        return Err(Error::Forbidden);
    }
    permission.app_label = change.app_label.unwrap_or(permission.app_label);
    permission.codename = change.codename.unwrap_or(permission.codename);
    permission.name = change.name.unwrap_or(permission.name);
    let updated = rows::update_permission(&txn, permission)
        .await
        .on_constraint(taken)?;
    let what = changed(
        &actor,
        "permission_changed",
        Some(before.clone()),
        vec![rows::full_name(&updated)],
        Vec::new(),
    );
    record(&txn, who, what, None).await?;
    state
        .auth
        .commit(txn, &[Invalidation::Authorization])
        .await?;
    tracing::info!(target: "audit", actor = %actor_id(&actor), permission = %before, now = %rows::full_name(&updated), "permission changed");
    Ok(updated)
}

/// Deletes a permission, taking it from everyone who held it.
pub async fn delete_permission(state: &AppState, who: Who, id: &str) -> Result<()> {
    let (txn, actor) = begin(state, who, Action::Delete, Model::Permission).await?;
    let id = parse_id(id)?;
    let permission = found(
        rows::permission(&txn, id).await?,
        messages::NO_PERMISSION_MATCHES,
    )?;
    may_change(&actor, [], [name_of(&permission)])?;
    rows::delete_permission(&txn, permission.id).await?;
    let full = rows::full_name(&permission);
    let what = changed(
        &actor,
        "permission_deleted",
        Some(full),
        Vec::new(),
        Vec::new(),
    );
    record(&txn, who, what, None).await?;
    state
        .auth
        .commit(txn, &[Invalidation::Authorization])
        .await?;
    tracing::info!(target: "audit", actor = %actor_id(&actor), permission = %rows::full_name(&permission), "permission deleted");
    Ok(())
}

/// A permission's id from its full name, for the CLI (which names rather than numbers them).
pub async fn permission_id(state: &AppState, name: &str) -> Result<String> {
    let found = resolve_permissions(&state.db, &[name.to_owned()], "permission").await?;
    found
        .first()
        .map(|permission| permission.id.to_string())
        .ok_or(Error::NotFound(messages::NO_PERMISSION_MATCHES))
}

/// A user's id from their username, for the CLI.
pub async fn user_id(state: &AppState, name: &str) -> Result<String> {
    users::find_by_username(&state.db, &crate::domain::username::canonical(name))
        .await?
        .map(|user| user.principal.id.to_string())
        .ok_or(Error::NotFound(messages::NO_USER_MATCHES))
}

// --- Groups ----------------------------------------------------------------------------------

async fn group_views(db: &impl Conn, groups: Vec<Group>) -> Result<Vec<GroupView>> {
    let ids: Vec<i64> = groups.iter().map(|group| group.id).collect();
    let mut held = rows::permissions_of_groups(db, &ids).await?;
    Ok(groups
        .into_iter()
        .map(|group| GroupView {
            permissions: held
                .remove(&group.id)
                .map(|permissions| full_names(&permissions))
                .unwrap_or_default(),
            id: group.id,
            name: group.name,
        })
        .collect())
}

pub async fn list_groups(state: &AppState, who: Who) -> Result<Vec<GroupView>> {
    reader(state, who, Model::Group).await?;
    group_views(&state.db, rows::groups(&state.db).await?).await
}

pub async fn get_group(state: &AppState, who: Who, id: &str) -> Result<GroupView> {
    reader(state, who, Model::Group).await?;
    let group = found(
        rows::group(&state.db, parse_id(id)?).await?,
        messages::NO_GROUP_MATCHES,
    )?;
    group_views(&state.db, vec![group])
        .await?
        .pop()
        .ok_or(Error::NotFound(messages::NO_GROUP_MATCHES))
}

/// A group's id from its name, for the CLI.
pub async fn group_id(state: &AppState, name: &str) -> Result<String> {
    let found = resolve_groups(&state.db, &[name.to_owned()]).await?;
    found
        .first()
        .map(|group| group.id.to_string())
        .ok_or(Error::NotFound(messages::NO_GROUP_MATCHES))
}

async fn name_taken(db: &impl Conn, name: &str, except: Option<i64>) -> Result<bool> {
    Ok(rows::groups_named(db, &[name.to_owned()])
        .await?
        .iter()
        .any(|group| Some(group.id) != except))
}

pub async fn create_group(
    state: &AppState,
    who: Who,
    change: Result<GroupChange, FieldErrors>,
) -> Result<GroupView> {
    let (txn, actor) = begin(state, who, Action::Add, Model::Group).await?;
    let change = change?;
    let Some(name) = change.name else {
        return Err(FieldErrors::single("name", messages::REQUIRED).into());
    };
    let mut errors = FieldErrors::new();
    if name_taken(&txn, &name, None).await? {
        errors.add("name", messages::GROUP_NAME_TAKEN);
    }
    let wanted = change
        .permissions
        .map(|edit| edit.names())
        .unwrap_or_default();
    let permissions = match resolve_permissions(&txn, &wanted, "permissions").await {
        Ok(permissions) => permissions,
        Err(Error::Invalid(problems)) => {
            for (field, list) in problems.iter() {
                errors.extend(field, list.to_vec());
            }
            Vec::new()
        }
        Err(other) => return Err(other),
    };
    errors.into_result()?;
    may_change(&actor, permissions.iter().map(name_of), [])?;
    let group = rows::insert_group(&txn, &name).await.on_constraint(taken)?;
    let ids: Vec<i64> = permissions.iter().map(|permission| permission.id).collect();
    rows::set_group_permissions(&txn, group.id, &ids).await?;
    let names = full_names(&permissions);
    let what = changed(
        &actor,
        "group_created",
        Some(group.name.clone()),
        names.clone(),
        Vec::new(),
    );
    record(&txn, who, what, None).await?;
    // Nobody is in a new group: no cached principal changes.
    txn.commit().await?;
    tracing::info!(target: "audit", actor = %actor_id(&actor), group = %group.name, permissions = ?names, "group created");
    Ok(GroupView {
        id: group.id,
        name: group.name,
        permissions: names,
    })
}

/// Renames a group, or changes its permissions (every member's change with them).
pub async fn update_group(
    state: &AppState,
    who: Who,
    id: &str,
    change: Result<GroupChange, FieldErrors>,
) -> Result<GroupView> {
    let (txn, actor) = begin(state, who, Action::Change, Model::Group).await?;
    let mut group = found(
        rows::group(&txn, parse_id(id)?).await?,
        messages::NO_GROUP_MATCHES,
    )?;
    let change = change?;
    let mut errors = FieldErrors::new();
    if let Some(name) = &change.name
        && name_taken(&txn, name, Some(group.id)).await?
    {
        errors.add("name", messages::GROUP_NAME_TAKEN);
    }
    let held = rows::permissions_of_groups(&txn, &[group.id])
        .await?
        .remove(&group.id)
        .unwrap_or_default();
    let mut permissions = held.clone();
    if let Some(edit) = &change.permissions {
        match resolve_permissions(&txn, &edit.names(), "permissions").await {
            Ok(named) => {
                let current: BTreeSet<PermissionRow> =
                    held.iter().cloned().map(PermissionRow).collect();
                let named: Vec<PermissionRow> = named.into_iter().map(PermissionRow).collect();
                permissions = edit
                    .apply(&current, &named)
                    .into_iter()
                    .map(|row| row.0)
                    .collect();
            }
            Err(Error::Invalid(problems)) => {
                for (field, list) in problems.iter() {
                    errors.extend(field, list.to_vec());
                }
            }
            Err(other) => return Err(other),
        }
    }
    errors.into_result()?;
    let (added, removed) = difference(&held, &permissions);
    may_change(
        &actor,
        added.iter().map(name_of),
        removed.iter().map(name_of),
    )?;
    if let Some(name) = change.name.filter(|name| *name != group.name) {
        group = rows::rename_group(&txn, group.id, &name)
            .await
            .on_constraint(taken)?;
    }
    let ids: Vec<i64> = permissions.iter().map(|permission| permission.id).collect();
    rows::set_group_permissions(&txn, group.id, &ids).await?;
    let what = changed(
        &actor,
        "group_changed",
        Some(group.name.clone()),
        full_names(&added),
        full_names(&removed),
    );
    record(&txn, who, what, None).await?;
    state
        .auth
        .commit(txn, &[Invalidation::Authorization])
        .await?;
    tracing::info!(
        target: "audit",
        actor = %actor_id(&actor),
        group = %group.name,
        granted = ?full_names(&added),
        revoked = ?full_names(&removed),
        "group changed"
    );
    Ok(GroupView {
        id: group.id,
        name: group.name,
        permissions: full_names(&permissions),
    })
}

/// Deletes a group; its members lose what it gave them.
pub async fn delete_group(state: &AppState, who: Who, id: &str) -> Result<()> {
    let (txn, actor) = begin(state, who, Action::Delete, Model::Group).await?;
    let group = found(
        rows::group(&txn, parse_id(id)?).await?,
        messages::NO_GROUP_MATCHES,
    )?;
    let held = rows::permissions_of_groups(&txn, &[group.id])
        .await?
        .remove(&group.id)
        .unwrap_or_default();
    may_change(&actor, [], held.iter().map(name_of))?;
    rows::delete_group(&txn, group.id).await?;
    let what = changed(
        &actor,
        "group_deleted",
        Some(group.name.clone()),
        Vec::new(),
        full_names(&held),
    );
    record(&txn, who, what, None).await?;
    state
        .auth
        .commit(txn, &[Invalidation::Authorization])
        .await?;
    tracing::info!(target: "audit", actor = %actor_id(&actor), group = %group.name, "group deleted");
    Ok(())
}

/// Permission rows ordered by id, for set arithmetic.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PermissionRow(Permission);

impl PartialOrd for PermissionRow {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PermissionRow {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.id.cmp(&other.0.id)
    }
}

/// What `after` adds to `before`, and what it drops.
fn difference(before: &[Permission], after: &[Permission]) -> (Vec<Permission>, Vec<Permission>) {
    let ids = |list: &[Permission]| -> BTreeSet<i64> { list.iter().map(|p| p.id).collect() };
    let (old, new) = (ids(before), ids(after));
    let added = after
        .iter()
        .filter(|p| !old.contains(&p.id))
        .cloned()
        .collect();
    let removed = before
        .iter()
        .filter(|p| !new.contains(&p.id))
        .cloned()
        .collect();
    (added, removed)
}

// --- A user's groups, permissions and roles -------------------------------------------------

async fn target_user(db: &impl Conn, id: &str) -> Result<Principal> {
    found(
        users::find_by_id(db, parse_id(id)?).await?,
        messages::NO_USER_MATCHES,
    )
}

pub async fn user_groups(state: &AppState, who: Who, id: &str) -> Result<Vec<String>> {
    reader(state, who, Model::User).await?;
    let user = target_user(&state.db, id).await?;
    Ok(rows::groups_of_user(&state.db, user.id)
        .await?
        .into_iter()
        .map(|group| group.name)
        .collect())
}

/// Changes a user's groups. Joining a group grants its permissions and leaving one revokes
/// them, under the same rules as granting them directly.
pub async fn set_user_groups(
    state: &AppState,
    who: Who,
    id: &str,
    edit: Result<Edit, FieldErrors>,
) -> Result<Vec<String>> {
    let (txn, actor) = begin(state, who, Action::Change, Model::User).await?;
    let user = target_user(&txn, id).await?;
    let edit = edit?;
    let named = resolve_groups(&txn, &edit.names()).await?;
    let current: BTreeSet<(i64, String)> = rows::groups_of_user(&txn, user.id)
        .await?
        .into_iter()
        .map(|group| (group.id, group.name))
        .collect();
    let named: Vec<(i64, String)> = named
        .into_iter()
        .map(|group| (group.id, group.name))
        .collect();
    let after = edit.apply(&current, &named);
    let joined: Vec<i64> = after.difference(&current).map(|(id, _)| *id).collect();
    let left: Vec<i64> = current.difference(&after).map(|(id, _)| *id).collect();
    let granted = rows::permissions_of_groups(&txn, &joined).await?;
    let revoked = rows::permissions_of_groups(&txn, &left).await?;
    may_change(
        &actor,
        granted.values().flatten().map(name_of),
        revoked.values().flatten().map(name_of),
    )?;
    let ids: Vec<i64> = after.iter().map(|(id, _)| *id).collect();
    rows::set_user_groups(&txn, user.id, &ids).await?;
    let names = |set: &BTreeSet<(i64, String)>, other: &BTreeSet<(i64, String)>| -> Vec<String> {
        set.difference(other)
            .map(|(_, name)| name.clone())
            .collect()
    };
    let what = changed(
        &actor,
        "user_groups",
        None,
        names(&after, &current),
        names(&current, &after),
    );
    record(&txn, who, what, Some(&user)).await?;
    state
        .auth
        .commit(txn, &[Invalidation::User(user.id)])
        .await?;
    tracing::info!(
        target: "audit",
        actor = %actor_id(&actor),
        user_id = user.id,
        joined = ?names(&after, &current),
        left = ?names(&current, &after),
        "groups changed"
    );
    let mut result: Vec<String> = after.into_iter().map(|(_, name)| name).collect();
    result.sort();
    Ok(result)
}

pub async fn user_permissions(state: &AppState, who: Who, id: &str) -> Result<Vec<String>> {
    reader(state, who, Model::User).await?;
    let user = target_user(&state.db, id).await?;
    Ok(full_names(
        &rows::permissions_of_user(&state.db, user.id).await?,
    ))
}

/// Changes a user's direct permissions.
pub async fn set_user_permissions(
    state: &AppState,
    who: Who,
    id: &str,
    edit: Result<Edit, FieldErrors>,
) -> Result<Vec<String>> {
    let (txn, actor) = begin(state, who, Action::Change, Model::User).await?;
    let user = target_user(&txn, id).await?;
    let edit = edit?;
    let named = resolve_permissions(&txn, &edit.names(), "permissions").await?;
    let held = rows::permissions_of_user(&txn, user.id).await?;
    let current: BTreeSet<PermissionRow> = held.iter().cloned().map(PermissionRow).collect();
    let named: Vec<PermissionRow> = named.into_iter().map(PermissionRow).collect();
    let after: Vec<Permission> = edit
        .apply(&current, &named)
        .into_iter()
        .map(|row| row.0)
        .collect();
    let (added, removed) = difference(&held, &after);
    may_change(
        &actor,
        added.iter().map(name_of),
        removed.iter().map(name_of),
    )?;
    let ids: Vec<i64> = after.iter().map(|permission| permission.id).collect();
    rows::set_user_permissions(&txn, user.id, &ids).await?;
    let what = changed(
        &actor,
        "user_permissions",
        None,
        full_names(&added),
        full_names(&removed),
    );
    record(&txn, who, what, Some(&user)).await?;
    state
        .auth
        .commit(txn, &[Invalidation::User(user.id)])
        .await?;
    tracing::info!(
        target: "audit",
        actor = %actor_id(&actor),
        user_id = user.id,
        granted = ?full_names(&added),
        revoked = ?full_names(&removed),
        "permissions changed"
    );
    Ok(full_names(&after))
}

pub async fn user_roles(state: &AppState, who: Who, id: &str) -> Result<Roles> {
    reader(state, who, Model::User).await?;
    let user = target_user(&state.db, id).await?;
    Ok(Roles {
        is_staff: user.is_staff,
        is_superuser: user.is_superuser,
    })
}

/// Sets `is_staff` or `is_superuser`: for superusers only, whatever else the actor holds.
pub async fn update_roles(
    state: &AppState,
    who: Who,
    id: &str,
    change: Result<RolesChange, FieldErrors>,
) -> Result<Roles> {
    let (txn, actor) = begin(state, who, Action::Change, Model::User).await?;
    let user = target_user(&txn, id).await?;
    let change = change?;
    let roles = Roles {
        is_staff: change.is_staff.unwrap_or(user.is_staff),
        is_superuser: change.is_superuser.unwrap_or(user.is_superuser),
    };
    if (change.is_staff.is_some() || change.is_superuser.is_some()) && !actor.may_set_roles() {
        return Err(Error::Forbidden);
    }
    rows::set_roles(&txn, user.id, roles.is_staff, roles.is_superuser).await?;
    let role_changes = |now: bool| -> Vec<String> {
        [
            ("is_staff", user.is_staff, roles.is_staff),
            ("is_superuser", user.is_superuser, roles.is_superuser),
        ]
        .into_iter()
        .filter(|(_, before, after)| before != after && *after == now)
        .map(|(name, _, _)| name.to_owned())
        .collect()
    };
    let what = changed(
        &actor,
        "user_roles",
        None,
        role_changes(true),
        role_changes(false),
    );
    record(&txn, who, what, Some(&user)).await?;
    state
        .auth
        .commit(txn, &[Invalidation::User(user.id)])
        .await?;
    tracing::info!(
        target: "audit",
        actor = %actor_id(&actor),
        user_id = user.id,
        is_staff = roles.is_staff,
        is_superuser = roles.is_superuser,
        "roles changed"
    );
    Ok(roles)
}

/// Every user with their roles, groups and direct permissions, for `authd user list`.
pub async fn user_summaries(state: &AppState) -> Result<Vec<UserSummary>> {
    let mut summaries = Vec::new();
    for user in users::list(&state.db).await? {
        let groups = rows::groups_of_user(&state.db, user.id).await?;
        let direct = rows::permissions_of_user(&state.db, user.id).await?;
        summaries.push(UserSummary {
            id: user.id,
            username: user.username,
            is_active: user.is_active,
            is_staff: user.is_staff,
            is_superuser: user.is_superuser,
            groups: groups.into_iter().map(|group| group.name).collect(),
            permissions: full_names(&direct),
        });
    }
    Ok(summaries)
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct UserSummary {
    pub id: i64,
    pub username: String,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub groups: Vec<String>,
    pub permissions: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permission(id: i64, name: &str) -> Permission {
        let parsed = PermissionName::parse(name).expect("a name");
        Permission {
            id,
            name: name.to_owned(),
            app_label: parsed.app_label,
            codename: parsed.codename,
        }
    }

    #[test]
    fn edits_replace_add_and_remove() {
        let current: BTreeSet<i64> = [1, 2].into();
        assert_eq!(Edit::Replace(vec![]).apply(&current, &[3]), [3].into());
        assert_eq!(
            Edit::Add(String::new()).apply(&current, &[3]),
            [1, 2, 3].into()
        );
        assert_eq!(
            Edit::Remove(String::new()).apply(&current, &[2]),
            [1].into()
        );
    }

    #[test]
    fn differences_name_what_was_granted_and_revoked() {
        let before = vec![permission(1, "blog.a"), permission(2, "blog.b")];
        let after = vec![permission(2, "blog.b"), permission(3, "auth.c")];
        let (added, removed) = difference(&before, &after);
        assert_eq!(full_names(&added), ["auth.c"]);
        assert_eq!(full_names(&removed), ["blog.a"]);
    }
}
