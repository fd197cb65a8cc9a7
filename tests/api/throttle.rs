//! Failed-password limits: per (client IP, account), per account and per client IP, in the
//! database, so they hold across instances; DRF's 429 body and `Retry-After`.

use std::time::{Duration, Instant};

use authd::throttle::FailureLimits;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, Reply, TestApp, assert_throttled, behind_proxy, rate};

const WRONG: &str = "not the password at all";

async fn login_from(app: &TestApp, ip: &str, username: &str, password: &str) -> Reply {
    app.send(
        app.request(Method::POST, "/token/login/")
            .header("X-Forwarded-For", ip)
            .json(&json!({ "username": username, "password": password })),
    )
    .await
}

#[track_caller]
fn assert_wrong(reply: &Reply) {
    reply.assert(
        StatusCode::BAD_REQUEST,
        json!({"non_field_errors": ["Unable to log in with provided credentials."]}),
    );
}

/// The defaults: the 11th attempt on one account from one address within 15 minutes is refused
/// even with the right password, for a known and an unknown account alike; field errors do not
/// count; another address still logs in.
#[tokio::test]
async fn ten_failures_per_address_and_account_then_429_even_for_the_right_password() {
    let app = TestApp::spawn_with(behind_proxy).await;
    app.register("alice", PASSWORD).await;
    for _ in 0..12 {
        let missing = app
            .send(
                app.request(Method::POST, "/token/login/")
                    .header("X-Forwarded-For", "203.0.113.7")
                    .json(&json!({ "username": "alice" })),
            )
            .await;
        assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{}", missing.text);
    }
    for account in ["alice", "nobody"] {
        for _ in 0..10 {
            assert_wrong(&login_from(&app, "203.0.113.7", account, WRONG).await);
        }
        let refused = login_from(&app, "203.0.113.7", account, PASSWORD).await;
        assert_throttled(&refused, 15 * 60);
        assert_throttled(
            &login_from(&app, "203.0.113.7", account, WRONG).await,
            15 * 60,
        );
    }
    assert_eq!(app.count("auth_session").await, 0, "no login got through");
    let elsewhere = login_from(&app, "198.51.100.4", "alice", PASSWORD).await;
    assert_eq!(elsewhere.status, StatusCode::OK, "{}", elsewhere.text);
    assert_eq!(
        login_from(&app, "203.0.113.7", "ALICE", PASSWORD)
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS,
        "the canonical login value is the key"
    );
}

/// `X-Forwarded-For` from a peer that is not a trusted proxy is the client's own say-so: it
/// moves nobody into a fresh bucket.
#[tokio::test]
async fn an_untrusted_forwarded_for_does_not_escape_the_limit() {
    let app = TestApp::spawn().await;
    app.register("alice", PASSWORD).await;
    for index in 0..10 {
        assert_wrong(&login_from(&app, &format!("192.0.2.{index}"), "alice", WRONG).await);
    }
    assert_throttled(
        &login_from(&app, "192.0.2.200", "alice", PASSWORD).await,
        900,
    );
    assert_throttled(&app.login("alice", PASSWORD).await, 900);
}

/// A successful login clears its (address, account) counter: nine more failures are allowed.
#[tokio::test]
async fn a_successful_login_clears_its_counter() {
    let app = TestApp::spawn().await;
    app.register("alice", PASSWORD).await;
    for _ in 0..9 {
        assert_wrong(&app.login("alice", WRONG).await);
    }
    assert_eq!(app.login("alice", PASSWORD).await.status, StatusCode::OK);
    for _ in 0..10 {
        assert_wrong(&app.login("alice", WRONG).await);
    }
    assert_throttled(&app.login("alice", WRONG).await, 900);
}

/// N is the seconds until an attempt would be admitted, rounded up, and refused attempts do
/// not count: once it has passed, the next attempt is checked.
#[tokio::test]
async fn retry_after_is_when_the_next_attempt_is_admitted() {
    let app = TestApp::spawn_with(|s| {
        s.throttling.failures = FailureLimits {
            per_ip_account: rate("2/3s"),
            ..FailureLimits::OFF
        }
    })
    .await;
    app.register("alice", PASSWORD).await;
    assert_wrong(&app.login("alice", WRONG).await);
    assert_wrong(&app.login("alice", WRONG).await);
    let mut wait = 0;
    for _ in 0..5 {
        wait = assert_throttled(&app.login("alice", PASSWORD).await, 3);
    }
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(app.login("alice", PASSWORD).await.status, StatusCode::OK);
}

