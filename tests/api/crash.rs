//! Crash safety: `authd serve` killed with SIGKILL in the middle of a storm of registrations,
//! logins and password changes, then started again on the same database, a few times over.
//! Every request answered 2xx must have lasted, nothing may be half-written, and every message
//! queued before a kill is delivered after it: twice only if the SMTP server took it just
//! before the kill, before its delivery was recorded.
//!
//! Each storm worker owns its accounts, so an account's history is a sequence, and only a
//! worker's last request (the one the kill cut off) has no answer: after the restart, the test
//! finds out through the API which way it went, and then checks that everything that goes with
//! it went the same way. Each kill is aimed inside a write transaction, where a change split
//! across two transactions would be cut in half; a kill at a random moment almost never lands
//! between two commits.
//!
//! The dead process's mail lease (at most one message) is ended by hand before the restart,
//! standing for the two minutes a real restart would wait for it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use authd::store::entity::email_outbox;
use chrono::Utc;
use reqwest::StatusCode;
use sea_orm::sea_query::Expr;
use sea_orm::sqlx;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::cli::BIN;
use crate::helpers::free_port;
use crate::helpers::{FreshDatabase, PASSWORD, count_rows};
use crate::smtp::{Received, SmtpServer};

const WORKERS: usize = 12;
/// How long to wait, once it is time, for the server to be inside a write transaction.
const AIM_FOR: Duration = Duration::from_secs(3);
const KILLS: usize = 3;
/// The kill comes after a random number of answers in this range.
const KILL_AFTER: std::ops::RangeInclusive<usize> = 100..=200;
/// Slower than the storm queues mail: messages are pending at each kill, and the kill likely
/// falls while the worker waits for the SMTP server to accept one.
const SMTP_DELAY: Duration = Duration::from_millis(60);
const SITE: &str = "Example";
const CONFIRMATION: &str = "Example - Your account has been successfully created and activated!";
const PASSWORD_CHANGED: &str = "Example - Your password has been successfully changed!";

#[tokio::test]
async fn answered_requests_survive_sigkill_and_pending_mail_is_delivered() {
    let database = FreshDatabase::new().await;
    let smtp = SmtpServer::start_slow(SMTP_DELAY).await;
    let logs = tempfile::tempdir().expect("log directory");
    let mut server = Server::start(&database.url, smtp.port, logs.path()).await;
    let mut workers: Vec<Vec<Account>> = (0..WORKERS).map(|_| Vec::new()).collect();
    // Messages the SMTP server took while their rows were still unsent at a kill.
    let mut taken_before_kill: HashSet<String> = HashSet::new();

    for round in 1..=KILLS {
        let kill_after = rand::random_range(KILL_AFTER);
        let (accounts, tally) = storm(&mut server, &database.url, workers, round, kill_after).await;
        workers = accounts;

        // The SMTP server may still be reading what the dead process wrote to it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let db = authd::store::connect(&database.url, 1, Duration::from_secs(5))
            .await
            .expect("connect");
        let pending = unsent_messages(&db).await;
        let received: HashSet<String> = smtp.messages().iter().map(Received::message_id).collect();
        let taken: Vec<&String> = pending.iter().filter(|id| received.contains(*id)).collect();
        assert!(
            taken.len() <= 1,
            "one worker sends one message at a time, yet {} unsent ones had been taken: {taken:?}",
            taken.len()
        );
        taken_before_kill.extend(taken.iter().map(|id| (*id).clone()));
        let leased = expire_leases(&db).await;
        assert!(
            leased <= 1,
            "a crash strands only the message in hand for the lease, yet {leased} were leased"
        );
        db.close().await.expect("close");

        server = Server::start(&database.url, smtp.port, logs.path()).await;
        let resolved = resolve_unanswered(&server, &database.url, &mut workers).await;
        tokio::join!(
            check_accounts(&server, &mut workers),
            wait_for_messages(&smtp, &pending)
        );
        check_no_half_writes(&database.url, &workers).await;
        eprintln!(
            "kill {round}{}: {} requests answered before the kill (all 2xx), {} cut off \
             ({resolved} of them had committed); {} messages unsent at the kill ({} leased by \
             the dead process, {} already taken by SMTP), all delivered after the restart",
            if tally.aimed {
                " (inside a write transaction)"
            } else {
                ""
            },
            tally.answered,
            tally.cut_off,
            pending.len(),
            leased,
            taken.len()
        );
    }

    wait_until_outbox_empty(&database.url).await;
    check_mail(&smtp, &workers, &taken_before_kill);
}

