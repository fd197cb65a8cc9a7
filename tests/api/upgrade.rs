//! Databases written by earlier releases (the first three migrations; every migration up to the
//! failure counters; every one before groups and permissions) start, serve and deliver their
//! pending mail after the upgrade; their links, tokens and counters keep working.

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

const MAIN_TOKEN: &str = "authd_mainReleaseDjoserTokenmainReleaseDjoserToken12";
const MAIN_ACCESS: &str = "authd_mainReleaseAccessTokenmainReleaseAccessToken12";
const MAIN_REFRESH: &str = "authd_mainReleaseRefreshTokenmainReleaseRefreshToken1";
const MAIN_RETIRED: &str = "authd_mainReleaseRetiredRefreshmainReleaseRetiredRefr";
const MAIN_BOB_REFRESH: &str = "authd_mainReleaseBobsRefreshTokenmainReleaseBobsRefres";
const MAIN_CLIENT_SECRET: &str = "the confidential client's secret";
/// Counted against bob from this address by the release before: ten failures, the limit.
const MAIN_GUESSER: &str = "203.0.113.9";

/// The failure key the release before counted (address, account) pairs under.
fn failure_key(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// What the release before this one (every migration up to the failure counters) wrote:
/// two users; a confidential and a public client; alice's Djoser session, her OAuth2 family
/// through the confidential client (a live access token, a live refresh token and one
/// rotation retired an hour ago), bob's family through the public client; ten failed
/// guesses at bob from one address; a link message waiting for delivery, a rendered one, and
/// a queued request.
async fn fill_as_the_release_before(db: DatabaseConnection, hash: String) {
    let now = Utc::now();
    let month = now + chrono::Duration::days(30);
    let user = "INSERT INTO auth_user (id, username, username_canonical, email, email_canonical, password, password_version, is_active, activation_pending, is_staff, is_superuser, date_joined) VALUES (?, ?, ?, ?, NULL, ?, 0, TRUE, FALSE, FALSE, FALSE, ?)";
    for (id, name) in [(1i64, "alice"), (2, "bob")] {
        run(
            &db,
            user,
            vec![
                id.into(),
                name.into(),
                name.into(),
                format!("{name}@example.com").into(),
                hash.clone().into(),
                now.into(),
            ],
        )
        .await;
    }
    let client = "INSERT INTO oauth_client (id, client_id, name, secret_digest, created) VALUES (?, ?, ?, ?, ?)";
    run(
        &db,
        client,
        vec![
            1i64.into(),
            "authd-client-confidential".into(),
            "Orders service".into(),
            Some(authd::crypto::token_digest(MAIN_CLIENT_SECRET)).into(),
            now.into(),
        ],
    )
    .await;
    run(
        &db,
        client,
        vec![
            2i64.into(),
            "authd-client-public".into(),
            "Phone".into(),
            Option::<String>::None.into(),
            now.into(),
        ],
    )
    .await;
    let session = "INSERT INTO auth_session (id, public_id, user_id, kind, client_id, name, client_ip, created, last_used, expires_at) VALUES (?, ?, ?, ?, ?, ?, '198.51.100.1', ?, NULL, ?)";
    for (id, user_id, kind, client_id, name) in [
        (1i64, 1i64, "token", None, "laptop"),
        (2, 1, "oauth", Some(1i64), "Orders service"),
        (3, 2, "oauth", Some(2), "Phone"),
    ] {
        run(
            &db,
            session,
            vec![
                id.into(),
                format!("public{id}").into(),
                user_id.into(),
                kind.into(),
                client_id.into(),
                name.into(),
                now.into(),
                month.into(),
            ],
        )
        .await;
    }
    let token = "INSERT INTO auth_token (digest, user_id, created, session_id, kind, expires_at, expiry_pending, retired_at) VALUES (?, ?, ?, ?, ?, ?, FALSE, ?)";
    let an_hour_ago = now - chrono::Duration::hours(1);
    for (secret, user_id, created, session_id, kind, expires, retired) in [
        (MAIN_TOKEN, 1i64, now, 1i64, "token", month, None),
        (
            MAIN_RETIRED,
            1,
            an_hour_ago,
            2,
            "refresh",
            month,
            Some(an_hour_ago),
        ),
        (
            MAIN_ACCESS,
            1,
            now,
            2,
            "access",
            now + chrono::Duration::minutes(15),
            None,
        ),
        (MAIN_REFRESH, 1, now, 2, "refresh", month, None),
        (MAIN_BOB_REFRESH, 2, now, 3, "refresh", month, None),
    ] {
        run(
            &db,
            token,
            vec![
                authd::crypto::token_digest(secret).into(),
                user_id.into(),
                created.into(),
                session_id.into(),
                kind.into(),
                expires.into(),
                retired.into(),
            ],
        )
        .await;
    }
    if db.get_database_backend() == DbBackend::Postgres {
        for table in ["auth_user", "oauth_client", "auth_session"] {
            db.execute_unprepared(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), 10)"
            ))
            .await
            .expect("sequence");
        }
    }
    let guesses = failure_key(&["ip+account", MAIN_GUESSER, "bob"]);
    for minute in 0..10 {
        run(
            &db,
            "INSERT INTO login_failure (key, at) VALUES (?, ?)",
            vec![
                guesses.clone().into(),
                (now - chrono::Duration::minutes(minute)).into(),
            ],
        )
        .await;
    }
    let fingerprint = sha256_hex(&[b"authd link v2\0", b"0", b"\0", b"alice@example.com"]);
    let outbox = "INSERT INTO email_outbox (message_id, recipient, subject, text_body, html_body, created, attempts, next_attempt_at, kind, user_id, fingerprint) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)";
    run(
        &db,
        outbox,
        vec![
            "<link@authd>".into(),
            "alice@example.com".into(),
            "".into(),
            "".into(),
            "".into(),
            now.into(),
            now.into(),
            Some("password_reset").into(),
            Some(1i64).into(),
            Some(fingerprint).into(),
        ],
    )
    .await;
    run(
        &db,
        outbox,
        vec![
            "<rendered@authd>".into(),
            "bob@example.com".into(),
            "Rendered by the release before".into(),
            "Hello bob\n".into(),
            "<p>Hello bob</p>".into(),
            now.into(),
            now.into(),
            Option::<String>::None.into(),
            Option::<i64>::None.into(),
            Option::<String>::None.into(),
        ],
    )
    .await;
    run(
        &db,
        "INSERT INTO email_request (kind, email, created) VALUES (?, ?, ?)",
        vec![
            "username_reset".into(),
            "bob@example.com".into(),
            now.into(),
        ],
    )
    .await;
}

