//! Hostile HTTP/1: generated, malformed requests thrown at a running server from a fixed seed
//! (bare LFs anywhere, obs-fold, duplicate and conflicting `Content-Length` and
//! `Transfer-Encoding`, huge and malformed chunk sizes, bare-LF trailers with phantom requests,
//! withheld and overlong bodies, oversized heads, stray bytes, early closes, pipelining without
//! reading, trickled heads and bodies), while a well-behaved client keeps asking. The
//! well-behaved client must be served promptly all along, every hostile connection must be
//! closed within its deadlines, and no hostile input may get a 5xx other than 503 (load).
//!
//! `AUTHD_TEST_HOSTILE_SECONDS` (default 30) and `AUTHD_TEST_HOSTILE_SEED` change the run;
//! a failure prints the seed and the case, which reproduce it. Longer runs by hand:
//! `AUTHD_TEST_HOSTILE_SECONDS=600 cargo test --test api hostile -- --nocapture`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use authd::throttle::FailureLimits;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use reqwest::{Method, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::helpers::{PASSWORD, TestApp};
use crate::wire::{CLOSE_MARGIN, connect_from, until_closed};

const DEFAULT_SECONDS: u64 = 30;
const DEFAULT_SEED: u64 = 0x0a07_4d11;
/// Hostile connections at once, each from its own loopback address.
const WORKERS: u8 = 8;
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
const BODY_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest a trickle or a pause goes on: hostile clients, too, stop some time.
const CLIENT_PATIENCE: Duration = Duration::from_secs(5);
/// How promptly the well-behaved client must be answered.
const PROMPT: Duration = Duration::from_secs(2);

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// How a case's bytes reach the server.
#[derive(Debug, Clone, Copy)]
enum Delivery {
    Whole,
    /// A few bytes at a time, with a pause between.
    Trickle {
        bytes: usize,
        pause: Duration,
    },
    /// A part, then the write side closed.
    EarlyClose {
        after: usize,
    },
    /// Written whole, then nothing read for a while.
    Unread {
        pause: Duration,
    },
}

#[derive(Debug)]
struct Case {
    label: Vec<&'static str>,
    bytes: Vec<u8>,
    delivery: Delivery,
}

/// How a request's body is framed.
enum Framing {
    None,
    Length(Vec<u8>),
    Chunked(Vec<Vec<u8>>),
}

struct Request {
    method: &'static str,
    target: String,
    headers: Vec<(String, String)>,
    framing: Framing,
}

