//! Several `authd serve` processes on one PostgreSQL database, each holding tokens in memory: a
//! change made through one of them, or by an `authd` command, is applied by every other before
//! it answers, and a hung instance delays it by the bound only.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli::{Served, authd};
use crate::helpers::{FreshDatabase, PASSWORD, on_postgres};

/// What authd waits for confirmations at most (`auth::BARRIER_TIMEOUT`).
const BOUND: Duration = authd::auth::BARRIER_TIMEOUT;
/// Logouts sent at once while an instance is hung.
const BURST: usize = 8;

struct Instances {
    servers: Vec<Served>,
    dir: tempfile::TempDir,
    database: FreshDatabase,
    client: reqwest::Client,
}

impl Instances {
    async fn start(count: usize) -> Self {
        let database = FreshDatabase::new().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let env = [
            ("DATABASE_URL", database.url.as_str()),
            ("AUTHD_LOG_FORMAT", "json"),
        ];
        let mut servers = Vec::new();
        for _ in 0..count {
            servers.push(Served::start(&dir, &env).await);
        }
        let instances = Self {
            servers,
            dir,
            database,
            client: reqwest::Client::new(),
        };
        instances.wait_until_all_listen().await;
        instances
    }

    async fn connect(&self) -> authd::store::Db {
        authd::store::connect(&self.database.url, 1, Duration::from_secs(5))
            .await
            .expect("connect")
    }

