//! Slow and greedy clients: heads that trickle in are cut at a deadline counted from their first
//! byte, oversized heads get 431, bodies may keep the server waiting only so long, idle
//! keep-alive connections close, and a global cap bounds open connections, while ordinary
//! requests keep being answered at once.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::helpers::{PASSWORD, TestApp};

/// How late a close may come on a loaded, shared test machine.
const CLOSE_MARGIN: Duration = Duration::from_secs(3);

fn socket_address(app: &TestApp) -> SocketAddr {
    app.address
        .trim_start_matches("http://")
        .parse()
        .expect("socket address")
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(socket_address(app))
        .await
        .expect("connect")
}

fn get(path: &str, token: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: authd\r\nAuthorization: Token {token}\r\n\r\n")
}

/// Reads one response: its status and body.
async fn read_response(stream: &mut TcpStream) -> std::io::Result<(u16, Vec<u8>)> {
    let mut received = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut fields);
        if let httparse::Status::Complete(head_length) =
            response.parse(&received).map_err(std::io::Error::other)?
        {
            let length: usize = response
                .headers
                .iter()
                .find(|field| field.name.eq_ignore_ascii_case("content-length"))
                .and_then(|field| std::str::from_utf8(field.value).ok()?.parse().ok())
                .unwrap_or(0);
            let status = response.code.unwrap_or(0);
            let mut body = received[head_length..].to_vec();
            while body.len() < length {
                let read = stream.read(&mut chunk).await?;
                if read == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                body.extend_from_slice(&chunk[..read]);
            }
            return Ok((status, body));
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        received.extend_from_slice(&chunk[..read]);
    }
}

/// Waits until the server closes `stream` (end of stream or reset); returns what it sent first.
async fn until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut received = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return received,
            Ok(read) => received.extend_from_slice(&chunk[..read]),
        }
    }
}

/// Opens a connection, sends the first byte of a head that never ends, then one more byte a
/// second; returns the time from that first byte to the server's close (`None`: still open
/// after `give_up`).
async fn trickle_head(
    address: SocketAddr,
    started: tokio::sync::mpsc::Sender<()>,
    give_up: Duration,
) -> Option<Duration> {
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
                Ok(0) | Err(_) => return Some(first_byte.elapsed()),
                Ok(_) => panic!("a trickled head got an answer"),
            },
            _ = ticks.tick() => {
                let byte = bytes.next().expect("the head outlasts the test");
                if stream.write_all(&[byte]).await.is_err() {
                    return Some(first_byte.elapsed());
                }
            }
            _ = &mut deadline => return None,
        }
    }
}

/// The scenario: 500 connections trickle their heads a byte a second; meanwhile every
/// ordinary request answers 200 within a second, and the slow connections are closed at the
/// header deadline, counted from their first byte, not pushed back by each byte.
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
    eprintln!("slow connections closed between {earliest:?} and {latest:?} after their first byte");
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
    let app = TestApp::spawn_with(|s| s.connections.max_header_bytes = 2048).await;
    let (_, token) = app.create_user("alice").await;
    let me = |padding: usize| {
        app.request(Method::GET, "/users/me/")
            .header("Authorization", format!("Token {token}"))
            .header("X-Padding", "a".repeat(padding))
    };

    let within = app.send(me(1500)).await;
    assert_eq!(within.status, StatusCode::OK, "{}", within.text);
    for padding in [2100, 200_000] {
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
        let (status, _) = read_response(&mut busy)
            .await
            .expect("answered on the same connection");
        assert_eq!(status, 200);
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
/// idle timer runs only between requests. A body that trickles in past the body deadline is cut.
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
    let (status, answer) = read_response(&mut late).await.expect("answered");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));

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
    let received = until_closed(&mut from_server).await;
    trickle.abort();
    let elapsed = head_sent.elapsed();
    assert!(
        elapsed >= body_timeout && elapsed < body_timeout + CLOSE_MARGIN,
        "closed {elapsed:?} after the head"
    );
    assert!(
        received.is_empty(),
        "answered {:?}",
        String::from_utf8_lossy(&received)
    );
}

/// At the cap the next connection is not served (it waits in the listen backlog), and it is
/// served as soon as one of the open ones closes.
#[tokio::test]
async fn at_the_connection_cap_the_next_connection_waits_until_one_closes() {
    let app = TestApp::spawn_with(|s| s.connections.max_connections = 2).await;
    let health = "GET /healthz HTTP/1.1\r\nHost: authd\r\n\r\n";

    let mut open = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(&app).await;
        stream.write_all(health.as_bytes()).await.expect("request");
        assert_eq!(read_response(&mut stream).await.expect("answered").0, 200);
        open.push(stream);
    }

    let mut waiting = connect(&app).await;
    waiting.write_all(health.as_bytes()).await.expect("request");
    let early = tokio::time::timeout(Duration::from_secs(1), read_response(&mut waiting)).await;
    assert!(early.is_err(), "served beyond the cap: {early:?}");

    drop(open.pop());
    let (status, _) = tokio::time::timeout(Duration::from_secs(5), read_response(&mut waiting))
        .await
        .expect("served once a connection closed")
        .expect("answered");
    assert_eq!(status, 200);
}

#[tokio::test]
async fn http2_prior_knowledge_is_refused_with_http_1_1_required() {
    let app = TestApp::spawn().await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");
    let received = tokio::time::timeout(Duration::from_secs(5), until_closed(&mut stream))
        .await
        .expect("closed");
    let settings = [0, 0, 0, 0x4, 0, 0, 0, 0, 0];
    let goaway = [0, 0, 8, 0x7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xd];
    assert_eq!(received, [&settings[..], &goaway[..]].concat());
}
