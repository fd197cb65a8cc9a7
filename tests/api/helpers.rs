//! The test app: the real service on a random port, against a fresh database per test: a
//! SQLite file in a temporary directory, or, when `AUTHD_TEST_POSTGRES_URL` is set (a URL of
//! an existing database used only to create and drop others), a new PostgreSQL database that
//! is dropped when the test ends.

use std::sync::Once;

use authd::config::Settings;
use authd::startup::Application;
use authd::state::AppState;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};

pub const POSTGRES_ENV: &str = "AUTHD_TEST_POSTGRES_URL";
pub const REDIS_ENV: &str = "AUTHD_TEST_REDIS_URL";
/// Passes Django's four validators.
pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub prefix: String,
    database: std::sync::Arc<TestDatabase>,
}

enum TestDatabase {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres {
        admin_url: String,
        name: String,
    },
    /// A database the test made and removes itself (a private PostgreSQL cluster).
    Owned,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let TestDatabase::Postgres { admin_url, name } = self else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        let database = name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let admin = Database::connect(admin_url.as_str())
                    .await
                    .expect("connect to admin database");
                admin
                    .execute_unprepared(&format!(
                        "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
                    ))
                    .await
                    .expect("drop test database");
            })
        })
        .join();
        if dropped.is_err() {
            eprintln!("could not drop test database {name}");
        }
    }
}

/// Whether the tests run on PostgreSQL; if not, says why the calling test is skipped.
pub fn on_postgres(why: &str) -> bool {
    let set = std::env::var(POSTGRES_ENV).is_ok();
    if !set {
        eprintln!("skipped: {why} only on PostgreSQL ({POSTGRES_ENV} is not set)");
    }
    set
}

/// A port nothing listens on right now, for a server a test starts itself.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The shared Redis for tests that need one (`.ci/run` sets it); `None` says why the calling
/// test is skipped.
pub fn redis_url(why: &str) -> Option<String> {
    let url = std::env::var(REDIS_ENV).ok();
    if url.is_none() {
        eprintln!("skipped: {why} needs Redis ({REDIS_ENV} is not set)");
    }
    url
}

fn note_backend() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var(POSTGRES_ENV).is_err() {
            eprintln!("{POSTGRES_ENV} is not set: the API tests run on SQLite only (.ci/run sets it to cover PostgreSQL)");
        }
    });
}

async fn fresh_database() -> (String, TestDatabase) {
    note_backend();
    match std::env::var(POSTGRES_ENV) {
        Ok(admin_url) => {
            let name = format!("authd_test_{}", unique_id());
            let admin = Database::connect(admin_url.as_str())
                .await
                .expect("connect to PostgreSQL");
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create test database");
            let mut url = url::Url::parse(&admin_url).expect("valid PostgreSQL URL");
            url.set_path(&format!("/{name}"));
            (url.to_string(), TestDatabase::Postgres { admin_url, name })
        }
        Err(_) => {
            let dir = tempfile::tempdir().expect("temporary directory");
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("authd.sqlite3").display()
            );
            (url, TestDatabase::Sqlite(dir))
        }
    }
}

/// A fresh database for a test that runs the `authd` binary on it rather than an app in this
/// process: its URL, and the database itself, dropped with this value.
pub struct FreshDatabase {
    pub url: String,
    _database: TestDatabase,
}

impl FreshDatabase {
    pub async fn new() -> Self {
        let (url, database) = fresh_database().await;
        Self {
            url,
            _database: database,
        }
    }
}

/// Rows in `from`: a table, optionally followed by a `WHERE` clause.
pub async fn count_rows(db: &DatabaseConnection, from: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {from}"),
        ))
        .await
        .expect("count")
        .expect("a row");
    row.try_get::<i64>("", "n").expect("n")
}

/// Unique within this machine: names for databases and key prefixes tests make.
pub fn unique_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{:x}_{}_{}",
        nanos,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A throttle rate in the settings' syntax.
pub fn rate(text: &str) -> Option<authd::throttle::Rate> {
    authd::throttle::Rate::parse(text).expect("a rate")
}

/// Behind a trusted proxy at 127.0.0.1, so each request can say which client it comes from.
pub fn behind_proxy(settings: &mut Settings) {
    settings.trusted_proxies = vec!["127.0.0.1/32".parse().expect("CIDR")];
}

