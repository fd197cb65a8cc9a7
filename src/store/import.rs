//! Writes of `authd import-django` into authd's own database: rows with the ids Django gave
//! them, the `django_import` memory of what was brought over, and the sequences set past them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set, sea_query::Expr,
};

use super::entity::{
    auth_group, auth_permission, auth_session, auth_user, auth_user_groups,
    auth_user_user_permissions, django_import,
};
use super::users::Principal;

/// What kind of row an import memory is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Imported {
    User,
    Token,
    Group,
    Permission,
}

impl Imported {
    fn stored(self) -> &'static str {
        match self {
            Imported::User => "user",
            Imported::Token => "token",
            Imported::Group => "group",
            Imported::Permission => "permission",
        }
    }
}

/// One remembered row: where it came from, where it went, and how both looked then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    pub source_key: String,
    pub target_id: i64,
    pub source_fingerprint: String,
    pub target_fingerprint: String,
}

/// Every memory of one kind, by source key.
pub async fn memories(
    db: &impl ConnectionTrait,
    kind: Imported,
) -> Result<BTreeMap<String, Memory>, DbErr> {
    Ok(django_import::Entity::find()
        .filter(django_import::Column::Kind.eq(kind.stored()))
        .all(db)
        .await?
        .into_iter()
        .map(memory_of)
        .collect())
}

/// The authd rows of one kind that an import brought.
pub async fn target_ids(db: &impl ConnectionTrait, kind: Imported) -> Result<Vec<i64>, DbErr> {
    django_import::Entity::find()
        .select_only()
        .column(django_import::Column::TargetId)
        .filter(django_import::Column::Kind.eq(kind.stored()))
        .into_tuple::<i64>()
        .all(db)
        .await
}

/// Whether an import ever brought a row of this kind.
pub async fn any(db: &impl ConnectionTrait, kind: Imported) -> Result<bool, DbErr> {
    Ok(django_import::Entity::find()
        .filter(django_import::Column::Kind.eq(kind.stored()))
        .one(db)
        .await?
        .is_some())
}

/// The memories of one kind under these source keys.
pub async fn memories_of(
    db: &impl ConnectionTrait,
    kind: Imported,
    source_keys: &[String],
) -> Result<BTreeMap<String, Memory>, DbErr> {
    let mut found = BTreeMap::new();
    for chunk in source_keys.chunks(500) {
        let rows = django_import::Entity::find()
            .filter(django_import::Column::Kind.eq(kind.stored()))
            .filter(django_import::Column::SourceKey.is_in(chunk.iter().cloned()))
            .all(db)
            .await?;
        found.extend(rows.into_iter().map(memory_of));
    }
    Ok(found)
}

fn memory_of(row: django_import::Model) -> (String, Memory) {
    (
        row.source_key.clone(),
        Memory {
            source_key: row.source_key,
            target_id: row.target_id,
            source_fingerprint: row.source_fingerprint,
            target_fingerprint: row.target_fingerprint,
        },
    )
}

/// Remembers rows (replacing what was remembered under the same keys).
pub async fn remember(
    db: &impl ConnectionTrait,
    kind: Imported,
    rows: Vec<Memory>,
) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    forget(
        db,
        kind,
        rows.iter().map(|row| row.source_key.clone()).collect(),
    )
    .await?;
    let now = Utc::now();
    for chunk in rows.chunks(500) {
        django_import::Entity::insert_many(chunk.iter().map(|row| django_import::ActiveModel {
            kind: Set(kind.stored().to_owned()),
            source_key: Set(row.source_key.clone()),
            target_id: Set(row.target_id),
            source_fingerprint: Set(row.source_fingerprint.clone()),
            target_fingerprint: Set(row.target_fingerprint.clone()),
            imported_at: Set(now),
            ..Default::default()
        }))
        .exec(db)
        .await?;
    }
    Ok(())
}

