//! Database faults: PostgreSQL restarted under load (a private cluster of the test's own), and
//! SQLite's file locked by another process. What the token cache can answer keeps working;
//! the rest answers 503 with DRF's body and `Retry-After` within the database timeout, never
//! 500 and never later; `/readyz` says 503; authd recovers by itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, Reply, TestApp, free_port, on_postgres};

const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);
/// What an answer may take beyond the database timeout: a password hash and a loaded machine.
const MARGIN: Duration = Duration::from_secs(2);
const UNAVAILABLE: &str = "Service temporarily unavailable, try again later.";

/// Every answer a load loop got, by operation and status, and the slowest.
#[derive(Default)]
struct Tally {
    counts: BTreeMap<(&'static str, u16), usize>,
    slowest: Duration,
    unexpected: Vec<String>,
}

impl Tally {
    fn record(&mut self, operation: &'static str, reply: &Reply, took: Duration) {
        *self
            .counts
            .entry((operation, reply.status.as_u16()))
            .or_default() += 1;
        self.slowest = self.slowest.max(took);
        let expected = match reply.status {
            StatusCode::OK | StatusCode::CREATED => true,
            StatusCode::SERVICE_UNAVAILABLE => {
                reply.json() == json!({"detail": UNAVAILABLE})
                    && reply.header("retry-after") == Some("1")
            }
            _ => false,
        };
        if !expected {
            self.unexpected
                .push(format!("{operation}: {} {}", reply.status, reply.text));
        }
    }

