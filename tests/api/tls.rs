//! HTTPS on AUTHD_BIND: a client that verifies the certificate against a CA the test makes,
//! HTTP/1.1 only, certificates rotated by SIGHUP under open connections, handshakes bounded by
//! the header timeout, and start-up refusing files it cannot serve, naming the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use authd::config::Settings;
use authd::startup::Application;

use crate::cli::{Served, authd};
use crate::helpers::{PASSWORD, TestApp};

/// A CA of the test's own, and server certificates it signs for 127.0.0.1 and localhost.
pub(crate) struct Authority {
    issuer: Issuer<'static, KeyPair>,
    /// The CA's certificate, for a client that reads its trust from a file (nginx).
    pub(crate) pem: String,
}

/// A server certificate and its key, as PEM, and the certificate as served (DER).
pub(crate) struct ServerPair {
    pub(crate) certificate: String,
    pub(crate) key: String,
    der: CertificateDer<'static>,
}

impl Authority {
    pub(crate) fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let certificate = params.self_signed(&key).expect("CA certificate");
        Self {
            issuer: Issuer::new(params, key),
            pem: certificate.pem(),
        }
    }

    pub(crate) fn server_pair(&self, name: &str) -> ServerPair {
        let key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("server params");
        params.distinguished_name.push(DnType::CommonName, name);
        let certificate = params.signed_by(&key, &self.issuer).expect("signed");
        ServerPair {
            certificate: certificate.pem(),
            key: key.serialize_pem(),
            der: certificate.der().clone(),
        }
    }

    pub(crate) fn client(&self, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.pem.as_bytes()).expect("CA PEM"))
            .expect("CA trusted");
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        // Every handshake a full one: a resumed session reports the certificate it was made
        // with, not the one served now.
        config.resumption = rustls::client::Resumption::disabled();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// Where the served pair is written; rewritten in place (by rename) to rotate it.
pub(crate) struct PairFiles {
    certificate: PathBuf,
    key: PathBuf,
}

impl PairFiles {
    pub(crate) fn in_dir(dir: &Path) -> Self {
        Self {
            certificate: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }

    pub(crate) fn write(&self, certificate: &str, key: &str) {
        for (path, text) in [(&self.certificate, certificate), (&self.key, key)] {
            let fresh = path.with_extension("new");
            std::fs::write(&fresh, text).expect("write PEM");
            std::fs::rename(&fresh, path).expect("replace PEM");
        }
    }

    fn configure(&self, settings: &mut Settings) {
        settings.tls_cert_file = Some(self.certificate.clone());
        settings.tls_key_file = Some(self.key.clone());
    }

    pub(crate) fn env(&self) -> [(&'static str, String); 2] {
        [
            (
                "AUTHD_TLS_CERT_FILE",
                self.certificate.display().to_string(),
            ),
            ("AUTHD_TLS_KEY_FILE", self.key.display().to_string()),
        ]
    }
}

/// One verified HTTPS connection, held open for as many requests as the test sends.
pub(crate) struct Connection {
    sender: SendRequest<Full<Bytes>>,
    alpn: Option<Vec<u8>>,
    peer_certificate: CertificateDer<'static>,
}

impl Connection {
    async fn open(address: SocketAddr, connector: &tokio_rustls::TlsConnector) -> Self {
        Self::try_open(address, connector)
            .await
            .expect("TLS handshake")
    }

    async fn try_open(
        address: SocketAddr,
        connector: &tokio_rustls::TlsConnector,
    ) -> std::io::Result<Self> {
        let tcp = TcpStream::connect(address).await?;
        let name = ServerName::try_from("localhost").expect("server name");
        let stream = connector.connect(name, tcp).await?;
        let (_, session) = stream.get_ref();
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let peer_certificate = session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .expect("a served certificate")
            .clone()
            .into_owned();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            alpn,
            peer_certificate,
        })
    }

