use reqwest::{Method, StatusCode};
use serde_json::json;

use tokio::io::AsyncWriteExt;

use crate::helpers::{PASSWORD, TestApp};
use crate::wire::{connect, read_response};

#[tokio::test]
async fn missing_slash_redirects_for_every_method_keeping_the_query() {
    let app = TestApp::spawn().await;
    for method in [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ] {
        let reply = app.send(app.request(method.clone(), "/users/me?x=1")).await;
        assert_eq!(reply.status, StatusCode::MOVED_PERMANENTLY, "{method}");
        assert_eq!(reply.header("location"), Some("/users/me/?x=1"));
    }
    let reply = app
        .send(
            app.request(Method::POST, "/users")
                .json(&json!({"username": "a", "password": PASSWORD})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(reply.header("location"), Some("/users/"));
    assert_eq!(app.count("auth_user").await, 0);
}

/// The slash redirect never leaves this host: leading slashes and backslashes, which a browser
/// reads as the start of another host's address, collapse to one slash (`//users/me` used to
/// redirect to `//users/me/`, which is the host `users`). A path that names another host is
/// simply unknown here.
#[tokio::test]
async fn the_slash_redirect_stays_on_this_host() {
    let app = TestApp::spawn().await;
    for (path, expected) in [
        ("//users/me", Some("/users/me/")),
        ("///users/me?x=1", Some("/users/me/?x=1")),
        ("//evil.example/users/me", None),
        ("/\\evil.example/users/me", None),
        ("/\\/users/me", None),
    ] {
        let mut stream = connect(&app).await;
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: authd\r\n\r\n").as_bytes())
            .await
            .expect("request");
        let answer = read_response(&mut stream).await.expect("answered");
        let location = answer.header("location");
        match expected {
            Some(local) => assert_eq!((answer.status, location), (301, Some(local)), "{path}"),
            None => assert!(
                matches!(answer.status, 400 | 404) && location.is_none(),
                "{path}: {} {location:?}",
                answer.status
            ),
        }
    }
}

#[tokio::test]
async fn unknown_urls_are_json_404s() {
    let app = TestApp::spawn().await;
    for path in ["/nothing/", "/users/me.json", "/users/1/extra/", "/"] {
        app.send(app.request(Method::GET, path))
            .await
            .assert(StatusCode::NOT_FOUND, json!({"detail": "Not found."}));
    }
}

#[tokio::test]
async fn method_not_allowed_follows_drfs_permission_first_rule() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("alice").await;
    let anon = |method, path| app.send(app.request(method, path));
    anon(Method::PUT, "/users/").await.assert(
        StatusCode::UNAUTHORIZED,
        json!({"detail": "Authentication credentials were not provided."}),
    );
    app.call(Method::PUT, "/users/", &token, None).await.assert(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"detail": "Method \"PUT\" not allowed."}),
    );
    anon(Method::GET, "/token/login/").await.assert(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"detail": "Method \"GET\" not allowed."}),
    );
    app.call(Method::GET, "/token/login/", &token, None)
        .await
        .assert(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"detail": "Method \"GET\" not allowed."}),
        );
    anon(Method::GET, "/token/logout/").await.assert(
        StatusCode::UNAUTHORIZED,
        json!({"detail": "Authentication credentials were not provided."}),
    );
    app.call(Method::GET, "/token/logout/", &token, None)
        .await
        .assert(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"detail": "Method \"GET\" not allowed."}),
        );
    let reply = app
        .call(Method::GET, "/users/set_password/", &token, None)
        .await;
    reply.assert(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"detail": "Method \"GET\" not allowed."}),
    );
    assert_eq!(reply.header("allow"), Some("POST, OPTIONS"));
    app.call(Method::POST, "/users/me/", &token, None)
        .await
        .assert(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"detail": "Method \"POST\" not allowed."}),
        );
}

#[tokio::test]
async fn every_api_response_carries_allow_and_vary() {
    let app = TestApp::spawn().await;
    let cases = [
        ("/users/", "GET, POST, HEAD, OPTIONS"),
        ("/users/me/", "GET, PUT, PATCH, DELETE, HEAD, OPTIONS"),
        ("/users/7/", "GET, PUT, PATCH, DELETE, HEAD, OPTIONS"),
        ("/users/set_password/", "POST, OPTIONS"),
        ("/users/set_username/", "POST, OPTIONS"),
        ("/token/login/", "POST, OPTIONS"),
        ("/token/logout/", "POST, OPTIONS"),
    ];
    for (path, allow) in cases {
        let error = app.send(app.request(Method::GET, path)).await;
        assert_eq!(error.header("allow"), Some(allow), "{path}");
        assert_eq!(error.header("vary"), Some("Accept"), "{path}");
        let options = app
            .send(
                app.request(Method::OPTIONS, path)
                    .header("Authorization", "Token invalid"),
            )
            .await;
        assert_eq!(
            options.status,
            StatusCode::OK,
            "OPTIONS needs no authentication: {path}"
        );
        assert_eq!(options.header("allow"), Some(allow));
        assert!(options.text.is_empty());
    }
}

#[tokio::test]
async fn unacceptable_accept_header_is_406() {
    let app = TestApp::spawn().await;
    app.send(
        app.request(Method::POST, "/token/login/")
            .header("Accept", "application/xml")
            .json(&json!({})),
    )
    .await
    .assert(
        StatusCode::NOT_ACCEPTABLE,
        json!({"detail": "Could not satisfy the request Accept header."}),
    );
    let ok = app
        .send(
            app.request(Method::POST, "/token/login/")
                .header("Accept", "application/json; q=0.9, */*")
                .json(&json!({})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn health_endpoints() {
    let app = TestApp::spawn().await;
    app.send(app.request(Method::GET, "/healthz"))
        .await
        .assert(StatusCode::OK, json!({"status": "ok"}));
    app.send(app.request(Method::GET, "/readyz")).await.assert(
        StatusCode::OK,
        json!({"status": "ok", "database": "ok", "redis": "off"}),
    );
}

#[tokio::test]
async fn the_prefix_moves_every_route_docs_included() {
    let app = TestApp::spawn_with(|s| s.url_prefix = "/auth".into()).await;
    assert_eq!(
        app.register("alice", PASSWORD).await.status,
        StatusCode::CREATED
    );
    let token = app.token_for("alice", PASSWORD).await;
    assert_eq!(
        app.call(Method::GET, "/users/me/", &token, None)
            .await
            .status,
        StatusCode::OK
    );
    let redirect = app.send(app.request(Method::GET, "/users")).await;
    assert_eq!(redirect.header("location"), Some("/auth/users/"));
    for path in ["/healthz", "/docs", "/openapi.json", "/openapi.yaml"] {
        assert_eq!(
            app.send(app.request(Method::GET, path)).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
    let spec = app
        .send(app.request(Method::GET, "/openapi.json"))
        .await
        .json();
    assert_eq!(spec["servers"], json!([{"url": "/auth"}]));
    let outside = app
        .send(app.client.get(format!("{}/users/", app.address)))
        .await;
    outside.assert(StatusCode::NOT_FOUND, json!({"detail": "Not found."}));
    let docs_outside = app
        .send(app.client.get(format!("{}/docs", app.address)))
        .await;
    assert_eq!(docs_outside.status, StatusCode::NOT_FOUND);
}
