//! AUTHD_REGISTER_CONFLICT_STATUS: a sign-up refused only because its username or email is
//! taken answers 409 with the body Djoser's 400 has; anything else keeps Djoser's answers.

use authd::config::{ConflictStatus, LoginField};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

const USERNAME_TAKEN: &str = "A user with that username already exists.";
const EMAIL_TAKEN: &str = "user with this email address already exists.";

async fn spawn_409() -> TestApp {
    TestApp::spawn_with(|s| s.register_conflict_status = ConflictStatus::Conflict).await
}

#[tokio::test]
async fn a_taken_username_answers_409_with_the_body_of_the_400() {
    let app = spawn_409().await;
    assert_eq!(
        app.register("alice", PASSWORD).await.status,
        StatusCode::CREATED
    );
    let reply = app.register("ALICE", PASSWORD).await;
    reply.assert(StatusCode::CONFLICT, json!({"username": [USERNAME_TAKEN]}));
    reply.assert_media_json();
    assert_eq!(app.count("auth_user").await, 1);
}

#[tokio::test]
async fn by_default_a_taken_username_keeps_djosers_400() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("alice", PASSWORD).await.status,
        StatusCode::CREATED
    );
    app.register("alice", PASSWORD).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"username": [USERNAME_TAKEN]}),
    );
}

#[tokio::test]
async fn a_taken_email_answers_409_where_emails_are_unique() {
    let app = TestApp::spawn_with(|s| {
        s.register_conflict_status = ConflictStatus::Conflict;
        s.djoser.login_field = LoginField::Email;
    })
    .await;
    let sign_up = |username: &'static str, email: &'static str| {
        app.post_json(
            "/users/",
            json!({"username": username, "email": email, "password": PASSWORD}),
            None,
        )
    };
    let first = sign_up("alice", "alice@example.com").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    sign_up("bob", "ALICE@example.COM")
        .await
        .assert(StatusCode::CONFLICT, json!({"email": [EMAIL_TAKEN]}));
    // Both taken: still only uniqueness.
    sign_up("alice", "alice@example.com").await.assert(
        StatusCode::CONFLICT,
        json!({"email": [EMAIL_TAKEN], "username": [USERNAME_TAKEN]}),
    );
    assert_eq!(app.count("auth_user").await, 1);
}

#[tokio::test]
async fn a_taken_username_beside_another_error_keeps_the_400_with_every_error() {
    let app = spawn_409().await;
    assert_eq!(
        app.register("alice", PASSWORD).await.status,
        StatusCode::CREATED
    );
    app.post_json(
        "/users/",
        json!({"username": "alice", "password": ""}),
        None,
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({
            "password": ["This field may not be blank."],
            "username": [USERNAME_TAKEN],
        }),
    );
    app.post_json(
        "/users/",
        json!({"username": "alice", "email": "not an address", "password": PASSWORD}),
        None,
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({
            "email": ["Enter a valid email address."],
            "username": [USERNAME_TAKEN],
        }),
    );
    assert_eq!(app.count("auth_user").await, 1);
}

/// N simultaneous identical sign-ups: one account, and every loser a 409, whether it saw the
/// name taken or lost at the unique index (then with Djoser's bare list).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_sign_ups_make_one_account_and_only_conflicts() {
    let app = spawn_409().await;
    let replies = futures::future::join_all((0..8).map(|_| {
        app.post_json(
            "/users/",
            json!({"username": "racer", "password": PASSWORD}),
            None,
        )
    }))
    .await;
    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{replies:#?}");
    for reply in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
        let body = reply.json();
        assert!(
            body == json!({"username": [USERNAME_TAKEN]})
                || body == json!(["Unable to create account."]),
            "{body}"
        );
    }
    assert_eq!(app.count("auth_user").await, 1);
}

/// Only registration conflicts: renaming onto a taken name keeps Djoser's 400.
#[tokio::test]
async fn set_username_onto_a_taken_name_keeps_the_400() {
    let app = spawn_409().await;
    let (_, token) = app.create_user("alice").await;
    app.create_user("bob").await;
    app.call(
        reqwest::Method::POST,
        "/users/set_username/",
        &token,
        Some(json!({"new_username": "BOB", "current_password": PASSWORD})),
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({"new_username": [USERNAME_TAKEN]}),
    );
}
