//! Secrets: opaque API tokens (generated here, stored only as SHA-256 digests) and password
//! hashing ([`password`]), which also verifies Django's stored formats (`django`) and costs a
//! login with no usable hash what the most common of them costs (`scheme`).

mod django;
pub mod password;
mod scheme;

pub use password::{Admission, HashCost, HashError, PasswordHasher, Verified};
pub use scheme::{HashClass, Scheme};

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::{Rng as _, TryRng as _};
use sha2::{Digest, Sha256};

/// Lets secret scanners recognise a leaked authd token.
pub const TOKEN_PREFIX: &str = "authd_";
/// An API key's own prefix (within [`TOKEN_PREFIX`]), so scanners and people tell a program's
/// long-lived key from a login token.
pub const API_KEY_PREFIX: &str = "authd_key_";
const TOKEN_BYTES: usize = 32;

/// DRF's `authtoken` key: 40 lowercase hex characters (`binascii.hexlify(os.urandom(20))`),
/// as `authd import-django` brings them over.
pub const DRF_KEY_LENGTH: usize = 40;

/// Whether `token` has the shape of a DRF key, which the guard looks up beside authd's own.
pub fn is_drf_key(token: &str) -> bool {
    token.len() == DRF_KEY_LENGTH
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A freshly minted token. Only its digest is persisted; `Debug` never shows the secret.
pub struct NewToken {
    pub secret: String,
    pub digest: String,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// 256 bits from the OS CSPRNG, base64url: `authd_` followed by 43 characters.
pub fn generate_token() -> Result<NewToken, rand::rngs::SysError> {
    generate_prefixed(TOKEN_PREFIX)
}

/// An API key: `authd_key_` followed by 43 characters (256 bits).
pub fn generate_api_key() -> Result<NewToken, rand::rngs::SysError> {
    generate_prefixed(API_KEY_PREFIX)
}

fn generate_prefixed(prefix: &str) -> Result<NewToken, rand::rngs::SysError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rngs::SysRng.try_fill_bytes(&mut bytes)?;
    let secret = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    let digest = token_digest(&secret);
    Ok(NewToken { secret, digest })
}

/// A random identifier (not a secret): `bytes` random bytes in hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    hex::encode(buffer)
}

/// A single-use link secret for emails: 256 bits, base64url, with its digest.
pub fn generate_link_token() -> Result<NewToken, rand::rngs::SysError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rngs::SysRng.try_fill_bytes(&mut bytes)?;
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    let digest = token_digest(&secret);
    Ok(NewToken { secret, digest })
}

/// Lowercase hex SHA-256 (what the database stores). A fast hash is right for a 256-bit
/// random secret.
pub fn token_digest(token: &str) -> String {
    hex::encode(token_digest_bytes(token))
}

/// The SHA-256 of a token as bytes: what the token cache is keyed by (half the memory of the
/// hex, and no encoding on a cache hit).
pub fn token_digest_bytes(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_prefixed_and_distinct() {
        let a = generate_token().expect("os rng");
        let b = generate_token().expect("os rng");
        assert!(a.secret.starts_with(TOKEN_PREFIX));
        assert_eq!(a.secret.len(), TOKEN_PREFIX.len() + 43);
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.digest, token_digest(&a.secret));
        assert_ne!(a.digest, a.secret);
        assert!(!format!("{a:?}").contains(&a.secret));
        let key = generate_api_key().expect("os rng");
        assert!(key.secret.starts_with(API_KEY_PREFIX));
        assert_eq!(key.secret.len(), API_KEY_PREFIX.len() + 43);
    }
}
