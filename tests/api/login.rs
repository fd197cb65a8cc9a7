use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

const INVALID: &str = "Unable to log in with provided credentials.";

#[tokio::test]
async fn every_login_mints_a_new_token_and_only_its_digest_is_stored() {
    let app = TestApp::spawn().await;
    app.register("alice", PASSWORD).await;
    let first = app.token_for("alice", PASSWORD).await;
    let second = app.token_for("alice", PASSWORD).await;
    assert_ne!(first, second);
    assert!(
        first.starts_with("authd_") && first.len() >= 6 + 43,
        "{first}"
    );
    assert_eq!(app.count("auth_token").await, 2);
    let dump = format!("{:?}", app.snapshot().await);
    assert!(
        !dump.contains(&first) && !dump.contains(&first["authd_".len()..]),
        "the token itself is never stored"
    );
    assert!(dump.contains(&authd::crypto::token_digest(&first)));
    let user = authd::store::users::find_by_id(app.db(), 1)
        .await
        .expect("query")
        .expect("user");
    assert!(user.last_login.is_some());
}

#[tokio::test]
async fn login_failures_all_look_alike() {
    let app = TestApp::spawn().await;
    let (id, _) = app.create_user("alice").await;
    app.create_user("carol").await;
    app.deactivate(id).await;
    let before = app.snapshot().await;
    for body in [
        json!({"username": "alice", "password": PASSWORD}),
        json!({"username": "carol", "password": "wrong password"}),
        json!({"username": "nobody", "password": PASSWORD}),
        json!({}),
        json!({"username": "carol"}),
        json!({"username": 12, "password": 34}),
        json!({"username": "carol", "password": "x".repeat(5000)}),
    ] {
        app.post_json("/token/login/", body, None).await.assert(
            StatusCode::BAD_REQUEST,
            json!({"non_field_errors": [INVALID]}),
        );
    }
    assert_eq!(app.snapshot().await, before, "failed logins change nothing");
}

#[tokio::test]
async fn login_field_errors_use_drf_messages_password_first() {
    let app = TestApp::spawn().await;
    app.post_json("/token/login/", json!({"username": "", "password": null}), None).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"password": ["This field may not be null."], "username": ["This field may not be blank."]}),
    );
    app.post_json(
        "/token/login/",
        json!({"username": ["x"], "password": {"a": 1}}),
        None,
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({"password": ["Not a valid string."], "username": ["Not a valid string."]}),
    );
    app.post_json(
        "/token/login/",
        json!({"username": "a\u{0}", "password": "p"}),
        None,
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({"username": ["Null characters are not allowed."]}),
    );
}

#[tokio::test]
async fn passwords_and_usernames_are_trimmed_as_drf_does() {
    let app = TestApp::spawn().await;
    app.register("alice", &format!("  {PASSWORD}\n")).await;
    assert_eq!(app.login(" alice ", PASSWORD).await.status, StatusCode::OK);
}

#[tokio::test]
async fn login_works_with_form_multipart_and_without_the_slash() {
    let app = TestApp::spawn().await;
    app.register("alice", PASSWORD).await;
    let form = app
        .send(
            app.request(Method::POST, "/token/login/")
                .form(&[("username", "alice"), ("password", PASSWORD)]),
        )
        .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    let multipart = reqwest::multipart::Form::new()
        .text("username", "alice")
        .text("password", PASSWORD);
    let reply = app
        .send(
            app.request(Method::POST, "/token/login")
                .multipart(multipart),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.json()["auth_token"].as_str().is_some());
}

#[tokio::test]
async fn a_valid_token_of_someone_else_is_ignored_by_login() {
    let app = TestApp::spawn().await;
    let (_, alice_token) = app.create_user("alice").await;
    app.create_user("bob").await;
    let reply = app
        .post_json(
            "/token/login/",
            json!({"username": "bob", "password": PASSWORD}),
            Some(&alice_token),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let bob_token = reply.json()["auth_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let me = app.call(Method::GET, "/users/me/", &bob_token, None).await;
    assert_eq!(me.json()["username"], "bob");
}

#[tokio::test]
async fn outdated_hashes_are_upgraded_on_login() {
    let app = TestApp::spawn().await;
    app.register("alice", PASSWORD).await;
    let cheap = {
        let hasher = authd::crypto::PasswordHasher::new(
            authd::crypto::HashCost {
                memory_kib: 8192,
                iterations: 5,
                parallelism: 1,
            },
            1,
        )
        .expect("pool");
        hasher
            .admit()
            .expect("room")
            .hash(PASSWORD.to_owned())
            .await
            .expect("hash")
    };
    app.exec(&format!(
        "UPDATE auth_user SET password = '{cheap}' WHERE id = 1"
    ))
    .await;
    app.token_for("alice", PASSWORD).await;
    let user = authd::store::users::credentials(app.db(), 1)
        .await
        .expect("query")
        .expect("user");
    assert!(
        user.password_hash.contains("m=19456,t=2,p=1"),
        "{}",
        user.password_hash
    );
    app.token_for("alice", PASSWORD).await;
}
