//! The guard around every connection, against slow and greedy clients: a request head must
//! arrive whole within a deadline counted from its first byte and within a size cap (431
//! beyond), a request body may keep the server waiting only so long, a connection idle between
//! requests closes, and only so many connections are open at once.
//!
//! poem 3.1 offers none of this: its idle timeout restarts on every byte, so a client that
//! trickles a header a byte at a time is never idle, and hyper's header timer needs a timer that
//! poem never gives it. So the guard reads the byte stream itself, in both directions, to know
//! where each HTTP/1 message begins and ends (see [`framing`]). It sees bytes only when hyper
//! asks for them, which is what makes the body timer fair: time the server spends before it
//! reads a body (in the hashing queue, say) is never charged to the client.
//!
//! HTTP/2 with prior knowledge (the only HTTP/2 hyper would speak here, without TLS) is refused
//! with HTTP/2's own `HTTP_1_1_REQUIRED`: its streams share one connection, so none of these
//! per-request limits could hold, and authd's clients, and the proxies in front of it, speak
//! HTTP/1.1.

mod framing;

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::config::Connections;

use framing::{Event, Framing, HTTP2_PREFACE_HEAD, RequestHead, ResponseHead, Scanner};

const HEADERS_TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\n\
connection: close\r\ncontent-length: 0\r\n\r\n";

/// HTTP/2's server preface (an empty SETTINGS frame), then a GOAWAY frame for stream 0 with the
/// error code HTTP_1_1_REQUIRED (RFC 9113, sections 3.4, 6.8 and 7).
const HTTP2_REFUSAL: &[u8] = &[
    0, 0, 0, 0x4, 0, 0, 0, 0, 0, // SETTINGS, no payload
    0, 0, 8, 0x7, 0, 0, 0, 0, 0, // GOAWAY, 8 bytes of payload
    0, 0, 0, 0, // last stream id
    0, 0, 0, 0xd, // HTTP_1_1_REQUIRED
];

/// How long what a refused client still sends is read and dropped after the refusal: closing a
/// socket with unread input resets the connection, and the client might lose the answer.
const DRAIN: Duration = Duration::from_secs(2);

/// Accepts connections from `inner` while fewer than the cap are open; at the cap it stops
/// accepting, and new connections wait in the kernel's backlog until one closes.
pub struct GuardedAcceptor<A> {
    inner: A,
    limits: Connections,
    open: Arc<Semaphore>,
}

impl<A> GuardedAcceptor<A> {
    pub fn new(inner: A, limits: Connections) -> Self {
        Self {
            inner,
            limits,
            open: Arc::new(Semaphore::new(limits.max_connections)),
        }
    }
}

impl<A: Acceptor> Acceptor for GuardedAcceptor<A> {
    type Io = GuardedStream<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let permit = self
            .open
            .clone()
            .acquire_owned()
            .await
            .map_err(io::Error::other)?;
        let (stream, local, remote, scheme) = self.inner.accept().await?;
        let guarded = GuardedStream::new(stream, self.limits, permit);
        Ok((guarded, local, remote, scheme))
    }
}

/// Why a connection is closed by the guard.
#[derive(Debug, Clone, Copy)]
enum Expiry {
    /// No request began within the keep-alive timeout of the last answer (or of the opening).
    Idle,
    HeadTimeout,
    BodyTimeout,
    /// The request stream stopped reading as HTTP/1; hyper refuses it and closes at once, and
    /// the header deadline bounds the connection in case it does not.
    Untracked,
}

enum Ending {
    /// A canned answer is being written, in place of whatever hyper was given to read.
    Replying {
        reply: &'static [u8],
        written: usize,
    },
    /// The answer is out and the write side shut; input is dropped until the client closes.
    Draining { until: Instant },
    /// Reads end: cleanly, or with the error hyper should see.
    Closed(Option<io::ErrorKind>),
}

/// Time the server spent waiting for the bytes of the current request body.
#[derive(Default)]
struct BodyWait {
    waited: Duration,
    since: Option<Instant>,
}

impl BodyWait {
    fn settle(&mut self) {
        if let Some(since) = self.since.take() {
            self.waited += since.elapsed();
        }
    }
}

/// A connection's byte stream as hyper sees it, with the guard's limits applied.
pub struct GuardedStream<S> {
    inner: S,
    limits: Connections,
    requests: Scanner,
    responses: Scanner,
    /// Requests whose final answer has not begun, oldest first.
    unanswered: VecDeque<RequestHead>,
    /// When the connection opened or last finished an answer.
    idle_since: Instant,
    head_started: Instant,
    body_wait: BodyWait,
    untracked_since: Option<Instant>,
    timer: Pin<Box<Sleep>>,
    timer_at: Instant,
    ending: Option<Ending>,
    _open: OwnedSemaphorePermit,
}