fn base_request(rng: &mut StdRng, token: &str) -> Request {
    let login = serde_json::json!({"username": "alice", "password": PASSWORD}).to_string();
    let wrong = serde_json::json!({"username": "alice", "password": "wrong"}).to_string();
    let (method, target, body, auth): (_, _, Option<String>, bool) = match rng.random_range(0..6) {
        0 => ("POST", "/token/login/", Some(login), false),
        1 => ("POST", "/token/login/", Some(wrong), false),
        2 => ("GET", "/users/me/", None, true),
        3 => (
            "POST",
            "/oauth/token",
            Some(format!(
                "grant_type=password&username=alice&password={PASSWORD}"
            )),
            false,
        ),
        4 => ("GET", "/healthz", None, false),
        _ => (
            "PATCH",
            "/users/me/",
            Some(r#"{"email":"a@example.com"}"#.to_owned()),
            true,
        ),
    };
    let mut headers = vec![("Host".to_owned(), "authd".to_owned())];
    if auth {
        headers.push(("Authorization".to_owned(), format!("Token {token}")));
    }
    let content_type = if target == "/oauth/token" {
        "application/x-www-form-urlencoded"
    } else {
        "application/json"
    };
    let framing = match body {
        None => Framing::None,
        Some(body) => {
            headers.push(("Content-Type".to_owned(), content_type.to_owned()));
            if rng.random_bool(0.5) {
                Framing::Length(body.into_bytes())
            } else {
                let bytes = body.into_bytes();
                let size = rng.random_range(1..=bytes.len().max(1));
                Framing::Chunked(bytes.chunks(size).map(<[u8]>::to_vec).collect())
            }
        }
    };
    Request {
        method,
        target: target.to_owned(),
        headers,
        framing,
    }
}

/// One generated case: a request, one to three mutations, a delivery.
fn generate(rng: &mut StdRng, token: &str) -> Case {
    let mut request = base_request(rng, token);
    let mut label = vec![request.method];
    let mut bare_lf = 0.0;
    let mut declared_extra: i64 = 0;
    let mut chunk_size_line: Option<String> = None;
    let mut trailer = "\r\n".to_owned();
    let mut garbage = false;
    for _ in 0..rng.random_range(1..=3) {
        match rng.random_range(0..12) {
            0 => {
                label.push("bare LF");
                bare_lf = rng.random_range(0.2..=1.0);
            }
            1 => {
                label.push("obs-fold");
                request
                    .headers
                    .push(("X-Folded".to_owned(), "a\r\n  continued".to_owned()));
            }
            2 => {
                label.push("duplicate Content-Length");
                let value = rng.random_range(0..200).to_string();
                request.headers.push(("Content-Length".to_owned(), value));
            }
            3 => {
                label.push("Content-Length and chunked");
                let value = rng.random_range(0..200).to_string();
                request.headers.push(("Content-Length".to_owned(), value));
                request
                    .headers
                    .push(("Transfer-Encoding".to_owned(), "chunked".to_owned()));
            }
            4 => {
                label.push("odd Transfer-Encoding");
                let value = [
                    "chunked, chunked",
                    "gzip, chunked",
                    "chunked, gzip",
                    "Chunked",
                    " chunked",
                    "xchunked",
                    "chunked\x0b",
                    "identity",
                ]
                .choose(rng)
                .copied()
                .unwrap_or("chunked");
                request
                    .headers
                    .push(("Transfer-Encoding".to_owned(), value.to_owned()));
            }
            5 => {
                label.push("huge or malformed chunk size");
                chunk_size_line = Some(
                    [
                        "ffffffffffffffff",
                        "100000000000000000000",
                        "-1",
                        "0x10",
                        "7fffffff",
                        "5;ext=\"x\"",
                        "zz",
                        "",
                    ]
                    .choose(rng)
                    .copied()
                    .unwrap_or("ffff")
                    .to_owned(),
                );
            }
            6 => {
                label.push("bare-LF trailer with a phantom request");
                trailer = "\nGET /healthz HTTP/1.1\r\nHost: authd\r\n\r\n".to_owned();
            }
            7 => {
                label.push("withheld body");
                declared_extra = rng.random_range(1..100_000);
            }
            8 => {
                label.push("body longer than declared");
                declared_extra = -rng.random_range(1..20);
            }
            9 => {
                label.push("oversized head");
                let size = rng.random_range(8_000..40_000);
                request
                    .headers
                    .push(("X-Padding".to_owned(), "a".repeat(size)));
            }
            10 => {
                label.push("stray bytes");
                garbage = true;
            }
            _ => {
                label.push("large withheld body");
                declared_extra = rng.random_range(100_000..1_000_000);
            }
        }
    }
    let one = serialize(
        rng,
        &request,
        bare_lf,
        declared_extra,
        chunk_size_line.as_deref(),
        &trailer,
        garbage,
    );
    let mut bytes = one.clone();
    if rng.random_bool(0.2) {
        label.push("pipelined");
        for _ in 0..rng.random_range(1..40) {
            bytes.extend_from_slice(&one);
        }
    }
    let delivery = match rng.random_range(0..10) {
        0..=4 => Delivery::Whole,
        5 | 6 => Delivery::Trickle {
            bytes: rng.random_range(1..40),
            pause: Duration::from_millis(rng.random_range(10..400)),
        },
        7 => Delivery::EarlyClose {
            after: rng.random_range(0..bytes.len().max(1)),
        },
        _ => Delivery::Unread {
            pause: Duration::from_millis(rng.random_range(100..4000)),
        },
    };
    Case {
        label,
        bytes,
        delivery,
    }
}

fn serialize(
    rng: &mut StdRng,
    request: &Request,
    bare_lf: f64,
    declared_extra: i64,
    chunk_size_line: Option<&str>,
    trailer: &str,
    garbage: bool,
) -> Vec<u8> {
    let eol = |rng: &mut StdRng| {
        if rng.random_bool(bare_lf) {
            "\n"
        } else {
            "\r\n"
        }
    };
    let mut out = Vec::new();
    let line = |rng: &mut StdRng, out: &mut Vec<u8>, text: &str| {
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(eol(rng).as_bytes());
    };
    line(
        rng,
        &mut out,
        &format!("{} {} HTTP/1.1", request.method, request.target),
    );
    for (name, value) in &request.headers {
        line(rng, &mut out, &format!("{name}: {value}"));
    }
    match &request.framing {
        Framing::None => line(rng, &mut out, ""),
        Framing::Length(body) => {
            let declared = (body.len() as i64 + declared_extra).max(0);
            line(rng, &mut out, &format!("Content-Length: {declared}"));
            line(rng, &mut out, "");
            out.extend_from_slice(body);
        }
        Framing::Chunked(chunks) => {
            line(rng, &mut out, "Transfer-Encoding: chunked");
            line(rng, &mut out, "");
            for chunk in chunks {
                let size = chunk_size_line
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{:x}", chunk.len()));
                line(rng, &mut out, &size);
                out.extend_from_slice(chunk);
                out.extend_from_slice(eol(rng).as_bytes());
            }
            line(rng, &mut out, "0");
            out.extend_from_slice(trailer.as_bytes());
        }
    }
    if garbage {
        for _ in 0..rng.random_range(1..6) {
            let at = rng.random_range(0..out.len().max(1));
            let byte = *[0u8, b' ', b'\t', 0x7f, 0xff, b'\r', b'\n', b':']
                .choose(rng)
                .unwrap_or(&0);
            out.insert(at.min(out.len()), byte);
        }
    }
    out
}

/// Sends a case and waits for the server to close the connection; returns what went wrong.
async fn throw(app: &TestApp, host: u8, case: Case) -> Option<String> {
    let stream = connect_from(app, [127, 0, 0, host]).await;
    let (mut reader, mut writer) = stream.into_split();
    let bytes = case.bytes.clone();
    let delivery = case.delivery;
    let writing = tokio::spawn(async move {
        let started = Instant::now();
        match delivery {
            Delivery::Whole | Delivery::Unread { .. } => {
                let _ = writer.write_all(&bytes).await;
            }
            Delivery::Trickle { bytes: step, pause } => {
                for part in bytes.chunks(step) {
                    if started.elapsed() > CLIENT_PATIENCE || writer.write_all(part).await.is_err()
                    {
                        break;
                    }
                    tokio::time::sleep(pause).await;
                }
            }
            Delivery::EarlyClose { after } => {
                let _ = writer.write_all(&bytes[..after.min(bytes.len())]).await;
                let _ = writer.shutdown().await;
                return;
            }
        }
        // A client that stops sending but stays: only the server's deadlines end it.
        std::future::pending::<()>().await;
    });
    if let Delivery::Unread { pause } = delivery {
        tokio::time::sleep(pause).await;
    }
    // Every deadline a connection can meet one after the other, with the client's own
    // patience before it, and a margin for a loaded machine.
    let bound = CLIENT_PATIENCE + HEADER_TIMEOUT + BODY_TIMEOUT * 2 + CLOSE_MARGIN;
    let received = tokio::time::timeout(bound, until_closed(&mut reader)).await;
    writing.abort();
    let Ok(received) = received else {
        return Some(format!("{:?}: still open after {bound:?}", case.label));
    };
    let text = String::from_utf8_lossy(&received);
    let server_error = text
        .match_indices("HTTP/1.1 5")
        .any(|(at, _)| !text[at..].starts_with("HTTP/1.1 503"));
    server_error.then(|| format!("{:?}: a server error: {text:.300}", case.label))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_http1_leaves_ordinary_clients_served_and_every_connection_bounded() {
    let seconds = setting("AUTHD_TEST_HOSTILE_SECONDS", DEFAULT_SECONDS);
    let seed = setting("AUTHD_TEST_HOSTILE_SEED", DEFAULT_SEED);
    eprintln!("hostile HTTP/1: {seconds} s, seed {seed} (AUTHD_TEST_HOSTILE_SEED)");
    let app = Arc::new(
        TestApp::spawn_with(|s| {
            s.connections.header_read_timeout = HEADER_TIMEOUT;
            s.connections.body_read_timeout = BODY_TIMEOUT;
            s.throttling.failures = FailureLimits::OFF;
        })
        .await,
    );
    let (_, token) = app.create_user("alice").await;
    let until = Instant::now() + Duration::from_secs(seconds);
    let problems = Arc::new(Mutex::new(Vec::<String>::new()));
    let thrown = Arc::new(Mutex::new(0usize));

    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let (app, problems, thrown, token) =
                (app.clone(), problems.clone(), thrown.clone(), token.clone());
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(u64::from(worker)));
                while Instant::now() < until {
                    let case = generate(&mut rng, &token);
                    let described = format!("{:?} {:?}", case.label, case.delivery);
                    if let Some(problem) = throw(&app, 10 + worker, case).await {
                        problems
                            .lock()
                            .expect("lock")
                            .push(format!("worker {worker}: {problem} ({described})"));
                    }
                    *thrown.lock().expect("lock") += 1;
                }
            })
        })
        .collect();

    let mut ordinary = 0;
    let mut slowest = Duration::ZERO;
    while Instant::now() < until {
        let started = Instant::now();
        let reply = tokio::time::timeout(PROMPT, app.call(Method::GET, "/users/me/", &token, None))
            .await
            .unwrap_or_else(|_| panic!("an ordinary request waited past {PROMPT:?} (seed {seed})"));
        assert_eq!(reply.status, StatusCode::OK, "{} (seed {seed})", reply.text);
        if ordinary % 10 == 0 {
            let login = tokio::time::timeout(PROMPT, app.login("alice", PASSWORD))
                .await
                .unwrap_or_else(|_| panic!("a login waited past {PROMPT:?} (seed {seed})"));
            assert_eq!(login.status, StatusCode::OK, "{} (seed {seed})", login.text);
        }
        slowest = slowest.max(started.elapsed());
        ordinary += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    let thrown = *thrown.lock().expect("lock");
    eprintln!("{thrown} hostile connections; {ordinary} ordinary rounds, the slowest {slowest:?}");
    let problems = problems.lock().expect("lock");
    assert!(problems.is_empty(), "seed {seed}: {problems:#?}");
    assert!(
        thrown >= usize::from(WORKERS),
        "only {thrown} hostile connections"
    );
}
