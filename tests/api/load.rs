//! Load shedding: the password hashing queue is bounded and waiting has a deadline; past
//! either, endpoints that hash answer at once with DRF's 503, before reading the body.

use std::time::Duration;

use authd::throttle::FailureLimits;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

const UNAVAILABLE: &str = "Service temporarily unavailable, try again later.";

/// A login body that arrives in two halves, the second when `release` fires.
fn stalled_login(release: tokio::sync::oneshot::Receiver<()>) -> reqwest::Body {
    let body =
        serde_json::to_vec(&json!({"username": "alice", "password": PASSWORD})).expect("json");
    let (first, second) = body.split_at(10);
    let (first, second) = (first.to_vec(), second.to_vec());
    let stream = futures::stream::unfold(
        (Some(first), Some(second), Some(release)),
        |state| async move {
            match state {
                (Some(first), second, release) => {
                    Some((Ok::<_, std::io::Error>(first), (None, second, release)))
                }
                (None, Some(second), Some(release)) => {
                    let _ = release.await;
                    Some((Ok(second), (None, None, None)))
                }
                _ => None,
            }
        },
    );
    reqwest::Body::wrap_stream(stream)
}

/// With room for one request in the hashing queue, a login whose body is still arriving holds
/// it: the next login is refused at once with 503 and `Retry-After`, without its body being
/// waited for, and the first one then succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_hashing_queue_answers_503_before_reading_the_body() {
    let app = TestApp::spawn_with(|s| {
        s.hashing.threads = 1;
        s.hashing.queue_limit = Some(1);
    })
    .await;
    app.register("alice", PASSWORD).await;
    let (release, released) = tokio::sync::oneshot::channel();
    let slow = app.send(
        app.request(reqwest::Method::POST, "/token/login/")
            .header("Content-Type", "application/json")
            .body(stalled_login(released)),
    );
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (_never, stalled) = tokio::sync::oneshot::channel();
        let refused = tokio::time::timeout(
            Duration::from_secs(5),
            app.send(
                app.request(reqwest::Method::POST, "/token/login/")
                    .header("Content-Type", "application/json")
                    .body(stalled_login(stalled)),
            ),
        )
        .await
        .expect("answered without waiting for the body");
        refused.assert(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"detail": UNAVAILABLE}),
        );
        assert_eq!(refused.header("retry-after"), Some("1"));
        refused.assert_media_json();
        for path in ["/users/", "/users/reset_password_confirm/"] {
            let reply = app.post_json(path, json!({}), None).await;
            assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        }
        release.send(()).expect("the slow login is waiting");
    };
    let (slow, ()) = futures::future::join(slow, meanwhile).await;
    assert_eq!(slow.status, StatusCode::OK, "{}", slow.text);
    assert_eq!(
        app.login("alice", PASSWORD).await.status,
        StatusCode::OK,
        "room again"
    );
}

/// With one hash thread and a short deadline, a burst of logins gets some 200s and, for those
/// that would have waited longer, 503s; nothing hangs and nothing else fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_for_a_hash_thread_has_a_deadline() {
    let app = TestApp::spawn_with(|s| {
        s.hashing.threads = 1;
        s.hashing.queue_limit = Some(100);
        s.hashing.queue_timeout = Duration::from_millis(20);
        s.throttling.failures = FailureLimits::OFF;
    })
    .await;
    app.register("alice", PASSWORD).await;
    let replies = futures::future::join_all((0..16).map(|_| app.login("alice", PASSWORD))).await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let shed: Vec<_> = replies
        .iter()
        .filter(|r| r.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(ok >= 1, "{replies:#?}");
    assert!(
        !shed.is_empty(),
        "16 logins on one thread cannot all start within 20 ms"
    );
    assert_eq!(ok + shed.len(), replies.len(), "{replies:#?}");
    for reply in shed {
        reply.assert(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"detail": UNAVAILABLE}),
        );
        assert_eq!(reply.header("retry-after"), Some("1"));
    }
}
