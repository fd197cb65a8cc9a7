//! Queries on Django's groups and permissions: the five `auth_*` tables.

use std::collections::BTreeMap;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Set, Statement,
};

use super::entity::{
    auth_group, auth_group_permissions, auth_permission, auth_user_groups,
    auth_user_user_permissions,
};

pub use auth_group::Model as Group;
pub use auth_permission::Model as Permission;

/// Which of the authorization tables' unique indexes a write hit: SQLite names the columns
/// ("UNIQUE constraint failed: auth_group.name"), PostgreSQL the constraint
/// (`auth_group_name_key`, `auth_permission_app_label_codename_uniq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    GroupName,
    Permission,
}

impl super::Unique for Taken {
    fn of(violated: &str) -> Option<Self> {
        if violated.contains("auth_group.name") || violated.contains("auth_group_name_key") {
            Some(Taken::GroupName)
        } else if violated.contains("auth_permission") {
            Some(Taken::Permission)
        } else {
            None
        }
    }
}

/// A permission's name as `has_perm` sees it: `app_label.codename`.
pub fn full_name(permission: &Permission) -> String {
    format!("{}.{}", permission.app_label, permission.codename)
}

/// What a user holds: their groups' names and their effective permissions
/// (`app_label.codename`), both sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub groups: Vec<String>,
    pub permissions: Vec<String>,
}

impl Grants {
    /// From the two JSON arrays of names [`grants_sql`] selects (sorted, each name once).
    pub(super) fn from_json(groups: &str, permissions: &str) -> Result<Self, DbErr> {
        let names = |json: &str| {
            serde_json::from_str::<Vec<String>>(json)
                .map_err(|err| DbErr::Type(format!("a list of names: {err}")))
        };
        let mut grants = Grants {
            groups: names(groups)?,
            permissions: names(permissions)?,
        };
        grants.groups.sort();
        grants.groups.dedup();
        grants.permissions.sort();
        grants.permissions.dedup();
        Ok(grants)
    }
}

/// Two scalar subqueries, each a JSON array of names: the groups of the user whose id is the
/// SQL expression `user`, and their effective permissions: their direct permissions and their
/// groups' (Django's `ModelBackend`), or, when the SQL condition `superuser` holds, every
/// permission there is. Columns of the outer query may be named, so the token guard reads a
/// token and everything its user holds in one statement.
pub(super) fn grants_sql(backend: DbBackend, user: &str, superuser: &str) -> (String, String) {
    let list = |name: &str| match backend {
        DbBackend::Postgres => format!("coalesce(json_agg({name})::text, '[]')"),
        _ => format!("json_group_array({name})"),
    };
    let name = "p.app_label || '.' || p.codename";
    // The tables that grow with the users go unaliased, so that query plans name them.
    let groups = format!(
        "(SELECT {} FROM auth_group g JOIN auth_user_groups \
         ON auth_user_groups.group_id = g.id WHERE auth_user_groups.user_id = {user})",
        list("g.name")
    );
    let permissions = format!(
        "(SELECT {} FROM (\
         SELECT {name} AS name FROM auth_permission p WHERE {superuser} \
         UNION SELECT {name} FROM auth_user_user_permissions \
         JOIN auth_permission p ON p.id = auth_user_user_permissions.permission_id \
         WHERE auth_user_user_permissions.user_id = {user} \
         UNION SELECT {name} FROM auth_user_groups \
         JOIN auth_group_permissions gp ON gp.group_id = auth_user_groups.group_id \
         JOIN auth_permission p ON p.id = gp.permission_id \
         WHERE auth_user_groups.user_id = {user}) AS held)",
        list("held.name")
    );
    (groups, permissions)
}

/// A user's groups and effective permissions in one round trip.
pub async fn grants(
    db: &impl ConnectionTrait,
    user_id: i64,
    is_superuser: bool,
) -> Result<Grants, DbErr> {
    let backend = db.get_database_backend();
    let (user, superuser) = match backend {
        DbBackend::Postgres => ("$1", "$2"),
        _ => ("?1", "?2"),
    };
    let (groups, permissions) = grants_sql(backend, user, superuser);
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!("SELECT {groups} AS groups, {permissions} AS permissions"),
            [user_id.into(), is_superuser.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("a user's grants".to_owned()))?;
    Grants::from_json(
        &row.try_get::<String>("", "groups")?,
        &row.try_get::<String>("", "permissions")?,
    )
}

