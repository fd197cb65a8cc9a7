//! `authd import-django` (issue 16) from a real Django site's database, made at test time by
//! Django itself (tests/django/build_site.py, run by the Python that `AUTHD_TEST_DJANGO_PYTHON`
//! names; `.ci/run` makes one): SQLite, PostgreSQL and, with the `mysql` feature, MariaDB
//! sources, into the test's authd database (SQLite, or PostgreSQL with
//! `AUTHD_TEST_POSTGRES_URL`). Every account logs in with its Django password and is upgraded,
//! every DRF key answers, introspection shows the groups and permissions, and a live switch's
//! re-runs bring Django's later changes over.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use authd::store::entity::auth_user;
use reqwest::{Method, StatusCode};
use sea_orm::EntityTrait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::authz::{introspect, resource_server};
use crate::helpers::{PASSWORD, Reply, TestApp};

pub const PYTHON_ENV: &str = "AUTHD_TEST_DJANGO_PYTHON";
const BUILD_SITE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/django/build_site.py");
/// Django's hashers whose passwords authd verifies, and upgrades at login.
const VERIFIED: [&str; 6] = [
    "pbkdf2_sha256",
    "pbkdf2_sha1",
    "argon2",
    "bcrypt_sha256",
    "bcrypt",
    "scrypt",
];
/// How long a running server may take to learn of a command's writes (its cache's own TTL is
/// 10 s, so a change that is never announced fails this).
const HEARD_WITHIN: Duration = Duration::from_secs(3);

/// What build_site.py made: its manifest.
#[derive(Debug, Clone, Default, Deserialize)]
struct Site {
    users: Vec<SiteUser>,
    groups: Vec<SiteGroup>,
    /// Every permission as `app_label.codename` (merged: fewer than Django's rows).
    permissions: Vec<String>,
    collisions: Vec<Collision>,
    changes: Option<Changes>,
}

#[derive(Debug, Clone, Deserialize)]
struct SiteUser {
    id: i64,
    username: String,
    email: String,
    password: Option<String>,
    /// `None`: an unusable password.
    hasher: Option<String>,
    password_hash: String,
    is_active: bool,
    is_staff: bool,
    is_superuser: bool,
    date_joined: String,
    last_login: Option<String>,
    token: Option<String>,
    groups: Vec<String>,
    permissions: Vec<String>,
    effective_permissions: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct SiteGroup {
    id: i64,
    name: String,
    permissions: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Collision {
    id: i64,
    username: String,
    collides_with: Named,
}

#[derive(Debug, Clone, Deserialize)]
struct Named {
    id: i64,
    username: String,
}

/// What `build_site.py mutate` did on the site.
#[derive(Debug, Clone, Deserialize)]
struct Changes {
    password_changed: PasswordChange,
    deactivated: String,
    added: String,
    token_replaced: KeyChange,
    token_deleted: KeyChange,
    changed_in_django_too: String,
}

#[derive(Debug, Clone, Deserialize)]
struct PasswordChange {
    username: String,
    old_password: String,
}

#[derive(Debug, Clone, Deserialize)]
struct KeyChange {
    username: String,
    old_key: String,
}

impl Site {
    fn user(&self, username: &str) -> &SiteUser {
        self.users
            .iter()
            .find(|u| u.username == username)
            .unwrap_or_else(|| panic!("no {username} in the manifest"))
    }

    fn skipped(&self, user: &SiteUser) -> bool {
        self.collisions.iter().any(|c| c.id == user.id)
    }

    fn imported(&self) -> impl Iterator<Item = &SiteUser> {
        self.users.iter().filter(|u| !self.skipped(u))
    }

    fn changes(&self) -> &Changes {
        self.changes.as_ref().expect("a mutated site")
    }

    /// Every DRF key the site holds or held: none may ever be printed.
    fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self
            .users
            .iter()
            .filter_map(|u| u.token.as_deref())
            .collect();
        if let Some(changes) = &self.changes {
            keys.extend([
                changes.token_replaced.old_key.as_str(),
                changes.token_deleted.old_key.as_str(),
            ]);
        }
        keys
    }
}

impl SiteUser {
    /// A hash authd verifies (not MD5, not unusable).
    fn verified(&self) -> bool {
        self.hasher
            .as_deref()
            .is_some_and(|hasher| VERIFIED.contains(&hasher))
    }

