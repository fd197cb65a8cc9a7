use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

const NOT_FOUND: &str = "Not found.";
const NO_MATCH: &str = "No User matches the given query.";
const DENIED: &str = "You do not have permission to perform this action.";
const ANON: &str = "Authentication credentials were not provided.";

#[tokio::test]
async fn me_shows_the_caller_and_head_is_empty() {
    let app = TestApp::spawn().await;
    let (id, token) = app.create_user("alice").await;
    let reply = app.call(Method::GET, "/users/me/", &token, None).await;
    reply.assert(
        StatusCode::OK,
        json!({"email": "", "id": id, "username": "alice"}),
    );
    reply.assert_media_json();
    let keys: Vec<String> = reply
        .json()
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, ["email", "id", "username"]);
    let head = app.call(Method::HEAD, "/users/me/", &token, None).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.text.is_empty());
    app.send(app.request(Method::GET, "/users/me/"))
        .await
        .assert(StatusCode::UNAUTHORIZED, json!({"detail": ANON}));
}

#[tokio::test]
async fn list_follows_hide_users() {
    let app = TestApp::spawn().await;
    let (alice, alice_token) = app.create_user("alice").await;
    let (bob, _) = app.create_user("bob").await;
    app.call(Method::GET, "/users/", &alice_token, None)
        .await
        .assert(
            StatusCode::OK,
            json!([{"email": "", "id": alice, "username": "alice"}]),
        );
    app.make_staff(bob).await;
    let bob_token = app.token_for("bob", PASSWORD).await;
    let all = app.call(Method::GET, "/users/", &bob_token, None).await;
    assert_eq!(all.json().as_array().map(Vec::len), Some(2));
    app.send(app.request(Method::GET, "/users/"))
        .await
        .assert(StatusCode::UNAUTHORIZED, json!({"detail": ANON}));

    let open = TestApp::spawn_with(|s| s.djoser.hide_users = false).await;
    let (_, token) = open.create_user("alice").await;
    open.create_user("bob").await;
    assert_eq!(
        open.call(Method::GET, "/users/", &token, None)
            .await
            .json()
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn detail_matrix_with_hide_users() {
    let app = TestApp::spawn().await;
    let (alice, alice_token) = app.create_user("alice").await;
    let (bob, bob_token) = app.create_user("bob").await;
    let (staff, _) = app.create_user("staff").await;
    app.make_staff(staff).await;
    let staff_token = app.token_for("staff", PASSWORD).await;
    let bob_path = format!("/users/{bob}/");
    let before = app.snapshot().await;

    app.send(app.request(Method::GET, &bob_path))
        .await
        .assert(StatusCode::UNAUTHORIZED, json!({"detail": ANON}));
    app.send(app.request(Method::GET, "/users/9999/"))
        .await
        .assert(StatusCode::UNAUTHORIZED, json!({"detail": ANON}));
    app.send(app.request(Method::GET, "/users/abc/"))
        .await
        .assert(StatusCode::UNAUTHORIZED, json!({"detail": ANON}));
    app.call(Method::GET, &bob_path, &alice_token, None)
        .await
        .assert(StatusCode::NOT_FOUND, json!({"detail": NOT_FOUND}));
    app.call(
        Method::PUT,
        &bob_path,
        &alice_token,
        Some(json!({"email": "x@example.com"})),
    )
    .await
    .assert(StatusCode::NOT_FOUND, json!({"detail": NOT_FOUND}));
    app.call(
        Method::PATCH,
        &bob_path,
        &alice_token,
        Some(json!({"email": "x@example.com"})),
    )
    .await
    .assert(StatusCode::NOT_FOUND, json!({"detail": NOT_FOUND}));
    app.call(
        Method::DELETE,
        &bob_path,
        &alice_token,
        Some(json!({"current_password": PASSWORD})),
    )
    .await
    .assert(StatusCode::FORBIDDEN, json!({"detail": DENIED}));
    app.call(Method::GET, "/users/9999/", &alice_token, None)
        .await
        .assert(StatusCode::NOT_FOUND, json!({"detail": NO_MATCH}));
    app.call(Method::GET, "/users/abc/", &alice_token, None)
        .await
        .assert(StatusCode::NOT_FOUND, json!({"detail": NOT_FOUND}));
    assert_eq!(app.snapshot().await, before);

    app.call(Method::GET, &format!("/users/{alice}/"), &alice_token, None)
        .await
        .assert(
            StatusCode::OK,
            json!({"email": "", "id": alice, "username": "alice"}),
        );
    app.call(Method::GET, &bob_path, &staff_token, None)
        .await
        .assert(
            StatusCode::OK,
            json!({"email": "", "id": bob, "username": "bob"}),
        );
    app.call(
        Method::PATCH,
        &bob_path,
        &staff_token,
        Some(json!({"email": "bob@example.com"})),
    )
    .await
    .assert(
        StatusCode::OK,
        json!({"email": "bob@example.com", "id": bob, "username": "bob"}),
    );
    let deleted = app
        .call(
            Method::DELETE,
            &bob_path,
            &staff_token,
            Some(json!({"current_password": PASSWORD})),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    app.call(Method::GET, "/users/me/", &bob_token, None)
        .await
        .assert(
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Invalid token."}),
        );
}

#[tokio::test]
async fn without_hide_users_others_are_forbidden() {
    let app = TestApp::spawn_with(|s| s.djoser.hide_users = false).await;
    let (_, alice_token) = app.create_user("alice").await;
    let (bob, _) = app.create_user("bob").await;
    let bob_path = format!("/users/{bob}/");
    app.call(Method::GET, &bob_path, &alice_token, None)
        .await
        .assert(StatusCode::FORBIDDEN, json!({"detail": DENIED}));
    app.call(
        Method::PUT,
        &bob_path,
        &alice_token,
        Some(json!({"email": "x@example.com"})),
    )
    .await
    .assert(StatusCode::FORBIDDEN, json!({"detail": DENIED}));
}

/// Djoser's own test (`test_user_me.py`, `test_user_detail.py`), so with Djoser's rule: no
/// password for an email change.
#[tokio::test]
async fn update_changes_only_the_email() {
    let app = TestApp::spawn_with(|s| s.email_change_requires_password = false).await;
    let (id, token) = app.create_user("alice").await;
    app.call(
        Method::PATCH,
        "/users/me/",
        &token,
        Some(
            json!({"email": "Alice@EXAMPLE.com", "username": "mallory", "id": 7, "password": "x"}),
        ),
    )
    .await
    .assert(
        StatusCode::OK,
        json!({"email": "Alice@EXAMPLE.com", "id": id, "username": "alice"}),
    );
    app.call(Method::PUT, "/users/me/", &token, Some(json!({})))
        .await
        .assert(
            StatusCode::OK,
            json!({"email": "Alice@EXAMPLE.com", "id": id, "username": "alice"}),
        );
    let before = app.snapshot().await;
    for (email, message) in [
        (json!("not-an-email"), "Enter a valid email address."),
        (json!(null), "This field may not be null."),
        (json!(12), "Enter a valid email address."),
        (
            json!(format!("{}@example.com", "a".repeat(250))),
            "Ensure this field has no more than 254 characters.",
        ),
    ] {
        let reply = app
            .call(
                Method::PUT,
                &format!("/users/{id}/"),
                &token,
                Some(json!({"email": email})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
        assert_eq!(reply.json()["email"][0], message, "{}", reply.text);
    }
    assert_eq!(app.snapshot().await, before);
    app.call(
        Method::PATCH,
        "/users/me/",
        &token,
        Some(json!({"email": ""})),
    )
    .await
    .assert(
        StatusCode::OK,
        json!({"email": "", "id": id, "username": "alice"}),
    );
}

#[tokio::test]
async fn delete_checks_the_callers_password() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("alice").await;
    let before = app.snapshot().await;
    app.call(Method::DELETE, "/users/me/", &token, Some(json!({})))
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({"current_password": ["This field is required."]}),
        );
    app.call(
        Method::DELETE,
        "/users/me/",
        &token,
        Some(json!({"current_password": "wrong"})),
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({"current_password": ["Invalid password."]}),
    );
    assert_eq!(app.snapshot().await, before);
    let reply = app
        .call(
            Method::DELETE,
            "/users/me/",
            &token,
            Some(json!({"current_password": PASSWORD})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(app.count("auth_user").await, 0);
    assert_eq!(
        app.count("auth_token").await,
        0,
        "the cascade removes the tokens"
    );
}

#[tokio::test]
async fn a_non_staff_cannot_delete_others_even_with_the_right_password() {
    let app = TestApp::spawn_with(|s| s.djoser.hide_users = false).await;
    let (_, alice_token) = app.create_user("alice").await;
    let (bob, _) = app.create_user("bob").await;
    app.call(
        Method::DELETE,
        &format!("/users/{bob}/"),
        &alice_token,
        Some(json!({"current_password": PASSWORD})),
    )
    .await
    .assert(StatusCode::FORBIDDEN, json!({"detail": DENIED}));
    assert_eq!(app.count("auth_user").await, 2);
}
