//! The `authd` binary itself: commands, settings errors, logs and graceful shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{PASSWORD, free_port};

pub const BIN: &str = env!("CARGO_BIN_EXE_authd");

pub(crate) fn authd(dir: &tempfile::TempDir) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .env(
            "DATABASE_URL",
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("cli.sqlite3").display()
            ),
        );
    command
}

#[test]
fn openapi_command_prints_the_committed_spec() {
    let output = Command::new(BIN)
        .arg("openapi")
        .output()
        .expect("run authd openapi");
    assert!(output.status.success());
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .expect("openapi.yaml");
    assert!(
        String::from_utf8_lossy(&output.stdout) == committed,
        "`authd openapi` differs from openapi.yaml"
    );
}

#[test]
fn migrate_creates_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = authd(&dir).arg("migrate").output().expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("cli.sqlite3").exists());
    let again = authd(&dir).arg("migrate").output().expect("run");
    assert!(again.status.success(), "migrating twice is harmless");
}

/// `authd migrate` opens the database and nothing else (no mailer, hash pool or Redis): a broken
/// email template stops `serve`, not a migration (an operator upgrading the schema before
/// fixing the rest, or a migration job run without the service's mail set-up).
#[test]
fn migrate_opens_only_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).expect("templates dir");
    std::fs::write(templates.join("activation.txt"), "{% if %}").expect("a broken template");
    let templates = templates.to_str().expect("a UTF-8 path");
    let served = authd(&dir)
        .env("AUTHD_EMAIL_TEMPLATES_DIR", templates)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .output()
        .expect("run");
    assert!(!served.status.success(), "serve refuses the template");
    assert!(String::from_utf8_lossy(&served.stderr).contains("activation.txt"));
    let migrated = authd(&dir)
        .env("AUTHD_EMAIL_TEMPLATES_DIR", templates)
        .arg("migrate")
        .output()
        .expect("run");
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
}

#[test]
fn a_bad_setting_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, value) in [
        ("AUTHD_HIDE_USERS", "perhaps"),
        ("AUTHD_BIND", "nowhere"),
        ("AUTHD_LOGIN_FIELD", "phone"),
        ("AUTHD_TOKEN_IDLE_SECONDS", "30"),
        // hyper's smallest buffer is 8192 bytes.
        ("AUTHD_MAX_HEADER_BYTES", "4096"),
    ] {
        let output = authd(&dir)
            .env(name, value)
            .arg("serve")
            .output()
            .expect("run");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
    let output = authd(&dir)
        .args(["--bind", "bad", "migrate"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--bind"));
}

#[test]
fn unknown_authd_variables_get_a_warning_known_ones_do_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = authd(&dir)
        .env("AUTHD_HIDE_USER", "false")
        .env("AUTHD_TEST_SOMETHING", "1")
        .env("AUTHD_SUPERUSER_PASSWORD", "x")
        .arg("migrate")
        .output()
        .expect("run");
    assert!(output.status.success(), "a warning, not an error");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.matches("AUTHD_HIDE_USER").count(),
        2,
        "one warning line naming it: {stderr}"
    );
    assert!(!stderr.contains("AUTHD_TEST_SOMETHING"), "{stderr}");
    assert!(!stderr.contains("AUTHD_SUPERUSER_PASSWORD"), "{stderr}");
}

/// Logging starts only once the settings are read (its format is one), so a setting refused at
/// start-up cannot be explained by a warning line: the misspelt variable that likely caused it
/// is named in the error itself.
#[test]
fn a_refused_setting_names_the_misspelt_variable_beside_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = authd(&dir)
        .env("AUTHD_TLS_CRT_FILE", "/etc/authd/cert.pem")
        .env("AUTHD_TLS_KEY_FILE", "/etc/authd/key.pem")
        .arg("migrate")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("AUTHD_TLS_CRT_FILE") && stderr.contains("AUTHD_TLS_KEY_FILE"),
        "{stderr}"
    );
}

