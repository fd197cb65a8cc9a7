//! authd: opaque-token authentication, wire-compatible with Djoser + DRF `TokenAuthentication`.

/// Use cases: registration, login, the guard, user management.
pub mod accounts;
/// The command line.
pub mod cli;
/// Settings from flags, environment and an optional TOML file.
pub mod config;
/// Tokens (generation, digests) and Argon2id on a bounded low-priority pool.
pub mod crypto;
/// Pure rules: DRF field parsing, Django's validators, client-visible messages.
pub mod domain;
/// Use cases by email: activation, resets, confirmations.
pub mod email_flows;
/// HTTP: routes, OpenAPI, Swagger UI, DRF-shaped errors.
pub mod http;
/// Email templates, the outbox worker and the delivery backends.
pub mod mail;
/// Database opening, binding, serving, graceful shutdown.
pub mod startup;
/// Shared application state.
pub mod state;
/// The only module that speaks sea-orm: connections, migrations, queries.
pub mod store;
/// Log set-up.
pub mod telemetry;
/// Verified tokens in memory, evicted on every change.
pub mod token_cache;
