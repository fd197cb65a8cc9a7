//! How one Django value becomes authd's: password hashes, naive datetimes, fingerprints.

use chrono::{DateTime, NaiveDateTime, TimeZone as _, Utc};

use crate::crypto;

/// The SHA-256 of a value's JSON: what a re-run compares to tell whether a row changed.
pub struct Fingerprint(pub String);

impl Fingerprint {
    pub fn of(value: &impl serde::Serialize) -> Self {
        let json = serde_json::to_string(value).unwrap_or_default();
        Fingerprint(crypto::token_digest(&json))
    }
}

/// Django's formats that authd verifies (and rewrites as Argon2id at the first login).
const VERIFIED: [&str; 6] = [
    "pbkdf2_sha256",
    "pbkdf2_sha1",
    "argon2",
    "bcrypt_sha256",
    "bcrypt",
    "scrypt",
];

pub fn is_verified(algorithm: &str) -> bool {
    VERIFIED.contains(&algorithm)
}

/// A Django password column as authd stores it, and the algorithm it was counted under.
pub struct Password {
    pub stored: String,
    pub algorithm: String,
}

impl Password {
    /// A format authd verifies stays as it is. Django's unusable password (`!…`) stays
    /// unusable. Anything else (MD5, unsalted MD5 or SHA-1, `crypt`, an empty column) is too
    /// weak to keep or unknown: it arrives unusable, and its owner resets the password.
    pub fn of(django: &str) -> Self {
        let algorithm = match django.split_once('$') {
            _ if django.starts_with('!') => "unusable".to_owned(),
            Some((name, _)) if VERIFIED.contains(&name) => {
                return Password {
                    stored: django.to_owned(),
                    algorithm: name.to_owned(),
                };
            }
            Some(("sha1", rest)) if rest.starts_with('$') => "unsalted_sha1".to_owned(),
            Some((name, _))
                if !name.is_empty()
                    && name.len() <= 32
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                name.to_owned()
            }
            None if django.len() == 32 && django.bytes().all(|b| b.is_ascii_hexdigit()) => {
                "unsalted_md5".to_owned()
            }
            _ if django.is_empty() => "unusable".to_owned(),
            _ => "unknown".to_owned(),
        };
        let stored = match django.starts_with('!') {
            true => django.to_owned(),
            false => format!("!{}", crypto::random_hex(20)),
        };
        Password { stored, algorithm }
    }
}

/// A Django datetime in UTC. PostgreSQL's are absolute (read as UTC); SQLite's and MySQL's are
/// naive: UTC when the site ran with `USE_TZ=True`, its `TIME_ZONE` otherwise. A local time
/// that happened twice (clocks going back) is taken the first time; one that never happened
/// (clocks going forward) an hour later.
pub fn to_utc(naive: NaiveDateTime, naive_times: bool, zone: chrono_tz::Tz) -> DateTime<Utc> {
    if !naive_times {
        return naive.and_utc();
    }
    zone.from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(naive + chrono::Duration::hours(1)))
                .earliest()
        })
        .map_or_else(|| naive.and_utc(), |local| local.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_formats_stay_and_weak_ones_become_unusable() {
        let kept = Password::of("pbkdf2_sha256$1000000$salt$hash=");
        assert_eq!(kept.stored, "pbkdf2_sha256$1000000$salt$hash=");
        assert_eq!(kept.algorithm, "pbkdf2_sha256");
        for (django, algorithm) in [
            ("md5$salt$0123456789abcdef0123456789abcdef", "md5"),
            (
                "sha1$$0123456789abcdef0123456789abcdef01234567",
                "unsalted_sha1",
            ),
            ("0123456789abcdef0123456789abcdef", "unsalted_md5"),
            ("crypt$$abN/0123456789", "crypt"),
            ("", "unusable"),
            ("not a hash", "unknown"),
        ] {
            let password = Password::of(django);
            assert_eq!(password.algorithm, algorithm, "{django}");
            assert!(password.stored.starts_with('!'), "{django}");
            assert_eq!(password.stored.len(), 41, "{django}");
        }
        let unusable = Password::of("!abcdef");
        assert_eq!(
            (unusable.stored.as_str(), unusable.algorithm.as_str()),
            ("!abcdef", "unusable")
        );
    }

    #[test]
    fn naive_times_are_read_in_the_source_zone() {
        let naive = NaiveDateTime::parse_from_str("2026-07-01 12:00:00", "%F %T").expect("time");
        let paris: chrono_tz::Tz = "Europe/Paris".parse().expect("zone");
        assert_eq!(
            to_utc(naive, true, paris).to_rfc3339(),
            "2026-07-01T10:00:00+00:00"
        );
        assert_eq!(
            to_utc(naive, false, paris).to_rfc3339(),
            "2026-07-01T12:00:00+00:00"
        );
        assert_eq!(
            to_utc(naive, true, chrono_tz::UTC).to_rfc3339(),
            "2026-07-01T12:00:00+00:00"
        );
        let twice = NaiveDateTime::parse_from_str("2026-10-25 02:30:00", "%F %T").expect("time");
        assert_eq!(
            to_utc(twice, true, paris).to_rfc3339(),
            "2026-10-25T00:30:00+00:00"
        );
        let never = NaiveDateTime::parse_from_str("2026-03-29 02:30:00", "%F %T").expect("time");
        assert_eq!(
            to_utc(never, true, paris).to_rfc3339(),
            "2026-03-29T01:30:00+00:00"
        );
    }
}