#[test]
fn createsuperuser_applies_the_validators_and_sets_staff() {
    let dir = tempfile::tempdir().expect("tempdir");
    let weak = create_root(&dir)
        .env("AUTHD_SUPERUSER_PASSWORD", "password")
        .output()
        .expect("run");
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("This password is too common."));
    let missing = create_root(&dir)
        .env_remove("AUTHD_SUPERUSER_PASSWORD")
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("AUTHD_SUPERUSER_PASSWORD"));
    let ok = create_root(&dir)
        .env("AUTHD_SUPERUSER_PASSWORD", PASSWORD)
        .output()
        .expect("run");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let user = stored_user(&dir, "root").principal;
    assert!(user.is_staff && user.is_superuser);
}

/// Django's createsuperuser makes an active account; activation by email is for sign-ups.
#[test]
fn createsuperuser_makes_an_active_superuser_even_under_activation_by_email() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ok = create_root(&dir)
        .env("AUTHD_SUPERUSER_PASSWORD", PASSWORD)
        .env("AUTHD_SEND_ACTIVATION_EMAIL", "true")
        .output()
        .expect("run");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let user = stored_user(&dir, "root").principal;
    assert!(
        user.is_active && user.is_staff && user.is_superuser,
        "{user:?}"
    );
    assert!(
        !String::from_utf8_lossy(&ok.stdout).contains("activate"),
        "no activation email"
    );
}

/// `authd createsuperuser` for `root`, reading the password from the environment.
fn create_root(dir: &tempfile::TempDir) -> Command {
    let mut command = authd(dir);
    command.args([
        "createsuperuser",
        "--username",
        "root",
        "--email",
        "root@example.com",
        "--no-input",
    ]);
    command
}

/// A user as the command-line runs left it in the database.
fn stored_user(dir: &tempfile::TempDir, username: &str) -> authd::store::Credentials {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("cli.sqlite3").display()
        );
        let db = authd::store::connect(&url, 1, std::time::Duration::from_secs(5))
            .await
            .expect("connect");
        authd::store::users::find_by_username(&db, username)
            .await
            .expect("query")
            .expect("the user exists")
    })
}

