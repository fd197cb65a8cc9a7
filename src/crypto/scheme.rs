//! What checking a stored hash costs: its class (the algorithm, for the hash queue's time
//! estimates) and its scheme (the algorithm at its cost, for the dummy hash that answers for
//! accounts that do not exist).

use std::fmt;

use super::password::HashCost;

/// Hashes whose checks take alike times: each class has its own moving average of job time in
/// the hash queue's admission estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashClass {
    /// authd's own `$argon2id$…`.
    Argon2id,
    /// Django's `argon2$…`.
    DjangoArgon2,
    Pbkdf2Sha256,
    Pbkdf2Sha1,
    BcryptSha256,
    Bcrypt,
    Scrypt,
}

impl HashClass {
    pub const COUNT: usize = 7;
    pub const ALL: [HashClass; Self::COUNT] = [
        HashClass::Argon2id,
        HashClass::DjangoArgon2,
        HashClass::Pbkdf2Sha256,
        HashClass::Pbkdf2Sha1,
        HashClass::BcryptSha256,
        HashClass::Bcrypt,
        HashClass::Scrypt,
    ];

    pub(super) fn index(self) -> usize {
        self as usize
    }

    /// The name Django's hashers (or authd's PHC strings) give the algorithm.
    pub fn name(self) -> &'static str {
        match self {
            HashClass::Argon2id => "argon2id",
            HashClass::DjangoArgon2 => "argon2",
            HashClass::Pbkdf2Sha256 => "pbkdf2_sha256",
            HashClass::Pbkdf2Sha1 => "pbkdf2_sha1",
            HashClass::BcryptSha256 => "bcrypt_sha256",
            HashClass::Bcrypt => "bcrypt",
            HashClass::Scrypt => "scrypt",
        }
    }
}

/// An algorithm at its cost: all that decides how long a check takes, and nothing secret (no
/// salt, no key). Ordered only so that a tally of them is deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scheme {
    /// authd's own Argon2id at the configured cost.
    Argon2id(HashCost),
    /// Django's `argon2$…`: any Argon2 variant and version.
    DjangoArgon2 {
        algorithm: argon2::Algorithm,
        version: argon2::Version,
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
    },
    Pbkdf2Sha256 {
        iterations: u32,
    },
    Pbkdf2Sha1 {
        iterations: u32,
    },
    BcryptSha256 {
        cost: u32,
    },
    Bcrypt {
        cost: u32,
    },
    Scrypt {
        log_n: u8,
        r: u32,
        p: u32,
    },
}

/// The ceilings of a dummy hash, about ten times the cost of Django 5.2's defaults (a second
/// of one core, where Django's defaults take a tenth): an unknown name costs the dummy on
/// every try, so a site's hashes imported with an absurd cost must not make each such try a
/// denial of service. Above them, the dummy follows the next most common scheme.
const DUMMY_PBKDF2_ITERATIONS: u32 = 10_000_000;
const DUMMY_BCRYPT_COST: u32 = 15;
/// scrypt's work N·r·p (Django: 2^14 · 8 · 5) and memory 128·N·r bytes (Django: 16 MiB).
const DUMMY_SCRYPT_WORK: u64 = 10 * (1 << 14) * 8 * 5;
const DUMMY_SCRYPT_BYTES: u64 = 128 << 20;
/// Argon2's work m·t in KiB passes (Django: 102,400 KiB × 2) and memory: every hash thread
/// allocates the dummy's memory for each check of it.
const DUMMY_ARGON2_WORK: u64 = 10 * 102_400 * 2;
const DUMMY_ARGON2_KIB: u32 = 256 * 1024;

impl Scheme {
    pub fn class(self) -> HashClass {
        match self {
            Scheme::Argon2id(_) => HashClass::Argon2id,
            Scheme::DjangoArgon2 { .. } => HashClass::DjangoArgon2,
            Scheme::Pbkdf2Sha256 { .. } => HashClass::Pbkdf2Sha256,
            Scheme::Pbkdf2Sha1 { .. } => HashClass::Pbkdf2Sha1,
            Scheme::BcryptSha256 { .. } => HashClass::BcryptSha256,
            Scheme::Bcrypt { .. } => HashClass::Bcrypt,
            Scheme::Scrypt { .. } => HashClass::Scrypt,
        }
    }

