//! `authd import-django`: a Django site's users, password hashes, DRF tokens, groups and
//! permissions, brought into authd's database so that nobody notices the switch.
//!
//! The source is read whole, in one snapshot ([`store::django`]); what it holds is then written
//! in batches, one transaction each, every batch re-reading the rows it decides on. What was
//! brought over is remembered with fingerprints of the Django row and of the authd row as the
//! import left it, so a re-run applies Django's later changes only to rows authd left alone,
//! and lists those changed on both sides.

mod report;
mod rows;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::auth::{Barriers, Invalidation};
use crate::config::{LoginField, Settings};
use crate::crypto;
use crate::domain::{email, username};
use crate::store::django::{self, DjangoToken, DjangoUser, Snapshot, Source, SourceError};
use crate::store::import::{self as memory, IdTable, Imported, ImportedUser, Memory};
use crate::store::{self, Db, DbErr, SessionKind, TokenKind, Tx, authz, sessions, tokens};

pub use report::{Collision, Report, Skip, Tally};
use rows::{Fingerprint, Password, to_utc};

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: Source,
    pub dry_run: bool,
    pub on_conflict: OnConflict,
    pub allow_existing: bool,
    pub inactive_as_pending: bool,
    pub no_superusers: bool,
    pub keep_token_age: bool,
    pub source_timezone: chrono_tz::Tz,
    pub batch_size: usize,
}

/// What happens to a Django account whose name (or email, under `LOGIN_FIELD=email`) authd
/// holds as another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Import the first by id, skip and list the others.
    Skip,
    /// Refuse the whole import.
    Fail,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// How far the import is: `done` of `total` rows of one kind.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub stage: &'static str,
    pub done: usize,
    pub total: usize,
}

/// Where a user's source fingerprint switches from the row to its password hash: two halves
/// of 128 bits each.
const PASSWORD_PRINT: usize = 32;

/// The name DRF tokens' sessions show in `/token/sessions/`.
pub const TOKEN_SESSION_NAME: &str = "Imported from Django";

/// Imports the Django database `options.source` into `db`, which is migrated already.
pub async fn run(
    db: &Db,
    settings: &Settings,
    options: &Options,
    progress: &dyn Fn(Progress),
) -> Result<Report, ImportError> {
    let snapshot = django::read(&options.source).await?;
    let mut report = Report::new(options.dry_run, settings.database_url.redacted());
    let import = Import::new(settings, options, &snapshot);
    import.refuse_a_foreign_target(db).await?;
    let decided = import.decide_names(db).await?;
    let target = Target::open(db, options.dry_run).await?;
    let highest_user = snapshot.users.iter().map(|user| user.id).max().unwrap_or(0);

    let batch = target.begin().await?;
    let permission_ids = import.permissions(&batch, &mut report).await?;
    let group_ids = import.groups(&batch, &permission_ids, &mut report).await?;
    let changes = match report.changed {
        true => vec![Invalidation::Authorization],
        false => Vec::new(),
    };
    batch.finish(&changes, highest_user).await?;

    let ids = Ids {
        groups: group_ids,
        permissions: permission_ids,
    };
    let users: Vec<&DjangoUser> = snapshot
        .users
        .iter()
        .filter(|user| match decided.get(&user.id) {
            Some(skip) => {
                report.users.skipped.push(skip.clone());
                false
            }
            None => true,
        })
        .collect();
    let total = snapshot.users.len();
    let mut done = total - users.len();
    let token_sessions: BTreeSet<i64> = memory::target_ids(db, Imported::Token)
        .await?
        .into_iter()
        .collect();
    for (index, chunk) in users.chunks(options.batch_size.max(1)).enumerate() {
        let batch = target.begin().await?;
        let changes = import
            .users(&batch, chunk, &ids, &token_sessions, &mut report)
            .await?;
        // Each time the accounts written have doubled, so the planner knows the tables grew.
        if (index + 1).is_power_of_two() {
            memory::analyze(&*batch).await?;
        }
        batch.finish(&changes, highest_user).await?;
        done += chunk.len();
        progress(Progress {
            stage: "users",
            done,
            total,
        });
    }
    import.deleted_in_django(db, &mut report).await?;

    let batch = target.begin().await?;
    let known = import.known_tokens(&batch).await?;
    let ended = import
        .end_vanished_tokens(&batch, &known, &mut report)
        .await?;
    let changes: Vec<Invalidation> = ended.iter().map(|(change, _)| change.clone()).collect();
    batch.finish(&changes, highest_user).await?;
    let ended_for: BTreeSet<i64> = ended.iter().map(|&(_, user)| user).collect();
    let new_tokens: Vec<&DjangoToken> = snapshot.tokens.iter().collect();
    let mut done = 0;
    let mut added_for = BTreeSet::new();
    for (index, chunk) in new_tokens.chunks(options.batch_size.max(1)).enumerate() {
        let batch = target.begin().await?;
        added_for.extend(import.tokens(&batch, chunk, &known, &mut report).await?);
        if (index + 1).is_power_of_two() {
            memory::analyze(&*batch).await?;
        }
        batch.finish(&[], highest_user).await?;
        done += chunk.len();
        progress(Progress {
            stage: "tokens",
            done,
            total: new_tokens.len(),
        });
    }
    // DRF holds one token per account: one ended and one new is a replacement.
    let replaced = ended_for.intersection(&added_for).count();
    report.tokens.updated += replaced;
    report.tokens.imported -= replaced;
    report.tokens.deleted -= replaced;
    // Running servers match their dummy hash to the hashes that arrived (an unknown name must
    // answer as slowly as one of these accounts), rather than at their next refresh.
    if report
        .hashes
        .keys()
        .any(|algorithm| rows::is_verified(algorithm))
    {
        target
            .begin()
            .await?
            .finish(&[Invalidation::LegacyHashes], highest_user)
            .await?;
    }
    target.close().await?;
    report.dry_run = options.dry_run;
    Ok(report)
}

