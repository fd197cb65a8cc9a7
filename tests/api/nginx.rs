//! docs/forward-auth.md's nginx configuration, read from the document and run by Debian's nginx
//! between a client, authd and a backend that records the headers it receives: the caller's
//! identity reaches the backend, a header the client forges never does, and authd's 503 stays
//! a 503 with its `Retry-After`. Skipped, saying so, where nginx is not installed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::{PASSWORD, TestApp, free_port};
use crate::verify::join_groups;

const DOC: &str = include_str!("../../docs/forward-auth.md");
/// The addresses the document's configuration names, which the test replaces with its own.
const DOC_AUTHD: &str = "server 127.0.0.1:8000;";
const DOC_BACKEND: &str = "server 127.0.0.1:9000;";
const DOC_LISTEN: &str = "listen 8080;";

/// The forged identity a client sends along.
const FORGED: [(&str, &str); 5] = [
    ("X-Authd-User-Id", "1"),
    ("X-Authd-Username", "root"),
    ("X-Authd-Groups", "admins"),
    ("X-Authd-Scope", "auth.change_user"),
    ("X-Authd-Truncated", "1"),
];

fn nginx_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("nginx"))
            .collect::<Vec<_>>()
    });
    on_path
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|candidate| candidate.is_file())
}

/// The one ```nginx block of the document.
fn documented_config() -> &'static str {
    let mut blocks = DOC.split("```nginx\n").skip(1);
    let block = blocks
        .next()
        .expect("docs/forward-auth.md has an nginx block");
    assert!(blocks.next().is_none(), "one nginx block");
    block.split("\n```").next().expect("the block ends")
}

pub(crate) fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} once in the document's block"
    );
    text.replacen(from, to, 1)
}

/// nginx in the foreground, everything it writes inside its own directory; killed on drop.
pub(crate) struct Nginx {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(binary: &Path, authd: &str, backend: &str) -> Self {
        Self::run(binary, |port, _| {
            let server = replace_once(documented_config(), DOC_AUTHD, &format!("server {authd};"));
            let server = replace_once(&server, DOC_BACKEND, &format!("server {backend};"));
            let server = replace_once(&server, DOC_LISTEN, &format!("listen 127.0.0.1:{port};"));
            format!("access_log off;\n{server}")
        })
        .await
    }

    /// nginx with the `http` block's contents that `http` writes, given the port to listen on
    /// and nginx's own directory (for logs).
    pub(crate) async fn run(binary: &Path, http: impl FnOnce(u16, &Path) -> String) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().display().to_string();
        let port = free_port();
        let http = http(port, dir.path());
        let config = format!(
            "daemon off;\nmaster_process off;\npid {root}/nginx.pid;\nerror_log {root}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  client_body_temp_path {root}/body;\n  proxy_temp_path {root}/proxy;\n\
             fastcgi_temp_path {root}/fastcgi;\n  uwsgi_temp_path {root}/uwsgi;\n  scgi_temp_path {root}/scgi;\n\
             {http}\n}}\n"
        );
        let config_path = dir.path().join("nginx.conf");
        std::fs::write(&config_path, config).expect("write nginx.conf");
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut nginx = Self { child, port, dir };
        nginx.wait_until_listening().await;
        nginx
    }

    async fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            let exited = self.child.try_wait().expect("nginx status");
            if exited.is_some() || Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
                panic!("nginx did not start ({exited:?}):\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// nginx's own directory: its configuration and logs.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Headers = HashMap<String, String>;

/// Answers every request with `answer` and records its headers (lower-case names).
struct Recorder {
    address: String,
    seen: Arc<Mutex<Vec<Headers>>>,
}

impl Recorder {
    async fn start(answer: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let headers = loop {
                        let Ok(read) = stream.read(&mut chunk).await else {
                            return;
                        };
                        if read == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..read]);
                        let mut fields = [httparse::EMPTY_HEADER; 64];
                        let mut request = httparse::Request::new(&mut fields);
                        if let Ok(httparse::Status::Complete(_)) = request.parse(&buffer) {
                            break request
                                .headers
                                .iter()
                                .map(|h| {
                                    (
                                        h.name.to_ascii_lowercase(),
                                        String::from_utf8_lossy(h.value).into_owned(),
                                    )
                                })
                                .collect::<Headers>();
                        }
                    };
                    record.lock().expect("lock").push(headers);
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { address, seen }
    }

    fn seen(&self) -> Vec<Headers> {
        self.seen.lock().expect("lock").clone()
    }
}

const BACKEND_OK: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

async fn through_nginx(nginx: &Nginx, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().request(Method::GET, nginx.url(path));
    for (name, value) in FORGED {
        request = request.header(name, value);
    }
    if let Some(token) = token {
        request = request.header("Authorization", format!("Token {token}"));
    }
    request.send().await.expect("nginx answers")
}

