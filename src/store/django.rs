//! Reading a Django site's database for `authd import-django`: `auth_user`, `authtoken_token`,
//! groups, permissions and memberships, read once, in one read-only snapshot, never through
//! authd's migrator. SQLite opens with `mode=ro`; PostgreSQL and MySQL read inside one
//! REPEATABLE READ, READ ONLY transaction, so rows changed while the import reads are seen as
//! they were when it began.

use std::fmt;
use std::path::PathBuf;

use chrono::NaiveDateTime;
use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr,
    IsolationLevel, QueryResult, Statement, TransactionTrait,
};

/// Where the Django database is.
#[derive(Clone, PartialEq, Eq)]
pub enum Source {
    /// A file, from `sqlite:///abs/path`, `sqlite:////abs/path` (dj-database-url's spelling)
    /// or authd's `sqlite://path`.
    Sqlite(PathBuf),
    Postgres(String),
    MySql(String),
}

/// The password, if any, stays out of messages.
impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Source::Postgres(url) | Source::MySql(url) => {
                f.write_str(&crate::telemetry::redact_url(url))
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("--from takes sqlite:///path/to/db.sqlite3, postgres://… or mysql://…, not {0:?}")]
    Unsupported(String),
    #[error(
        "mysql:// sources need authd built with the `mysql` feature: cargo build --release --features mysql"
    )]
    MySqlNotBuilt,
    #[error("no Django database at {0}")]
    Missing(PathBuf),
    #[error("the source holds no `auth_user` table: is it a Django database?")]
    NotDjango,
    #[error("the source is an authd database, not a Django one")]
    IsAuthd,
    #[error("cannot open the Django database {database}: {cause}")]
    Open { database: String, cause: String },
    #[error(transparent)]
    Database(#[from] DbErr),
}

impl Source {
    pub fn parse(url: &str) -> Result<Self, SourceError> {
        if let Some(rest) = url.strip_prefix("sqlite://") {
            let path = rest.split(['?', '#']).next().unwrap_or_default();
            // dj-database-url writes an absolute path with four slashes.
            let path = path
                .strip_prefix('/')
                .filter(|p| p.starts_with('/'))
                .unwrap_or(path);
            if path.is_empty() {
                return Err(SourceError::Unsupported(url.to_owned()));
            }
            let path = percent_encoding::percent_decode_str(path)
                .decode_utf8()
                .map_err(|_| SourceError::Unsupported(url.to_owned()))?;
            return Ok(Source::Sqlite(PathBuf::from(path.as_ref())));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Source::Postgres(url.to_owned()));
        }
        if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            if !cfg!(feature = "mysql") {
                return Err(SourceError::MySqlNotBuilt);
            }
            return Ok(Source::MySql(url.replacen("mariadb://", "mysql://", 1)));
        }
        Err(SourceError::Unsupported(
            url.split("://").next().unwrap_or_default().to_owned() + "://…",
        ))
    }

    /// Whether this is the database at `target` (authd's own URL): the same file, or the same
    /// server, port and database. Opening the source also refuses an authd database.
    pub fn is_target(&self, target: &str) -> bool {
        match (self, Source::parse(target)) {
            (Source::Sqlite(path), Ok(Source::Sqlite(other))) => {
                match (path.canonicalize(), other.canonicalize()) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => path == &other,
                }
            }
            (Source::Postgres(url), Ok(Source::Postgres(other))) => same_server(url, &other, 5432),
            _ => false,
        }
    }

    /// Whether Django stores naive datetimes here (in the site's `TIME_ZONE` when `USE_TZ` is
    /// off); PostgreSQL's `timestamp with time zone` are absolute whatever the setting.
    pub fn has_naive_times(&self) -> bool {
        !matches!(self, Source::Postgres(_))
    }

    async fn open(&self) -> Result<DatabaseConnection, SourceError> {
        let url = match self {
            Source::Sqlite(path) => {
                if !path.is_file() {
                    return Err(SourceError::Missing(path.clone()));
                }
                let path = path
                    .canonicalize()
                    .map_err(|_| SourceError::Missing(path.clone()))?;
                let encoded =
                    percent_encoding::utf8_percent_encode(&path.to_string_lossy(), PATH_UNSAFE)
                        .to_string();
                format!("sqlite://{encoded}?mode=ro")
            }
            Source::Postgres(url) | Source::MySql(url) => url.clone(),
        };
        let mut options = ConnectOptions::new(url);
        options
            .sqlx_logging(false)
            .max_connections(1)
            .min_connections(1)
            .connect_timeout(std::time::Duration::from_secs(10))
            .acquire_timeout(std::time::Duration::from_secs(10));
        Database::connect(options)
            .await
            .map_err(|err| SourceError::Open {
                database: format!("{self:?}"),
                cause: err.to_string(),
            })
    }
}

