//! A contact as clients send it: parsed and validated field by field, with DRF's messages, so
//! that bad input is refused whole before anything is written.

use chrono::NaiveDate;
use serde_json::{Map, Value};

pub const REQUIRED: &str = "This field is required.";
pub const BLANK: &str = "This field may not be blank.";
pub const NULL: &str = "This field may not be null.";
pub const NOT_A_STRING: &str = "Not a valid string.";
pub const BAD_EMAIL: &str = "Enter a valid email address.";
pub const BAD_DATE: &str = "Date has wrong format. Use one of these formats instead: YYYY-MM-DD.";

/// Field names and their problems, in the order the fields are checked (DRF's 400 body).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FieldErrors(Map<String, Value>);

impl FieldErrors {
    pub fn single(field: &str, message: &str) -> Self {
        let mut errors = Self::default();
        errors.add(field, message);
        errors
    }

    fn add(&mut self, field: &str, message: &str) {
        let entry = self
            .0
            .entry(field)
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(messages) = entry {
            messages.push(Value::String(message.to_owned()));
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_json(self) -> Value {
        Value::Object(self.0)
    }
}

/// The fields a request sets; `None`: left as they are (or their default on creation).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ContactChange {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// `Some(None)`: the birthday is cleared.
    pub birthday: Option<Option<NaiveDate>>,
    pub notes: Option<String>,
}

const NAME_MAX: usize = 100;
const EMAIL_MAX: usize = 254;
const PHONE_MAX: usize = 32;
const NOTES_MAX: usize = 10_000;

impl ContactChange {
    /// `partial`: a `PATCH`, where `first_name` may be left out too. `id` and `owner` are
    /// read-only and, as DRF does, ignored when sent.
    pub fn parse(body: &Value, partial: bool) -> Result<Self, FieldErrors> {
        let Value::Object(fields) = body else {
            return Err(FieldErrors::single(
                "non_field_errors",
                &format!(
                    "Invalid data. Expected a dictionary, but got {}.",
                    type_name(body)
                ),
            ));
        };
        let mut errors = FieldErrors::default();
        let mut text = |field: &str, required: bool, max: usize| match text_field(
            fields.get(field),
            required && !partial,
            required,
            max,
        ) {
            Ok(value) => value,
            Err(message) => {
                errors.add(field, &message);
                None
            }
        };
        let first_name = text("first_name", true, NAME_MAX);
        let last_name = text("last_name", false, NAME_MAX);
        let email = text("email", false, EMAIL_MAX);
        let phone = text("phone", false, PHONE_MAX);
        let notes = text("notes", false, NOTES_MAX);
        if email
            .as_deref()
            .is_some_and(|email| !email.is_empty() && !plausible_email(email))
        {
            errors.add("email", BAD_EMAIL);
        }
        let birthday = match fields.get("birthday") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(text)) => match parse_date(text.trim()) {
                Some(date) => Some(Some(date)),
                None => {
                    errors.add("birthday", BAD_DATE);
                    None
                }
            },
            Some(_) => {
                errors.add("birthday", BAD_DATE);
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            first_name,
            last_name,
            email,
            phone,
            birthday,
            notes,
        })
    }
}

/// A trimmed string field (DRF's `CharField`), `None` when absent and not required.
fn text_field(
    value: Option<&Value>,
    required: bool,
    non_blank: bool,
    max: usize,
) -> Result<Option<String>, String> {
    let text = match value {
        None if required => return Err(REQUIRED.to_owned()),
        None => return Ok(None),
        Some(Value::Null) => return Err(NULL.to_owned()),
        Some(Value::String(text)) => text.trim(),
        Some(_) => return Err(NOT_A_STRING.to_owned()),
    };
    if non_blank && text.is_empty() {
        return Err(BLANK.to_owned());
    }
    if text.chars().count() > max {
        return Err(format!(
            "Ensure this field has no more than {max} characters."
        ));
    }
    Ok(Some(text.to_owned()))
}

/// `YYYY-MM-DD` exactly, and a day that exists.
fn parse_date(text: &str) -> Option<NaiveDate> {
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shaped {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// One `@` between a local part and a dotted domain, no spaces: enough to catch typos, which
/// is all an address book needs (only mail that arrives proves an address).
fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && !email.chars().any(char::is_whitespace)
        && domain.split('.').count() >= 2
        && domain.split('.').all(|label| !label.is_empty())
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "None",
        Value::Bool(_) => "bool",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_complete_contact_is_trimmed() {
        let change = ContactChange::parse(
            &json!({"first_name": " Ada ", "last_name": "Lovelace", "email": "ada@example.com",
                    "phone": "+44 20", "birthday": "1815-12-10", "notes": "", "owner": 99}),
            false,
        )
        .expect("valid");
        assert_eq!(change.first_name.as_deref(), Some("Ada"));
        assert_eq!(change.birthday, Some(NaiveDate::from_ymd_opt(1815, 12, 10)));
    }

    #[test]
    fn every_bad_field_is_named() {
        let errors = ContactChange::parse(
            &json!({"last_name": "x".repeat(101), "email": "ada@", "phone": 5,
                    "birthday": "2023-02-29"}),
            false,
        )
        .expect_err("invalid");
        assert_eq!(
            errors.into_json(),
            json!({
                "first_name": [REQUIRED],
                "last_name": ["Ensure this field has no more than 100 characters."],
                "phone": [NOT_A_STRING],
                "email": [BAD_EMAIL],
                "birthday": [BAD_DATE],
            })
        );
    }

    #[test]
    fn a_patch_may_leave_the_first_name_out_but_not_blank_it() {
        assert_eq!(
            ContactChange::parse(&json!({"birthday": null}), true),
            Ok(ContactChange {
                birthday: Some(None),
                ..Default::default()
            })
        );
        assert_eq!(
            ContactChange::parse(&json!({"first_name": "  "}), true),
            Err(FieldErrors::single("first_name", BLANK))
        );
    }

    #[test]
    fn dates_are_iso_and_exist() {
        assert_eq!(
            parse_date("2024-02-29"),
            NaiveDate::from_ymd_opt(2024, 2, 29)
        );
        for bad in [
            "2023-02-29",
            "2024-2-9",
            "24-02-09",
            "2024/02/09",
            "2024-13-01",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_list_is_not_a_contact() {
        assert_eq!(
            ContactChange::parse(&json!([]), false),
            Err(FieldErrors::single(
                "non_field_errors",
                "Invalid data. Expected a dictionary, but got list."
            ))
        );
    }
}