/// `authd serve` as a child process, killed if the test ends without killing it.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// Starts the binary on a free port (another one if that one was taken meanwhile), with
    /// every mail the storm causes turned on and the failed-login limits off (the storm logs
    /// in all the time, from one address).
    async fn start(database_url: &str, smtp_port: u16, logs: &Path) -> Self {
        for attempt in 0..5 {
            let port = free_port();
            let log = logs.join(format!("authd-{port}-{attempt}.log"));
            let mut command = Command::new(BIN);
            command
                .env_remove("RUST_LOG")
                .env("DATABASE_URL", database_url)
                .env("AUTHD_BIND", format!("127.0.0.1:{port}"))
                .env("AUTHD_EMAIL_URL", format!("smtp://127.0.0.1:{smtp_port}"))
                .env("AUTHD_EMAIL_FRONTEND_DOMAIN", "app.example.test")
                .env("AUTHD_EMAIL_FRONTEND_SITE_NAME", SITE)
                .env("AUTHD_EMAIL_RETRY_SECONDS", "1")
                .env("AUTHD_SEND_CONFIRMATION_EMAIL", "true")
                .env("AUTHD_PASSWORD_CHANGED_EMAIL_CONFIRMATION", "true")
                .env("AUTHD_THROTTLE_FAILURES_PER_IP_ACCOUNT", "off")
                .env("AUTHD_THROTTLE_FAILURES_PER_ACCOUNT", "off")
                .env("AUTHD_THROTTLE_FAILURES_PER_IP", "off")
                // The storm and the test share a small machine: no request is shed.
                .env("AUTHD_HASH_QUEUE_TIMEOUT_MS", "60000")
                .arg("serve")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("log file"));
            let child = command.spawn().expect("spawn authd");
            let mut server = Self {
                child,
                base: format!("http://127.0.0.1:{port}"),
            };
            if server.ready().await {
                return server;
            }
            let output = std::fs::read_to_string(&log).unwrap_or_default();
            if !output.contains("in use") {
                panic!("authd did not start: {output}");
            }
        }
        panic!("no free port for authd");
    }

    /// Whether the server answers; `false` if it exited first.
    async fn ready(&mut self) -> bool {
        let started = Instant::now();
        loop {
            if let Ok(reply) = reqwest::get(format!("{}/healthz", self.base)).await
                && reply.status().is_success()
            {
                return true;
            }
            if self.child.try_wait().expect("child status").is_some() {
                return false;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "authd did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, and the process reaped.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL authd");
        self.child.wait().expect("reap authd");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// One account, as its worker knows it from the answers it got.
#[derive(Debug)]
struct Account {
    username: String,
    password: String,
    /// The password the last committed change replaced: it must not work any more.
    replaced: Option<String>,
    /// Password changes that committed.
    changes: i64,
    tokens: Vec<Token>,
    /// The request the kill cut off, if it was about this account.
    unanswered: Option<Unanswered>,
    /// A registration cut off by a kill that turned out not to have committed.
    never_created: bool,
    /// Whether its password was set since the last kill (registered or changed, answered or
    /// not).
    password_set: bool,
}

impl Account {
    fn email(&self) -> String {
        format!("{}@example.test", self.username)
    }

    fn live_token(&self) -> Option<&str> {
        let live: Vec<&Token> = self.tokens.iter().filter(|t| t.live).collect();
        if live.is_empty() {
            return None;
        }
        Some(&live[rand::random_range(0..live.len())].key)
    }

    /// An answered (or resolved) password change made with the session of `kept`: the new
    /// password, and every other token revoked (LOGOUT_ON_PASSWORD_CHANGE is off).
    fn changed_password(&mut self, new: String, kept: &str) {
        self.replaced = Some(std::mem::replace(&mut self.password, new));
        self.changes += 1;
        for token in &mut self.tokens {
            token.live = token.key == kept;
        }
    }
}

#[derive(Debug)]
struct Token {
    key: String,
    /// Whether it must still authenticate: `false` once an answered change revoked it.
    live: bool,
}

#[derive(Debug)]
enum Unanswered {
    Registration,
    PasswordChange { new: String, kept: String },
}

#[derive(Debug, Default)]
struct Tally {
    /// Every answer is a success: the workers check.
    answered: usize,
    cut_off: usize,
    /// Whether the kill fell inside a write transaction.
    aimed: bool,
}

/// Tells whether the server is inside a write transaction, so that a kill can land there:
/// where a change split across two transactions would be left half-written.
enum WriteProbe {
    /// Takes SQLite's write lock without waiting, and lets go at once: busy means a writer
    /// holds it.
    Sqlite(sqlx::SqliteConnection),
    /// PostgreSQL gives a transaction an id at its first write.
    Postgres(sqlx::PgConnection),
}

impl WriteProbe {
    async fn connect(url: &str) -> Self {
        use sqlx::Connection as _;
        if url.starts_with("sqlite:") {
            let options = url
                .parse::<sqlx::sqlite::SqliteConnectOptions>()
                .expect("SQLite URL")
                .busy_timeout(Duration::ZERO);
            Self::Sqlite(
                sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .expect("probe connection"),
            )
        } else {
            Self::Postgres(
                sqlx::PgConnection::connect(url)
                    .await
                    .expect("probe connection"),
            )
        }
    }

    async fn writing(&mut self) -> bool {
        match self {
            Self::Sqlite(connection) => {
                match sqlx::raw_sql("BEGIN IMMEDIATE")
                    .execute(&mut *connection)
                    .await
                {
                    Ok(_) => {
                        sqlx::raw_sql("ROLLBACK")
                            .execute(&mut *connection)
                            .await
                            .expect("rollback");
                        false
                    }
                    Err(sqlx::Error::Database(err)) if is_sqlite_busy(err.as_ref()) => true,
                    Err(err) => panic!("probe: {err}"),
                }
            }
            Self::Postgres(connection) => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
                     AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL",
                )
                .fetch_one(&mut *connection)
                .await
                .expect("probe")
                    > 0
            }
        }
    }
}

