//! docs/deploy.md's recipes, run: the systemd unit through `systemd-analyze`, the example
//! settings file by starting authd with it, and three instances on one PostgreSQL behind the
//! document's nginx configuration, with Redis sharing the request rates. Each skips, saying
//! why, where its tool or service is missing (`.ci/run` installs and sets them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli::{BIN, Served};
use crate::helpers::{FreshDatabase, PASSWORD, free_port, on_postgres, redis_url, unique_id};
use crate::nginx::{Nginx, installed_nginx, replace_once};
use crate::tls::{Authority, PairFiles, answering_https};

const DEPLOY_DOC: &str = include_str!("../../docs/deploy.md");
const README: &str = include_str!("../../README.md");
const UNIT: &str = include_str!("../../docs/authd.service");
const EXAMPLE_SETTINGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/authd.example.toml");

/// The certificate files the example settings file names, which every test replaces.
const EXAMPLE_TLS: [(&str, &str); 2] = [
    ("tls_cert_file", "/etc/authd/tls/fullchain.pem"),
    ("tls_key_file", "/etc/authd/tls/privkey.pem"),
];

/// A CA of the test's own and a pair it signed for `localhost`, written into `dir`; the CA's
/// certificate beside them, for nginx.
struct TestTls {
    authority: Authority,
    env: [(&'static str, String); 2],
    ca_file: PathBuf,
}

impl TestTls {
    fn in_dir(dir: &Path) -> Self {
        let authority = Authority::new("authd deploy test CA");
        let pair = authority.server_pair("authd");
        let files = PairFiles::in_dir(dir);
        files.write(&pair.certificate, &pair.key);
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, &authority.pem).expect("write the CA");
        Self {
            env: files.env(),
            authority,
            ca_file,
        }
    }

    /// `authd --config <the example file> serve` with `env` and this pair, once it answers
    /// `/healthz` over TLS to a client that verifies the certificate.
    async fn start_example(&self, dir: &tempfile::TempDir, env: &[(&str, &str)]) -> Served {
        let mut env = env.to_vec();
        env.extend(self.env.iter().map(|(name, path)| (*name, path.as_str())));
        let served = Served::launch_with_flags(dir, &["--config", EXAMPLE_SETTINGS], &env);
        answering_https(&served, &self.authority.client(&[b"http/1.1"])).await;
        served
    }
}

/// The example file serves TLS from the files an operator installs; the tests override them.
#[test]
fn the_example_settings_file_serves_tls_from_etc_authd_tls() {
    let example = std::fs::read_to_string(EXAMPLE_SETTINGS).expect("example settings");
    let example: toml::Table = example.parse().expect("TOML");
    for (key, path) in EXAMPLE_TLS {
        assert_eq!(
            example.get(key).and_then(|v| v.as_str()),
            Some(path),
            "{key}"
        );
    }
}

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

/// The unit's command line and environment, as systemd would hand them over, with the state
/// directory and the settings file where the test has them: the SQLite URL is one authd takes,
/// and the database file appears under the state directory.
#[tokio::test]
async fn the_units_command_and_environment_start_authd_with_its_database_in_the_state_directory() {
    let command = UNIT
        .lines()
        .find_map(|line| line.strip_prefix(UNIT_BINARY))
        .expect("ExecStart runs authd");
    let flags: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(flags, ["--config", "/etc/authd/authd.toml", "serve"]);
    let environment: Vec<(&str, &str)> = UNIT
        .lines()
        .filter_map(|line| line.strip_prefix("Environment="))
        .map(|pair| pair.split_once('=').expect("NAME=value"))
        .collect();
    assert_eq!(
        environment
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>(),
        ["DATABASE_URL"]
    );
    assert!(
        UNIT.contains("StateDirectory=authd\n"),
        "the state directory is /var/lib/authd"
    );

    let state = tempfile::tempdir().expect("tempdir");
    let database_url = replace_once(
        environment[0].1,
        "/var/lib/authd/",
        &format!("{}/", state.path().display()),
    );
    let metrics = format!("127.0.0.1:{}", free_port());
    let tls = TestTls::in_dir(state.path());
    let served = tls
        .start_example(
            &state,
            &[
                ("DATABASE_URL", database_url.as_str()),
                ("AUTHD_METRICS_BIND", metrics.as_str()),
            ],
        )
        .await;
    assert!(
        state.path().join("authd.sqlite3").is_file(),
        "the database is in the state directory"
    );
    let (status, _, stderr) = served.stop();
    assert!(status.success(), "{stderr}");
}

#[tokio::test]
async fn authd_starts_with_the_example_settings_file() {
    let database = FreshDatabase::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = format!("127.0.0.1:{}", free_port());
    let tls = TestTls::in_dir(dir.path());
    let served = tls
        .start_example(
            &dir,
            &[
                ("DATABASE_URL", database.url.as_str()),
                ("AUTHD_METRICS_BIND", metrics.as_str()),
            ],
        )
        .await;

    let mut https = answering_https(&served, &tls.authority.client(&[b"http/1.1"])).await;
    let (status, _) = https
        .send(
            "POST",
            "/users/",
            None,
            Some(json!({"username": "alice", "email": "alice@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 201);
    // The API port speaks TLS only: a plain HTTP client gets no answer.
    assert!(
        reqwest::get(format!("{}/healthz", served.base))
            .await
            .is_err(),
        "plain HTTP answered on the TLS port"
    );
    let scraped = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .expect("metrics answer on the metrics address");
    assert_eq!(scraped.status(), StatusCode::OK);
    let body = scraped.text().await.expect("body");
    assert!(
        body.contains(r#"authd_http_requests_total{route="/users/",method="POST",status="201"} 1"#),
        "the sign-up over TLS counted:\n{body}"
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
        lines.iter().any(|line| {
            let line = line.to_string();
            line.contains("authd listening") && line.contains(r#""tls":true"#)
        }),
        "{stderr}"
    );
}

/// The one ```nginx block of docs/deploy.md.
fn documented_cluster() -> &'static str {
    let mut blocks = DEPLOY_DOC.split("```nginx\n").skip(1);
    let block = blocks.next().expect("docs/deploy.md has an nginx block");
    assert!(blocks.next().is_none(), "one nginx block");
    block.split("\n```").next().expect("the block ends")
}

/// The documented upstream keep-alive, in seconds.
fn documented_keepalive_timeout() -> Duration {
    let value = documented_cluster()
        .lines()
        .find_map(|line| line.trim().strip_prefix("keepalive_timeout "))
        .expect("keepalive_timeout is set explicitly");
    let seconds = value
        .trim_end_matches(';')
        .strip_suffix('s')
        .expect("in seconds");
    Duration::from_secs(seconds.parse().expect("whole seconds"))
}

/// nginx must close an idle upstream connection before authd does: authd's idle limit is the
/// smaller of its keep-alive and header read timeouts.
#[test]
fn the_documented_upstream_keepalive_ends_before_authds_idle_limit() {
    let defaults = authd::config::Settings::default().connections;
    let authd_idle = defaults
        .keep_alive_timeout
        .min(defaults.header_read_timeout);
    let nginx_idle = documented_keepalive_timeout();
    assert!(
        nginx_idle < authd_idle,
        "nginx {nginx_idle:?} against authd {authd_idle:?}"
    );
    let example = std::fs::read_to_string(EXAMPLE_SETTINGS).expect("example settings");
    let example: toml::Table = example.parse().expect("TOML");
    for key in ["keep_alive_timeout_seconds", "header_read_timeout_seconds"] {
        let seconds = example[key].as_integer().expect("whole seconds");
        assert!(
            nginx_idle < Duration::from_secs(seconds as u64),
            "{key} in the example is not above nginx's {nginx_idle:?}"
        );
    }
}

/// nginx with docs/deploy.md's block: its three upstreams replaced by `addresses` (in turn, as
/// many times as needed), trusting the CA in `ca_file` for `localhost`; it logs each request's
/// test step, upstream and status.
async fn documented_nginx(nginx: &Path, addresses: &[String], ca_file: &Path) -> Nginx {
    Nginx::run(nginx, |port, root| {
        let mut server = documented_cluster().to_owned();
        for (documented, address) in ["127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"]
            .iter()
            .zip(addresses.iter().cycle())
        {
            server = replace_once(
                &server,
                &format!("server {documented} "),
                &format!("server {address} "),
            );
        }
        let server = replace_once(
            &server,
            "listen 8080;",
            &format!("listen 127.0.0.1:{port};"),
        );
        let server = replace_once(
            &server,
            "/etc/nginx/authd-ca.pem",
            &ca_file.display().to_string(),
        );
        let server = replace_once(&server, "authd.internal", "localhost");
        format!(
            "log_format steps '$http_x_test_step $upstream_addr $status';\n\
             access_log {}/access.log steps;\n{server}",
            root.display()
        )
    })
    .await
}

/// nginx verifies the instances' certificate: one that another CA issued (a machine in the
/// middle, or an instance with the wrong pair) gets no request, and the client gets 502;
/// trusting the right CA, the same nginx configuration reaches the instance.
#[tokio::test]
async fn the_documented_nginx_refuses_an_instance_it_cannot_verify() {
    let Some(nginx) = installed_nginx() else {
        return;
    };
    let database = FreshDatabase::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let served_pair = dir.path().join("served");
    let other = dir.path().join("other");
    for path in [&served_pair, &other] {
        std::fs::create_dir(path).expect("a directory per CA");
    }
    let tls = TestTls::in_dir(&served_pair);
    let impostor_ca = TestTls::in_dir(&other).ca_file;
    let served = tls
        .start_example(&dir, &[("DATABASE_URL", database.url.as_str())])
        .await;
    let address = [served.base.trim_start_matches("http://").to_owned()];
    for (ca_file, expected) in [
        (&impostor_ca, StatusCode::BAD_GATEWAY),
        (&tls.ca_file, StatusCode::OK),
    ] {
        let proxy = documented_nginx(&nginx, &address, ca_file).await;
        let reply = reqwest::get(proxy.url("/healthz"))
            .await
            .expect("nginx answers");
        assert_eq!(reply.status(), expected, "trusting {}", ca_file.display());
    }
    let (status, _, stderr) = served.stop();
    assert!(status.success(), "{stderr}");
}

/// The documented cluster: three `authd` processes and nginx, and the access log in which
/// nginx names, for each request the test tags, which instance answered.
struct Cluster {
    instances: Vec<Served>,
    _dir: tempfile::TempDir,
    nginx: Nginx,
    client: reqwest::Client,
}

const STEP_HEADER: &str = "X-Test-Step";

impl Cluster {
    async fn start(nginx: &Path, database: &str, redis: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let prefix = format!("authd-test-deploy-{}:", unique_id());
        let env = [
            ("DATABASE_URL", database),
            ("AUTHD_TRUSTED_PROXIES", "127.0.0.1/32"),
            ("AUTHD_THROTTLE_USER", "10/m"),
            ("AUTHD_THROTTLE_REDIS_URL", redis),
            ("AUTHD_THROTTLE_REDIS_PREFIX", prefix.as_str()),
        ];
        // The instances serve TLS, as the settings file has them, and nginx verifies them.
        let tls = TestTls::in_dir(dir.path());
        let env: Vec<(&str, &str)> = env
            .into_iter()
            .chain(tls.env.iter().map(|(name, path)| (*name, path.as_str())))
            .collect();
        let connector = tls.authority.client(&[b"http/1.1"]);
        let mut instances = Vec::new();
        for _ in 0..3 {
            let served = Served::launch(&dir, &env);
            answering_https(&served, &connector).await;
            instances.push(served);
        }
        let addresses: Vec<String> = instances
            .iter()
            .map(|served| served.base.trim_start_matches("http://").to_owned())
            .collect();
        let nginx = documented_nginx(nginx, &addresses, &tls.ca_file).await;
        Self {
            instances,
            _dir: dir,
            nginx,
            client: reqwest::Client::new(),
        }
    }

    /// A request through nginx, tagged `step` in its access log, from `client` (the address
    /// nginx passes on in `X-Forwarded-For`).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        step: &str,
        client: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .request(method, self.nginx.url(path))
            .header(STEP_HEADER, step)
            .header("X-Forwarded-For", client);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Token {token}"));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("nginx answers")
    }

    async fn me(&self, step: &str, token: &str) -> StatusCode {
        self.send(
            reqwest::Method::GET,
            "/users/me/",
            step,
            "203.0.113.9",
            Some(token),
            None,
        )
        .await
        .status()
    }

    async fn register_and_log_in(&self, username: &str, client: &str) -> String {
        let body = json!({
            "username": username, "email": format!("{username}@example.com"), "password": PASSWORD,
        });
        let registered = self
            .send(
                reqwest::Method::POST,
                "/users/",
                &format!("register-{username}"),
                client,
                None,
                Some(body),
            )
            .await;
        assert_eq!(registered.status(), StatusCode::CREATED);
        let logged_in = self
            .send(
                reqwest::Method::POST,
                "/token/login/",
                &format!("login-{username}"),
                client,
                None,
                Some(json!({"username": username, "password": PASSWORD})),
            )
            .await;
        assert_eq!(logged_in.status(), StatusCode::OK);
        let reply: Value = logged_in.json().await.expect("JSON");
        reply["auth_token"].as_str().expect("a token").to_owned()
    }

    /// The instance that answered each tagged step and its status, once nginx has logged
    /// them all (it writes the line after the answer is sent).
    async fn answered(&self, steps: &[String]) -> BTreeMap<String, (String, u16)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log =
                std::fs::read_to_string(self.nginx.dir().join("access.log")).unwrap_or_default();
            let logged: BTreeMap<String, (String, u16)> = log
                .lines()
                .filter_map(|line| {
                    let mut fields = line.split(' ');
                    let step = fields.next()?.to_owned();
                    let upstream = fields.next()?.to_owned();
                    let status = fields.next()?.parse().ok()?;
                    Some((step, (upstream, status)))
                })
                .filter(|(step, _)| steps.contains(step))
                .collect();
            if logged.len() == steps.len() {
                return logged;
            }
            assert!(
                Instant::now() < deadline,
                "nginx logged {logged:?} of {steps:?}:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn addresses(&self) -> BTreeSet<String> {
        self.instances
            .iter()
            .map(|served| served.base.trim_start_matches("http://").to_owned())
            .collect()
    }
}

fn steps(name: &str, count: usize) -> Vec<String> {
    (1..=count).map(|n| format!("{name}-{n}")).collect()
}

#[track_caller]
fn assert_all_instances(answered: &BTreeMap<String, (String, u16)>, cluster: &Cluster, what: &str) {
    let instances: BTreeSet<String> = answered.values().map(|(up, _)| up.clone()).collect();
    assert_eq!(instances, cluster.addresses(), "{what}: {answered:?}");
}

#[tokio::test]
async fn three_instances_behind_the_documented_nginx_share_logouts_and_rates() {
    let Some(nginx) = installed_nginx() else {
        return;
    };
    if !on_postgres("three instances on one database") {
        return;
    }
    let Some(redis) = redis_url("three instances sharing the request rates") else {
        return;
    };
    let database = FreshDatabase::new().await;
    let cluster = Cluster::start(&nginx, &database.url, &redis).await;

    // Every instance answers the token once, and so holds it in its cache.
    let alice = cluster.register_and_log_in("alice", "198.51.100.1").await;
    let warm = steps("warm", 3);
    for step in &warm {
        assert_eq!(cluster.me(step, &alice).await, StatusCode::OK);
    }
    assert_all_instances(&cluster.answered(&warm).await, &cluster, "warm-up");
    let logout = cluster
        .send(
            reqwest::Method::POST,
            "/token/logout/",
            "logout",
            "198.51.100.1",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    // The logout answered once every instance dropped the token: the very next request is
    // refused, whichever instance answers it, and so is every one after.
    let after = steps("after-logout", 6);
    for step in &after {
        assert_eq!(
            cluster.me(step, &alice).await,
            StatusCode::UNAUTHORIZED,
            "{step}"
        );
    }
    assert_all_instances(&cluster.answered(&after).await, &cluster, "after logout");

    // Ten requests in the minute, wherever they land; then refused at every instance.
    let bob = cluster.register_and_log_in("bob", "198.51.100.2").await;
    let admitted = steps("admitted", 10);
    for step in &admitted {
        assert_eq!(cluster.me(step, &bob).await, StatusCode::OK, "{step}");
    }
    assert_all_instances(&cluster.answered(&admitted).await, &cluster, "admitted");
    let refused = steps("refused", 3);
    for step in &refused {
        let reply = cluster
            .send(
                reqwest::Method::GET,
                "/users/me/",
                step,
                "203.0.113.9",
                Some(&bob),
                None,
            )
            .await;
        assert_eq!(reply.status(), StatusCode::TOO_MANY_REQUESTS, "{step}");
        let wait: u64 = reply
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok())
            .expect("Retry-After in seconds");
        assert!((1..=60).contains(&wait), "Retry-After {wait}");
    }
    assert_all_instances(&cluster.answered(&refused).await, &cluster, "refused");
}
