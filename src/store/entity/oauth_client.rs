use sea_orm::entity::prelude::*;

/// A registered OAuth2 client: public (no secret) or confidential (the secret's SHA-256).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_client")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub client_id: String,
    pub name: String,
    pub secret_digest: Option<String>,
    pub created: DateTimeUtc,
    /// The permissions it may be granted at most (space-separated, sorted); `None`: any.
    pub scope: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