/// Serialises every change to groups and permissions, so that a change re-checks the acting
/// user's own grants inside its transaction without another change landing beside it. SQLite's
/// write transactions are serial already.
pub async fn lock(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared("SELECT pg_advisory_xact_lock(14140001)")
            .await?;
    }
    Ok(())
}

pub async fn permissions(db: &impl ConnectionTrait) -> Result<Vec<Permission>, DbErr> {
    auth_permission::Entity::find()
        .order_by_asc(auth_permission::Column::AppLabel)
        .order_by_asc(auth_permission::Column::Codename)
        .all(db)
        .await
}

pub async fn permission(db: &impl ConnectionTrait, id: i64) -> Result<Option<Permission>, DbErr> {
    auth_permission::Entity::find_by_id(id).one(db).await
}

/// The permissions among `names` (`(app_label, codename)` pairs) that exist.
pub async fn permissions_named(
    db: &impl ConnectionTrait,
    names: &[(String, String)],
) -> Result<Vec<Permission>, DbErr> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut any = Condition::any();
    for (app_label, codename) in names {
        any = any.add(
            Condition::all()
                .add(auth_permission::Column::AppLabel.eq(app_label.as_str()))
                .add(auth_permission::Column::Codename.eq(codename.as_str())),
        );
    }
    auth_permission::Entity::find().filter(any).all(db).await
}

pub async fn insert_permission(
    db: &impl ConnectionTrait,
    app_label: &str,
    codename: &str,
    name: &str,
) -> Result<Permission, DbErr> {
    auth_permission::ActiveModel {
        app_label: Set(app_label.to_owned()),
        codename: Set(codename.to_owned()),
        name: Set(name.to_owned()),
        ..Default::default()
    }
    .insert(db)
    .await
}

pub async fn update_permission(
    db: &impl ConnectionTrait,
    changed: Permission,
) -> Result<Permission, DbErr> {
    auth_permission::ActiveModel {
        id: Set(changed.id),
        app_label: Set(changed.app_label),
        codename: Set(changed.codename),
        name: Set(changed.name),
    }
    .update(db)
    .await
}

/// Deletes a permission; every grant of it goes with it (cascade).
pub async fn delete_permission(db: &impl ConnectionTrait, id: i64) -> Result<(), DbErr> {
    auth_permission::Entity::delete_by_id(id)
        .exec(db)
        .await
        .map(|_| ())
}

pub async fn groups(db: &impl ConnectionTrait) -> Result<Vec<Group>, DbErr> {
    auth_group::Entity::find()
        .order_by_asc(auth_group::Column::Id)
        .all(db)
        .await
}

pub async fn group(db: &impl ConnectionTrait, id: i64) -> Result<Option<Group>, DbErr> {
    auth_group::Entity::find_by_id(id).one(db).await
}

pub async fn groups_named(
    db: &impl ConnectionTrait,
    names: &[String],
) -> Result<Vec<Group>, DbErr> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    auth_group::Entity::find()
        .filter(auth_group::Column::Name.is_in(names.iter().map(String::as_str)))
        .all(db)
        .await
}

pub async fn insert_group(db: &impl ConnectionTrait, name: &str) -> Result<Group, DbErr> {
    auth_group::ActiveModel {
        name: Set(name.to_owned()),
        ..Default::default()
    }
    .insert(db)
    .await
}

pub async fn rename_group(db: &impl ConnectionTrait, id: i64, name: &str) -> Result<Group, DbErr> {
    auth_group::ActiveModel {
        id: Set(id),
        name: Set(name.to_owned()),
    }
    .update(db)
    .await
}

/// Deletes a group; its memberships and grants go with it (cascade).
pub async fn delete_group(db: &impl ConnectionTrait, id: i64) -> Result<(), DbErr> {
    auth_group::Entity::delete_by_id(id)
        .exec(db)
        .await
        .map(|_| ())
}

/// Each group's permissions, for the groups in `group_ids`.
pub async fn permissions_of_groups(
    db: &impl ConnectionTrait,
    group_ids: &[i64],
) -> Result<BTreeMap<i64, Vec<Permission>>, DbErr> {
    let mut held: BTreeMap<i64, Vec<Permission>> = BTreeMap::new();
    if group_ids.is_empty() {
        return Ok(held);
    }
    let links = auth_group_permissions::Entity::find()
        .filter(auth_group_permissions::Column::GroupId.is_in(group_ids.iter().copied()))
        .all(db)
        .await?;
    let permissions = by_id(db, links.iter().map(|link| link.permission_id)).await?;
    for link in links {
        if let Some(permission) = permissions.get(&link.permission_id) {
            held.entry(link.group_id)
                .or_default()
                .push(permission.clone());
        }
    }
    for list in held.values_mut() {
        list.sort_by(|a, b| (&a.app_label, &a.codename).cmp(&(&b.app_label, &b.codename)));
    }
    Ok(held)
}

