//! Django's `username` field rules and authd's canonical form for uniqueness.

use unicode_normalization::UnicodeNormalization;

use super::fields::{CharField, Input, is_python_word_char};
use super::messages;

pub const MAX_LENGTH: usize = 150;
/// The `username_canonical` column's length.
const CANONICAL_MAX_LENGTH: usize = 600;
/// The longest login identifier looked up: another spelling of a stored name may be longer
/// than the name, but not by much; the cap bounds what NFKC and case folding can cost.
pub const LOOKUP_MAX_LENGTH: usize = 4 * MAX_LENGTH;

/// The username as the serializer declares it: required, trimmed, not blank. The regex and
/// length run afterwards in [`field_messages`], because uniqueness sits between them.
pub fn parse_text(input: &Input) -> Result<String, Vec<String>> {
    CharField::REQUIRED
        .text(input)
        .map(|value| value.unwrap_or_default())
}

/// Django's `UnicodeUsernameValidator`: `^[\w.@+-]+\Z` with Python's Unicode `\w`.
pub fn is_valid_shape(username: &str) -> bool {
    !username.is_empty()
        && username
            .chars()
            .all(|c| is_python_word_char(c) || matches!(c, '.' | '@' | '+' | '-'))
}

/// Whether the name fits its columns as it would be stored (NFKC, which can lengthen it:
/// "ﬀ" is "ff") and in its canonical form. The raw length is checked first, so a huge input
/// is never normalised.
pub fn fits(username: &str) -> bool {
    username.chars().count() <= MAX_LENGTH
        && normalize(username).chars().count() <= MAX_LENGTH
        && canonical(username).chars().count() <= CANONICAL_MAX_LENGTH
}

/// Whether uniqueness can be asked of the database at all: the name fits its columns and has
/// no NUL (PostgreSQL refuses it in text).
pub fn can_query(username: &str) -> bool {
    !username.contains('\0') && fits(username)
}

/// The model field's validators in Django's order: regex, unique, max length, NUL.
pub fn field_messages(username: &str, taken: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if !is_valid_shape(username) {
        problems.push(messages::INVALID_USERNAME.to_owned());
    }
    if taken {
        problems.push(messages::USERNAME_TAKEN.to_owned());
    }
    if !fits(username) {
        problems.push(messages::max_length(MAX_LENGTH));
    }
    if username.contains('\0') {
        problems.push(messages::NULL_CHARACTERS.to_owned());
    }
    problems
}

/// Django's `normalize_username`, applied when an account is created.
pub fn normalize(username: &str) -> String {
    username.nfkc().collect()
}

/// The form uniqueness is decided on: NFKC, Unicode default case folding, NFKC again (case
/// folding can leave a string that is no longer NFKC-normal), so `Alice`, `ALICE` and `ａｌｉｃｅ`
/// are one name and `straße` equals `strasse`.
pub fn canonical(username: &str) -> String {
    let folded = caseless::default_case_fold_str(&username.nfkc().collect::<String>());
    folded.nfkc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_folds_case_width_and_sharp_s() {
        assert_eq!(canonical("Alice"), "alice");
        assert_eq!(canonical("ＡＬＩＣＥ"), "alice");
        assert_eq!(canonical("Straße"), canonical("STRASSE"));
        assert_eq!(canonical(&canonical("ﬁ")), canonical("ﬁ"));
    }

    #[test]
    fn the_stored_form_must_fit() {
        assert!(fits(&"\u{fb00}".repeat(75)));
        assert!(!fits(&"\u{fb00}".repeat(76)), "NFKC doubles each ligature");
        assert!(!fits(&"a".repeat(151)));
        assert!(!can_query(&"\u{fdfa}".repeat(1_000_000)));
    }

    #[test]
    fn shape_follows_django() {
        assert!(is_valid_shape("jürgen.o+k@x-y_z"));
        assert!(!is_valid_shape("$ wrong username #"));
        assert!(!is_valid_shape("new username"));
    }

    #[test]
    fn long_invalid_name_reports_regex_then_length() {
        let name = "$".repeat(151);
        assert_eq!(
            field_messages(&name, false),
            vec![
                messages::INVALID_USERNAME.to_owned(),
                messages::max_length(150)
            ]
        );
    }
}
