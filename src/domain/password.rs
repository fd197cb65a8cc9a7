//! Django's four `startproject` password validators, in their order and wording, and the
//! 4096-byte cap that keeps oversized input away from the hash.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::LazyLock;

use super::fields::{CharField, Input, is_python_word_char};
use super::messages;

/// Longest password accepted, in bytes (Django's cap since CVE-2013-1443).
pub const MAX_BYTES: usize = 4096;
const MIN_LENGTH: usize = 8;
const MAX_SIMILARITY: f64 = 0.7;

/// Django's own list (19,640 entries in 5.2), shipped unchanged; see data/common-passwords.LICENSE.
static COMMON_PASSWORDS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let compressed: &[u8] = include_bytes!("../../data/common-passwords.txt.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(compressed)
        .read_to_string(&mut text)
        .expect("the bundled common-password list is valid gzip");
    text.lines().map(|line| line.trim().to_owned()).collect()
});

/// Loads the list now, so the first registration does not pay for it.
pub fn preload() {
    LazyLock::force(&COMMON_PASSWORDS);
}

/// A password field (`password`, `new_password`, `current_password`, `re_*`): a required,
/// trimmed `CharField`, plus authd's byte cap.
pub fn parse_field(input: &Input) -> Result<String, Vec<String>> {
    let password = CharField::REQUIRED.parse(input)?.unwrap_or_default();
    if password.len() > MAX_BYTES {
        return Err(vec![messages::max_length(MAX_BYTES)]);
    }
    Ok(password)
}

/// The attributes `UserAttributeSimilarityValidator` compares against.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserContext<'a> {
    pub username: &'a str,
    pub email: &'a str,
}

/// Django's `validate_password` with the four default validators; all failures, in order.
pub fn validate(password: &str, user: Option<UserContext<'_>>) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(user) = user
        && let Some(attribute) = too_similar(password, user)
    {
        problems.push(format!("The password is too similar to the {attribute}."));
    }
    if password.chars().count() < MIN_LENGTH {
        problems.push(format!(
            "This password is too short. It must contain at least {MIN_LENGTH} characters."
        ));
    }
    if COMMON_PASSWORDS.contains(super::fields::python_strip(&password.to_lowercase())) {
        problems.push("This password is too common.".to_owned());
    }
    if is_python_digits(password) {
        problems.push("This password is entirely numeric.".to_owned());
    }
    problems
}

fn too_similar(password: &str, user: UserContext<'_>) -> Option<&'static str> {
    let password = password.to_lowercase();
    [("username", user.username), ("email address", user.email)]
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .find(|(_, value)| {
            let value = value.to_lowercase();
            split_non_word(&value)
                .into_iter()
                .chain(std::iter::once(value.as_str()))
                .any(|part| {
                    !exceeds_maximum_length_ratio(&password, part)
                        && quick_ratio(&password, part) >= MAX_SIMILARITY
                })
        })
        .map(|(attribute, _)| attribute)
}

/// `re.split(r"\W+", value)`, empty pieces included, as Python returns them.
fn split_non_word(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_separator = false;
    for (index, c) in value.char_indices() {
        let word = is_python_word_char(c);
        if !word && !in_separator {
            parts.push(&value[start..index]);
            in_separator = true;
        } else if word && in_separator {
            start = index;
            in_separator = false;
        }
    }
    parts.push(if in_separator { "" } else { &value[start..] });
    parts
}

fn exceeds_maximum_length_ratio(password: &str, value: &str) -> bool {
    let password_len = password.chars().count() as f64;
    let value_len = value.chars().count() as f64;
    password_len >= 10.0 * value_len && value_len < MAX_SIMILARITY / 2.0 * password_len
}

/// `difflib.SequenceMatcher(a, b).quick_ratio()`: 2·|multiset intersection| / (|a| + |b|).
fn quick_ratio(a: &str, b: &str) -> f64 {
    let total = a.chars().count() + b.chars().count();
    if total == 0 {
        return 1.0;
    }
    let mut available: HashMap<char, usize> = HashMap::new();
    for c in b.chars() {
        *available.entry(c).or_default() += 1;
    }
    let matches = a
        .chars()
        .filter(|c| match available.get_mut(c) {
            Some(count) if *count > 0 => {
                *count -= 1;
                true
            }
            _ => false,
        })
        .count();
    2.0 * matches as f64 / total as f64
}

/// Python's `str.isdigit()` for the characters that matter: decimal digits of any script.
fn is_python_digits(password: &str) -> bool {
    use unicode_general_category::{GeneralCategory, get_general_category};
    !password.is_empty()
        && password
            .chars()
            .all(|c| get_general_category(c) == GeneralCategory::DecimalNumber || "²³¹".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Option<UserContext<'static>> {
        Some(UserContext {
            username: "alice",
            email: "alice@example.com",
        })
    }

    #[test]
    fn djangos_observed_combinations() {
        assert_eq!(
            validate("abc", None),
            vec![
                "This password is too short. It must contain at least 8 characters.",
                "This password is too common."
            ]
        );
        assert_eq!(
            validate("12345678", None),
            vec![
                "This password is too common.",
                "This password is entirely numeric."
            ]
        );
        assert_eq!(
            validate(
                "frankenstein1",
                Some(UserContext {
                    username: "frankenstein",
                    email: ""
                })
            ),
            vec!["The password is too similar to the username."]
        );
        assert_eq!(
            validate("alice123", alice()),
            vec![
                "The password is too similar to the username.",
                "This password is too common."
            ]
        );
        assert!(validate("correct horse battery staple", alice()).is_empty());
    }

    #[test]
    fn email_parts_are_compared() {
        assert_eq!(
            validate(
                "examplecom!",
                Some(UserContext {
                    username: "zz",
                    email: "bob@example.com"
                })
            ),
            vec!["The password is too similar to the email address."]
        );
    }

    #[test]
    fn python_split_keeps_empty_pieces() {
        assert_eq!(split_non_word("a.b"), vec!["a", "b"]);
        assert_eq!(split_non_word(".a."), vec!["", "a", ""]);
    }

    #[test]
    fn oversized_password_is_refused_before_hashing() {
        let long = "x".repeat(MAX_BYTES + 1);
        assert_eq!(
            parse_field(&Input::Text(long)),
            Err(vec![messages::max_length(MAX_BYTES)])
        );
        assert!(parse_field(&Input::Text("é".repeat(MAX_BYTES / 2))).is_ok());
    }
}