/// The target's writes: a transaction per batch, or, for a dry run, one transaction for
/// everything, rolled back at the end, so that a dry run decides exactly as a run would.
struct Target<'a> {
    db: &'a Db,
    dry_run: Option<Tx>,
    /// An import is a command: it waits for the running servers to apply what it changed.
    barriers: Barriers,
}

enum Batch<'a> {
    Own {
        txn: Tx,
        db: &'a Db,
        barriers: &'a Barriers,
    },
    Shared(&'a Tx),
}

impl std::ops::Deref for Batch<'_> {
    type Target = Tx;

    fn deref(&self) -> &Tx {
        match self {
            Batch::Own { txn, .. } => txn,
            Batch::Shared(txn) => txn,
        }
    }
}

impl<'a> Target<'a> {
    async fn open(db: &'a Db, dry_run: bool) -> Result<Self, DbErr> {
        let dry_run = match dry_run {
            true => Some(store::begin_write(db).await?),
            false => None,
        };
        Ok(Self {
            db,
            dry_run,
            barriers: Barriers::new(),
        })
    }

    async fn begin(&self) -> Result<Batch<'_>, DbErr> {
        Ok(match &self.dry_run {
            Some(txn) => Batch::Shared(txn),
            None => Batch::Own {
                txn: store::begin_write(self.db).await?,
                db: self.db,
                barriers: &self.barriers,
            },
        })
    }

    async fn close(self) -> Result<(), DbErr> {
        match self.dry_run {
            Some(txn) => txn.rollback().await,
            None => Ok(()),
        }
    }
}

impl Batch<'_> {
    /// Commits, telling every running instance what changed, and waits for the servers to
    /// apply it (a real run only).
    async fn finish(self, changes: &[Invalidation], highest_user: i64) -> Result<(), DbErr> {
        let Batch::Own { txn, db, barriers } = self else {
            return Ok(());
        };
        memory::advance_sequences(&txn, highest_user).await?;
        let pending = barriers.raise(db, &txn, changes).await?;
        txn.commit().await?;
        pending.settle(db).await;
        Ok(())
    }
}

/// The ids new groups or permissions get: Django's where the target has it free, else one
/// above every id of the target and of the source, so that no later row's own id is taken by
/// an earlier row's stand-in. Chosen here rather than by the database's sequence, which
/// explicit ids leave behind until the batch ends.
struct NewIds {
    taken: BTreeSet<i64>,
    next: i64,
}

impl NewIds {
    async fn new(txn: &Tx, table: IdTable, source_ids: &[i64]) -> Result<Self, DbErr> {
        let taken: BTreeSet<i64> = memory::taken_ids(txn, table, source_ids)
            .await?
            .into_iter()
            .collect();
        let highest = memory::max_id(txn, table)
            .await?
            .max(source_ids.iter().copied().max().unwrap_or(0));
        Ok(Self {
            taken,
            next: highest + 1,
        })
    }

    fn row(&mut self, django_id: i64) -> i64 {
        if self.taken.insert(django_id) {
            return django_id;
        }
        self.next += 1;
        self.next - 1
    }
}

/// Django ids → authd ids, for groups and permissions (users keep theirs).
struct Ids {
    groups: BTreeMap<i64, i64>,
    permissions: BTreeMap<i64, i64>,
}

