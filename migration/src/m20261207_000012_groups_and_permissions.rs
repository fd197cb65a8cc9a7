//! Django's groups and permissions, as `django.contrib.auth` names its tables:
//! - `auth_permission`: `app_label.codename` with a human name. Django keys a permission by its
//!   content type; `has_perm` only ever sees `app_label.codename`, so the content type is
//!   flattened to its `app_label`, unique with the codename.
//! - `auth_group`: a named set of permissions (`auth_group_permissions`).
//! - `auth_user_groups`, `auth_user_user_permissions`: a user's groups and direct permissions.
//!
//! Every link goes when either end is deleted. Django's own twelve `auth.*` permissions are
//! seeded, so the rules that guard managing users, groups and permissions have names to hold.

use sea_orm_migration::{prelude::*, schema::*};

use super::m20261122_000001_create_auth_user::AuthUser;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Django's default permissions for its `auth` models, in Django's order.
const MODELS: [&str; 3] = ["permission", "group", "user"];
const ACTIONS: [&str; 4] = ["add", "change", "delete", "view"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuthPermission::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuthPermission::Id))
                    .col(string_len(AuthPermission::Name, 255))
                    .col(string_len(AuthPermission::AppLabel, 100))
                    .col(string_len(AuthPermission::Codename, 100))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("auth_permission_app_label_codename_uniq")
                    .table(AuthPermission::Table)
                    .col(AuthPermission::AppLabel)
                    .col(AuthPermission::Codename)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuthGroup::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuthGroup::Id))
                    .col(string_len_uniq(AuthGroup::Name, 150))
                    .to_owned(),
            )
            .await?;
        link(
            manager,
            "auth_group_permissions",
            ("group_id", AuthGroup::Table, AuthGroup::Id),
            ("permission_id", AuthPermission::Table, AuthPermission::Id),
        )
        .await?;
        link(
            manager,
            "auth_user_groups",
            ("user_id", AuthUser::Table, AuthUser::Id),
            ("group_id", AuthGroup::Table, AuthGroup::Id),
        )
        .await?;
        link(
            manager,
            "auth_user_user_permissions",
            ("user_id", AuthUser::Table, AuthUser::Id),
            ("permission_id", AuthPermission::Table, AuthPermission::Id),
        )
        .await?;

        let mut seed = Query::insert();
        seed.into_table(AuthPermission::Table).columns([
            AuthPermission::Name,
            AuthPermission::AppLabel,
            AuthPermission::Codename,
        ]);
        for model in MODELS {
            for action in ACTIONS {
                seed.values_panic([
                    format!("Can {action} {model}").into(),
                    "auth".into(),
                    format!("{action}_{model}").into(),
                ]);
            }
        }
        manager.exec_stmt(seed).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "auth_user_user_permissions",
            "auth_user_groups",
            "auth_group_permissions",
        ] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        manager
            .drop_table(Table::drop().table(AuthGroup::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(AuthPermission::Table).to_owned())
            .await
    }
}

/// A many-to-many table as Django makes it: its own id, both ends cascading, each pair once,
/// and an index on the second end for the reverse lookups (the unique pair serves the first).
async fn link(
    manager: &SchemaManager<'_>,
    table: &str,
    (first, first_table, first_id): (&str, impl IntoIden, impl IntoIden),
    (second, second_table, second_id): (&str, impl IntoIden, impl IntoIden),
) -> Result<(), DbErr> {
    let name = Alias::new(table);
    let (first_column, second_column) = (Alias::new(first), Alias::new(second));
    manager
        .create_table(
            Table::create()
                .table(name.clone())
                .if_not_exists()
                .col(big_pk_auto(Alias::new("id")))
                .col(big_integer(first_column.clone()))
                .col(big_integer(second_column.clone()))
                .foreign_key(
                    ForeignKey::create()
                        .name(format!("{table}_{first}_fk"))
                        .from(name.clone(), first_column.clone())
                        .to(first_table, first_id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name(format!("{table}_{second}_fk"))
                        .from(name.clone(), second_column.clone())
                        .to(second_table, second_id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name(format!("{table}_uniq"))
                .table(name.clone())
                .col(first_column)
                .col(second_column.clone())
                .unique()
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name(format!("{table}_{second}_idx"))
                .table(name)
                .col(second_column)
                .to_owned(),
        )
        .await
}

#[derive(DeriveIden)]
enum AuthPermission {
    Table,
    Id,
    Name,
    AppLabel,
    Codename,
}

#[derive(DeriveIden)]
enum AuthGroup {
    Table,
    Id,
    Name,
}
