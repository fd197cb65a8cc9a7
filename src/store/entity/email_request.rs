use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "email_request")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub kind: super::email_token::Purpose,
    pub email: String,
    pub created: DateTimeUtc,
    pub locked_until: Option<DateTimeUtc>,
    /// The SHA-256 of the canonical address: one pending request per kind and address.
    pub address_key: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
