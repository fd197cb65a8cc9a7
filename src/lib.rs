//! authd: opaque-token authentication, wire-compatible with Djoser + DRF `TokenAuthentication`.

/// Pure rules: DRF field parsing, Django's validators, client-visible messages.
pub mod domain;