impl<S> GuardedStream<S> {
    fn new(inner: S, limits: Connections, open: OwnedSemaphorePermit) -> Self {
        let now = Instant::now();
        let first_deadline = now + limits.keep_alive_timeout;
        Self {
            inner,
            limits,
            requests: Scanner::new(limits.max_header_bytes),
            responses: Scanner::new(usize::MAX),
            unanswered: VecDeque::new(),
            idle_since: now,
            head_started: now,
            body_wait: BodyWait::default(),
            untracked_since: None,
            timer: Box::pin(tokio::time::sleep_until(first_deadline)),
            timer_at: first_deadline,
            ending: None,
            _open: open,
        }
    }

    /// The next deadline that applies, if any: each part of a request has its own, and none
    /// runs while a request is being handled or answered.
    fn deadline(&self) -> Option<(Instant, Expiry)> {
        let limits = &self.limits;
        if let Some(since) = self.untracked_since {
            return Some((since + limits.header_read_timeout, Expiry::Untracked));
        }
        if self.requests.in_head() {
            return Some((
                self.head_started + limits.header_read_timeout,
                Expiry::HeadTimeout,
            ));
        }
        if self.requests.in_body() {
            let since = self.body_wait.since?;
            let left = limits
                .body_read_timeout
                .saturating_sub(self.body_wait.waited);
            return Some((since + left, Expiry::BodyTimeout));
        }
        let idle = self.requests.between_messages()
            && self.unanswered.is_empty()
            && self.responses.between_messages();
        idle.then(|| (self.idle_since + limits.keep_alive_timeout, Expiry::Idle))
    }

    /// Whether `at` has passed; if not, the task is woken when it does.
    fn poll_timer(&mut self, cx: &mut Context<'_>, at: Instant) -> bool {
        if at != self.timer_at {
            self.timer.as_mut().reset(at);
            self.timer_at = at;
        }
        self.timer.as_mut().poll(cx).is_ready()
    }

    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Option<Expiry> {
        let (at, expiry) = self.deadline()?;
        self.poll_timer(cx, at).then_some(expiry)
    }

    fn expire(&mut self, expiry: Expiry) {
        tracing::debug!(?expiry, "closing a connection");
        let error = match expiry {
            Expiry::Idle => None,
            Expiry::HeadTimeout | Expiry::BodyTimeout | Expiry::Untracked => {
                Some(io::ErrorKind::TimedOut)
            }
        };
        self.ending = Some(Ending::Closed(error));
    }

