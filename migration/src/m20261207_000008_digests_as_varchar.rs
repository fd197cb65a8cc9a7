//! PostgreSQL compares a `character(n)` column with a bound `text` value by casting the column
//! to `text`, which no index on the column can serve: every lookup of a token digest, a link
//! digest or a failure key was a sequential scan, and at a million tokens each token-cache miss
//! cost one. These columns (and the link fingerprint beside them, so that no `character(n)`
//! column is left) become `varchar(64)`, whose comparisons with `text` use their indexes. The
//! values, exactly 64 hex characters each, are kept as they are; PostgreSQL rebuilds the
//! indexes. SQLite has no such distinction (a `char(n)` column has text affinity and its indexes
//! serve text comparisons), so there is nothing to change there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const COLUMNS: [(&str, &str); 4] = [
    ("auth_token", "digest"),
    ("email_token", "digest"),
    ("email_token", "fingerprint"),
    ("login_failure", "key"),
];

async fn retype(manager: &SchemaManager<'_>, to: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    for (table, column) in COLUMNS {
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "ALTER TABLE \"{table}\" ALTER COLUMN \"{column}\" TYPE {to}"
            ))
            .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        retype(manager, "varchar(64)").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        retype(manager, "character(64)").await
    }
}
