//! The schema of authd. `Migrator::migrations()` is the only registry; files sort by time.
pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_auth_user;
mod m20261122_000002_create_auth_token;
mod m20261122_000003_create_email_tables;
mod m20261123_000004_password_version;
mod m20261123_000005_activation_and_mail_at_delivery;
mod m20261123_000006_sessions_and_oauth;
mod m20261123_000007_login_failures;
mod m20261207_000008_digests_as_varchar;
mod m20261207_000009_superseded_refresh_tokens;
mod m20261207_000010_owner_exemptions;
mod m20261207_000011_mail_per_address;
mod m20261207_000012_groups_and_permissions;
mod m20261207_000013_scopes;
mod m20261207_000014_django_import;
mod m20261207_000015_audit_event;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_auth_user::Migration),
            Box::new(m20261122_000002_create_auth_token::Migration),
            Box::new(m20261122_000003_create_email_tables::Migration),
            Box::new(m20261123_000004_password_version::Migration),
            Box::new(m20261123_000005_activation_and_mail_at_delivery::Migration),
            Box::new(m20261123_000006_sessions_and_oauth::Migration),
            Box::new(m20261123_000007_login_failures::Migration),
            Box::new(m20261207_000008_digests_as_varchar::Migration),
            Box::new(m20261207_000009_superseded_refresh_tokens::Migration),
            Box::new(m20261207_000010_owner_exemptions::Migration),
            Box::new(m20261207_000011_mail_per_address::Migration),
            Box::new(m20261207_000012_groups_and_permissions::Migration),
            Box::new(m20261207_000013_scopes::Migration),
            Box::new(m20261207_000014_django_import::Migration),
            Box::new(m20261207_000015_audit_event::Migration),
        ]
    }
}