    /// Each server names its listening connection once it listens: until then a change does
    /// not wait for it (and it clears its cache when it starts listening). Returns their
    /// backends.
    async fn wait_until_all_listen(&self) -> Vec<i64> {
        let db = self.connect().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let listening = authd::store::cache_listeners(&db).await.expect("count");
            if listening.len() == self.servers.len() {
                return listening;
            }
            assert!(Instant::now() < deadline, "{} listening", listening.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn register(&self, username: &str) {
        let reply = self
            .client
            .post(format!("{}/users/", self.servers[0].base))
            .json(&json!({
                "username": username, "email": format!("{username}@example.com"), "password": PASSWORD,
            }))
            .send()
            .await
            .expect("register");
        assert_eq!(reply.status(), StatusCode::CREATED);
    }

    async fn log_in(&self, through: usize, username: &str) -> String {
        let reply = self
            .client
            .post(format!("{}/token/login/", self.servers[through].base))
            .json(&json!({"username": username, "password": PASSWORD}))
            .send()
            .await
            .expect("login");
        assert_eq!(reply.status(), StatusCode::OK);
        let body: Value = reply.json().await.expect("JSON");
        body["auth_token"].as_str().expect("a token").to_owned()
    }

    async fn get(&self, at: usize, path: &str, token: &str) -> StatusCode {
        self.client
            .get(format!("{}{path}", self.servers[at].base))
            .header("Authorization", format!("Token {token}"))
            .send()
            .await
            .expect("answer")
            .status()
    }

    async fn me(&self, at: usize, token: &str) -> StatusCode {
        self.get(at, "/users/me/", token).await
    }

    async fn log_out(&self, through: usize, token: &str) -> StatusCode {
        self.client
            .post(format!("{}/token/logout/", self.servers[through].base))
            .header("Authorization", format!("Token {token}"))
            .send()
            .await
            .expect("logout")
            .status()
    }

    /// Every server answers the token once, and so holds it in memory.
    async fn warm(&self, token: &str) {
        for at in 0..self.servers.len() {
            assert_eq!(self.me(at, token).await, StatusCode::OK, "instance {at}");
        }
    }

    /// `authd ARGS` on the same database, as an operator would run it beside the servers.
    fn command(&self, args: &[&str]) {
        let output = authd(&self.dir)
            .env("DATABASE_URL", &self.database.url)
            .args(args)
            .output()
            .expect("run authd");
        assert!(
            output.status.success(),
            "authd {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The logout answers once every other instance dropped the token: the very next request to
/// any of them is refused, every time (a race shows over many rounds).
#[tokio::test]
async fn a_logout_is_refused_by_the_very_next_request_to_every_instance() {
    if !on_postgres("several instances on one database") {
        return;
    }
    let instances = Instances::start(3).await;
    instances.register("alice").await;
    for round in 0..30 {
        let through = round % 3;
        let token = instances.log_in(through, "alice").await;
        instances.warm(&token).await;
        assert_eq!(
            instances.log_out(through, &token).await,
            StatusCode::NO_CONTENT
        );
        for offset in 1..=3 {
            let at = (through + offset) % 3;
            assert_eq!(
                instances.me(at, &token).await,
                StatusCode::UNAUTHORIZED,
                "round {round}: logged out through instance {through}, instance {at} still answers"
            );
        }
    }
}

/// A stopped instance holds the token and never confirms: the logout waits for it for the
/// bound, no longer, and says so in the log; the live instances refuse the token at once, and
/// the stopped one as soon as it runs again. A burst of logouts meanwhile waits side by side,
/// not one after another: a client logging out a lot costs the bound per request, not a queue.
#[tokio::test]
async fn a_hung_instance_delays_a_logout_by_the_bound_only() {
    if !on_postgres("several instances on one database") {
        return;
    }
    let mut instances = Instances::start(3).await;
    instances.register("alice").await;
    let token = instances.log_in(0, "alice").await;
    instances.warm(&token).await;
    let mut burst = Vec::new();
    for _ in 0..BURST {
        burst.push(instances.log_in(1, "alice").await);
    }

    instances.servers[2].signal(libc::SIGSTOP);
    let started = Instant::now();
    let logout = instances.log_out(0, &token).await;
    let took = started.elapsed();
    let started = Instant::now();
    let burst_logouts =
        futures::future::join_all(burst.iter().map(|token| instances.log_out(1, token))).await;
    let burst_took = started.elapsed();
    instances.servers[2].signal(libc::SIGCONT);
    assert_eq!(logout, StatusCode::NO_CONTENT);
    assert!(
        took >= BOUND,
        "{took:?}: the logout did not wait for the stopped instance"
    );
    assert!(
        took < BOUND + Duration::from_secs(2),
        "{took:?}: the logout waited past its bound"
    );
    assert!(
        burst_logouts
            .iter()
            .all(|status| *status == StatusCode::NO_CONTENT),
        "{burst_logouts:?}"
    );
    assert!(
        burst_took < BOUND + Duration::from_secs(2),
        "{burst_took:?} for {BURST} logouts at once"
    );
    assert_eq!(instances.me(1, &token).await, StatusCode::UNAUTHORIZED);
    let deadline = Instant::now() + Duration::from_secs(5);
    while instances.me(2, &token).await != StatusCode::UNAUTHORIZED {
        assert!(
            Instant::now() < deadline,
            "the resumed instance never applied the logout"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Running again, it confirms: the next logout does not wait.
    let token = instances.log_in(1, "alice").await;
    instances.warm(&token).await;
    let started = Instant::now();
    assert_eq!(instances.log_out(1, &token).await, StatusCode::NO_CONTENT);
    let took = started.elapsed();
    assert!(took < BOUND, "{took:?} with every instance running");
    for at in 0..3 {
        assert_eq!(instances.me(at, &token).await, StatusCode::UNAUTHORIZED);
    }

    let servers = std::mem::take(&mut instances.servers);
    let mut logs = servers.into_iter().map(Served::stop);
    let (_, _, stderr) = logs.next().expect("the first instance");
    let warnings: Vec<Value> = stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| {
            line["fields"]["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("not every server confirmed"))
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert_eq!(warnings[0]["fields"]["confirmed"], 2, "{stderr}");
    assert_eq!(warnings[0]["fields"]["servers"], 3, "{stderr}");
    assert!(!stderr.contains(&token), "the log names the token");
    let (_, _, stderr) = logs.next().expect("the second instance");
    let warned = stderr
        .lines()
        .filter(|line| line.contains("not every server confirmed"))
        .count();
    assert_eq!(warned, BURST, "{stderr}");
}

/// PostgreSQL ends the servers' listening connections (an administrator's
/// `pg_terminate_backend`, say) while it keeps running: each server listens again at once,
/// not after a pause, and a logout holds everywhere again. Cut again right away, they wait a
/// second first: a connection cut over and over is not replaced in a tight loop.
#[tokio::test]
async fn servers_cut_from_their_notifications_listen_again_at_once_then_after_a_pause() {
    use sea_orm::ConnectionTrait as _;
    if !on_postgres("several instances on one database") {
        return;
    }
    let instances = Instances::start(3).await;
    instances.register("alice").await;
    let before = instances.wait_until_all_listen().await;
    // A connection that listened for less than a second is replaced after a pause (no tight
    // loop when one is cut over and over): these have listened longer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let db = instances.connect().await;
    let cut_all = || async {
        db.execute_unprepared(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'authd cache listener'",
        )
        .await
        .expect("terminate the listeners");
    };
    let cut = Instant::now();
    cut_all().await;
    let again = loop {
        let now = authd::store::cache_listeners(&db).await.expect("count");
        if now.len() == 3 && now.iter().all(|pid| !before.contains(pid)) {
            break now;
        }
        assert!(
            cut.elapsed() < Duration::from_millis(900),
            "{now:?} listening {:?} after the cut, {before:?} before",
            cut.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    // Cut again at once: they come back, after a pause.
    let cut = Instant::now();
    cut_all().await;
    loop {
        let now = authd::store::cache_listeners(&db).await.expect("count");
        let fresh = now.iter().filter(|pid| !again.contains(pid)).count();
        let elapsed = cut.elapsed();
        assert!(
            fresh == 0 || elapsed >= Duration::from_millis(900),
            "{now:?} listening again {elapsed:?} after a second cut"
        );
        if fresh == 3 {
            break;
        }
        assert!(
            elapsed < Duration::from_secs(4),
            "{now:?} after {elapsed:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let token = instances.log_in(1, "alice").await;
    instances.warm(&token).await;
    let started = Instant::now();
    assert_eq!(instances.log_out(1, &token).await, StatusCode::NO_CONTENT);
    assert!(started.elapsed() < BOUND, "{:?}", started.elapsed());
    for at in 0..3 {
        assert_eq!(instances.me(at, &token).await, StatusCode::UNAUTHORIZED);
    }
}

/// An `authd` command is no server: it listens for the servers' confirmations of its own
/// change, and exits once every server applied it.
#[tokio::test]
async fn a_command_returns_once_every_instance_applied_its_change() {
    if !on_postgres("several instances on one database") {
        return;
    }
    let instances = Instances::start(2).await;
    instances.command(&[
        "permission",
        "create",
        "blog.add_post",
        "--name",
        "Can add post",
    ]);
    instances.register("alice").await;
    let token = instances.log_in(0, "alice").await;
    let verify = "/token/verify/?permission=blog.add_post";
    for round in 0..4 {
        let (command, expected) = match round % 2 {
            0 => ("grant", StatusCode::NO_CONTENT),
            _ => ("revoke", StatusCode::FORBIDDEN),
        };
        for at in 0..2 {
            assert_ne!(instances.get(at, verify, &token).await, expected);
        }
        instances.command(&["user", command, "alice", "blog.add_post"]);
        for at in 0..2 {
            assert_eq!(
                instances.get(at, verify, &token).await,
                expected,
                "round {round}: instance {at} after `authd user {command}`"
            );
        }
    }
}
