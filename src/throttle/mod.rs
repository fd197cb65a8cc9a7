//! Abuse resistance: failed password checks limited per IP and account (in the database, so
//! across instances), and DRF's request-rate throttles.

pub mod failures;
pub mod rate;
pub mod requests;

pub use failures::{
    Attempt, FailureLimits, KNOWN_ADDRESS_LIFETIME, KNOWN_ADDRESSES_PER_ACCOUNT, Refused, Source,
    begin_attempt, clear_account,
};
pub use rate::{Rate, throttled_detail};
pub use requests::{RequestThrottle, Requester};
