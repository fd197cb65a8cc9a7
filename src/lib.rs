//! authd: opaque-token authentication, wire-compatible with Djoser + DRF `TokenAuthentication`.

/// Pure rules: DRF field parsing, Django's validators, client-visible messages.
pub mod domain;
/// The only module that speaks sea-orm: connections, migrations, queries.
pub mod store;
/// Tokens (generation, digests) and Argon2id on a bounded low-priority pool.
pub mod crypto;
/// Settings from flags, environment and an optional TOML file.
pub mod config;
