//! Django's stored password formats, so that accounts imported from a Django site log in with
//! their password and are rehashed to authd's Argon2id then (every match is outdated).
//!
//! Verified here: `pbkdf2_sha256$`, `pbkdf2_sha1$`, `bcrypt_sha256$`, `bcrypt$` and `scrypt$`,
//! as Django 5.2's hashers write them. `argon2$…` is a PHC string behind a prefix and is
//! verified with authd's own (`password::StoredHash`). Django's other formats (`md5$`,
//! `sha1$`, `unsalted_md5`, `crypt$`, …) are too weak to trust, and its unusable passwords
//! (`!…`) match nothing: none of them ever match.
//!
//! Django checks a password by encoding it again with the stored parameters and comparing the
//! whole string, so a hash it would never accept (`010` iterations, a hash in another base64
//! spelling) is refused here too. No cost is capped below what Django itself can verify: the
//! only limits are Python's own (`hashlib` refuses more than `INT_MAX` PBKDF2 iterations, and
//! scrypt memory over `INT_MAX` bytes).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::TryRng as _;
use rand::distr::{Alphanumeric, SampleString as _};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::scheme::Scheme;

/// C's `INT_MAX`: the most PBKDF2 iterations, and bytes of scrypt memory, Python's `hashlib`
/// accepts, so the most any Django hash can have.
const PYTHON_INT_MAX: u64 = 2_147_483_647;

/// The bcrypt costs that can be computed.
const BCRYPT_COSTS: std::ops::RangeInclusive<u32> = 4..=31;

/// Django's scrypt key length (`dklen=64`).
const SCRYPT_KEY_BYTES: usize = 64;

/// A Django hash in a format authd verifies, parsed.
pub(super) enum Hash<'a> {
    Pbkdf2 {
        prf: Prf,
        iterations: u32,
        salt: &'a str,
        key: Vec<u8>,
    },
    /// `$2b$12$…`, bcrypt's own format, checked by the `bcrypt` crate.
    Bcrypt {
        sha256: bool,
        cost: u32,
        hash: &'a str,
    },
    Scrypt {
        params: scrypt::Params,
        salt: &'a str,
        key: Vec<u8>,
    },
}

/// PBKDF2's pseudo-random function: HMAC over this digest.
#[derive(Debug, Clone, Copy)]
pub(super) enum Prf {
    Sha256,
    Sha1,
}

impl Prf {
    /// Django's PBKDF2 key is one digest long (`dklen=None`).
    fn key_bytes(self) -> usize {
        match self {
            Prf::Sha256 => 32,
            Prf::Sha1 => 20,
        }
    }
}

impl std::fmt::Debug for Hash<'_> {
    /// The algorithm and costs only: a salt and key are no one's business in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hash::Pbkdf2 {
                prf, iterations, ..
            } => f
                .debug_struct("Pbkdf2")
                .field("prf", prf)
                .field("iterations", iterations)
                .finish_non_exhaustive(),
            Hash::Bcrypt { sha256, cost, .. } => f
                .debug_struct("Bcrypt")
                .field("sha256", sha256)
                .field("cost", cost)
                .finish_non_exhaustive(),
            Hash::Scrypt { params, .. } => f
                .debug_struct("Scrypt")
                .field("params", params)
                .finish_non_exhaustive(),
        }
    }
}

impl<'a> Hash<'a> {
    /// `stored` if it is a well-formed hash in one of the formats verified here; `None` for
    /// any other text.
    pub(super) fn parse(stored: &'a str) -> Option<Self> {
        let (algorithm, rest) = stored.split_once('$')?;
        match algorithm {
            "pbkdf2_sha256" => Self::pbkdf2(Prf::Sha256, rest),
            "pbkdf2_sha1" => Self::pbkdf2(Prf::Sha1, rest),
            "bcrypt_sha256" => Self::bcrypt(true, rest),
            "bcrypt" => Self::bcrypt(false, rest),
            "scrypt" => Self::scrypt(rest),
            _ => None,
        }
    }

