//! CORS for single-page apps on the origins the operator allows, and for no other.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

const APP: &str = "https://app.example.com";

async fn spawn() -> TestApp {
    TestApp::spawn_with(|s| s.cors_allowed_origins = vec![APP.into()]).await
}

#[tokio::test]
async fn an_allowed_origin_gets_cors_headers_on_requests_and_preflights() {
    let app = spawn().await;
    let (_, token) = app.create_user("alice").await;
    for path in [
        "/users/me/",
        "/token/login/",
        "/token/sessions/",
        "/oauth/token",
    ] {
        let preflight = app
            .send(
                app.request(Method::OPTIONS, path)
                    .header("Origin", APP)
                    .header("Access-Control-Request-Method", "POST")
                    .header(
                        "Access-Control-Request-Headers",
                        "authorization, content-type",
                    ),
            )
            .await;
        assert_eq!(preflight.status, StatusCode::OK, "{path}");
        assert_eq!(
            preflight.header("access-control-allow-origin"),
            Some(APP),
            "{path}"
        );
        let allowed = preflight
            .header("access-control-allow-headers")
            .unwrap_or_default();
        assert!(
            allowed.contains("authorization")
                && allowed.contains("x-api-key")
                && allowed.contains("content-type"),
            "{path}"
        );
        assert!(
            preflight
                .header("access-control-allow-methods")
                .is_some_and(|m| m.contains("POST"))
        );
    }
    let me = app
        .send(
            app.request(Method::GET, "/users/me/")
                .header("Origin", APP)
                .header("Authorization", format!("Token {token}")),
        )
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.header("access-control-allow-origin"), Some(APP));
    assert!(
        me.header("vary")
            .is_some_and(|v| v.contains("Origin") && v.contains("Accept"))
    );
    let refused = app
        .send(
            app.request(Method::POST, "/token/login/")
                .header("Origin", APP)
                .json(&json!({"username": "alice", "password": "wrong"})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        refused.header("access-control-allow-origin"),
        Some(APP),
        "errors too"
    );
    let token_endpoint = app
        .send(
            app.request(Method::POST, "/oauth/token")
                .header("Origin", APP)
                .form(&[
                    ("grant_type", "password"),
                    ("username", "alice"),
                    ("password", PASSWORD),
                ]),
        )
        .await;
    assert_eq!(token_endpoint.status, StatusCode::OK);
    assert_eq!(
        token_endpoint.header("access-control-allow-origin"),
        Some(APP)
    );
}

#[tokio::test]
async fn another_origin_gets_no_cors_headers_and_is_not_refused() {
    let app = spawn().await;
    let (_, token) = app.create_user("alice").await;
    for origin in [
        "https://evil.example.org",
        "https://app.example.com:8443",
        "http://app.example.com",
    ] {
        let preflight = app
            .send(
                app.request(Method::OPTIONS, "/users/me/")
                    .header("Origin", origin)
                    .header("Access-Control-Request-Method", "GET"),
            )
            .await;
        assert!(
            preflight.header("access-control-allow-origin").is_none(),
            "{origin}"
        );
        let me = app
            .send(
                app.request(Method::GET, "/users/me/")
                    .header("Origin", origin)
                    .header("Authorization", format!("Token {token}")),
            )
            .await;
        assert_eq!(
            me.status,
            StatusCode::OK,
            "a non-browser client still works"
        );
        assert!(
            me.header("access-control-allow-origin").is_none(),
            "{origin}"
        );
    }
}

#[tokio::test]
async fn without_allowed_origins_nothing_changes() {
    let app = TestApp::spawn().await;
    let reply = app
        .send(
            app.request(Method::OPTIONS, "/users/")
                .header("Origin", APP)
                .header("Access-Control-Request-Method", "POST"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header("access-control-allow-origin").is_none());
    assert_eq!(reply.header("vary"), Some("Accept"));
}
