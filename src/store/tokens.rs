//! Queries on `auth_token`. Tokens are found by the SHA-256 digest of what the client sent.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set,
};

use super::entity::auth_token::{ActiveModel, Column, Entity, Model};
use super::entity::auth_user;

pub async fn insert(
    db: &impl ConnectionTrait,
    user_id: i64,
    digest: String,
) -> Result<Model, DbErr> {
    ActiveModel {
        digest: Set(digest),
        user_id: Set(user_id),
        created: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await
}

/// The guard's one query per request: the token joined to its user, by unique index.
pub async fn find_with_user(
    db: &impl ConnectionTrait,
    digest: &str,
) -> Result<Option<(Model, auth_user::Model)>, DbErr> {
    let found = Entity::find()
        .filter(Column::Digest.eq(digest))
        .find_also_related(auth_user::Entity)
        .one(db)
        .await?;
    Ok(found.and_then(|(token, user)| user.map(|user| (token, user))))
}

pub async fn delete(db: &impl ConnectionTrait, token_id: i64) -> Result<(), DbErr> {
    Entity::delete_by_id(token_id).exec(db).await.map(|_| ())
}

/// Revokes every token of a user, except the one given.
pub async fn delete_for_user(
    db: &impl ConnectionTrait,
    user_id: i64,
    keep: Option<i64>,
) -> Result<u64, DbErr> {
    let mut query = Entity::delete_many().filter(Column::UserId.eq(user_id));
    if let Some(token_id) = keep {
        query = query.filter(Column::Id.ne(token_id));
    }
    Ok(query.exec(db).await?.rows_affected)
}
