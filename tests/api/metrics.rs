//! Prometheus metrics, end to end: the `authd` binary (a process of its own, since `metrics`
//! has one recorder per process and this binary runs many apps) on a fresh database, scraped by
//! Debian's real Prometheus; each value moves by what the requests that cause it should move it
//! by, and no label takes a value a client chose. `promtool` checks the exposition and the
//! rules in docs/prometheus-rules.yml. Skipped, saying so, where Prometheus is not installed.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cli::BIN;
use crate::helpers::{FreshDatabase, PASSWORD, free_port};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";
const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/prometheus-rules.yml");

/// A child process killed with the test, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn installed(tool: &str) -> bool {
    let there = Path::new(tool).exists();
    if !there {
        eprintln!(
            "skipped: {tool} is not installed (apt-get install --no-install-recommends prometheus; .ci/run does)"
        );
    }
    there
}

/// The `authd` binary with metrics on, on its own fresh database; its API and metrics bases.
async fn spawn_authd(database: &FreshDatabase) -> (Running, String, String) {
    let (api, metrics) = (free_port(), free_port());
    let child = Command::new(BIN)
        .env_remove("RUST_LOG")
        .env("DATABASE_URL", &database.url)
        .env("AUTHD_BIND", format!("127.0.0.1:{api}"))
        .env("AUTHD_METRICS_BIND", format!("127.0.0.1:{metrics}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start authd");
    let running = Running(child);
    let api = format!("http://127.0.0.1:{api}");
    let metrics = format!("http://127.0.0.1:{metrics}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{metrics}/metrics")).await.is_err() {
        assert!(Instant::now() < deadline, "authd did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (running, api, metrics)
}

async fn scrape(metrics: &str) -> String {
    let reply = reqwest::get(format!("{metrics}/metrics"))
        .await
        .expect("scrape");
    assert_eq!(reply.status(), StatusCode::OK);
    reply.text().await.expect("body")
}

fn promtool(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write as _;
    let mut child = Command::new(PROMTOOL)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .expect("write to promtool");
    drop(input);
    child.wait_with_output().expect("promtool output")
}

/// Debian's Prometheus scraping `target` every second, with its own storage.
fn spawn_prometheus(dir: &Path, target: &str) -> (Running, String) {
    let port = free_port();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {RULES}\n\
             scrape_configs:\n  - job_name: authd\n    static_configs:\n      - targets: ['{}']\n",
            target.trim_start_matches("http://")
        ),
    )
    .expect("write prometheus.yml");
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    (Running(child), format!("http://127.0.0.1:{port}"))
}