/// The identity headers the backend received on its latest request; absent ones as "".
#[track_caller]
fn identity_seen(backend: &Recorder, requests: usize) -> [String; 5] {
    let seen = backend.seen();
    assert_eq!(seen.len(), requests, "requests the backend received");
    let last = seen.last().expect("one request");
    FORGED.map(|(name, _)| {
        last.get(&name.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    })
}

pub(crate) fn installed_nginx() -> Option<PathBuf> {
    let binary = nginx_binary();
    if binary.is_none() {
        eprintln!(
            "skipped: nginx is not installed (apt-get install nginx-light; .ci/run installs it)"
        );
    }
    binary
}

#[tokio::test]
async fn the_documented_nginx_passes_the_identity_on_and_never_a_forged_one() {
    let Some(binary) = installed_nginx() else {
        return;
    };
    let app = TestApp::spawn().await;
    let (root_id, root) = app.create_superuser("root").await;
    let (alice, alice_token) = app.create_user("alice").await;
    let (bob, bob_token) = app.create_user("bob").await;
    assert!(
        ![alice, bob].contains(&1),
        "the forged id is someone else's"
    );
    let created = app
        .call(
            Method::POST,
            "/permissions/",
            &root,
            Some(json!({ "app_label": "blog", "codename": "change_post", "name": "Can change post" })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    join_groups(
        &app,
        &root,
        bob,
        &[("editors, et al", &["blog.change_post"])],
    )
    .await;

    let backend = Recorder::start(BACKEND_OK).await;
    let authd = app.address.trim_start_matches("http://");
    let nginx = Nginx::start(&binary, authd, &backend.address).await;

    // A user in no group: every forged header is replaced, or dropped where authd's is empty.
    let reply = through_nginx(&nginx, "/", Some(&alice_token)).await;
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(
        identity_seen(&backend, 1),
        [
            alice.to_string(),
            "alice".into(),
            "".into(),
            "".into(),
            "".into()
        ]
    );

    let reply = through_nginx(&nginx, "/any/page?x=1", Some(&bob_token)).await;
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(
        identity_seen(&backend, 2),
        [
            bob.to_string(),
            "bob".into(),
            "editors%2C%20et%20al".into(),
            "".into(),
            "".into()
        ]
    );
    assert!(
        backend.seen()[1]
            .get("authorization")
            .is_some_and(|value| value.ends_with(&bob_token)),
        "the backend still sees the client's own Authorization"
    );

    // The location that asks for a permission.
    let refused = through_nginx(&nginx, "/editors/post", Some(&alice_token)).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        backend.seen().len(),
        2,
        "a refused request never reaches the backend"
    );
    let reply = through_nginx(&nginx, "/editors/post", Some(&bob_token)).await;
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(identity_seen(&backend, 3)[0], bob.to_string());
    let reply = through_nginx(&nginx, "/editors/post", Some(&root)).await;
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(
        identity_seen(&backend, 4)[..2],
        [root_id.to_string(), "root".to_owned()]
    );

    // An API key in `X-API-Key` (nginx passes it to the subrequest): its scope, no groups.
    let created = app
        .call(
            Method::POST,
            "/token/keys/",
            &bob_token,
            Some(
                json!({ "name": "bot", "scope": "blog.change_post", "current_password": PASSWORD }),
            ),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let key = created.json()["key"].as_str().expect("key").to_owned();
    let mut request = reqwest::Client::new().request(Method::GET, nginx.url("/editors/post"));
    for (name, value) in FORGED {
        request = request.header(name, value);
    }
    let reply = request
        .header("X-API-Key", &key)
        .send()
        .await
        .expect("nginx answers");
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(
        identity_seen(&backend, 5),
        [
            bob.to_string(),
            "bob".into(),
            "".into(),
            "blog.change_post".into(),
            "".into()
        ]
    );

    // No token, a bad one, and a logged-out one: 401 with the challenge, and no request at all.
    for token in [None, Some("nonsense")] {
        let refused = through_nginx(&nginx, "/", token).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(
            refused
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Token")
        );
    }
    let logout = app
        .call(Method::POST, "/token/logout/", &alice_token, None)
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{}", logout.text);
    let refused = through_nginx(&nginx, "/", Some(&alice_token)).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        backend.seen().len(),
        5,
        "a refused request never reaches the backend"
    );
}

/// nginx answers 500 for an auth subrequest's unexpected status; the document's configuration
/// turns authd's 503 back into a 503 with its `Retry-After`. A stub stands in for authd
/// answering 503 as it does while its database is away (tests/api/faults.rs).
#[tokio::test]
async fn the_documented_nginx_passes_authds_503_on_with_retry_after() {
    let Some(binary) = installed_nginx() else {
        return;
    };
    let unavailable = Recorder::start(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Type: application/json\r\n\
         Content-Length: 62\r\nConnection: close\r\n\r\n\
         {\"detail\":\"Service temporarily unavailable, try again later.\"}",
    )
    .await;
    let backend = Recorder::start(BACKEND_OK).await;
    let nginx = Nginx::start(&binary, &unavailable.address, &backend.address).await;

    let reply = through_nginx(&nginx, "/", Some("any")).await;
    assert_eq!(reply.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("7")
    );
    assert_eq!(unavailable.seen().len(), 1, "nginx asked authd");
    assert!(backend.seen().is_empty(), "the backend is never reached");

    // authd's other failures stay nginx's 500, without a Retry-After.
    let broken = Recorder::start(
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    let nginx = Nginx::start(&binary, &broken.address, &backend.address).await;
    let reply = through_nginx(&nginx, "/", Some("any")).await;
    assert_eq!(reply.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.headers().get("retry-after").is_none());
    assert!(backend.seen().is_empty(), "the backend is never reached");
}