    /// `<iterations>$<salt>$<base64 key>`.
    fn pbkdf2(prf: Prf, rest: &'a str) -> Option<Self> {
        let mut fields = rest.split('$');
        let (Some(iterations), Some(salt), Some(key), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return None;
        };
        let iterations = decimal(iterations).filter(|n| (1..=PYTHON_INT_MAX).contains(n))?;
        let key = STANDARD
            .decode(key)
            .ok()
            .filter(|key| key.len() == prf.key_bytes())?;
        Some(Hash::Pbkdf2 {
            prf,
            iterations: u32::try_from(iterations).ok()?,
            salt: non_empty(salt)?,
            key,
        })
    }

    /// `$2b$<cost>$<salt and hash>`: bcrypt's own string after Django's `bcrypt$`.
    fn bcrypt(sha256: bool, hash: &'a str) -> Option<Self> {
        let cost = hash.parse::<bcrypt::HashParts>().ok()?.get_cost();
        // Python's bcrypt, and the crate, compute costs 4 to 31 only: another would be refused
        // at once instead of costing a check.
        (BCRYPT_COSTS.contains(&cost)).then_some(Hash::Bcrypt { sha256, cost, hash })
    }

    /// `<N>$<salt>$<r>$<p>$<base64 key>`, Django's order.
    fn scrypt(rest: &'a str) -> Option<Self> {
        let mut fields = rest.split('$');
        let (Some(n), Some(salt), Some(r), Some(p), Some(key), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return None;
        };
        let (n, r, p) = (decimal(n)?, decimal(r)?, decimal(p)?);
        // hashlib's limits: N a power of two above 1, and the memory OpenSSL counts (B and V,
        // 128·r·p + 128·r·(N + 2) bytes) at most maxmem, itself at most INT_MAX.
        if n < 2 || !n.is_power_of_two() || r == 0 || p == 0 {
            return None;
        }
        let memory = 128u64
            .checked_mul(r)?
            .checked_mul(p.checked_add(n)?.checked_add(2)?)?;
        if memory > PYTHON_INT_MAX {
            return None;
        }
        let log_n = u8::try_from(n.trailing_zeros()).ok()?;
        let params =
            scrypt::Params::new(log_n, u32::try_from(r).ok()?, u32::try_from(p).ok()?).ok()?;
        let key = STANDARD
            .decode(key)
            .ok()
            .filter(|key| key.len() == SCRYPT_KEY_BYTES)?;
        Some(Hash::Scrypt {
            params,
            salt: non_empty(salt)?,
            key,
        })
    }

    /// Whether `password` is the one hashed, derived keys compared in constant time. CPU-bound
    /// (a Django-default PBKDF2 is a million HMACs): for the hash threads only.
    pub(super) fn matches(&self, password: &str) -> bool {
        match self {
            Hash::Pbkdf2 {
                prf,
                iterations,
                salt,
                key,
            } => {
                let mut derived = vec![0; key.len()];
                let (password, salt) = (password.as_bytes(), salt.as_bytes());
                match prf {
                    Prf::Sha256 => {
                        pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, *iterations, &mut derived);
                    }
                    Prf::Sha1 => {
                        pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, *iterations, &mut derived);
                    }
                }
                derived.ct_eq(key).into()
            }
            // Django's bcrypt_sha256 feeds bcrypt the lowercase hex SHA-256 of the password, so
            // that bcrypt's 72-byte limit does not cut long passwords short.
            Hash::Bcrypt {
                sha256: true, hash, ..
            } => {
                let hex = hex::encode(Sha256::digest(password.as_bytes()));
                bcrypt::verify(hex, hash).unwrap_or(false)
            }
            // Plain bcrypt reads at most 72 bytes of the password, as Django's did when these
            // hashes were made (bcrypt 5 for Python now refuses longer passwords instead).
            Hash::Bcrypt {
                sha256: false,
                hash,
                ..
            } => bcrypt::verify(password.as_bytes(), hash).unwrap_or(false),
            Hash::Scrypt { params, salt, key } => {
                let mut derived = [0; SCRYPT_KEY_BYTES];
                scrypt::scrypt(password.as_bytes(), salt.as_bytes(), params, &mut derived).is_ok()
                    && bool::from(derived.as_slice().ct_eq(key))
            }
        }
    }

    /// The algorithm and its cost.
    pub(super) fn scheme(&self) -> Scheme {
        match self {
            Hash::Pbkdf2 {
                prf: Prf::Sha256,
                iterations,
                ..
            } => Scheme::Pbkdf2Sha256 {
                iterations: *iterations,
            },
            Hash::Pbkdf2 {
                prf: Prf::Sha1,
                iterations,
                ..
            } => Scheme::Pbkdf2Sha1 {
                iterations: *iterations,
            },
            Hash::Bcrypt {
                sha256: true, cost, ..
            } => Scheme::BcryptSha256 { cost: *cost },
            Hash::Bcrypt {
                sha256: false,
                cost,
                ..
            } => Scheme::Bcrypt { cost: *cost },
            Hash::Scrypt { params, .. } => Scheme::Scrypt {
                log_n: params.log_n(),
                r: params.r(),
                p: params.p(),
            },
        }
    }
}

