//! A database written by the previous release (the first three migrations) starts, serves,
//! and delivers its pending mail after the upgrade; its links and tokens keep working.

use chrono::Utc;
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::{PASSWORD, TestApp};
use crate::smtp::SmtpServer;

const OLD_TOKEN: &str = "authd_previousReleaseTokenpreviousReleaseToken1234";
const OLD_LINK_SECRET: &str = "previousReleaseLinkSecret";
/// Minted 31 days before the upgrade: the 30-day TTL applies to it from its creation.
const OLD_EXPIRED_TOKEN: &str = "authd_previousReleaseTokenFromLastMonth123456789";

/// `?` placeholders, numbered for PostgreSQL.
async fn run(db: &DatabaseConnection, sql: &str, values: Vec<Value>) {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            let mut numbered = String::new();
            for (index, part) in sql.split('?').enumerate() {
                if index > 0 {
                    numbered.push_str(&format!("${index}"));
                }
                numbered.push_str(part);
            }
            numbered
        }
        _ => sql.to_owned(),
    };
    if let Err(err) = db
        .execute_raw(Statement::from_sql_and_values(backend, sql.clone(), values))
        .await
    {
        panic!("{sql}: {err}");
    }
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// What the previous release wrote: an active user with a token, a live reset link and the
/// pending message carrying it (bodies rendered, as it did), a queued username-reset request,
/// and an account waiting for activation.
async fn fill_as_the_previous_release(db: DatabaseConnection, hash: String) {
    let now = Utc::now();
    let user = "INSERT INTO auth_user (id, username, username_canonical, email, email_canonical, password, is_active, is_staff, is_superuser, date_joined) VALUES (?, ?, ?, ?, NULL, ?, ?, FALSE, FALSE, ?)";
    run(
        &db,
        user,
        vec![
            1i64.into(),
            "alice".into(),
            "alice".into(),
            "alice@example.com".into(),
            hash.clone().into(),
            true.into(),
            now.into(),
        ],
    )
    .await;
    run(
        &db,
        user,
        vec![
            2i64.into(),
            "bob".into(),
            "bob".into(),
            "bob@example.com".into(),
            hash.clone().into(),
            false.into(),
            now.into(),
        ],
    )
    .await;
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared("SELECT setval(pg_get_serial_sequence('auth_user', 'id'), 2)")
            .await
            .expect("sequence");
    }
    let token = "INSERT INTO auth_token (digest, user_id, created) VALUES (?, 1, ?)";
    run(
        &db,
        token,
        vec![authd::crypto::token_digest(OLD_TOKEN).into(), now.into()],
    )
    .await;
    let last_month = now - chrono::Duration::days(31);
    run(
        &db,
        token,
        vec![
            authd::crypto::token_digest(OLD_EXPIRED_TOKEN).into(),
            last_month.into(),
        ],
    )
    .await;
    let link = "INSERT INTO email_token (user_id, purpose, digest, fingerprint, created, expires_at) VALUES (?, ?, ?, ?, ?, ?)";
    let alice_fingerprint = sha256_hex(&[hash.as_bytes(), b"\0", b"alice@example.com"]);
    run(
        &db,
        link,
        vec![
            1i64.into(),
            "password_reset".into(),
            authd::crypto::token_digest(OLD_LINK_SECRET).into(),
            alice_fingerprint.into(),
            now.into(),
            (now + chrono::Duration::days(1)).into(),
        ],
    )
    .await;
    let bob_fingerprint = sha256_hex(&[hash.as_bytes(), b"\0", b"bob@example.com"]);
    run(
        &db,
        link,
        vec![
            2i64.into(),
            "activation".into(),
            authd::crypto::token_digest("bobs-old-activation").into(),
            bob_fingerprint.into(),
            now.into(),
            (now + chrono::Duration::days(1)).into(),
        ],
    )
    .await;
    let body = format!(
        "Reset it: http://app.example.test/#/password/reset/confirm/MQ/{OLD_LINK_SECRET}\n"
    );
    run(
        &db,
        "INSERT INTO email_outbox (message_id, recipient, subject, text_body, html_body, created, attempts, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
        vec!["<old@authd>".into(), "alice@example.com".into(), "Password reset on Example".into(), body.clone().into(), body.into(), now.into(), now.into()],
    )
    .await;
    run(
        &db,
        "INSERT INTO email_request (kind, email, created) VALUES (?, ?, ?)",
        vec![
            "username_reset".into(),
            "alice@example.com".into(),
            now.into(),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_database_of_the_previous_release_starts_serves_and_delivers() {
    let hash = authd::crypto::PasswordHasher::new(authd::crypto::HashCost::OWASP_MINIMUM, 1)
        .expect("pool")
        .admit()
        .expect("room")
        .hash(PASSWORD.to_owned())
        .await
        .expect("hash");
    let smtp = SmtpServer::start().await;
    let port = smtp.port;
    let app = TestApp::spawn_on_old_schema(
        3,
        |db| fill_as_the_previous_release(db, hash),
        |s| {
            s.mail.backend = authd::config::EmailBackend::Smtp(authd::config::DatabaseUrl::new(
                format!("smtp://127.0.0.1:{port}"),
            ));
            s.mail.frontend_domain = "app.example.test".into();
            s.mail.site_name = Some("Example".into());
            s.djoser.send_activation_email = true;
        },
    )
    .await;

    app.call(Method::GET, "/users/me/", OLD_TOKEN, None)
        .await
        .assert(
            StatusCode::OK,
            json!({"email": "alice@example.com", "id": 1, "username": "alice"}),
        );
    app.call(Method::GET, "/users/me/", OLD_EXPIRED_TOKEN, None)
        .await
        .assert(
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Invalid token."}),
        );
    let sessions = app
        .call(Method::GET, "/token/sessions/", OLD_TOKEN, None)
        .await;
    assert_eq!(sessions.status, StatusCode::OK, "{}", sessions.text);
    assert_eq!(
        sessions.json().as_array().map(Vec::len),
        Some(1),
        "the old token is a session"
    );
    let messages = smtp.wait_for(2).await;
    let mut subjects: Vec<String> = messages.iter().map(|m| m.subject()).collect();
    subjects.sort();
    assert_eq!(
        subjects,
        ["Password reset on Example", "Username reset on Example"]
    );
    let legacy = messages
        .iter()
        .find(|m| m.subject().starts_with("Password"))
        .expect("the pending message");
    assert_eq!(
        legacy.uid_and_token(),
        ("MQ".to_owned(), OLD_LINK_SECRET.to_owned())
    );
    let reset = app
        .post_json(
            "/users/reset_password_confirm/",
            json!({"uid": "MQ", "token": OLD_LINK_SECRET, "new_password": "a fresh passphrase here"}),
            None,
        )
        .await;
    assert_eq!(
        reset.status,
        StatusCode::NO_CONTENT,
        "the old link works: {}",
        reset.text
    );
    app.token_for("alice", "a fresh passphrase here").await;

    let resent = app
        .post_json(
            "/users/resend_activation/",
            json!({"email": "bob@example.com"}),
            None,
        )
        .await;
    assert_eq!(resent.status, StatusCode::NO_CONTENT);
    let (uid, token) = smtp.wait_for(3).await[2].uid_and_token();
    assert_eq!(uid, "Mg", "bob was waiting for activation");
    let activated = app
        .post_json(
            "/users/activation/",
            json!({"uid": uid, "token": token}),
            None,
        )
        .await;
    assert_eq!(
        activated.status,
        StatusCode::NO_CONTENT,
        "{}",
        activated.text
    );
    app.token_for("bob", PASSWORD).await;
    let created = app.register("carol", PASSWORD).await;
    assert_eq!(
        created.status,
        StatusCode::BAD_REQUEST,
        "an email is required under activation"
    );
}
