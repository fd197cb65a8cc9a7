//! Token expiry (absolute and idle), sessions and their limit.

use std::time::Duration;

use authd::throttle::FailureLimits;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

async fn me(app: &TestApp, token: &str) -> crate::helpers::Reply {
    app.call(Method::GET, "/users/me/", token, None).await
}

#[track_caller]
fn assert_invalid(reply: &crate::helpers::Reply) {
    reply.assert(
        StatusCode::UNAUTHORIZED,
        json!({"detail": "Invalid token."}),
    );
    assert_eq!(reply.header("www-authenticate"), Some("Token"));
}

/// A token dies at its expiry, even while the cache (10 s) still holds it.
#[tokio::test]
async fn a_token_dies_at_its_expiry_even_behind_the_cache() {
    let app = TestApp::spawn_with(|s| s.tokens.ttl = Duration::from_secs(1)).await;
    let (_, token) = app.create_user("alice").await;
    assert_eq!(me(&app, &token).await.status, StatusCode::OK, "cached now");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_invalid(&me(&app, &token).await);
}

/// An unused token dies after the idle limit; each use starts it again.
#[tokio::test]
async fn an_idle_token_dies_and_each_use_keeps_it_alive() {
    let app = TestApp::spawn_with(|s| s.tokens.idle = Duration::from_secs(3)).await;
    let (_, token) = app.create_user("alice").await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            me(&app, &token).await.status,
            StatusCode::OK,
            "used in time"
        );
    }
    // Idleness is counted in whole seconds: more than 3 means at least 4.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_invalid(&me(&app, &token).await);
}

/// A token in use never idles out, even when its session is read back from the database (the
/// cache expired, or another instance answers): last uses are written at most every
/// `min(60 s, idle ÷ 4)`, well within the idle limit.
#[tokio::test]
async fn a_token_in_use_outlives_its_idle_limit_behind_short_cache_entries() {
    let app = TestApp::spawn_with(|s| {
        s.tokens.idle = Duration::from_secs(8);
        s.token_cache_ttl = Duration::from_secs(1);
    })
    .await;
    let (_, token) = app.create_user("alice").await;
    let second = app.sibling().await;
    for round in 0..20 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let app = if round % 2 == 0 { &app } else { &second };
        assert_eq!(
            me(app, &token).await.status,
            StatusCode::OK,
            "used every second, yet idle after {round} s"
        );
    }
}

/// The expiry is fixed when the token is minted: an instance with another TTL honours it.
#[tokio::test]
async fn a_ttl_change_affects_only_new_tokens() {
    // Long enough for the steps before the first check on a loaded machine.
    let short = TestApp::spawn_with(|s| s.tokens.ttl = Duration::from_secs(6)).await;
    let (_, early) = short.create_user("alice").await;
    let mut settings = (*short.state.settings).clone();
    settings.tokens.ttl = Duration::from_secs(3600);
    let long = short.sibling_with(settings).await;
    let late = long.token_for("alice", PASSWORD).await;
    assert_eq!(me(&long, &early).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(6100)).await;
    assert_invalid(&me(&long, &early).await);
    assert_eq!(me(&long, &late).await.status, StatusCode::OK);
}

/// With a TTL of 0 tokens never expire, as in DRF; the login body is Djoser's exactly.
#[tokio::test]
async fn a_zero_ttl_means_never_and_the_login_body_is_djosers() {
    let app = TestApp::spawn_with(|s| s.tokens.ttl = Duration::ZERO).await;
    app.register("alice", PASSWORD).await;
    let reply = app.login("alice", PASSWORD).await;
    let body: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&reply.text).expect("json");
    assert_eq!(body.keys().collect::<Vec<_>>(), ["auth_token"]);
    assert_eq!(
        app.count("auth_token WHERE expires_at IS NULL").await,
        1,
        "no expiry"
    );
}

