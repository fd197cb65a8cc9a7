//! Queries on `login_failure`: failed password checks, and checks in flight.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Select, Set, Statement, sea_query::Expr,
};

use super::entity::login_failure::{ActiveModel, Column, Entity};

/// An attempt in flight, counted against `key` (and `account`, for keys about one account).
pub async fn insert(
    db: &impl ConnectionTrait,
    key: &str,
    account: Option<&str>,
    at: DateTime<Utc>,
) -> Result<i64, DbErr> {
    Ok(ActiveModel {
        key: Set(key.to_owned()),
        at: Set(at),
        in_flight: Set(true),
        account: Set(account.map(str::to_owned)),
        ..Default::default()
    }
    .insert(db)
    .await?
    .id)
}

/// Takes, until the transaction ends, the right to add attempts against `keys`, so that on
/// one key the attempts commit in the order of their ids: an attempt that reads a key after
/// its own row committed sees every attempt ahead of it. PostgreSQL: a transaction-scoped
/// advisory lock per key, in a fixed order; SQLite: the write transaction holds the database's
/// lock already.
pub async fn lock_keys(db: &impl ConnectionTrait, keys: &[&str]) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let mut ids: Vec<i64> = keys.iter().map(|key| advisory_id(key)).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [id.into()],
        ))
        .await?;
    }
    Ok(())
}

/// A key's lock number: its first 64 bits (keys are hex SHA-256 digests).
fn advisory_id(key: &str) -> i64 {
    let prefix = key.get(..16).unwrap_or(key);
    u64::from_str_radix(prefix, 16).map_or(0, |bits| bits as i64)
}

/// One row of a key's window, as an attempt's admission reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub in_flight: bool,
}

/// The rows counted against `key` other than `own`, newest first, read in one statement (one
/// snapshot, so no row is missed while it moves from in flight to failed): those since `since`,
/// and those in flight since `stale_before`. At most `limit`.
pub async fn window(
    db: &impl ConnectionTrait,
    key: &str,
    since: DateTime<Utc>,
    stale_before: DateTime<Utc>,
    own: i64,
    limit: u64,
) -> Result<Vec<Counted>, DbErr> {
    let rows: Vec<(i64, DateTime<Utc>, bool)> = window_query(key, since, stale_before, own, limit)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, at, in_flight)| Counted { id, at, in_flight })
        .collect())
}

pub(super) fn window_query(
    key: &str,
    since: DateTime<Utc>,
    stale_before: DateTime<Utc>,
    own: i64,
    limit: u64,
) -> Select<Entity> {
    Entity::find()
        .select_only()
        .column(Column::Id)
        .column(Column::At)
        .column(Column::InFlight)
        .filter(Column::Key.eq(key))
        .filter(Column::Id.ne(own))
        .filter(
            Condition::any().add(Column::At.gt(since)).add(
                Condition::all()
                    .add(Column::InFlight.eq(true))
                    .add(Column::At.gte(stale_before)),
            ),
        )
        .order_by_desc(Column::At)
        .limit(limit)
}

/// The checks were made and failed: the rows count as failures from now on.
pub async fn settle(db: &impl ConnectionTrait, ids: Vec<i64>) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    Entity::update_many()
        .col_expr(Column::InFlight, Expr::value(false))
        .filter(Column::Id.is_in(ids))
        .exec(db)
        .await
        .map(|_| ())
}

pub async fn delete_ids(db: &impl ConnectionTrait, ids: Vec<i64>) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    Entity::delete_many()
        .filter(Column::Id.is_in(ids))
        .exec(db)
        .await
        .map(|_| ())
}

/// Forgets the failures counted against `key`; attempts in flight keep their rows.
pub async fn delete_failures(db: &impl ConnectionTrait, key: &str) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::Key.eq(key))
        .filter(Column::InFlight.eq(false))
        .exec(db)
        .await
        .map(|_| ())
}

/// Forgets every failure counted against one account, by any key about it.
pub async fn delete_account(db: &impl ConnectionTrait, account: &str) -> Result<u64, DbErr> {
    Ok(Entity::delete_many()
        .filter(Column::Account.eq(account))
        .filter(Column::InFlight.eq(false))
        .exec(db)
        .await?
        .rows_affected)
}

/// Deletes failures older than any limit's window.
pub async fn purge(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    Ok(Entity::delete_many()
        .filter(Column::At.lt(before))
        .exec(db)
        .await?
        .rows_affected)
}