/// A child process that is killed if the test ends without stopping it (a failed assertion),
/// so no server outlives its test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `authd serve` as a child process, with its output collected.
pub(crate) struct Served {
    child: KillOnDrop,
    pub(crate) base: String,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Served {
    pub(crate) async fn start(dir: &tempfile::TempDir, env: &[(&str, &str)]) -> Self {
        Self::start_with_flags(dir, &[], env).await
    }

    /// `authd FLAGS --bind <a free port> serve`, with `env` added to the environment, once it
    /// answers `/healthz`.
    pub(crate) async fn start_with_flags(
        dir: &tempfile::TempDir,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let served = Self::launch_with_flags(dir, flags, env);
        let started = Instant::now();
        while reqwest::get(format!("{}/healthz", served.base))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "authd did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        served
    }

    /// `authd serve` started, without waiting for it to answer (it may not speak plain HTTP).
    pub(crate) fn launch(dir: &tempfile::TempDir, env: &[(&str, &str)]) -> Self {
        Self::launch_with_flags(dir, &[], env)
    }

    /// `authd FLAGS --bind <a free port> serve`, without waiting (it may not speak plain HTTP).
    pub(crate) fn launch_with_flags(
        dir: &tempfile::TempDir,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let mut command = authd(dir);
        command
            .args(flags)
            .args(["--bind", &format!("127.0.0.1:{port}"), "serve"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("spawn authd");
        let read_all = |pipe: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                BufReader::new(pipe)
                    .lines()
                    .map_while(Result::ok)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        };
        let stdout = read_all(Box::new(child.stdout.take().expect("stdout")));
        let stderr = read_all(Box::new(child.stderr.take().expect("stderr")));
        let base = format!("http://127.0.0.1:{port}");
        Self {
            child: KillOnDrop(child),
            base,
            stdout,
            stderr,
        }
    }

    async fn register(&self, username: &str, email: &str) {
        let reply = reqwest::Client::new()
            .post(format!("{}/users/", self.base))
            .json(&json!({"username": username, "email": email, "password": PASSWORD}))
            .send()
            .await
            .expect("register");
        assert_eq!(reply.status(), 201);
    }

    /// The address it listens on, for a client that speaks TLS.
    pub(crate) fn address(&self) -> std::net::SocketAddr {
        self.base
            .trim_start_matches("http://")
            .parse()
            .expect("a socket address")
    }

    /// Sends `signal` (a `libc::SIG*` number) to the process.
    pub(crate) fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with a pid we own and a valid signal number.
        unsafe {
            libc::kill(self.child.0.id() as i32, signal);
        }
    }

    /// Whether the process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }

    /// SIGTERM, then the exit status, stdout and stderr.
    pub(crate) fn stop(mut self) -> (std::process::ExitStatus, String, String) {
        self.signal(libc::SIGTERM);
        let status = self.child.0.wait().expect("wait");
        (
            status,
            self.stdout.join().expect("stdout"),
            self.stderr.join().expect("stderr"),
        )
    }
}

/// The header read timeout also ends idle connections, so a longer keep-alive cannot hold: it
/// is accepted, with a warning at start-up. The defaults give none.
#[tokio::test]
async fn a_keep_alive_longer_than_the_header_timeout_logs_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(&dir, &[("AUTHD_KEEP_ALIVE_TIMEOUT_SECONDS", "60")]).await;
    let (status, _, stderr) = served.stop();
    assert!(status.success());
    assert!(
        stderr.contains("AUTHD_KEEP_ALIVE_TIMEOUT_SECONDS is longer"),
        "{stderr}"
    );
    let served = Served::start(&dir, &[]).await;
    let (_, _, stderr) = served.stop();
    assert!(
        !stderr.contains("AUTHD_KEEP_ALIVE_TIMEOUT_SECONDS"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_console_backend_prints_whole_messages_to_stdout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(&dir, &[("AUTHD_SEND_CONFIRMATION_EMAIL", "true")]).await;
    served.register("alice", "alice@example.com").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, stdout, stderr) = served.stop();
    assert!(status.success());
    let stdout = stdout.replace("\n ", " ");
    assert!(stdout.contains("To: alice@example.com"), "{stdout}");
    assert!(
        stdout.contains(
            "Subject: localhost:8000 - Your account has been successfully created and activated!"
        ),
        "{stdout}"
    );
    assert!(
        stderr.contains("for development only"),
        "start-up warning: {stderr}"
    );
    assert!(
        !stderr.contains("Your account has been created"),
        "messages stay out of the logs"
    );
}

#[tokio::test]
async fn the_file_backend_writes_eml_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = dir.path().join("mail");
    let url = format!("file://{}", outbox.display());
    let served = Served::start(
        &dir,
        &[
            ("AUTHD_SEND_CONFIRMATION_EMAIL", "true"),
            ("AUTHD_EMAIL_URL", &url),
        ],
    )
    .await;
    served.register("alice", "alice@example.com").await;
    let started = Instant::now();
    let file = loop {
        let found = std::fs::read_dir(&outbox)
            .ok()
            .and_then(|mut entries| entries.next())
            .and_then(Result::ok);
        if let Some(entry) = found {
            break entry.path();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no .eml file");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(file.extension().and_then(|e| e.to_str()), Some("eml"));
    assert!(
        std::fs::read_to_string(&file)
            .expect("eml")
            .contains("To: alice@example.com")
    );
    assert!(served.stop().0.success());
}

/// A message still pending when the service stops is delivered after it starts again, once.
#[tokio::test]
async fn pending_messages_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let smtp_port = free_port();
    let url = format!("smtp://127.0.0.1:{smtp_port}");
    let env = [
        ("AUTHD_SEND_CONFIRMATION_EMAIL", "true"),
        ("AUTHD_EMAIL_URL", url.as_str()),
        ("AUTHD_EMAIL_FRONTEND_DOMAIN", "app.example.test"),
        ("AUTHD_EMAIL_RETRY_SECONDS", "1"),
    ];
    let served = Served::start(&dir, &env).await;
    served.register("alice", "alice@example.com").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _, stderr) = served.stop();
    assert!(status.success());
    assert!(
        stderr.contains("will retry"),
        "the first attempt failed: {stderr}"
    );

