//! Queries on `auth_token`. Tokens are found by the SHA-256 digest of what the client sent.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    FromQueryResult, IdenStatic, QueryFilter, QuerySelect, QueryTrait, Select, SelectA, SelectB,
    SelectC, Set, Statement, sea_query::Expr,
};

use super::authz::{Grants, grants_sql};
use super::entity::auth_token::{ActiveModel, Column, Entity, Model, TokenKind};
use super::entity::{auth_session, auth_user};
use super::users::Principal;

/// A token about to be stored: only its digest.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub digest: String,
    pub user_id: i64,
    pub session_id: i64,
    pub kind: TokenKind,
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn insert(db: &impl ConnectionTrait, new: NewToken) -> Result<Model, DbErr> {
    ActiveModel {
        digest: Set(new.digest),
        user_id: Set(new.user_id),
        created: Set(Utc::now()),
        session_id: Set(Some(new.session_id)),
        kind: Set(new.kind),
        expires_at: Set(new.expires_at),
        expiry_pending: Set(false),
        retired_at: Set(None),
        superseded: Set(false),
        ..Default::default()
    }
    .insert(db)
    .await
}

pub(super) fn by_digest(digest: &str) -> Select<Entity> {
    Entity::find().filter(Column::Digest.eq(digest))
}

/// A live token's row with its user, its session and what the user holds.
#[derive(Debug)]
pub struct Live {
    pub token: Model,
    pub user: Principal,
    pub session: auth_session::Model,
    pub grants: Grants,
}

/// The token by its digest (unique index), its user and its session (primary keys), and the
/// user's groups and permissions (indexed by user), in one statement.
pub(super) fn live_by_digest(digest: &str, backend: DbBackend) -> Statement {
    let (groups, permissions) = grants_sql(
        backend,
        r#""auth_user"."id""#,
        r#""auth_user"."is_superuser""#,
    );
    by_digest(digest)
        .find_also_related(auth_user::Entity)
        .find_also_related(auth_session::Entity)
        .expr_as(Expr::cust(groups), "grants_groups")
        .expr_as(Expr::cust(permissions), "grants_permissions")
        .build(backend)
}

/// The guard's one query on a cache miss. Expiry is the caller's to judge.
pub async fn find_live(db: &impl ConnectionTrait, digest: &str) -> Result<Option<Live>, DbErr> {
    let backend = db.get_database_backend();
    let Some(row) = db.query_one_raw(live_by_digest(digest, backend)).await? else {
        return Ok(None);
    };
    let token = Model::from_query_result(&row, SelectA.as_str())?;
    let user = auth_user::Model::from_query_result_optional(&row, SelectB.as_str())?;
    let session = auth_session::Model::from_query_result_optional(&row, SelectC.as_str())?;
    let (Some(user), Some(session)) = (user, session) else {
        return Ok(None);
    };
    let grants = Grants::from_json(
        &row.try_get::<String>("", "grants_groups")?,
        &row.try_get::<String>("", "grants_permissions")?,
    )?;
    Ok(Some(Live {
        token,
        user: user.into(),
        session,
        grants,
    }))
}

pub async fn find(db: &impl ConnectionTrait, digest: &str) -> Result<Option<Model>, DbErr> {
    by_digest(digest).one(db).await
}

/// Retires a refresh token that rotation replaced; `false` if it was retired already (the
/// single-use guarantee under concurrent refreshes).
pub async fn retire(db: &impl ConnectionTrait, id: i64) -> Result<bool, DbErr> {
    let result = Entity::update_many()
        .col_expr(Column::RetiredAt, Expr::value(Utc::now()))
        .filter(Column::Id.eq(id))
        .filter(Column::RetiredAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// The tokens of a session that still work and were minted after `after` (a refresh token):
/// what the rotations since it handed out.
pub async fn minted_after(
    db: &impl ConnectionTrait,
    session_id: i64,
    after: i64,
) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::SessionId.eq(session_id))
        .filter(Column::Id.gt(after))
        .filter(Column::RetiredAt.is_null())
        .all(db)
        .await
}

/// Retires tokens that a grace re-rotation replaced: they stop working at once, and a
/// superseded refresh token presented again is a reuse, without grace.
pub async fn supersede(db: &impl ConnectionTrait, ids: Vec<i64>) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    Entity::update_many()
        .col_expr(Column::RetiredAt, Expr::value(Utc::now()))
        .col_expr(Column::Superseded, Expr::value(true))
        .filter(Column::Id.is_in(ids))
        .exec(db)
        .await
        .map(|_| ())
}

pub async fn delete_ids(db: &impl ConnectionTrait, ids: Vec<i64>) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    Entity::delete_many()
        .filter(Column::Id.is_in(ids))
        .exec(db)
        .await
        .map(|_| ())
}

/// Tokens of the previous release, whose expiry waits for the first start after the upgrade:
/// up to `limit` of them, with their creation time.
pub async fn expiry_pending(db: &impl ConnectionTrait, limit: u64) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::ExpiryPending.eq(true))
        .limit(limit)
        .all(db)
        .await
}

pub async fn set_expiry(
    db: &impl ConnectionTrait,
    id: i64,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::ExpiresAt, Expr::value(expires_at))
        .col_expr(Column::ExpiryPending, Expr::value(false))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}

/// Deletes up to `limit` expired access tokens (a whole session goes when the session does).
pub async fn purge_expired(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<u64, DbErr> {
    let expired: Vec<i64> = Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::ExpiresAt.lt(now))
        .filter(
            Condition::any()
                .add(Column::Kind.eq(TokenKind::Access))
                .add(Column::RetiredAt.is_not_null()),
        )
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?;
    let count = expired.len() as u64;
    delete_ids(db, expired).await?;
    Ok(count)
}
