use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

async fn me_with_header(app: &TestApp, value: HeaderValue) -> crate::helpers::Reply {
    app.send(
        app.request(Method::GET, "/users/me/")
            .header("Authorization", value),
    )
    .await
}

#[tokio::test]
async fn header_rules_follow_drf_exactly() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("alice").await;
    let cases: Vec<(Vec<u8>, StatusCode, Option<&str>)> = vec![
        (
            b"Token".to_vec(),
            StatusCode::UNAUTHORIZED,
            Some("Invalid token header. No credentials provided."),
        ),
        (
            b"Token ".to_vec(),
            StatusCode::UNAUTHORIZED,
            Some("Invalid token header. No credentials provided."),
        ),
        (
            b"Token a b".to_vec(),
            StatusCode::UNAUTHORIZED,
            Some("Invalid token header. Token string should not contain spaces."),
        ),
        (
            b"Token \xe9t\xe9".to_vec(),
            StatusCode::UNAUTHORIZED,
            Some("Invalid token header. Token string should not contain invalid characters."),
        ),
        (
            b"Token \xb8".to_vec(),
            StatusCode::UNAUTHORIZED,
            Some("Invalid token header. Token string should not contain invalid characters."),
        ),
        (
            "Token é".as_bytes().to_vec(),
            StatusCode::UNAUTHORIZED,
            Some("Invalid token."),
        ),
        (
            b"Token nope".to_vec(),
            StatusCode::UNAUTHORIZED,
            Some("Invalid token."),
        ),
        (
            format!("Token {}", token.to_uppercase()).into_bytes(),
            StatusCode::UNAUTHORIZED,
            Some("Invalid token."),
        ),
        (
            format!("Token {token}x").into_bytes(),
            StatusCode::UNAUTHORIZED,
            Some("Invalid token."),
        ),
        (
            b"Basic YWxpY2U6cHc=".to_vec(),
            StatusCode::UNAUTHORIZED,
            Some("Authentication credentials were not provided."),
        ),
        (
            b"Tokenx abc".to_vec(),
            StatusCode::UNAUTHORIZED,
            Some("Authentication credentials were not provided."),
        ),
        (format!("token {token}").into_bytes(), StatusCode::OK, None),
        (format!("TOKEN\t{token}").into_bytes(), StatusCode::OK, None),
        (
            format!("Token  {token}  ").into_bytes(),
            StatusCode::OK,
            None,
        ),
        (format!("Bearer {token}").into_bytes(), StatusCode::OK, None),
    ];
    for (raw, status, detail) in cases {
        let value = HeaderValue::from_bytes(&raw).expect("a header an HTTP client can send");
        let reply = me_with_header(&app, value).await;
        assert_eq!(
            reply.status,
            status,
            "{:?} → {}",
            String::from_utf8_lossy(&raw),
            reply.text
        );
        match detail {
            Some(detail) => {
                assert_eq!(
                    reply.json(),
                    json!({"detail": detail}),
                    "{:?}",
                    String::from_utf8_lossy(&raw)
                );
                assert_eq!(reply.header("www-authenticate"), Some("Token"));
            }
            None => assert_eq!(reply.json()["username"], "alice"),
        }
    }
}

#[tokio::test]
async fn a_bad_token_is_401_even_on_open_routes() {
    let app = TestApp::spawn().await;
    app.register("alice", PASSWORD).await;
    let before = app.snapshot().await;
    for path in ["/users/", "/token/login/", "/token/login"] {
        let reply = app
            .post_json(
                path,
                json!({"username": "zed", "password": PASSWORD}),
                Some("garbage"),
            )
            .await;
        reply.assert(
            reqwest::StatusCode::UNAUTHORIZED,
            json!({"detail": "Invalid token."}),
        );
        assert_eq!(reply.header("www-authenticate"), Some("Token"));
    }
    assert_eq!(
        app.snapshot().await,
        before,
        "rejected requests change nothing"
    );
    let basic = app
        .send(
            app.request(Method::POST, "/token/login/")
                .header("Authorization", "Basic eDp5")
                .json(&json!({"username": "alice", "password": PASSWORD})),
        )
        .await;
    assert_eq!(
        basic.status,
        StatusCode::OK,
        "another scheme leaves the request anonymous"
    );
    assert_eq!(app.count("auth_user").await, 1);
}

