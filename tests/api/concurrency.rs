use authd::throttle::FailureLimits;
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

/// A stream of logins with the old password races a password change. Every token they got
/// must die with the change (none may be minted after it), and no rehash of the old password
/// may overwrite the new one: afterwards the new password logs in and the old one does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_racing_a_password_change_never_outlive_it() {
    const NEW_PASSWORD: &str = "a brand new passphrase";
    let app = TestApp::spawn_with(|s| s.throttling.failures = FailureLimits::OFF).await;
    let (id, session) = app.create_user("alice").await;
    // An outdated hash makes every login rehash, so a rehash races the change too.
    let outdated = authd::crypto::PasswordHasher::new(
        authd::crypto::HashCost {
            memory_kib: 8192,
            iterations: 5,
            parallelism: 1,
        },
        1,
    )
    .expect("pool")
    .admit()
    .expect("room")
    .hash(PASSWORD.to_owned())
    .await
    .expect("hash");
    app.exec(&format!(
        "UPDATE auth_user SET password = '{outdated}' WHERE id = {id}"
    ))
    .await;

    let logins = (0..24).map(|index| {
        let app = &app;
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(10 * index)).await;
            let reply = app.login("alice", PASSWORD).await;
            match reply.status {
                StatusCode::OK => Some(
                    reply.json()["auth_token"]
                        .as_str()
                        .expect("token")
                        .to_owned(),
                ),
                StatusCode::BAD_REQUEST => None,
                other => panic!("{other}: {}", reply.text),
            }
        }
    });
    let change = async {
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        let reply = app
            .call(
                reqwest::Method::POST,
                "/users/set_password/",
                &session,
                Some(json!({"new_password": NEW_PASSWORD, "current_password": PASSWORD})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    };
    let (tokens, ()) = futures::future::join(futures::future::join_all(logins), change).await;
    let tokens: Vec<String> = tokens.into_iter().flatten().collect();
    for token in &tokens {
        app.call(reqwest::Method::GET, "/users/me/", token, None)
            .await
            .assert(
                StatusCode::UNAUTHORIZED,
                json!({"detail": "Invalid token."}),
            );
    }
    assert_eq!(
        app.login("alice", NEW_PASSWORD).await.status,
        StatusCode::OK,
        "the new password works ({} logins got a token)",
        tokens.len()
    );
    assert_eq!(
        app.login("alice", PASSWORD).await.status,
        StatusCode::BAD_REQUEST
    );
}