    /// Whether a dummy of this scheme stays under the ceilings above. authd's own cost is the
    /// operator's setting, bounded where it is read.
    pub(super) fn fits_a_dummy(self) -> bool {
        match self {
            Scheme::Argon2id(_) => true,
            Scheme::DjangoArgon2 {
                memory_kib,
                iterations,
                ..
            } => {
                memory_kib <= DUMMY_ARGON2_KIB
                    && u64::from(memory_kib) * u64::from(iterations) <= DUMMY_ARGON2_WORK
            }
            Scheme::Pbkdf2Sha256 { iterations } | Scheme::Pbkdf2Sha1 { iterations } => {
                iterations <= DUMMY_PBKDF2_ITERATIONS
            }
            Scheme::BcryptSha256 { cost } | Scheme::Bcrypt { cost } => cost <= DUMMY_BCRYPT_COST,
            Scheme::Scrypt { log_n, r, p } => {
                let n = 1u64.checked_shl(u32::from(log_n)).unwrap_or(u64::MAX);
                let row = n.saturating_mul(u64::from(r));
                row.saturating_mul(u64::from(p)) <= DUMMY_SCRYPT_WORK
                    && row.saturating_mul(128) <= DUMMY_SCRYPT_BYTES
            }
        }
    }
}

/// As Django's hashers name the algorithm and its parameters, e.g. `pbkdf2_sha256
/// iterations=1000000`: for logs and metrics.
impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.class().name();
        match self {
            Scheme::Argon2id(cost) => write!(
                f,
                "{name} m={},t={},p={}",
                cost.memory_kib, cost.iterations, cost.parallelism
            ),
            Scheme::DjangoArgon2 {
                algorithm,
                version,
                memory_kib,
                iterations,
                parallelism,
            } => write!(
                f,
                "{name} {} v={} m={memory_kib},t={iterations},p={parallelism}",
                algorithm.ident(),
                u32::from(*version)
            ),
            Scheme::Pbkdf2Sha256 { iterations } | Scheme::Pbkdf2Sha1 { iterations } => {
                write!(f, "{name} iterations={iterations}")
            }
            Scheme::BcryptSha256 { cost } | Scheme::Bcrypt { cost } => {
                write!(f, "{name} cost={cost}")
            }
            Scheme::Scrypt { log_n, r, p } => {
                let n = 1u64.checked_shl(u32::from(*log_n)).unwrap_or(u64::MAX);
                write!(f, "{name} n={n},r={r},p={p}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Django 5.2's defaults make dummies; ten times their work still does; a hundred times
    /// does not.
    #[test]
    fn dummies_are_capped_near_ten_times_djangos_defaults() {
        let argon2 = |memory_kib, iterations| Scheme::DjangoArgon2 {
            algorithm: argon2::Algorithm::Argon2id,
            version: argon2::Version::V0x13,
            memory_kib,
            iterations,
            parallelism: 8,
        };
        for (fits, scheme) in [
            (
                true,
                Scheme::Pbkdf2Sha256 {
                    iterations: 1_000_000,
                },
            ),
            (
                true,
                Scheme::Pbkdf2Sha1 {
                    iterations: 10_000_000,
                },
            ),
            (
                false,
                Scheme::Pbkdf2Sha256 {
                    iterations: 10_000_001,
                },
            ),
            (
                false,
                Scheme::Pbkdf2Sha256 {
                    iterations: u32::MAX,
                },
            ),
            (true, Scheme::Bcrypt { cost: 12 }),
            (true, Scheme::BcryptSha256 { cost: 15 }),
            (false, Scheme::Bcrypt { cost: 16 }),
            (false, Scheme::BcryptSha256 { cost: 31 }),
            (
                true,
                Scheme::Scrypt {
                    log_n: 14,
                    r: 8,
                    p: 5,
                },
            ),
            (
                true,
                Scheme::Scrypt {
                    log_n: 14,
                    r: 8,
                    p: 50,
                },
            ),
            (
                false,
                Scheme::Scrypt {
                    log_n: 14,
                    r: 8,
                    p: 51,
                },
            ),
            (
                false,
                Scheme::Scrypt {
                    log_n: 18,
                    r: 8,
                    p: 1,
                },
            ),
            (
                false,
                Scheme::Scrypt {
                    log_n: 63,
                    r: u32::MAX,
                    p: u32::MAX,
                },
            ),
            (true, argon2(102_400, 2)),
            (true, argon2(204_800, 10)),
            (false, argon2(204_800, 11)),
            (false, argon2(1 << 20, 1)),
            (true, Scheme::Argon2id(HashCost::OWASP_MINIMUM)),
        ] {
            assert_eq!(scheme.fits_a_dummy(), fits, "{scheme}");
        }
    }

    #[test]
    fn schemes_read_as_djangos_names() {
        assert_eq!(
            Scheme::Pbkdf2Sha256 {
                iterations: 1_000_000
            }
            .to_string(),
            "pbkdf2_sha256 iterations=1000000"
        );
        assert_eq!(
            Scheme::Scrypt {
                log_n: 14,
                r: 8,
                p: 5
            }
            .to_string(),
            "scrypt n=16384,r=8,p=5"
        );
        assert_eq!(
            Scheme::Argon2id(HashCost::OWASP_MINIMUM).to_string(),
            "argon2id m=19456,t=2,p=1"
        );
    }
}