    fn password(&self) -> &str {
        self.password.as_deref().expect("a usable password")
    }
}

/// The Python with Django that builds the sites; `None` says why the calling test is skipped.
fn django_python(why: &str) -> Option<PathBuf> {
    let python = std::env::var_os(PYTHON_ENV).map(PathBuf::from);
    if python.is_none() {
        eprintln!(
            "skipped: {why} needs a Python with Django ({PYTHON_ENV} is not set; .ci/run makes one)"
        );
    }
    python
}

/// Runs build_site.py (`build` or `mutate`) on `database`; the manifest it wrote.
async fn run_site(python: &Path, mode: &str, database: &str, manifest: &Path) -> Site {
    let mut command = std::process::Command::new(python);
    command.arg(BUILD_SITE).args([mode, database]).arg(manifest);
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("run build_site.py");
    assert!(
        output.status.success(),
        "build_site.py {mode}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("build_site.py {mode} took {:?}", started.elapsed());
    let text = std::fs::read_to_string(manifest).expect("the manifest");
    serde_json::from_str(&text).expect("a manifest")
}

/// A Django site's SQLite database of the test's own, in a directory removed with it.
struct SqliteSite {
    dir: tempfile::TempDir,
    site: Site,
}

impl SqliteSite {
    /// Django builds the site once per test process; each test gets its own copy.
    async fn new(python: &Path) -> Self {
        static TEMPLATE: tokio::sync::OnceCell<(Vec<u8>, Vec<u8>)> =
            tokio::sync::OnceCell::const_new();
        let (database, manifest) = TEMPLATE
            .get_or_init(|| async {
                // Held in memory rather than in a file, which a static would leave behind.
                let dir = tempfile::tempdir().expect("temporary directory");
                let path = dir.path().join("db.sqlite3");
                let manifest = dir.path().join("manifest.json");
                run_site(python, "build", path.to_str().expect("UTF-8"), &manifest).await;
                (
                    std::fs::read(&path).expect("the database"),
                    std::fs::read(&manifest).expect("the manifest"),
                )
            })
            .await;
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join("db.sqlite3"), database).expect("copy");
        std::fs::write(dir.path().join("manifest.json"), manifest).expect("copy");
        let site = serde_json::from_slice(manifest).expect("a manifest");
        Self { dir, site }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("db.sqlite3")
    }

    /// Django's form: `sqlite:///abs/path`.
    fn url(&self) -> String {
        format!("sqlite://{}", self.path().display())
    }

    /// What a live site does between two imports (build_site.py's `mutate`).
    async fn mutate(&mut self, python: &Path) {
        let path = self.path();
        let manifest = self.dir.path().join("manifest.json");
        self.site = run_site(python, "mutate", path.to_str().expect("UTF-8"), &manifest).await;
    }
}

/// A Django site in a fresh PostgreSQL database on the shared server, dropped with this value.
struct PostgresSite {
    admin_url: String,
    name: String,
    url: String,
    site: Site,
}

impl PostgresSite {
    /// On `AUTHD_TEST_POSTGRES_URL`'s server, or the usual local one; `None` says why not.
    async fn new(python: &Path) -> Option<Self> {
        use sea_orm::{ConnectOptions, ConnectionTrait, Database};
        let admin_url = std::env::var(crate::helpers::POSTGRES_ENV)
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let mut options = ConnectOptions::new(admin_url.as_str());
        options
            .connect_timeout(Duration::from_secs(3))
            .sqlx_logging(false);
        let Ok(admin) = Database::connect(options).await else {
            eprintln!("skipped: a PostgreSQL source needs a server at {admin_url}");
            return None;
        };
        let name = format!("django_site_{}", crate::helpers::unique_id());
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create the site's database");
        let mut url = url::Url::parse(&admin_url).expect("a PostgreSQL URL");
        url.set_path(&format!("/{name}"));
        let mut postgres = Self {
            admin_url,
            name,
            url: url.to_string(),
            site: Site::default(),
        };
        let dir = tempfile::tempdir().expect("temporary directory");
        postgres.site = run_site(
            python,
            "build",
            &postgres.url,
            &dir.path().join("manifest.json"),
        )
        .await;
        Some(postgres)
    }
}

impl Drop for PostgresSite {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                use sea_orm::{ConnectionTrait, Database};
                let admin = Database::connect(admin_url.as_str()).await?;
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await
                    .map(|_| ())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the Django site's database {}", self.name);
        }
    }
}