fn same_server(a: &str, b: &str, default_port: u16) -> bool {
    let place = |url: &str| {
        let parsed = url::Url::parse(url).ok()?;
        let host = match parsed.host_str()? {
            "localhost" | "::1" | "[::1]" => "127.0.0.1".to_owned(),
            host => host.to_owned(),
        };
        Some((
            host,
            parsed.port().unwrap_or(default_port),
            parsed.path().to_owned(),
        ))
    };
    match (place(a), place(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

const PATH_UNSAFE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b'%')
    .add(b'?')
    .add(b'#')
    .add(b' ');

/// A row of `auth_user`. The password hash stays out of `Debug`.
#[derive(Clone)]
pub struct DjangoUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub password: String,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub date_joined: NaiveDateTime,
    pub last_login: Option<NaiveDateTime>,
}

impl fmt::Debug for DjangoUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DjangoUser")
            .field("id", &self.id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A row of `authtoken_token`. The key is a live secret on the Django site: `Debug` never
/// shows it.
#[derive(Clone)]
pub struct DjangoToken {
    pub key: String,
    pub user_id: i64,
    pub created: NaiveDateTime,
}

impl fmt::Debug for DjangoToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DjangoToken")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct DjangoGroup {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct DjangoPermission {
    pub id: i64,
    pub app_label: String,
    pub codename: String,
    pub name: String,
}

/// Everything the import reads, as it was at one instant.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub users: Vec<DjangoUser>,
    pub tokens: Vec<DjangoToken>,
    pub groups: Vec<DjangoGroup>,
    pub permissions: Vec<DjangoPermission>,
    /// (group id, permission id)
    pub group_permissions: Vec<(i64, i64)>,
    /// (user id, group id)
    pub user_groups: Vec<(i64, i64)>,
    /// (user id, permission id)
    pub user_permissions: Vec<(i64, i64)>,
}

/// Opens the source read-only, reads it whole in one snapshot, and closes it.
pub async fn read(source: &Source) -> Result<Snapshot, SourceError> {
    let db = source.open().await?;
    let read = read_open(&db).await;
    let _ = db.close().await;
    read
}

async fn read_open(db: &DatabaseConnection) -> Result<Snapshot, SourceError> {
    let backend = db.get_database_backend();
    let txn = match backend {
        DbBackend::Sqlite => db.begin().await?,
        _ => {
            db.begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await?
        }
    };
    let tables = tables(&txn, backend).await?;
    if tables.iter().any(|t| t == "seaql_migrations") {
        return Err(SourceError::IsAuthd);
    }
    if !tables.iter().any(|t| t == "auth_user") {
        return Err(SourceError::NotDjango);
    }
    let sql = Sql(backend);
    let users = rows(
        &txn,
        backend,
        &format!(
            "SELECT {}, username, email, password, is_active, is_staff, is_superuser, {}, {} \
             FROM auth_user ORDER BY id",
            sql.int("id"),
            sql.time("date_joined"),
            sql.time("last_login"),
        ),
    )
    .await?
    .iter()
    .map(|row| {
        Ok(DjangoUser {
            id: row.try_get("", "id")?,
            username: row.try_get("", "username")?,
            email: row.try_get("", "email")?,
            password: row.try_get("", "password")?,
            is_active: sql.boolean(row, "is_active")?,
            is_staff: sql.boolean(row, "is_staff")?,
            is_superuser: sql.boolean(row, "is_superuser")?,
            date_joined: row.try_get("", "date_joined")?,
            last_login: row.try_get("", "last_login")?,
        })
    })
    .collect::<Result<Vec<_>, DbErr>>()?;
    let tokens = if tables.iter().any(|t| t == "authtoken_token") {
        rows(
            &txn,
            backend,
            &format!(
                "SELECT {} AS token_key, {}, {} FROM authtoken_token ORDER BY user_id",
                sql.quoted("key"),
                sql.int("user_id"),
                sql.time("created"),
            ),
        )
        .await?
        .iter()
        .map(|row| {
            Ok(DjangoToken {
                key: row.try_get("", "token_key")?,
                user_id: row.try_get("", "user_id")?,
                created: row.try_get("", "created")?,
            })
        })
        .collect::<Result<Vec<_>, DbErr>>()?
    } else {
        Vec::new()
    };
    let groups = rows(
        &txn,
        backend,
        &format!("SELECT {}, name FROM auth_group ORDER BY id", sql.int("id")),
    )
    .await?
    .iter()
    .map(|row| {
        Ok(DjangoGroup {
            id: row.try_get("", "id")?,
            name: row.try_get("", "name")?,
        })
    })
    .collect::<Result<Vec<_>, DbErr>>()?;
    let permissions = rows(
        &txn,
        backend,
        &format!(
            "SELECT {}, p.name AS name, p.codename AS codename, c.app_label AS app_label \
             FROM auth_permission p JOIN django_content_type c ON c.id = p.content_type_id \
             ORDER BY p.id",
            sql.int("p.id")
        ),
    )
    .await?
    .iter()
    .map(|row| {
        Ok(DjangoPermission {
            id: row.try_get("", "id")?,
            app_label: row.try_get("", "app_label")?,
            codename: row.try_get("", "codename")?,
            name: row.try_get("", "name")?,
        })
    })
    .collect::<Result<Vec<_>, DbErr>>()?;
    let group_permissions = pairs(
        &txn,
        sql,
        "auth_group_permissions",
        "group_id",
        "permission_id",
    )
    .await?;
    let user_groups = pairs(&txn, sql, "auth_user_groups", "user_id", "group_id").await?;
    let user_permissions = pairs(
        &txn,
        sql,
        "auth_user_user_permissions",
        "user_id",
        "permission_id",
    )
    .await?;
    txn.rollback().await?;
    Ok(Snapshot {
        users,
        tokens,
        groups,
        permissions,
        group_permissions,
        user_groups,
        user_permissions,
    })
}

