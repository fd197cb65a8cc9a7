//! DRF's request-rate throttles (`AUTHD_THROTTLE_ANON`, `AUTHD_THROTTLE_USER`): after
//! authentication and permissions on every DRF route, in memory per instance or in Redis
//! across instances, and unthrottled while Redis is away.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use authd::config::Settings;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{
    PASSWORD, Reply, TestApp, assert_throttled, behind_proxy, free_port, rate, redis_url, unique_id,
};

/// An anonymous request every anonymous caller may make, and that hashes nothing.
async fn anonymous(app: &TestApp, ip: &str) -> Reply {
    app.send(
        app.request(Method::POST, "/users/reset_password/")
            .header("X-Forwarded-For", ip)
            .json(&json!({"email": "nobody@example.com"})),
    )
    .await
}

async fn me(app: &TestApp, token: &str) -> StatusCode {
    app.call(Method::GET, "/users/me/", token, None)
        .await
        .status
}

/// Users made before the throttles are on (on a sibling instance with them off), so making
/// them does not spend the rate under test.
async fn with_users(configure: impl FnOnce(&mut Settings)) -> (TestApp, String, String) {
    let setup = TestApp::spawn_with(behind_proxy).await;
    let (_, alice) = setup.create_user("alice").await;
    let (_, bob) = setup.create_user("bob").await;
    let mut settings = (*setup.state.settings).clone();
    configure(&mut settings);
    (setup.sibling_with(settings).await, alice, bob)
}