/// The source, indexed.
struct Import<'a> {
    options: &'a Options,
    token_ttl: std::time::Duration,
    email_login: bool,
    snapshot: &'a Snapshot,
    /// Django permission id → `app_label.codename`.
    permission_names: BTreeMap<i64, String>,
    groups_of_user: BTreeMap<i64, BTreeSet<i64>>,
    permissions_of_user: BTreeMap<i64, BTreeSet<i64>>,
    permissions_of_group: BTreeMap<i64, BTreeSet<i64>>,
    usernames: BTreeMap<i64, &'a str>,
    now: DateTime<Utc>,
}

fn grouped(pairs: &[(i64, i64)]) -> BTreeMap<i64, BTreeSet<i64>> {
    let mut map: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for &(left, right) in pairs {
        map.entry(left).or_default().insert(right);
    }
    map
}

impl<'a> Import<'a> {
    fn new(settings: &Settings, options: &'a Options, snapshot: &'a Snapshot) -> Self {
        Self {
            options,
            token_ttl: settings.tokens.ttl,
            email_login: settings.djoser.login_field == LoginField::Email,
            snapshot,
            permission_names: snapshot
                .permissions
                .iter()
                .map(|p| (p.id, format!("{}.{}", p.app_label, p.codename)))
                .collect(),
            groups_of_user: grouped(&snapshot.user_groups),
            permissions_of_user: grouped(&snapshot.user_permissions),
            permissions_of_group: grouped(&snapshot.group_permissions),
            usernames: snapshot
                .users
                .iter()
                .map(|user| (user.id, user.username.as_str()))
                .collect(),
            now: Utc::now(),
        }
    }

    fn time(&self, naive: chrono::NaiveDateTime) -> DateTime<Utc> {
        to_utc(
            naive,
            self.options.source.has_naive_times(),
            self.options.source_timezone,
        )
    }

    /// A target serving accounts of its own (an `authd createsuperuser` admin with id 1) would
    /// have them collide with Django's ids and names: refused, unless the operator says so.
    /// After a first import, accounts that signed up on authd since are expected.
    async fn refuse_a_foreign_target(&self, db: &Db) -> Result<(), ImportError> {
        if self.options.allow_existing || memory::any(db, Imported::User).await? {
            return Ok(());
        }
        let (count, first) = memory::foreign_users(db).await?;
        if let Some(first) = first {
            return Err(ImportError::Refused(format!(
                "the target already holds {count} account(s) that no import brought (the first: \
                 id {}, {:?}); pass --allow-existing to import beside them, skipping and listing \
                 the Django accounts whose id or name they hold",
                first.id, first.username
            )));
        }
        Ok(())
    }

    /// Django accounts that cannot come over whatever the target holds: names authd refuses,
    /// and names (or emails, under `LOGIN_FIELD=email`) that only differ in case from an
    /// account with a lower id. Under `--on-conflict=fail` any collision, here or with an
    /// account the target holds, refuses the import before anything is written.
    async fn decide_names(&self, db: &Db) -> Result<BTreeMap<i64, Skip>, ImportError> {
        let mut skipped = BTreeMap::new();
        let mut names: BTreeMap<String, &DjangoUser> = BTreeMap::new();
        let mut emails: BTreeMap<String, &DjangoUser> = BTreeMap::new();
        for user in &self.snapshot.users {
            if !username::is_valid_shape(&user.username) || !username::can_query(&user.username) {
                skipped.insert(
                    user.id,
                    Skip::of(user.id, &user.username, "invalid_username"),
                );
                continue;
            }
            // An address Django's validator would refuse (written around it, by a script or
            // the shell) would be mailed by authd: the account waits until Django's is fixed.
            if !user.email.is_empty()
                && (!email::is_valid(&user.email) || user.email.chars().count() > email::MAX_LENGTH)
            {
                skipped.insert(user.id, Skip::of(user.id, &user.username, "invalid_email"));
                continue;
            }
            let name = username::canonical(&user.username);
            if let Some(first) = names.get(&name) {
                skipped.insert(
                    user.id,
                    Skip::colliding(user, "username_collision", first.id, &first.username),
                );
                continue;
            }
            if let Some(address) = self.email_canonical(&user.email) {
                if let Some(first) = emails.get(&address) {
                    skipped.insert(
                        user.id,
                        Skip::colliding(user, "email_collision", first.id, &first.username),
                    );
                    continue;
                }
                emails.insert(address, user);
            }
            names.insert(name, user);
        }
        if self.options.on_conflict == OnConflict::Fail {
            let imported = memory::memories(db, Imported::User).await?;
            let touching = memory::users_touching(
                db,
                &[],
                &names.keys().cloned().collect::<Vec<_>>(),
                &emails.keys().cloned().collect::<Vec<_>>(),
            )
            .await?;
            let by_name: BTreeMap<&str, &store::Principal> = touching
                .iter()
                .map(|other| (other.username_canonical.as_str(), other))
                .collect();
            let by_email: BTreeMap<&str, &store::Principal> = touching
                .iter()
                .filter_map(|other| Some((other.email_canonical.as_deref()?, other)))
                .collect();
            let mut collisions: Vec<Skip> = skipped
                .values()
                .filter(|skip| skip.collides_with.is_some())
                .cloned()
                .collect();
            for (name, user) in &names {
                // An account an earlier run brought is this user's own.
                let own = imported
                    .get(&user.id.to_string())
                    .map(|memory| memory.target_id);
                let other_than_own = |other: &&&store::Principal| Some(other.id) != own;
                let address = self.email_canonical(&user.email);
                if let Some(other) = by_name.get(name.as_str()).filter(other_than_own) {
                    collisions.push(Skip::colliding(
                        user,
                        "username_collision",
                        other.id,
                        &other.username,
                    ));
                } else if let Some(other) = address
                    .as_deref()
                    .and_then(|address| by_email.get(address))
                    .filter(other_than_own)
                {
                    collisions.push(Skip::colliding(
                        user,
                        "email_collision",
                        other.id,
                        &other.username,
                    ));
                }
            }
            if !collisions.is_empty() {
                let listed: Vec<String> = collisions.iter().map(|skip| skip.to_string()).collect();
                return Err(ImportError::Refused(format!(
                    "--on-conflict=fail: {} account(s) collide, nothing was imported:\n  {}",
                    collisions.len(),
                    listed.join("\n  ")
                )));
            }
        }
        Ok(skipped)
    }

