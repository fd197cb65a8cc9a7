use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

/// N simultaneous sign-ups for one name (in several spellings): exactly one wins, the others
/// get djoser's 400 (field error, or the bare list when they lost at the unique index).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_of_one_name_make_one_account() {
    let app = TestApp::spawn().await;
    let spellings = [
        "racer",
        "RACER",
        "Racer",
        "ｒａｃｅｒ",
        "rAcEr",
        "racer",
        "RACER",
        "Racer",
    ];
    let replies = futures::future::join_all(spellings.iter().map(|name| {
        app.post_json(
            "/users/",
            json!({"username": name, "password": PASSWORD}),
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
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
        let body = reply.json();
        assert!(
            body == json!({"username": ["A user with that username already exists."]})
                || body == json!(["Unable to create account."]),
            "{body}"
        );
    }
    assert_eq!(app.count("auth_user").await, 1);
}

/// Guarded reads keep working while logins and password changes write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_and_writes_interleave_without_errors() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("alice").await;
    let reads = (0..40).map(|_| async {
        let reply = app
            .call(reqwest::Method::GET, "/users/me/", &token, None)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    });
    let writes = (0..6).map(|_| async {
        let reply = app.login("alice", PASSWORD).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    });
    futures::future::join(
        futures::future::join_all(reads),
        futures::future::join_all(writes),
    )
    .await;
    assert_eq!(app.count("auth_token").await, 7);
}
