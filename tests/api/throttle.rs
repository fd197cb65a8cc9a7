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

/// The owner's own password is never the one locked out. 100 wrong guesses from 10 addresses
/// fill the per-account budget: the owner still logs in from an address the account logged in
/// from (an IPv6 address anywhere in its /64 too), and a new address is refused.
#[tokio::test]
async fn guesses_from_many_addresses_do_not_lock_the_owner_out_of_a_known_address() {
    let app = TestApp::spawn_with(behind_proxy).await;
    app.register("alice", PASSWORD).await;
    for home in ["198.51.100.1", "2001:db8:1:2::1"] {
        let first = login_from(&app, home, "alice", PASSWORD).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    }
    for address in 0..10 {
        for _ in 0..10 {
            assert_wrong(&login_from(&app, &format!("203.0.113.{address}"), "alice", WRONG).await);
        }
    }
    for home in ["198.51.100.1", "2001:db8:1:2:ffff::7"] {
        let owner = login_from(&app, home, "alice", PASSWORD).await;
        assert_eq!(owner.status, StatusCode::OK, "{home}: {}", owner.text);
    }
    assert_throttled(
        &login_from(&app, "198.51.100.2", "alice", PASSWORD).await,
        3600,
    );
    let refused = app
        .send(
            app.request(Method::POST, "/oauth/token")
                .header("X-Forwarded-For", "198.51.100.2")
                .form(&[
                    ("grant_type", "password"),
                    ("username", "alice"),
                    ("password", PASSWORD),
                ]),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.text
    );
    let grant = app
        .send(
            app.request(Method::POST, "/oauth/token")
                .header("X-Forwarded-For", "198.51.100.1")
                .form(&[
                    ("grant_type", "password"),
                    ("username", "alice"),
                    ("password", PASSWORD),
                ]),
        )
        .await;
    assert_eq!(grant.status, StatusCode::OK, "{}", grant.text);
}

/// A known address is exempt from the per-account budget only: its own (address, account)
/// budget still applies to it, which bounds a guesser sharing the owner's address (a NAT).
/// An address is known for 30 days after a login, and only the last ten are.
#[tokio::test]
async fn known_addresses_keep_their_own_limit_and_are_forgotten() {
    let app = TestApp::spawn_with(|s| {
        behind_proxy(s);
        s.throttling.failures.per_account = rate("3/h");
    })
    .await;
    app.register("alice", PASSWORD).await;
    let home = "198.51.100.1";
    assert_eq!(
        login_from(&app, home, "alice", PASSWORD).await.status,
        StatusCode::OK
    );
    for _ in 0..10 {
        assert_wrong(&login_from(&app, home, "alice", WRONG).await);
    }
    assert_throttled(&login_from(&app, home, "alice", PASSWORD).await, 900);
    app.exec("DELETE FROM login_failure").await;

    for office in 0..10 {
        let reply = login_from(&app, &format!("192.0.2.{office}"), "alice", PASSWORD).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    for guess in 0..3 {
        assert_wrong(&login_from(&app, &format!("203.0.113.{guess}"), "alice", WRONG).await);
    }
    assert_throttled(&login_from(&app, home, "alice", PASSWORD).await, 3600);
    let latest = login_from(&app, "192.0.2.9", "alice", PASSWORD).await;
    assert_eq!(latest.status, StatusCode::OK, "the ten latest are known");
    app.exec(
        "UPDATE known_address SET last_login = last_login - INTERVAL_31_DAYS WHERE address = '192.0.2.9'"
            .replace(
                "last_login - INTERVAL_31_DAYS",
                &match app.db().get_database_backend() {
                    sea_orm::DbBackend::Postgres => "last_login - interval '31 days'".to_owned(),
                    _ => "datetime(last_login, '-31 days')".to_owned(),
                },
            )
            .as_str(),
    )
    .await;
    assert_throttled(
        &login_from(&app, "192.0.2.9", "alice", PASSWORD).await,
        3600,
    );
}

async fn set_password(app: &TestApp, token: &str, current: &str, new: &str) -> Reply {
    app.call(
        Method::POST,
        "/users/set_password/",
        token,
        Some(json!({"current_password": current, "new_password": new})),
    )
    .await
}

/// A live session is proof enough: `current_password` checks made with it are exempt from the
/// per-account budget, and have one of their own, 10 failures per 15 minutes per session, which
/// holds even for the right password; another session of the account is not held by it.
#[tokio::test]
async fn current_password_checks_with_a_session_are_limited_per_session() {
    let app = TestApp::spawn_with(|s| {
        behind_proxy(s);
        s.throttling.failures.per_account = rate("5/h");
    })
    .await;
    app.register("alice", PASSWORD).await;
    let token = app.token_for("alice", PASSWORD).await;
    let other = app.token_for("alice", PASSWORD).await;
    for guess in 0..5 {
        assert_wrong(&login_from(&app, &format!("203.0.113.{guess}"), "alice", WRONG).await);
    }
    assert_throttled(
        &login_from(&app, "203.0.113.99", "alice", PASSWORD).await,
        3600,
    );
    let changed = set_password(&app, &token, PASSWORD, "a second long passphrase").await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.text);
    let other = {
        let _ = other;
        app.token_for("alice", "a second long passphrase").await
    };
    for _ in 0..10 {
        set_password(&app, &token, WRONG, "a third long passphrase")
            .await
            .assert(
                StatusCode::BAD_REQUEST,
                json!({"current_password": ["Invalid password."]}),
            );
    }
    assert_throttled(
        &set_password(
            &app,
            &token,
            "a second long passphrase",
            "a third long passphrase",
        )
        .await,
        900,
    );
    let elsewhere = set_password(
        &app,
        &other,
        "a second long passphrase",
        "a third long passphrase",
    )
    .await;
    assert_eq!(
        elsewhere.status,
        StatusCode::NO_CONTENT,
        "another session is not held: {}",
        elsewhere.text
    );
}

