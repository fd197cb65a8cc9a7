//! - `auth_user.activation_pending`: only an account waiting for activation (new, or after an
//!   email change) may be activated by an emailed link; one an operator deactivated may not.
//!   Inactive accounts that still hold an unused activation link are the ones waiting.
//! - Link messages are rendered when they are delivered: the outbox keeps the kind, the
//!   account and its fingerprint at request time, and no link at rest. Rows written by the
//!   previous release keep their rendered bodies and are delivered as they are.
//! - `email_cooldown`: when each account last got a requested message of each purpose.
//! - `cache_invalidation`: on SQLite, where there is no NOTIFY, the changes that other
//!   processes (the `authd` commands) must drop from a running server's token cache.

use sea_orm_migration::{prelude::*, schema::*};

use super::m20261122_000001_create_auth_user::AuthUser;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AuthUser::Table)
                    .add_column(boolean(Activation::ActivationPending).default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE auth_user SET activation_pending = TRUE WHERE is_active = FALSE AND EXISTS \
                 (SELECT 1 FROM email_token t WHERE t.user_id = auth_user.id \
                 AND t.purpose = 'activation' AND t.used_at IS NULL)",
            )
            .await?;
        // SQLite alters one column per statement.
        for column in [
            string_len_null(Outbox::Kind, 32),
            big_integer_null(Outbox::UserId),
            string_len_null(Outbox::Fingerprint, 64),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Outbox::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Cooldown::Table)
                    .if_not_exists()
                    .col(big_integer(Cooldown::UserId))
                    .col(string_len(Cooldown::Purpose, 32))
                    .col(timestamp_with_time_zone(Cooldown::LastSentAt))
                    .primary_key(Index::create().col(Cooldown::UserId).col(Cooldown::Purpose))
                    .foreign_key(
                        ForeignKey::create()
                            .name("email_cooldown_user_id_fk")
                            .from(Cooldown::Table, Cooldown::UserId)
                            .to(AuthUser::Table, AuthUser::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CacheInvalidation::Table)
                    .if_not_exists()
                    .col(big_pk_auto(CacheInvalidation::Id))
                    .col(string_len(CacheInvalidation::Payload, 200))
                    .col(timestamp_with_time_zone(CacheInvalidation::Created))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            CacheInvalidation::Table.into_iden(),
            Cooldown::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        for column in [
            Outbox::Kind.into_iden(),
            Outbox::UserId.into_iden(),
            Outbox::Fingerprint.into_iden(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Outbox::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(AuthUser::Table)
                    .drop_column(Activation::ActivationPending)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Activation {
    ActivationPending,
}

#[derive(DeriveIden)]
enum Outbox {
    #[sea_orm(iden = "email_outbox")]
    Table,
    Kind,
    UserId,
    Fingerprint,
}

#[derive(DeriveIden)]
enum Cooldown {
    #[sea_orm(iden = "email_cooldown")]
    Table,
    UserId,
    Purpose,
    LastSentAt,
}

#[derive(DeriveIden)]
enum CacheInvalidation {
    Table,
    Id,
    Payload,
    Created,
}
