//! Django's `EmailValidator` and `normalize_email`, plus authd's canonical email for login.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

use super::fields::{CharField, Input};
use super::messages;

pub const MAX_LENGTH: usize = 254;
/// The `email_canonical` column's length.
pub const CANONICAL_MAX_LENGTH: usize = 1000;
/// The longest login email looked up (another spelling of a stored one may be a bit longer).
pub const LOOKUP_MAX_LENGTH: usize = 4 * MAX_LENGTH;

/// Django's regexes, with each `(?!-)…(?<!-)` look-around rewritten as "a label neither starts
/// nor ends with `-`" (the `regex` crate has no look-around). `ul` is Django's `\u00a1-\uffff`.
static USER_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)^(?:[-!#$%&'*+/=?^_`{}|~0-9A-Z]+(?:\.[-!#$%&'*+/=?^_`{}|~0-9A-Z]+)*",
        r#"|"(?:[\x01-\x08\x0b\x0c\x0e-\x1f!#-\[\]-\x7f]|\\[\x01-\x09\x0b\x0c\x0e-\x7f])*")\z"#,
    ))
    .expect("static regex")
});
static DOMAIN_RE: LazyLock<Regex> = LazyLock::new(|| {
    let label =
        r"[a-z\x{a1}-\x{ffff}0-9](?:[a-z\x{a1}-\x{ffff}0-9-]{0,61}[a-z\x{a1}-\x{ffff}0-9])?";
    let tld = r"(?:[a-z\x{a1}-\x{ffff}][a-z\x{a1}-\x{ffff}-]{0,61}[a-z\x{a1}-\x{ffff}]|xn--[a-z0-9]{1,59})";
    Regex::new(&format!(r"(?i)^{label}(?:\.{label})*\.{tld}\z")).expect("static regex")
});
static LITERAL_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^\[([a-f0-9:.]+)\]\z").expect("static regex"));

/// Django's `EmailValidator.__call__`.
pub fn is_valid(value: &str) -> bool {
    if value.is_empty() || !value.contains('@') || value.chars().count() > 320 {
        return false;
    }
    let Some((user, domain)) = value.rsplit_once('@') else {
        return false;
    };
    if !USER_RE.is_match(user) {
        return false;
    }
    if domain == "localhost" || DOMAIN_RE.is_match(domain) {
        return true;
    }
    LITERAL_RE
        .captures(domain)
        .and_then(|caps| caps.get(1))
        .is_some_and(|ip| {
            ip.as_str().parse::<Ipv4Addr>().is_ok() || ip.as_str().parse::<Ipv6Addr>().is_ok()
        })
}

/// The `email` field of djoser's user serializers: optional, blank allowed, ≤ 254, valid. DRF
/// runs max-length and NUL before the email validator, and reports them all.
pub fn parse_field(input: &Input, required: bool) -> Result<Option<String>, Vec<String>> {
    let field = CharField {
        required,
        allow_blank: !required,
        max_length: Some(MAX_LENGTH),
    };
    let value = match field.parse(input) {
        Ok(value) => value,
        Err(mut problems) => {
            if let Input::Text(text) = input
                && !text.trim().is_empty()
                && !is_valid(super::fields::python_strip(text))
            {
                problems.push(messages::INVALID_EMAIL.to_owned());
            }
            return Err(problems);
        }
    };
    match value {
        Some(email) if !email.is_empty() && !is_valid(&email) => {
            Err(vec![messages::INVALID_EMAIL.to_owned()])
        }
        other => Ok(other),
    }
}

/// Django's `BaseUserManager.normalize_email`: lowercases the domain part only.
pub fn normalize(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((user, domain)) => format!("{user}@{}", domain.to_lowercase()),
        None => email.to_owned(),
    }
}

/// The form email uniqueness is decided on while `LOGIN_FIELD=email`: NFKC and case folded.
/// An empty address has none (it can never log in, and never collides).
pub fn canonical(email: &str) -> Option<String> {
    if email.is_empty() {
        return None;
    }
    let folded = caseless::default_case_fold_str(&email.nfkc().collect::<String>());
    Some(folded.nfkc().collect())
}

/// An address shown partly, as a notice to the previous address shows the new one: the first
/// character of the local part and of the domain, and the domain's last label
/// (`alice.new@mail.example` → `a***@m***.example`). Enough for the owner to recognise an
/// address of theirs, too little to write to it.
pub fn masked(address: &str) -> String {
    let first = |text: &str| text.chars().next().map(String::from).unwrap_or_default();
    let Some((local, domain)) = address.rsplit_once('@') else {
        return format!("{}***", first(address));
    };
    let suffix = match domain.rsplit_once('.') {
        Some((_, last)) if !last.is_empty() && last.len() < domain.len() - 1 => {
            format!(".{last}")
        }
        _ => String::new(),
    };
    format!("{}***@{}***{suffix}", first(local), first(domain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_addresses_keep_only_their_outline() {
        assert_eq!(masked("alice.new@mail.example"), "a***@m***.example");
        assert_eq!(masked("x@sub.domain.co.uk"), "x***@s***.uk");
        assert_eq!(masked("root@localhost"), "r***@l***");
        assert_eq!(masked("ünï@bücher.de"), "ü***@b***.de");
        assert_eq!(masked("@"), "***@***");
        assert_eq!(masked("plain"), "p***");
    }

    #[test]
    fn accepts_what_django_accepts() {
        for ok in [
            "alice@example.com",
            "a.b+c@sub.example.co",
            "user@localhost",
            "x@[127.0.0.1]",
            "x@[::1]",
            "\"quoted\"@example.com",
            "j@bücher.de",
            "a@b.c-d",
            "x@xn--bcher-kva.example",
        ] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "a@b",
            "a@-b.com",
            "a@b-.com",
            "a@b.c",
            "a b@example.com",
            "a@[999.1.1.1]",
            "a..b@example.com",
            "\"quoted name\"@example.com",
            "jürgen@bücher.de",
            "a@[1.2.3]",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn normalize_lowercases_domain_only() {
        assert_eq!(normalize("Alice@EXAMPLE.COM"), "Alice@example.com");
    }

    #[test]
    fn long_invalid_email_reports_length_then_validity() {
        let long = format!("{}@", "a".repeat(260));
        assert_eq!(
            parse_field(&Input::Text(long), false),
            Err(vec![
                messages::max_length(254),
                messages::INVALID_EMAIL.to_owned()
            ])
        );
    }
}
