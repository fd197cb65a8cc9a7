//! `authd import-django`'s rules that need no Django: a source shaped like Django's tables,
//! written here in SQL, and the attacks on the import itself (a key printed, a logged-out token
//! brought back, a target's own accounts overwritten, the target read as the source, two
//! imports racing). tests/api/django_import.rs runs the import on databases Django built.

use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde_json::Value;

use crate::helpers::{TestApp, count_rows};

/// DRF keys: 40 lowercase hex characters.
const KEY_ALICE: &str = "0123456789abcdef0123456789abcdef01234567";
const KEY_BOB: &str = "89abcdef0123456789abcdef0123456789abcdef";

/// A SQLite file with the tables `import-django` reads, as Django 5.2 creates them (only the
/// columns that matter), holding `users` accounts (`user1`, `user2`, …) and the rows `extra`
/// adds.
struct DjangoSource {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl DjangoSource {
    async fn new(users: usize, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("django.sqlite3");
        let db = Database::connect(format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .expect("create the source");
        for statement in [
            "CREATE TABLE auth_user (id integer PRIMARY KEY AUTOINCREMENT, password varchar(128) NOT NULL, \
             last_login datetime NULL, is_superuser bool NOT NULL, username varchar(150) NOT NULL UNIQUE, \
             first_name varchar(150) NOT NULL DEFAULT '', last_name varchar(150) NOT NULL DEFAULT '', \
             email varchar(254) NOT NULL, is_staff bool NOT NULL, is_active bool NOT NULL, date_joined datetime NOT NULL)",
            "CREATE TABLE authtoken_token (\"key\" varchar(40) PRIMARY KEY, created datetime NOT NULL, \
             user_id integer NOT NULL UNIQUE)",
            "CREATE TABLE django_content_type (id integer PRIMARY KEY, app_label varchar(100), model varchar(100))",
            "CREATE TABLE auth_permission (id integer PRIMARY KEY, name varchar(255), content_type_id integer, codename varchar(100))",
            "CREATE TABLE auth_group (id integer PRIMARY KEY, name varchar(150) UNIQUE)",
            "CREATE TABLE auth_group_permissions (id integer PRIMARY KEY, group_id integer, permission_id integer)",
            "CREATE TABLE auth_user_groups (id integer PRIMARY KEY, user_id integer, group_id integer)",
            "CREATE TABLE auth_user_user_permissions (id integer PRIMARY KEY, user_id integer, permission_id integer)",
        ] {
            db.execute_unprepared(statement)
                .await
                .expect("create table");
        }
        let mut rows = Vec::new();
        for id in 1..=users {
            rows.push(format!(
                "({id}, 'pbkdf2_sha256$1000$salt$hash', NULL, 0, 'user{id}', 'user{id}@example.com', 0, 1, \
                 '2024-01-02 03:04:05.123456')"
            ));
        }
        for chunk in rows.chunks(200) {
            db.execute_unprepared(&format!(
                "INSERT INTO auth_user (id, password, last_login, is_superuser, username, email, \
                 is_staff, is_active, date_joined) VALUES {}",
                chunk.join(", ")
            ))
            .await
            .expect("insert users");
        }
        for statement in extra {
            db.execute_unprepared(statement).await.expect("extra rows");
        }
        db.close().await.expect("close");
        Self { _dir: dir, path }
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    async fn run(&self, statement: &str) {
        let db = Database::connect(format!("sqlite://{}?mode=rw", self.path.display()))
            .await
            .expect("open the source");
        db.execute_unprepared(statement)
            .await
            .expect("change the source");
        db.close().await.expect("close");
    }
}

/// Alice (id 1) and Bob (id 2), each with a DRF key.
async fn alice_and_bob() -> DjangoSource {
    DjangoSource::new(
        0,
        &[
            "INSERT INTO auth_user (id, password, is_superuser, username, email, is_staff, is_active, date_joined) \
             VALUES (1, 'pbkdf2_sha256$1000$salt$hash', 0, 'alice', 'alice@example.com', 0, 1, '2024-01-02 03:04:05'), \
             (2, 'pbkdf2_sha256$1000$salt$hash', 0, 'bob', 'bob@example.com', 0, 1, '2024-01-02 03:04:05')",
            &format!(
                "INSERT INTO authtoken_token VALUES ('{KEY_ALICE}', '2024-01-02 03:04:05', 1), \
                 ('{KEY_BOB}', '2024-01-02 03:04:05', 2)"
            ),
        ],
    )
    .await
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|_| {
            panic!(
                "one JSON object on stdout: {}\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

async fn import(app: &TestApp, source: &DjangoSource, flags: &[&str]) -> Run {
    let from = source.url();
    let mut args = vec!["import-django", "--from", from.as_str()];
    args.extend_from_slice(flags);
    let output = app.command(&args).await;
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn me(app: &TestApp, key: &str) -> StatusCode {
    app.send(
        app.request(Method::GET, "/users/me/")
            .header("Authorization", format!("Token {key}")),
    )
    .await
    .status
}

/// A DRF key is a live secret on the Django site: no output of any run shows it, in either
/// form, and authd stores only its digest.
#[tokio::test]
async fn a_drf_key_is_never_printed_and_stored_only_as_a_digest() {
    let app = TestApp::spawn().await;
    let source = alice_and_bob().await;
    let mut outputs = Vec::new();
    for flags in [
        &["--dry-run"][..],
        &["--json", "--dry-run"],
        &[],
        &["--json"],
    ] {
        let run = import(&app, &source, flags).await;
        assert!(run.ok, "{}", run.stderr);
        outputs.push(run.stdout + &run.stderr);
    }
    for output in &outputs {
        for key in [KEY_ALICE, KEY_BOB] {
            assert!(!output.contains(key), "{output}");
            assert!(!output.contains(&key[..16]), "{output}");
        }
    }
    assert_eq!(me(&app, KEY_ALICE).await, StatusCode::OK);
    assert_eq!(
        app.count(&format!("auth_token WHERE digest = '{KEY_ALICE}'"))
            .await,
        0
    );
    assert_eq!(app.count("auth_token").await, 2);
    assert_eq!(
        app.count("django_import WHERE source_key LIKE '0123456789abcdef%'")
            .await,
        0
    );
}

/// The guard looks up DRF's shape and nothing near it: an unknown key, a stored key in upper
/// case or one character short are refused like any bad token.
#[tokio::test]
async fn only_the_exact_drf_key_authenticates() {
    let app = TestApp::spawn().await;
    let source = alice_and_bob().await;
    assert!(import(&app, &source, &[]).await.ok);
    assert_eq!(me(&app, KEY_ALICE).await, StatusCode::OK);
    for wrong in [
        "fedcba9876543210fedcba9876543210fedcba98".to_owned(),
        KEY_ALICE.to_uppercase(),
        KEY_ALICE[..39].to_owned(),
        format!("{KEY_ALICE}0"),
        format!("authd_{KEY_ALICE}"),
    ] {
        assert_eq!(me(&app, &wrong).await, StatusCode::UNAUTHORIZED, "{wrong}");
    }
}

/// A user who logs out on authd with an imported key has ended it: a re-run (Django still has
/// the key) does not bring it back, and says so.
#[tokio::test]
async fn a_logged_out_drf_key_is_never_brought_back() {
    let app = TestApp::spawn().await;
    let source = alice_and_bob().await;
    assert!(import(&app, &source, &[]).await.ok);
    let logout = app
        .send(
            app.request(Method::POST, "/token/logout/")
                .header("Authorization", format!("Token {KEY_ALICE}")),
        )
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{}", logout.text);
    let again = import(&app, &source, &["--json"]).await.json();
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(again["tokens"]["skipped"][0]["reason"], "revoked_in_authd");
    assert_eq!(again["tokens"]["skipped"][0]["username"], "alice");
    assert_eq!(me(&app, KEY_ALICE).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, KEY_BOB).await, StatusCode::OK);
}

/// A target that serves accounts of its own is refused, and nothing is written; with
/// `--allow-existing` a Django account whose id (or name) one of them holds is skipped and
/// listed, and the others come over.
#[tokio::test]
async fn a_target_with_its_own_accounts_is_refused_unless_allowed() {
    let app = TestApp::spawn().await;
    let (admin_id, _) = app.create_user("Bob").await;
    assert_eq!(admin_id, 1);
    let source = DjangoSource::new(
        0,
        &[
            "INSERT INTO auth_user (id, password, is_superuser, username, email, is_staff, is_active, date_joined) \
             VALUES (1, '!x', 0, 'alice', '', 0, 1, '2024-01-02 03:04:05'), \
             (2, '!x', 0, 'bob', '', 0, 1, '2024-01-02 03:04:05'), \
             (3, '!x', 0, 'carol', '', 0, 1, '2024-01-02 03:04:05')",
        ],
    )
    .await;
    let before = app.snapshot().await;
    let refused = import(&app, &source, &["--json"]).await;
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("--allow-existing"),
        "{}",
        refused.stderr
    );
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);
    assert_eq!(app.snapshot().await, before);

    let allowed = import(&app, &source, &["--json", "--allow-existing"])
        .await
        .json();
    let skipped = &allowed["users"]["skipped"];
    assert_eq!(allowed["users"]["imported"], 1, "{allowed}");
    assert_eq!(skipped[0]["id"], 1);
    assert_eq!(skipped[0]["reason"], "id_taken");
    assert_eq!(skipped[0]["collides_with"]["username"], "Bob");
    assert_eq!(skipped[1]["id"], 2);
    assert_eq!(skipped[1]["reason"], "username_collision");
    assert_eq!(skipped[1]["collides_with"]["id"], 1);
    assert_eq!(
        app.count("auth_user WHERE username = 'carol' AND id = 3")
            .await,
        1
    );
    assert_eq!(app.count("auth_user").await, 2);
}

/// authd's own database is never read as a Django one: not through the same URL, and not
/// through another authd database.
#[tokio::test]
async fn an_authd_database_is_not_a_source() {
    let app = TestApp::spawn().await;
    let own = app.state.settings.database_url.expose().to_owned();
    let output = app.command(&["import-django", "--from", &own]).await;
    assert!(!output.status.success());
    let other = tempfile::tempdir().expect("temporary directory");
    let path = other.path().join("other.sqlite3");
    let migrated = std::process::Command::new(env!("CARGO_BIN_EXE_authd"))
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", path.display()),
        )
        .arg("migrate")
        .output()
        .expect("authd migrate");
    assert!(migrated.status.success());
    let output = app
        .command(&[
            "import-django",
            "--from",
            &format!("sqlite://{}", path.display()),
        ])
        .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is an authd database"), "{stderr}");
    for bad in [
        "sqlite:///no/such/file.sqlite3",
        "redis://127.0.0.1/",
        "mysql://x@127.0.0.1/x",
    ] {
        let output = app.command(&["import-django", "--from", bad]).await;
        assert!(!output.status.success(), "{bad}");
        assert!(!output.stderr.is_empty(), "{bad}");
    }
    assert_eq!(app.count("auth_user").await, 0);
}

/// Rows Django's own validators would have refused (written by a script) stay behind, listed:
/// a name authd cannot hold, an address with a line break that would reach a mail header, a
/// key not of DRF's shape.
#[tokio::test]
async fn rows_django_would_refuse_stay_behind() {
    let app = TestApp::spawn().await;
    let source = DjangoSource::new(
        0,
        &[
            "INSERT INTO auth_user (id, password, is_superuser, username, email, is_staff, is_active, date_joined) \
             VALUES (1, '!x', 0, 'with space', '', 0, 1, '2024-01-02 03:04:05'), \
             (2, '!x', 0, 'mallory', 'a@example.com' || char(13, 10) || 'Bcc: all@example.com', 0, 1, '2024-01-02 03:04:05'), \
             (3, '!x', 0, 'dave', 'dave@example.com', 0, 1, '2024-01-02 03:04:05')",
            "INSERT INTO authtoken_token VALUES ('0123456789ABCDEF0123456789ABCDEF01234567', '2024-01-02 03:04:05', 3)",
        ],
    )
    .await;
    let report = import(&app, &source, &["--json"]).await.json();
    let reasons: Vec<&str> = report["users"]["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|skip| skip["reason"].as_str().expect("reason"))
        .collect();
    assert_eq!(reasons, ["invalid_username", "invalid_email"], "{report}");
    assert_eq!(report["tokens"]["skipped"][0]["reason"], "invalid_key");
    assert_eq!(app.count("auth_user").await, 1);
    assert_eq!(app.count("auth_token").await, 0);
}

/// Imports racing on one target (an operator's cron and a hand-run) leave every account,
/// token and membership once, whichever of them fails; the next run finds nothing to do.
#[tokio::test]
async fn racing_imports_leave_one_copy_of_everything() {
    let app = TestApp::spawn().await;
    let users = 300;
    let mut tokens = Vec::new();
    for id in 1..=users {
        tokens.push(format!("('{:040x}', '2024-01-02 03:04:05', {id})", id));
    }
    let source = DjangoSource::new(
        users,
        &[
            &format!("INSERT INTO authtoken_token VALUES {}", tokens.join(", ")),
            "INSERT INTO django_content_type VALUES (1, 'blog', 'post')",
            "INSERT INTO auth_permission VALUES (1, 'Can add post', 1, 'add_post')",
            "INSERT INTO auth_group VALUES (1, 'editors')",
            "INSERT INTO auth_group_permissions VALUES (1, 1, 1)",
            "INSERT INTO auth_user_groups (user_id, group_id) SELECT id, 1 FROM auth_user",
        ],
    )
    .await;
    for round in 0..3 {
        let runs = futures::future::join_all(
            (0..3).map(|_| import(&app, &source, &["--json", "--batch-size", "25"])),
        )
        .await;
        let finished = runs.iter().filter(|run| run.ok).count();
        assert!(round > 0 || finished >= 1, "no import finished");
        assert_eq!(app.count("auth_user").await, users as i64);
        assert_eq!(app.count("auth_token").await, users as i64);
        assert_eq!(app.count("auth_session").await, users as i64);
        assert_eq!(app.count("auth_user_groups").await, users as i64);
        assert_eq!(app.count("auth_group").await, 1);
    }
    let settled = import(&app, &source, &["--json"]).await.json();
    assert_eq!(settled["changed"], false, "{settled}");
    assert_eq!(
        count_rows(app.db(), "django_import WHERE kind = 'user'").await,
        users as i64
    );
}

/// A re-run applies Django's changes to accounts authd left alone: a new password ends the
/// sessions opened on authd with the old one (the DRF key, which Django keeps, stays), and
/// a deactivation in Django deactivates; an account changed on both sides is left as authd
/// has it and listed.
#[tokio::test]
async fn a_rerun_applies_djangos_changes_to_what_authd_left_alone() {
    let app = TestApp::spawn().await;
    let source = alice_and_bob().await;
    source
        .run("INSERT INTO auth_user (id, password, is_superuser, username, email, is_staff, is_active, date_joined) \
              VALUES (3, '!x', 0, 'carol', 'carol@example.com', 0, 1, '2024-01-02 03:04:05')")
        .await;
    assert!(import(&app, &source, &[]).await.ok);
    app.exec(
        "INSERT INTO auth_session (public_id, user_id, kind, name, created) \
         VALUES ('native', 2, 'token', 'phone', '2026-01-01 00:00:00')",
    )
    .await;
    assert_eq!(me(&app, KEY_ALICE).await, StatusCode::OK);
    // Bob logged in on authd since (Django never saw him log in): that login stays.
    app.exec("UPDATE auth_user SET last_login = '2026-12-01 00:00:00+00:00' WHERE id = 2")
        .await;
    app.exec("UPDATE auth_user SET email = 'carol@new.example' WHERE id = 3")
        .await;
    source
        .run("UPDATE auth_user SET password = 'pbkdf2_sha256$1000$salt$new' WHERE id = 2")
        .await;
    source
        .run("UPDATE auth_user SET is_active = 0 WHERE id = 1")
        .await;
    source
        .run("UPDATE auth_user SET is_staff = 1 WHERE id = 3")
        .await;
    let report = import(&app, &source, &["--json"]).await.json();
    assert_eq!(report["users"]["updated"], 2, "{report}");
    assert_eq!(report["users"]["skipped"][0]["id"], 3);
    assert_eq!(report["users"]["skipped"][0]["reason"], "changed_in_authd");
    assert_eq!(report["hashes"]["pbkdf2_sha256"], 1);
    assert_eq!(
        app.count("auth_user WHERE id = 2 AND password = 'pbkdf2_sha256$1000$salt$new' AND password_version = 1")
            .await,
        1
    );
    assert_eq!(
        app.count("auth_session WHERE public_id = 'native'").await,
        0
    );
    assert_eq!(
        app.count("auth_user WHERE id = 2 AND last_login IS NOT NULL")
            .await,
        1
    );
    assert_eq!(me(&app, KEY_BOB).await, StatusCode::OK);
    assert_eq!(
        app.count("auth_user WHERE id = 1 AND is_active = false AND activation_pending = false")
            .await,
        1
    );
    // The running server heard of it (PostgreSQL's NOTIFY, or SQLite's polled table): Alice's
    // key, cached a moment ago, no longer answers.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while me(&app, KEY_ALICE).await != StatusCode::UNAUTHORIZED {
        assert!(
            std::time::Instant::now() < deadline,
            "the cached key still answers"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.count("auth_user WHERE id = 3 AND is_staff = false AND email = 'carol@new.example'")
            .await,
        1
    );
    let settled = import(&app, &source, &["--json"]).await.json();
    assert_eq!(settled["changed"], false, "{settled}");
}

/// The options that change what arrives: `--no-superusers`, `--inactive-as-pending`,
/// `--source-timezone` and `--keep-token-age` (with `AUTHD_TOKEN_TTL_SECONDS` of 30 days).
#[tokio::test]
async fn the_options_change_what_arrives() {
    let app = TestApp::spawn().await;
    let source = DjangoSource::new(
        0,
        &[
            "INSERT INTO auth_user (id, password, last_login, is_superuser, username, email, is_staff, is_active, date_joined) \
             VALUES (1, '!x', NULL, 1, 'root', '', 1, 1, '2026-07-01 12:00:00'), \
             (2, '!x', NULL, 0, 'never', '', 0, 0, '2026-07-01 12:00:00'), \
             (3, '!x', '2026-07-02 12:00:00', 0, 'gone', '', 0, 0, '2026-07-01 12:00:00'), \
             (4, '!x', NULL, 0, 'fresh', '', 0, 1, '2026-07-01 12:00:00')",
            &format!(
                "INSERT INTO authtoken_token VALUES ('{KEY_ALICE}', '2024-01-02 03:04:05', 1), \
                 ('{KEY_BOB}', datetime('now', '-1 day'), 4)"
            ),
        ],
    )
    .await;
    let from = source.url();
    let run = tokio::task::spawn_blocking({
        let url = app.state.settings.database_url.expose().to_owned();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_authd"))
                .env_remove("RUST_LOG")
                .env("DATABASE_URL", url)
                .env("AUTHD_TOKEN_TTL_SECONDS", (30 * 86400).to_string())
                .args(["import-django", "--from", &from, "--json"])
                .args([
                    "--no-superusers",
                    "--inactive-as-pending",
                    "--keep-token-age",
                ])
                .args(["--source-timezone", "Europe/Paris"])
                .output()
                .expect("run authd")
        }
    })
    .await
    .expect("join");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: Value = serde_json::from_slice(&run.stdout).expect("json");
    assert_eq!(report["superusers"], serde_json::json!([]), "{report}");
    assert_eq!(
        app.count("auth_user WHERE is_superuser = true OR is_staff = true")
            .await,
        0
    );
    assert_eq!(
        app.count("auth_user WHERE id = 2 AND is_active = false AND activation_pending = true")
            .await,
        1
    );
    assert_eq!(
        app.count("auth_user WHERE id = 3 AND is_active = false AND activation_pending = false")
            .await,
        1
    );
    let joined = authd::store::users::credentials(app.db(), 4)
        .await
        .expect("query")
        .expect("fresh")
        .principal
        .date_joined;
    assert_eq!(joined.to_rfc3339(), "2026-07-01T10:00:00+00:00");
    assert_eq!(report["tokens"]["imported"], 1, "{report}");
    assert_eq!(report["tokens"]["skipped"][0]["reason"], "expired");
    let sessions = app
        .send(
            app.request(Method::GET, "/token/sessions/")
                .header("Authorization", format!("Token {KEY_BOB}")),
        )
        .await;
    assert_eq!(sessions.status, StatusCode::OK, "{}", sessions.text);
    let expires = sessions.json()[0]["expires"]
        .as_str()
        .expect("expires")
        .to_owned();
    let expires = chrono::DateTime::parse_from_rfc3339(&expires).expect("time");
    let left = expires.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(
        left < chrono::Duration::days(29) + chrono::Duration::hours(1)
            && left > chrono::Duration::days(28),
        "{left}"
    );
    assert_eq!(sessions.json()[0]["name"], "Imported from Django");
}

/// Ids are kept where free; a row whose id the target holds gets one past every id of both
/// sides, never the id a later Django row keeps (authd's twelve `auth.*` permissions hold ids
/// 1 to 12 in a fresh database; an operator's group holds 1). Sign-ups and new groups then get
/// ids past all of them.
#[tokio::test]
async fn ids_taken_in_the_target_never_take_a_later_rows_id() {
    let app = TestApp::spawn().await;
    app.command(&["group", "create", "operators"]).await;
    let source = DjangoSource::new(
        2,
        &[
            "INSERT INTO django_content_type VALUES (1, 'shop', 'order')",
            "INSERT INTO auth_permission VALUES (1, 'Can add order', 1, 'add_order'), \
             (13, 'Can view order', 1, 'view_order')",
            "INSERT INTO auth_group VALUES (1, 'buyers'), (2, 'sellers')",
            "INSERT INTO auth_group_permissions VALUES (1, 1, 1), (2, 2, 13)",
            "INSERT INTO auth_user_groups (user_id, group_id) VALUES (1, 1), (2, 2)",
        ],
    )
    .await;
    let run = import(&app, &source, &["--json"]).await;
    assert!(run.ok, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["permissions"]["imported"], 2, "{report}");
    assert_eq!(report["groups"]["imported"], 2, "{report}");
    assert_eq!(
        app.count("auth_permission WHERE id = 13 AND codename = 'view_order'")
            .await,
        1
    );
    assert_eq!(
        app.count("auth_permission WHERE id > 13 AND codename = 'add_order'")
            .await,
        1
    );
    assert_eq!(
        app.count("auth_group WHERE id = 2 AND name = 'sellers'")
            .await,
        1
    );
    assert_eq!(
        app.count("auth_group WHERE id > 2 AND name = 'buyers'")
            .await,
        1
    );
    let grants = |user: i64, codename: &str| {
        format!(
            "auth_user_groups m JOIN auth_group_permissions gp ON gp.group_id = m.group_id \
             JOIN auth_permission p ON p.id = gp.permission_id \
             WHERE m.user_id = {user} AND p.codename = '{codename}'"
        )
    };
    assert_eq!(app.count(&grants(1, "add_order")).await, 1);
    assert_eq!(app.count(&grants(2, "view_order")).await, 1);
    let created = app.command(&["group", "create", "later"]).await;
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let permission = app
        .command(&[
            "permission",
            "create",
            "shop.refund_order",
            "--name",
            "Can refund",
        ])
        .await;
    assert!(
        permission.status.success(),
        "{}",
        String::from_utf8_lossy(&permission.stderr)
    );
    let (id, _) = app.create_user("newcomer").await;
    assert!(id > 2, "{id}");
}

/// The source's largest tables are read a page (10,000 rows) at a time: rows on either side of
/// a page's edge, and the last, all come over once.
#[tokio::test]
async fn a_source_of_more_than_a_page_comes_over_whole() {
    let app = TestApp::spawn().await;
    let users = 10_001;
    let source = DjangoSource::new(
        users,
        &["WITH RECURSIVE n(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM n WHERE id < 10001) \
           INSERT INTO authtoken_token SELECT printf('%040x', id), '2024-01-02 03:04:05', id FROM n"],
    )
    .await;
    let run = import(&app, &source, &["--json", "--batch-size", "5000"]).await;
    assert!(run.ok, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["users"]["imported"], users, "{report}");
    assert_eq!(report["tokens"]["imported"], users, "{report}");
    assert_eq!(app.count("auth_user").await, users as i64);
    assert_eq!(me(&app, &format!("{:040x}", users)).await, StatusCode::OK);
    assert_eq!(me(&app, &format!("{:040x}", 10_000)).await, StatusCode::OK);
}

/// `--on-conflict=fail` also refuses a name an account of the target holds, before writing
/// anything; a re-run's own accounts are not collisions.
#[tokio::test]
async fn on_conflict_fail_counts_the_targets_accounts_too() {
    let app = TestApp::spawn().await;
    let source = DjangoSource::new(
        0,
        &["INSERT INTO auth_user (id, password, is_superuser, username, email, is_staff, is_active, date_joined) \
           VALUES (5, '!x', 0, 'bob', '', 0, 1, '2024-01-02 03:04:05'), \
           (6, '!x', 0, 'carol', '', 0, 1, '2024-01-02 03:04:05')"],
    )
    .await;
    let first = import(&app, &source, &["--on-conflict", "fail"]).await;
    assert!(first.ok, "{}", first.stderr);
    let again = import(&app, &source, &["--on-conflict", "fail", "--json"]).await;
    assert!(again.ok, "{}", again.stderr);
    assert_eq!(again.json()["changed"], false);
    app.create_user("Dave").await;
    source
        .run("INSERT INTO auth_user (id, password, is_superuser, username, email, is_staff, is_active, date_joined) \
              VALUES (7, '!x', 0, 'dave', '', 0, 1, '2024-01-02 03:04:05'), \
              (8, '!x', 0, 'erin', '', 0, 1, '2024-01-02 03:04:05')")
        .await;
    let before = app.snapshot().await;
    let refused = import(&app, &source, &["--on-conflict", "fail"]).await;
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("\"dave\": username_collision"),
        "{}",
        refused.stderr
    );
    assert_eq!(app.snapshot().await, before);
}

/// An import into a database a server is running on announces the hashes it brought: the
/// server's dummy hash (what an unknown name costs) follows them at once, not at its next
/// refresh a minute later, so imported accounts never stand out by their slowness.
#[tokio::test]
async fn a_running_server_follows_the_imported_hashes_at_once() {
    use authd::crypto::Scheme;
    let app = TestApp::spawn().await;
    let own = Scheme::Argon2id(app.state.settings.hashing.cost);
    assert_eq!(app.state.hasher.dummy_scheme(), own);
    // Django 5.2's PBKDF2 at 36,000 iterations (tests/api/django.rs).
    let hash = "pbkdf2_sha256$36000$DrHMLCExdCId$cesaT/b7kMSrejWi2hPAFN3/Jsqw0BUZMDX5SZN/SCU=";
    let source = DjangoSource::new(
        0,
        &[&format!(
            "INSERT INTO auth_user (id, password, is_superuser, username, email, is_staff, is_active, date_joined) \
             VALUES (1, '{hash}', 0, 'alice', '', 0, 1, '2024-01-02 03:04:05'), \
             (2, '{hash}', 0, 'bob', '', 0, 1, '2024-01-02 03:04:05')"
        )],
    )
    .await;
    let dry = import(&app, &source, &["--dry-run"]).await;
    assert!(dry.ok, "{}", dry.stderr);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        app.state.hasher.dummy_scheme(),
        own,
        "a dry run announces nothing"
    );
    let run = import(&app, &source, &[]).await;
    assert!(run.ok, "{}", run.stderr);
    let legacy = Scheme::Pbkdf2Sha256 { iterations: 36_000 };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.state.hasher.dummy_scheme() != legacy {
        assert!(
            std::time::Instant::now() < deadline,
            "the dummy did not follow the import"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