/// Django's salt: 22 characters from [A-Za-z0-9] (`get_random_string`).
fn new_salt() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 22)
}

/// A new `pbkdf2_sha256$…` or `pbkdf2_sha1$…` hash of `password`, with a fresh salt, as
/// Django's `PBKDF2PasswordHasher.encode` writes it.
pub(super) fn new_pbkdf2(prf: Prf, iterations: u32, password: &str) -> String {
    let salt = new_salt();
    let mut key = vec![0; prf.key_bytes()];
    let (password, salt_bytes) = (password.as_bytes(), salt.as_bytes());
    let algorithm = match prf {
        Prf::Sha256 => {
            pbkdf2::pbkdf2_hmac::<Sha256>(password, salt_bytes, iterations, &mut key);
            "pbkdf2_sha256"
        }
        Prf::Sha1 => {
            pbkdf2::pbkdf2_hmac::<Sha1>(password, salt_bytes, iterations, &mut key);
            "pbkdf2_sha1"
        }
    };
    format!("{algorithm}${iterations}${salt}${}", STANDARD.encode(key))
}

/// A new `bcrypt_sha256$…` or `bcrypt$…` hash of `password`, with a fresh salt, as Django's
/// bcrypt hashers write it (`$2b$`).
pub(super) fn new_bcrypt(sha256: bool, cost: u32, password: &str) -> Result<String, String> {
    let mut salt = [0; 16];
    rand::rngs::SysRng
        .try_fill_bytes(&mut salt)
        .map_err(|e| e.to_string())?;
    let (algorithm, input) = if sha256 {
        (
            "bcrypt_sha256",
            hex::encode(Sha256::digest(password.as_bytes())),
        )
    } else {
        ("bcrypt", password.to_owned())
    };
    let parts = bcrypt::hash_with_salt(input, cost, salt).map_err(|e| e.to_string())?;
    Ok(format!(
        "{algorithm}${}",
        parts.format_for_version(bcrypt::Version::TwoB)
    ))
}

/// A new `scrypt$…` hash of `password`, with a fresh salt, as Django's `ScryptPasswordHasher`
/// writes it.
pub(super) fn new_scrypt(log_n: u8, r: u32, p: u32, password: &str) -> Result<String, String> {
    let params = scrypt::Params::new(log_n, r, p).map_err(|e| e.to_string())?;
    let salt = new_salt();
    let mut key = [0; SCRYPT_KEY_BYTES];
    scrypt::scrypt(password.as_bytes(), salt.as_bytes(), &params, &mut key)
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "scrypt${}${salt}${r}${p}${}",
        params.n(),
        STANDARD.encode(key)
    ))
}

/// A number as Python's `%d` writes it: Django compares the hash it encodes again, so `010` or
/// `+10` never matches there.
fn decimal(text: &str) -> Option<u64> {
    let number: u64 = text.parse().ok()?;
    (number.to_string() == text).then_some(number)
}

