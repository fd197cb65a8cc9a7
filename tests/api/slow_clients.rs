//! Slow, greedy and malformed clients: heads that trickle in are cut at hyper's header deadline,
//! oversized heads get 431, bodies may keep the server waiting only so long (and hold no place
//! in the hashing queue meanwhile), answers that are not read close the connection, idle
//! keep-alive connections close, a global cap bounds open connections and one host holds only
//! a share of it, while ordinary requests keep being answered at once.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::helpers::{PASSWORD, TestApp};
use crate::wire::{
    CLOSE_MARGIN, closed_within, connect, connect_from, connect_with_small_buffer, get,
    read_response, socket_address, until_closed,
};

/// Opens a connection, sends the first byte of a head that never ends, then one more byte a
/// second; returns the time from the opening to the server's close (`None`: still open after
/// `give_up`).
async fn trickle_head(
    address: SocketAddr,
    started: tokio::sync::mpsc::Sender<()>,
    give_up: Duration,
) -> Option<Duration> {
    let opened = Instant::now();
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let head = format!(
        "GET /users/me/ HTTP/1.1\r\nHost: authd\r\nX-Padding: {}",
        "a".repeat(100)
    );
    let mut bytes = head.bytes();
    let first_byte = Instant::now();
    stream
        .write_all(&[bytes.next().expect("a byte")])
        .await
        .expect("first byte");
    let _ = started.send(()).await;
    let mut ticks =
        tokio::time::interval_at(first_byte + Duration::from_secs(1), Duration::from_secs(1));
    let mut chunk = [0; 64];
    let deadline = tokio::time::sleep(give_up);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            read = stream.read(&mut chunk) => match read {
                Ok(0) | Err(_) => return Some(opened.elapsed()),
                Ok(_) => panic!("a trickled head got an answer"),
            },
            _ = ticks.tick() => {
                let byte = bytes.next().expect("the head outlasts the test");
                if stream.write_all(&[byte]).await.is_err() {
                    return Some(opened.elapsed());
                }
            }
            _ = &mut deadline => return None,
        }
    }
}

/// The scenario: 500 connections trickle their heads a byte a second; meanwhile every
/// ordinary request answers 200 within a second, and the slow connections are closed at the
/// header deadline, counted from their opening, not pushed back by each byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trickled_heads_are_closed_at_the_deadline_while_normal_requests_answer_at_once() {
    const SLOW_CONNECTIONS: usize = 500;
    let deadline = Duration::from_secs(3);
    let app = TestApp::spawn_with(|s| s.connections.header_read_timeout = deadline).await;
    let (_, token) = app.create_user("alice").await;

    let address = socket_address(&app);
    let (started, mut all_started) = tokio::sync::mpsc::channel(SLOW_CONNECTIONS);
    let slow: Vec<_> = (0..SLOW_CONNECTIONS)
        .map(|_| {
            tokio::spawn(trickle_head(
                address,
                started.clone(),
                deadline + CLOSE_MARGIN * 3,
            ))
        })
        .collect();
    drop(started);
    for _ in 0..SLOW_CONNECTIONS {
        all_started.recv().await.expect("a slow connection started");
    }

    let mut latencies = Vec::new();
    let until = Instant::now() + deadline + Duration::from_secs(1);
    while Instant::now() < until {
        let sent = Instant::now();
        let reply = tokio::time::timeout(
            Duration::from_secs(5),
            app.call(Method::GET, "/users/me/", &token, None),
        )
        .await
        .expect("an ordinary request is answered");
        latencies.push(sent.elapsed());
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let slowest = latencies.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{} ordinary requests, the slowest in {slowest:?}",
        latencies.len()
    );
    assert!(latencies.len() >= 20, "only {} requests", latencies.len());
    assert!(
        slowest < Duration::from_secs(1),
        "an ordinary request took {slowest:?}"
    );

    let mut closes = Vec::new();
    for task in slow {
        let closed = task.await.expect("slow connection task");
        closes.push(closed.expect("the slow connection was closed"));
    }
    let earliest = closes.iter().min().copied().unwrap_or_default();
    let latest = closes.iter().max().copied().unwrap_or_default();
    eprintln!("slow connections closed between {earliest:?} and {latest:?} after their opening");
    assert!(
        earliest >= deadline,
        "closed before the deadline: {earliest:?}"
    );
    assert!(
        latest < deadline + CLOSE_MARGIN,
        "closed well after the deadline: {latest:?}"
    );
}