    fn email_canonical(&self, address: &str) -> Option<String> {
        match self.email_login {
            true => email::canonical(address),
            false => None,
        }
    }

    /// Permissions by `app_label.codename`: an existing one (authd's own, or an earlier
    /// import's) is reused, Django's rows that differ only by model become one.
    async fn permissions(
        &self,
        txn: &Tx,
        report: &mut Report,
    ) -> Result<BTreeMap<i64, i64>, ImportError> {
        let remembered = memory::memories(txn, Imported::Permission).await?;
        let mut existing: BTreeMap<String, i64> = authz::permissions(txn)
            .await?
            .iter()
            .map(|p| (authz::full_name(p), p.id))
            .collect();
        let wanted: Vec<i64> = self.snapshot.permissions.iter().map(|p| p.id).collect();
        let mut ids_for = NewIds::new(txn, IdTable::Permission, &wanted).await?;
        let mut ids = BTreeMap::new();
        let mut remember = Vec::new();
        let mut seen = BTreeSet::new();
        for permission in &self.snapshot.permissions {
            let name = format!("{}.{}", permission.app_label, permission.codename);
            let first_of_name = seen.insert(name.clone());
            let target = match existing.get(&name) {
                Some(&id) => {
                    let remembered_here = remembered
                        .get(&name)
                        .is_some_and(|memory| memory.target_id == id);
                    // Reused for the first time: authd's own, or another Django row of the
                    // same name (on another model) brought a moment ago.
                    if !remembered_here {
                        report.permissions.merged += 1;
                    }
                    id
                }
                None => {
                    let id = ids_for.row(permission.id);
                    memory::insert_permission(
                        txn,
                        id,
                        &permission.app_label,
                        &permission.codename,
                        &permission.name,
                    )
                    .await?;
                    existing.insert(name.clone(), id);
                    report.permissions.imported += 1;
                    id
                }
            };
            ids.insert(permission.id, target);
            if first_of_name && remembered.get(&name).is_none_or(|m| m.target_id != target) {
                let print = Fingerprint::of(&(&name,)).0;
                remember.push(Memory {
                    source_key: name,
                    target_id: target,
                    source_fingerprint: print.clone(),
                    target_fingerprint: print,
                });
            }
        }
        if !remember.is_empty() || report.permissions.imported > 0 {
            report.changed = true;
        }
        memory::remember(txn, Imported::Permission, remember).await?;
        Ok(ids)
    }

    fn group_print(&self, name: &str, permissions: impl Iterator<Item = String>) -> String {
        let permissions: BTreeSet<String> = permissions.collect();
        Fingerprint::of(&(name, permissions)).0
    }

