//! What every request handler and command shares.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::auth::Authenticator;
use crate::config::Settings;
use crate::crypto::PasswordHasher;
use crate::mail::Mailer;

#[derive(Debug, Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub hasher: Arc<PasswordHasher>,
    pub auth: Arc<Authenticator>,
    pub mailer: Arc<Mailer>,
}
