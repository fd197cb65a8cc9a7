//! Sessions, expiry and OAuth2.
//! - `oauth_client`: registered clients; a confidential one keeps only its secret's digest.
//! - `auth_session`: one login, a Djoser token or an OAuth2 refresh family with its access
//!   tokens; what `GET /token/sessions/` lists and what logout ends.
//! - `auth_token` gains its session, its kind (`token`, `access`, `refresh`), its expiry and, for
//!   refresh tokens, when rotation retired it. Every token of the previous release becomes a
//!   session of its own; its expiry depends on a setting, so it is `expiry_pending` here and is
//!   set (creation + AUTHD_TOKEN_TTL_SECONDS) at the first start after the upgrade.

use sea_orm_migration::sea_orm::DbBackend;
use sea_orm_migration::{prelude::*, schema::*};

use super::m20261122_000001_create_auth_user::AuthUser;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OauthClient::Table)
                    .if_not_exists()
                    .col(big_pk_auto(OauthClient::Id))
                    .col(string_len_uniq(OauthClient::ClientId, 64))
                    .col(string_len(OauthClient::Name, 150))
                    .col(string_len_null(OauthClient::SecretDigest, 64))
                    .col(timestamp_with_time_zone(OauthClient::Created))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuthSession::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuthSession::Id))
                    .col(string_len_uniq(AuthSession::PublicId, 64))
                    .col(big_integer(AuthSession::UserId))
                    .col(string_len(AuthSession::Kind, 16))
                    .col(big_integer_null(AuthSession::ClientId))
                    .col(string_len(AuthSession::Name, 64).default(""))
                    .col(string_len_null(AuthSession::ClientIp, 45))
                    .col(timestamp_with_time_zone(AuthSession::Created))
                    .col(timestamp_with_time_zone_null(AuthSession::LastUsed))
                    .col(timestamp_with_time_zone_null(AuthSession::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("auth_session_user_id_fk")
                            .from(AuthSession::Table, AuthSession::UserId)
                            .to(AuthUser::Table, AuthUser::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("auth_session_client_id_fk")
                            .from(AuthSession::Table, AuthSession::ClientId)
                            .to(OauthClient::Table, OauthClient::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("auth_session_user_id_idx", AuthSession::UserId),
            ("auth_session_expires_at_idx", AuthSession::ExpiresAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(AuthSession::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }

        // SQLite adds one column per statement, and a foreign key only with its column.
        let columns = [
            big_integer_null(Token::SessionId)
                .extra("REFERENCES auth_session (id) ON DELETE CASCADE")
                .to_owned(),
            string_len(Token::Kind, 16).default("token").to_owned(),
            timestamp_with_time_zone_null(Token::ExpiresAt).to_owned(),
            boolean(Token::ExpiryPending).default(false).to_owned(),
            timestamp_with_time_zone_null(Token::RetiredAt).to_owned(),
        ];
        for column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Token::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("auth_token_session_id_idx")
                    .table(Token::Table)
                    .col(Token::SessionId)
                    .to_owned(),
            )
            .await?;

        // Every existing token becomes a session of its own, found again by a temporary public
        // id, which then gets a random one.
        let db = manager.get_connection();
        let random = match manager.get_database_backend() {
            DbBackend::Postgres => "md5(random()::text || clock_timestamp()::text || id::text)",
            _ => "lower(hex(randomblob(16)))",
        };
        db.execute_unprepared(
            "INSERT INTO auth_session (public_id, user_id, kind, name, created) \
             SELECT 'legacy-' || id, user_id, 'token', '', created FROM auth_token",
        )
        .await?;
        db.execute_unprepared(
            "UPDATE auth_token SET expiry_pending = TRUE, session_id = \
             (SELECT s.id FROM auth_session s WHERE s.public_id = 'legacy-' || auth_token.id)",
        )
        .await?;
        db.execute_unprepared(&format!(
            "UPDATE auth_session SET public_id = {random} WHERE public_id LIKE 'legacy-%'"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Token::RetiredAt.into_iden(),
            Token::ExpiryPending.into_iden(),
            Token::ExpiresAt.into_iden(),
            Token::Kind.into_iden(),
            Token::SessionId.into_iden(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Token::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for table in [
            AuthSession::Table.into_iden(),
            OauthClient::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum OauthClient {
    Table,
    Id,
    ClientId,
    Name,
    SecretDigest,
    Created,
}

#[derive(DeriveIden)]
enum AuthSession {
    Table,
    Id,
    PublicId,
    UserId,
    Kind,
    ClientId,
    Name,
    ClientIp,
    Created,
    LastUsed,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Token {
    #[sea_orm(iden = "auth_token")]
    Table,
    SessionId,
    Kind,
    ExpiresAt,
    ExpiryPending,
    RetiredAt,
}
