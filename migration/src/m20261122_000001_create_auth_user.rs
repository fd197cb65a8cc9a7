use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuthUser::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuthUser::Id))
                    .col(string_len(AuthUser::Username, 150))
                    // Uniqueness lives on the canonical form (NFKC + case folding), not on
                    // the name as typed, so `Alice` and `ALICE` cannot both register.
                    .col(string_len_uniq(AuthUser::UsernameCanonical, 600))
                    .col(string_len(AuthUser::Email, 254).default(""))
                    // Filled only while LOGIN_FIELD=email; NULLs never collide, so the
                    // same schema serves both settings (see `store::users::sync_email_login`).
                    .col(string_len_null(AuthUser::EmailCanonical, 1000).unique_key())
                    .col(string_len(AuthUser::Password, 255))
                    .col(boolean(AuthUser::IsActive).default(true))
                    .col(boolean(AuthUser::IsStaff).default(false))
                    .col(boolean(AuthUser::IsSuperuser).default(false))
                    .col(timestamp_with_time_zone(AuthUser::DateJoined))
                    .col(timestamp_with_time_zone_null(AuthUser::LastLogin))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("auth_user_email_idx")
                    .table(AuthUser::Table)
                    .col(AuthUser::Email)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuthUser::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum AuthUser {
    Table,
    Id,
    Username,
    UsernameCanonical,
    Email,
    EmailCanonical,
    Password,
    IsActive,
    IsStaff,
    IsSuperuser,
    DateJoined,
    LastLogin,
}