    pub(crate) async fn send(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        if let Some(token) = token {
            request = request.header("authorization", format!("Token {token}"));
        }
        let body = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Full::new(Bytes::from(body.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let reply = self
            .sender
            .send_request(request.body(body).expect("request"))
            .await
            .expect("answered");
        let status = reply.status().as_u16();
        let bytes = reply.into_body().collect().await.expect("body").to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json)
    }
}

/// A verified connection to `served` once it answers `/healthz` over TLS (it is launched, not
/// started: `Served::start` waits for plain HTTP).
pub(crate) async fn answering_https(
    served: &Served,
    connector: &tokio_rustls::TlsConnector,
) -> Connection {
    let started = Instant::now();
    loop {
        if let Ok(mut connection) = Connection::try_open(served.address(), connector).await
            && connection.send("GET", "/healthz", None, None).await.0 == 200
        {
            return connection;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "authd did not answer over TLS"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn socket_address(app: &TestApp) -> SocketAddr {
    app.address
        .trim_start_matches("http://")
        .parse()
        .expect("socket address")
}

/// The TLS app with a fresh CA and pair; the directory holds the files.
async fn spawn_tls(
    configure: impl FnOnce(&mut Settings),
) -> (TestApp, Authority, ServerPair, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let authority = Authority::new("authd test CA");
    let pair = authority.server_pair("first");
    let files = PairFiles::in_dir(dir.path());
    files.write(&pair.certificate, &pair.key);
    let app = TestApp::spawn_with(|settings| {
        files.configure(settings);
        configure(settings);
    })
    .await;
    (app, authority, pair, dir)
}

#[tokio::test]
async fn https_serves_the_api_to_a_verifying_client_over_http11_only() {
    let (app, authority, pair, _dir) = spawn_tls(|_| {}).await;
    let address = socket_address(&app);
    // A client that would take HTTP/2 first still gets HTTP/1.1.
    let mut connection = Connection::open(address, &authority.client(&[b"h2", b"http/1.1"])).await;
    assert_eq!(connection.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(connection.peer_certificate, pair.der);
    let (status, _) = connection.send("GET", "/healthz", None, None).await;
    assert_eq!(status, 200);

    let (status, created) = connection
        .send(
            "POST",
            "/users/",
            None,
            Some(json!({"username": "alice", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, login) = connection
        .send(
            "POST",
            "/token/login/",
            None,
            Some(json!({"username": "alice", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    let token = login["auth_token"].as_str().expect("auth_token");
    let (status, me) = connection
        .send("GET", "/users/me/", Some(token), None)
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["username"], "alice");

    // A client that offers only HTTP/2 is refused rather than served something else.
    let h2_only = Connection::try_open(address, &authority.client(&[b"h2"])).await;
    assert!(h2_only.is_err(), "an h2-only client was served");
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_issuer_is_refused() {
    let (app, _authority, _pair, _dir) = spawn_tls(|_| {}).await;
    let stranger = Authority::new("another CA");
    let refused =
        Connection::try_open(socket_address(&app), &stranger.client(&[b"http/1.1"])).await;
    assert!(refused.is_err(), "verified against the wrong CA");
}

/// Reads until the server closes the connection (or `limit` passes); how long that took, and
/// what it sent.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (started.elapsed(), received),
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
            Err(_) => panic!("the connection was still open after {limit:?}"),
        }
    }
}

/// A client that connects and sends nothing, or half a ClientHello, holds its slot no longer
/// than the header timeout, and never keeps others from being served meanwhile.
#[tokio::test]
async fn a_stalled_handshake_is_closed_within_the_header_timeout() {
    let timeout = Duration::from_secs(1);
    let (app, authority, _pair, _dir) =
        spawn_tls(|settings| settings.connections.header_read_timeout = timeout).await;
    let address = socket_address(&app);
    let mut silent = TcpStream::connect(address).await.expect("connect");
    let mut half_hello = TcpStream::connect(address).await.expect("connect");
    // A TLS record header announcing a 512-byte handshake message, and no more.
    half_hello
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .expect("write");

    let mut served = Connection::open(address, &authority.client(&[b"http/1.1"])).await;
    assert_eq!(served.send("GET", "/healthz", None, None).await.0, 200);

    for stream in [&mut silent, &mut half_hello] {
        let (waited, _) = read_until_closed(stream, timeout + Duration::from_secs(5)).await;
        assert!(
            waited <= timeout + Duration::from_secs(2),
            "closed after {waited:?}"
        );
    }
}

/// A connection still in its handshake holds its host's share of the cap: with a share of
/// one, a second connection from the host is closed until the first goes.
#[tokio::test]
async fn a_handshake_holds_its_share_of_the_connection_cap() {
    let (app, authority, _pair, _dir) =
        spawn_tls(|settings| settings.connections.max_connections = 8).await;
    let address = socket_address(&app);
    let connector = authority.client(&[b"http/1.1"]);
    let handshaking = TcpStream::connect(address).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = Connection::try_open(address, &connector).await;
    assert!(refused.is_err(), "a second connection past the share");
    drop(handshaking);
    let started = Instant::now();
    let mut served = loop {
        if let Ok(connection) = Connection::try_open(address, &connector).await {
            break connection;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the share was not given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(served.send("GET", "/healthz", None, None).await.0, 200);
}

#[tokio::test]
async fn plain_http_on_the_tls_port_gets_no_http_answer() {
    let (app, _authority, _pair, _dir) = spawn_tls(|_| {}).await;
    let mut stream = TcpStream::connect(socket_address(&app))
        .await
        .expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let (_, received) = read_until_closed(&mut stream, Duration::from_secs(15)).await;
    assert!(
        !received.starts_with(b"HTTP/"),
        "answered in plain HTTP: {}",
        String::from_utf8_lossy(&received)
    );
}

/// `authd serve` with TLS: SIGHUP rotates the certificate for new connections while one
/// opened before keeps working; a pair that does not load leaves the previous one served.
#[tokio::test]
async fn sighup_reloads_the_certificate_without_dropping_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let authority = Authority::new("authd test CA");
    let first = authority.server_pair("first");
    let files = PairFiles::in_dir(dir.path());
    files.write(&first.certificate, &first.key);
    let env = files.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut served = Served::launch(&dir, &env);
    let address = served.address();
    let connector = authority.client(&[b"http/1.1"]);
    let mut before = answering_https(&served, &connector).await;
    assert_eq!(before.peer_certificate, first.der);
    assert_eq!(before.send("GET", "/healthz", None, None).await.0, 200);

    let second = authority.server_pair("second");
    files.write(&second.certificate, &second.key);
    served.signal(libc::SIGHUP);
    let started = Instant::now();
    loop {
        let connection = Connection::open(address, &connector).await;
        if connection.peer_certificate == second.der {
            break;
        }
        assert_eq!(connection.peer_certificate, first.der);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the new certificate is not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        before.send("GET", "/healthz", None, None).await.0,
        200,
        "the connection opened before the reload"
    );

    // The third certificate with the second's key: refused, the second stays.
    let third = authority.server_pair("third");
    files.write(&third.certificate, &second.key);
    served.signal(libc::SIGHUP);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut after = Connection::open(address, &connector).await;
    assert_eq!(after.peer_certificate, second.der);
    assert_eq!(after.send("GET", "/healthz", None, None).await.0, 200);
    assert!(served.is_running());

    let (status, _, stderr) = served.stop();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("TLS certificate and key reloaded"),
        "{stderr}"
    );
    assert!(
        stderr.contains("were not reloaded") && stderr.contains("AUTHD_TLS_KEY_FILE"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sighup_without_tls_logs_and_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut served = Served::start(&dir, &[]).await;
    served.signal(libc::SIGHUP);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(served.is_running(), "SIGHUP ended authd");
    let reply = reqwest::get(format!("{}/healthz", served.base))
        .await
        .expect("still served");
    assert_eq!(reply.status(), 200);
    let (status, _, stderr) = served.stop();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("no TLS certificate to reload"), "{stderr}");
}

/// A variable set for `authd serve`, and the file it names.
type TlsVariable<'a> = (&'a str, &'a Path);

/// `authd serve` with these TLS variables: it must stop at start-up; its error output.
fn refused_start(dir: &tempfile::TempDir, env: &[TlsVariable]) -> String {
    let mut command = authd(dir);
    command.arg("serve");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("run authd");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "started: {stderr}");
    stderr
}

#[test]
fn start_up_stops_on_a_pair_it_cannot_serve_naming_the_setting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let authority = Authority::new("authd test CA");
    let pair = authority.server_pair("server");
    let other = authority.server_pair("other");
    let files = PairFiles::in_dir(dir.path());
    files.write(&pair.certificate, &pair.key);
    let missing = dir.path().join("missing.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not PEM at all").expect("write");
    let other_key = dir.path().join("other-key.pem");
    std::fs::write(&other_key, &other.key).expect("write");
    let (cert, key) = (files.certificate.as_path(), files.key.as_path());

    let cases: [(&[TlsVariable], &str, &str); 7] = [
        (
            &[("AUTHD_TLS_CERT_FILE", cert)],
            "AUTHD_TLS_KEY_FILE",
            "set both",
        ),
        (
            &[("AUTHD_TLS_KEY_FILE", key)],
            "AUTHD_TLS_CERT_FILE",
            "set both",
        ),
        (
            &[
                ("AUTHD_TLS_CERT_FILE", &missing),
                ("AUTHD_TLS_KEY_FILE", key),
            ],
            "AUTHD_TLS_CERT_FILE",
            "missing.pem",
        ),
        (
            &[
                ("AUTHD_TLS_CERT_FILE", cert),
                ("AUTHD_TLS_KEY_FILE", &missing),
            ],
            "AUTHD_TLS_KEY_FILE",
            "missing.pem",
        ),
        (
            &[
                ("AUTHD_TLS_CERT_FILE", &garbage),
                ("AUTHD_TLS_KEY_FILE", key),
            ],
            "AUTHD_TLS_CERT_FILE",
            "no PEM certificate",
        ),
        (
            &[
                ("AUTHD_TLS_CERT_FILE", cert),
                ("AUTHD_TLS_KEY_FILE", &garbage),
            ],
            "AUTHD_TLS_KEY_FILE",
            "garbage.pem",
        ),
        (
            &[
                ("AUTHD_TLS_CERT_FILE", cert),
                ("AUTHD_TLS_KEY_FILE", &other_key),
            ],
            "AUTHD_TLS_KEY_FILE",
            "does not fit the certificate",
        ),
    ];
    for (env, setting, detail) in cases {
        let stderr = refused_start(&dir, env);
        assert!(
            stderr.contains(setting) && stderr.contains(detail),
            "{env:?}: {stderr}"
        );
    }
}

/// RSA (PKCS#1) and SEC1 keys, as openssl writes them by default for those types, are served
/// as PKCS#8 ones are.
#[tokio::test]
async fn rsa_and_sec1_keys_are_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = [
        (
            "rsa",
            &["genrsa", "-traditional", "-out"][..],
            "BEGIN RSA PRIVATE KEY",
        ),
        (
            "sec1",
            &[
                "ecparam",
                "-genkey",
                "-name",
                "prime256v1",
                "-noout",
                "-out",
            ][..],
            "BEGIN EC PRIVATE KEY",
        ),
    ];
    for (name, generate, marker) in keys {
        let key = dir.path().join(format!("{name}-key.pem"));
        let certificate = dir.path().join(format!("{name}-cert.pem"));
        let made = std::process::Command::new("openssl")
            .args(generate)
            .arg(&key)
            .output()
            .expect("openssl");
        assert!(made.status.success(), "{made:?}");
        assert!(
            std::fs::read_to_string(&key).expect("key").contains(marker),
            "{name}"
        );
        let signed = std::process::Command::new("openssl")
            .args([
                "req",
                "-new",
                "-x509",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
            ])
            .arg("-key")
            .arg(&key)
            .arg("-out")
            .arg(&certificate)
            .output()
            .expect("openssl");
        assert!(signed.status.success(), "{signed:?}");
        let mut settings = Settings::for_database(format!(
            "sqlite://{}?mode=rwc",
            dir.path().join(format!("{name}.sqlite3")).display()
        ));
        settings.bind = "127.0.0.1:0".parse().expect("address");
        settings.tls_cert_file = Some(certificate);
        settings.tls_key_file = Some(key);
        if let Err(err) = Application::build(settings).await {
            panic!("{name}: {err:#}");
        }
    }
}