    /// Follows the requests in bytes just read; returns the answer that refuses the connection
    /// instead, if they call for one.
    fn read_requests(&mut self, mut bytes: &[u8]) -> Option<&'static [u8]> {
        while !bytes.is_empty() {
            let (used, event) = self.requests.feed(bytes);
            bytes = &bytes[used..];
            match event {
                Some(Event::HeadStarted) => self.head_started = Instant::now(),
                Some(Event::HeadEnded(head)) if head == HTTP2_PREFACE_HEAD => {
                    return Some(HTTP2_REFUSAL);
                }
                Some(Event::HeadEnded(head)) => match framing::parse_request(&head) {
                    Some(request) => {
                        self.body_wait = BodyWait::default();
                        self.requests.start_body(request.framing);
                        self.unanswered.push_back(request);
                    }
                    None => self.lose_track_of_requests(),
                },
                Some(Event::HeadTooLarge) => return Some(HEADERS_TOO_LARGE),
                Some(Event::Malformed) => self.lose_track_of_requests(),
                Some(Event::BodyEnded) | None => {}
            }
        }
        None
    }

    fn lose_track_of_requests(&mut self) {
        self.requests.lose_track();
        self.untracked_since = Some(Instant::now());
    }

    /// Follows the answers in bytes just written.
    fn wrote_responses(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let (used, event) = self.responses.feed(bytes);
            bytes = &bytes[used..];
            match event {
                Some(Event::HeadEnded(head)) => {
                    let response = self
                        .unanswered
                        .front()
                        .and_then(|request| framing::parse_response(&head, request));
                    match response {
                        Some(ResponseHead::Interim) => {
                            self.responses.start_body(Framing::Empty);
                        }
                        Some(ResponseHead::Final(framing)) => {
                            self.unanswered.pop_front();
                            if self.responses.start_body(framing) {
                                self.idle_since = Instant::now();
                            }
                        }
                        // Not HTTP/1 any more: the connection is never idle in the guard's eyes.
                        None => self.responses.lose_track(),
                    }
                }
                Some(Event::BodyEnded) => self.idle_since = Instant::now(),
                Some(Event::HeadStarted | Event::HeadTooLarge | Event::Malformed) | None => {}
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> GuardedStream<S> {
    /// Drives the connection's end; reads see its outcome once it is over.
    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match &mut self.ending {
                Some(Ending::Replying { reply, written }) => {
                    while *written < reply.len() {
                        let sent =
                            ready!(Pin::new(&mut self.inner).poll_write(cx, &reply[*written..]))?;
                        if sent == 0 {
                            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                        }
                        *written += sent;
                    }
                    ready!(Pin::new(&mut self.inner).poll_shutdown(cx))?;
                    self.ending = Some(Ending::Draining {
                        until: Instant::now() + DRAIN,
                    });
                }
                Some(Ending::Draining { until }) => {
                    let until = *until;
                    if self.poll_timer(cx, until) {
                        self.ending = Some(Ending::Closed(None));
                        continue;
                    }
                    let mut scratch = [0; 1024];
                    let mut dropped = ReadBuf::new(&mut scratch);
                    match ready!(Pin::new(&mut self.inner).poll_read(cx, &mut dropped)) {
                        Ok(()) if !dropped.filled().is_empty() => {}
                        _ => self.ending = Some(Ending::Closed(None)),
                    }
                }
                Some(Ending::Closed(error)) => {
                    return Poll::Ready(match error {
                        Some(kind) => Err((*kind).into()),
                        None => Ok(()),
                    });
                }
                None => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for GuardedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.ending.is_none()
            && let Some(expiry) = this.poll_deadline(cx)
        {
            this.expire(expiry);
        }
        if this.ending.is_some() {
            return this.poll_end(cx);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => {
                if this.requests.in_body() && this.body_wait.since.is_none() {
                    this.body_wait.since = Some(Instant::now());
                    if let Some(expiry) = this.poll_deadline(cx) {
                        this.expire(expiry);
                        return this.poll_end(cx);
                    }
                }
                Poll::Pending
            }
            Poll::Ready(Ok(())) => {
                this.body_wait.settle();
                if let Some(reply) = this.read_requests(&buf.filled()[before..]) {
                    buf.set_filled(before);
                    this.ending = Some(Ending::Replying { reply, written: 0 });
                    return this.poll_end(cx);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for GuardedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Once the guard answers or closes, hyper's own writes would only interleave with it.
        if this.ending.is_some() {
            return Poll::Ready(Ok(buf.len()));
        }
        let written = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.wrote_responses(&buf[..written]);
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.ending.is_some() {
            return Poll::Ready(Ok(bufs.iter().map(|buf| buf.len()).sum()));
        }
        let written = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        let mut left = written;
        for buf in bufs {
            let part = left.min(buf.len());
            this.wrote_responses(&buf[..part]);
            left -= part;
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    const KEEP_ALIVE: Duration = Duration::from_millis(300);

    /// The server's side, guarded, and the client's side of one connection.
    fn connection() -> (GuardedStream<DuplexStream>, DuplexStream) {
        let (server, client) = tokio::io::duplex(64 * 1024);
        let limits = Connections {
            keep_alive_timeout: KEEP_ALIVE,
            ..Connections::default()
        };
        let open = Arc::new(Semaphore::new(1))
            .try_acquire_owned()
            .expect("a permit");
        (GuardedStream::new(server, limits, open), client)
    }

    /// Reads as hyper does while a request is handled; `true` if the read was still waiting
    /// after `time`.
    async fn still_open_after(server: &mut GuardedStream<DuplexStream>, time: Duration) -> bool {
        let mut buf = [0; 256];
        tokio::time::timeout(time, server.read(&mut buf))
            .await
            .is_err()
    }

    #[tokio::test]
    async fn idleness_counts_only_once_every_pipelined_request_is_answered() {
        let (mut server, mut client) = connection();
        let requests = b"GET /a HTTP/1.1\r\n\r\nHEAD /b HTTP/1.1\r\n\r\n";
        client.write_all(requests).await.expect("requests");
        let mut buf = [0; 256];
        let read = server.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..read], requests);

        assert!(still_open_after(&mut server, KEEP_ALIVE * 3).await);
        server
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .expect("first answer");
        assert!(still_open_after(&mut server, KEEP_ALIVE * 3).await);
        server
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
            .await
            .expect("second answer, a HEAD's, without a body");

        let answered = Instant::now();
        let read = server.read(&mut buf).await.expect("end of stream");
        assert_eq!(read, 0);
        assert!(answered.elapsed() >= KEEP_ALIVE);
    }
}