/// A right `current_password` clears its session's count, as a successful login clears its
/// (address, account) count: the owner's typos do not add up.
#[tokio::test]
async fn a_right_current_password_clears_the_sessions_count() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("alice").await;
    let wrong = json!({"current_password": WRONG, "new_password": "another long passphrase"});
    for _ in 0..9 {
        let reply = app
            .call(
                Method::POST,
                "/users/set_password/",
                &token,
                Some(wrong.clone()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    }
    let changed = app
        .call(
            Method::PATCH,
            "/users/me/",
            &token,
            Some(json!({"email": "alice@example.com", "current_password": PASSWORD})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    for _ in 0..10 {
        let reply = app
            .call(
                Method::POST,
                "/users/set_password/",
                &token,
                Some(wrong.clone()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    }
    assert_throttled(
        &app.call(Method::POST, "/users/set_password/", &token, Some(wrong))
            .await,
        900,
    );
}

/// A completed password reset clears the account's counters (and forgets its known addresses,
/// which a thief who knew the old password may have planted).
#[tokio::test]
async fn a_completed_reset_clears_the_accounts_counters() {
    let smtp = crate::smtp::SmtpServer::start().await;
    let port = smtp.port;
    let app = TestApp::spawn_with(|s| {
        behind_proxy(s);
        s.throttling.failures.per_account = rate("3/h");
        s.mail.backend = authd::config::EmailBackend::Smtp(authd::config::DatabaseUrl::new(
            format!("smtp://127.0.0.1:{port}"),
        ));
        s.mail.frontend_domain = "app.example.test".into();
    })
    .await;
    app.post_json(
        "/users/",
        json!({"username": "alice", "email": "alice@example.com", "password": PASSWORD}),
        None,
    )
    .await;
    assert_eq!(
        login_from(&app, "203.0.113.200", "alice", PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
    for guess in 0..3 {
        assert_wrong(&login_from(&app, &format!("203.0.113.{guess}"), "alice", WRONG).await);
    }
    assert_throttled(
        &login_from(&app, "198.51.100.7", "alice", PASSWORD).await,
        3600,
    );
    app.post_json(
        "/users/reset_password/",
        json!({"email": "alice@example.com"}),
        None,
    )
    .await;
    let (uid, token) = smtp.wait_for(1).await[0].uid_and_token();
    let reset = app
        .post_json(
            "/users/reset_password_confirm/",
            json!({"uid": uid, "token": token, "new_password": "a fresh passphrase here"}),
            None,
        )
        .await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT, "{}", reset.text);
    assert_eq!(
        app.count("known_address").await,
        0,
        "known addresses forgotten"
    );
    let after = login_from(&app, "198.51.100.7", "alice", "a fresh passphrase here").await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.text);
}

/// Right passwords in a burst wait for the attempts ahead of them instead of being refused: 20
/// simultaneous correct logins of one account from one address all log in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_right_passwords_waits_instead_of_429() {
    let app = TestApp::spawn().await;
    app.register("alice", PASSWORD).await;
    let replies = futures::future::join_all((0..20).map(|_| app.login("alice", PASSWORD))).await;
    let statuses: Vec<StatusCode> = replies.iter().map(|r| r.status).collect();
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(app.count("login_failure").await, 0, "nothing counted");
}

/// An attempt that waits longer than AUTHD_HASH_QUEUE_TIMEOUT_MS for those ahead of it gets the
/// overload answer (503, `Retry-After`), never a 429: no failure was counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_that_waits_too_long_gets_503_not_429() {
    let app = TestApp::spawn_with(|s| {
        s.hashing.cost.memory_kib = 64 * 1024;
        s.hashing.cost.iterations = 16;
        s.hashing.queue_timeout = Duration::from_millis(300);
        s.throttling.failures.per_ip_account = rate("1/h");
    })
    .await;
    app.register("alice", PASSWORD).await;
    let replies = futures::future::join_all((0..2).map(|_| app.login("alice", PASSWORD))).await;
    let mut statuses: Vec<StatusCode> = replies.iter().map(|r| r.status).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE],
        "{replies:#?}"
    );
    let shed = replies
        .iter()
        .find(|r| r.status == StatusCode::SERVICE_UNAVAILABLE)
        .expect("a 503");
    shed.assert(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"detail": "Service temporarily unavailable, try again later."}),
    );
    assert_eq!(shed.header("retry-after"), Some("1"));
    assert_eq!(app.count("login_failure").await, 0, "nothing counted");
}

