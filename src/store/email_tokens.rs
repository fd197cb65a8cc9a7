//! Queries on `email_token`: link tokens for activation and resets.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Select, Set,
    sea_query::Expr,
};

use super::entity::email_token::{ActiveModel, Column, Entity, Model, Purpose};

pub async fn insert(
    db: &impl ConnectionTrait,
    user_id: i64,
    purpose: Purpose,
    digest: String,
    fingerprint: String,
    expires_at: DateTime<Utc>,
) -> Result<Model, DbErr> {
    ActiveModel {
        user_id: Set(user_id),
        purpose: Set(purpose),
        digest: Set(digest),
        fingerprint: Set(fingerprint),
        created: Set(Utc::now()),
        expires_at: Set(expires_at),
        used_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
}

pub(super) fn by_digest(user_id: i64, purpose: Purpose, digest: &str) -> Select<Entity> {
    Entity::find()
        .filter(Column::Digest.eq(digest))
        .filter(Column::UserId.eq(user_id))
        .filter(Column::Purpose.eq(purpose))
}

pub async fn find(
    db: &impl ConnectionTrait,
    user_id: i64,
    purpose: Purpose,
    digest: &str,
) -> Result<Option<Model>, DbErr> {
    by_digest(user_id, purpose, digest).one(db).await
}

/// Marks the token used; `false` if someone else used it first (the single-use guarantee).
pub async fn consume(db: &impl ConnectionTrait, token_id: i64) -> Result<bool, DbErr> {
    let result = Entity::update_many()
        .col_expr(Column::UsedAt, Expr::value(Utc::now()))
        .filter(Column::Id.eq(token_id))
        .filter(Column::UsedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Spends every unused link of a user (of one purpose, or all): a newer link replaces them,
/// or the account was deactivated.
pub async fn revoke_live(
    db: &impl ConnectionTrait,
    user_id: i64,
    purpose: Option<Purpose>,
) -> Result<u64, DbErr> {
    let mut update = Entity::update_many()
        .col_expr(Column::UsedAt, Expr::value(Utc::now()))
        .filter(Column::UserId.eq(user_id))
        .filter(Column::UsedAt.is_null());
    if let Some(purpose) = purpose {
        update = update.filter(Column::Purpose.eq(purpose));
    }
    Ok(update.exec(db).await?.rows_affected)
}

/// Deletes expired links. A used (or revoked) one stays until then: a second use answers
/// "stale", as Djoser's link would for as long as it was valid, not "invalid".
pub async fn purge(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let result = Entity::delete_many()
        .filter(Column::ExpiresAt.lt(now))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