    /// Groups, with ids kept where free; one authd already holds by name is merged into
    /// (gaining the Django group's permissions, losing none).
    async fn groups(
        &self,
        txn: &Tx,
        permission_ids: &BTreeMap<i64, i64>,
        report: &mut Report,
    ) -> Result<BTreeMap<i64, i64>, ImportError> {
        let remembered = memory::memories(txn, Imported::Group).await?;
        let existing = authz::groups(txn).await?;
        let held =
            authz::permissions_of_groups(txn, &existing.iter().map(|g| g.id).collect::<Vec<_>>())
                .await?;
        let held_names = |id: i64| -> Vec<String> {
            held.get(&id)
                .map(|list| list.iter().map(authz::full_name).collect())
                .unwrap_or_default()
        };
        let by_name: BTreeMap<&str, i64> =
            existing.iter().map(|g| (g.name.as_str(), g.id)).collect();
        let by_id: BTreeMap<i64, &str> = existing.iter().map(|g| (g.id, g.name.as_str())).collect();
        let wanted: Vec<i64> = self.snapshot.groups.iter().map(|g| g.id).collect();
        let mut ids_for = NewIds::new(txn, IdTable::Group, &wanted).await?;
        let mut ids = BTreeMap::new();
        let mut remember = Vec::new();
        for group in &self.snapshot.groups {
            let django_permissions = self.permissions_of_group.get(&group.id);
            let wanted: BTreeSet<i64> = django_permissions
                .into_iter()
                .flatten()
                .filter_map(|id| permission_ids.get(id).copied())
                .collect();
            let wanted_names = || {
                django_permissions
                    .into_iter()
                    .flatten()
                    .filter_map(|id| self.permission_names.get(id).cloned())
            };
            let source_print = self.group_print(&group.name, wanted_names());
            let key = group.id.to_string();
            let target = match remembered.get(&key) {
                Some(memory) => {
                    let Some(&current_name) = by_id.get(&memory.target_id) else {
                        report.groups.skipped.push(Skip::of(
                            group.id,
                            &group.name,
                            "deleted_in_authd",
                        ));
                        continue;
                    };
                    ids.insert(group.id, memory.target_id);
                    if memory.source_fingerprint == source_print {
                        continue;
                    }
                    let now =
                        self.group_print(current_name, held_names(memory.target_id).into_iter());
                    if now != memory.target_fingerprint {
                        report.groups.skipped.push(Skip::of(
                            group.id,
                            &group.name,
                            "changed_in_authd",
                        ));
                        continue;
                    }
                    if current_name != group.name {
                        if let Some(&other) = by_name.get(group.name.as_str()) {
                            report.groups.skipped.push(Skip::colliding_group(
                                group.id,
                                &group.name,
                                other,
                            ));
                            continue;
                        }
                        authz::rename_group(txn, memory.target_id, &group.name).await?;
                    }
                    authz::set_group_permissions(
                        txn,
                        memory.target_id,
                        &wanted.iter().copied().collect::<Vec<_>>(),
                    )
                    .await?;
                    report.groups.updated += 1;
                    memory.target_id
                }
                None => match by_name.get(group.name.as_str()) {
                    Some(&id) => {
                        let mut union: BTreeSet<i64> =
                            held.get(&id).into_iter().flatten().map(|p| p.id).collect();
                        union.extend(wanted.iter().copied());
                        authz::set_group_permissions(
                            txn,
                            id,
                            &union.into_iter().collect::<Vec<_>>(),
                        )
                        .await?;
                        report.groups.imported += 1;
                        id
                    }
                    None => {
                        let id = ids_for.row(group.id);
                        memory::insert_group(txn, id, &group.name).await?;
                        authz::set_group_permissions(
                            txn,
                            id,
                            &wanted.iter().copied().collect::<Vec<_>>(),
                        )
                        .await?;
                        report.groups.imported += 1;
                        id
                    }
                },
            };
            ids.insert(group.id, target);
            let now_held = authz::permissions_of_groups(txn, &[target]).await?;
            let now_names = now_held
                .get(&target)
                .into_iter()
                .flatten()
                .map(authz::full_name);
            remember.push(Memory {
                source_key: key,
                target_id: target,
                source_fingerprint: source_print,
                target_fingerprint: self.group_print(&group.name, now_names),
            });
        }
        if !remember.is_empty() {
            report.changed = true;
        }
        memory::remember(txn, Imported::Group, remember).await?;
        Ok(ids)
    }

    /// What authd should hold for a Django account.
    fn desired(&self, user: &DjangoUser, password: &Password) -> ImportedUser {
        let superuser = user.is_superuser && !self.options.no_superusers;
        let pending =
            !user.is_active && self.options.inactive_as_pending && user.last_login.is_none();
        ImportedUser {
            id: user.id,
            username: user.username.clone(),
            username_canonical: username::canonical(&user.username),
            email: user.email.clone(),
            email_canonical: self.email_canonical(&user.email),
            password: password.stored.clone(),
            is_active: user.is_active,
            activation_pending: pending,
            is_staff: user.is_staff && !(user.is_superuser && self.options.no_superusers),
            is_superuser: superuser,
            date_joined: self.time(user.date_joined),
            last_login: user.last_login.map(|t| self.time(t)),
        }
    }

