//! sea-orm entities, mirroring the migrations. No logic lives here.
pub mod auth_token;
pub mod auth_user;
