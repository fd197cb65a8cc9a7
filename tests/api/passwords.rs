use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

const NEW_PASSWORD: &str = "a completely different secret";

#[tokio::test]
async fn set_password_keeps_the_token_in_use_and_revokes_the_others() {
    let app = TestApp::spawn().await;
    let (_, phone) = app.create_user("alice").await;
    let laptop = app.token_for("alice", PASSWORD).await;
    assert_eq!(
        app.call(Method::GET, "/users/me/", &laptop, None)
            .await
            .status,
        StatusCode::OK,
        "now cached"
    );
    let reply = app
        .call(
            Method::POST,
            "/users/set_password/",
            &phone,
            Some(json!({"new_password": NEW_PASSWORD, "current_password": PASSWORD})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    assert_eq!(
        app.call(Method::GET, "/users/me/", &phone, None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.call(Method::GET, "/users/me/", &laptop, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("alice", PASSWORD).await.status,
        StatusCode::BAD_REQUEST
    );
    app.token_for("alice", NEW_PASSWORD).await;
}

#[tokio::test]
async fn logout_on_password_change_revokes_every_token() {
    let app = TestApp::spawn_with(|s| s.djoser.logout_on_password_change = true).await;
    let (_, token) = app.create_user("alice").await;
    app.token_for("alice", PASSWORD).await;
    let reply = app
        .call(
            Method::POST,
            "/users/set_password/",
            &token,
            Some(json!({"new_password": NEW_PASSWORD, "current_password": PASSWORD})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(app.count("auth_token").await, 0);
    app.call(Method::GET, "/users/me/", &token, None)
        .await
        .assert(
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Invalid token."}),
        );
}

#[tokio::test]
async fn set_password_checks_in_djoser_order() {
    let app = TestApp::spawn_with(|s| s.djoser.set_password_retype = true).await;
    let (_, token) = app.create_user("alice").await;
    let before = app.snapshot().await;
    let post = |body| app.call(Method::POST, "/users/set_password/", &token, Some(body));
    post(json!({})).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"new_password": ["This field is required."], "re_new_password": ["This field is required."], "current_password": ["This field is required."]}),
    );
    post(json!({"new_password": "", "re_new_password": "x", "current_password": "wrong"})).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"new_password": ["This field may not be blank."], "current_password": ["Invalid password."]}),
    );
    post(json!({"new_password": "alice", "re_new_password": "zzz", "current_password": PASSWORD}))
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({"new_password": [
                "The password is too similar to the username.",
                "This password is too short. It must contain at least 8 characters.",
                "This password is too common."
            ]}),
        );
    post(json!({"new_password": NEW_PASSWORD, "re_new_password": "zzz", "current_password": PASSWORD}))
        .await
        .assert(StatusCode::BAD_REQUEST, json!({"non_field_errors": ["The two password fields didn't match."]}));
    post(json!({"new_password": "x".repeat(4097), "re_new_password": "x", "current_password": PASSWORD}))
        .await
        .assert(StatusCode::BAD_REQUEST, json!({"new_password": ["Ensure this field has no more than 4096 characters."]}));
    assert_eq!(app.snapshot().await, before);
    let ok = post(json!({"new_password": NEW_PASSWORD, "re_new_password": NEW_PASSWORD, "current_password": PASSWORD})).await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn set_username_follows_djoser() {
    let app = TestApp::spawn_with(|s| s.djoser.set_username_retype = true).await;
    let (id, token) = app.create_user("alice").await;
    app.create_user("bob").await;
    let before = app.snapshot().await;
    let post = |body| app.call(Method::POST, "/users/set_username/", &token, Some(body));
    post(json!({"username": "carol", "current_password": PASSWORD}))
        .await
        .assert(StatusCode::BAD_REQUEST, json!({"new_username": ["This field is required."], "re_new_username": ["This field is required."]}));
    post(json!({"new_username": "$ wrong username #", "re_new_username": "x", "current_password": "nope"})).await.assert(
        StatusCode::BAD_REQUEST,
        json!({
            "current_password": ["Invalid password."],
            "new_username": ["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."]
        }),
    );
    for taken in ["alice", "BOB"] {
        post(
            json!({"new_username": taken, "re_new_username": taken, "current_password": PASSWORD}),
        )
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({"new_username": ["A user with that username already exists."]}),
        );
    }
    post(
        json!({"new_username": "carol", "re_new_username": "caro1", "current_password": PASSWORD}),
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({"non_field_errors": ["The two username fields didn't match."]}),
    );
    assert_eq!(app.snapshot().await, before);
    let ok = post(
        json!({"new_username": "Carol", "re_new_username": "Carol", "current_password": PASSWORD}),
    )
    .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT, "{}", ok.text);
    app.call(Method::GET, "/users/me/", &token, None)
        .await
        .assert(
            StatusCode::OK,
            json!({"email": "", "id": id, "username": "Carol"}),
        );
    assert_eq!(app.login("carol", PASSWORD).await.status, StatusCode::OK);
    assert_eq!(
        app.login("alice", PASSWORD).await.status,
        StatusCode::BAD_REQUEST
    );
}
