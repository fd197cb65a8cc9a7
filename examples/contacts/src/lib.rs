//! An address book that trusts authd for who its users are and what they may do: a small
//! poem service showing how another service uses authd's introspection.

pub mod auth;
pub mod birthdays;
pub mod config;
pub mod contact;
mod http;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use poem::listener::TcpAcceptor;

use crate::auth::Introspector;
use crate::config::Settings;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("cannot listen: {0}")]
    Bind(#[from] std::io::Error),
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// The service, bound and with its schema up to date, ready to run.
pub struct Application {
    acceptor: TcpAcceptor,
    address: SocketAddr,
    state: Arc<http::State>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let db = store::connect(&settings.database_url).await?;
        let introspector = Introspector::new(
            &settings.authd_url,
            settings.client_id,
            settings.client_secret,
            settings.cache_for,
        )?;
        let listener = tokio::net::TcpListener::bind(settings.bind).await?;
        let address = listener.local_addr()?;
        let acceptor = TcpAcceptor::from_tokio(listener)?;
        Ok(Self {
            acceptor,
            address,
            state: Arc::new(http::State { db, introspector }),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        poem::Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(
                http::routes(self.state),
                shutdown,
                Some(std::time::Duration::from_secs(30)),
            )
            .await
    }
}