/// The per-account cap holds against many addresses, a correct password from a new one
/// included: NIST's limit on guesses at one account.
#[tokio::test]
async fn the_per_account_cap_holds_across_addresses() {
    let app = TestApp::spawn_with(|s| {
        behind_proxy(s);
        s.throttling.failures.per_account = rate("5/h");
    })
    .await;
    app.register("alice", PASSWORD).await;
    app.register("bob", PASSWORD).await;
    for index in 0..5 {
        assert_wrong(&login_from(&app, &format!("198.51.100.{index}"), "alice", WRONG).await);
    }
    assert_throttled(
        &login_from(&app, "198.51.100.99", "alice", PASSWORD).await,
        3600,
    );
    let bob = login_from(&app, "198.51.100.99", "bob", PASSWORD).await;
    assert_eq!(bob.status, StatusCode::OK, "other accounts are not held");
}

/// The per-address cap holds across accounts (credential stuffing); other addresses go on.
#[tokio::test]
async fn the_per_address_cap_holds_across_accounts() {
    let app = TestApp::spawn_with(|s| {
        behind_proxy(s);
        s.throttling.failures.per_ip = rate("5/h");
    })
    .await;
    app.register("alice", PASSWORD).await;
    for index in 0..5 {
        assert_wrong(&login_from(&app, "203.0.113.50", &format!("user{index}"), WRONG).await);
    }
    assert_throttled(
        &login_from(&app, "203.0.113.50", "alice", PASSWORD).await,
        3600,
    );
    let elsewhere = login_from(&app, "203.0.113.51", "alice", PASSWORD).await;
    assert_eq!(elsewhere.status, StatusCode::OK, "{}", elsewhere.text);
}

/// IPv6 clients are one client per /64, which a host can otherwise rotate through freely.
#[tokio::test]
async fn ipv6_clients_are_keyed_by_their_64() {
    let app = TestApp::spawn_with(|s| {
        behind_proxy(s);
        s.throttling.failures.per_ip_account = rate("3/h");
    })
    .await;
    app.register("alice", PASSWORD).await;
    for host in [
        "2001:db8:1:2::1",
        "2001:db8:1:2::abcd",
        "2001:db8:1:2:ffff::9",
    ] {
        assert_wrong(&login_from(&app, host, "alice", WRONG).await);
    }
    assert_throttled(
        &login_from(&app, "2001:db8:1:2:1:2:3:4", "alice", PASSWORD).await,
        3600,
    );
    let next_net = login_from(&app, "2001:db8:1:3::1", "alice", PASSWORD).await;
    assert_eq!(next_net.status, StatusCode::OK, "{}", next_net.text);
}

/// Two instances on one database count together (on PostgreSQL: a scaled-out deployment).
#[tokio::test]
async fn the_limits_hold_across_instances() {
    let first = TestApp::spawn().await;
    let second = first.sibling().await;
    first.register("alice", PASSWORD).await;
    for index in 0..10 {
        let app = if index % 2 == 0 { &first } else { &second };
        assert_wrong(&app.login("alice", WRONG).await);
    }
    assert_throttled(&first.login("alice", PASSWORD).await, 900);
    assert_throttled(&second.login("alice", PASSWORD).await, 900);
}

/// Concurrent guesses cannot slip past the limit: attempts in flight count against each other,
/// so a burst gets at most the limit's worth of checks, and what it did not use stays available.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guesses_get_no_more_than_the_limit() {
    let app = TestApp::spawn().await;
    app.register("alice", PASSWORD).await;
    let replies = futures::future::join_all((0..30).map(|_| app.login("alice", WRONG))).await;
    let checked = replies
        .iter()
        .filter(|r| r.status == StatusCode::BAD_REQUEST)
        .count();
    let throttled = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(checked <= 10, "{checked} passwords checked");
    assert_eq!(checked + throttled, 30, "{replies:#?}");
    let mut more = 0;
    loop {
        let reply = app.login("alice", WRONG).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_wrong(&reply);
        more += 1;
    }
    assert_eq!(checked + more, 10, "the burst checked {checked}");
    assert_throttled(&app.login("alice", PASSWORD).await, 900);
}

/// A refused attempt costs no hash: with a slow hash, refusals answer in a fraction of one.
#[tokio::test]
async fn a_refused_attempt_costs_no_hash() {
    let app = TestApp::spawn_with(|s| {
        s.hashing.cost.memory_kib = 64 * 1024;
        s.hashing.cost.iterations = 8;
        s.throttling.failures.per_ip_account = rate("1/h");
    })
    .await;
    app.register("alice", PASSWORD).await;
    let started = Instant::now();
    assert_wrong(&app.login("alice", WRONG).await);
    let checked = started.elapsed();
    let started = Instant::now();
    for _ in 0..5 {
        assert_throttled(&app.login("alice", PASSWORD).await, 3600);
    }
    let refused = started.elapsed() / 5;
    assert!(
        refused * 4 < checked,
        "a refusal took {refused:?}, a checked password {checked:?}"
    );
}

