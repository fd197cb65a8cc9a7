//! Queries on `auth_session`: one row a login or an API key.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, Statement, Value, sea_query::Expr,
};

use super::entity::auth_session::{ActiveModel, Column, Entity, Model, SessionKind};

#[derive(Debug, Clone)]
pub struct NewSession {
    pub public_id: String,
    pub user_id: i64,
    pub kind: SessionKind,
    pub client_id: Option<i64>,
    pub name: String,
    pub client_ip: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Space-separated, sorted permissions; `None`: unscoped.
    pub scope: Option<String>,
}

pub async fn insert(db: &impl ConnectionTrait, new: NewSession) -> Result<Model, DbErr> {
    ActiveModel {
        public_id: Set(new.public_id),
        user_id: Set(new.user_id),
        kind: Set(new.kind),
        client_id: Set(new.client_id),
        name: Set(new.name),
        client_ip: Set(new.client_ip),
        created: Set(Utc::now()),
        last_used: Set(None),
        expires_at: Set(new.expires_at),
        scope: Set(new.scope),
        ..Default::default()
    }
    .insert(db)
    .await
}

fn live(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(Column::ExpiresAt.is_null())
        .add(Column::ExpiresAt.gt(now))
}

/// Which of a user's sessions a listing wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    All,
    /// Logins (Djoser tokens and OAuth2 families): what the per-user token limit counts.
    Logins,
    ApiKeys,
}

/// A user's sessions that have not expired, oldest first.
pub async fn live_for_user(
    db: &impl ConnectionTrait,
    user_id: i64,
    now: DateTime<Utc>,
    which: Which,
) -> Result<Vec<Model>, DbErr> {
    let query = Entity::find()
        .filter(Column::UserId.eq(user_id))
        .filter(live(now));
    let query = match which {
        Which::All => query,
        Which::Logins => query.filter(Column::Kind.ne(SessionKind::ApiKey)),
        Which::ApiKeys => query.filter(Column::Kind.eq(SessionKind::ApiKey)),
    };
    query
        .order_by_asc(Column::Created)
        .order_by_asc(Column::Id)
        .all(db)
        .await
}

pub async fn find(db: &impl ConnectionTrait, id: i64) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(id).one(db).await
}

pub async fn find_public(
    db: &impl ConnectionTrait,
    user_id: i64,
    public_id: &str,
) -> Result<Option<Model>, DbErr> {
    Entity::find()
        .filter(Column::UserId.eq(user_id))
        .filter(Column::PublicId.eq(public_id))
        .one(db)
        .await
}

/// Ends a session: its tokens go with it (cascade).
/// How many sessions were minted through a registered client (its row id).
pub async fn count_for_client(db: &impl ConnectionTrait, client_row: i64) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait as _;
    Entity::find()
        .filter(Column::ClientId.eq(client_row))
        .count(db)
        .await
}

pub async fn delete(db: &impl ConnectionTrait, id: i64) -> Result<bool, DbErr> {
    Ok(Entity::delete_by_id(id).exec(db).await?.rows_affected == 1)
}

pub async fn delete_ids(db: &impl ConnectionTrait, ids: Vec<i64>) -> Result<u64, DbErr> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(Entity::delete_many()
        .filter(Column::Id.is_in(ids))
        .exec(db)
        .await?
        .rows_affected)
}

/// Ends every login of a user (its API keys stay), except the one given.
pub async fn delete_logins_for_user(
    db: &impl ConnectionTrait,
    user_id: i64,
    keep: Option<i64>,
) -> Result<u64, DbErr> {
    let mut query = Entity::delete_many()
        .filter(Column::UserId.eq(user_id))
        .filter(Column::Kind.ne(SessionKind::ApiKey));
    if let Some(session_id) = keep {
        query = query.filter(Column::Id.ne(session_id));
    }
    Ok(query.exec(db).await?.rows_affected)
}

/// Ends every session of a user, API keys included, except the one given.
pub async fn delete_for_user(
    db: &impl ConnectionTrait,
    user_id: i64,
    keep: Option<i64>,
) -> Result<u64, DbErr> {
    let mut query = Entity::delete_many().filter(Column::UserId.eq(user_id));
    if let Some(session_id) = keep {
        query = query.filter(Column::Id.ne(session_id));
    }
    Ok(query.exec(db).await?.rows_affected)
}

pub async fn set_expiry(
    db: &impl ConnectionTrait,
    id: i64,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::ExpiresAt, Expr::value(expires_at))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}

/// Narrows a session's scope (a refresh asked for less).
pub async fn set_scope(db: &impl ConnectionTrait, id: i64, scope: &str) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::Scope, Expr::value(scope))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}

/// Sessions whose last uses one statement writes: 2 parameters each, far below SQLite's and
/// PostgreSQL's limits on bound values.
const USES_PER_STATEMENT: usize = 1000;

/// Records sessions' last uses, a statement per [`USES_PER_STATEMENT`] of them (not one per
/// session: a busy instance queues thousands a minute); never moves `last_used` backwards.
pub async fn touch_many(
    db: &impl ConnectionTrait,
    uses: &[(i64, DateTime<Utc>)],
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    for chunk in uses.chunks(USES_PER_STATEMENT) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|row| match backend {
                DbBackend::Postgres => {
                    format!("(${}::bigint, ${}::timestamptz)", 2 * row + 1, 2 * row + 2)
                }
                _ => "(?, ?)".to_owned(),
            })
            .collect();
        let sql = format!(
            "WITH used (id, at) AS (VALUES {}) \
             UPDATE auth_session SET last_used = used.at FROM used \
             WHERE auth_session.id = used.id \
             AND (auth_session.last_used IS NULL OR auth_session.last_used < used.at)",
            rows.join(", ")
        );
        let values = chunk
            .iter()
            .flat_map(|(id, at)| [Value::from(*id), Value::from(*at)]);
        db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    Ok(())
}

/// Up to `limit` sessions that can never be used again: expired, or (with an idle limit)
/// unused since `idle_before`. Their ids, for deletion and cache eviction, and their ends.
pub async fn dead(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    idle_before: Option<DateTime<Utc>>,
    limit: u64,
) -> Result<Vec<(i64, Option<DateTime<Utc>>)>, DbErr> {
    let mut dead = Condition::any().add(Column::ExpiresAt.lte(now));
    if let Some(before) = idle_before {
        dead = dead.add(
            Condition::all()
                .add(Column::Kind.eq(SessionKind::Token))
                .add(
                    Condition::any().add(Column::LastUsed.lt(before)).add(
                        Condition::all()
                            .add(Column::LastUsed.is_null())
                            .add(Column::Created.lt(before)),
                    ),
                ),
        );
    }
    Entity::find()
        .select_only()
        .column(Column::Id)
        .column(Column::ExpiresAt)
        .filter(dead)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await
}

/// The session's row, locked until the transaction ends (PostgreSQL: `FOR UPDATE`; SQLite:
/// the write transaction already holds the database's lock).
pub async fn lock(db: &impl ConnectionTrait, id: i64) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(id).lock_exclusive().one(db).await
}
