//! The only module that speaks sea-orm: connections, migrations and every query. The rest of
//! the service sees [`Db`], [`Tx`], [`Conn`], [`DbErr`] and the types defined here
//! (`tests/api/layout.rs` holds it to that).

pub mod audit;
pub mod authz;
pub mod clients;
pub mod django;
pub mod email_tokens;
pub mod entity;
pub mod failures;
pub mod import;
pub mod known_addresses;
pub mod outbox;
pub mod probe;
pub mod sessions;
pub mod tokens;
pub mod users;

use std::time::Duration;

use migration::MigratorTrait;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DbBackend, EntityTrait, QueryFilter, QueryOrder, Statement, TransactionOptions,
    TransactionTrait,
};

pub use entity::auth_session::SessionKind;
pub use entity::auth_token::TokenKind;
pub use entity::email_token::Purpose;
pub use sea_orm::DbErr;
pub use users::{Credentials, Principal};

/// Which unique index of a table a write hit, read from the database's message.
pub trait Unique: Sized {
    fn of(violated: &str) -> Option<Self>;
}

/// realworld's `on_constraint`: a write that hit one of a table's unique indexes becomes the
/// error `taken` makes of it (a field error, as Django's validation would have given); any
/// other failure stays a database error.
pub trait OnConstraint<T> {
    fn on_constraint<U: Unique, E: From<DbErr>>(self, taken: impl FnOnce(U) -> E) -> Result<T, E>;
}

impl<T> OnConstraint<T> for Result<T, DbErr> {
    fn on_constraint<U: Unique, E: From<DbErr>>(self, taken: impl FnOnce(U) -> E) -> Result<T, E> {
        self.map_err(|err| {
            let which = match err.sql_err() {
                Some(sea_orm::SqlErr::UniqueConstraintViolation(message)) => U::of(&message),
                _ => None,
            };
            match which {
                Some(which) => taken(which),
                None => err.into(),
            }
        })
    }
}

/// The database: a pool of connections, shared by the whole service.
pub type Db = DatabaseConnection;

/// The pool's connections at this moment, for metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolConnections {
    pub idle: usize,
    pub in_use: usize,
}

pub fn pool_connections(db: &Db) -> PoolConnections {
    let (size, idle) = match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size() as usize, pool.num_idle())
        }
        DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size() as usize, pool.num_idle())
        }
        _ => return PoolConnections::default(),
    };
    PoolConnections {
        idle,
        in_use: size.saturating_sub(idle),
    }
}

/// One transaction, from [`begin_write`]: a use case's writes go through it and are committed
/// (`commit`) or, dropped, rolled back as one.
pub type Tx = sea_orm::DatabaseTransaction;

/// What a query runs on: the pool ([`Db`]) or a transaction ([`Tx`]).
pub trait Conn: ConnectionTrait {}

impl<T: ConnectionTrait> Conn for T {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

impl DatabaseKind {
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgresql",
        }
    }
}

/// Opens the pool. SQLite runs in WAL mode with a busy timeout and foreign keys on, and gets
/// several connections so guarded reads do not queue behind one another; writers serialise
/// on SQLite's lock, which every write transaction takes first (see [`begin_write`]).
/// `timeout` bounds each wait for the database: a connection from the pool, a new connection,
/// SQLite's lock. Past it the query fails, and [`unavailable`] says so.
pub async fn connect(
    url: &str,
    max_connections: u32,
    timeout: Duration,
) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(timeout)
        .connect_timeout(timeout)
        .map_sqlx_sqlite_opts(move |opts| {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(timeout)
                .foreign_keys(true)
        });
    Database::connect(options).await
}

/// Whether an error, or one of its causes, is the database being away rather than a fault:
/// no connection within the timeout, a connection refused, cut or shut down by the server
/// (PostgreSQL restarting), or SQLite's lock held by another process past the busy timeout.
/// These are answered 503 and heal by themselves.
pub fn unavailable(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if err.downcast_ref::<DbErr>().is_some_and(db_unavailable)
            || err
                .downcast_ref::<sea_orm::sqlx::Error>()
                .is_some_and(sqlx_unavailable)
        {
            return true;
        }
        cause = err.source();
    }
    false
}

fn db_unavailable(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(sea_orm::RuntimeErr::SqlxError(err))
        | DbErr::Query(sea_orm::RuntimeErr::SqlxError(err)) => sqlx_unavailable(err),
        _ => false,
    }
}

fn sqlx_unavailable(err: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match err {
        Error::Io(_)
        | Error::Tls(_)
        | Error::PoolTimedOut
        | Error::PoolClosed
        | Error::WorkerCrashed => true,
        Error::Database(err) => {
            if let Some(err) = err.try_downcast_ref::<sea_orm::sqlx::postgres::PgDatabaseError>() {
                // Class 08: connection exceptions; 57P01-57P03: the server shutting down,
                // crashed or starting; 53300: too many connections.
                let code = err.code();
                code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
            } else if let Some(err) = err.try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>() {
                // SQLITE_BUSY and SQLITE_LOCKED, with their extended codes.
                use sea_orm::sqlx::error::DatabaseError as _;
                err.code()
                    .and_then(|code| code.parse::<i32>().ok())
                    .is_some_and(|code| matches!(code & 0xff, 5 | 6))
            } else {
                false
            }
        }
        _ => false,
    }
}

pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    migration::Migrator::up(db, None).await
}

/// Starts a transaction that holds the write lock from its first statement. On SQLite a
/// deferred transaction that reads and then writes fails at once with SQLITE_BUSY when another
/// writer got there first; `BEGIN IMMEDIATE` waits for the lock (busy timeout) instead.
pub async fn begin_write(db: &Db) -> Result<Tx, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

async fn ping(db: &DatabaseConnection) -> Result<(), DbErr> {
    db.execute_unprepared("SELECT 1").await.map(|_| ())
}

/// How often a server on SQLite looks for changes made by other processes.
const SQLITE_POLL: Duration = Duration::from_millis(100);

/// Tells every running instance something, as part of the caller's transaction (delivered if
/// and only if it commits). PostgreSQL: `pg_notify`. SQLite, whose other processes are the
/// `authd` commands run beside a server: a row in `cache_invalidation`, which servers poll.
pub async fn notify(db: &impl ConnectionTrait, channel: &str, payload: &str) -> Result<(), DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [channel.into(), payload.into()],
        );
        return db.execute_raw(statement).await.map(|_| ());
    }
    entity::cache_invalidation::ActiveModel {
        payload: sea_orm::Set(payload.to_owned()),
        created: sea_orm::Set(chrono::Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await
    .map(|_| ())
}

/// Calls `on_message` with each message sent with [`notify`] on `channel`, and with `None`
/// whenever messages may have been missed: once listening (re)starts, since what changed
/// while it was down was never heard. Not when the connection is lost: while the database
/// is away nothing can change, and what the cache holds keeps answering. Runs until dropped.
pub async fn listen(db: &DatabaseConnection, channel: &str, on_message: impl Fn(Option<&str>)) {
    if db.get_database_backend() != DbBackend::Postgres {
        return poll_sqlite(db, on_message).await;
    }
    let pool = db.get_postgres_connection_pool().clone();
    loop {
        let listening: Result<(), sea_orm::sqlx::Error> = async {
            let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen(channel).await?;
            on_message(None);
            // `None`: the connection dropped. Listen anew on a fresh one rather than let
            // sqlx reconnect inside `try_recv`, so that the resync above follows the LISTEN.
            while let Some(notification) = listener.try_recv().await? {
                on_message(Some(notification.payload()));
            }
            Ok(())
        }
        .await;
        let reason = listening
            .err()
            .map_or("disconnected".to_owned(), |e| e.to_string());
        tracing::warn!(error = %reason, "lost the PostgreSQL notification channel; retrying");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn poll_sqlite(db: &DatabaseConnection, on_message: impl Fn(Option<&str>)) {
    use entity::cache_invalidation::{Column, Entity};
    let mut seen: Option<i64> = None;
    loop {
        let read = match seen {
            // Start after what is already there: this process has cached nothing yet.
            None => Entity::find()
                .order_by_desc(Column::Id)
                .one(db)
                .await
                .map(|last| {
                    seen = Some(last.map_or(0, |row| row.id));
                    Vec::new()
                }),
            Some(after) => {
                Entity::find()
                    .filter(Column::Id.gt(after))
                    .order_by_asc(Column::Id)
                    .all(db)
                    .await
            }
        };
        match read {
            Ok(rows) => {
                for row in rows {
                    seen = Some(row.id);
                    on_message(Some(&row.payload));
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot read cache invalidations; forgetting every cached token");
                on_message(None);
            }
        }
        tokio::time::sleep(SQLITE_POLL).await;
    }
}

/// Deletes invalidations older than `before` (servers read them within a poll).
pub async fn purge_invalidations(
    db: &impl ConnectionTrait,
    before: chrono::DateTime<chrono::Utc>,
) -> Result<u64, DbErr> {
    use entity::cache_invalidation::{Column, Entity};
    let result = Entity::delete_many()
        .filter(Column::Created.lt(before))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// The lookups that must find their rows through an index whatever the tables' sizes, with
/// the tables each reads, built exactly as the queries above run them, with sample values
/// bound: for a test that reads their plans. A column type that differs from the bound value's
/// (PostgreSQL's `character(n)` against `text`) silently turns one of them into a sequential
/// scan.
pub fn indexed_lookups(backend: DbBackend) -> Vec<(&'static [&'static str], Statement)> {
    use sea_orm::QueryTrait as _;
    let digest = "0".repeat(64);
    vec![
        (
            &[
                "auth_token",
                "auth_user",
                "auth_session",
                "auth_user_groups",
                "auth_user_user_permissions",
            ],
            tokens::live_by_digest(&digest, backend),
        ),
        (&["auth_token"], tokens::by_digest(&digest).build(backend)),
        (
            &["email_token"],
            email_tokens::by_digest(1, Purpose::PasswordReset, &digest).build(backend),
        ),
        (
            &["login_failure"],
            failures::window_query(&digest, chrono::Utc::now(), chrono::Utc::now(), 0, 10)
                .build(backend),
        ),
    ]
}
