//! A real SMTP server on 127.0.0.1 for the tests: enough of RFC 5321 for lettre (EHLO, MAIL,
//! RCPT, DATA, RSET, NOOP, QUIT), keeping every message it receives.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// One received message: envelope recipients and the raw data, as sent (links must survive
/// in it whole: authd sends ASCII bodies as 7bit).
#[derive(Debug, Clone)]
pub struct Received {
    pub recipients: Vec<String>,
    pub raw: String,
}

impl Received {
    /// The first link in the message.
    pub fn link(&self) -> String {
        let start = self
            .raw
            .find("http://")
            .or_else(|| self.raw.find("https://"))
            .expect("a link in the message");
        self.raw[start..]
            .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// `(uid, token)` from a link ending in `…/{uid}/{token}`.
    pub fn uid_and_token(&self) -> (String, String) {
        let link = self.link();
        let mut parts = link.rsplit('/');
        let token = parts.next().unwrap_or_default().to_owned();
        let uid = parts.next().unwrap_or_default().to_owned();
        (uid, token)
    }

    pub fn subject(&self) -> String {
        self.header("Subject")
    }

    /// The `Message-ID` header, which stays the same when a message is sent again.
    pub fn message_id(&self) -> String {
        self.header("Message-ID")
    }

    fn header(&self, name: &str) -> String {
        self.raw
            .lines()
            .take_while(|line| !line.is_empty())
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
            .unwrap_or_default()
            .to_owned()
    }
}

pub struct SmtpServer {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpServer {
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    pub async fn start_on(port: u16) -> Self {
        Self::listen(port, Duration::ZERO).await
    }

    /// A server that holds each message `delay` before accepting it, as a busy relay does:
    /// mail queues up behind it, and a sender is usually waiting on it.
    pub async fn start_slow(delay: Duration) -> Self {
        Self::listen(0, delay).await
    }

    async fn listen(port: u16, delay: Duration) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind SMTP");
        let port = listener.local_addr().expect("addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        let (store, notify) = (received.clone(), arrived.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (store, notify) = (store.clone(), notify.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, store, notify, delay).await;
                });
            }
        });
        Self {
            port,
            received,
            arrived,
            task,
        }
    }

    pub fn messages(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    /// Waits until at least `count` messages arrived (10 s at most).
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.arrived.notified();
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "expected {count} messages, got {}: {messages:#?}",
                    messages.len()
                );
            }
        }
    }

    /// Gives the worker time to (wrongly) send more, then returns what arrived.
    pub async fn settle(&self) -> Vec<Received> {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        self.messages()
    }
}

async fn serve(
    stream: tokio::net::TcpStream,
    store: Arc<Mutex<Vec<Received>>>,
    notify: Arc<Notify>,
    delay: Duration,
) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    writer.write_all(b"220 localhost test SMTP\r\n").await?;
    let mut recipients = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if command.starts_with("EHLO") || command.starts_with("HELO") {
            b"250-localhost\r\n250 8BITMIME\r\n"
        } else if command.starts_with("MAIL FROM") {
            recipients.clear();
            b"250 OK\r\n"
        } else if command.starts_with("RCPT TO") {
            recipients.push(
                line.trim_end()[8..]
                    .trim()
                    .trim_matches(|c| c == '<' || c == '>')
                    .to_owned(),
            );
            b"250 OK\r\n"
        } else if command == "DATA" {
            writer.write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            store.lock().expect("lock").push(Received {
                recipients: recipients.clone(),
                raw: data,
            });
            notify.notify_waiters();
            tokio::time::sleep(delay).await;
            b"250 queued\r\n"
        } else if command == "QUIT" {
            writer.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"250 OK\r\n"
        };
        writer.write_all(reply).await?;
    }
}
