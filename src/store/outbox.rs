//! Queries on `email_outbox` and `email_request`: what the delivery worker claims and records.
//! Rows are claimed with a lease (`locked_until`), so several instances never work on the same
//! row at once, and a crashed instance's rows come back when its lease runs out.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, sea_query::Expr,
};

use sea_orm::sea_query::OnConflict;

use super::entity::email_token::Purpose;
use super::entity::{email_address_window, email_cooldown, email_outbox, email_request};

/// A message ready to be written to the outbox.
#[derive(Clone)]
pub struct NewMessage {
    pub message_id: String,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
}

pub async fn enqueue(db: &impl ConnectionTrait, message: NewMessage) -> Result<(), DbErr> {
    insert(db, message, None).await
}

/// A due row: rendered already (`link` is `None`), or to be rendered at delivery.
async fn insert(
    db: &impl ConnectionTrait,
    message: NewMessage,
    link: Option<(Purpose, i64, String)>,
) -> Result<(), DbErr> {
    let now = Utc::now();
    let (kind, user_id, fingerprint) = match link {
        Some((kind, user_id, fingerprint)) => (Some(kind), Some(user_id), Some(fingerprint)),
        None => (None, None, None),
    };
    email_outbox::ActiveModel {
        message_id: Set(message.message_id),
        recipient: Set(message.recipient),
        subject: Set(message.subject),
        text_body: Set(message.text_body),
        html_body: Set(message.html_body),
        created: Set(now),
        attempts: Set(0),
        next_attempt_at: Set(now),
        locked_until: Set(None),
        sent_at: Set(None),
        failed_at: Set(None),
        last_error: Set(None),
        kind: Set(kind),
        user_id: Set(user_id),
        fingerprint: Set(fingerprint),
        ..Default::default()
    }
    .insert(db)
    .await
    .map(|_| ())
}

fn unlocked<C: ColumnTrait>(column: C, now: DateTime<Utc>) -> Condition {
    Condition::any().add(column.is_null()).add(column.lt(now))
}

