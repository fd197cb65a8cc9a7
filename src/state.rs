//! What every request handler and command shares.

use std::sync::Arc;

use crate::audit::Tally;
use crate::auth::Authenticator;
use crate::config::Settings;
use crate::crypto::PasswordHasher;
use crate::mail::Mailer;
use crate::store::Db;
use crate::throttle::RequestThrottle;

#[derive(Debug, Clone)]
pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub hasher: Arc<PasswordHasher>,
    pub auth: Arc<Authenticator>,
    pub mailer: Arc<Mailer>,
    /// DRF's request-rate throttles; `None` while both are off.
    pub requests: Option<Arc<RequestThrottle>>,
    /// Throttled requests counted for the audit trail until the next flush.
    pub refusals: Arc<Tally>,
}
