//! What every request handler and command shares.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::config::Settings;
use crate::crypto::PasswordHasher;
use crate::mail::Mailer;
use crate::token_cache::TokenCache;

#[derive(Debug, Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub hasher: Arc<PasswordHasher>,
    pub token_cache: Arc<TokenCache>,
    pub mailer: Arc<Mailer>,
}
