use sea_orm_migration::{prelude::*, schema::*};

use super::m20261122_000001_create_auth_user::AuthUser;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuthToken::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuthToken::Id))
                    // Hex SHA-256 of the token: the token itself is never stored.
                    .col(char_len_uniq(AuthToken::Digest, 64))
                    .col(big_integer(AuthToken::UserId))
                    .col(timestamp_with_time_zone(AuthToken::Created))
                    .foreign_key(
                        ForeignKey::create()
                            .name("auth_token_user_id_fk")
                            .from(AuthToken::Table, AuthToken::UserId)
                            .to(AuthUser::Table, AuthUser::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("auth_token_user_id_idx")
                    .table(AuthToken::Table)
                    .col(AuthToken::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuthToken::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AuthToken {
    Table,
    Id,
    Digest,
    UserId,
    Created,
}
