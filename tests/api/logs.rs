//! `AUTHD_LOG_FORMAT=json`: every line on stderr is one JSON object in tracing-subscriber's
//! field names, a request's lines carry the request id it was answered with, every command
//! logs in the chosen format, and an unknown format stops start-up.

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
