//! `/readyz` as a load balancer uses it: an answer within its own one-second deadline, 503
//! only when the database itself cannot be reached (a busy pool is not down), and 503 from
//! the moment shutdown begins, so balancers drain the instance first.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use sea_orm::TransactionTrait;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::helpers::TestApp;
use crate::wire::{CLOSE_MARGIN, closed_within, connect, read_response};

/// Every pooled connection is taken (here, the only one, by a transaction): requests that
/// need the pool wait for it, but the instance is not down, and readiness answers at once on
/// its own connection. (It used to wait the database timeout in the pool's queue, then 503.)
#[tokio::test]
async fn a_busy_pool_is_not_unreadiness() {
    let app = TestApp::spawn_with(|s| {
        s.database_max_connections = 1;
        s.database_timeout = Duration::from_secs(5);
    })
    .await;
    let transaction = app.db().begin().await.expect("the pool's only connection");
    let started = Instant::now();
    app.send(app.request(Method::GET, "/readyz"))
        .await
        .assert(StatusCode::OK, json!({"status": "ok"}));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    transaction.rollback().await.expect("rollback");
}

/// A probe whose request began before shutdown and ends after it hears 503 (and its
/// connection closes after the answer); new connections are no longer accepted; the server
/// then stops.
#[tokio::test]
async fn readiness_says_503_once_shutdown_begins() {
    let (app, stop, served) = TestApp::spawn_stoppable(|_| {}).await;
    app.send(app.request(Method::GET, "/readyz"))
        .await
        .assert(StatusCode::OK, json!({"status": "ok"}));
    let mut probe = connect(&app).await;
    probe
        .write_all(b"GET /readyz HTTP/1.1\r\n")
        .await
        .expect("the request's first line");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).expect("the server is running");
    tokio::time::sleep(Duration::from_millis(200)).await;
    probe
        .write_all(b"Host: authd\r\n\r\n")
        .await
        .expect("the rest of the request");
    let answer = read_response(&mut probe).await.expect("answered");
    assert_eq!(
        (answer.status, answer.json()),
        (503, json!({"status": "shutting down"}))
    );
    assert!(closed_within(&mut probe, CLOSE_MARGIN).await);
    assert!(
        tokio::net::TcpStream::connect(crate::wire::socket_address(&app))
            .await
            .is_err(),
        "no new connections during shutdown"
    );
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("the server stops")
        .expect("the task")
        .expect("served");
}
