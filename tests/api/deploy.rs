//! docs/deploy.md's recipes, run: the systemd unit through `systemd-analyze`, and the example
//! settings file by starting authd with it. The unit's test skips, saying why, where the tool
//! is missing (`.ci/run` installs it).

use std::path::PathBuf;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli::{BIN, Served};
use crate::helpers::{FreshDatabase, PASSWORD, free_port};
use crate::nginx::replace_once;

const DEPLOY_DOC: &str = include_str!("../../docs/deploy.md");
const README: &str = include_str!("../../README.md");
const UNIT: &str = include_str!("../../docs/authd.service");
const EXAMPLE_SETTINGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/authd.example.toml");

/// The highest exposure `systemd-analyze security` may give the unit: its "OK" band.
const MOST_EXPOSURE: f64 = 2.0;
/// The binary the unit names, which the test replaces with the one it built.
const UNIT_BINARY: &str = "ExecStart=/usr/local/bin/authd ";

fn systemd_analyze() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("systemd-analyze"))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        eprintln!(
            "skipped: systemd-analyze is not installed (apt-get install systemd; .ci/run installs it)"
        );
    }
    found
}

fn output_text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_systemd_unit_verifies_cleanly_and_scores_as_documented() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = dir.path().join("authd.service");
    std::fs::write(
        &unit,
        replace_once(UNIT, UNIT_BINARY, &format!("ExecStart={BIN} ")),
    )
    .expect("write the unit");

    let verified = Command::new(&analyze)
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .expect("run systemd-analyze verify");
    let said = output_text(&verified);
    assert!(verified.status.success(), "{said}");
    assert_eq!(said, "", "systemd-analyze verify warns");

    let security = Command::new(&analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("run systemd-analyze security");
    let said = output_text(&security);
    let score = said
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for authd.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{said}"));
    let exposure: f64 = score.parse().expect("a number");
    assert!(
        exposure <= MOST_EXPOSURE,
        "exposure {exposure} above {MOST_EXPOSURE}:\n{said}"
    );
    let quoted = format!("**{score} \"OK\"**");
    assert!(
        DEPLOY_DOC.contains(&quoted),
        "docs/deploy.md quotes {quoted}"
    );
    assert!(README.contains(&quoted), "README.md quotes {quoted}");
    assert!(
        UNIT.contains(&format!("(exposure {score}, \"OK\")")),
        "docs/authd.service quotes {score}"
    );
}

/// A mistake in the unit is what the verify test catches: an unknown setting is a warning,
/// a binary that is not there an error.
#[test]
fn systemd_analyze_verify_reports_what_the_unit_test_rejects() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = dir.path().join("authd.service");
    let with_binary = replace_once(UNIT, UNIT_BINARY, &format!("ExecStart={BIN} "));
    for (broken, what) in [
        (
            replace_once(&with_binary, "NoNewPrivileges=yes", "NoNewPrivilege=yes"),
            "an unknown setting",
        ),
        (
            replace_once(UNIT, UNIT_BINARY, "ExecStart=/nonexistent/authd "),
            "a missing binary",
        ),
    ] {
        std::fs::write(&unit, broken).expect("write the unit");
        let verified = Command::new(&analyze)
            .args(["verify", "--man=no"])
            .arg(&unit)
            .output()
            .expect("run systemd-analyze verify");
        assert!(
            !verified.status.success() || !output_text(&verified).is_empty(),
            "{what} passes unnoticed"
        );
    }
}

#[tokio::test]
async fn authd_starts_with_the_example_settings_file() {
    let database = FreshDatabase::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = format!("127.0.0.1:{}", free_port());
    let served = Served::start_with_flags(
        &dir,
        &["--config", EXAMPLE_SETTINGS],
        &[
            ("DATABASE_URL", database.url.as_str()),
            ("AUTHD_METRICS_BIND", metrics.as_str()),
        ],
    )
    .await;

    let registered = reqwest::Client::new()
        .post(format!("{}/users/", served.base))
        .json(&json!({"username": "alice", "email": "alice@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("register");
    assert_eq!(registered.status(), StatusCode::CREATED);
    let scraped = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .expect("metrics answer on the metrics address");
    assert_eq!(scraped.status(), StatusCode::OK);
    let body = scraped.text().await.expect("body");
    assert!(
        body.contains("authd_http_requests_total"),
        "the request counted:\n{body}"
    );

    let (status, _, stderr) = served.stop();
    assert!(status.success(), "{stderr}");
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"))
        })
        .collect();
    assert!(
        lines
            .iter()
            .any(|line| line.to_string().contains("authd listening")),
        "{stderr}"
    );
}