fn is_sqlite_busy(err: &dyn sqlx::error::DatabaseError) -> bool {
    const SQLITE_BUSY: i32 = 5;
    // Extended codes keep the primary code in their low byte.
    err.code()
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == SQLITE_BUSY)
}

/// Runs the workers until `kill_after` requests were answered, kills the server, and hands
/// back the accounts with what each worker learnt.
async fn storm(
    server: &mut Server,
    database_url: &str,
    workers: Vec<Vec<Account>>,
    round: usize,
    kill_after: usize,
) -> (Vec<Vec<Account>>, Tally) {
    let mut probe = WriteProbe::connect(database_url).await;
    let answered = Arc::new(AtomicUsize::new(0));
    let running: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(worker, accounts)| {
            let base = server.base.clone();
            let answered = answered.clone();
            tokio::spawn(work(base, accounts, format!("k{round}w{worker}"), answered))
        })
        .collect();
    let started = Instant::now();
    while answered.load(Ordering::SeqCst) < kill_after {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {} requests answered in a minute",
            answered.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let aiming = Instant::now();
    let mut aimed = false;
    while !aimed && aiming.elapsed() < AIM_FOR {
        aimed = probe.writing().await;
    }
    server.kill();
    let mut tally = Tally {
        aimed,
        ..Tally::default()
    };
    let mut workers = Vec::with_capacity(running.len());
    for task in running {
        let (accounts, worker) = task.await.expect("a storm worker");
        tally.answered += worker.answered;
        tally.cut_off += worker.cut_off;
        workers.push(accounts);
    }
    (workers, tally)
}

