//! Scoped tokens.
//! - `auth_session.scope`: the permissions a session was granted (space-separated, sorted,
//!   deduplicated); its tokens may use no more than these of what the user holds now.
//!   Existing rows have none: unscoped, as before.
//! - `oauth_client.scope`: the permissions a registered client may be granted at most, in the
//!   same form. Existing clients have none: unlimited, as before.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Session::Table)
                    .add_column(text_null(Session::Scope))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Client::Table)
                    .add_column(text_null(Client::Scope))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Client::Table)
                    .drop_column(Client::Scope)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Session::Table)
                    .drop_column(Session::Scope)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Session {
    #[sea_orm(iden = "auth_session")]
    Table,
    Scope,
}

#[derive(DeriveIden)]
enum Client {
    #[sea_orm(iden = "oauth_client")]
    Table,
    Scope,
}
