use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_token")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Hex SHA-256 of the token; the token itself is never stored.
    #[sea_orm(unique)]
    pub digest: String,
    pub user_id: i64,
    pub created: DateTimeUtc,
    /// The login it belongs to (`None` only between the migration and the first start).
    pub session_id: Option<i64>,
    pub kind: TokenKind,
    /// `None`: never (AUTHD_TOKEN_TTL_SECONDS=0).
    pub expires_at: Option<DateTimeUtc>,
    /// A token of the previous release whose expiry is set at the first start.
    pub expiry_pending: bool,
    /// A refresh token that rotation replaced: kept until its family expires, to detect reuse.
    pub retired_at: Option<DateTimeUtc>,
    /// Retired by a grace re-rotation: presented again, it is a reuse at once (no grace).
    pub superseded: bool,
}

/// What a token is, stored as the strings the previous releases wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum TokenKind {
    /// A Djoser login token.
    #[sea_orm(string_value = "token")]
    Login,
    /// An OAuth2 access token.
    #[sea_orm(string_value = "access")]
    Access,
    /// An OAuth2 refresh token: never accepted by the guard.
    #[sea_orm(string_value = "refresh")]
    Refresh,
    /// An API key (`authd_key_…`).
    #[sea_orm(string_value = "api_key")]
    ApiKey,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::auth_user::Entity",
        from = "Column::UserId",
        to = "super::auth_user::Column::Id",
        on_delete = "Cascade"
    )]
    AuthUser,
    #[sea_orm(
        belongs_to = "super::auth_session::Entity",
        from = "Column::SessionId",
        to = "super::auth_session::Column::Id",
        on_delete = "Cascade"
    )]
    AuthSession,
}

impl Related<super::auth_user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AuthUser.def()
    }
}

impl Related<super::auth_session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AuthSession.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
