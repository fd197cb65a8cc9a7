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

/// The name a server's cache listener connection carries (set once it listens), by which a
/// change that evicts cached tokens counts the servers that must confirm it
/// ([`cache_listeners`]).
const CACHE_LISTENER: &str = "authd cache listener";

/// A message sent with [`notify`], as a listener receives it.
#[derive(Debug, Clone, Copy)]
pub struct Notice<'a> {
    pub channel: &'a str,
    pub payload: &'a str,
    /// The PostgreSQL backend that sent it (0 on SQLite): a listener's replies are sent on its
    /// own connection, so this names the listener that replied.
    pub sender: i64,
}

/// What [`listen`] hears.
#[derive(Debug, Clone, Copy)]
pub enum Heard<'a> {
    /// Listening (again): anything sent before may have been missed.
    Listening,
    /// No longer listening until the next [`Heard::Listening`] (the connection was lost).
    Lost,
    Notice(Notice<'a>),
}

/// A message a listener sends in answer to one it heard, on its own connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub channel: String,
    pub payload: String,
}

/// Calls `on_heard` with each message sent with [`notify`] on `channels`, with
/// [`Heard::Listening`] whenever messages may have been missed (once listening (re)starts,
/// since what changed while it was down was never heard), and with [`Heard::Lost`] when the
/// connection is lost. The cache is not cleared then: while the database is away nothing can
/// change, and what the cache holds keeps answering. The reply `on_heard` returns is sent at
/// once, on the listening connection, before the next message is handled. Runs until dropped.
///
/// On PostgreSQL the listener has a connection of its own, outside the pool, named
/// [`CACHE_LISTENER`] once it listens, and before [`Heard::Listening`] clears the cache: a
/// server that [`cache_listeners`] does not count yet is one whose cache is still to be
/// cleared.
pub async fn listen(
    db: &DatabaseConnection,
    channels: &[&str],
    on_heard: impl Fn(Heard<'_>) -> Option<Reply>,
) {
    if db.get_database_backend() != DbBackend::Postgres {
        return poll_sqlite(db, channels, on_heard).await;
    }
    // A connection that was listening and dropped (its backend ended, PostgreSQL still up) is
    // replaced at once: until then, this server's cache misses the changes made meanwhile and
    // no change waits for it. An attempt that failed before listening, or listened for less
    // than a second, waits a second first, so that a connection cut over and over is not
    // replaced in a tight loop.
    let mut pause = false;
    loop {
        if pause {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let pool = own_connection(db);
        let mut listened: Option<std::time::Instant> = None;
        let listening: Result<(), sea_orm::sqlx::Error> = async {
            let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(&pool).await?;
            // A lost connection ends this attempt; the next listens anew on a fresh one, so
            // that the resync below follows the LISTEN.
            listener.eager_reconnect(false);
            listener.listen_all(channels.iter().copied()).await?;
            sea_orm::sqlx::query("SELECT set_config('application_name', $1, false)")
                .bind(CACHE_LISTENER)
                .execute(&mut listener)
                .await?;
            listened = Some(std::time::Instant::now());
            on_heard(Heard::Listening);
            while let Some(notification) = listener.try_recv().await? {
                let notice = Notice {
                    channel: notification.channel(),
                    payload: notification.payload(),
                    sender: i64::from(notification.process_id()),
                };
                if let Some(reply) = on_heard(Heard::Notice(notice)) {
                    sea_orm::sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(reply.channel)
                        .bind(reply.payload)
                        .execute(&mut listener)
                        .await?;
                }
            }
            Ok(())
        }
        .await;
        on_heard(Heard::Lost);
        // Closed, not handed to a pool: a connection named as a listener must be one.
        pool.close().await;
        let reason = listening
            .err()
            .map_or("disconnected".to_owned(), |e| e.to_string());
        tracing::warn!(error = %reason, "lost the PostgreSQL notification channel; retrying");
        pause = listened.is_none_or(|since| since.elapsed() < Duration::from_secs(1));
    }
}

/// A pool of one connection with the service pool's settings, for a listener: LISTEN holds a
/// connection for good, and it must not take one of the pool's.
fn own_connection(db: &DatabaseConnection) -> sea_orm::sqlx::PgPool {
    let pool = db.get_postgres_connection_pool();
    let options = pool.connect_options();
    sea_orm::sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(pool.options().get_acquire_timeout())
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with((*options).clone())
}

/// Whether servers can confirm that they applied a change ([`cache_listeners`]): on
/// PostgreSQL.
pub fn servers_confirm(db: &DatabaseConnection) -> bool {
    db.get_database_backend() == DbBackend::Postgres
}

/// The PostgreSQL backends of the servers listening for cache invalidations on this database
/// now (none on SQLite, whose servers poll).
pub async fn cache_listeners(db: &DatabaseConnection) -> Result<Vec<i64>, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(Vec::new());
    }
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pid::bigint AS pid FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = $1",
        [CACHE_LISTENER.into()],
    );
    db.query_all_raw(statement)
        .await?
        .iter()
        .map(|row| row.try_get::<i64>("", "pid"))
        .collect()
}

/// One channel listened to for a while, by a process that runs no listener of its own (an
/// `authd` command): the senders of what arrives on it. PostgreSQL only.
pub struct Inbox {
    listener: sea_orm::sqlx::postgres::PgListener,
    pool: sea_orm::sqlx::PgPool,
}

impl Inbox {
    /// Listening on `channel` once this returns; `None` on SQLite.
    pub async fn open(db: &DatabaseConnection, channel: &str) -> Result<Option<Self>, DbErr> {
        if db.get_database_backend() != DbBackend::Postgres {
            return Ok(None);
        }
        let pool = own_connection(db);
        let opened = async {
            let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.eager_reconnect(false);
            listener.listen(channel).await?;
            Ok(listener)
        }
        .await;
        match opened {
            Ok(listener) => Ok(Some(Self { listener, pool })),
            Err(err) => {
                pool.close().await;
                Err(conn_err(err))
            }
        }
    }

    /// The sender and the payload of the next message; `None` once the connection is lost.
    pub async fn next(&mut self) -> Result<Option<(i64, String)>, DbErr> {
        let received = self.listener.try_recv().await.map_err(conn_err)?;
        Ok(received.map(|notification| {
            (
                i64::from(notification.process_id()),
                notification.payload().to_owned(),
            )
        }))
    }

    pub async fn close(self) {
        drop(self.listener);
        self.pool.close().await;
    }
}

fn conn_err(err: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Conn(sea_orm::RuntimeErr::SqlxError(std::sync::Arc::new(err)))
}

async fn poll_sqlite(
    db: &DatabaseConnection,
    channels: &[&str],
    on_heard: impl Fn(Heard<'_>) -> Option<Reply>,
) {
    use entity::cache_invalidation::{Column, Entity};
    // Every message is in one table; the channel they were sent on is the first one.
    let Some(&channel) = channels.first() else {
        return;
    };
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
                    on_heard(Heard::Listening);
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
                    on_heard(Heard::Notice(Notice {
                        channel,
                        payload: &row.payload,
                        sender: 0,
                    }));
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot read cache invalidations; forgetting every cached token");
                on_heard(Heard::Listening);
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
