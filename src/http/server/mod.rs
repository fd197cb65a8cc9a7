//! Serving HTTP/1.1 through hyper's own server, configured, with nothing beside it that reads
//! the protocol: two parsers of one protocol that disagree are a hole by construction (our own
//! scanner once took `0\r\n\n` for the end of a chunked body where hyper did not).
//!
//! hyper bounds each request head: `header_read_timeout` runs from the moment the connection
//! can take a request (just opened, or the previous answer sent) to the end of the head, so it
//! is also the longest idle wait between requests; `max_buf_size` caps the head (431). What
//! stays here works on bytes and connections, never on their meaning:
//! - a cap on open connections, and a share of it per peer (see [`peers`]);
//! - a write-progress rule and, when it is the shorter, the keep-alive timeout (see [`io`]);
//! - a deadline on every request body (see [`body`]).
//!
//! Only HTTP/1.1 is spoken: HTTP/2's streams share one connection, so none of these
//! per-request limits could hold; an HTTP/2 preface is closed without an answer.
//!
//! With TLS (see [`tls`]) the handshake runs in the connection's own task, holding its slot of
//! the cap and its peer's share, and must finish within `AUTHD_HEADER_READ_TIMEOUT_SECONDS` of
//! the accept; every limit above then holds on the decrypted stream as on a plain one.

mod body;
mod io;
mod peers;
mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use ipnet::IpNet;
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::config::Connections;
use crate::meter::{self, Closed};
use metrics::gauge;

pub use body::{BodyDeadline, BodyTimedOut};
pub use tls::{Tls, TlsError, TlsFiles};

use io::{Activity, GuardedIo};
use peers::Peers;

/// How long a failed `accept` (out of file descriptors, say) keeps the loop from trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What a served connection is held to.
#[derive(Debug, Clone)]
pub struct Limits {
    pub connections: Connections,
    /// Peers exempt from the per-peer share: a proxy carries many clients.
    pub trusted_proxies: Vec<IpNet>,
    /// How long in-flight requests may take to finish after shutdown begins.
    pub grace_period: Duration,
}

/// Serves `endpoint` on `listener` (over TLS when `tls` is given) until `shutdown` resolves;
/// then stops accepting, lets in-flight requests finish (at most the grace period) and closes
/// idle connections.
pub async fn serve<E>(
    listener: TcpListener,
    endpoint: E,
    limits: Limits,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    E: Endpoint<Output = Response> + 'static,
{
    let local = LocalAddr(listener.local_addr()?.into());
    let endpoint = Arc::new(endpoint);
    let peers = Peers::new(
        limits.connections.max_connections,
        limits.trusted_proxies.clone(),
    );
    let builder = http1_builder(&limits.connections);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let open = tokio::select! {
            permit = peers.open_slot() => permit,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(share) = peers.claim(peer.ip()) else {
            tracing::debug!(peer = %peer.ip(), "a peer at its share of the connection cap");
            meter::connection_closed(Closed::Cap);
            continue;
        };
        let open_gauge = gauge!(meter::CONNECTIONS_OPEN);
        open_gauge.increment(1.0);
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let connection = Connection {
            builder: builder.clone(),
            local: local.clone(),
            peer,
            endpoint: Arc::clone(&endpoint),
            limits: limits.connections,
            watcher: graceful.watcher(),
        };
        let acceptor = tls.as_ref().map(|tls| tls.acceptor().clone());
        let handshake_timeout = limits.connections.header_read_timeout;
        tokio::spawn(async move {
            let ended = match acceptor {
                None => connection.serve(stream, Scheme::HTTP).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => connection.serve(stream, Scheme::HTTPS).await,
                        Ok(Err(err)) => {
                            tracing::debug!(error = %err, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake not finished within the header timeout");
                            meter::connection_closed(Closed::HeadTimeout);
                            Ok(())
                        }
                    }
                }
            };
            if let Err(err) = ended {
                tracing::debug!(error = %err, "connection ended with an error");
                if err.is_timeout() {
                    meter::connection_closed(Closed::HeadTimeout);
                } else if io::WriteStalled::caused(&err) {
                    meter::connection_closed(Closed::WriteStall);
                }
            }
            open_gauge.decrement(1.0);
            drop((open, share));
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.grace_period, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_seconds = limits.grace_period.as_secs(),
            "stopped waiting for requests still in flight at the end of the grace period"
        );
    }
    Ok(())
}

fn http1_builder(limits: &Connections) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    builder
}

/// What an accepted connection is served with, once its stream (plain or TLS) is ready.
struct Connection<E> {
    builder: http1::Builder,
    local: LocalAddr,
    peer: SocketAddr,
    endpoint: Arc<E>,
    limits: Connections,
    watcher: Watcher,
}

impl<E> Connection<E>
where
    E: Endpoint<Output = Response> + 'static,
{
    async fn serve<S>(self, stream: S, scheme: Scheme) -> Result<(), hyper::Error>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Activity::new();
        let handler = Handler {
            endpoint: self.endpoint,
            local: self.local,
            remote: RemoteAddr(self.peer.into()),
            scheme,
            activity: Arc::clone(&activity),
            body_read_timeout: self.limits.body_read_timeout,
        };
        let io = GuardedIo::new(stream, &self.limits, activity);
        let connection = self.builder.serve_connection(TokioIo::new(io), handler);
        self.watcher.watch(connection).await
    }
}

/// One connection's requests, handed to the endpoint as poem requests.
struct Handler<E> {
    endpoint: Arc<E>,
    local: LocalAddr,
    remote: RemoteAddr,
    scheme: Scheme,
    activity: Arc<Activity>,
    body_read_timeout: Duration,
}

type ResponseBody = http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error>;

impl<E> hyper::service::Service<hyper::Request<Incoming>> for Handler<E>
where
    E: Endpoint<Output = Response> + 'static,
{
    type Response = hyper::Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let endpoint = Arc::clone(&self.endpoint);
        let busy = self.activity.request_started();
        let request = poem::Request::from((
            request,
            self.local.clone(),
            self.remote.clone(),
            self.scheme.clone(),
        ));
        let request = body::with_deadline(request, self.body_read_timeout);
        Box::pin(async move {
            let response = endpoint.get_response(request).await;
            drop(busy);
            Ok(response.into())
        })
    }
}