#[tokio::test]
async fn inactive_users_tokens_stop_working() {
    let app = TestApp::spawn().await;
    let (id, token) = app.create_user("alice").await;
    app.deactivate(id).await;
    app.call(Method::GET, "/users/me/", &token, None)
        .await
        .assert(
            StatusCode::UNAUTHORIZED,
            json!({"detail": "User inactive or deleted."}),
        );
}

#[tokio::test]
async fn logout_revokes_only_the_presented_token() {
    let app = TestApp::spawn().await;
    let (_, phone) = app.create_user("alice").await;
    let laptop = app.token_for("alice", PASSWORD).await;
    let reply = app.call(Method::POST, "/token/logout/", &phone, None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(reply.text.is_empty() && reply.header("content-type").is_none());
    app.call(Method::GET, "/users/me/", &phone, None)
        .await
        .assert(
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Invalid token."}),
        );
    assert_eq!(
        app.call(Method::GET, "/users/me/", &laptop, None)
            .await
            .status,
        StatusCode::OK
    );
    let without_slash = app.call(Method::POST, "/token/logout", &laptop, None).await;
    assert_eq!(without_slash.status, StatusCode::NO_CONTENT);
    assert_eq!(app.count("auth_token").await, 0);
}

#[tokio::test]
async fn logout_needs_a_token() {
    let app = TestApp::spawn().await;
    let reply = app.post_json("/token/logout/", json!({}), None).await;
    reply.assert(
        StatusCode::UNAUTHORIZED,
        json!({"detail": "Authentication credentials were not provided."}),
    );
    assert_eq!(reply.header("www-authenticate"), Some("Token"));
}

#[tokio::test]
async fn custom_keywords_change_the_challenge() {
    let app = TestApp::spawn_with(|s| s.token_keywords = vec!["Bearer".into()]).await;
    let (_, token) = app.create_user("alice").await;
    let reply = app.call(Method::GET, "/users/me/", &token, None).await;
    reply.assert(
        StatusCode::UNAUTHORIZED,
        json!({"detail": "Authentication credentials were not provided."}),
    );
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    let ok = app
        .send(app.request(Method::GET, "/users/me/").bearer_auth(&token))
        .await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn in_band_changes_reach_cached_tokens_at_once() {
    let app = TestApp::spawn().await;
    let (id, token) = app.create_user("alice").await;
    let other = app.token_for("alice", PASSWORD).await;
    for t in [&token, &other] {
        assert_eq!(
            app.call(Method::GET, "/users/me/", t, None).await.status,
            StatusCode::OK
        );
    }
    app.call(
        Method::PATCH,
        "/users/me/",
        &token,
        Some(json!({"email": "new@example.com", "current_password": PASSWORD})),
    )
    .await;
    app.call(Method::GET, "/users/me/", &other, None)
        .await
        .assert(
            StatusCode::OK,
            json!({"email": "new@example.com", "id": id, "username": "alice"}),
        );
    let deleted = app
        .call(
            Method::DELETE,
            "/users/me/",
            &token,
            Some(json!({"current_password": PASSWORD})),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    app.call(Method::GET, "/users/me/", &other, None)
        .await
        .assert(
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Invalid token."}),
        );
}

#[tokio::test]
async fn out_of_band_changes_show_within_the_cache_ttl() {
    let app = TestApp::spawn_with(|s| s.token_cache_ttl = std::time::Duration::from_secs(1)).await;
    let (id, token) = app.create_user("alice").await;
    assert_eq!(
        app.call(Method::GET, "/users/me/", &token, None)
            .await
            .status,
        StatusCode::OK
    );
    app.exec(&format!(
        "UPDATE auth_user SET is_active = false WHERE id = {id}"
    ))
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    app.call(Method::GET, "/users/me/", &token, None)
        .await
        .assert(
            StatusCode::UNAUTHORIZED,
            json!({"detail": "User inactive or deleted."}),
        );
}

#[tokio::test]
async fn without_the_cache_every_request_reads_the_database() {
    let app = TestApp::spawn_with(|s| s.token_cache_ttl = std::time::Duration::ZERO).await;
    let (id, token) = app.create_user("alice").await;
    assert_eq!(
        app.call(Method::GET, "/users/me/", &token, None)
            .await
            .status,
        StatusCode::OK
    );
    app.exec(&format!(
        "UPDATE auth_user SET is_active = false WHERE id = {id}"
    ))
    .await;
    assert_eq!(
        app.call(Method::GET, "/users/me/", &token, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

/// Two instances on one PostgreSQL database: a logout or password change on one reaches the
/// other's memory.
#[tokio::test]
async fn revocation_reaches_other_instances() {
    if !crate::helpers::on_postgres("instances share a database") {
        return;
    }
    let first = TestApp::spawn().await;
    let second = first.sibling().await;
    let (_, token) = first.create_user("alice").await;
    let other = first.token_for("alice", PASSWORD).await;
    let third = first.token_for("alice", PASSWORD).await;
    for t in [&token, &other, &third] {
        assert_eq!(
            second.call(Method::GET, "/users/me/", t, None).await.status,
            StatusCode::OK,
            "cached on the second"
        );
    }
    assert_eq!(
        first
            .call(Method::POST, "/token/logout/", &token, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let changed = first
        .call(
            Method::POST,
            "/users/set_password/",
            &other,
            Some(json!({"new_password": "another fine secret", "current_password": PASSWORD})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    let started = std::time::Instant::now();
    loop {
        let logged_out = second
            .call(Method::GET, "/users/me/", &token, None)
            .await
            .status
            == StatusCode::UNAUTHORIZED;
        let revoked = second
            .call(Method::GET, "/users/me/", &third, None)
            .await
            .status
            == StatusCode::UNAUTHORIZED;
        if logged_out && revoked {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "the second instance still trusts its memory"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        second
            .call(Method::GET, "/users/me/", &other, None)
            .await
            .status,
        StatusCode::OK,
        "the token in use survives"
    );
}

/// A token's first requests race its logout: a request that read the token from the database
/// before the logout committed must not put it in memory after the logout evicted it. Once
/// the logout is answered, the token is dead on every later request.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lookup_racing_a_logout_never_revives_the_token() {
    let app = TestApp::spawn().await;
    app.create_user("alice").await;
    for attempt in 0..40 {
        let token = app.token_for("alice", PASSWORD).await;
        let readers = (0..12).map(|_| app.call(Method::GET, "/users/me/", &token, None));
        let logout = async {
            tokio::task::yield_now().await;
            app.call(Method::POST, "/token/logout/", &token, None).await
        };
        let (_, logged_out) =
            futures::future::join(futures::future::join_all(readers), logout).await;
        assert_eq!(logged_out.status, StatusCode::NO_CONTENT);
        let after = app.call(Method::GET, "/users/me/", &token, None).await;
        assert_eq!(
            after.status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}: a stale cache entry outlived the logout"
        );
    }
}

/// Notifications sent while an instance's LISTEN connection is down are never heard: once
/// it listens again, it must drop everything it cached meanwhile.
#[tokio::test]
async fn an_instance_that_lost_its_notifications_forgets_once_it_listens_again() {
    if !crate::helpers::on_postgres("instances share a database") {
        return;
    }
    let first = TestApp::spawn().await;
    let second = first.sibling().await;
    let (_, token) = first.create_user("alice").await;
    let listening = "pg_stat_activity WHERE datname = current_database() \
                     AND application_name = 'authd cache listener'";
    let started = std::time::Instant::now();
    while first.count(listening).await < 2 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "both instances listen"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    first
        .exec(&format!(
            "SELECT pg_terminate_backend(pid) FROM {listening}"
        ))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Whether or not the second listens again yet (it reconnects at once), it caches the
    // token and the first logs it out.
    assert_eq!(
        second
            .call(Method::GET, "/users/me/", &token, None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        first
            .call(Method::POST, "/token/logout/", &token, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let started = std::time::Instant::now();
    while second
        .call(Method::GET, "/users/me/", &token, None)
        .await
        .status
        != StatusCode::UNAUTHORIZED
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(4),
            "the second instance kept a token it never heard was revoked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