/// `authd import-django --from source` with `flags`, on the app's database.
async fn import(app: &TestApp, source: &str, flags: &[&str]) -> Output {
    let mut args = vec!["import-django", "--from", source];
    args.extend(flags);
    app.command(&args).await
}

/// A finished import's `--json` summary: exit 0, one JSON object on stdout, and no DRF key in
/// anything it printed.
#[track_caller]
fn summary(output: &Output, site: &Site) -> Value {
    never_prints_a_key(output, site);
    assert!(
        output.status.success(),
        "import-django failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// A refused import: exit 1, a message on stderr, no DRF key anywhere.
#[track_caller]
fn refused(output: &Output, site: &Site) -> String {
    never_prints_a_key(output, site);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.trim().is_empty(), "a refusal says why");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[track_caller]
fn never_prints_a_key(output: &Output, site: &Site) {
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for key in site.keys() {
        assert!(
            !printed.contains(key),
            "a DRF key was printed (it is a live secret in the source)"
        );
    }
}

async fn stored(app: &TestApp, id: i64) -> Option<auth_user::Model> {
    auth_user::Entity::find_by_id(id)
        .one(app.db())
        .await
        .expect("query")
}

async fn me(app: &TestApp, key: &str) -> Reply {
    app.call(Method::GET, "/users/me/", key, None).await
}

/// `GET /users/me/` with `key` until it answers `status`: a running server learns of a
/// command's writes within a poll or a notification, well before its cache's TTL.
async fn me_until(app: &TestApp, key: &str, status: StatusCode) -> Reply {
    let started = Instant::now();
    loop {
        let reply = me(app, key).await;
        if reply.status == status || started.elapsed() > HEARD_WITHIN {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn timestamp(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("an ISO 8601 time")
        .with_timezone(&chrono::Utc)
}

/// The summary's expected `users.skipped` for a first import: the names that collide.
fn collisions(site: &Site) -> Value {
    site.collisions
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "username": c.username,
                "reason": "username_collision",
                "collides_with": { "id": c.collides_with.id, "username": c.collides_with.username },
            })
        })
        .collect()
}

/// The whole of issue 16's "Done when" for one source: the import's summary, every account as
/// Django had it, every password and DRF key working (and nothing else), groups and
/// permissions through introspection, and a re-run that changes nothing.
async fn moves_in(app: &TestApp, source: &str, site: &Site) {
    assert!(
        !site.collisions.is_empty(),
        "the site has two names that differ only in case"
    );
    let output = import(app, source, &["--json"]).await;
    let first = summary(&output, site);
    let imported: Vec<&SiteUser> = site.imported().collect();
    assert_eq!(
        first["users"],
        json!({ "imported": imported.len(), "updated": 0, "skipped": collisions(site) }),
        "{first}"
    );
    let tokens = imported.iter().filter(|u| u.token.is_some()).count();
    assert_eq!(first["tokens"]["imported"], json!(tokens), "{first}");
    let skipped_tokens: Vec<(String, String)> = first["tokens"]["skipped"]
        .as_array()
        .expect("tokens.skipped")
        .iter()
        .map(|s| (s["username"].to_string(), s["reason"].to_string()))
        .collect();
    let expected_skipped_tokens: Vec<(String, String)> = site
        .collisions
        .iter()
        .filter(|c| site.user(&c.username).token.is_some())
        .map(|c| {
            (
                json!(c.username).to_string(),
                json!("user_not_imported").to_string(),
            )
        })
        .collect();
    assert_eq!(skipped_tokens, expected_skipped_tokens, "{first}");
    assert_eq!(
        first["groups"]["imported"],
        json!(site.groups.len()),
        "{first}"
    );
    assert!(
        first["permissions"]["merged"].as_u64() >= Some(1),
        "blog.moderate exists on two models: {first}"
    );
    let mut hashes = serde_json::Map::new();
    for user in &imported {
        let algorithm = user.hasher.as_deref().unwrap_or("unusable");
        let count = hashes.entry(algorithm).or_insert(json!(0));
        *count = json!(count.as_u64().unwrap_or(0) + 1);
    }
    assert_eq!(first["hashes"], Value::Object(hashes), "{first}");
    let superusers: Vec<Value> = imported
        .iter()
        .filter(|u| u.is_superuser)
        .map(|u| json!({ "id": u.id, "username": u.username }))
        .collect();
    assert_eq!(first["superusers"], json!(superusers), "{first}");
    assert_eq!(
        (&first["changed"], &first["dry_run"]),
        (&json!(true), &json!(false)),
        "{first}"
    );

    accounts_arrive_as_django_had_them(app, site).await;
    passwords_log_in_and_are_upgraded(app, site).await;
    keys_answer_for_active_accounts(app, site).await;
    grants_arrive(app, site).await;

    // Logins rewrote hashes; Django has nothing new.
    let again = summary(&import(app, source, &["--json"]).await, site);
    assert_eq!(again["changed"], json!(false), "{again}");
    assert_eq!(
        (
            &again["users"]["imported"],
            &again["users"]["updated"],
            &again["tokens"]["imported"],
            &again["tokens"]["updated"],
            &again["tokens"]["deleted"],
        ),
        (&json!(0), &json!(0), &json!(0), &json!(0), &json!(0)),
        "{again}"
    );
    let reasons: Vec<&Value> = again["users"]["skipped"]
        .as_array()
        .expect("users.skipped")
        .iter()
        .map(|s| &s["reason"])
        .collect();
    assert!(
        !reasons.contains(&&json!("changed_in_authd")),
        "a row changed in authd alone is not a conflict: {again}"
    );

    // New accounts take ids past Django's (PostgreSQL's sequences were moved).
    let highest = site.users.iter().map(|u| u.id).max().unwrap_or(0);
    let fresh = app.register("registered_after", PASSWORD).await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{}", fresh.text);
    assert!(
        fresh.json()["id"].as_i64() > Some(highest),
        "{}",
        fresh.text
    );
}

async fn accounts_arrive_as_django_had_them(app: &TestApp, site: &Site) {
    for user in &site.users {
        let row = stored(app, user.id).await;
        if site.skipped(user) {
            assert!(
                row.is_none_or(|row| row.username != user.username),
                "{} was skipped",
                user.username
            );
            continue;
        }
        let row = row.unwrap_or_else(|| panic!("{} keeps its id {}", user.username, user.id));
        assert_eq!(
            (
                row.username.as_str(),
                row.email.as_str(),
                row.is_active,
                row.activation_pending,
                row.is_staff,
                row.is_superuser,
                row.date_joined,
                row.last_login,
            ),
            (
                user.username.as_str(),
                user.email.as_str(),
                user.is_active,
                false,
                user.is_staff,
                user.is_superuser,
                timestamp(&user.date_joined),
                user.last_login.as_deref().map(timestamp),
            ),
            "{}",
            user.username
        );
        if user.verified() {
            assert_eq!(row.password, user.password_hash, "{}", user.username);
        } else {
            // Django's own unusable value (`!` and 40 random characters) may stay as it is;
            // a weak hash may not.
            assert!(
                row.password.starts_with('!')
                    && (user.hasher.is_none() || row.password != user.password_hash),
                "{} arrives unusable: {}",
                user.username,
                row.password
            );
        }
    }
}

async fn passwords_log_in_and_are_upgraded(app: &TestApp, site: &Site) {
    for user in site.imported() {
        let Some(password) = user.password.as_deref() else {
            assert_eq!(
                app.login(&user.username, PASSWORD).await.status,
                StatusCode::BAD_REQUEST,
                "{} has no password",
                user.username
            );
            continue;
        };
        let logs_in = user.verified() && user.is_active;
        let wrong = app.login(&user.username, "not the password").await;
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", user.username);
        let login = app.login(&user.username, password).await;
        let hash = stored(app, user.id).await.expect("the row").password;
        if logs_in {
            assert_eq!(
                login.status,
                StatusCode::OK,
                "{}: {}",
                user.username,
                login.text
            );
            assert!(
                hash.starts_with("$argon2id$"),
                "{}'s hash is upgraded: {hash}",
                user.username
            );
        } else {
            assert_eq!(
                login.status,
                StatusCode::BAD_REQUEST,
                "{} never logs in",
                user.username
            );
            assert!(!hash.starts_with("$argon2id$"), "{}", user.username);
        }
    }
}

async fn keys_answer_for_active_accounts(app: &TestApp, site: &Site) {
    for user in &site.users {
        let Some(key) = user.token.as_deref() else {
            continue;
        };
        let reply = me(app, key).await;
        if user.is_active && !site.skipped(user) {
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "{}: {}",
                user.username,
                reply.text
            );
            assert_eq!(
                (&reply.json()["id"], &reply.json()["username"]),
                (&json!(user.id), &json!(user.username)),
                "{}",
                reply.text
            );
        } else {
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{}'s key: {}",
                user.username,
                reply.text
            );
        }
    }
    let bearer = site
        .imported()
        .find(|u| u.is_active && u.token.is_some())
        .and_then(|u| u.token.as_deref())
        .expect("an active account with a key");
    let reply = app
        .send(app.request(Method::GET, "/users/me/").bearer_auth(bearer))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "as a Bearer token: {}",
        reply.text
    );
}

