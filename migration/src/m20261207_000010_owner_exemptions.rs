//! What keeps guessing from locking an account's owner out.
//! - `known_address`: the addresses (IPv6: the /64) each account logged in from with its
//!   password, the last ten, with when; one of them in the last 30 days is exempt from the
//!   per-account failure limit.
//! - `login_failure.in_flight`: an attempt whose password is being checked, not yet a failure.
//!   Attempts beyond a limit's budget wait for those in flight instead of being refused, so a
//!   burst of right passwords is never answered 429. Existing rows are failures.
//! - `login_failure.account`: the account a row counts against (the SHA-256 key, never the
//!   login value), so a completed password reset can clear the account's counters. Rows of the
//!   previous release have none; they age out within the hour.

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
                    .table(KnownAddress::Table)
                    .if_not_exists()
                    .col(big_integer(KnownAddress::UserId))
                    .col(string_len(KnownAddress::Address, 64))
                    .col(timestamp_with_time_zone(KnownAddress::LastLogin))
                    .primary_key(
                        Index::create()
                            .col(KnownAddress::UserId)
                            .col(KnownAddress::Address),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("known_address_user_id_fk")
                            .from(KnownAddress::Table, KnownAddress::UserId)
                            .to(AuthUser::Table, AuthUser::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The purge forgets addresses by age alone.
        manager
            .create_index(
                Index::create()
                    .name("known_address_last_login_idx")
                    .table(KnownAddress::Table)
                    .col(KnownAddress::LastLogin)
                    .to_owned(),
            )
            .await?;
        // SQLite adds one column per statement.
        for column in [
            boolean(Failure::InFlight).default(false).to_owned(),
            string_len_null(Failure::Account, 64).to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Failure::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("login_failure_account_idx")
                    .table(Failure::Table)
                    .col(Failure::Account)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("login_failure_account_idx")
                    .table(Failure::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Failure::Account, Failure::InFlight] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Failure::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(KnownAddress::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum KnownAddress {
    Table,
    UserId,
    Address,
    LastLogin,
}

#[derive(DeriveIden)]
enum Failure {
    #[sea_orm(iden = "login_failure")]
    Table,
    InFlight,
    Account,
}
