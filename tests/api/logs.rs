//! `AUTHD_LOG_FORMAT=json`: every line on stderr is one JSON object in tracing-subscriber's
//! field names, a request's lines carry the request id it was answered with, every command
//! logs in the chosen format, and an unknown format stops start-up. And no secret reaches
//! any record an operator or a user reads: one served binary goes through every flow that
//! writes an audit event and hands out or takes a secret, then the JSON log lines (at `trace`),
//! the audit table, `/users/me/events/` and `authd audit --json` are searched for each secret,
//! whole and as its digest.

use std::time::{Duration, Instant};

use sea_orm::{Database, FromQueryResult, JsonValue, Statement};
use serde_json::{Value, json};

use crate::cli::{Served, authd};
use crate::helpers::PASSWORD;

/// Every line parsed; a line that is not a JSON object fails the test, naming it.
fn parse_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(object @ Value::Object(_)) => object,
            _ => panic!("a log line is not a JSON object: {line}"),
        })
        .collect()
}

#[tokio::test]
async fn json_lines_parse_and_carry_the_answered_request_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(&dir, &[("AUTHD_LOG_FORMAT", "json"), ("RUST_LOG", "debug")]).await;
    let client = reqwest::Client::new();
    let base = served.base.clone();
    let mut answered = Vec::new();
    let created = client
        .post(format!("{base}/users/"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .expect("register");
    assert_eq!(created.status(), 201);
    let login = client
        .post(format!("{base}/token/login/"))
        .form(&[("username", "alice"), ("password", PASSWORD)])
        .send()
        .await
        .expect("login");
    answered.push(
        login.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned(),
    );
    let token = login.json::<Value>().await.expect("json")["auth_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    for path in ["/users/me/", "/no/such/route/"] {
        let reply = client
            .get(format!("{base}{path}"))
            .header("Authorization", format!("Token {token}"))
            .send()
            .await
            .expect("request");
        answered.push(
            reply.headers()["x-request-id"]
                .to_str()
                .expect("ascii")
                .to_owned(),
        );
    }
    let (status, _, stderr) = served.stop();
    assert!(status.success(), "{stderr}");

    let lines = parse_lines(&stderr);
    for line in &lines {
        for field in ["timestamp", "level", "target"] {
            assert!(line[field].is_string(), "{field} missing: {line}");
        }
        assert!(line["fields"].is_object(), "fields missing: {line}");
    }
    assert!(
        lines
            .iter()
            .any(|line| line["fields"]["message"] == "authd listening"),
        "the start-up line: {stderr}"
    );
    for request_id in &answered {
        let request_line = lines
            .iter()
            .find(|line| {
                line["target"] == "authd::request" && line["span"]["request_id"] == **request_id
            })
            .unwrap_or_else(|| panic!("no request line with request_id {request_id}: {stderr}"));
        assert!(
            request_line["fields"]["status"].is_number(),
            "{request_line}"
        );
    }
    for secret in [PASSWORD, &token, &token["authd_".len()..]] {
        assert!(!stderr.contains(secret), "a secret reached the logs");
    }
}

/// One-off commands log in the chosen format too, whether it comes from the environment or
/// from the settings file.
#[test]
fn every_command_logs_in_the_chosen_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let from_env = authd(&dir)
        .env("AUTHD_LOG_FORMAT", "json")
        .env("AUTHD_NOT_A_SETTING", "1")
        .arg("migrate")
        .output()
        .expect("run");
    assert!(from_env.status.success());
    let lines = parse_lines(&String::from_utf8_lossy(&from_env.stderr));
    assert!(
        lines.iter().any(|line| line["level"] == "WARN"
            && line["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("AUTHD_NOT_A_SETTING"))),
        "{lines:?}"
    );

    let config = dir.path().join("authd.toml");
    std::fs::write(&config, "log_format = \"json\"\n").expect("config");
    let from_file = authd(&dir)
        .env("AUTHD_NOT_A_SETTING", "1")
        .args(["--config", config.to_str().expect("utf-8"), "migrate"])
        .output()
        .expect("run");
    assert!(from_file.status.success());
    assert!(!parse_lines(&String::from_utf8_lossy(&from_file.stderr)).is_empty());

    let text = authd(&dir)
        .env("AUTHD_NOT_A_SETTING", "1")
        .arg("migrate")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&text.stderr);
    assert!(
        text.contains("AUTHD_NOT_A_SETTING") && !text.trim_start().starts_with('{'),
        "text by default: {text}"
    );
}

#[test]
fn an_unknown_log_format_stops_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    for command in ["serve", "migrate"] {
        let output = authd(&dir)
            .env("AUTHD_LOG_FORMAT", "xml")
            .args(["--bind", "127.0.0.1:0", command])
            .output()
            .expect("run");
        assert!(!output.status.success(), "{command} started");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("AUTHD_LOG_FORMAT") && stderr.contains("`text` or `json`"),
            "{stderr}"
        );
    }
}