/// One storm worker: registers, logs in and changes passwords of its own accounts, one request
/// at a time, until a request gets no answer. Every answer must be a success.
async fn work(
    base: String,
    mut accounts: Vec<Account>,
    prefix: String,
    answered: Arc<AtomicUsize>,
) -> (Vec<Account>, Tally) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let post = |path: &str, body: Value, token: Option<&str>| {
        let mut request = client.post(format!("{base}{path}")).json(&body);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Token {token}"));
        }
        async move {
            let response = request.send().await.ok()?;
            let status = response.status();
            let body = response.text().await.ok()?;
            Some((status, body))
        }
    };
    let mut tally = Tally::default();
    let mut created = 0;
    loop {
        let existing: Vec<usize> = (0..accounts.len())
            .filter(|&i| !accounts[i].never_created)
            .collect();
        let (path, expected, answer) = if existing.is_empty() || rand::random_bool(0.3) {
            created += 1;
            let username = format!("{prefix}u{created}");
            let email = format!("{username}@example.test");
            let answer = post(
                "/users/",
                json!({"username": username, "email": email, "password": PASSWORD}),
                None,
            )
            .await;
            let mut account = Account {
                username,
                password: PASSWORD.to_owned(),
                replaced: None,
                changes: 0,
                tokens: Vec::new(),
                unanswered: None,
                never_created: false,
                password_set: true,
            };
            if answer.is_none() {
                account.unanswered = Some(Unanswered::Registration);
            }
            accounts.push(account);
            ("register", StatusCode::CREATED, answer)
        } else {
            let account = &mut accounts[existing[rand::random_range(0..existing.len())]];
            match account.live_token().map(str::to_owned) {
                Some(kept) if rand::random_bool(0.3) => {
                    account.password_set = true;
                    let new = format!("{PASSWORD} {}", account.changes + 1);
                    let answer = post(
                        "/users/set_password/",
                        json!({"new_password": new, "current_password": account.password}),
                        Some(&kept),
                    )
                    .await;
                    match &answer {
                        Some((StatusCode::NO_CONTENT, _)) => account.changed_password(new, &kept),
                        Some(_) => {}
                        None => account.unanswered = Some(Unanswered::PasswordChange { new, kept }),
                    }
                    ("set_password", StatusCode::NO_CONTENT, answer)
                }
                _ => {
                    let answer = post(
                        "/token/login/",
                        json!({"username": account.username, "password": account.password}),
                        None,
                    )
                    .await;
                    if let Some((StatusCode::OK, body)) = &answer {
                        account.tokens.push(Token {
                            key: auth_token(body),
                            live: true,
                        });
                    }
                    ("login", StatusCode::OK, answer)
                }
            }
        };
        let Some((status, body)) = answer else {
            tally.cut_off += 1;
            return (accounts, tally);
        };
        assert_eq!(status, expected, "{path}: {body}");
        tally.answered += 1;
        answered.fetch_add(1, Ordering::SeqCst);
    }
}

fn auth_token(body: &str) -> String {
    let body: Value = serde_json::from_str(body).expect("a JSON login answer");
    body["auth_token"].as_str().expect("auth_token").to_owned()
}

