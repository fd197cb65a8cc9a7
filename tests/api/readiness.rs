//! `/readyz` as a load balancer uses it: an answer within its own one-second deadline, 503
//! only when the database itself cannot be reached (a busy pool is not down), and 503 from
//! the moment shutdown begins, so balancers drain the instance first.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use sea_orm::TransactionTrait;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::helpers::{TestApp, free_port, rate, redis_url, unique_id};
use crate::wire::{CLOSE_MARGIN, closed_within, connect, read_response};

/// Ready, with no Redis configured.
fn ready() -> serde_json::Value {
    json!({"status": "ok", "database": "ok", "redis": "off"})
}

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
        .assert(StatusCode::OK, ready());
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
        .assert(StatusCode::OK, ready());
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
        (
            503,
            json!({"status": "unavailable", "database": "ok", "redis": "off", "shutting_down": true})
        )
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

/// Redis only shares the request-rate throttles, which go on without it: a Redis that is down
/// is named, but the instance stays ready (503 would pull every instance out of the balancer
/// at once for an outage their requests survive). Without rates, Redis is not used: `off`.
#[tokio::test]
async fn readiness_names_a_redis_that_is_down_and_stays_ready() {
    let nobody = format!("redis://127.0.0.1:{}", free_port());
    let down = TestApp::spawn_with(|s| {
        s.throttling.user = rate("100/m");
        s.throttling.redis_url = Some(authd::config::DatabaseUrl::new(nobody.clone()));
    })
    .await;
    let started = Instant::now();
    down.send(down.request(Method::GET, "/readyz"))
        .await
        .assert(
            StatusCode::OK,
            json!({"status": "ok", "database": "ok", "redis": "down"}),
        );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let unused = TestApp::spawn_with(|s| {
        s.throttling.redis_url = Some(authd::config::DatabaseUrl::new(nobody));
    })
    .await;
    unused
        .send(unused.request(Method::GET, "/readyz"))
        .await
        .assert(StatusCode::OK, ready());
}

#[tokio::test]
async fn readiness_says_redis_answers() {
    let Some(url) = redis_url("readiness with Redis") else {
        return;
    };
    let app = TestApp::spawn_with(|s| {
        s.throttling.anon = rate("100/m");
        s.throttling.redis_url = Some(authd::config::DatabaseUrl::new(url));
        s.throttling.redis_prefix = format!("authd-test-{}:", unique_id());
    })
    .await;
    app.send(app.request(Method::GET, "/readyz")).await.assert(
        StatusCode::OK,
        json!({"status": "ok", "database": "ok", "redis": "ok"}),
    );
}
