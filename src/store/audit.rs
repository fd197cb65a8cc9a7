//! Queries on `audit_event`: the audit trail's rows, written one per event or counted in a
//! window, read by a user's history and by `authd audit`, and purged past the retention.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement,
};

use super::entity::audit_event::{ActiveModel, Column, Entity, Model};

pub type Event = Model;

/// A row to write.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub created_at: DateTime<Utc>,
    pub kind: &'static str,
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub session_id: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub client_id: Option<String>,
    /// A JSON object.
    pub details: String,
}

pub async fn insert(db: &impl ConnectionTrait, event: NewEvent) -> Result<(), DbErr> {
    ActiveModel {
        created_at: Set(event.created_at),
        kind: Set(event.kind.to_owned()),
        user_id: Set(event.user_id),
        username: Set(event.username),
        session_id: Set(event.session_id),
        client_ip: Set(event.client_ip),
        user_agent: Set(event.user_agent),
        client_id: Set(event.client_id),
        details: Set(event.details),
        window_key: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .map(|_| ())
}

/// Writes `event` as the first of its window (`window_key`), or, when the window has its row
/// already, adds the event's own `details.count` (the refusals it stands for) to that row's
/// instead (one statement: concurrent writers cannot both insert). Returns the count now
/// stored.
pub async fn count_in_window(
    db: &impl ConnectionTrait,
    event: NewEvent,
    window_key: &str,
) -> Result<i64, DbErr> {
    let backend = db.get_database_backend();
    let increment = match backend {
        DbBackend::Postgres => {
            "jsonb_set(audit_event.details::jsonb, '{count}', \
             to_jsonb(COALESCE((audit_event.details::jsonb ->> 'count')::bigint, 0) \
             + COALESCE((EXCLUDED.details::jsonb ->> 'count')::bigint, 1)))::text"
        }
        _ => {
            "json_set(audit_event.details, '$.count', \
             COALESCE(json_extract(audit_event.details, '$.count'), 0) \
             + COALESCE(json_extract(excluded.details, '$.count'), 1))"
        }
    };
    let placeholders = match backend {
        DbBackend::Postgres => "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10",
        _ => "?, ?, ?, ?, ?, ?, ?, ?, ?, ?",
    };
    let sql = format!(
        "INSERT INTO audit_event (created_at, kind, user_id, username, session_id, client_ip, \
         user_agent, client_id, details, window_key) VALUES ({placeholders}) \
         ON CONFLICT (window_key) DO UPDATE SET details = {increment} RETURNING details"
    );
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                event.created_at.into(),
                event.kind.into(),
                event.user_id.into(),
                event.username.into(),
                event.session_id.into(),
                event.client_ip.into(),
                event.user_agent.into(),
                event.client_id.into(),
                event.details.into(),
                window_key.into(),
            ],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotInserted)?;
    let details: String = row.try_get("", "details")?;
    Ok(serde_json::from_str::<serde_json::Value>(&details)
        .ok()
        .and_then(|details| details["count"].as_i64())
        .unwrap_or(1))
}

/// A user's events, newest first: at most `limit`, older than the event `before` if given.
pub async fn for_user(
    db: &impl ConnectionTrait,
    user_id: i64,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<Event>, DbErr> {
    let mut query = Entity::find().filter(Column::UserId.eq(user_id));
    if let Some(before) = before {
        query = query.filter(Column::Id.lt(before));
    }
    query.order_by_desc(Column::Id).limit(limit).all(db).await
}

/// What `authd audit` asks for; every part optional.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub user_id: Option<i64>,
    pub kind: Option<String>,
    pub since: Option<DateTime<Utc>>,
}

/// Events matching `filter`, oldest first, after the event `after`: at most `limit`.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &Filter,
    after: i64,
    limit: u64,
) -> Result<Vec<Event>, DbErr> {
    let mut query = Entity::find().filter(Column::Id.gt(after));
    if let Some(user_id) = filter.user_id {
        query = query.filter(Column::UserId.eq(user_id));
    }
    if let Some(kind) = &filter.kind {
        query = query.filter(Column::Kind.eq(kind.as_str()));
    }
    if let Some(since) = filter.since {
        query = query.filter(Column::CreatedAt.gte(since));
    }
    query.order_by_asc(Column::Id).limit(limit).all(db).await
}

/// Deletes at most `batch` events older than `before`; returns how many.
pub async fn purge(
    db: &impl ConnectionTrait,
    before: DateTime<Utc>,
    batch: u64,
) -> Result<u64, DbErr> {
    let ids: Vec<i64> = Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::CreatedAt.lt(before))
        .limit(batch)
        .into_tuple()
        .all(db)
        .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(Entity::delete_many()
        .filter(Column::Id.is_in(ids))
        .exec(db)
        .await?
        .rows_affected)
}