    /// The Django row's fingerprint: the row without its hash, then the hash alone (from
    /// [`PASSWORD_PRINT`] on), so a re-run tells a new password from other changes.
    fn source_print(&self, user: &DjangoUser) -> String {
        let groups = self
            .groups_of_user
            .get(&user.id)
            .cloned()
            .unwrap_or_default();
        let permissions: BTreeSet<&String> = self
            .permissions_of_user
            .get(&user.id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.permission_names.get(id))
            .collect();
        let row = Fingerprint::of(&(
            &user.username,
            &user.email,
            (user.is_active, user.is_staff, user.is_superuser),
            user.last_login.map(|t| t.to_string()),
            groups,
            permissions,
        ));
        let password = Fingerprint::of(&user.password);
        format!(
            "{}{}",
            &row.0[..PASSWORD_PRINT],
            &password.0[..PASSWORD_PRINT]
        )
    }

    /// The account as authd holds it, in the terms a re-run compares: what an operator or
    /// the user could have changed. Not the hash (a login rewrites it without a change) but
    /// its version, and not `last_login`.
    fn target_print(
        user: &ImportedUser,
        password_version: i64,
        groups: &BTreeSet<i64>,
        permissions: &BTreeSet<i64>,
    ) -> String {
        Fingerprint::of(&(
            &user.username,
            &user.email,
            password_version,
            (
                user.is_active,
                user.activation_pending,
                user.is_staff,
                user.is_superuser,
            ),
            groups,
            permissions,
        ))
        .0
    }

    fn mapped(ids: &BTreeMap<i64, i64>, django: Option<&BTreeSet<i64>>) -> BTreeSet<i64> {
        django
            .into_iter()
            .flatten()
            .filter_map(|id| ids.get(id).copied())
            .collect()
    }

