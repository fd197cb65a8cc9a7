use sea_orm_migration::{prelude::*, schema::*};

use super::m20261122_000001_create_auth_user::AuthUser;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Single-use, expiring, purpose-bound link tokens; only their digest is kept.
        manager
            .create_table(
                Table::create()
                    .table(EmailToken::Table)
                    .if_not_exists()
                    .col(big_pk_auto(EmailToken::Id))
                    .col(big_integer(EmailToken::UserId))
                    .col(string_len(EmailToken::Purpose, 32))
                    .col(char_len_uniq(EmailToken::Digest, 64))
                    // SHA-256 of the password hash and email when issued: a change kills the token.
                    .col(char_len(EmailToken::Fingerprint, 64))
                    .col(timestamp_with_time_zone(EmailToken::Created))
                    .col(timestamp_with_time_zone(EmailToken::ExpiresAt))
                    .col(timestamp_with_time_zone_null(EmailToken::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("email_token_user_id_fk")
                            .from(EmailToken::Table, EmailToken::UserId)
                            .to(AuthUser::Table, AuthUser::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("email_token_user_id_idx")
                    .table(EmailToken::Table)
                    .col(EmailToken::UserId)
                    .to_owned(),
            )
            .await?;

        // Messages written in the same transaction as the change that causes them, delivered
        // by the background worker; bodies are blanked once sent.
        manager
            .create_table(
                Table::create()
                    .table(EmailOutbox::Table)
                    .if_not_exists()
                    .col(big_pk_auto(EmailOutbox::Id))
                    .col(string_len(EmailOutbox::MessageId, 255))
                    .col(string_len(EmailOutbox::Recipient, 254))
                    .col(text(EmailOutbox::Subject))
                    .col(text(EmailOutbox::TextBody))
                    .col(text(EmailOutbox::HtmlBody))
                    .col(timestamp_with_time_zone(EmailOutbox::Created))
                    .col(integer(EmailOutbox::Attempts).default(0))
                    .col(timestamp_with_time_zone(EmailOutbox::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(EmailOutbox::LockedUntil))
                    .col(timestamp_with_time_zone_null(EmailOutbox::SentAt))
                    .col(timestamp_with_time_zone_null(EmailOutbox::FailedAt))
                    .col(text_null(EmailOutbox::LastError))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("email_outbox_due_idx")
                    .table(EmailOutbox::Table)
                    .col(EmailOutbox::SentAt)
                    .col(EmailOutbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;

        // Reset and resend requests, answered at once and resolved by the worker, so that a
        // known and an unknown address cost the request the same work.
        manager
            .create_table(
                Table::create()
                    .table(EmailRequest::Table)
                    .if_not_exists()
                    .col(big_pk_auto(EmailRequest::Id))
                    .col(string_len(EmailRequest::Kind, 32))
                    .col(string_len(EmailRequest::Email, 254))
                    .col(timestamp_with_time_zone(EmailRequest::Created))
                    .col(timestamp_with_time_zone_null(EmailRequest::LockedUntil))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            EmailRequest::Table.into_iden(),
            EmailOutbox::Table.into_iden(),
            EmailToken::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum EmailToken {
    Table,
    Id,
    UserId,
    Purpose,
    Digest,
    Fingerprint,
    Created,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum EmailOutbox {
    Table,
    Id,
    MessageId,
    Recipient,
    Subject,
    TextBody,
    HtmlBody,
    Created,
    Attempts,
    NextAttemptAt,
    LockedUntil,
    SentAt,
    FailedAt,
    LastError,
}

#[derive(DeriveIden)]
enum EmailRequest {
    Table,
    Id,
    Kind,
    Email,
    Created,
    LockedUntil,
}
