use sea_orm::entity::prelude::*;

/// A failed password check, or one in flight, counted against a hashed key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_failure")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub key: String,
    pub at: DateTimeUtc,
    /// Its password is being checked: not a failure (yet).
    pub in_flight: bool,
    /// The hashed account it counts against, for keys about one account.
    pub account: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
