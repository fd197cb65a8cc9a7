//! Queries on `login_failure`.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Select, Set,
};

use super::entity::login_failure::{ActiveModel, Column, Entity};

pub async fn insert(db: &impl ConnectionTrait, key: &str, at: DateTime<Utc>) -> Result<i64, DbErr> {
    Ok(ActiveModel {
        key: Set(key.to_owned()),
        at: Set(at),
        ..Default::default()
    }
    .insert(db)
    .await?
    .id)
}

/// The newest `limit` failures counted against `key` since `since`, newest first, other than
/// `except`.
pub async fn recent(
    db: &impl ConnectionTrait,
    key: &str,
    since: DateTime<Utc>,
    except: i64,
    limit: u64,
) -> Result<Vec<DateTime<Utc>>, DbErr> {
    recent_query(key, since, except, limit)
        .into_tuple()
        .all(db)
        .await
}

pub(super) fn recent_query(
    key: &str,
    since: DateTime<Utc>,
    except: i64,
    limit: u64,
) -> Select<Entity> {
    Entity::find()
        .select_only()
        .column(Column::At)
        .filter(Column::Key.eq(key))
        .filter(Column::At.gt(since))
        .filter(Column::Id.ne(except))
        .order_by_desc(Column::At)
        .limit(limit)
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

pub async fn delete_key(db: &impl ConnectionTrait, key: &str) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::Key.eq(key))
        .exec(db)
        .await
        .map(|_| ())
}

/// Deletes failures older than any limit's window.
pub async fn purge(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    Ok(Entity::delete_many()
        .filter(Column::At.lt(before))
        .exec(db)
        .await?
        .rows_affected)
}