/// The anonymous rate counts anonymous callers by address on every DRF route, login included,
/// once DRF's permission check has passed: a 401 is not counted. OPTIONS, health and OAuth2
/// are exempt; authenticated callers are not anonymous.
#[tokio::test]
async fn the_anonymous_rate_counts_addresses_after_authentication_and_permissions() {
    let (app, alice, _) = with_users(|s| s.throttling.anon = rate("3/minute")).await;
    for _ in 0..5 {
        let refused = app
            .send(
                app.request(Method::GET, "/users/me/")
                    .header("X-Forwarded-For", "203.0.113.9"),
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);
    }
    for _ in 0..3 {
        let reply = anonymous(&app, "203.0.113.9").await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    }
    assert_throttled(&anonymous(&app, "203.0.113.9").await, 60);
    let login = app
        .send(
            app.request(Method::POST, "/token/login/")
                .header("X-Forwarded-For", "203.0.113.9")
                .json(&json!({"username": "alice", "password": PASSWORD})),
        )
        .await;
    assert_throttled(&login, 60);
    let options = app
        .send(
            app.request(Method::OPTIONS, "/users/reset_password/")
                .header("X-Forwarded-For", "203.0.113.9"),
        )
        .await;
    assert_eq!(options.status, StatusCode::OK);
    for path in ["/healthz", "/readyz", "/docs"] {
        let reply = app
            .send(
                app.request(Method::GET, path)
                    .header("X-Forwarded-For", "203.0.113.9"),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
    let oauth = app
        .send(
            app.request(Method::POST, "/oauth/token")
                .header("X-Forwarded-For", "203.0.113.9")
                .form(&[("grant_type", "password"), ("username", "alice")]),
        )
        .await;
    assert_eq!(oauth.status, StatusCode::BAD_REQUEST, "{}", oauth.text);
    let elsewhere = anonymous(&app, "203.0.113.10").await;
    assert_eq!(elsewhere.status, StatusCode::NO_CONTENT);
    let user = app
        .send(
            app.request(Method::GET, "/users/me/")
                .header("X-Forwarded-For", "203.0.113.9")
                .header("Authorization", format!("Token {alice}")),
        )
        .await;
    assert_eq!(user.status, StatusCode::OK, "users are not anonymous");
}

/// The user rate counts users by id, whichever token they use, and anonymous callers by
/// address; one user's requests do not spend another's.
#[tokio::test]
async fn the_user_rate_counts_users_by_id() {
    let (app, alice, bob) = with_users(|s| s.throttling.user = rate("3/m")).await;
    let second = app.token_for("alice", PASSWORD).await;
    assert_eq!(me(&app, &alice).await, StatusCode::OK);
    assert_eq!(me(&app, &second).await, StatusCode::OK);
    assert_eq!(me(&app, &alice).await, StatusCode::OK);
    assert_throttled(&app.call(Method::GET, "/users/me/", &alice, None).await, 60);
    assert_eq!(me(&app, &second).await, StatusCode::TOO_MANY_REQUESTS);
    let unmapped = app.call(Method::PUT, "/token/login/", &alice, None).await;
    assert_throttled(&unmapped, 60);
    for _ in 0..3 {
        assert_eq!(me(&app, &bob).await, StatusCode::OK);
    }
    for _ in 0..3 {
        assert_eq!(
            anonymous(&app, "198.51.100.3").await.status,
            StatusCode::NO_CONTENT
        );
    }
    assert_throttled(&anonymous(&app, "198.51.100.3").await, 60);
}

/// With both rates, an anonymous caller is counted by both and waits for the longer. Each
/// rate decides alone, as in DRF: a request one refuses is still counted by the other. The
/// wait is DRF's: until a place is free.
#[tokio::test]
async fn both_rates_count_and_the_wait_is_drfs() {
    let app = TestApp::spawn_with(|s| {
        behind_proxy(s);
        s.throttling.anon = rate("1/2s");
        s.throttling.user = rate("2/m");
    })
    .await;
    let ip = "192.0.2.44";
    assert_eq!(anonymous(&app, ip).await.status, StatusCode::NO_CONTENT);
    let wait = assert_throttled(&anonymous(&app, ip).await, 2);
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let wait = assert_throttled(&anonymous(&app, ip).await, 60);
    assert!(
        wait > 2,
        "refused by the user rate alone, for longer: {wait}"
    );
}

/// Without Redis each instance counts alone; with it, instances share one count.
#[tokio::test]
async fn redis_shares_the_rates_across_instances() {
    let Some(url) = redis_url("sharing rates across instances") else {
        return;
    };
    let prefix = format!("authd-test-{}:", unique_id());
    let (first, alice, _) = with_users(|s| {
        s.throttling.user = rate("4/m");
        s.throttling.redis_url = Some(authd::config::DatabaseUrl::new(url));
        s.throttling.redis_prefix = prefix.clone();
    })
    .await;
    let second = first.sibling().await;
    for index in 0..4 {
        let app = if index % 2 == 0 { &first } else { &second };
        assert_eq!(me(app, &alice).await, StatusCode::OK);
    }
    assert_throttled(
        &first.call(Method::GET, "/users/me/", &alice, None).await,
        60,
    );
    assert_throttled(
        &second.call(Method::GET, "/users/me/", &alice, None).await,
        60,
    );

    let mut alone = (*first.state.settings).clone();
    alone.throttling.redis_url = None;
    let third = first.sibling_with(alone).await;
    assert_eq!(
        me(&third, &alice).await,
        StatusCode::OK,
        "in memory: its own count"
    );
}

/// A Redis of the test's own, stopped mid-test: requests go on unthrottled and quickly, a
/// Redis that hangs costs at most its timeout, and once Redis is back (after the 5 s pause,
/// and a connection made beside the requests) the rate holds again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_go_on_while_redis_is_away() {
    let Some(mut redis) = PrivateRedis::start() else {
        return;
    };
    let (app, alice, _) = with_users(|s| {
        s.throttling.user = rate("3/m");
        s.throttling.redis_url = Some(authd::config::DatabaseUrl::new(redis.url()));
    })
    .await;
    for _ in 0..3 {
        assert_eq!(me(&app, &alice).await, StatusCode::OK);
    }
    assert_throttled(&app.call(Method::GET, "/users/me/", &alice, None).await, 60);

    redis.pause();
    let started = Instant::now();
    assert_eq!(
        me(&app, &alice).await,
        StatusCode::OK,
        "a hung Redis is passed by"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    redis.stop();
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(me(&app, &alice).await, StatusCode::OK, "unthrottled");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    let redis = PrivateRedis::start_on(redis.port).expect("Redis starts again");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        me(&app, &alice).await,
        StatusCode::OK,
        "goes on while a new connection is made beside it"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..3 {
        assert_eq!(me(&app, &alice).await, StatusCode::OK);
    }
    assert_throttled(&app.call(Method::GET, "/users/me/", &alice, None).await, 60);
    drop(redis);
}

/// `redis-server` on a free port, keeping nothing on disk, killed when dropped.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start() -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("skipped: needs redis-server on PATH to stop a Redis of its own");
            return None;
        }
        Self::start_on(free_port())
    }

    fn start_on(port: u16) -> Option<Self> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server listens"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self {
            port,
            child: Some(child),
        })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGSTOP: it keeps its connections but answers nothing.
    fn pause(&self) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) };
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