async fn grants_arrive(app: &TestApp, site: &Site) {
    let client = resource_server(app, &[]).await;
    for user in site.imported().filter(|u| u.is_active) {
        let Some(key) = user.token.as_deref() else {
            continue;
        };
        let answer = introspect(app, &client, key).await;
        assert_eq!(
            (
                &answer["active"],
                &answer["is_superuser"],
                &answer["groups"]
            ),
            (&json!(true), &json!(user.is_superuser), &json!(user.groups)),
            "{}: {answer}",
            user.username
        );
        if user.is_superuser {
            let every = answer["permissions"].as_array().expect("permissions");
            for name in &site.permissions {
                assert!(every.contains(&json!(name)), "{name}: {answer}");
            }
        } else {
            assert_eq!(
                answer["permissions"],
                json!(user.effective_permissions),
                "{}",
                user.username
            );
        }
    }

    let root = site
        .imported()
        .find(|u| u.is_superuser && u.token.is_some())
        .and_then(|u| u.token.as_deref())
        .expect("a superuser with a key");
    let get = |path: String| async move { app.call(Method::GET, &path, root, None).await };
    let listed = get("/groups/".to_owned()).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let mut listed: Vec<Value> = listed
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|g| json!({ "id": g["id"], "name": g["name"], "permissions": g["permissions"] }))
        .collect();
    listed.sort_by_key(|g| g["id"].as_i64());
    let expected: Vec<Value> = site
        .groups
        .iter()
        .map(|g| json!({ "id": g.id, "name": g.name, "permissions": g.permissions }))
        .collect();
    assert_eq!(
        listed, expected,
        "groups keep their ids, names and permissions"
    );

    let permissions = get("/permissions/".to_owned()).await;
    assert_eq!(permissions.status, StatusCode::OK, "{}", permissions.text);
    let names: Vec<String> = permissions
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| {
            format!(
                "{}.{}",
                p["app_label"].as_str().unwrap_or(""),
                p["codename"].as_str().unwrap_or("")
            )
        })
        .collect();
    for name in &site.permissions {
        let times = names.iter().filter(|n| *n == name).count();
        assert_eq!(times, 1, "{name} once, merged across models: {names:?}");
    }

    for user in site.imported() {
        let groups = get(format!("/users/{}/groups/", user.id)).await;
        groups.assert(StatusCode::OK, json!({ "groups": user.groups }));
        let own = get(format!("/users/{}/permissions/", user.id)).await;
        own.assert(StatusCode::OK, json!({ "permissions": user.permissions }));
    }
}