/// A password typed into the username field of a login: stored nowhere, not even as the name
/// of the unknown account it was tried for.
const TYPED_INTO_USERNAME: &str = "Typed-Into-Username-S3cret";
const WRONG_PASSWORD: &str = "Wrong-Password-S3cret";
const SECOND_PASSWORD: &str = "Second-Password-S3cret";
const THIRD_PASSWORD: &str = "Third-Password-S3cret";

struct Secrets(Vec<String>);

impl Secrets {
    /// A token and the SHA-256 digest the database keeps of it.
    fn token(&mut self, token: &str) {
        self.0.push(token.to_owned());
        self.0.push(authd::crypto::token_digest(token));
        if let Some(body) = token.strip_prefix("authd_") {
            self.0.push(body.to_owned());
        }
    }

    #[track_caller]
    fn assert_absent(&self, place: &str, text: &str) {
        for secret in &self.0 {
            assert!(
                !text.contains(secret.as_str()),
                "a secret ({secret:.6}…) is in {place}"
            );
        }
    }
}

async fn post(base: &str, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Token {token}"));
    }
    let reply = request.send().await.expect("request");
    let status = reply.status().as_u16();
    (status, reply.json().await.unwrap_or(Value::Null))
}

async fn oauth(base: &str, form: &[(&str, &str)]) -> Value {
    let reply = reqwest::Client::new()
        .post(format!("{base}/oauth/token"))
        .form(form)
        .send()
        .await
        .expect("token endpoint");
    reply.json().await.expect("json")
}

fn text(value: &Value, name: &str) -> String {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {value}"))
        .to_owned()
}

