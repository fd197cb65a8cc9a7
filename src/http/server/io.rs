//! One connection's byte stream, with the two limits hyper does not offer, kept without
//! reading a byte of what flows through:
//! - **write progress**: a connection whose answers are waiting to be sent must take at least
//!   [`MIN_PROGRESS`] bytes per `AUTHD_BODY_READ_TIMEOUT_SECONDS`, else it is closed. hyper runs
//!   no deadline while it writes (hyperium/hyper#3852, "Configurable read and write timeout",
//!   closed without one), so a client that pipelines requests and never reads, or reads a byte
//!   at a time, would hold its connection forever;
//! - **keep-alive**: hyper's `header_read_timeout` also bounds the wait between requests, and
//!   hyper has no idle timeout of its own (hyperium/hyper#1628; the h1 `idle_timeout` of
//!   hyperium/hyper#3743 was closed unmerged). When `AUTHD_KEEP_ALIVE_TIMEOUT_SECONDS` is the
//!   shorter, a connection with no request inside the endpoint, nothing read since its last
//!   answer and nothing waiting to be written closes once it has been quiet that long. The
//!   endpoint says when a request arrives and when its answer is ready ([`Activity`]); the bytes
//!   themselves are never looked at.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::config::Connections;

/// The least a client must read of pending answers in each write-progress window.
pub(super) const MIN_PROGRESS: usize = 1024;

/// What a write fails with once the client stopped reading its answers (inside an
/// `io::Error` of kind `TimedOut`).
#[derive(Debug, thiserror::Error)]
#[error("the client stopped reading its answers")]
pub(super) struct WriteStalled;

impl WriteStalled {
    /// Whether a connection ended on this error, wherever hyper wrapped it.
    pub(super) fn caused(err: &(dyn std::error::Error + 'static)) -> bool {
        let mut cause = Some(err);
        while let Some(err) = cause {
            if let Some(io) = err.downcast_ref::<io::Error>()
                && io.get_ref().is_some_and(|inner| inner.is::<WriteStalled>())
            {
                return true;
            }
            cause = err.source();
        }
        false
    }
}

/// What the endpoint tells the connection: requests inside it, and answers it has given.
#[derive(Default)]
pub(super) struct Activity {
    in_flight: AtomicUsize,
    answers: AtomicU64,
}

/// A request inside the endpoint; its drop says its answer is ready.
pub(super) struct Busy(Arc<Activity>);

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::default()
    }

    pub(super) fn request_started(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(Arc::clone(self))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.answers.fetch_add(1, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The keep-alive rule's view of the connection.
struct KeepAlive {
    timeout: Duration,
    activity: Arc<Activity>,
    answers_seen: u64,
    /// When the connection opened, last answered or last wrote.
    quiet_since: Instant,
    read_since_answer: bool,
    timer: Option<Pin<Box<Sleep>>>,
}

impl KeepAlive {
    /// Whether the connection has been idle past the timeout; if it is idle but not yet past,
    /// the task is woken when it will be.
    fn expired(&mut self, cx: &mut Context<'_>, writing: bool) -> bool {
        let answers = self.activity.answers.load(Ordering::Relaxed);
        if answers != self.answers_seen {
            self.answers_seen = answers;
            self.quiet_since = Instant::now();
            self.read_since_answer = false;
        }
        let idle = !writing
            && !self.read_since_answer
            && self.activity.in_flight.load(Ordering::Relaxed) == 0;
        idle && poll_deadline(&mut self.timer, self.quiet_since + self.timeout, cx)
    }
}

/// A window in which pending answers must make progress.
struct Stall {
    accepted: usize,
    timer: Pin<Box<Sleep>>,
}

pub struct GuardedIo<S> {
    inner: S,
    progress_window: Duration,
    /// `None` when hyper's header timeout, the shorter, already bounds idleness.
    keep_alive: Option<KeepAlive>,
    /// Since a write found the client not reading, until the client took enough.
    stall: Option<Stall>,
}

impl<S> GuardedIo<S> {
    pub(super) fn new(inner: S, limits: &Connections, activity: Arc<Activity>) -> Self {
        let keep_alive =
            (limits.keep_alive_timeout < limits.header_read_timeout).then(|| KeepAlive {
                timeout: limits.keep_alive_timeout,
                activity,
                answers_seen: 0,
                quiet_since: Instant::now(),
                read_since_answer: false,
                timer: None,
            });
        Self {
            inner,
            progress_window: limits.body_read_timeout,
            keep_alive,
            stall: None,
        }
    }

    fn wrote(&mut self, written: usize) {
        if let Some(stall) = &mut self.stall {
            stall.accepted += written;
            if stall.accepted >= MIN_PROGRESS {
                self.stall = None;
            }
        }
        if let Some(keep_alive) = &mut self.keep_alive {
            keep_alive.quiet_since = Instant::now();
        }
    }

    /// Counts what a write took; a write that found no room fails once a whole window passed
    /// without enough progress.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(written)) => {
                self.wrote(written);
                Poll::Ready(Ok(written))
            }
            Poll::Pending if self.stalled(cx) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, WriteStalled)))
            }
            other => other,
        }
    }

    /// A write found no room: true once a whole window passed without enough progress.
    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        let window = self.progress_window;
        let stall = self.stall.get_or_insert_with(|| Stall {
            accepted: 0,
            timer: Box::pin(tokio::time::sleep(window)),
        });
        stall.timer.as_mut().poll(cx).is_ready()
    }
}

/// Whether `at` has passed; if not, the task is woken when it does.
fn poll_deadline(timer: &mut Option<Pin<Box<Sleep>>>, at: Instant, cx: &mut Context<'_>) -> bool {
    let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
    if timer.deadline() != at {
        timer.as_mut().reset(at);
    }
    timer.as_mut().poll(cx).is_ready()
}

impl<S: AsyncRead + Unpin> AsyncRead for GuardedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => {
                let writing = this.stall.is_some();
                let expired = this
                    .keep_alive
                    .as_mut()
                    .is_some_and(|keep_alive| keep_alive.expired(cx, writing));
                // The end of the stream: hyper closes an idle connection quietly.
                match expired {
                    true => Poll::Ready(Ok(())),
                    false => Poll::Pending,
                }
            }
            Poll::Ready(Ok(())) => {
                if let Some(keep_alive) = &mut this.keep_alive
                    && buf.filled().len() > before
                {
                    keep_alive.read_since_answer = true;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GuardedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.after_write(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.after_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        // Everything hyper had to send is with the kernel: nothing is pending any more.
        if let Poll::Ready(Ok(())) = flushed {
            this.stall = None;
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