/// The result vector of an instant query (empty while Prometheus is starting).
async fn query(prometheus: &str, expr: &str) -> Vec<Value> {
    let mut url = url::Url::parse(&format!("{prometheus}/api/v1/query")).expect("URL");
    url.query_pairs_mut().append_pair("query", expr);
    let Ok(reply) = reqwest::get(url).await else {
        return Vec::new();
    };
    let body: Value = reply.json().await.unwrap_or_default();
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The value of a query that yields one number, `None` while it yields none.
async fn value(prometheus: &str, expr: &str) -> Option<f64> {
    let result = query(prometheus, expr).await;
    result.first()?["value"][1].as_str()?.parse().ok()
}

/// Waits (at most 20 s, scrapes are a second apart) for `expr` to read `expected`, and returns
/// what it read last: the caller asserts on it, so a value that never settles fails the test
/// with what it was.
async fn settled(prometheus: &str, expr: &str, expected: f64) -> Option<f64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let read = value(prometheus, expr).await;
        if read == Some(expected) || Instant::now() > deadline {
            return read;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The label values of every series of the HTTP family that Prometheus has seen.
async fn http_labels(prometheus: &str, label: &str) -> BTreeSet<String> {
    query(
        prometheus,
        &format!("group by ({label}) (authd_http_requests_total)"),
    )
    .await
    .iter()
    .filter_map(|series| series["metric"][label].as_str().map(str::to_owned))
    .collect()
}

#[tokio::test]
async fn metric_values_move_with_the_requests_that_cause_them_on_a_real_scrape() {
    if !installed(PROMETHEUS) {
        return;
    }
    let database = FreshDatabase::new().await;
    let (_authd, api, metrics) = spawn_authd(&database).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (_prometheus, prometheus) = spawn_prometheus(dir.path(), &metrics);
    let up = settled(&prometheus, r#"up{job="authd"}"#, 1.0).await;
    assert_eq!(up, Some(1.0), "Prometheus scrapes authd");
    // Every family is there from start-up, at 0.
    for family in [
        r#"authd_logins_total{outcome="bad_credentials"}"#,
        r#"authd_sessions_ended_total{reason="logout"}"#,
        r#"authd_throttled_total{limit="ip_account"}"#,
        "authd_outbox_dropped_total",
        r#"authd_outbox_messages{state="pending"}"#,
        r#"authd_connections_closed_total{reason="head_timeout"}"#,
        "authd_hash_queue_wait_seconds_count",
    ] {
        assert_eq!(value(&prometheus, family).await, Some(0.0), "{family}");
    }
    let total_requests = "sum(authd_http_requests_total)";
    let before = value(&prometheus, total_requests).await.unwrap_or(0.0);

    let client = reqwest::Client::new();
    let post = |path: &str, body: Value, token: Option<&str>| {
        let mut request = client.post(format!("{api}{path}")).json(&body);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Token {token}"));
        }
        request.send()
    };
    let created = post(
        "/users/",
        json!({ "username": "metered", "password": PASSWORD }),
        None,
    )
    .await
    .expect("register");
    assert_eq!(created.status(), StatusCode::CREATED);
    for _ in 0..3 {
        let failed = post(
            "/token/login/",
            json!({ "username": "metered", "password": "not the password" }),
            None,
        )
        .await
        .expect("login");
        assert_eq!(failed.status(), StatusCode::BAD_REQUEST);
    }
    let login = post(
        "/token/login/",
        json!({ "username": "metered", "password": PASSWORD }),
        None,
    )
    .await
    .expect("login");
    assert_eq!(login.status(), StatusCode::OK);
    let token = login.json::<Value>().await.expect("json")["auth_token"]
        .as_str()
        .expect("token")
        .to_owned();
    for _ in 0..2 {
        let me = client
            .get(format!("{api}/users/me/"))
            .header("Authorization", format!("Token {token}"))
            .send()
            .await
            .expect("me");
        assert_eq!(me.status(), StatusCode::OK);
    }
    let logout = post("/token/logout/", json!({}), Some(&token))
        .await
        .expect("logout");
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let missing = client
        .get(format!("{api}/no/such/route/"))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // Label injection: an invented method, a path full of what the exposition format quotes,
    // a huge path, a path that names no route.
    let foo = client
        .request(
            Method::from_bytes(b"FOO").expect("method"),
            format!("{api}/users/me/"),
        )
        .send()
        .await
        .expect("FOO");
    assert!(foo.status().is_client_error());
    for path in [
        "/users/%7B%22route%22%3D%22x%22%7D%0A%5C/".to_owned(),
        "/%7B%7D%22%0Aroute%3D%22injected%22/".to_owned(),
        format!("/{}", "x".repeat(4000)),
    ] {
        let reply = client
            .get(format!("{api}{path}"))
            .send()
            .await
            .expect("odd path");
        assert!(reply.status().is_client_error(), "{path}");
    }
    let sent = 1.0 + 3.0 + 1.0 + 2.0 + 1.0 + 1.0 + 1.0 + 3.0;

    let expect = [
        (r#"authd_logins_total{outcome="bad_credentials"}"#, 3.0),
        (r#"authd_logins_total{outcome="success"}"#, 1.0),
        (r#"authd_logins_total{outcome="inactive"}"#, 0.0),
        (r#"authd_sessions_opened_total{kind="token"}"#, 1.0),
        (r#"authd_sessions_ended_total{reason="logout"}"#, 1.0),
        // The sign-up's hash, three failed checks and one that matched.
        (r#"authd_password_hashes_total{algorithm="argon2id"}"#, 5.0),
        ("authd_hash_queue_wait_seconds_count", 5.0),
        // The first /users/me/ asks the database; the second and the logout find it in memory.
        (r#"authd_token_cache_requests_total{result="miss"}"#, 1.0),
        (r#"authd_token_cache_requests_total{result="hit"}"#, 2.0),
        (
            r#"sum(authd_http_requests_total{route="unmatched",status="404"})"#,
            3.0,
        ),
        (
            r#"authd_http_requests_total{route="/token/login/",method="POST",status="400"}"#,
            3.0,
        ),
        (
            r#"authd_http_requests_total{route="/users/me/",method="GET",status="200"}"#,
            2.0,
        ),
        (
            r#"sum(authd_http_requests_total{route="/users/me/",method="other"})"#,
            1.0,
        ),
        (
            r#"sum(authd_http_requests_total{route="/users/{id}/"})"#,
            1.0,
        ),
    ];
    for (expr, expected) in expect {
        assert_eq!(
            settled(&prometheus, expr, expected).await,
            Some(expected),
            "{expr}"
        );
    }
    assert_eq!(
        settled(&prometheus, total_requests, before + sent).await,
        Some(before + sent),
        "every request counted once"
    );
    assert_eq!(
        value(
            &prometheus,
            "sum(authd_http_request_duration_seconds_count)"
        )
        .await,
        value(&prometheus, total_requests).await,
        "one latency sample per request"
    );
    let buckets = query(
        &prometheus,
        r#"authd_http_request_duration_seconds_bucket{route="/users/me/",method="GET",status="200"}"#,
    )
    .await;
    let bounds: BTreeSet<String> = buckets
        .iter()
        .filter_map(|series| series["metric"]["le"].as_str().map(str::to_owned))
        .collect();
    assert!(
        bounds.contains("0.0005") && bounds.contains("10") && bounds.contains("+Inf"),
        "a histogram from 0.5 ms to 10 s: {bounds:?}"
    );

    let routes: BTreeSet<&str> = authd::http::routes::ROUTES
        .iter()
        .map(|route| route.path)
        .chain(authd::http::routes::UNLISTED)
        .chain(["unmatched"])
        .collect();
    for route in http_labels(&prometheus, "route").await {
        assert!(routes.contains(route.as_str()), "route label {route:?}");
    }
    let methods = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
    ];
    for method in http_labels(&prometheus, "method").await {
        assert!(
            methods.contains(&method.as_str()),
            "method label {method:?}"
        );
    }
    for status in http_labels(&prometheus, "status").await {
        assert!(
            status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit()),
            "status label {status:?}"
        );
    }
}

#[tokio::test]
async fn the_metrics_listener_serves_only_metrics_and_the_api_port_never_does() {
    let database = FreshDatabase::new().await;
    let (_authd, api, metrics) = spawn_authd(&database).await;
    let on_api = reqwest::get(format!("{api}/metrics")).await.expect("api");
    assert_eq!(on_api.status(), StatusCode::NOT_FOUND);
    for path in ["/", "/healthz", "/metrics/", "/users/me/", "/docs"] {
        let reply = reqwest::get(format!("{metrics}{path}"))
            .await
            .expect("metrics port");
        assert_eq!(reply.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let exposition = scrape(&metrics).await;
    for family in [
        "authd_http_requests_total",
        "authd_http_request_duration_seconds_bucket",
        "authd_logins_total",
        "authd_refreshes_total",
        "authd_refresh_reuse_total",
        "authd_password_hashes_total",
        "authd_hash_queue_depth",
        "authd_hash_queue_wait_seconds_bucket",
        "authd_admission_refusals_total",
        "authd_token_cache_requests_total",
        "authd_token_cache_entries",
        "authd_sessions_opened_total",
        "authd_sessions_ended_total",
        "authd_throttled_total",
        "authd_database_unavailable_total",
        "authd_db_pool_connections",
        "authd_outbox_messages",
        "authd_outbox_dropped_total",
        "authd_purged_rows_total",
        "authd_connections_open",
        "authd_connections_closed_total",
        "authd_body_budget_bytes_in_use",
    ] {
        assert!(
            exposition.contains(&format!("\n{family}")),
            "{family} missing from:\n{exposition}"
        );
    }
    assert!(exposition.contains("# TYPE authd_http_request_duration_seconds histogram"));
    if installed(PROMTOOL) {
        let checked = promtool(&["check", "metrics"], Some(&exposition));
        assert!(
            checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        );
    }
}

#[test]
fn the_rules_file_passes_promtool() {
    if !installed(PROMTOOL) {
        return;
    }
    let checked = promtool(&["check", "rules", RULES], None);
    assert!(
        checked.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[test]
fn a_bad_metrics_address_stops_start_up_naming_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    for address in ["not an address", taken.as_str()] {
        let output = Command::new(BIN)
            .env_remove("RUST_LOG")
            .env(
                "DATABASE_URL",
                format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("db.sqlite3").display()
                ),
            )
            .env("AUTHD_BIND", "127.0.0.1:0")
            .env("AUTHD_METRICS_BIND", address)
            .output()
            .expect("run authd");
        assert!(!output.status.success(), "{address}");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(said.contains("AUTHD_METRICS_BIND"), "{address}: {said}");
    }
}
