//! Settings, from flags or `CONTACTS_*` environment variables.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

/// The contacts example: an address book whose users are authd's.
#[derive(Parser, Clone)]
#[command(version, about)]
pub struct Settings {
    /// Address to serve on.
    #[arg(long, env = "CONTACTS_BIND", default_value = "127.0.0.1:8001")]
    pub bind: SocketAddr,
    /// Where contacts are kept (the schema is created on start).
    #[arg(
        long,
        env = "CONTACTS_DATABASE_URL",
        default_value = "sqlite://contacts.sqlite3?mode=rwc"
    )]
    pub database_url: String,
    /// authd's base URL (plain http: this example is built without TLS).
    #[arg(
        long,
        env = "CONTACTS_AUTHD_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    pub authd_url: String,
    /// This service's confidential client at authd (`authd client create contacts`).
    #[arg(long, env = "CONTACTS_CLIENT_ID")]
    pub client_id: String,
    #[arg(long, env = "CONTACTS_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: String,
    /// How long an active introspection answer is reused: 5 s, as authd advises; tests shorten it.
    #[arg(skip = Duration::from_secs(5))]
    pub cache_for: Duration,
}
