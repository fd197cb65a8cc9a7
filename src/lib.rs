//! authd: opaque-token authentication, wire-compatible with Djoser + DRF `TokenAuthentication`.
//!
//! Data flows downward: `http` parses a request and calls one use case in `accounts`; use
//! cases take plain values and speak to `store`; `auth` (the guard) depends only on `store`
//! and `crypto`. No two top-level modules import each other (a test checks it).

/// Use cases: registration, login, user management, the email flows, operator commands.
pub mod accounts;
/// The audit trail: security-relevant events, recorded with the changes they describe.
pub mod audit;
/// The guard: who is calling, the token cache, and how revocations reach it.
pub mod auth;
/// Django's groups and permissions: who may manage them, and the changes themselves.
pub mod authz;
/// The command line.
pub mod cli;
/// Settings from flags, environment and an optional TOML file, declared in one table.
pub mod config;
/// Tokens (generation, digests) and password hashing on a bounded pool of batch-class threads.
pub mod crypto;
/// Pure rules: DRF field parsing, Django's validators, client-visible messages.
pub mod domain;
/// HTTP: the route table, the DRF gate, OpenAPI, Swagger UI, DRF-shaped errors.
pub mod http;
/// `authd import-django`: a Django site's accounts, tokens, groups and permissions.
pub mod import;
/// Email templates and the delivery backends.
pub mod mail;
/// Prometheus metrics: the families, their bounded labels, the one recorder.
pub mod meter;
/// OAuth2: the token endpoint, revocation, introspection, registered clients.
pub mod oauth;
/// Sessions: one a login; their limit, list and end; OAuth2 refresh families.
pub mod sessions;
/// Database opening, binding, serving, graceful shutdown.
pub mod startup;
/// Shared application state.
pub mod state;
/// The only module that speaks sea-orm (`tests/api/layout.rs` holds it to that):
/// connections, migrations, queries.
pub mod store;
/// The background tasks and their orderly stop.
pub mod tasks;
/// Log set-up.
pub mod telemetry;
/// Failed-login limits and request-rate throttles.
pub mod throttle;