pub async fn forget(
    db: &impl ConnectionTrait,
    kind: Imported,
    source_keys: Vec<String>,
) -> Result<(), DbErr> {
    for chunk in source_keys.chunks(500) {
        django_import::Entity::delete_many()
            .filter(django_import::Column::Kind.eq(kind.stored()))
            .filter(django_import::Column::SourceKey.is_in(chunk.iter().cloned()))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// How many accounts no import brought, and the first of them: a target that already serves
/// users of its own.
pub async fn foreign_users(db: &impl ConnectionTrait) -> Result<(u64, Option<Principal>), DbErr> {
    let imported = django_import::Entity::find()
        .select_only()
        .column(django_import::Column::TargetId)
        .filter(django_import::Column::Kind.eq(Imported::User.stored()))
        .into_query();
    let foreign = Condition::all().add(auth_user::Column::Id.not_in_subquery(imported));
    let count = auth_user::Entity::find()
        .filter(foreign.clone())
        .count(db)
        .await?;
    let first = auth_user::Entity::find()
        .filter(foreign)
        .order_by_asc(auth_user::Column::Id)
        .one(db)
        .await?
        .map(Principal::from);
    Ok((count, first))
}

/// The accounts holding any of these ids, canonical names or canonical emails.
pub async fn users_touching(
    db: &impl ConnectionTrait,
    ids: &[i64],
    canonical_names: &[String],
    canonical_emails: &[String],
) -> Result<Vec<Principal>, DbErr> {
    let mut found: BTreeMap<i64, Principal> = BTreeMap::new();
    for chunk in ids.chunks(500) {
        add_users(
            db,
            auth_user::Column::Id.is_in(chunk.iter().copied()),
            &mut found,
        )
        .await?;
    }
    for chunk in canonical_names.chunks(500) {
        let condition = auth_user::Column::UsernameCanonical.is_in(chunk.iter().cloned());
        add_users(db, condition, &mut found).await?;
    }
    for chunk in canonical_emails.chunks(500) {
        let condition = auth_user::Column::EmailCanonical.is_in(chunk.iter().cloned());
        add_users(db, condition, &mut found).await?;
    }
    Ok(found.into_values().collect())
}

async fn add_users(
    db: &impl ConnectionTrait,
    condition: impl sea_orm::sea_query::IntoCondition,
    found: &mut BTreeMap<i64, Principal>,
) -> Result<(), DbErr> {
    for row in auth_user::Entity::find().filter(condition).all(db).await? {
        found.insert(row.id, Principal::from(row));
    }
    Ok(())
}

/// An account as Django had it, with the id it keeps. The hash stays out of `Debug`.
#[derive(Clone)]
pub struct ImportedUser {
    pub id: i64,
    pub username: String,
    pub username_canonical: String,
    pub email: String,
    pub email_canonical: Option<String>,
    pub password: String,
    pub is_active: bool,
    pub activation_pending: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub date_joined: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for ImportedUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportedUser")
            .field("id", &self.id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

pub async fn insert_users(db: &impl ConnectionTrait, users: &[ImportedUser]) -> Result<(), DbErr> {
    for chunk in users.chunks(200) {
        auth_user::Entity::insert_many(chunk.iter().map(|user| auth_user::ActiveModel {
            id: Set(user.id),
            username: Set(user.username.clone()),
            username_canonical: Set(user.username_canonical.clone()),
            email: Set(user.email.clone()),
            email_canonical: Set(user.email_canonical.clone()),
            password: Set(user.password.clone()),
            password_version: Set(0),
            is_active: Set(user.is_active),
            activation_pending: Set(user.activation_pending),
            is_staff: Set(user.is_staff),
            is_superuser: Set(user.is_superuser),
            date_joined: Set(user.date_joined),
            last_login: Set(user.last_login),
        }))
        .exec_without_returning(db)
        .await?;
    }
    Ok(())
}

/// Applies Django's newer state to an imported account. A new hash is a password change
/// ([`super::users::set_password`]): its version moves, so every credential-dependent write in
/// flight re-checks and fails.
pub async fn update_user(
    db: &impl ConnectionTrait,
    user: &ImportedUser,
    password_changed: bool,
) -> Result<(), DbErr> {
    use auth_user::Column;
    auth_user::Entity::update_many()
        .col_expr(Column::Username, Expr::value(user.username.clone()))
        .col_expr(
            Column::UsernameCanonical,
            Expr::value(user.username_canonical.clone()),
        )
        .col_expr(Column::Email, Expr::value(user.email.clone()))
        .col_expr(
            Column::EmailCanonical,
            Expr::value(user.email_canonical.clone()),
        )
        .col_expr(Column::IsActive, Expr::value(user.is_active))
        .col_expr(
            Column::ActivationPending,
            Expr::value(user.activation_pending),
        )
        .col_expr(Column::IsStaff, Expr::value(user.is_staff))
        .col_expr(Column::IsSuperuser, Expr::value(user.is_superuser))
        .col_expr(Column::LastLogin, Expr::value(user.last_login))
        .filter(Column::Id.eq(user.id))
        .exec(db)
        .await?;
    if password_changed {
        super::users::set_password(db, user.id, &user.password).await?;
    }
    Ok(())
}

/// Group and direct-permission links of these users: (user id, group id), (user id,
/// permission id).
pub async fn memberships(
    db: &impl ConnectionTrait,
    user_ids: &[i64],
) -> Result<(Vec<(i64, i64)>, Vec<(i64, i64)>), DbErr> {
    let mut groups = Vec::new();
    let mut permissions = Vec::new();
    for chunk in user_ids.chunks(500) {
        groups.extend(
            auth_user_groups::Entity::find()
                .filter(auth_user_groups::Column::UserId.is_in(chunk.iter().copied()))
                .all(db)
                .await?
                .into_iter()
                .map(|link| (link.user_id, link.group_id)),
        );
        permissions.extend(
            auth_user_user_permissions::Entity::find()
                .filter(auth_user_user_permissions::Column::UserId.is_in(chunk.iter().copied()))
                .all(db)
                .await?
                .into_iter()
                .map(|link| (link.user_id, link.permission_id)),
        );
    }
    Ok((groups, permissions))
}

/// Links of new accounts, in bulk.
pub async fn insert_memberships(
    db: &impl ConnectionTrait,
    groups: &[(i64, i64)],
    permissions: &[(i64, i64)],
) -> Result<(), DbErr> {
    for chunk in groups.chunks(500) {
        auth_user_groups::Entity::insert_many(chunk.iter().map(|&(user_id, group_id)| {
            auth_user_groups::ActiveModel {
                user_id: Set(user_id),
                group_id: Set(group_id),
                ..Default::default()
            }
        }))
        .exec_without_returning(db)
        .await?;
    }
    for chunk in permissions.chunks(500) {
        auth_user_user_permissions::Entity::insert_many(chunk.iter().map(
            |&(user_id, permission_id)| auth_user_user_permissions::ActiveModel {
                user_id: Set(user_id),
                permission_id: Set(permission_id),
                ..Default::default()
            },
        ))
        .exec_without_returning(db)
        .await?;
    }
    Ok(())
}

/// Which of these ids a table already holds.
pub async fn taken_ids(
    db: &impl ConnectionTrait,
    table: IdTable,
    ids: &[i64],
) -> Result<Vec<i64>, DbErr> {
    let mut taken = Vec::new();
    for chunk in ids.chunks(500) {
        let chunk = chunk.iter().copied();
        taken.extend(match table {
            IdTable::Group => auth_group::Entity::find()
                .filter(auth_group::Column::Id.is_in(chunk))
                .all(db)
                .await?
                .into_iter()
                .map(|row| row.id)
                .collect::<Vec<_>>(),
            IdTable::Permission => auth_permission::Entity::find()
                .filter(auth_permission::Column::Id.is_in(chunk))
                .all(db)
                .await?
                .into_iter()
                .map(|row| row.id)
                .collect(),
        });
    }
    Ok(taken)
}

#[derive(Debug, Clone, Copy)]
pub enum IdTable {
    Group,
    Permission,
}

/// The highest id in a table (0 when empty).
pub async fn max_id(db: &impl ConnectionTrait, table: IdTable) -> Result<i64, DbErr> {
    let highest: Option<Option<i64>> = match table {
        IdTable::Group => {
            auth_group::Entity::find()
                .select_only()
                .expr(auth_group::Column::Id.max())
                .into_tuple()
                .one(db)
                .await?
        }
        IdTable::Permission => {
            auth_permission::Entity::find()
                .select_only()
                .expr(auth_permission::Column::Id.max())
                .into_tuple()
                .one(db)
                .await?
        }
    };
    Ok(highest.flatten().unwrap_or(0))
}

/// A group with the id the import chose ([`advance_sequences`] moves past it).
pub async fn insert_group(db: &impl ConnectionTrait, id: i64, name: &str) -> Result<(), DbErr> {
    auth_group::Entity::insert(auth_group::ActiveModel {
        id: Set(id),
        name: Set(name.to_owned()),
    })
    .exec_without_returning(db)
    .await
    .map(|_| ())
}

/// A permission with the id the import chose ([`advance_sequences`] moves past it).
pub async fn insert_permission(
    db: &impl ConnectionTrait,
    id: i64,
    app_label: &str,
    codename: &str,
    name: &str,
) -> Result<(), DbErr> {
    auth_permission::Entity::insert(auth_permission::ActiveModel {
        id: Set(id),
        app_label: Set(app_label.to_owned()),
        codename: Set(codename.to_owned()),
        name: Set(name.to_owned()),
    })
    .exec_without_returning(db)
    .await
    .map(|_| ())
}

/// Which of these sessions still exist.
pub async fn live_sessions(db: &impl ConnectionTrait, ids: &[i64]) -> Result<Vec<i64>, DbErr> {
    let mut live = Vec::new();
    for chunk in ids.chunks(500) {
        live.extend(
            auth_session::Entity::find()
                .select_only()
                .column(auth_session::Column::Id)
                .filter(auth_session::Column::Id.is_in(chunk.iter().copied()))
                .into_tuple::<i64>()
                .all(db)
                .await?,
        );
    }
    Ok(live)
}

/// A user's sessions.
pub async fn sessions_of_user(db: &impl ConnectionTrait, user_id: i64) -> Result<Vec<i64>, DbErr> {
    auth_session::Entity::find()
        .select_only()
        .column(auth_session::Column::Id)
        .filter(auth_session::Column::UserId.eq(user_id))
        .into_tuple::<i64>()
        .all(db)
        .await
}

/// Whose a session is.
pub async fn session_user(db: &impl ConnectionTrait, id: i64) -> Result<Option<i64>, DbErr> {
    auth_session::Entity::find_by_id(id)
        .select_only()
        .column(auth_session::Column::UserId)
        .into_tuple::<i64>()
        .one(db)
        .await
}

pub async fn user_exists(db: &impl ConnectionTrait, id: i64) -> Result<bool, DbErr> {
    Ok(username_of(db, id).await?.is_some())
}

pub async fn username_of(db: &impl ConnectionTrait, id: i64) -> Result<Option<String>, DbErr> {
    auth_user::Entity::find_by_id(id)
        .select_only()
        .column(auth_user::Column::Username)
        .into_tuple::<String>()
        .one(db)
        .await
}

/// Refreshes PostgreSQL's statistics of the tables an import fills. A target that starts empty
/// has statistics of an empty table, and the plans cached for the import's own lookups (a
/// batch's names among the accounts) stay sequential scans while the table grows: measured at
/// 100,000 accounts without autovacuum, each batch took 9 s at the end instead of 0.1 s.
/// Analysing invalidates those plans. Inside the batch's transaction, its own rows count.
pub async fn analyze(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    db.execute_unprepared(
        "ANALYZE auth_user, django_import, auth_user_groups, auth_user_user_permissions, \
         auth_session, auth_token",
    )
    .await
    .map(|_| ())
}

/// After rows were written with explicit ids, the ids authd gives next must come after them,
/// and after `highest_user` (the source's highest account id, skipped accounts included: one
/// skipped today may come over later, keeping its id). PostgreSQL: the sequences. SQLite:
/// AUTOINCREMENT follows explicit ids by itself, and `sqlite_sequence` is raised for the rest.
pub async fn advance_sequences(db: &impl ConnectionTrait, highest_user: i64) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        db.execute_raw(sea_orm::Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "UPDATE sqlite_sequence SET seq = ? WHERE name = 'auth_user' AND seq < ?",
            [highest_user.into(), highest_user.into()],
        ))
        .await?;
        db.execute_raw(sea_orm::Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "INSERT INTO sqlite_sequence (name, seq) SELECT 'auth_user', ? \
             WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'auth_user')",
            [highest_user.into()],
        ))
        .await?;
        return Ok(());
    }
    for (table, floor) in [
        ("auth_user", highest_user),
        ("auth_group", 0),
        ("auth_permission", 0),
    ] {
        db.execute_raw(sea_orm::Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "SELECT setval(sequence, highest) FROM (SELECT \
                 pg_get_serial_sequence('{table}', 'id')::regclass AS sequence, \
                 GREATEST((SELECT MAX(id) FROM {table}), $1) AS highest) AS current \
                 WHERE highest > COALESCE(pg_sequence_last_value(sequence), 0)"
            ),
            [floor.into()],
        ))
        .await?;
    }
    Ok(())
}