    /// One batch of accounts: new ones inserted with their ids, remembered ones updated where
    /// Django changed them and authd did not.
    async fn users(
        &self,
        txn: &Tx,
        batch: &[&DjangoUser],
        ids: &Ids,
        token_sessions: &BTreeSet<i64>,
        report: &mut Report,
    ) -> Result<Vec<Invalidation>, ImportError> {
        let user_ids: Vec<i64> = batch.iter().map(|u| u.id).collect();
        let keys: Vec<String> = user_ids.iter().map(|id| id.to_string()).collect();
        let remembered = memory::memories_of(txn, Imported::User, &keys).await?;
        let names: Vec<String> = batch
            .iter()
            .map(|u| username::canonical(&u.username))
            .collect();
        let emails: Vec<String> = batch
            .iter()
            .filter_map(|u| self.email_canonical(&u.email))
            .collect();
        let touching = memory::users_touching(txn, &user_ids, &names, &emails).await?;
        let by_id: BTreeMap<i64, &store::Principal> = touching.iter().map(|u| (u.id, u)).collect();
        let (group_links, permission_links) = memory::memberships(txn, &user_ids).await?;
        let held_groups = grouped(&group_links);
        let held_permissions = grouped(&permission_links);

        let mut inserts = Vec::new();
        let mut new_groups = Vec::new();
        let mut new_permissions = Vec::new();
        let mut remember = Vec::new();
        let mut changes = Vec::new();
        for user in batch {
            let password = Password::of(&user.password);
            let desired = self.desired(user, &password);
            let groups = Self::mapped(&ids.groups, self.groups_of_user.get(&user.id));
            let permissions =
                Self::mapped(&ids.permissions, self.permissions_of_user.get(&user.id));
            let source_print = self.source_print(user);
            let collision = touching.iter().find(|other| {
                other.id != user.id
                    && (other.username_canonical == desired.username_canonical
                        || desired.email_canonical.is_some()
                            && other.email_canonical == desired.email_canonical)
            });
            let collision_skip = |other: &store::Principal| {
                let reason = match other.username_canonical == desired.username_canonical {
                    true => "username_collision",
                    false => "email_collision",
                };
                Skip::colliding(user, reason, other.id, &other.username)
            };
            match remembered.get(&user.id.to_string()) {
                Some(memory) => {
                    let Some(current) = by_id.get(&memory.target_id) else {
                        report.users.skipped.push(Skip::of(
                            user.id,
                            &user.username,
                            "deleted_in_authd",
                        ));
                        continue;
                    };
                    if memory.source_fingerprint == source_print {
                        continue;
                    }
                    let empty = BTreeSet::new();
                    let as_now = ImportedUser {
                        username: current.username.clone(),
                        email: current.email.clone(),
                        is_active: current.is_active,
                        activation_pending: current.activation_pending,
                        is_staff: current.is_staff,
                        is_superuser: current.is_superuser,
                        ..desired.clone()
                    };
                    let now = Self::target_print(
                        &as_now,
                        current.password_version,
                        held_groups.get(&current.id).unwrap_or(&empty),
                        held_permissions.get(&current.id).unwrap_or(&empty),
                    );
                    if now != memory.target_fingerprint {
                        report.users.skipped.push(Skip::of(
                            user.id,
                            &user.username,
                            "changed_in_authd",
                        ));
                        continue;
                    }
                    if let Some(other) = collision {
                        report.users.skipped.push(collision_skip(other));
                        continue;
                    }
                    let password_changed = memory.source_fingerprint.get(PASSWORD_PRINT..)
                        != source_print.get(PASSWORD_PRINT..);
                    // A login on authd since is newer than Django's.
                    let desired = ImportedUser {
                        last_login: desired.last_login.max(current.last_login),
                        ..desired
                    };
                    memory::update_user(txn, &desired, password_changed).await?;
                    authz::set_user_groups(
                        txn,
                        user.id,
                        &groups.iter().copied().collect::<Vec<_>>(),
                    )
                    .await?;
                    authz::set_user_permissions(
                        txn,
                        user.id,
                        &permissions.iter().copied().collect::<Vec<_>>(),
                    )
                    .await?;
                    let version = current.password_version + i64::from(password_changed);
                    // Sessions opened on authd with the old password, or before Django
                    // deactivated the account, end; the DRF tokens mirror Django, whose tokens
                    // outlive both (and an inactive account's are refused anyway).
                    if password_changed || (current.is_active && !desired.is_active) {
                        let ended: Vec<i64> = memory::sessions_of_user(txn, user.id)
                            .await?
                            .into_iter()
                            .filter(|session| !token_sessions.contains(session))
                            .collect();
                        sessions::delete_ids(txn, ended.clone()).await?;
                        changes.extend(ended.into_iter().map(Invalidation::Session));
                    }
                    if password_changed {
                        report.count_hash(&password);
                    }
                    changes.push(Invalidation::User(user.id));
                    report.users.updated += 1;
                    remember.push(Memory {
                        source_key: user.id.to_string(),
                        target_id: user.id,
                        source_fingerprint: source_print,
                        target_fingerprint: Self::target_print(
                            &desired,
                            version,
                            &groups,
                            &permissions,
                        ),
                    });
                }
                None => {
                    if let Some(holder) = by_id.get(&user.id) {
                        report.users.skipped.push(Skip::colliding(
                            user,
                            "id_taken",
                            holder.id,
                            &holder.username,
                        ));
                        continue;
                    }
                    if let Some(other) = collision {
                        report.users.skipped.push(collision_skip(other));
                        continue;
                    }
                    report.count_hash(&password);
                    if desired.is_superuser {
                        report.superusers.push(Collision {
                            id: user.id,
                            username: user.username.clone(),
                        });
                    }
                    new_groups.extend(groups.iter().map(|&group| (user.id, group)));
                    new_permissions
                        .extend(permissions.iter().map(|&permission| (user.id, permission)));
                    remember.push(Memory {
                        source_key: user.id.to_string(),
                        target_id: user.id,
                        source_fingerprint: source_print,
                        target_fingerprint: Self::target_print(&desired, 0, &groups, &permissions),
                    });
                    report.users.imported += 1;
                    inserts.push(desired);
                }
            }
        }
        memory::insert_users(txn, &inserts).await?;
        memory::insert_memberships(txn, &new_groups, &new_permissions).await?;
        if !remember.is_empty() {
            report.changed = true;
        }
        memory::remember(txn, Imported::User, remember).await?;
        Ok(changes)
    }

    /// Accounts an earlier run brought that Django no longer has: listed, and left in authd
    /// (deleting an account is the operator's call).
    async fn deleted_in_django(&self, db: &Db, report: &mut Report) -> Result<(), ImportError> {
        let present: BTreeSet<String> = self
            .snapshot
            .users
            .iter()
            .map(|user| user.id.to_string())
            .collect();
        for (key, memory) in memory::memories(db, Imported::User).await? {
            if !present.contains(&key) {
                let name = memory::username_of(db, memory.target_id)
                    .await?
                    .unwrap_or_default();
                report
                    .users
                    .skipped
                    .push(Skip::of(memory.target_id, &name, "deleted_in_django"));
            }
        }
        Ok(())
    }

    /// What an earlier run brought: token memories, which of their sessions authd still has,
    /// and which accounts were imported.
    async fn known_tokens(&self, txn: &Tx) -> Result<KnownTokens, ImportError> {
        let remembered = memory::memories(txn, Imported::Token).await?;
        let live = memory::live_sessions(
            txn,
            &remembered.values().map(|m| m.target_id).collect::<Vec<_>>(),
        )
        .await?
        .into_iter()
        .collect();
        let users = memory::target_ids(txn, Imported::User)
            .await?
            .into_iter()
            .collect();
        Ok(KnownTokens {
            remembered,
            live,
            users,
        })
    }