async fn form(
    app: &TestApp,
    path: &str,
    basic: Option<(&str, &str)>,
    body: &[(&str, &str)],
) -> crate::helpers::Reply {
    let mut request = app.request(Method::POST, path).form(body);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    app.send(request).await
}

/// A database the release before this one wrote (sessions, OAuth2 families, clients, failure
/// counters, pending mail) upgrades with nothing lost: every token, family and client works
/// as it did, a retired refresh token still revokes its family, the counted failures still
/// hold, and the pending mail is delivered.
#[tokio::test]
async fn a_database_of_the_release_before_upgrades_with_nothing_lost() {
    let (app, smtp) = spawn_filled(7).await;
    assert_nothing_lost(&app, &smtp).await;
}

/// The same data written by the release before groups and permissions (every migration up to
/// the per-address mail limits) upgrades with nothing lost; its superuser, who meant nothing
/// more than staff then, now holds every permission, as in Django, and its staff none.
#[tokio::test]
async fn a_database_of_the_release_before_groups_upgrades_with_nothing_lost() {
    let (app, smtp) = spawn_filled(11).await;
    assert_nothing_lost(&app, &smtp).await;
    let root = app.token_for("root", PASSWORD).await;
    let permissions = app.call(Method::GET, "/permissions/", &root, None).await;
    assert_eq!(permissions.status, StatusCode::OK, "{}", permissions.text);
    assert_eq!(permissions.json().as_array().map(Vec::len), Some(12));
    app.exec("UPDATE auth_user SET is_staff = TRUE WHERE id = 2")
        .await;
    app.state.auth.forget(&authd::auth::Invalidation::User(2));
    let bob = app.token_for("bob", PASSWORD).await;
    let refused = app.call(Method::GET, "/groups/", &bob, None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
}

/// A database `migrations` made and the release before filled (with a superuser besides),
/// upgraded by the app's start.
async fn spawn_filled(migrations: u32) -> (TestApp, SmtpServer) {
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
        migrations,
        |db| async move {
            fill_as_the_release_before(db.clone(), hash.clone()).await;
            let root = "INSERT INTO auth_user (id, username, username_canonical, email, email_canonical, password, password_version, is_active, activation_pending, is_staff, is_superuser, date_joined) VALUES (?, ?, ?, ?, NULL, ?, 0, TRUE, FALSE, TRUE, TRUE, ?)";
            run(
                &db,
                root,
                vec![
                    3i64.into(),
                    "root".into(),
                    "root".into(),
                    "root@example.com".into(),
                    hash.into(),
                    Utc::now().into(),
                ],
            )
            .await;
        },
        |s| {
            crate::helpers::behind_proxy(s);
            s.mail.backend = authd::config::EmailBackend::Smtp(authd::config::DatabaseUrl::new(
                format!("smtp://127.0.0.1:{port}"),
            ));
            s.mail.frontend_domain = "app.example.test".into();
            s.mail.site_name = Some("Example".into());
        },
    )
    .await;
    (app, smtp)
}