#[tokio::test]
async fn a_head_over_the_cap_is_answered_431_and_one_within_it_is_served() {
    let app = TestApp::spawn_with(|s| s.connections.max_header_bytes = 8192).await;
    let (_, token) = app.create_user("alice").await;
    let me = |padding: usize| {
        app.request(Method::GET, "/users/me/")
            .header("Authorization", format!("Token {token}"))
            .header("X-Padding", "a".repeat(padding))
    };

    let within = app.send(me(6000)).await;
    assert_eq!(within.status, StatusCode::OK, "{}", within.text);
    for padding in [8300, 200_000] {
        let over = app.send(me(padding)).await;
        assert_eq!(
            over.status,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "{padding} bytes of padding"
        );
        assert_eq!(over.header("connection"), Some("close"));
    }
}

#[tokio::test]
async fn an_idle_connection_closes_after_the_keep_alive_timeout_and_a_busy_one_stays_open() {
    let idle_timeout = Duration::from_secs(2);
    let app = TestApp::spawn_with(|s| s.connections.keep_alive_timeout = idle_timeout).await;
    let (_, token) = app.create_user("alice").await;

    let mut busy = connect(&app).await;
    // The server's idle time starts when it answers, after the request was sent.
    let mut last_sent = Instant::now();
    for round in 0..5 {
        if round > 0 {
            tokio::time::sleep(idle_timeout / 2).await;
        }
        last_sent = Instant::now();
        busy.write_all(get("/users/me/", &token).as_bytes())
            .await
            .expect("request");
        let answer = read_response(&mut busy)
            .await
            .expect("answered on the same connection");
        assert_eq!(answer.status, 200);
    }
    let leftover = until_closed(&mut busy).await;
    let idle = last_sent.elapsed();
    assert!(leftover.is_empty(), "sent {leftover:?} before closing");
    assert!(
        idle >= idle_timeout && idle < idle_timeout + CLOSE_MARGIN,
        "closed after {idle:?} of idleness"
    );

    let mut silent = connect(&app).await;
    let opened = Instant::now();
    until_closed(&mut silent).await;
    let silence = opened.elapsed();
    assert!(
        silence >= idle_timeout && silence < idle_timeout + CLOSE_MARGIN,
        "a silent connection closed after {silence:?}"
    );
}

fn login_head(body_length: usize) -> String {
    format!(
        "POST /token/login/ HTTP/1.1\r\nHost: authd\r\nContent-Type: application/json\r\n\
         Content-Length: {body_length}\r\n\r\n"
    )
}

fn login_body() -> String {
    serde_json::json!({"username": "alice", "password": PASSWORD}).to_string()
}