#[tokio::test]
async fn a_django_site_on_sqlite_moves_in() {
    let Some(python) = django_python("importing a Django site") else {
        return;
    };
    let source = SqliteSite::new(&python).await;
    let app = TestApp::spawn().await;
    moves_in(&app, &source.url(), &source.site).await;
}

#[tokio::test]
async fn a_django_site_on_postgres_moves_in() {
    let Some(python) = django_python("importing a Django site") else {
        return;
    };
    let Some(source) = PostgresSite::new(&python).await else {
        return;
    };
    let app = TestApp::spawn().await;
    moves_in(&app, &source.url, &source.site).await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn a_django_site_on_mariadb_moves_in() {
    use crate::mariadb::PrivateMariaDb;
    let Some(python) = django_python("importing a Django site") else {
        return;
    };
    let Some(mariadb) = tokio::task::spawn_blocking(PrivateMariaDb::start)
        .await
        .expect("join")
    else {
        return;
    };
    mariadb.create_database("django");
    let source = mariadb.url("django");
    let dir = tempfile::tempdir().expect("temporary directory");
    let site = run_site(&python, "build", &source, &dir.path().join("manifest.json")).await;
    let app = TestApp::spawn().await;
    moves_in(&app, &source, &site).await;
    tokio::task::spawn_blocking(move || drop(mariadb))
        .await
        .expect("join");
}

/// `--dry-run` says what it would do and writes nothing.
#[tokio::test]
async fn a_dry_run_writes_nothing() {
    let Some(python) = django_python("importing a Django site") else {
        return;
    };
    let source = SqliteSite::new(&python).await;
    let app = TestApp::spawn().await;
    let before = (
        app.snapshot().await,
        app.count("auth_group").await,
        app.count("auth_permission").await,
    );
    let output = import(&app, &source.url(), &["--dry-run", "--json"]).await;
    let would = summary(&output, &source.site);
    assert_eq!(
        (&would["dry_run"], &would["changed"]),
        (&json!(true), &json!(true)),
        "{would}"
    );
    assert_eq!(
        would["users"]["imported"],
        json!(source.site.imported().count()),
        "{would}"
    );
    let after = (
        app.snapshot().await,
        app.count("auth_group").await,
        app.count("auth_permission").await,
    );
    assert_eq!(after, before);
    let user = source.site.imported().find(|u| u.verified() && u.is_active);
    let user = user.expect("an account that would log in");
    assert_eq!(
        app.login(&user.username, user.password()).await.status,
        StatusCode::BAD_REQUEST
    );
}

/// `--on-conflict=fail` refuses the whole import when two names differ only in case.
#[tokio::test]
async fn on_conflict_fail_refuses_and_writes_nothing() {
    let Some(python) = django_python("importing a Django site") else {
        return;
    };
    let source = SqliteSite::new(&python).await;
    let app = TestApp::spawn().await;
    let before = (app.snapshot().await, app.count("auth_group").await);
    let output = import(&app, &source.url(), &["--on-conflict", "fail", "--json"]).await;
    let stderr = refused(&output, &source.site);
    let collision = &source.site.collisions[0];
    assert!(
        stderr.contains(&collision.username) && stderr.contains(&collision.collides_with.username),
        "names the collision: {stderr}"
    );
    assert_eq!(
        (app.snapshot().await, app.count("auth_group").await),
        before
    );
}

/// A target that already has accounts of its own (an admin made with `authd createsuperuser`)
/// is refused; `--allow-existing` imports beside them, skipping Django's accounts whose ids or
/// names are taken, and their DRF keys never open the authd account in their place.
#[tokio::test]
async fn a_target_with_its_own_accounts_needs_allow_existing() {
    let Some(python) = django_python("importing a Django site") else {
        return;
    };
    let source = SqliteSite::new(&python).await;
    let site = &source.site;
    let app = TestApp::spawn().await;
    let (admin_id, admin_token) = app.create_superuser("admin").await;
    let (staff_id, _) = app.create_user("staff").await;
    let before = app.snapshot().await;
    let stderr = refused(&import(&app, &source.url(), &["--json"]).await, site);
    assert!(stderr.contains("--allow-existing"), "says how: {stderr}");
    assert_eq!(app.snapshot().await, before);

    let output = import(&app, &source.url(), &["--allow-existing", "--json"]).await;
    let done = summary(&output, site);
    let named = |id: i64| {
        let username = if id == admin_id { "admin" } else { "staff" };
        json!({ "id": id, "username": username })
    };
    let mut expected: Vec<Value> = site
        .users
        .iter()
        .filter(|u| u.id == admin_id || u.id == staff_id)
        .map(|u| {
            json!({ "id": u.id, "username": u.username, "reason": "id_taken", "collides_with": named(u.id) })
        })
        .collect();
    let django_staff = site.user("staff");
    expected.push(json!({
        "id": django_staff.id, "username": "staff", "reason": "username_collision",
        "collides_with": named(staff_id),
    }));
    expected.extend(collisions(site).as_array().expect("a list").iter().cloned());
    let mut skipped = done["users"]["skipped"]
        .as_array()
        .expect("skipped")
        .clone();
    let by_id = |v: &Value| (v["id"].as_i64(), v["reason"].to_string());
    skipped.sort_by_key(by_id);
    expected.sort_by_key(by_id);
    assert_eq!(skipped, expected, "{done}");
    assert_eq!(
        done["users"]["imported"],
        json!(site.users.len() - expected.len()),
        "{done}"
    );

    me(&app, &admin_token).await.assert(
        StatusCode::OK,
        json!({ "id": admin_id, "username": "admin", "email": "" }),
    );
    let key = django_staff.token.as_deref().expect("staff's key");
    assert_eq!(
        me(&app, key).await.status,
        StatusCode::UNAUTHORIZED,
        "Django's staff key does not open authd's staff"
    );
    let imported = site.user("root");
    assert_eq!(
        app.login(&imported.username, imported.password())
            .await
            .status,
        StatusCode::OK
    );
}

/// Sources that cannot be read, or are the target itself, are refused with a message and no
/// panic.
#[tokio::test]
async fn bad_sources_are_refused_clearly() {
    let app = TestApp::spawn().await;
    let nothing = Site::default();
    let dir = tempfile::tempdir().expect("temporary directory");
    let missing = dir.path().join("missing").join("db.sqlite3");
    let empty = dir.path().join("empty.sqlite3");
    std::fs::write(&empty, b"").expect("an empty file");
    let closed = crate::helpers::free_port();
    let target = app.state.settings.database_url.expose().to_owned();
    let before = app.snapshot().await;
    for (source, mentions) in [
        ("ftp://example.com/db".to_owned(), Some("ftp")),
        ("not a url".to_owned(), None),
        (format!("sqlite://{}", missing.display()), Some("missing")),
        (format!("sqlite://{}", empty.display()), Some("auth_user")),
        (
            format!("postgres://postgres@127.0.0.1:{closed}/django"),
            Some("127.0.0.1"),
        ),
        (target, None),
    ] {
        let stderr = refused(&import(&app, &source, &["--json"]).await, &nothing);
        if let Some(mentions) = mentions {
            assert!(stderr.contains(mentions), "{source}: {stderr}");
        }
    }
    #[cfg(not(feature = "mysql"))]
    {
        let output = import(&app, "mysql://root@127.0.0.1:3306/django", &["--json"]).await;
        let stderr = refused(&output, &nothing);
        assert!(
            stderr.contains("mysql"),
            "names the cargo feature: {stderr}"
        );
    }
    assert_eq!(app.snapshot().await, before);
}

/// docs/migrating-from-django.md's steps: import, the clients move to authd, the Django site
/// still changes (a password, a deactivation, a new user, a DRF key replaced and one deleted,
/// an account changed on both sides), and a re-run brings those changes to the running
/// server, leaving the account changed in authd as authd has it.
#[tokio::test]
async fn a_live_switch_with_changes_between_imports() {
    let Some(python) = django_python("importing a Django site") else {
        return;
    };
    let mut source = SqliteSite::new(&python).await;
    let app = TestApp::spawn().await;
    summary(
        &import(&app, &source.url(), &["--json"]).await,
        &source.site,
    );

    // The clients use authd: every key answers (and is cached by the server); one account
    // changes its password in authd.
    let before = source.site.clone();
    for user in before.imported().filter(|u| u.is_active) {
        if let Some(key) = user.token.as_deref() {
            assert_eq!(
                me(&app, key).await.status,
                StatusCode::OK,
                "{}",
                user.username
            );
        }
    }
    let both_sides = before.user("scrypt");
    let token = app
        .token_for(&both_sides.username, both_sides.password())
        .await;
    let changed = app
        .post_json(
            "/users/set_password/",
            json!({ "current_password": both_sides.password(), "new_password": PASSWORD }),
            Some(&token),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.text);

    source.mutate(&python).await;
    let after = &source.site;
    let changes = after.changes();
    assert_eq!(changes.changed_in_django_too, both_sides.username);
    let output = import(&app, &source.url(), &["--json"]).await;
    let rerun = summary(&output, after);
    assert_eq!(rerun["changed"], json!(true), "{rerun}");
    assert_eq!(rerun["users"]["imported"], json!(1), "{rerun}");
    assert_eq!(
        rerun["users"]["updated"],
        json!(2),
        "a password and a deactivation: {rerun}"
    );
    assert!(
        rerun["users"]["skipped"]
            .as_array()
            .expect("skipped")
            .contains(&json!({
                "id": both_sides.id, "username": both_sides.username,
                "reason": "changed_in_authd", "collides_with": null,
            })),
        "{rerun}"
    );
    let tokens = &rerun["tokens"];
    let count = |field: &str| tokens[field].as_u64().unwrap_or(0);
    assert_eq!(
        count("imported") + count("updated"),
        2,
        "the newcomer's key and a replacement in: {rerun}"
    );
    assert!(
        count("deleted") + count("updated") >= 2,
        "a replaced and a deleted key out: {rerun}"
    );

    // A password changed in Django: the old one no longer logs in, the new one does.
    let moved = after.user(&changes.password_changed.username);
    assert_eq!(
        app.login(&moved.username, &changes.password_changed.old_password)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    app.token_for(&moved.username, moved.password()).await;

    // Deactivated in Django: neither its password nor its key, which the server had cached.
    let deactivated = after.user(&changes.deactivated);
    assert!(!deactivated.is_active);
    assert_eq!(
        app.login(&deactivated.username, deactivated.password())
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let key = before
        .user(&changes.deactivated)
        .token
        .as_deref()
        .expect("the deactivated account had a key");
    let reply = me_until(&app, key, StatusCode::UNAUTHORIZED).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);

    // The newcomer logs in, and its key answers.
    let newcomer = after.user(&changes.added);
    app.token_for(&newcomer.username, newcomer.password()).await;
    let key = newcomer.token.as_deref().expect("the newcomer's key");
    me(&app, key).await.assert(
        StatusCode::OK,
        json!({ "id": newcomer.id, "username": newcomer.username, "email": newcomer.email }),
    );

    // A replaced key: the old one is refused, the new one answers; a deleted one is refused.
    let replaced = &changes.token_replaced;
    let reply = me_until(&app, &replaced.old_key, StatusCode::UNAUTHORIZED).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    let new_key = after.user(&replaced.username).token.as_deref();
    assert_eq!(
        me(&app, new_key.expect("a new key")).await.status,
        StatusCode::OK
    );
    let reply = me_until(
        &app,
        &changes.token_deleted.old_key,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);

    // Changed on both sides: left as authd has it.
    let row = stored(&app, both_sides.id).await.expect("the row");
    assert_eq!(
        row.email, both_sides.email,
        "Django's new email stays behind"
    );
    app.token_for(&both_sides.username, PASSWORD).await;

    let quiet = summary(&import(&app, &source.url(), &["--json"]).await, after);
    assert_eq!(quiet["changed"], json!(false), "{quiet}");
}

/// `--inactive-as-pending` leaves the inactive accounts that never logged in awaiting
/// activation; `--no-superusers` imports superusers as ordinary accounts; `--keep-token-age`
/// counts AUTHD_TOKEN_TTL_SECONDS from each key's `created`, so keys older than it stay behind.
#[tokio::test]
async fn flags_shape_what_arrives() {
    let Some(python) = django_python("importing a Django site") else {
        return;
    };
    let source = SqliteSite::new(&python).await;
    let site = &source.site;
    let app = TestApp::spawn().await;
    // Every key is older than a second.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_authd"));
    command
        .env_remove("RUST_LOG")
        .env("DATABASE_URL", app.state.settings.database_url.expose())
        .env("AUTHD_TOKEN_TTL_SECONDS", "1")
        .args(["import-django", "--from", &source.url(), "--json"])
        .args([
            "--inactive-as-pending",
            "--no-superusers",
            "--keep-token-age",
        ]);
    let output = tokio::task::spawn_blocking(move || command.output().expect("run authd"))
        .await
        .expect("join");
    let done = summary(&output, site);
    assert_eq!(
        (&done["superusers"], &done["tokens"]["imported"]),
        (&json!([]), &json!(0)),
        "{done}"
    );
    let expired = done["tokens"]["skipped"]
        .as_array()
        .expect("tokens.skipped")
        .iter()
        .filter(|s| s["reason"] == "expired")
        .count();
    let keys = site.imported().filter(|u| u.token.is_some()).count();
    assert_eq!(expired, keys, "{done}");

    for user in site.imported().filter(|u| !u.is_active) {
        let row = stored(&app, user.id).await.expect("the row");
        assert_eq!(
            (row.is_active, row.activation_pending),
            (false, user.last_login.is_none()),
            "{}",
            user.username
        );
    }
    let root = site
        .imported()
        .find(|u| u.is_superuser)
        .expect("a superuser");
    let row = stored(&app, root.id).await.expect("the row");
    assert_eq!((row.is_superuser, row.is_staff), (false, false));
    let token = app.token_for(&root.username, root.password()).await;
    let groups = app.call(Method::GET, "/groups/", &token, None).await;
    assert_eq!(groups.status, StatusCode::FORBIDDEN, "{}", groups.text);
    let key = root.token.as_deref().expect("root's key");
    assert_eq!(me(&app, key).await.status, StatusCode::UNAUTHORIZED);
}
