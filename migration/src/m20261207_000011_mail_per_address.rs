//! Mail bombing by address.
//! - `email_address_window`: when each address (the SHA-256 of its canonical form: NFKC and
//!   case folded) last got a sign-up message (activation, confirmation, resent activation).
//!   Sign-ups naming one address again and again mail it once per window.
//! - `email_request.address_key`: the same key for a queued reset or resend request, unique per
//!   kind, so repeats of a pending request are merged. Requests of the previous release have
//!   none, and are resolved as before.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AddressWindow::Table)
                    .if_not_exists()
                    .col(string_len(AddressWindow::Address, 64).primary_key())
                    .col(timestamp_with_time_zone(AddressWindow::LastSentAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Request::Table)
                    .add_column(string_len_null(Request::AddressKey, 64))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("email_request_kind_address_key_idx")
                    .table(Request::Table)
                    .col(Request::Kind)
                    .col(Request::AddressKey)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("email_request_kind_address_key_idx")
                    .table(Request::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Request::Table)
                    .drop_column(Request::AddressKey)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(AddressWindow::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AddressWindow {
    #[sea_orm(iden = "email_address_window")]
    Table,
    Address,
    LastSentAt,
}

#[derive(DeriveIden)]
enum Request {
    #[sea_orm(iden = "email_request")]
    Table,
    Kind,
    AddressKey,
}