/// A body sent late, after a pause longer than the keep-alive timeout, is still waited for: the
/// idle timer runs only between requests. A body that trickles in past the body deadline gets
/// 408 and the connection closes.
#[tokio::test]
async fn a_late_body_is_waited_for_and_a_trickling_one_is_cut_at_the_body_deadline() {
    let body_timeout = Duration::from_secs(3);
    let app = TestApp::spawn_with(|s| {
        s.connections.keep_alive_timeout = Duration::from_secs(1);
        s.connections.body_read_timeout = body_timeout;
    })
    .await;
    app.create_user("alice").await;
    let body = login_body();

    let mut late = connect(&app).await;
    late.write_all(login_head(body.len()).as_bytes())
        .await
        .expect("head");
    tokio::time::sleep(Duration::from_secs(2)).await;
    late.write_all(body.as_bytes()).await.expect("body");
    let answer = read_response(&mut late).await.expect("answered");
    assert_eq!(answer.status, 200, "{answer:?}");

    let (mut from_server, mut to_server) = connect(&app).await.into_split();
    to_server
        .write_all(login_head(body.len()).as_bytes())
        .await
        .expect("head");
    let head_sent = Instant::now();
    let trickle = tokio::spawn(async move {
        for byte in body.bytes() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if to_server.write_all(&[byte]).await.is_err() {
                return;
            }
        }
    });
    let answer = read_response(&mut from_server).await.expect("answered");
    assert_body_timeout(&answer);
    let elapsed = head_sent.elapsed();
    assert!(
        elapsed >= body_timeout && elapsed < body_timeout + CLOSE_MARGIN,
        "answered {elapsed:?} after the head"
    );
    assert!(closed_within(&mut from_server, CLOSE_MARGIN).await);
    trickle.abort();
}

#[track_caller]
fn assert_body_timeout(answer: &crate::wire::Answer) {
    assert_eq!(
        (answer.status, answer.json()),
        (
            408,
            json!({"detail": "Request body was not received in time."})
        ),
    );
    assert_eq!(answer.header("connection"), Some("close"));
}

const HEALTH: &str = "GET /healthz HTTP/1.1\r\nHost: authd\r\n\r\n";

/// At the cap the next connection is not served (it waits in the listen backlog), and it is
/// served as soon as one of the open ones closes. (Each from its own host: one host holds only
/// an eighth of the cap.)
#[tokio::test]
async fn at_the_connection_cap_the_next_connection_waits_until_one_closes() {
    let app = TestApp::spawn_with(|s| s.connections.max_connections = 2).await;

    let mut open = Vec::new();
    for host in [2, 3] {
        let mut stream = connect_from(&app, [127, 0, 0, host]).await;
        stream.write_all(HEALTH.as_bytes()).await.expect("request");
        assert_eq!(
            read_response(&mut stream).await.expect("answered").status,
            200
        );
        open.push(stream);
    }

    let mut waiting = connect_from(&app, [127, 0, 0, 4]).await;
    waiting.write_all(HEALTH.as_bytes()).await.expect("request");
    let early = tokio::time::timeout(Duration::from_secs(1), read_response(&mut waiting)).await;
    assert!(early.is_err(), "served beyond the cap: {early:?}");

    drop(open.pop());
    let answer = tokio::time::timeout(Duration::from_secs(5), read_response(&mut waiting))
        .await
        .expect("served once a connection closed")
        .expect("answered");
    assert_eq!(answer.status, 200);
}

