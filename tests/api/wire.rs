//! A raw HTTP/1 client for the tests that must send what no well-behaved client would: bytes
//! written by hand, from any loopback address, and answers read as they come.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::TestApp;

/// How late a close may come on a loaded, shared test machine.
pub const CLOSE_MARGIN: Duration = Duration::from_secs(3);

pub fn socket_address(app: &TestApp) -> SocketAddr {
    app.address
        .trim_start_matches("http://")
        .parse()
        .expect("socket address")
}

pub async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(socket_address(app))
        .await
        .expect("connect")
}

/// A connection from another loopback address (`127.0.0.2`, …): another host, as the server
/// sees it.
pub async fn connect_from(app: &TestApp, from: [u8; 4]) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(IpAddr::from(from), 0))
        .expect("bind a loopback address");
    socket.connect(socket_address(app)).await.expect("connect")
}

/// A connection whose receive buffer is small, so that answers it does not read back up to
/// the server quickly.
pub async fn connect_with_small_buffer(app: &TestApp) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(socket_address(app)).await.expect("connect")
}

pub fn get(path: &str, token: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: authd\r\nAuthorization: Token {token}\r\n\r\n")
}

/// One answer: its status, header fields (names in lower case) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads one answer (with a `Content-Length` body, as authd sends).
pub async fn read_response(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Answer> {
    let mut received = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut fields);
        if let httparse::Status::Complete(head_length) =
            response.parse(&received).map_err(std::io::Error::other)?
        {
            let headers: Vec<(String, String)> = response
                .headers
                .iter()
                .map(|field| {
                    (
                        field.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(field.value).into_owned(),
                    )
                })
                .collect();
            let length: usize = headers
                .iter()
                .find(|(name, _)| name == "content-length")
                .and_then(|(_, value)| value.parse().ok())
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
            body.truncate(length);
            return Ok(Answer {
                status,
                headers,
                body,
            });
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        received.extend_from_slice(&chunk[..read]);
    }
}

/// Waits until the server closes `stream` (end of stream or reset); returns what it sent first.
pub async fn until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut received = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return received,
            Ok(read) => received.extend_from_slice(&chunk[..read]),
        }
    }
}

/// Whether the server has closed `stream`: it reads what is left, and says `false` if the
/// stream is still open after `wait`.
pub async fn closed_within(stream: &mut (impl AsyncRead + Unpin), wait: Duration) -> bool {
    tokio::time::timeout(wait, until_closed(stream))
        .await
        .is_ok()
}
