//! Every lookup by a digest or a counter key uses its indexes, whatever the tables' sizes: on
//! PostgreSQL a `character(n)` column compared with a bound `text` value cannot, and a million
//! tokens then cost a sequential scan per token-cache miss. The miss itself is one statement
//! that reads the token, its user, its session and what the user holds: each of those tables
//! grows with the users, and each is read by index.

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::helpers::{PASSWORD, TestApp};

const ROWS: u32 = 10_000;
/// Filled users' ids start above this (the registered ones are below).
const USERS: u32 = 1_000;

/// `ROWS` rows in each looked-up table, each token of a user and a session of its own, the
/// users in a group and holding a permission, written by hand as an operator's import would,
/// then the planner's statistics.
async fn fill(app: &TestApp) {
    let (numbers, digest) = match app.db().get_database_backend() {
        DbBackend::Postgres => (
            format!("SELECT i FROM generate_series(1, {ROWS}) AS n(i)"),
            "lpad(i::text, 64, '0')",
        ),
        _ => (
            format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS}) SELECT i FROM n"
            ),
            "printf('%064d', i)",
        ),
    };
    let now = "CURRENT_TIMESTAMP";
    for sql in [
        format!(
            "INSERT INTO auth_user (id, username, username_canonical, password, date_joined) \
             SELECT {USERS} + i, 'u' || i, 'u' || i, '!', {now} FROM ({numbers}) AS s"
        ),
        format!(
            "INSERT INTO auth_session (id, public_id, user_id, kind, name, created) \
             SELECT {USERS} + i, 's' || i, {USERS} + i, 'token', 'filled', {now} FROM ({numbers}) AS s"
        ),
        format!(
            "INSERT INTO auth_token (digest, user_id, session_id, created, kind, expiry_pending) \
             SELECT {digest}, {USERS} + i, {USERS} + i, {now}, 'token', FALSE FROM ({numbers}) AS s"
        ),
        format!(
            "INSERT INTO email_token (user_id, purpose, digest, fingerprint, created, expires_at) \
             SELECT 1, 'password_reset', {digest}, {digest}, {now}, {now} FROM ({numbers}) AS s"
        ),
        format!("INSERT INTO login_failure (key, at) SELECT {digest}, {now} FROM ({numbers}) AS s"),
        "INSERT INTO auth_group (name) VALUES ('filled')".to_owned(),
        format!(
            "INSERT INTO auth_user_groups (user_id, group_id) \
             SELECT {USERS} + i, (SELECT id FROM auth_group WHERE name = 'filled') FROM ({numbers}) AS s"
        ),
        format!(
            "INSERT INTO auth_user_user_permissions (user_id, permission_id) \
             SELECT {USERS} + i, (SELECT min(id) FROM auth_permission) FROM ({numbers}) AS s"
        ),
    ] {
        app.exec(&sql).await;
    }
    app.exec("ANALYZE").await;
}

/// The plan of one statement, one line per step.
async fn plan(app: &TestApp, statement: &Statement) -> Vec<String> {
    let backend = app.db().get_database_backend();
    let (prefix, column) = match backend {
        DbBackend::Postgres => ("EXPLAIN", "QUERY PLAN"),
        _ => ("EXPLAIN QUERY PLAN", "detail"),
    };
    let explain = Statement {
        sql: format!("{prefix} {}", statement.sql),
        ..statement.clone()
    };
    app.db()
        .query_all_raw(explain)
        .await
        .expect("explain")
        .iter()
        .map(|row| row.try_get::<String>("", column).expect("a plan line"))
        .collect()
}

#[tokio::test]
async fn token_link_and_failure_lookups_use_their_indexes() {
    let app = TestApp::spawn().await;
    app.register("alice", PASSWORD).await;
    fill(&app).await;
    let backend = app.db().get_database_backend();
    for (tables, statement) in authd::store::indexed_lookups(backend) {
        let plan = plan(&app, &statement).await;
        for table in tables {
            let steps: Vec<&String> = plan
                .iter()
                .filter(|line| match backend {
                    DbBackend::Postgres => line.contains(&format!(" on {table} ")),
                    _ => line.split_whitespace().nth(1) == Some(table),
                })
                .collect();
            // SQLite: SEARCH (by an index or the rowid), never SCAN.
            let indexed = !steps.is_empty()
                && steps.iter().all(|line| match backend {
                    DbBackend::Postgres => line.contains("Index"),
                    _ => line.starts_with("SEARCH"),
                });
            assert!(
                indexed,
                "{table} is not looked up by index:\n{}\n{}",
                statement.sql,
                plan.join("\n")
            );
        }
    }
}