/// DRF's body and a `Retry-After` that says the same number of seconds, within `most`.
#[track_caller]
pub fn assert_throttled(reply: &Reply, most: u64) -> u64 {
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.text
    );
    reply.assert_media_json();
    let wait: u64 = reply
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    assert!((1..=most).contains(&wait), "Retry-After {wait}");
    let unit = if wait == 1 { "second" } else { "seconds" };
    reply.assert(
        StatusCode::TOO_MANY_REQUESTS,
        json!({"detail": format!("Request was throttled. Expected available in {wait} {unit}.")}),
    );
    wait
}

/// Everything a test can read back: users and tokens, row by row.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot(Vec<String>);

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_on_old_schema(0, |_| async {}, configure).await
    }

    /// Starts the app on a database that the first `migrations` migrations made (as a
    /// previous release left it; 0: a fresh database) and that `fill` wrote to: the app's
    /// start upgrades it.
    pub async fn spawn_on_old_schema<F: std::future::Future<Output = ()>>(
        migrations: u32,
        fill: impl FnOnce(DatabaseConnection) -> F,
        configure: impl FnOnce(&mut Settings),
    ) -> Self {
        let (url, database) = fresh_database().await;
        if migrations > 0 {
            use migration::MigratorTrait;
            let db = authd::store::connect(&url, 1, std::time::Duration::from_secs(5))
                .await
                .expect("connect");
            migration::Migrator::up(&db, Some(migrations))
                .await
                .expect("the old schema");
            fill(db.clone()).await;
            db.close().await.expect("close");
        }
        let mut settings = Settings::for_database(url);
        settings.bind = "127.0.0.1:0".parse().expect("address");
        // Tests run side by side on a shared machine: no login is shed unless a test asks.
        settings.hashing.queue_timeout = std::time::Duration::from_secs(60);
        configure(&mut settings);
        Self::start(settings, std::sync::Arc::new(database)).await
    }

    /// Starts the app on a database the test owns (made, and removed, by the test itself).
    pub async fn spawn_on_url(url: String, configure: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Settings::for_database(url);
        settings.bind = "127.0.0.1:0".parse().expect("address");
        settings.hashing.queue_timeout = std::time::Duration::from_secs(60);
        configure(&mut settings);
        Self::start(settings, std::sync::Arc::new(TestDatabase::Owned)).await
    }

    /// A second instance of the service on the same database (a scaled-out deployment).
    pub async fn sibling(&self) -> Self {
        self.sibling_with((*self.state.settings).clone()).await
    }

    /// A second instance on the same database, with its own settings.
    pub async fn sibling_with(&self, settings: Settings) -> Self {
        Self::start(settings, self.database.clone()).await
    }

    /// The app, and the switch that begins its shutdown as SIGTERM would; the task ends when
    /// the server has stopped.
    pub async fn spawn_stoppable(
        configure: impl FnOnce(&mut Settings),
    ) -> (
        Self,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let (url, database) = fresh_database().await;
        let mut settings = Settings::for_database(url);
        settings.bind = "127.0.0.1:0".parse().expect("address");
        configure(&mut settings);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let (app, served) =
            Self::start_until(settings, std::sync::Arc::new(database), shutdown).await;
        (app, stop, served)
    }

    async fn start(settings: Settings, database: std::sync::Arc<TestDatabase>) -> Self {
        Self::start_until(settings, database, std::future::pending())
            .await
            .0
    }

    async fn start_until(
        settings: Settings,
        database: std::sync::Arc<TestDatabase>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> (Self, tokio::task::JoinHandle<std::io::Result<()>>) {
        let prefix = settings.url_prefix.clone();
        let app = Application::build(settings).await.expect("the app starts");
        let address = format!("http://{}", app.address());
        let state = app.state().clone();
        let served = tokio::spawn(app.run(shutdown));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let app = Self {
            address,
            client,
            state,
            prefix,
            database,
        };
        (app, served)
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.state.db
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}{}", self.address, self.prefix, path)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub async fn send(&self, builder: RequestBuilder) -> Reply {
        Reply::read(builder.send().await.expect("request sent")).await
    }

    pub async fn post_json(&self, path: &str, body: Value, token: Option<&str>) -> Reply {
        let mut builder = self.request(Method::POST, path).json(&body);
        if let Some(token) = token {
            builder = builder.header("Authorization", format!("Token {token}"));
        }
        self.send(builder).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut builder = self
            .request(method, path)
            .header("Authorization", format!("Token {token}"));
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        self.send(builder).await
    }

    pub async fn register(&self, username: &str, password: &str) -> Reply {
        self.post_json(
            "/users/",
            json!({ "username": username, "password": password }),
            None,
        )
        .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Reply {
        self.post_json(
            "/token/login/",
            json!({ "username": username, "password": password }),
            None,
        )
        .await
    }

    /// Registers and logs in; returns the user id and a token.
    pub async fn create_user(&self, username: &str) -> (i64, String) {
        let created = self.register(username, PASSWORD).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        let id = created.json()["id"].as_i64().expect("id");
        (id, self.token_for(username, PASSWORD).await)
    }

    pub async fn token_for(&self, username: &str, password: &str) -> String {
        let reply = self.login(username, password).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json()["auth_token"]
            .as_str()
            .expect("auth_token")
            .to_owned()
    }

    /// Edits by hand, as an operator would; the cache eviction stands for waiting out its TTL
    /// (`guard::out_of_band_changes_show_within_the_cache_ttl` tests the wait itself).
    pub async fn make_staff(&self, id: i64) {
        self.exec(&format!(
            "UPDATE auth_user SET is_staff = true WHERE id = {id}"
        ))
        .await;
        self.state.auth.forget(&authd::auth::Invalidation::User(id));
    }

    /// Registers, logs in and makes a superuser by hand, as `createsuperuser` leaves one.
    pub async fn create_superuser(&self, username: &str) -> (i64, String) {
        let (id, token) = self.create_user(username).await;
        self.exec(&format!(
            "UPDATE auth_user SET is_staff = true, is_superuser = true WHERE id = {id}"
        ))
        .await;
        self.state.auth.forget(&authd::auth::Invalidation::User(id));
        (id, token)
    }

    pub async fn deactivate(&self, id: i64) {
        self.exec(&format!(
            "UPDATE auth_user SET is_active = false WHERE id = {id}"
        ))
        .await;
        self.state.auth.forget(&authd::auth::Invalidation::User(id));
    }

    /// Runs an `authd` command against this app's database, as an operator would on its host.
    pub async fn command(&self, args: &[&str]) -> std::process::Output {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_authd"));
        command
            .env_remove("RUST_LOG")
            .env("DATABASE_URL", self.state.settings.database_url.expose())
            .args(args);
        tokio::task::spawn_blocking(move || command.output().expect("run authd"))
            .await
            .expect("join")
    }

    pub async fn exec(&self, sql: &str) {
        self.db().execute_unprepared(sql).await.expect("sql");
    }

    /// Rows in `from`: a table, optionally followed by a `WHERE` clause.
    pub async fn count(&self, from: &str) -> i64 {
        count_rows(self.db(), from).await
    }

    pub async fn snapshot(&self) -> Snapshot {
        use authd::store::entity::{auth_token, auth_user};
        use sea_orm::EntityTrait;
        let mut lines = Vec::new();
        for u in auth_user::Entity::find()
            .all(self.db())
            .await
            .expect("users")
        {
            lines.push(format!(
                "user {} {:?} {:?} {:?} {:?} {} active={} staff={} last_login={:?}",
                u.id,
                u.username,
                u.username_canonical,
                u.email,
                u.email_canonical,
                u.password,
                u.is_active,
                u.is_staff,
                u.last_login
            ));
        }
        for t in auth_token::Entity::find()
            .all(self.db())
            .await
            .expect("tokens")
        {
            lines.push(format!("token {} {} user={}", t.id, t.digest, t.user_id));
        }
        Snapshot(lines)
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub async fn read(response: Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        Self {
            status,
            headers,
            text,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Status and JSON body together, so a failure shows both.
    #[track_caller]
    pub fn assert(&self, status: StatusCode, body: Value) {
        assert_eq!(
            (self.status, self.json()),
            (status, body),
            "raw body: {}",
            self.text
        );
    }

    /// DRF's exact `Content-Type: application/json`, without a charset.
    #[track_caller]
    pub fn assert_media_json(&self) {
        assert_eq!(self.header("content-type"), Some("application/json"));
    }
}