    let smtp = crate::smtp::SmtpServer::start_on(smtp_port).await;
    let served = Served::start(&dir, &env).await;
    let messages = smtp.wait_for(1).await;
    assert_eq!(messages[0].recipients, ["alice@example.com"]);
    assert_eq!(smtp.settle().await.len(), 1, "delivered once");
    assert!(served.stop().0.success());
}
/// Serves with trace logging, drives a full session, then SIGTERM: the process exits cleanly
/// and no password, token or digest ever reached the logs.
#[tokio::test]
async fn serve_logs_no_secrets_and_shuts_down_gracefully() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut child = KillOnDrop(
        authd(&dir)
            .env("RUST_LOG", "trace")
            .args(["--bind", &format!("127.0.0.1:{port}"), "serve"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn authd"),
    );
    let stderr = child.0.stderr.take().expect("stderr");
    let logs = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });

    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "authd did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let created = client
        .post(format!("{base}/users/"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .expect("register");
    assert_eq!(created.status(), 201);
    let login: serde_json::Value = client
        .post(format!("{base}/token/login/"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["auth_token"].as_str().expect("token").to_owned();
    let me = client
        .get(format!("{base}/users/me/"))
        .header("Authorization", format!("Token {token}"))
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), 200);
    let logout = client
        .post(format!("{base}/token/logout/"))
        .header("Authorization", format!("Token {token}"))
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), 204);

    // SAFETY: kill(2) with a pid we own and a valid signal number.
    unsafe {
        libc::kill(child.0.id() as i32, libc::SIGTERM);
    }
    let status = child.0.wait().expect("wait");
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let logs = logs.join().expect("log reader").join("\n");
    assert!(
        logs.contains("authd listening") && logs.contains("sqlite"),
        "start-up line: {logs}"
    );
    assert!(
        logs.contains("path=/users/me/") && logs.contains("status=200"),
        "request lines: {logs}"
    );
    for secret in [
        PASSWORD.to_owned(),
        token.clone(),
        token["authd_".len()..].to_owned(),
        authd::crypto::token_digest(&token),
    ] {
        assert!(!logs.contains(&secret), "a secret reached the logs");
    }
    assert!(
        !logs.to_lowercase().contains("authorization: token"),
        "an Authorization header reached the logs"
    );
}

/// A URL whose password holds an unencoded `/`, `#` or `@` stops start-up with a message that
/// names the setting and never echoes the password (the driver's own message did, whole).
#[test]
fn an_unencoded_database_password_is_named_not_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    for url in [
        "postgres://authd:pa#ss-SECRET@127.0.0.1:5432/postgres",
        "postgres://authd:pa/ss-SECRET@127.0.0.1:5432/postgres",
    ] {
        let output = authd(&dir)
            .env("DATABASE_URL", url)
            .env("AUTHD_DATABASE_TIMEOUT_MS", "1000")
            .arg("migrate")
            .output()
            .expect("run");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("DATABASE_URL: the password must be percent-encoded"),
            "{stderr}"
        );
        assert!(!stderr.contains("SECRET"), "{stderr}");
    }
}