async fn login(server: &Server, username: &str, password: &str) -> (StatusCode, String) {
    let reply = reqwest::Client::new()
        .post(server.url("/token/login/"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("login sent");
    let status = reply.status();
    (status, reply.text().await.expect("login answer"))
}

/// Finds out, through the API, which way each cut-off request went; returns how many of them
/// had committed.
async fn resolve_unanswered(server: &Server, url: &str, workers: &mut [Vec<Account>]) -> usize {
    let db = authd::store::connect(url, 1, Duration::from_secs(5))
        .await
        .expect("connect");
    let mut committed = 0;
    for account in workers.iter_mut().flatten() {
        let Some(unanswered) = account.unanswered.take() else {
            continue;
        };
        match unanswered {
            Unanswered::Registration => {
                let (status, body) = login(server, &account.username, &account.password).await;
                if status == StatusCode::OK {
                    account.tokens.push(Token {
                        key: auth_token(&body),
                        live: true,
                    });
                    committed += 1;
                } else {
                    // Not even a user row without a usable password.
                    let rows = count_rows(
                        &db,
                        &format!("auth_user WHERE username = '{}'", account.username),
                    )
                    .await;
                    assert_eq!((status, rows), (StatusCode::BAD_REQUEST, 0), "{body}");
                    account.never_created = true;
                }
            }
            Unanswered::PasswordChange { new, kept } => {
                let (status, body) = login(server, &account.username, &new).await;
                if status == StatusCode::OK {
                    account.changed_password(new, &kept);
                    account.tokens.push(Token {
                        key: auth_token(&body),
                        live: true,
                    });
                    committed += 1;
                } else {
                    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
                }
            }
        }
    }
    db.close().await.expect("close");
    committed
}

/// Every account whose password was set since the last kill logs in with its last password and
/// not with the one before; every token of every account authenticates if and only if no
/// answered change revoked it.
async fn check_accounts(server: &Server, workers: &mut [Vec<Account>]) {
    use futures::StreamExt as _;
    let client = reqwest::Client::new();
    let accounts = workers.iter().flatten().filter(|a| !a.never_created);
    futures::stream::iter(accounts.map(|account| check_account(server, &client, account)))
        .buffer_unordered(WORKERS)
        .collect::<Vec<()>>()
        .await;
    for account in workers.iter_mut().flatten() {
        account.password_set = false;
    }
}

async fn check_account(server: &Server, client: &reqwest::Client, account: &Account) {
    if account.password_set {
        let (status, body) = login(server, &account.username, &account.password).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", account.username);
        if let Some(old) = &account.replaced {
            let (status, body) = login(server, &account.username, old).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{}'s replaced password: {body}",
                account.username
            );
        }
    }
    for token in &account.tokens {
        let reply = client
            .get(server.url("/users/me/"))
            .header("Authorization", format!("Token {}", token.key))
            .send()
            .await
            .expect("me sent");
        let status = reply.status();
        let body = reply.text().await.expect("me answer");
        if token.live {
            assert_eq!(status, StatusCode::OK, "{}: {body}", account.username);
            let me: Value = serde_json::from_str(&body).expect("JSON");
            assert_eq!(me["username"], account.username.as_str());
        } else {
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{}'s revoked token: {body}",
                account.username
            );
        }
    }
}

/// What the schema's constraints do not rule out, and each account's rows against its
/// history: its password version counts its committed changes, and its outbox holds one
/// confirmation and one message per change. (Foreign keys with cascades already rule out
/// tokens and sessions without a user.)
async fn check_no_half_writes(url: &str, workers: &[Vec<Account>]) {
    let db = authd::store::connect(url, 1, Duration::from_secs(5))
        .await
        .expect("connect");
    for (what, from) in [
        (
            "users without a password hash",
            "auth_user WHERE password IS NULL OR password = ''",
        ),
        (
            "tokens without a session",
            "auth_token t WHERE t.session_id IS NULL \
             OR NOT EXISTS (SELECT 1 FROM auth_session s WHERE s.id = t.session_id)",
        ),
        (
            "sessions without a token",
            "auth_session s WHERE NOT EXISTS (SELECT 1 FROM auth_token t WHERE t.session_id = s.id)",
        ),
        (
            "messages to nobody",
            "email_outbox o WHERE NOT EXISTS (SELECT 1 FROM auth_user u WHERE u.email = o.recipient)",
        ),
    ] {
        assert_eq!(count_rows(&db, from).await, 0, "{what}");
    }
    for account in workers.iter().flatten().filter(|a| !a.never_created) {
        let (name, email) = (&account.username, account.email());
        let rows = [
            count_rows(
                &db,
                &format!(
                    "auth_user WHERE username = '{name}' AND password_version = {}",
                    account.changes
                ),
            )
            .await,
            count_rows(
                &db,
                &format!("email_outbox WHERE recipient = '{email}' AND subject = '{CONFIRMATION}'"),
            )
            .await,
            count_rows(
                &db,
                &format!(
                    "email_outbox WHERE recipient = '{email}' AND subject = '{PASSWORD_CHANGED}'"
                ),
            )
            .await,
        ];
        assert_eq!(
            rows,
            [1, 1, account.changes],
            "{name}: the user with {} password changes, its confirmation, its change messages",
            account.changes
        );
    }
    db.close().await.expect("close");
}

