//! Failed password checks, for the login throttles: one row a failure (or an attempt in
//! flight), keyed by the SHA-256 of what it counts against (an IP and account, an account, an
//! IP), never the login value itself.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LoginFailure::Table)
                    .if_not_exists()
                    .col(big_pk_auto(LoginFailure::Id))
                    .col(char_len(LoginFailure::Key, 64))
                    .col(timestamp_with_time_zone(LoginFailure::At))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("login_failure_key_at_idx")
                    .table(LoginFailure::Table)
                    .col(LoginFailure::Key)
                    .col(LoginFailure::At)
                    .to_owned(),
            )
            .await?;
        // The purge deletes by age alone.
        manager
            .create_index(
                Index::create()
                    .name("login_failure_at_idx")
                    .table(LoginFailure::Table)
                    .col(LoginFailure::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LoginFailure::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum LoginFailure {
    Table,
    Id,
    Key,
    At,
}
