//! Every lookup by a digest or a counter key uses its index, whatever the table's size: on
//! PostgreSQL a `character(n)` column compared with a bound `text` value cannot, and a million
//! tokens then cost a sequential scan per token-cache miss.

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::helpers::{PASSWORD, TestApp};

const ROWS: u32 = 10_000;

/// `ROWS` rows in each looked-up table, written by hand as an operator's import would, then
/// the planner's statistics.
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
            "INSERT INTO auth_token (digest, user_id, created, kind, expiry_pending) \
             SELECT {digest}, 1, {now}, 'token', FALSE FROM ({numbers}) AS s"
        ),
        format!(
            "INSERT INTO email_token (user_id, purpose, digest, fingerprint, created, expires_at) \
             SELECT 1, 'password_reset', {digest}, {digest}, {now}, {now} FROM ({numbers}) AS s"
        ),
        format!("INSERT INTO login_failure (key, at) SELECT {digest}, {now} FROM ({numbers}) AS s"),
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
    for (table, statement) in authd::store::indexed_lookups(backend) {
        let plan = plan(&app, &statement).await;
        let steps: Vec<&String> = plan
            .iter()
            .filter(|line| match backend {
                DbBackend::Postgres => line.contains(&format!(" on {table}")),
                _ => line.split_whitespace().nth(1) == Some(table),
            })
            .collect();
        let indexed = !steps.is_empty()
            && steps.iter().all(|line| match backend {
                DbBackend::Postgres => line.contains("Index"),
                _ => line.starts_with("SEARCH") && line.contains("INDEX"),
            });
        assert!(
            indexed,
            "{table} is not looked up by index:\n{}\n{}",
            statement.sql,
            plan.join("\n")
        );
    }
}