/// Django refuses to encode with an empty salt.
fn non_empty(salt: &str) -> Option<&str> {
    (!salt.is_empty()).then_some(salt)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::password::verify_here;
    use super::*;

    // Made by Django 5.2's own hashers and checked with its check_password:
    // tests/django/make_hashes.py says how. (password, stored hash).
    const PBKDF2_SHA256_DEFAULT: (&str, &str) = (
        "correct horse battery staple",
        "pbkdf2_sha256$1000000$tvQeuURjyYv8xAFRaDn9XU$jQCWgGQKGTzNCQYOIvl0cuUR907NWt+AK26N+5FoK6o=",
    );
    const PBKDF2_SHA256_UNICODE: (&str, &str) = (
        "pässwörd ✓ 密码",
        "pbkdf2_sha256$1000$oz4Zck9aUig6gMXFjX3g1Y$KsqyX2MH5xdxDPbQGXeDYKHAIQQVQOpTpsQh/KQ6Vfo=",
    );
    const PBKDF2_SHA256_OLD: (&str, &str) = (
        "correct horse battery staple",
        "pbkdf2_sha256$36000$DrHMLCExdCId$cesaT/b7kMSrejWi2hPAFN3/Jsqw0BUZMDX5SZN/SCU=",
    );
    const PBKDF2_SHA1: (&str, &str) = (
        "correct horse battery staple",
        "pbkdf2_sha1$10000$AsvkvVLJsbmfF5NT1GdBcQ$r0SLBHTnumPh1arR9jq5bLtPZbE=",
    );
    const ARGON2ID_DEFAULT: (&str, &str) = (
        "correct horse battery staple",
        "argon2$argon2id$v=19$m=102400,t=2,p=8$VkFOM3A2bUpJczBTbGZ4QmdvaGt4NQ$spZigUZPzpXw/HaYcsoEN7D98Cb+zgiVmiZqCdwV0/Q",
    );
    const ARGON2I: (&str, &str) = (
        "pässwörd ✓ 密码",
        "argon2$argon2i$v=19$m=512,t=2,p=2$UzJuRzBjUERlOVp2eGk4T2gwUUN1Sw$wRneJlcLIWYDhOy7AM7y6A",
    );
    const ARGON2I_NO_VERSION: (&str, &str) = (
        "correct horse battery staple",
        "argon2$argon2i$m=512,t=2,p=2$cGVwaDNSejl1WE1DcGVwdkRSczBudA$pprTS9xlRRKRRDmkwsl3Fw",
    );
    const BCRYPT_SHA256: (&str, &str) = (
        "correct horse battery staple",
        "bcrypt_sha256$$2b$12$mghdYTRcnukvsbJPPrBqVeH6kNbiX5cf3dbJnGSL0iYDnhzfbUDoy",
    );
    const BCRYPT_SHA256_UNICODE: (&str, &str) = (
        "pässwörd ✓ 密码",
        "bcrypt_sha256$$2b$12$VVJ2K8n/tgTEr4fom4sZpOPidzmLD6/yVxaxFhv8Qe/WcF1yxQD/G",
    );
    const BCRYPT: (&str, &str) = (
        "correct horse battery staple",
        "bcrypt$$2b$12$wHZOTJFpwEno8nSH.lqogefCTkAE2v/uPWJOReceHJebgSopm4JW6",
    );
    const SCRYPT_DEFAULT: (&str, &str) = (
        "correct horse battery staple",
        "scrypt$16384$wsDAlfkfCEGYb1h7GbAERc$8$5$UcCvYAybTFaoswKpsbqnph+tUQB9MXs/l5Ce/dzZd/7v5+MUYRLP/2gdeS5rW/AV6fcWzXx2RZfKFWbGtSRRuQ==",
    );
    const SCRYPT_P1: (&str, &str) = (
        "correct horse battery staple",
        "scrypt$16384$4bAhuVKAFMoP3rk2Di6wAT$8$1$eUCUrUmTdIxx0eYDeKAUvZg+CHFIG6BQwZygRwRlNGHwiu1execI0GhIjeUD6AM9huw8FWnmEwsvJ5c8+6X36g==",
    );
    const SCRYPT_UNICODE: (&str, &str) = (
        "pässwörd ✓ 密码",
        "scrypt$16384$QndFjkhkdFERXjYQKeUtUM$8$1$ejDUthT8LPrIEoDcFzWpwylQu0voSbHeb9F/lUn1xXpNG16nZbObxEC2fK3BCnsqzZU99C30ndTohu26n9r39w==",
    );
    const MD5: &str = "md5$t5JMfXLiyKnHXXw2msahR8$54fbf653d1dcda227048232547c86a02";
    const UNSALTED_MD5: &str = "9cc2ae8a1ba7a93da39b46fc1019c481";
    const UNSALTED_MD5_PREFIXED: &str = "md5$$9cc2ae8a1ba7a93da39b46fc1019c481";
    const UNSALTED_SHA1: &str = "sha1$$abf7aad6438836dbe526aa231abde2d0eef74d42";
    const SHA1: &str = "sha1$QueGwiXpTaYp$35fdbc2232044ecb655b0e508c729d50511d63e0";
    const CRYPT: &str = "crypt$$abhfCpXqd4GrI";
    const UNUSABLE: &str = "!MNL4An3tqVPH9L5rqMneNzlA1gjdpqPq0gZeVggW";

    /// All but Django's default PBKDF2 (`default_pbkdf2_matches`), which takes seconds in a
    /// debug build.
    const ACCEPTED: [(&str, &str); 12] = [
        PBKDF2_SHA256_UNICODE,
        PBKDF2_SHA256_OLD,
        PBKDF2_SHA1,
        ARGON2ID_DEFAULT,
        ARGON2I,
        ARGON2I_NO_VERSION,
        BCRYPT_SHA256,
        BCRYPT_SHA256_UNICODE,
        BCRYPT,
        SCRYPT_DEFAULT,
        SCRYPT_P1,
        SCRYPT_UNICODE,
    ];

    /// `stored` with one character of its last field (the key, or bcrypt's salt and key)
    /// changed to another base64 character.
    fn tampered(stored: &str) -> String {
        let start = stored.rfind('$').map_or(0, |dollar| dollar + 1);
        let at = start + (stored.len() - start) / 2;
        let mut bytes = stored.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).expect("ASCII")
    }

    #[test]
    fn djangos_hashes_match_their_password_and_are_outdated() {
        for (password, stored) in ACCEPTED {
            let started = Instant::now();
            let verified = verify_here(password, stored);
            eprintln!("{:?} {stored:.30}", started.elapsed());
            assert!(verified.matches && verified.outdated, "{stored}");
            assert!(!verify_here("wrong", stored).matches, "{stored}");
            let last = password.char_indices().last().map_or(0, |(at, _)| at);
            let cut = &password[..last];
            assert!(!verify_here(cut, stored).matches, "{stored}");
            let tampered = tampered(stored);
            assert_ne!(tampered, stored);
            assert!(!verify_here(password, &tampered).matches, "{tampered}");
        }
    }

    /// A million iterations: 2.3 s per check in a debug build on its own, 4.3 s beside the
    /// other tests on two cores; 0.1 s in a release build (Python's hashlib: 0.2 s).
    #[test]
    fn default_pbkdf2_matches() {
        let (password, stored) = PBKDF2_SHA256_DEFAULT;
        let started = Instant::now();
        let verified = verify_here(password, stored);
        eprintln!("Django's default PBKDF2: {:?}", started.elapsed());
        assert!(verified.matches && verified.outdated);
        assert!(!verify_here("wrong", stored).matches);
    }

    /// Another cost than the one stored derives another key.
    #[test]
    fn changed_parameters_do_not_match() {
        let (password, stored) = PBKDF2_SHA256_UNICODE;
        let changed = stored.replacen("$1000$", "$1001$", 1);
        assert!(Hash::parse(&changed).is_some());
        assert!(!verify_here(password, &changed).matches);
        let (password, stored) = SCRYPT_UNICODE;
        let changed = stored.replacen("$8$1$", "$8$2$", 1);
        assert!(Hash::parse(&changed).is_some());
        assert!(!verify_here(password, &changed).matches);
        let (password, stored) = PBKDF2_SHA1;
        let changed = stored.replacen("pbkdf2_sha1$", "pbkdf2_sha256$", 1);
        assert!(!verify_here(password, &changed).matches, "another digest");
    }

    /// Django's weak and unusable formats never log in, even with the right password.
    #[test]
    fn weak_and_unusable_formats_never_match() {
        let password = PBKDF2_SHA256_DEFAULT.0;
        for stored in [
            MD5,
            UNSALTED_MD5,
            UNSALTED_MD5_PREFIXED,
            UNSALTED_SHA1,
            SHA1,
            CRYPT,
            UNUSABLE,
            "!",
            "",
        ] {
            assert!(Hash::parse(stored).is_none(), "{stored}");
            assert!(!verify_here(password, stored).matches, "{stored}");
        }
    }

    /// Malformed hashes, and costs no Django site can have (Python refuses them), are refused
    /// before any work, never matched and never a panic.
    #[test]
    fn malformed_hashes_are_refused_without_work() {
        let key32 = STANDARD.encode([0u8; 32]);
        let key64 = STANDARD.encode([0u8; 64]);
        let bcrypt = BCRYPT.1.trim_start_matches("bcrypt$");
        for stored in [
            "pbkdf2_sha256$".to_owned(),
            "pbkdf2_sha256$$salt$".to_owned(),
            format!("pbkdf2_sha256$0$salt${key32}"),
            format!("pbkdf2_sha256$01000$salt${key32}"),
            format!("pbkdf2_sha256$+1000$salt${key32}"),
            format!("pbkdf2_sha256$1_000$salt${key32}"),
            format!("pbkdf2_sha256$2147483648$salt${key32}"),
            format!("pbkdf2_sha256$99999999999999999999999$salt${key32}"),
            format!("pbkdf2_sha256$1000$${key32}"),
            format!("pbkdf2_sha256$1000$salt${key32}$"),
            format!("pbkdf2_sha256$1000$salt${}", key32.trim_end_matches('=')),
            format!("pbkdf2_sha256$1000$salt${key64}"),
            format!("pbkdf2_sha1$1000$salt${key32}"),
            "pbkdf2_sha256$1000$salt$not base64!".to_owned(),
            "pbkdf2_sha256$1000$salt$é".to_owned(),
            "bcrypt$".to_owned(),
            "bcrypt_sha256$".to_owned(),
            format!("bcrypt{bcrypt}"),
            format!("bcrypt$${bcrypt}"),
            format!("bcrypt${bcrypt}x"),
            format!("bcrypt${}", bcrypt.replacen("$12$", "$1x$", 1)),
            format!("bcrypt${}", bcrypt.replacen("$2b$", "$3b$", 1)),
            format!("bcrypt${}", bcrypt.replacen("$12$", "$03$", 1)),
            format!("bcrypt${}", bcrypt.replacen("$12$", "$32$", 1)),
            format!("bcrypt${}é", &bcrypt[..bcrypt.len() - 2]),
            "scrypt$".to_owned(),
            format!("scrypt$16384$salt$8$1${}", key32),
            format!("scrypt$16385$salt$8$1${key64}"),
            format!("scrypt$1$salt$8$1${key64}"),
            format!("scrypt$0$salt$8$1${key64}"),
            format!("scrypt$16384$salt$0$1${key64}"),
            format!("scrypt$16384$salt$8$0${key64}"),
            format!("scrypt$16384$$8$1${key64}"),
            format!("scrypt$16384$salt$8$1${key64}$"),
            format!("scrypt$016384$salt$8$1${key64}"),
            // 2^21 × 8 × 128 bytes is 2 GiB: more than Python lets hashlib.scrypt use.
            format!("scrypt$2097152$salt$8$1${key64}"),
            format!("scrypt$1099511627776$salt$8$1${key64}"),
            format!("scrypt$2$salt$4294967295$4294967295${key64}"),
            format!("scrypt$18446744073709551616$salt$8$1${key64}"),
        ] {
            assert!(Hash::parse(&stored).is_none(), "{stored}");
            assert!(!verify_here("pw", &stored).matches, "{stored}");
        }
        // The most a Django site's scrypt can cost, accepted (not computed here).
        assert!(Hash::parse(&format!("scrypt$1048576$salt$8$1${key64}")).is_some());
        assert!(Hash::parse(&format!("pbkdf2_sha256$2147483647$salt${key32}")).is_some());
        for stored in [
            "argon2$",
            "argon2$argon2id",
            "argon2$argon2id$v=19$m=19456,t=2,p=1$",
            "argon2$argon2id$v=99$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "argon2$argon2x$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "argon2$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            assert!(!verify_here("pw", stored).matches, "{stored}");
        }
    }
}
