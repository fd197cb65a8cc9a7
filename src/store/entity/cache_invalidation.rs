use sea_orm::entity::prelude::*;

/// On SQLite, a change that running servers must drop from their token cache (PostgreSQL
/// uses NOTIFY instead).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cache_invalidation")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub payload: String,
    pub created: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
