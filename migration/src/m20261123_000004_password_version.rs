//! A password version: bumped by every password change, never by a rehash at a new cost. Every
//! write that depends on a verified password (a login's token, a password or username change,
//! a deletion) is conditional on it inside its transaction, so a login that verified the old
//! password cannot mint a token after the change. Link fingerprints move from the password
//! hash to this version, so a rehash no longer kills outstanding links; the fingerprints of
//! live links are rewritten so that they keep working across the upgrade.

use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};
use sea_orm_migration::{prelude::*, schema::*};
use sha2::{Digest, Sha256};

use super::m20261122_000001_create_auth_user::AuthUser;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The fingerprint the previous release stored: SHA-256 of the password hash and the email.
fn fingerprint_v1(password: &str, email: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(password.as_bytes());
    hasher.update([0]);
    hasher.update(email.as_bytes());
    hex::encode(hasher.finalize())
}

/// The fingerprint from now on (a frozen copy of `accounts::email::fingerprint`).
fn fingerprint_v2(password_version: i64, email: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"authd link v2\0");
    hasher.update(password_version.to_string().as_bytes());
    hasher.update([0]);
    hasher.update(email.as_bytes());
    hex::encode(hasher.finalize())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AuthUser::Table)
                    .add_column(big_integer(PasswordVersion::PasswordVersion).default(0))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        let backend = db.get_database_backend();
        let live = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT t.id, t.fingerprint, u.password, u.email FROM email_token t \
                 JOIN auth_user u ON u.id = t.user_id WHERE t.used_at IS NULL",
            ))
            .await?;
        for row in live {
            let id: i64 = row.try_get("", "id")?;
            let stored: String = row.try_get("", "fingerprint")?;
            let password: String = row.try_get("", "password")?;
            let email: String = row.try_get("", "email")?;
            // A link whose account changed since is dead either way.
            if stored.trim() != fingerprint_v1(&password, &email) {
                continue;
            }
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                match backend {
                    sea_orm_migration::sea_orm::DbBackend::Postgres => {
                        "UPDATE email_token SET fingerprint = $1 WHERE id = $2"
                    }
                    _ => "UPDATE email_token SET fingerprint = ? WHERE id = ?",
                },
                [fingerprint_v2(0, &email).into(), id.into()],
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AuthUser::Table)
                    .drop_column(PasswordVersion::PasswordVersion)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum PasswordVersion {
    PasswordVersion,
}