async fn assert_nothing_lost(app: &TestApp, smtp: &SmtpServer) {
    let confidential = Some(("authd-client-confidential", MAIN_CLIENT_SECRET));

    app.call(Method::GET, "/users/me/", MAIN_TOKEN, None)
        .await
        .assert(
            StatusCode::OK,
            json!({"email": "alice@example.com", "id": 1, "username": "alice"}),
        );
    let me = app
        .send(
            app.request(Method::GET, "/users/me/")
                .bearer_auth(MAIN_ACCESS),
        )
        .await;
    assert_eq!(
        me.status,
        StatusCode::OK,
        "the access token works: {}",
        me.text
    );
    let sessions = app
        .call(Method::GET, "/token/sessions/", MAIN_TOKEN, None)
        .await
        .json();
    let names: Vec<&str> = sessions
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["laptop", "Orders service"]);
    let introspected = form(
        app,
        "/oauth/introspect",
        confidential,
        &[("token", MAIN_ACCESS)],
    )
    .await;
    assert_eq!(introspected.json()["active"], true, "{}", introspected.text);
    assert_eq!(
        introspected.json()["client_id"],
        "authd-client-confidential"
    );

    let bob = form(
        app,
        "/oauth/token",
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", MAIN_BOB_REFRESH),
            ("client_id", "authd-client-public"),
        ],
    )
    .await;
    assert_eq!(
        bob.status,
        StatusCode::OK,
        "bob's family rotates: {}",
        bob.text
    );
    let rotated = form(
        app,
        "/oauth/token",
        confidential,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", MAIN_REFRESH),
        ],
    )
    .await;
    assert_eq!(
        rotated.status,
        StatusCode::OK,
        "alice's family rotates: {}",
        rotated.text
    );
    let new_access = rotated.json()["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    let reused = form(
        app,
        "/oauth/token",
        confidential,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", MAIN_RETIRED),
        ],
    )
    .await;
    assert_eq!(reused.json()["error"], "invalid_grant", "{}", reused.text);
    let revoked = app
        .send(
            app.request(Method::GET, "/users/me/")
                .bearer_auth(&new_access),
        )
        .await;
    assert_eq!(
        revoked.status,
        StatusCode::UNAUTHORIZED,
        "a retired refresh token of the release before still revokes its family"
    );

    let guessed = app
        .send(
            app.request(Method::POST, "/token/login/")
                .header("X-Forwarded-For", MAIN_GUESSER)
                .json(&json!({"username": "bob", "password": PASSWORD})),
        )
        .await;
    crate::helpers::assert_throttled(&guessed, 15 * 60);
    let elsewhere = app
        .send(
            app.request(Method::POST, "/token/login/")
                .header("X-Forwarded-For", "198.51.100.77")
                .json(&json!({"username": "bob", "password": PASSWORD})),
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::OK, "{}", elsewhere.text);

    let messages = smtp.wait_for(3).await;
    let mut subjects: Vec<String> = messages.iter().map(|m| m.subject()).collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "Password reset on Example",
            "Rendered by the release before",
            "Username reset on Example"
        ]
    );
    let reset = messages
        .iter()
        .find(|m| m.subject().starts_with("Password"))
        .expect("the link message");
    let (uid, token) = reset.uid_and_token();
    let confirmed = app
        .post_json(
            "/users/reset_password_confirm/",
            json!({"uid": uid, "token": token, "new_password": "a fresh passphrase here"}),
            None,
        )
        .await;
    assert_eq!(
        confirmed.status,
        StatusCode::NO_CONTENT,
        "{}",
        confirmed.text
    );
    app.token_for("alice", "a fresh passphrase here").await;
}
