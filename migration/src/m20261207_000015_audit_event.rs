//! The audit trail: one row per security-relevant action (docs/audit.md lists the kinds and the
//! keys of `details` for each).
//! - `user_id`: the account the event is about, without a foreign key: events outlive a
//!   deleted account. `username` is its name when the event happened.
//! - `session_id`: the session's public id (what `/token/sessions/` shows), not its row id.
//! - `details`: a small JSON object whose keys are fixed per kind.
//! - `window_key`: internal. Set only on the rows that count repeats (throttled attempts, failed
//!   logins for unknown names): one row per key and minute, whose `details.count` an upsert
//!   raises. NULL elsewhere (a unique index admits any number of NULLs on both databases).
//!
//! Indexes serve the reads: a user's history newest first, and `created_at` for the retention
//! purge and `authd audit --since`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvent::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuditEvent::Id))
                    .col(timestamp_with_time_zone(AuditEvent::CreatedAt))
                    .col(string_len(AuditEvent::Kind, 32))
                    .col(big_integer_null(AuditEvent::UserId))
                    .col(string_len_null(AuditEvent::Username, 255))
                    .col(string_len_null(AuditEvent::SessionId, 64))
                    .col(string_len_null(AuditEvent::ClientIp, 64))
                    .col(text_null(AuditEvent::UserAgent))
                    .col(string_len_null(AuditEvent::ClientId, 255))
                    .col(text(AuditEvent::Details))
                    .col(string_len_null(AuditEvent::WindowKey, 255))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_event_user_id_id_idx")
                    .table(AuditEvent::Table)
                    .col(AuditEvent::UserId)
                    .col((AuditEvent::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_event_created_at_idx")
                    .table(AuditEvent::Table)
                    .col(AuditEvent::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_event_window_key_uniq")
                    .table(AuditEvent::Table)
                    .col(AuditEvent::WindowKey)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditEvent::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AuditEvent {
    Table,
    Id,
    CreatedAt,
    Kind,
    UserId,
    Username,
    SessionId,
    ClientIp,
    UserAgent,
    ClientId,
    Details,
    WindowKey,
}