async fn login_from(app: &TestApp, device: Option<&str>, agent: &str) -> String {
    let mut body = json!({"username": "alice", "password": PASSWORD});
    if let Some(device) = device {
        body["device_name"] = json!(device);
    }
    let reply = app
        .send(
            app.request(Method::POST, "/token/login/")
                .header("User-Agent", agent)
                .json(&body),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json()["auth_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

fn is_iso_utc(value: &serde_json::Value) -> bool {
    value.as_str().is_some_and(|text| {
        text.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(text).is_ok()
    })
}

/// Each login is a session: listed for its owner only, with its name, times and `current`.
#[tokio::test]
async fn sessions_are_listed_for_their_owner() {
    let app = TestApp::spawn().await;
    app.register("alice", PASSWORD).await;
    let phone = login_from(&app, Some("  Alice's phone  "), "okhttp/4.12").await;
    let laptop = login_from(&app, None, &format!("Mozilla/5.0 {}", "x".repeat(100))).await;
    let (_, bob) = app.create_user("bob").await;

    let listed = app
        .call(Method::GET, "/token/sessions/", &phone, None)
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    listed.assert_media_json();
    let sessions = listed.json();
    let sessions = sessions.as_array().expect("a list");
    assert_eq!(sessions.len(), 2, "bob's is not listed: {sessions:?}");
    assert_eq!(sessions[0]["name"], "Alice's phone");
    assert_eq!(sessions[0]["current"], true);
    let laptop_name = sessions[1]["name"].as_str().expect("name");
    assert!(laptop_name.starts_with("Mozilla/5.0 ") && laptop_name.chars().count() == 64);
    assert_eq!(sessions[1]["current"], false);
    for session in sessions {
        let keys: Vec<&str> = session
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 7, "{session}");
        assert_eq!(session["kind"], "token");
        assert!(is_iso_utc(&session["created"]), "{session}");
        assert!(is_iso_utc(&session["expires"]), "{session}");
        assert!(
            session["last_used"].is_null() || is_iso_utc(&session["last_used"]),
            "{session}"
        );
        assert!(session["id"].as_str().is_some_and(|id| id.len() >= 16));
    }
    let without_slash = app
        .call(Method::GET, "/token/sessions", &laptop, None)
        .await;
    assert_eq!(
        without_slash.status,
        StatusCode::OK,
        "the slash is optional"
    );
    assert_eq!(without_slash.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert_eq!(
        app.call(Method::GET, "/token/sessions/", &bob, None)
            .await
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    app.send(app.request(Method::GET, "/token/sessions/"))
        .await
        .assert(
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Authentication credentials were not provided."}),
        );
}

/// Ending one session kills its token only; another user's session is not found.
#[tokio::test]
async fn one_session_ends_and_others_stay() {
    let app = TestApp::spawn().await;
    let (_, phone) = app.create_user("alice").await;
    let laptop = app.token_for("alice", PASSWORD).await;
    let (_, bob) = app.create_user("bob").await;
    assert_eq!(me(&app, &laptop).await.status, StatusCode::OK, "cached");
    let sessions = app
        .call(Method::GET, "/token/sessions/", &phone, None)
        .await
        .json();
    let laptop_id = sessions[1]["id"].as_str().expect("id").to_owned();

    app.call(
        Method::DELETE,
        &format!("/token/sessions/{laptop_id}/"),
        &bob,
        None,
    )
    .await
    .assert(StatusCode::NOT_FOUND, json!({"detail": "Not found."}));
    app.call(Method::DELETE, "/token/sessions/nonexistent/", &phone, None)
        .await
        .assert(StatusCode::NOT_FOUND, json!({"detail": "Not found."}));
    assert_eq!(me(&app, &laptop).await.status, StatusCode::OK, "untouched");

    let ended = app
        .call(
            Method::DELETE,
            &format!("/token/sessions/{laptop_id}"),
            &phone,
            None,
        )
        .await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT, "{}", ended.text);
    assert!(ended.text.is_empty());
    assert_invalid(&me(&app, &laptop).await);
    assert_eq!(me(&app, &phone).await.status, StatusCode::OK);
    app.call(Method::POST, "/token/sessions/", &phone, None)
        .await
        .assert(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"detail": "Method \"POST\" not allowed."}),
        );
}

/// knox's logoutall ends every session of the caller, and only theirs.
#[tokio::test]
async fn logoutall_ends_every_session_of_the_caller() {
    let app = TestApp::spawn().await;
    let (_, first) = app.create_user("alice").await;
    let second = app.token_for("alice", PASSWORD).await;
    let (_, bob) = app.create_user("bob").await;
    for token in [&first, &second, &bob] {
        assert_eq!(me(&app, token).await.status, StatusCode::OK);
    }
    let reply = app
        .call(Method::POST, "/token/logoutall/", &first, None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    assert_invalid(&me(&app, &first).await);
    assert_invalid(&me(&app, &second).await);
    assert_eq!(me(&app, &bob).await.status, StatusCode::OK);
    app.post_json("/token/logoutall", json!({}), None)
        .await
        .assert(
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Authentication credentials were not provided."}),
        );
}

/// set_password keeps the caller's session and ends the others; logout ends only the caller's.
#[tokio::test]
async fn set_password_and_logout_work_on_sessions() {
    let app = TestApp::spawn().await;
    let (_, kept) = app.create_user("alice").await;
    let other = app.token_for("alice", PASSWORD).await;
    let changed = app
        .call(
            Method::POST,
            "/users/set_password/",
            &kept,
            Some(json!({"new_password": "another fine secret", "current_password": PASSWORD})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.text);
    assert_invalid(&me(&app, &other).await);
    assert_eq!(me(&app, &kept).await.status, StatusCode::OK);
    assert_eq!(app.count("auth_session").await, 1);
    app.call(Method::POST, "/token/logout/", &kept, None).await;
    assert_eq!(app.count("auth_session").await, 0);
}

/// At the limit, `evict_oldest` ends the oldest session; 20 concurrent logins never leave
/// more than the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_session_limit_evicts_the_oldest_even_under_concurrency() {
    // Twenty logins at once are twenty attempts in flight: more than the failure limit admits.
    let app = TestApp::spawn_with(|s| {
        s.tokens.limit_per_user = 3;
        s.throttling.failures = FailureLimits::OFF;
    })
    .await;
    let (_, oldest) = app.create_user("alice").await;
    let _second = app.token_for("alice", PASSWORD).await;
    let _third = app.token_for("alice", PASSWORD).await;
    assert_eq!(me(&app, &oldest).await.status, StatusCode::OK, "cached");
    let newest = app.token_for("alice", PASSWORD).await;
    assert_invalid(&me(&app, &oldest).await);
    assert_eq!(me(&app, &newest).await.status, StatusCode::OK);

    let replies = futures::future::join_all((0..20).map(|_| app.login("alice", PASSWORD))).await;
    assert!(
        replies.iter().all(|r| r.status == StatusCode::OK),
        "{replies:#?}"
    );
    assert_eq!(app.count("auth_session").await, 3);
    let app = &app;
    let alive = futures::future::join_all(replies.iter().map(|r| {
        let token = r.json()["auth_token"].as_str().expect("token").to_owned();
        async move { me(app, &token).await.status == StatusCode::OK }
    }))
    .await;
    assert_eq!(alive.iter().filter(|ok| **ok).count(), 3);
}

/// With `deny`, a login over the limit gets knox's 403 and changes nothing; under
/// concurrency, exactly as many logins as the limit succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_session_limit_can_deny_instead() {
    let app = TestApp::spawn_with(|s| {
        s.tokens.limit_per_user = 2;
        s.tokens.limit_policy = authd::config::LimitPolicy::Deny;
        s.throttling.failures = FailureLimits::OFF;
    })
    .await;
    app.register("alice", PASSWORD).await;
    let replies = futures::future::join_all((0..20).map(|_| app.login("alice", PASSWORD))).await;
    let granted = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(granted, 2, "{replies:#?}");
    for refused in replies.iter().filter(|r| r.status != StatusCode::OK) {
        refused.assert(
            StatusCode::FORBIDDEN,
            json!({"detail": "Maximum amount of tokens allowed per user exceeded."}),
        );
    }
    assert_eq!(app.count("auth_session").await, 2);
    assert_eq!(app.count("auth_token").await, 2);
}

/// A session's last use is written in the background (at most once a minute), not on the
/// request path; the list shows it.
#[tokio::test]
async fn the_last_use_is_written_in_the_background() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("alice").await;
    assert_eq!(
        app.count("auth_session WHERE last_used IS NOT NULL").await,
        0
    );
    assert_eq!(me(&app, &token).await.status, StatusCode::OK);
    let started = std::time::Instant::now();
    loop {
        let sessions = app
            .call(Method::GET, "/token/sessions/", &token, None)
            .await
            .json();
        if is_iso_utc(&sessions[0]["last_used"]) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never written: {sessions}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Last uses are written a thousand sessions a statement (a flush of 2,500 spans three), each
/// to its own session, never moving one back: a use queued later than the one being written
/// stays.
#[tokio::test]
async fn last_uses_are_written_in_batches_and_never_backwards() {
    use authd::store::entity::auth_session::{Entity, SessionKind};
    use authd::store::sessions::{NewSession, insert, touch_many};
    use chrono::{DurationRound, TimeDelta, Utc};
    use sea_orm::EntityTrait;

    let app = TestApp::spawn().await;
    let (user_id, _) = app.create_user("alice").await;
    let mut ids = Vec::new();
    for index in 0..2500 {
        let session = insert(
            app.db(),
            NewSession {
                public_id: format!("batch-{index}"),
                user_id,
                kind: SessionKind::Token,
                client_id: None,
                name: "batch".into(),
                client_ip: None,
                expires_at: None,
                scope: None,
            },
        )
        .await
        .expect("a session");
        ids.push(session.id);
    }
    let now = Utc::now()
        .duration_trunc(TimeDelta::seconds(1))
        .expect("truncated");
    let later = now + TimeDelta::hours(1);
    let (first_half, _) = ids.split_at(1250);
    let later_uses: Vec<_> = first_half.iter().map(|id| (*id, later)).collect();
    touch_many(app.db(), &later_uses).await.expect("written");
    let uses: Vec<_> = ids.iter().map(|id| (*id, now)).collect();
    touch_many(app.db(), &uses).await.expect("written");
    touch_many(app.db(), &[]).await.expect("nothing to write");

    let sessions = Entity::find().all(app.db()).await.expect("sessions");
    let batch: Vec<_> = sessions.iter().filter(|s| s.name == "batch").collect();
    assert_eq!(batch.len(), 2500);
    for session in batch {
        let expected = if first_half.contains(&session.id) {
            later
        } else {
            now
        };
        assert_eq!(session.last_used, Some(expected), "session {}", session.id);
    }
}
