//! sea-orm entities, mirroring the migrations. No logic lives here.
pub mod auth_group;
pub mod auth_group_permissions;
pub mod auth_permission;
pub mod auth_session;
pub mod auth_token;
pub mod auth_user;
pub mod auth_user_groups;
pub mod auth_user_user_permissions;
pub mod cache_invalidation;
pub mod email_address_window;
pub mod email_cooldown;
pub mod email_outbox;
pub mod email_request;
pub mod email_token;
pub mod known_address;
pub mod login_failure;
pub mod oauth_client;