/// `current_password` checks count against the caller's account like logins: past the limit,
/// set_password, set_username and DELETE answer 429 even with the right password.
#[tokio::test]
async fn current_password_checks_share_the_limit() {
    let app = TestApp::spawn().await;
    let (id, token) = app.create_user("alice").await;
    let changes = [
        (
            Method::POST,
            "/users/set_password/".to_owned(),
            json!({"current_password": WRONG, "new_password": "another long passphrase"}),
        ),
        (
            Method::POST,
            "/users/set_username/".to_owned(),
            json!({"current_password": WRONG, "new_username": "alicia"}),
        ),
        (
            Method::DELETE,
            "/users/me/".to_owned(),
            json!({"current_password": WRONG}),
        ),
        (
            Method::DELETE,
            format!("/users/{id}/"),
            json!({"current_password": WRONG}),
        ),
    ];
    for _ in 0..4 {
        assert_wrong(&app.login("alice", WRONG).await);
    }
    for (method, path, body) in changes.iter().cycle().take(6) {
        let reply = app
            .call(method.clone(), path, &token, Some(body.clone()))
            .await;
        reply.assert(
            StatusCode::BAD_REQUEST,
            json!({"current_password": ["Invalid password."]}),
        );
    }
    for (method, path, body) in &changes {
        let mut right = body.clone();
        right["current_password"] = json!(PASSWORD);
        let reply = app.call(method.clone(), path, &token, Some(right)).await;
        assert_throttled(&reply, 900);
    }
    let missing = app
        .call(Method::DELETE, "/users/me/", &token, Some(json!({})))
        .await;
    assert_eq!(
        missing.status,
        StatusCode::BAD_REQUEST,
        "field errors first"
    );
    assert_throttled(&app.login("alice", PASSWORD).await, 900);
    assert_eq!(app.count("auth_user").await, 1, "nothing changed");
}

/// The OAuth2 password grant counts too, and answers RFC 6749's error with a 429.
#[tokio::test]
async fn the_password_grant_is_throttled_with_an_oauth_error() {
    let app = TestApp::spawn().await;
    app.register("alice", PASSWORD).await;
    let grant = |password: &'static str| {
        app.send(app.request(Method::POST, "/oauth/token").form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", password),
        ]))
    };
    for _ in 0..10 {
        let reply = grant(WRONG).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
        assert_eq!(reply.json()["error"], "invalid_grant");
    }
    let reply = grant(PASSWORD).await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.text
    );
    let wait: u64 = reply
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=900).contains(&wait));
    assert_eq!(
        reply.json(),
        json!({
            "error": "invalid_grant",
            "error_description": format!("Request was throttled. Expected available in {wait} seconds."),
        })
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_throttled(&app.login("alice", PASSWORD).await, 900);
}

/// `off` switches a limit off: 30 failures, then the right password works.
#[tokio::test]
async fn limits_can_be_switched_off() {
    let app = TestApp::spawn_with(|s| s.throttling.failures = FailureLimits::OFF).await;
    app.register("alice", PASSWORD).await;
    for _ in 0..30 {
        assert_wrong(&app.login("alice", WRONG).await);
    }
    assert_eq!(app.login("alice", PASSWORD).await.status, StatusCode::OK);
    assert_eq!(app.count("login_failure").await, 0, "nothing recorded");
}

/// Failures older than every window count against nothing, and the purge removes them.
#[tokio::test]
async fn failures_past_every_window_are_purged() {
    let app = TestApp::spawn_with(|s| {
        s.maintenance.purge_interval = Duration::from_millis(300);
        s.throttling.failures = FailureLimits {
            per_ip_account: rate("5/2s"),
            ..FailureLimits::OFF
        };
    })
    .await;
    app.register("alice", PASSWORD).await;
    let first = Instant::now();
    assert_wrong(&app.login("alice", WRONG).await);
    assert_wrong(&app.login("alice", WRONG).await);
    assert_eq!(
        app.count("login_failure").await,
        2,
        "kept within the window"
    );
    while app.count("login_failure").await > 0 {
        assert!(first.elapsed() < Duration::from_secs(10), "not purged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        first.elapsed() >= Duration::from_secs(2),
        "purged inside the window"
    );
}
