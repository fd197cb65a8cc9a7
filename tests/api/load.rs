//! Load shedding: the password hashing queue is bounded and waiting has a deadline. A request
//! that finds no place, or would wait longer than the queue timeout, gets DRF's 503 at once;
//! a burst the hash threads clear in time is served whole.

use std::time::Duration;

use authd::throttle::FailureLimits;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

const UNAVAILABLE: &str = "Service temporarily unavailable, try again later.";

/// With one place in the hashing queue, a burst of logins gets 503s with DRF's body and
/// `Retry-After` for those that find it taken, and 200s for the others; nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_hashing_queue_answers_503_at_once() {
    let app = TestApp::spawn_with(|s| {
        s.hashing.threads = 1;
        s.hashing.queue_limit = Some(1);
        s.throttling.failures = FailureLimits::OFF;
    })
    .await;
    app.register("alice", PASSWORD).await;
    let replies = futures::future::join_all((0..12).map(|_| app.login("alice", PASSWORD))).await;
    let shed: Vec<_> = replies
        .iter()
        .filter(|r| r.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert!(ok >= 1 && !shed.is_empty(), "{replies:#?}");
    assert_eq!(ok + shed.len(), replies.len(), "{replies:#?}");
    for reply in shed {
        reply.assert(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"detail": UNAVAILABLE}),
        );
        assert_eq!(reply.header("retry-after"), Some("1"));
        reply.assert_media_json();
    }
}

/// 40 simultaneous sign-ups on one hash thread: the queue (64 places a thread by default) takes
/// them all, and the wait each can expect is far below the queue timeout, so all are served.
/// (The queue used to hold 16 a thread, and shed the rest of such a burst.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_the_threads_clear_in_time_is_served_whole() {
    let app = TestApp::spawn_with(|s| {
        s.hashing.threads = 1;
        s.hashing.queue_timeout = Duration::from_secs(30);
    })
    .await;
    let replies = futures::future::join_all((0..40).map(|index| {
        let app = &app;
        async move { app.register(&format!("user{index}"), PASSWORD).await }
    }))
    .await;
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }
    assert_eq!(app.count("auth_user").await, 40);
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