/// Claims up to `limit` messages that are due, for `lease`.
pub async fn claim_due(
    db: &impl ConnectionTrait,
    limit: u64,
    lease: Duration,
) -> Result<Vec<email_outbox::Model>, DbErr> {
    use email_outbox::{Column, Entity};
    let now = Utc::now();
    let due = Entity::find()
        .filter(Column::SentAt.is_null())
        .filter(Column::FailedAt.is_null())
        .filter(Column::NextAttemptAt.lte(now))
        .filter(unlocked(Column::LockedUntil, now))
        .order_by_asc(Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    let mut claimed = Vec::with_capacity(due.len());
    for message in due {
        let won = Entity::update_many()
            .col_expr(Column::LockedUntil, Expr::value(now + lease))
            .filter(Column::Id.eq(message.id))
            .filter(Column::SentAt.is_null())
            .filter(unlocked(Column::LockedUntil, now))
            .exec(db)
            .await?;
        if won.rows_affected == 1 {
            claimed.push(message);
        }
    }
    Ok(claimed)
}

/// Records a delivery and blanks the bodies, which may hold single-use links.
pub async fn mark_sent(db: &impl ConnectionTrait, id: i64, attempts: i32) -> Result<(), DbErr> {
    use email_outbox::{Column, Entity};
    Entity::update_many()
        .col_expr(Column::SentAt, Expr::value(Utc::now()))
        .col_expr(Column::Attempts, Expr::value(attempts))
        .col_expr(Column::TextBody, Expr::value(""))
        .col_expr(Column::HtmlBody, Expr::value(""))
        .col_expr(
            Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(Column::LastError, Expr::value(Option::<String>::None))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}

/// Records a failed attempt: retried at `retry_at`, or given up when that is `None`.
pub async fn mark_failed(
    db: &impl ConnectionTrait,
    id: i64,
    attempts: i32,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    use email_outbox::{Column, Entity};
    let mut update = Entity::update_many()
        .col_expr(Column::Attempts, Expr::value(attempts))
        .col_expr(Column::LastError, Expr::value(error))
        .col_expr(
            Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        );
    update = match retry_at {
        Some(at) => update.col_expr(Column::NextAttemptAt, Expr::value(at)),
        None => update
            .col_expr(Column::FailedAt, Expr::value(Utc::now()))
            .col_expr(Column::TextBody, Expr::value(""))
            .col_expr(Column::HtmlBody, Expr::value("")),
    };
    update.filter(Column::Id.eq(id)).exec(db).await.map(|_| ())
}

/// What became of a reset or resend request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    Queued,
    /// One of this kind for this address is pending already: the request is merged into it.
    Merged,
    /// `limit` requests are pending: the request is dropped.
    Full,
}

/// Queues a reset or resend request, once per (kind, address) while one is pending, and only
/// while fewer than `limit` are.
pub async fn enqueue_request(
    db: &impl ConnectionTrait,
    kind: Purpose,
    email: &str,
    address_key: &str,
    limit: u64,
) -> Result<Queued, DbErr> {
    use email_request::{ActiveModel, Column, Entity};
    if Entity::find().count(db).await? >= limit {
        return Ok(Queued::Full);
    }
    let inserted = Entity::insert(ActiveModel {
        kind: Set(kind),
        email: Set(email.to_owned()),
        created: Set(Utc::now()),
        locked_until: Set(None),
        address_key: Set(Some(address_key.to_owned())),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([Column::Kind, Column::AddressKey])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(match inserted {
        0 => Queued::Merged,
        _ => Queued::Queued,
    })
}

pub async fn claim_requests(
    db: &impl ConnectionTrait,
    limit: u64,
    lease: Duration,
) -> Result<Vec<email_request::Model>, DbErr> {
    use email_request::{Column, Entity};
    let now = Utc::now();
    let waiting = Entity::find()
        .filter(unlocked(Column::LockedUntil, now))
        .order_by_asc(Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    let mut claimed = Vec::with_capacity(waiting.len());
    for request in waiting {
        let won = Entity::update_many()
            .col_expr(Column::LockedUntil, Expr::value(now + lease))
            .filter(Column::Id.eq(request.id))
            .filter(unlocked(Column::LockedUntil, now))
            .exec(db)
            .await?;
        if won.rows_affected == 1 {
            claimed.push(request);
        }
    }
    Ok(claimed)
}

pub async fn finish_request(db: &impl ConnectionTrait, id: i64) -> Result<(), DbErr> {
    email_request::Entity::delete_by_id(id)
        .exec(db)
        .await
        .map(|_| ())
}

/// A message whose link is minted when it is delivered, for this account as it is now.
#[derive(Debug, Clone)]
pub struct LinkMessage {
    pub message_id: String,
    pub kind: Purpose,
    pub user_id: i64,
    pub recipient: String,
    /// The account's fingerprint at request time: a different one at delivery drops it.
    pub fingerprint: String,
}

pub async fn enqueue_link(db: &impl ConnectionTrait, message: LinkMessage) -> Result<(), DbErr> {
    let empty = NewMessage {
        message_id: message.message_id,
        recipient: message.recipient,
        subject: String::new(),
        text_body: String::new(),
        html_body: String::new(),
    };
    insert(
        db,
        empty,
        Some((message.kind, message.user_id, message.fingerprint)),
    )
    .await
}

/// Gives up a message without sending it (its account changed since it was requested).
pub async fn drop_message(db: &impl ConnectionTrait, id: i64, reason: &str) -> Result<(), DbErr> {
    use email_outbox::{Column, Entity};
    Entity::update_many()
        .col_expr(Column::FailedAt, Expr::value(Utc::now()))
        .col_expr(Column::LastError, Expr::value(reason))
        .col_expr(
            Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}

/// Hands unsent messages back at once (a graceful stop), instead of when the lease runs out.
pub async fn release(db: &impl ConnectionTrait, ids: &[i64]) -> Result<(), DbErr> {
    use email_outbox::{Column, Entity};
    if ids.is_empty() {
        return Ok(());
    }
    Entity::update_many()
        .col_expr(
            Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(Column::Id.is_in(ids.iter().copied()))
        .filter(Column::SentAt.is_null())
        .exec(db)
        .await
        .map(|_| ())
}

/// How many messages wait to be sent, were sent, or were given up (kept until the purge).
#[derive(Debug, Clone, Copy, Default)]
pub struct OutboxCounts {
    pub pending: u64,
    pub sent: u64,
    pub failed: u64,
}

pub async fn count_by_state(db: &impl ConnectionTrait) -> Result<OutboxCounts, DbErr> {
    use email_outbox::{Column, Entity};
    let pending = Entity::find()
        .filter(Column::SentAt.is_null())
        .filter(Column::FailedAt.is_null())
        .count(db)
        .await?;
    let sent = Entity::find()
        .filter(Column::SentAt.is_not_null())
        .count(db)
        .await?;
    let failed = Entity::find()
        .filter(Column::FailedAt.is_not_null())
        .count(db)
        .await?;
    Ok(OutboxCounts {
        pending,
        sent,
        failed,
    })
}

/// Deletes messages delivered or given up before `before`.
pub async fn purge(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    use email_outbox::{Column, Entity};
    let result = Entity::delete_many()
        .filter(
            Condition::any()
                .add(Column::SentAt.lt(before))
                .add(Column::FailedAt.lt(before)),
        )
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Takes the send window of an account and purpose: `true` (and the window starts now) when
/// the last requested message is older than `window`, or there was none. Atomic: of two
/// instances resolving requests for one account at once, one wins.
pub async fn claim_window(
    db: &impl ConnectionTrait,
    user_id: i64,
    purpose: Purpose,
    window: std::time::Duration,
) -> Result<bool, DbErr> {
    use email_cooldown::{ActiveModel, Column, Entity};
    let now = Utc::now();
    let window = Duration::from_std(window).unwrap_or(Duration::MAX);
    let inserted = Entity::insert(ActiveModel {
        user_id: Set(user_id),
        purpose: Set(purpose),
        last_sent_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([Column::UserId, Column::Purpose])
            .update_column(Column::LastSentAt)
            .action_and_where(Column::LastSentAt.lte(now - window))
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(inserted == 1)
}

/// Takes the send window of an address (its key) for sign-up mail: `true` (and the window
/// starts now) when the address got none within `window`. Atomic, as [`claim_window`].
pub async fn claim_address_window(
    db: &impl ConnectionTrait,
    address_key: &str,
    window: std::time::Duration,
) -> Result<bool, DbErr> {
    use email_address_window::{ActiveModel, Column, Entity};
    let now = Utc::now();
    let window = Duration::from_std(window).unwrap_or(Duration::MAX);
    let inserted = Entity::insert(ActiveModel {
        address: Set(address_key.to_owned()),
        last_sent_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(Column::Address)
            .update_column(Column::LastSentAt)
            .action_and_where(Column::LastSentAt.lte(now - window))
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(inserted == 1)
}

/// Deletes windows, of accounts and of addresses, that closed before `before`.
pub async fn purge_windows(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let accounts = email_cooldown::Entity::delete_many()
        .filter(email_cooldown::Column::LastSentAt.lt(before))
        .exec(db)
        .await?;
    let addresses = email_address_window::Entity::delete_many()
        .filter(email_address_window::Column::LastSentAt.lt(before))
        .exec(db)
        .await?;
    Ok(accounts.rows_affected + addresses.rows_affected)
}
