//! Queries on `oauth_client`.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set,
};

use super::entity::oauth_client::{ActiveModel, Column, Entity, Model};

pub async fn insert(
    db: &impl ConnectionTrait,
    client_id: String,
    name: String,
    secret_digest: Option<String>,
    scope: Option<String>,
) -> Result<Model, DbErr> {
    ActiveModel {
        client_id: Set(client_id),
        name: Set(name),
        secret_digest: Set(secret_digest),
        created: Set(Utc::now()),
        scope: Set(scope),
        ..Default::default()
    }
    .insert(db)
    .await
}

pub async fn find(db: &impl ConnectionTrait, client_id: &str) -> Result<Option<Model>, DbErr> {
    Entity::find()
        .filter(Column::ClientId.eq(client_id))
        .one(db)
        .await
}

pub async fn find_by_row(db: &impl ConnectionTrait, id: i64) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(id).one(db).await
}

pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<Model>, DbErr> {
    Entity::find().order_by_asc(Column::Id).all(db).await
}

/// Deletes a client; its sessions and their tokens go with it (cascade).
pub async fn delete(db: &impl ConnectionTrait, id: i64) -> Result<(), DbErr> {
    Entity::delete_by_id(id).exec(db).await.map(|_| ())
}
