//! Queries on `known_address`: where each account logged in from with its password.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::entity::known_address::{ActiveModel, Column, Entity};

/// Whether the account `user_id` logged in from `address` since `since`. One lookup by primary
/// key, whether or not the account exists (the caller asks with id 0 for none).
pub async fn is_known(
    db: &impl ConnectionTrait,
    user_id: i64,
    address: &str,
    since: DateTime<Utc>,
) -> Result<bool, DbErr> {
    Ok(Entity::find_by_id((user_id, address.to_owned()))
        .filter(Column::LastLogin.gt(since))
        .one(db)
        .await?
        .is_some())
}

/// Records a login from `address`, and keeps only the account's `keep` latest addresses.
pub async fn record(
    db: &impl ConnectionTrait,
    user_id: i64,
    address: &str,
    at: DateTime<Utc>,
    keep: u64,
) -> Result<(), DbErr> {
    Entity::insert(ActiveModel {
        user_id: Set(user_id),
        address: Set(address.to_owned()),
        last_login: Set(at),
    })
    .on_conflict(
        OnConflict::columns([Column::UserId, Column::Address])
            .update_column(Column::LastLogin)
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    // An account has at most `keep` + 1 rows here: read them all, keep the newest.
    let newest_first: Vec<String> = Entity::find()
        .select_only()
        .column(Column::Address)
        .filter(Column::UserId.eq(user_id))
        .order_by_desc(Column::LastLogin)
        .order_by_desc(Column::Address)
        .into_tuple()
        .all(db)
        .await?;
    let older: Vec<String> = newest_first
        .into_iter()
        .skip(usize::try_from(keep).unwrap_or(usize::MAX))
        .collect();
    if !older.is_empty() {
        Entity::delete_many()
            .filter(Column::UserId.eq(user_id))
            .filter(Column::Address.is_in(older))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Forgets every address of an account.
pub async fn forget(db: &impl ConnectionTrait, user_id: i64) -> Result<u64, DbErr> {
    Ok(Entity::delete_many()
        .filter(Column::UserId.eq(user_id))
        .exec(db)
        .await?
        .rows_affected)
}

/// Forgets addresses last used before `before`.
pub async fn purge(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    Ok(Entity::delete_many()
        .filter(Column::LastLogin.lt(before))
        .exec(db)
        .await?
        .rows_affected)
}