async fn by_id(
    db: &impl ConnectionTrait,
    ids: impl Iterator<Item = i64>,
) -> Result<BTreeMap<i64, Permission>, DbErr> {
    let ids: Vec<i64> = ids.collect();
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    Ok(auth_permission::Entity::find()
        .filter(auth_permission::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|permission| (permission.id, permission))
        .collect())
}

pub async fn set_group_permissions(
    db: &impl ConnectionTrait,
    group_id: i64,
    permission_ids: &[i64],
) -> Result<(), DbErr> {
    auth_group_permissions::Entity::delete_many()
        .filter(auth_group_permissions::Column::GroupId.eq(group_id))
        .exec(db)
        .await?;
    if permission_ids.is_empty() {
        return Ok(());
    }
    auth_group_permissions::Entity::insert_many(permission_ids.iter().map(|&permission_id| {
        auth_group_permissions::ActiveModel {
            group_id: Set(group_id),
            permission_id: Set(permission_id),
            ..Default::default()
        }
    }))
    .exec(db)
    .await
    .map(|_| ())
}

/// A user's groups, by name.
pub async fn groups_of_user(db: &impl ConnectionTrait, user_id: i64) -> Result<Vec<Group>, DbErr> {
    let ids: Vec<i64> = auth_user_groups::Entity::find()
        .filter(auth_user_groups::Column::UserId.eq(user_id))
        .all(db)
        .await?
        .into_iter()
        .map(|link| link.group_id)
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    auth_group::Entity::find()
        .filter(auth_group::Column::Id.is_in(ids))
        .order_by_asc(auth_group::Column::Name)
        .all(db)
        .await
}

pub async fn set_user_groups(
    db: &impl ConnectionTrait,
    user_id: i64,
    group_ids: &[i64],
) -> Result<(), DbErr> {
    auth_user_groups::Entity::delete_many()
        .filter(auth_user_groups::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    if group_ids.is_empty() {
        return Ok(());
    }
    auth_user_groups::Entity::insert_many(group_ids.iter().map(|&group_id| {
        auth_user_groups::ActiveModel {
            user_id: Set(user_id),
            group_id: Set(group_id),
            ..Default::default()
        }
    }))
    .exec(db)
    .await
    .map(|_| ())
}

/// A user's direct permissions (not their groups'), sorted by name.
pub async fn permissions_of_user(
    db: &impl ConnectionTrait,
    user_id: i64,
) -> Result<Vec<Permission>, DbErr> {
    let links = auth_user_user_permissions::Entity::find()
        .filter(auth_user_user_permissions::Column::UserId.eq(user_id))
        .all(db)
        .await?;
    let mut held: Vec<Permission> = by_id(db, links.iter().map(|link| link.permission_id))
        .await?
        .into_values()
        .collect();
    held.sort_by(|a, b| (&a.app_label, &a.codename).cmp(&(&b.app_label, &b.codename)));
    Ok(held)
}

pub async fn set_user_permissions(
    db: &impl ConnectionTrait,
    user_id: i64,
    permission_ids: &[i64],
) -> Result<(), DbErr> {
    auth_user_user_permissions::Entity::delete_many()
        .filter(auth_user_user_permissions::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    if permission_ids.is_empty() {
        return Ok(());
    }
    auth_user_user_permissions::Entity::insert_many(permission_ids.iter().map(|&permission_id| {
        auth_user_user_permissions::ActiveModel {
            user_id: Set(user_id),
            permission_id: Set(permission_id),
            ..Default::default()
        }
    }))
    .exec(db)
    .await
    .map(|_| ())
}

pub async fn set_roles(
    db: &impl ConnectionTrait,
    user_id: i64,
    is_staff: bool,
    is_superuser: bool,
) -> Result<(), DbErr> {
    use super::entity::auth_user::{Column, Entity};
    Entity::update_many()
        .col_expr(Column::IsStaff, is_staff.into())
        .col_expr(Column::IsSuperuser, is_superuser.into())
        .filter(Column::Id.eq(user_id))
        .exec(db)
        .await
        .map(|_| ())
}
