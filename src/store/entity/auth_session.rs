use sea_orm::entity::prelude::*;

/// One login (a Djoser token, or an OAuth2 refresh family with its access tokens), or one API
/// key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_session")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// What clients see and name it by; random, not a secret.
    #[sea_orm(unique)]
    pub public_id: String,
    pub user_id: i64,
    pub kind: SessionKind,
    /// The registered client it was minted through, if any.
    pub client_id: Option<i64>,
    pub name: String,
    pub client_ip: Option<String>,
    pub created: DateTimeUtc,
    pub last_used: Option<DateTimeUtc>,
    pub expires_at: Option<DateTimeUtc>,
    /// The permissions granted (space-separated, sorted); `None`: unscoped.
    pub scope: Option<String>,
}

/// What a login opened, stored as the strings the previous releases wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum SessionKind {
    /// A Djoser login token.
    #[sea_orm(string_value = "token")]
    Token,
    /// An OAuth2 refresh family.
    #[sea_orm(string_value = "oauth")]
    OAuth,
    /// An API key: one long-lived token for a program, always limited to a scope.
    #[sea_orm(string_value = "api_key")]
    ApiKey,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::auth_token::Entity")]
    AuthToken,
}

impl Related<super::auth_token::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AuthToken.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
