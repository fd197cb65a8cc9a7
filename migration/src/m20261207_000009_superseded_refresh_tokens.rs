//! `auth_token.superseded`: a token that a grace re-rotation retired (a refresh token presented
//! again within AUTHD_REFRESH_REUSE_GRACE_SECONDS got a new pair, and the pair its first rotation
//! had minted was retired). Such a token gets no grace of its own: presented again, at once or
//! later, it is a reuse and revokes its family. Existing tokens were never superseded.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Token::Table)
                    .add_column(boolean(Token::Superseded).default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Token::Table)
                    .drop_column(Token::Superseded)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Token {
    #[sea_orm(iden = "auth_token")]
    Table,
    Superseded,
}
