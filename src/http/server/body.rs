//! A deadline on every request body, on every route: a body that has not arrived whole
//! `AUTHD_BODY_READ_TIMEOUT_SECONDS` after its head (a trickle, a `Content-Length` never met, a
//! chunked body or trailer that never ends) fails its reader, whoever reads it. A body nobody
//! reads is hyper's to discard: after the answer it closes the connection rather than wait.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use tokio::time::{Instant, Sleep};

/// When the request's body must have arrived whole: a request extension, so that whatever
/// else waits while reading a body (room in memory) keeps to the same deadline.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub Instant);

/// What a body read past its deadline fails with (inside an `io::Error` of kind `TimedOut`).
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received in time")]
pub struct BodyTimedOut;

impl BodyTimedOut {
    /// Whether a body's read error is this one.
    pub fn caused(err: &io::Error) -> bool {
        err.get_ref()
            .is_some_and(|inner| inner.is::<BodyTimedOut>())
    }
}

/// `request` with its body cut at `timeout` from now.
pub(super) fn with_deadline(mut request: poem::Request, timeout: Duration) -> poem::Request {
    let deadline = Instant::now() + timeout;
    let inner: BoxBody<Bytes, io::Error> = request.take_body().into();
    let body = DeadlineBody {
        inner,
        deadline,
        timer: None,
    };
    request.set_body(poem::Body::from(BoxBody::new(body)));
    request.extensions_mut().insert(BodyDeadline(deadline));
    request
}

struct DeadlineBody {
    inner: BoxBody<Bytes, io::Error>,
    deadline: Instant,
    /// Armed the first time the body has nothing to give.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_ready() {
                    crate::meter::connection_closed(crate::meter::Closed::BodyTimeout);
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        BodyTimedOut,
                    ))));
                }
                Poll::Pending
            }
            ready => ready,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