    fn count(&self, operation: &str, status: u16) -> usize {
        self.counts
            .iter()
            .filter(|((op, code), _)| *op == operation && *code == status)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Logins, registrations and cached token checks, over and over until `stop`.
async fn load(
    app: Arc<TestApp>,
    index: usize,
    token: String,
    tally: Arc<Mutex<Tally>>,
    stop: Arc<Mutex<bool>>,
) {
    let mut round = 0;
    while !*stop.lock().expect("lock") {
        round += 1;
        let started = Instant::now();
        let me = app.call(Method::GET, "/users/me/", &token, None).await;
        tally
            .lock()
            .expect("lock")
            .record("cached me", &me, started.elapsed());

        let started = Instant::now();
        let login = app.login("alice", PASSWORD).await;
        tally
            .lock()
            .expect("lock")
            .record("login", &login, started.elapsed());

        let started = Instant::now();
        let name = format!("user{index}_{round}");
        let register = app.register(&name, PASSWORD).await;
        tally
            .lock()
            .expect("lock")
            .record("register", &register, started.elapsed());
    }
}

async fn readyz(app: &TestApp) -> StatusCode {
    app.send(app.request(Method::GET, "/readyz")).await.status
}

/// Stops PostgreSQL (fast shutdown: sessions are cut) for a few seconds while logins,
/// registrations and cached token checks run, then starts it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgresql_restart_under_load_answers_503_and_heals() {
    if !on_postgres("restarting PostgreSQL") {
        return;
    }
    let Some(cluster) = PrivatePostgres::new() else {
        return;
    };
    let app = Arc::new(
        TestApp::spawn_on_url(cluster.url(), |s| {
            s.database_timeout = DATABASE_TIMEOUT;
            s.token_cache_ttl = Duration::from_secs(120);
            s.throttling.failures = authd::throttle::FailureLimits::OFF;
        })
        .await,
    );
    let (_, token) = app.create_user("alice").await;
    assert_eq!(
        app.call(Method::GET, "/users/me/", &token, None)
            .await
            .status,
        StatusCode::OK
    );
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(Mutex::new(false));
    let loops: Vec<_> = (0..3)
        .map(|index| {
            tokio::spawn(load(
                app.clone(),
                index,
                token.clone(),
                tally.clone(),
                stop.clone(),
            ))
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    assert_eq!(readyz(&app).await, StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < DATABASE_TIMEOUT + MARGIN);
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.start();
    let back = Instant::now();
    loop {
        let login = app.login("alice", PASSWORD).await;
        if login.status == StatusCode::OK {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "no recovery: {} {}",
            login.status,
            login.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = back.elapsed();
    assert_eq!(readyz(&app).await, StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(2)).await;
    *stop.lock().expect("lock") = true;
    for handle in loops {
        handle.await.expect("load loop");
    }

    let tally = tally.lock().expect("lock");
    eprintln!(
        "PostgreSQL restart: {:?}; slowest answer {:?}; recovered {:?} after the start",
        tally.counts, tally.slowest, recovered
    );
    assert!(tally.unexpected.is_empty(), "{:#?}", tally.unexpected);
    assert!(
        tally.slowest < DATABASE_TIMEOUT + MARGIN,
        "{:?}",
        tally.slowest
    );
    assert_eq!(tally.count("cached me", 503), 0, "the cache answers");
    assert!(tally.count("login", 503) + tally.count("register", 503) > 0);
    assert!(tally.count("login", 200) > 0 && tally.count("register", 201) > 0);
}

/// While PostgreSQL is stopped, `/readyz` answers 503 within its own one-second deadline,
/// although requests may wait the database timeout (5 s, the default) for a connection; and
/// 200 again once PostgreSQL is back.
#[tokio::test]
async fn readiness_answers_within_a_second_while_postgresql_is_stopped() {
    if !on_postgres("stopping PostgreSQL") {
        return;
    }
    let Some(cluster) = PrivatePostgres::new() else {
        return;
    };
    let app = TestApp::spawn_on_url(cluster.url(), |s| {
        s.database_timeout = Duration::from_secs(5);
    })
    .await;
    assert_eq!(readyz(&app).await, StatusCode::OK);
    cluster.stop();
    // One probe's answer stands for a quarter of a second.
    tokio::time::sleep(authd::http::health::READINESS_REUSE).await;
    for _ in 0..3 {
        let started = Instant::now();
        app.send(app.request(Method::GET, "/readyz")).await.assert(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unavailable", "database": "down", "redis": "off"}),
        );
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(1500),
            "answered after {took:?}"
        );
    }
    cluster.start();
    let back = Instant::now();
    while readyz(&app).await != StatusCode::OK {
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "never ready again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Another process holds SQLite's write lock past the busy timeout: writes answer 503 in
/// bounded time, cached token checks and reads go on, and once the lock is gone all is well.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_locked_sqlite_file_answers_503_and_heals() {
    if std::env::var(crate::helpers::POSTGRES_ENV).is_ok() {
        eprintln!("skipped: SQLite's lock, on the SQLite run");
        return;
    }
    let app = TestApp::spawn_with(|s| {
        s.database_timeout = DATABASE_TIMEOUT;
        s.token_cache_ttl = Duration::from_secs(120);
    })
    .await;
    let (_, token) = app.create_user("alice").await;
    let path = sqlite_path(&app);
    let mut locker = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys, time\n\
             db = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             db.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             time.sleep(float(sys.argv[2]))\n",
        ])
        .arg(&path)
        .arg("60")
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(locker.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("the locker reports");
    assert_eq!(line.trim(), "locked");

    let mut tally = Tally::default();
    for round in 0..2 {
        let started = Instant::now();
        let login = app.login("alice", PASSWORD).await;
        tally.record("login", &login, started.elapsed());
        let started = Instant::now();
        let register = app.register(&format!("bob{round}"), PASSWORD).await;
        tally.record("register", &register, started.elapsed());
        let started = Instant::now();
        let me = app.call(Method::GET, "/users/me/", &token, None).await;
        tally.record("cached me", &me, started.elapsed());
    }
    eprintln!(
        "SQLite lock: {:?}; slowest answer {:?}",
        tally.counts, tally.slowest
    );
    assert!(tally.unexpected.is_empty(), "{:#?}", tally.unexpected);
    assert!(
        tally.slowest < DATABASE_TIMEOUT + MARGIN,
        "{:?}",
        tally.slowest
    );
    assert_eq!(tally.count("login", 503), 2, "{:?}", tally.counts);
    assert_eq!(tally.count("register", 503), 2, "{:?}", tally.counts);
    assert_eq!(tally.count("cached me", 200), 2);

    locker.kill().expect("stop the locker");
    locker.wait().expect("locker gone");
    assert_eq!(app.login("alice", PASSWORD).await.status, StatusCode::OK);
    assert_eq!(
        app.register("carol", PASSWORD).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.count("auth_user").await,
        2,
        "the refused sign-ups left nothing"
    );
}

fn sqlite_path(app: &TestApp) -> PathBuf {
    let url = app.state.settings.database_url.expose();
    let path = url
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap_or_default();
    PathBuf::from(path)
}

/// A PostgreSQL cluster of the test's own on a free port (`initdb`, `pg_ctl`), removed when
/// dropped. The shared server is never touched.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    fn new() -> Option<Self> {
        let Some(bin) = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| versions.flatten().map(|v| v.path().join("bin")).max())
            .filter(|bin| bin.join("initdb").exists())
        else {
            eprintln!("skipped: needs initdb (/usr/lib/postgresql/*/bin) for a cluster of its own");
            return None;
        };
        let dir = tempfile::tempdir().expect("temporary directory");
        let cluster = Self {
            dir,
            bin,
            port: free_port(),
        };
        if running_as_root() {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(cluster.dir.path())
                .status()
                .expect("chown");
            assert!(chown.success());
        }
        let data = cluster.data();
        cluster.pg(
            "initdb",
            &[
                "-D",
                data.to_str().expect("path"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        cluster.start();
        Some(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log");
        self.pg(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().expect("path"),
                "-o",
                &options,
                "-l",
                log.to_str().expect("path"),
                "-w",
                "start",
            ],
        );
    }

    fn stop(&self) {
        self.pg(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().expect("path"),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    fn pg(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program)
            .args(args)
            .output()
            .expect("run a PostgreSQL program");
        assert!(
            output.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// PostgreSQL's programs refuse to run as root: as root, they run as `postgres`.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut command = if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        command.current_dir(Path::new("/"));
        command
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data();
        let stopped = self
            .command("pg_ctl")
            .args([
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
        if stopped.is_err() {
            eprintln!(
                "could not stop the private PostgreSQL in {}",
                data.display()
            );
        }
    }
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