    /// Tokens an earlier run brought that Django has since deleted (or replaced): their
    /// sessions end in authd too. Returns the sessions ended, with their users.
    async fn end_vanished_tokens(
        &self,
        txn: &Tx,
        known: &KnownTokens,
        report: &mut Report,
    ) -> Result<Vec<(Invalidation, i64)>, ImportError> {
        let present: BTreeSet<String> = self
            .snapshot
            .tokens
            .iter()
            .map(|token| crypto::token_digest(&token.key))
            .collect();
        let mut ended = Vec::new();
        let mut vanished = Vec::new();
        for (digest, memory) in &known.remembered {
            if present.contains(digest) {
                continue;
            }
            if known.live.contains(&memory.target_id) {
                let user_id = memory::session_user(txn, memory.target_id)
                    .await?
                    .unwrap_or_default();
                sessions::delete_ids(txn, vec![memory.target_id]).await?;
                ended.push((Invalidation::Session(memory.target_id), user_id));
                report.tokens.deleted += 1;
            }
            vanished.push(digest.clone());
        }
        if !vanished.is_empty() {
            report.changed = true;
        }
        memory::forget(txn, Imported::Token, vanished).await?;
        Ok(ended)
    }

    /// DRF tokens: each a Djoser-kind session holding the key's digest. A token an earlier run
    /// brought and authd has since ended (a logout) is never brought back. Returns the users
    /// given a token.
    async fn tokens(
        &self,
        txn: &Tx,
        batch: &[&DjangoToken],
        known: &KnownTokens,
        report: &mut Report,
    ) -> Result<BTreeSet<i64>, ImportError> {
        let name_of = |id: i64| self.usernames.get(&id).copied().unwrap_or_default();
        let owners: Vec<i64> = batch.iter().map(|token| token.user_id).collect();
        let existing: BTreeSet<i64> = memory::users_touching(txn, &owners, &[], &[])
            .await?
            .into_iter()
            .map(|user| user.id)
            .collect();
        let mut remember = Vec::new();
        let mut added_for = BTreeSet::new();
        for token in batch {
            let digest = crypto::token_digest(&token.key);
            let skip = |reason| Skip::of(token.user_id, name_of(token.user_id), reason);
            if let Some(memory) = known.remembered.get(&digest) {
                if !known.live.contains(&memory.target_id) {
                    report.tokens.skipped.push(skip("revoked_in_authd"));
                }
                continue;
            }
            if !crypto::is_drf_key(&token.key) {
                report.tokens.skipped.push(skip("invalid_key"));
                continue;
            }
            if !known.users.contains(&token.user_id) || !existing.contains(&token.user_id) {
                report.tokens.skipped.push(skip("user_not_imported"));
                continue;
            }
            let from = match self.options.keep_token_age {
                true => self.time(token.created),
                false => self.now,
            };
            let expires_at = (!self.token_ttl.is_zero()).then(|| {
                from + chrono::Duration::from_std(self.token_ttl).unwrap_or(chrono::Duration::MAX)
            });
            if expires_at.is_some_and(|at| at <= self.now) {
                report.tokens.skipped.push(skip("expired"));
                continue;
            }
            let session = sessions::insert(
                txn,
                sessions::NewSession {
                    public_id: crypto::random_hex(16),
                    user_id: token.user_id,
                    kind: SessionKind::Token,
                    client_id: None,
                    name: TOKEN_SESSION_NAME.to_owned(),
                    client_ip: None,
                    expires_at,
                    scope: None,
                },
            )
            .await?;
            tokens::insert(
                txn,
                tokens::NewToken {
                    digest: digest.clone(),
                    user_id: token.user_id,
                    session_id: session.id,
                    kind: TokenKind::Login,
                    expires_at,
                },
            )
            .await?;
            added_for.insert(token.user_id);
            report.tokens.imported += 1;
            remember.push(Memory {
                source_key: digest,
                target_id: session.id,
                source_fingerprint: Fingerprint::of(&(token.user_id, token.created.to_string())).0,
                target_fingerprint: Fingerprint::of(&session.id).0,
            });
        }
        if !remember.is_empty() {
            report.changed = true;
        }
        memory::remember(txn, Imported::Token, remember).await?;
        Ok(added_for)
    }
}

/// What the token batches share.
struct KnownTokens {
    /// Token memories by key digest.
    remembered: BTreeMap<String, Memory>,
    /// Which of their sessions authd still has.
    live: BTreeSet<i64>,
    /// Imported accounts.
    users: BTreeSet<i64>,
}