/// The reset link's uid and token (base64url), from the `.eml` file the file backend wrote (a
/// link is taken only once something follows it: the file may still be being written).
async fn reset_link(outbox: &std::path::Path) -> (String, String) {
    let link = regex::Regex::new(
        r"password/reset/confirm/([A-Za-z0-9_-]+)/([A-Za-z0-9_-]+)[^A-Za-z0-9_-]",
    )
    .expect("pattern");
    let started = Instant::now();
    loop {
        let found = std::fs::read_dir(outbox)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
            .find_map(|mail| {
                link.captures(&mail.replace("=\r\n", "").replace("=\n", ""))
                    .map(|c| (c[1].to_owned(), c[2].to_owned()))
            });
        if let Some(found) = found {
            return found;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no reset mail");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn no_secret_reaches_the_audit_trail_the_events_or_the_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = dir.path().join("mail");
    let mail_url = format!("file://{}", outbox.display());
    let served = Served::start(
        &dir,
        &[
            ("AUTHD_LOG_FORMAT", "json"),
            ("RUST_LOG", "trace"),
            ("AUTHD_EMAIL_URL", &mail_url),
            ("AUTHD_EMAIL_FRONTEND_DOMAIN", "app.example.test"),
        ],
    )
    .await;
    let base = served.base.clone();
    let mut secrets = Secrets(
        [
            PASSWORD,
            TYPED_INTO_USERNAME,
            WRONG_PASSWORD,
            SECOND_PASSWORD,
            THIRD_PASSWORD,
        ]
        .map(str::to_owned)
        .to_vec(),
    );

    let (status, _) = post(
        &base,
        "/users/",
        None,
        json!({"username": "alice", "email": "alice@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 201);
    let (_, login) = post(
        &base,
        "/token/login/",
        None,
        json!({"username": "alice", "password": PASSWORD}),
    )
    .await;
    let first = text(&login, "auth_token");
    secrets.token(&first);
    for (username, password) in [("alice", WRONG_PASSWORD), (TYPED_INTO_USERNAME, PASSWORD)] {
        let (status, _) = post(
            &base,
            "/token/login/",
            None,
            json!({"username": username, "password": password}),
        )
        .await;
        assert_eq!(status, 400);
    }

    let pair = oauth(
        &base,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
    )
    .await;
    let old_refresh = text(&pair, "refresh_token");
    secrets.token(&text(&pair, "access_token"));
    secrets.token(&old_refresh);
    let rotated = oauth(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &old_refresh),
        ],
    )
    .await;
    secrets.token(&text(&rotated, "access_token"));
    secrets.token(&text(&rotated, "refresh_token"));

    let (status, key) = post(
        &base,
        "/token/keys/",
        Some(&first),
        json!({"name": "bot", "current_password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    secrets.token(&text(&key, "key"));

    let client = authd(&dir)
        .args(["client", "create", "Web backend"])
        .output()
        .expect("client create");
    assert!(client.status.success());
    let client: Value = serde_json::from_slice(&client.stdout).expect("one JSON line");
    secrets.token(&text(&client, "client_secret"));

    let (status, _) = post(
        &base,
        "/users/set_password/",
        Some(&first),
        json!({"current_password": PASSWORD, "new_password": SECOND_PASSWORD}),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = post(
        &base,
        "/users/reset_password/",
        None,
        json!({"email": "alice@example.com"}),
    )
    .await;
    assert_eq!(status, 204);
    let (uid, reset_token) = reset_link(&outbox).await;
    secrets.0.push(reset_token.clone());
    let (status, body) = post(
        &base,
        "/users/reset_password_confirm/",
        None,
        json!({"uid": uid, "token": reset_token, "new_password": THIRD_PASSWORD}),
    )
    .await;
    assert_eq!(status, 204, "{body}");

    let (_, login) = post(
        &base,
        "/token/login/",
        None,
        json!({"username": "alice", "password": THIRD_PASSWORD}),
    )
    .await;
    let last = text(&login, "auth_token");
    secrets.token(&last);
    let events = reqwest::Client::new()
        .get(format!("{base}/users/me/events/"))
        .header("Authorization", format!("Token {last}"))
        .send()
        .await
        .expect("events")
        .text()
        .await
        .expect("body");
    let listed: Value = serde_json::from_str(&events).expect("JSON");
    assert!(
        listed["results"]
            .as_array()
            .is_some_and(|events| events.len() >= 6),
        "{listed}"
    );
    secrets.assert_absent("/users/me/events/", &events);
    let (status, _) = post(&base, "/token/logout/", Some(&last), json!({})).await;
    assert_eq!(status, 204);

    let (exit, _, stderr) = served.stop();
    assert!(exit.success(), "{stderr}");
    for line in stderr.lines().filter(|line| !line.is_empty()) {
        assert!(
            serde_json::from_str::<Value>(line).is_ok_and(|line| line.is_object()),
            "a log line is not a JSON object: {line}"
        );
    }
    assert!(
        stderr.contains("\"target\":\"audit\""),
        "audit lines are logged"
    );
    secrets.assert_absent("the JSON logs", &stderr);

    let audit = authd(&dir)
        .args(["audit", "--json"])
        .output()
        .expect("audit");
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    let audit = String::from_utf8_lossy(&audit.stdout).into_owned();
    assert!(audit.lines().count() >= 8, "{audit}");
    for line in audit.lines() {
        serde_json::from_str::<Value>(line).expect("one JSON object per line");
    }
    secrets.assert_absent("`authd audit --json`", &audit);

    let url = format!(
        "sqlite://{}?mode=ro",
        dir.path().join("cli.sqlite3").display()
    );
    let db = Database::connect(&url).await.expect("the database");
    let rows = JsonValue::find_by_statement(Statement::from_string(
        db.get_database_backend(),
        "SELECT * FROM audit_event",
    ))
    .all(&db)
    .await
    .expect("the audit table");
    assert!(rows.len() >= 8, "{rows:?}");
    secrets.assert_absent(
        "the audit table",
        &serde_json::to_string(&rows).expect("json"),
    );
}