/// `Message-ID`s of the messages neither sent nor given up.
async fn unsent_messages(db: &DatabaseConnection) -> Vec<String> {
    email_outbox::Entity::find()
        .filter(email_outbox::Column::SentAt.is_null())
        .filter(email_outbox::Column::FailedAt.is_null())
        .all(db)
        .await
        .expect("outbox")
        .into_iter()
        .map(|row| row.message_id)
        .collect()
}

/// Ends the leases the killed process held, as two minutes of waiting would; returns how many.
async fn expire_leases(db: &DatabaseConnection) -> u64 {
    let expired = Utc::now() - chrono::Duration::seconds(1);
    email_outbox::Entity::update_many()
        .col_expr(
            email_outbox::Column::LockedUntil,
            Expr::value(Some(expired)),
        )
        .filter(email_outbox::Column::SentAt.is_null())
        .filter(email_outbox::Column::LockedUntil.gt(expired))
        .exec(db)
        .await
        .expect("expire leases")
        .rows_affected
}

/// Waits until the SMTP server got every message in `ids`.
async fn wait_for_messages(smtp: &SmtpServer, ids: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let received: HashSet<String> = smtp.messages().iter().map(Received::message_id).collect();
        let missing: Vec<&String> = ids.iter().filter(|id| !received.contains(*id)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} messages pending at the kill never arrived: {missing:?}",
            missing.len(),
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_until_outbox_empty(url: &str) {
    let db = authd::store::connect(url, 1, Duration::from_secs(5))
        .await
        .expect("connect");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !unsent_messages(&db).await.is_empty() {
        assert!(Instant::now() < deadline, "the outbox never emptied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.close().await.expect("close");
}

/// Each account got its confirmation and one message per committed password change, and
/// nobody else got anything; a message arrived twice only if the SMTP server had taken it
/// before a kill that left it unsent.
fn check_mail(smtp: &SmtpServer, workers: &[Vec<Account>], taken_before_kill: &HashSet<String>) {
    let messages = smtp.messages();
    let mut copies: HashMap<String, (usize, &Received)> = HashMap::new();
    for message in &messages {
        copies.entry(message.message_id()).or_insert((0, message)).0 += 1;
    }
    let mut got: HashMap<(String, String), i64> = HashMap::new();
    for (_, message) in copies.values() {
        assert_eq!(message.recipients.len(), 1, "{message:?}");
        let key = (message.recipients[0].clone(), message.subject());
        *got.entry(key).or_default() += 1;
    }
    let mut expected: HashMap<(String, String), i64> = HashMap::new();
    for account in workers.iter().flatten().filter(|a| !a.never_created) {
        expected.insert((account.email(), CONFIRMATION.to_owned()), 1);
        if account.changes > 0 {
            expected.insert(
                (account.email(), PASSWORD_CHANGED.to_owned()),
                account.changes,
            );
        }
    }
    assert_eq!(got, expected, "distinct messages per recipient and subject");
    let duplicated: Vec<&String> = copies
        .iter()
        .filter(|(_, (count, _))| *count > 1)
        .map(|(id, _)| id)
        .collect();
    for id in &duplicated {
        assert_eq!(copies[*id].0, 2, "{id}");
        assert!(
            taken_before_kill.contains(*id),
            "{id} arrived twice, but was not taken by SMTP while unsent at a kill"
        );
    }
    eprintln!(
        "mail: {} messages delivered, {} distinct, {} duplicated",
        messages.len(),
        copies.len(),
        duplicated.len()
    );
}