/// HTTP/2 with prior knowledge is not spoken: the connection closes without an answer.
#[tokio::test]
async fn http2_prior_knowledge_is_refused() {
    let app = TestApp::spawn().await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");
    let received = tokio::time::timeout(Duration::from_secs(5), until_closed(&mut stream))
        .await
        .expect("closed");
    assert!(
        !received.starts_with(b"HTTP/1.1 2"),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
}

/// Logins whose bodies never end (`withheld`: what each sends after the head) wait for them
/// holding no place in the hashing queue, so an ordinary login is served at once; at the body
/// deadline each gets 408 and its connection closes.
async fn assert_withheld_bodies_hold_no_place(withheld: &str) {
    let body_timeout = Duration::from_secs(3);
    let app = TestApp::spawn_with(|s| {
        s.hashing.threads = 1;
        s.hashing.queue_limit = Some(2);
        s.connections.body_read_timeout = body_timeout;
    })
    .await;
    app.create_user("alice").await;
    let mut hostile = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(&app).await;
        stream
            .write_all(withheld.as_bytes())
            .await
            .expect("request");
        hostile.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let login = app.login("alice", PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    assert!(started.elapsed() < body_timeout, "{:?}", started.elapsed());
    for mut stream in hostile {
        let answer = tokio::time::timeout(body_timeout + CLOSE_MARGIN, read_response(&mut stream))
            .await
            .expect("answered by the deadline")
            .expect("an answer");
        assert_body_timeout(&answer);
        assert!(closed_within(&mut stream, CLOSE_MARGIN).await);
    }
}

/// `0\r\n\n` after the last chunk: a bare LF, where hyper waits for the CR that would end the
/// body (our former scanner took it for the end, so no deadline applied any more).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bare_lf_after_the_last_chunk_holds_no_place_in_the_hashing_queue() {
    let body = login_body();
    assert_withheld_bodies_hold_no_place(&format!(
        "POST /token/login/ HTTP/1.1\r\nHost: authd\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\n",
        body.len()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_declared_body_that_never_comes_holds_no_place_in_the_hashing_queue() {
    assert_withheld_bodies_hold_no_place(&login_head(100)).await;
}

/// The phantom variant: a bare-LF trailer on `GET /healthz`, then what looks like another
/// request (hyper reads it as trailer fields). The answer comes and the connection is held to
/// the header deadline like any other, so such connections cannot keep the connection cap
/// full: a newcomer waits no longer than that deadline.
#[tokio::test]
async fn a_phantom_request_after_a_bare_lf_trailer_does_not_keep_its_connection() {
    let header_timeout = Duration::from_secs(2);
    let app = TestApp::spawn_with(|s| {
        s.connections.max_connections = 3;
        s.connections.header_read_timeout = header_timeout;
    })
    .await;
    let phantom = "GET /healthz HTTP/1.1\r\nHost: authd\r\nTransfer-Encoding: chunked\r\n\r\n\
                   0\r\n\nGET /healthz HTTP/1.1\r\nHost: authd\r\n\r\n";
    let mut hostile = Vec::new();
    for host in [2, 3, 4] {
        let mut stream = connect_from(&app, [127, 0, 0, host]).await;
        stream.write_all(phantom.as_bytes()).await.expect("request");
        hostile.push(stream);
    }
    let mut newcomer = connect_from(&app, [127, 0, 0, 5]).await;
    newcomer
        .write_all(HEALTH.as_bytes())
        .await
        .expect("request");
    for stream in &mut hostile {
        let answer = read_response(stream)
            .await
            .expect("the health check is answered");
        assert_eq!(answer.status, 200);
        assert!(
            closed_within(stream, header_timeout + CLOSE_MARGIN).await,
            "still open"
        );
    }
    let answer = tokio::time::timeout(CLOSE_MARGIN, read_response(&mut newcomer))
        .await
        .expect("the newcomer is served once the hostile connections are closed")
        .expect("an answer");
    assert_eq!(answer.status, 200);
}

/// A chunk size that is not hexadecimal: 400 with DRF's detail (it used to be 413).
#[tokio::test]
async fn a_malformed_chunk_is_a_400() {
    let app = TestApp::spawn().await;
    let mut stream = connect(&app).await;
    stream
        .write_all(
            b"POST /token/login/ HTTP/1.1\r\nHost: authd\r\nContent-Type: application/json\r\n\
              Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        )
        .await
        .expect("request");
    let answer = read_response(&mut stream).await.expect("answered");
    assert_eq!(
        (answer.status, answer.json()),
        (400, json!({"detail": "Malformed request."}))
    );
}

const OPENAPI: &str = "GET /openapi.yaml HTTP/1.1\r\nHost: authd\r\n\r\n";
/// Pipelined requests for the OpenAPI document (82 kB each): far more answers than any
/// socket buffer holds.
const PIPELINED: usize = 2000;

/// Pipelines [`PIPELINED`] requests on a connection with a small receive buffer, then reads
/// its answers with `read_slowly` for `slow_for`; then reads on at full speed: a connection the
/// server closed yields what was buffered and ends, one it kept open yields every answer.
async fn answers_read_after(
    app: &TestApp,
    slow_for: Duration,
    read_slowly: impl AsyncFnMut(&mut tokio::net::tcp::OwnedReadHalf),
) -> usize {
    let (mut reader, mut writer) = connect_with_small_buffer(app).await.into_split();
    let writing = tokio::spawn(async move {
        for _ in 0..PIPELINED {
            if writer.write_all(OPENAPI.as_bytes()).await.is_err() {
                return;
            }
        }
        // Keep the write half open, as a client that is still there would.
        std::future::pending::<()>().await;
    });
    let mut read_slowly = read_slowly;
    let _ = tokio::time::timeout(slow_for, read_slowly(&mut reader)).await;
    let rest = tokio::time::timeout(Duration::from_secs(20), until_closed(&mut reader))
        .await
        .expect("the connection ends");
    writing.abort();
    rest.len()
}

/// No deadline ran while answers were being written: a client that pipelines requests and
/// never reads held its connection forever. Now pending answers must be taken at 1 KiB per
/// body timeout, or the connection closes.
#[tokio::test]
async fn a_client_that_never_reads_its_answers_is_closed() {
    let window = Duration::from_secs(2);
    let app = TestApp::spawn_with(|s| s.connections.body_read_timeout = window).await;
    let read = answers_read_after(&app, window * 2 + CLOSE_MARGIN, async |_| {
        std::future::pending::<()>().await;
    })
    .await;
    assert!(
        read < PIPELINED * 82_000 / 10,
        "{read} bytes: the server kept answering"
    );
}

/// A byte every 200 ms is less than 1 KiB per window: closed as if it did not read at all.
#[tokio::test]
async fn a_client_that_reads_a_byte_at_a_time_is_closed() {
    let window = Duration::from_secs(2);
    let app = TestApp::spawn_with(|s| s.connections.body_read_timeout = window).await;
    let read = answers_read_after(&app, window * 2 + CLOSE_MARGIN, async |reader| {
        let mut byte = [0; 1];
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            match reader.read(&mut byte).await {
                Ok(1) => {}
                _ => return,
            }
        }
    })
    .await;
    assert!(
        read < PIPELINED * 82_000 / 10,
        "{read} bytes: the server kept answering"
    );
}

/// One host opening connections in a loop gets an eighth of the cap; the rest are closed at
/// once, and another host is served at once. A trusted proxy, which carries many clients, is
/// exempt.
#[tokio::test]
async fn one_host_cannot_fill_the_connection_cap() {
    let app = TestApp::spawn_with(|s| {
        s.connections.max_connections = 16;
        s.trusted_proxies = vec!["127.0.0.9/32".parse().expect("CIDR")];
    })
    .await;
    let mut greedy = Vec::new();
    for _ in 0..40 {
        greedy.push(connect_from(&app, [127, 0, 0, 2]).await);
    }
    let mut other = connect_from(&app, [127, 0, 0, 3]).await;
    other.write_all(HEALTH.as_bytes()).await.expect("request");
    let answer = tokio::time::timeout(Duration::from_secs(2), read_response(&mut other))
        .await
        .expect("another host is served at once")
        .expect("an answer");
    assert_eq!(answer.status, 200);
    let mut still_open = 0;
    for stream in &mut greedy {
        if !closed_within(stream, Duration::from_millis(100)).await {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 2, "16 / 8 connections stay open");

    let mut proxied = Vec::new();
    for _ in 0..10 {
        let mut stream = connect_from(&app, [127, 0, 0, 9]).await;
        stream.write_all(HEALTH.as_bytes()).await.expect("request");
        assert_eq!(
            read_response(&mut stream).await.expect("answered").status,
            200
        );
        proxied.push(stream);
    }
}

/// A login whose body is sent but for its last byte, kept unfinished: the answer's reader, and
/// the task that holds the writing side open (abort it once answered).
async fn withhold_last_byte(
    app: &TestApp,
    body: &str,
) -> (tokio::net::tcp::OwnedReadHalf, tokio::task::JoinHandle<()>) {
    let (reader, mut writer) = connect(app).await.into_split();
    let request = format!("{}{}", login_head(body.len()), &body[..body.len() - 1]);
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(request.as_bytes()).await;
        std::future::pending::<()>().await;
    });
    (reader, writing)
}

/// At the default `AUTHD_BODY_MEMORY_BYTES` (32 MiB), one client's share (an eighth) has room
/// for two 1.6 MB bodies at once, not three: that is all a flood of large bodies from one
/// address makes authd hold (bench/memory.py measures the RSS this keeps under 100 MB). With
/// two withheld bodies holding the share, a third, whole one from the same client is read
/// only when the first gives its room back at its deadline (408), and then logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_client_holds_two_large_bodies_at_once_at_the_default_budget() {
    let body_timeout = Duration::from_secs(3);
    let app = TestApp::spawn_with(|s| s.connections.body_read_timeout = body_timeout).await;
    app.create_user("alice").await;
    let large =
        json!({"username": "alice", "password": PASSWORD, "padding": "x".repeat(1_600_000)})
            .to_string();
    let started = Instant::now();
    let mut withheld = Vec::new();
    for _ in 0..2 {
        withheld.push(withhold_last_byte(&app, &large).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut whole = connect(&app).await;
    whole
        .write_all(format!("{}{large}", login_head(large.len())).as_bytes())
        .await
        .expect("a whole large body");
    let answer = read_response(&mut whole).await.expect("answered");
    assert_eq!(answer.status, 200);
    assert!(
        started.elapsed() >= body_timeout,
        "a third body was read beside two others: {:?}",
        started.elapsed()
    );
    for (mut reader, writing) in withheld {
        let answer = read_response(&mut reader).await.expect("an answer");
        assert_eq!(answer.status, 408);
        writing.abort();
    }
}

/// Large bodies whose last byte never comes hold memory only within their client's share of
/// `AUTHD_BODY_MEMORY_BYTES`: meanwhile that client's ordinary login is answered at once (small
/// bodies never wait for room), and so is another client's large body. Each withheld body
/// ends with 408 (it had room) or 503 (it never found any) at its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_bodies_withholding_their_last_byte_starve_no_login() {
    let body_timeout = Duration::from_secs(4);
    let app = TestApp::spawn_with(|s| {
        s.hashing.queue_limit = Some(8);
        s.connections.body_read_timeout = body_timeout;
    })
    .await;
    app.create_user("alice").await;
    let large =
        json!({"username": "alice", "password": PASSWORD, "padding": "x".repeat(1_600_000)})
            .to_string();
    let mut hostile = Vec::new();
    for _ in 0..20 {
        hostile.push(withhold_last_byte(&app, &large).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let login = app.login("alice", PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    let mut elsewhere = connect_from(&app, [127, 0, 0, 2]).await;
    elsewhere
        .write_all(format!("{}{large}", login_head(large.len())).as_bytes())
        .await
        .expect("a large body from another client");
    let answer = read_response(&mut elsewhere).await.expect("answered");
    assert_eq!(
        answer.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(started.elapsed() < body_timeout, "{:?}", started.elapsed());

    for (mut reader, writing) in hostile {
        let answer = tokio::time::timeout(body_timeout + CLOSE_MARGIN, read_response(&mut reader))
            .await
            .expect("answered by the deadline")
            .expect("an answer");
        assert!(
            answer.status == 408 || answer.status == 503,
            "{} {:?}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        writing.abort();
    }
}

/// hyper cannot read heads into less than 8192 bytes (it panics): a smaller cap stops start-up
/// with a message naming the setting, from the environment and from code alike.
#[tokio::test]
async fn a_header_cap_below_hypers_smallest_buffer_stops_start_up() {
    let mut settings = authd::config::Settings::for_database("sqlite::memory:");
    settings.bind = "127.0.0.1:0".parse().expect("address");
    settings.connections.max_header_bytes = 4096;
    let refused = authd::startup::Application::build(settings).await;
    let message = refused.err().map(|err| err.to_string()).unwrap_or_default();
    assert!(message.contains("AUTHD_MAX_HEADER_BYTES"), "{message:?}");
}