/// Column expressions that read alike on the three backends: ids as 64-bit integers (Django's
/// `AutoField` is a 32-bit `integer` on PostgreSQL), datetimes as naive UTC or local times.
#[derive(Clone, Copy)]
struct Sql(DbBackend);

impl Sql {
    fn int(self, column: &str) -> String {
        let alias = column.rsplit('.').next().unwrap_or(column);
        match self.0 {
            DbBackend::Postgres => format!("{column}::bigint AS {alias}"),
            DbBackend::MySql => format!("CAST({column} AS SIGNED) AS {alias}"),
            _ => format!("{column} AS {alias}"),
        }
    }

    fn time(self, column: &str) -> String {
        match self.0 {
            DbBackend::Postgres => format!("({column} AT TIME ZONE 'UTC') AS {column}"),
            _ => column.to_owned(),
        }
    }

    /// A column named by a reserved word (`key`).
    fn quoted(self, column: &str) -> String {
        match self.0 {
            DbBackend::MySql => format!("`{column}`"),
            _ => format!("\"{column}\""),
        }
    }

    /// MySQL's `tinyint(1)` and SQLite's integers read as booleans too.
    fn boolean(self, row: &QueryResult, column: &str) -> Result<bool, DbErr> {
        match self.0 {
            DbBackend::Postgres => row.try_get("", column),
            _ => row
                .try_get::<bool>("", column)
                .or_else(|_| row.try_get::<i64>("", column).map(|value| value != 0)),
        }
    }
}

async fn rows(
    db: &impl ConnectionTrait,
    backend: DbBackend,
    sql: &str,
) -> Result<Vec<QueryResult>, DbErr> {
    db.query_all_raw(Statement::from_string(backend, sql.to_owned()))
        .await
}

async fn pairs(
    db: &impl ConnectionTrait,
    sql: Sql,
    table: &str,
    left: &str,
    right: &str,
) -> Result<Vec<(i64, i64)>, DbErr> {
    rows(
        db,
        sql.0,
        &format!("SELECT {}, {} FROM {table}", sql.int(left), sql.int(right)),
    )
    .await?
    .iter()
    .map(|row| Ok((row.try_get("", left)?, row.try_get("", right)?)))
    .collect()
}

async fn tables(db: &impl ConnectionTrait, backend: DbBackend) -> Result<Vec<String>, DbErr> {
    let sql = match backend {
        DbBackend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table'",
        DbBackend::Postgres => {
            "SELECT table_name::text AS name FROM information_schema.tables \
             WHERE table_schema = ANY (current_schemas(false))"
        }
        _ => {
            "SELECT CAST(table_name AS CHAR) AS name FROM information_schema.tables \
             WHERE table_schema = DATABASE()"
        }
    };
    rows(db, backend, sql)
        .await?
        .iter()
        .map(|row| row.try_get("", "name"))
        .collect()
}
