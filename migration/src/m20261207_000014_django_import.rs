//! `authd import-django`'s memory of what it brought over: one row per imported user, DRF
//! token, group and permission, with fingerprints of the row as Django had it and as the import
//! wrote it, so that a re-run applies only what changed in Django to rows authd left alone.
//! - `kind`: `user`, `token`, `group` or `permission`.
//! - `source_key`: the Django id (users, groups), `app_label.codename` (permissions), or the
//!   SHA-256 digest of the DRF key (tokens: the key itself is a live secret in the source).
//! - `target_id`: the authd row (a token's is its session).
//!
//! No foreign keys: a row deleted in authd (a token logged out) must be remembered as such.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DjangoImport::Table)
                    .if_not_exists()
                    .col(big_pk_auto(DjangoImport::Id))
                    .col(string_len(DjangoImport::Kind, 16))
                    .col(string_len(DjangoImport::SourceKey, 255))
                    .col(big_integer(DjangoImport::TargetId))
                    .col(string_len(DjangoImport::SourceFingerprint, 64))
                    .col(string_len(DjangoImport::TargetFingerprint, 64))
                    .col(timestamp_with_time_zone(DjangoImport::ImportedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("django_import_kind_source_key_uniq")
                    .table(DjangoImport::Table)
                    .col(DjangoImport::Kind)
                    .col(DjangoImport::SourceKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("django_import_kind_target_id_idx")
                    .table(DjangoImport::Table)
                    .col(DjangoImport::Kind)
                    .col(DjangoImport::TargetId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DjangoImport::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum DjangoImport {
    Table,
    Id,
    Kind,
    SourceKey,
    TargetId,
    SourceFingerprint,
    TargetFingerprint,
    ImportedAt,
}