/// Concurrent guesses cannot slip past the limit, on one instance or two: attempts in flight
/// count against the attempts behind them, so a burst gets at most the limit's worth of checks
/// (the others wait, then are refused), and what it did not use stays available.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guesses_get_no_more_than_the_limit() {
    let first = TestApp::spawn().await;
    let second = first.sibling().await;
    first.register("alice", PASSWORD).await;
    let replies = futures::future::join_all((0..30).map(|index| {
        let app = if index % 2 == 0 { &first } else { &second };
        app.login("alice", WRONG)
    }))
    .await;
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
        let reply = first.login("alice", WRONG).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_wrong(&reply);
        more += 1;
    }
    assert_eq!(checked + more, 10, "the burst checked {checked}");
    assert_throttled(&first.login("alice", PASSWORD).await, 900);
}

/// A client that hangs up while its password is checked does not escape the count: the attempt
/// becomes a failure. The client hangs up the moment its attempt shows in flight (a fixed client
/// timeout could fire before the server read the request, when there is nothing to count), which
/// may be while the server is still waiting for that commit to return: the attempt counts then
/// too. Several rounds, to land in that window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_check_counts_as_a_failure() {
    let app = TestApp::spawn_with(|s| {
        s.hashing.cost.memory_kib = 64 * 1024;
        s.hashing.cost.iterations = 4;
    })
    .await;
    app.register("alice", PASSWORD).await;
    for round in 1..=3 {
        let request = reqwest::Client::new()
            .post(app.url("/token/login/"))
            .json(&json!({"username": "alice", "password": WRONG}))
            .send();
        let impatient = tokio::spawn(request);
        let started = Instant::now();
        while app.count("login_failure WHERE in_flight = TRUE").await == 0 {
            assert!(
                !impatient.is_finished(),
                "the check ended before the client could hang up"
            );
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the attempt never began"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        impatient.abort();
        assert!(
            impatient.await.is_err_and(|err| err.is_cancelled()),
            "the client gave up first"
        );
        let started = Instant::now();
        while app.count("login_failure WHERE in_flight = FALSE").await < 3 * round {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the abandoned check was not counted (round {round})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            app.count("login_failure").await,
            3 * round,
            "one failure per limit"
        );
    }
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

/// `current_password` checks are limited per session: past the limit, set_password,
/// set_username and DELETE answer 429 even with the right password; field errors come first.
/// Failed logins of the account elsewhere do not hold the session's checks.
#[tokio::test]
async fn current_password_checks_share_the_sessions_limit() {
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
    for _ in 0..10 {
        assert_wrong(&app.login("alice", WRONG).await);
    }
    for (method, path, body) in changes.iter().cycle().take(10) {
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