/// Failed password checks and 429s are logged as warnings with the canonical account (only when
/// it exists) and the client address; what was typed for an unknown account (maybe a password
/// typed into the wrong field) never is.
#[tokio::test]
async fn failed_checks_and_throttles_are_logged_with_account_and_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(&dir, &[("AUTHD_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    served.register("Alice", "alice@example.com").await;
    let client = reqwest::Client::new();
    let login = |username: &'static str, password: &'static str| {
        client
            .post(format!("{}/token/login/", served.base))
            .header("X-Forwarded-For", "203.0.113.5")
            .json(&json!({"username": username, "password": password}))
            .send()
    };
    let typo = "hunter2-typed-into-the-username";
    assert_eq!(login(typo, "whatever").await.expect("login").status(), 400);
    for _ in 0..10 {
        assert_eq!(login("ALICE", "wrong").await.expect("login").status(), 400);
    }
    assert_eq!(login("alice", PASSWORD).await.expect("login").status(), 429);
    let (_, _, logs) = served.stop();
    let lines: Vec<&str> = logs.lines().collect();
    let failed: Vec<&&str> = lines
        .iter()
        .filter(|line| line.contains("WARN") && line.contains("password check failed"))
        .collect();
    assert_eq!(failed.len(), 11, "{logs}");
    assert!(
        failed
            .iter()
            .filter(|line| line.contains("account=\"alice\"") && line.contains("203.0.113.5"))
            .count()
            == 10,
        "{logs}"
    );
    let throttled: Vec<&&str> = lines
        .iter()
        .filter(|line| line.contains("WARN") && line.contains("password check throttled"))
        .collect();
    assert_eq!(throttled.len(), 1, "{logs}");
    assert!(
        throttled[0].contains("account=\"alice\"") && throttled[0].contains("203.0.113.5"),
        "{logs}"
    );
    assert!(
        !logs.contains(typo),
        "an unknown login value reached the logs"
    );
    assert!(!logs.contains(PASSWORD), "a password reached the logs");
}

/// `authd changepassword` prompts on a terminal: `script` (util-linux) provides one.
#[test]
fn changepassword_prompts_validates_and_revokes_tokens() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: `script` (util-linux) is needed to give the prompt a terminal");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let created = create_root(&dir)
        .env("AUTHD_SUPERUSER_PASSWORD", PASSWORD)
        .output()
        .expect("run");
    assert!(created.status.success());
    let change = |first: &str, second: &str| {
        let mut child = Command::new("script")
            .args(["-qec", &format!("{BIN} changepassword root"), "/dev/null"])
            .current_dir(dir.path())
            .env(
                "DATABASE_URL",
                format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("cli.sqlite3").display()
                ),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("script");
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        // Each answer goes after its prompt appeared, as a person would type it.
        std::thread::sleep(Duration::from_millis(400));
        writeln!(stdin, "{first}").expect("type");
        std::thread::sleep(Duration::from_millis(200));
        writeln!(stdin, "{second}").expect("type");
        drop(stdin);
        let output = child.wait_with_output().expect("wait");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (ok, output) = change("short", "short");
    assert!(
        !ok && output.contains("This password is too short."),
        "{output}"
    );
    let (ok, output) = change("another fine secret", "a different one");
    assert!(!ok && output.contains("didn't match"), "{output}");
    let (ok, output) = change("another fine secret", "another fine secret");
    assert!(
        ok && output.contains("Password changed successfully for user 'root'"),
        "{output}"
    );
    assert!(
        !output.contains("INFO"),
        "one-off commands do not log at info: {output}"
    );

    let user = stored_user(&dir, "root");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let hasher = authd::crypto::PasswordHasher::new(authd::crypto::HashCost::OWASP_MINIMUM, 1)
        .expect("pool");
    let verified = runtime.block_on(
        hasher
            .admit()
            .expect("room")
            .verify("another fine secret".into(), user.password_hash),
    );
    assert!(verified.expect("verify").matches);
}

/// A request still being received when SIGTERM arrives is answered before the process exits.
#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(&dir, &[]).await;
    served.register("alice", "alice@example.com").await;
    let body =
        serde_json::to_vec(&json!({"username": "alice", "password": PASSWORD})).expect("json");
    // The body trickles in over about a second.
    let chunks: Vec<Vec<u8>> = body.chunks(8).map(<[u8]>::to_vec).collect();
    let slow = futures::stream::unfold(chunks.into_iter(), |mut chunks| async move {
        let chunk = chunks.next()?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        Some((Ok::<_, std::io::Error>(chunk), chunks))
    });
    let request = reqwest::Client::new()
        .post(format!("{}/token/login/", served.base))
        .header("Content-Type", "application/json")
        .body(reqwest::Body::wrap_stream(slow))
        .send();
    let in_flight = tokio::spawn(request);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = std::thread::spawn(move || served.stop());
    let reply = in_flight
        .await
        .expect("join")
        .expect("the in-flight request got an answer");
    assert_eq!(reply.status(), 200);
    let (status, _, stderr) = stopping.join().expect("stop");
    assert!(status.success());
    assert!(
        stderr.contains("letting in-flight requests finish"),
        "{stderr}"
    );
}

/// SIGTERM while the worker is stuck sending a message (the SMTP server accepted the
/// connection and never answers): the worker hands the message back as it stops, so the next
/// start sends it at once instead of after the two-minute lease.
#[tokio::test]
async fn a_graceful_stop_hands_back_the_message_being_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let smtp_port = black_hole.local_addr().expect("addr").port();
    let swallow = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = black_hole.accept().await {
            held.push(stream);
        }
    });
    let url = format!("smtp://127.0.0.1:{smtp_port}");
    let env = [
        ("AUTHD_SEND_CONFIRMATION_EMAIL", "true"),
        ("AUTHD_EMAIL_URL", url.as_str()),
        ("AUTHD_EMAIL_FRONTEND_DOMAIN", "app.example.test"),
    ];
    let served = Served::start(&dir, &env).await;
    served.register("alice", "alice@example.com").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped = Instant::now();
    let (status, _, stderr) = tokio::task::spawn_blocking(move || served.stop())
        .await
        .expect("join");
    assert!(status.success(), "{stderr}");
    assert!(
        stopped.elapsed() < Duration::from_secs(20),
        "the stop did not hang"
    );
    swallow.abort();
    let _ = swallow.await;

    let smtp = crate::smtp::SmtpServer::start_on(smtp_port).await;
    let served = Served::start(&dir, &env).await;
    let messages = smtp.wait_for(1).await;
    assert_eq!(messages[0].recipients, ["alice@example.com"]);
    let (status, _, stderr) = tokio::task::spawn_blocking(move || served.stop())
        .await
        .expect("join");
    assert!(status.success(), "{status}: {stderr}");
}

/// A 500 says what failed in the log (the whole chain of causes), not just "database
/// error", and nothing of it in the answer.
#[tokio::test]
async fn a_server_error_logs_its_cause() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(&dir, &[]).await;
    served.register("alice", "alice@example.com").await;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("cli.sqlite3").display()
    );
    let db = authd::store::connect(&url, 1, std::time::Duration::from_secs(5))
        .await
        .expect("connect");
    sea_orm::ConnectionTrait::execute_unprepared(&db, "DROP TABLE auth_token")
        .await
        .expect("drop");
    let reply = reqwest::Client::new()
        .post(format!("{}/token/login/", served.base))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(reply.status(), 500);
    let body = reply.text().await.expect("body");
    assert_eq!(body, r#"{"detail":"A server error occurred."}"#);
    let (_, _, stderr) = served.stop();
    let failure = stderr
        .lines()
        .find(|line| line.contains("request failed"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(failure.contains("no such table: auth_token"), "{failure}");
}
