//! What every request handler and command shares.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::auth::Authenticator;
use crate::config::Settings;
use crate::crypto::PasswordHasher;
use crate::mail::Mailer;
use crate::throttle::RequestThrottle;

#[derive(Debug, Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub hasher: Arc<PasswordHasher>,
    pub auth: Arc<Authenticator>,
    pub mailer: Arc<Mailer>,
    /// DRF's request-rate throttles; `None` while both are off.
    pub requests: Option<Arc<RequestThrottle>>,
}
