//! DRF's `CharField` semantics over a parsed request body, whatever its media type.

use std::collections::HashMap;

use super::messages;

/// One field of a request body as the client sent it. `Debug` shows the shape, never the
/// text: a field may be a password.
#[derive(Clone, PartialEq)]
pub enum Input {
    Missing,
    Null,
    /// A string, or a number DRF would coerce to one.
    Text(String),
    /// A JSON `true` or `false`.
    Bool(bool),
    /// An object (its Python type's name): never a valid string.
    NotText(&'static str),
    /// A JSON array.
    List(Vec<Input>),
}

impl Input {
    pub fn from_json(value: serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null => Input::Null,
            serde_json::Value::String(s) => Input::Text(s),
            serde_json::Value::Number(n) => Input::Text(n.to_string()),
            serde_json::Value::Bool(value) => Input::Bool(value),
            serde_json::Value::Object(_) => Input::NotText("dict"),
            serde_json::Value::Array(items) => {
                Input::List(items.into_iter().map(Input::from_json).collect())
            }
        }
    }
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Missing => f.write_str("Missing"),
            Input::Null => f.write_str("Null"),
            Input::Text(text) => write!(f, "Text(<{} characters>)", text.chars().count()),
            Input::Bool(_) => f.write_str("Bool"),
            Input::NotText(kind) => write!(f, "NotText({kind})"),
            Input::List(items) => f.debug_list().entries(items).finish(),
        }
    }
}

/// A request body parsed into fields; unknown keys are kept but never read (DRF ignores them).
/// `Debug` shows names and shapes only.
#[derive(Debug, Default, Clone)]
pub struct RawFields {
    fields: HashMap<String, Input>,
    /// A form body (urlencoded or multipart): its list fields are its repeated keys.
    form: bool,
    /// The values of a form key before its last, for list fields (Django's
    /// `QueryDict.getlist`); kept only for keys that repeat.
    earlier: HashMap<String, Vec<String>>,
}

impl RawFields {
    pub fn get(&self, name: &str) -> &Input {
        self.fields.get(name).unwrap_or(&Input::Missing)
    }

    pub fn insert(&mut self, name: impl Into<String>, value: Input) {
        self.fields.insert(name.into(), value);
    }

    /// One value of a form body's key: the last one is the field (as in Django's `QueryDict`),
    /// and all of them are the list a list field reads.
    pub fn insert_form_value(&mut self, name: impl Into<String>, value: String) {
        self.form = true;
        let name = name.into();
        if let Some(Input::Text(previous)) = self.fields.insert(name.clone(), Input::Text(value)) {
            self.earlier.entry(name).or_default().push(previous);
        }
    }

    /// DRF's list of strings (a `ManyRelatedField` of slugs): `Ok(None)` when absent; a JSON
    /// array of strings, or a form key's every value.
    pub fn list(&self, name: &str) -> Result<Option<Vec<String>>, Vec<String>> {
        if self.form {
            let Input::Text(last) = self.get(name) else {
                return Ok(None);
            };
            let mut values = self.earlier.get(name).cloned().unwrap_or_default();
            values.push(last.clone());
            return Ok(Some(values));
        }
        let expected = |kind: &str| {
            Err(vec![format!(
                "Expected a list of items but got type \"{kind}\"."
            )])
        };
        match self.get(name) {
            Input::Missing => Ok(None),
            Input::Null => Err(vec![messages::NULL.into()]),
            Input::Text(_) => expected("str"),
            Input::Bool(_) => expected("bool"),
            Input::NotText(kind) => expected(kind),
            Input::List(items) => items
                .iter()
                .map(|item| match item {
                    Input::Text(text) => Ok(text.clone()),
                    _ => Err(vec![messages::INVALID_VALUE.into()]),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
        }
    }

    /// Convenience for code that builds a body by hand (the CLI, tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut fields = RawFields::default();
        for (name, value) in pairs {
            fields.insert(name, Input::Text(value.to_owned()));
        }
        fields
    }
}

/// DRF's validation error body: field name → messages, in serializer field order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FieldErrors(Vec<(String, Vec<String>)>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    /// All the problems of one field.
    pub fn field(field: &str, problems: Vec<String>) -> Self {
        let mut errors = Self::new();
        errors.extend(field, problems);
        errors
    }

    pub fn non_field(message: impl Into<String>) -> Self {
        Self::single(messages::NON_FIELD_ERRORS, message)
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        match self.0.iter_mut().find(|(name, _)| name == field) {
            Some((_, list)) => list.push(message.into()),
            None => self.0.push((field.to_owned(), vec![message.into()])),
        }
    }

    pub fn extend(&mut self, field: &str, list: Vec<String>) {
        for message in list {
            self.add(field, message);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.0
            .iter()
            .map(|(name, list)| (name.as_str(), list.as_slice()))
    }
}

/// How one `CharField` is declared.
#[derive(Debug, Clone, Copy)]
pub struct CharField {
    pub required: bool,
    pub allow_blank: bool,
    /// In characters (code points), as DRF counts.
    pub max_length: Option<usize>,
}

impl CharField {
    pub const REQUIRED: CharField = CharField {
        required: true,
        allow_blank: false,
        max_length: None,
    };
    pub const OPTIONAL: CharField = CharField {
        required: false,
        allow_blank: false,
        max_length: None,
    };

    pub const fn max_length(self, max_length: usize) -> Self {
        CharField {
            max_length: Some(max_length),
            ..self
        }
    }

    /// DRF `CharField.run_validation`: `Ok(None)` for an absent optional field; the text is
    /// trimmed; the built-in validators (length, NUL) all report together.
    pub fn parse(&self, input: &Input) -> Result<Option<String>, Vec<String>> {
        let Some(text) = self.text(input)? else {
            return Ok(None);
        };
        let mut problems = Vec::new();
        if let Some(limit) = self.max_length
            && text.chars().count() > limit
        {
            problems.push(messages::max_length(limit));
        }
        if text.contains('\0') {
            problems.push(messages::NULL_CHARACTERS.into());
        }
        if problems.is_empty() {
            Ok(Some(text))
        } else {
            Err(problems)
        }
    }

    /// The steps before the validators: presence, null, type, trimming, blank. For fields
    /// whose own validators must run in a model's order (the username).
    pub fn text(&self, input: &Input) -> Result<Option<String>, Vec<String>> {
        let text = match input {
            Input::Missing if self.required => return Err(vec![messages::REQUIRED.into()]),
            Input::Missing => return Ok(None),
            Input::Null => return Err(vec![messages::NULL.into()]),
            Input::Bool(_) | Input::NotText(_) | Input::List(_) => {
                return Err(vec![messages::NOT_A_STRING.into()]);
            }
            Input::Text(text) => python_strip(text),
        };
        if text.is_empty() && !self.allow_blank {
            return Err(vec![messages::BLANK.into()]);
        }
        Ok(Some(text.to_owned()))
    }
}

/// DRF's `BooleanField`: `Ok(None)` when absent; `true`, `false` and their spellings.
pub fn boolean(input: &Input) -> Result<Option<bool>, Vec<String>> {
    const TRUE: [&str; 11] = [
        "t", "T", "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "1",
    ];
    const FALSE: [&str; 11] = [
        "f", "F", "n", "N", "no", "No", "NO", "false", "False", "FALSE", "0",
    ];
    match input {
        Input::Missing => Ok(None),
        Input::Null => Err(vec![messages::NULL.into()]),
        Input::Bool(value) => Ok(Some(*value)),
        Input::Text(text)
            if TRUE.contains(&text.as_str()) || matches!(text.as_str(), "on" | "On" | "ON") =>
        {
            Ok(Some(true))
        }
        Input::Text(text)
            if FALSE.contains(&text.as_str()) || matches!(text.as_str(), "off" | "Off" | "OFF") =>
        {
            Ok(Some(false))
        }
        _ => Err(vec![messages::NOT_A_BOOLEAN.into()]),
    }
}

/// DRF's `IntegerField` with `min_value` and `max_value`: `Ok(None)` when absent. Numbers and
/// their strings are read as DRF reads them (`"12"`, `12`, `12.0`); a boolean is not a number.
pub fn integer(input: &Input, min: i64, max: i64) -> Result<Option<i64>, Vec<String>> {
    let text = match input {
        Input::Missing => return Ok(None),
        Input::Null => return Err(vec![messages::NULL.into()]),
        Input::Text(text) => python_strip(text),
        _ => return Err(vec![messages::INVALID_INTEGER.into()]),
    };
    // DRF strips a decimal point followed only by zeros before `int()`.
    let whole = match text.split_once('.') {
        Some((whole, fraction)) if fraction.chars().all(|c| c == '0') => whole,
        Some(_) => text,
        None => text,
    };
    let value: i64 = whole
        .trim()
        .parse()
        .map_err(|_| vec![messages::INVALID_INTEGER.to_owned()])?;
    if value < min {
        return Err(vec![format!(
            "Ensure this value is greater than or equal to {min}."
        )]);
    }
    if value > max {
        return Err(vec![format!(
            "Ensure this value is less than or equal to {max}."
        )]);
    }
    Ok(Some(value))
}

/// Python's `str.strip()`: Rust's `trim` plus the four ASCII separators Python counts as space.
pub fn python_strip(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// Python's `\w` for `str` patterns: letters, numbers (any script) and `_`.
pub fn is_python_word_char(c: char) -> bool {
    use unicode_general_category::{GeneralCategory::*, get_general_category};
    c == '_'
        || matches!(
            get_general_category(c),
            UppercaseLetter
                | LowercaseLetter
                | TitlecaseLetter
                | ModifierLetter
                | OtherLetter
                | DecimalNumber
                | LetterNumber
                | OtherNumber
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_field_follows_drf() {
        let f = CharField::REQUIRED.max_length(3);
        assert_eq!(
            f.parse(&Input::Missing),
            Err(vec![messages::REQUIRED.to_owned()])
        );
        assert_eq!(f.parse(&Input::Null), Err(vec![messages::NULL.to_owned()]));
        assert_eq!(
            f.parse(&Input::Bool(true)),
            Err(vec![messages::NOT_A_STRING.to_owned()])
        );
        assert_eq!(
            f.parse(&Input::Text(" \t".into())),
            Err(vec![messages::BLANK.to_owned()])
        );
        assert_eq!(f.parse(&Input::Text(" ab ".into())), Ok(Some("ab".into())));
        assert_eq!(
            f.parse(&Input::Text("a\0bc".into())),
            Err(vec![
                messages::max_length(3),
                messages::NULL_CHARACTERS.to_owned()
            ])
        );
        assert_eq!(CharField::OPTIONAL.parse(&Input::Missing), Ok(None));
    }

    #[test]
    fn debug_output_never_shows_values() {
        let fields = RawFields::from_pairs([("password", "hunter2 secret")]);
        let shown = format!("{fields:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("password") && shown.contains("14 characters"),
            "{shown}"
        );
    }

    #[test]
    fn numbers_become_text() {
        assert_eq!(
            Input::from_json(serde_json::json!(12)),
            Input::Text("12".into())
        );
        assert_eq!(Input::from_json(serde_json::json!(true)), Input::Bool(true));
        assert_eq!(
            Input::from_json(serde_json::json!([1])),
            Input::List(vec![Input::Text("1".into())])
        );
    }

    #[test]
    fn booleans_follow_drf() {
        assert_eq!(boolean(&Input::Bool(false)), Ok(Some(false)));
        assert_eq!(boolean(&Input::Text("yes".into())), Ok(Some(true)));
        assert_eq!(boolean(&Input::Text("0".into())), Ok(Some(false)));
        assert_eq!(boolean(&Input::Missing), Ok(None));
        assert_eq!(
            boolean(&Input::Text("maybe".into())),
            Err(vec![messages::NOT_A_BOOLEAN.to_owned()])
        );
    }

    #[test]
    fn lists_come_from_json_arrays_and_repeated_form_keys() {
        let mut form = RawFields::default();
        form.insert_form_value("groups", "a".into());
        form.insert_form_value("groups", "b".into());
        assert_eq!(form.list("groups"), Ok(Some(vec!["a".into(), "b".into()])));
        assert_eq!(form.get("groups"), &Input::Text("b".into()));
        assert_eq!(form.list("other"), Ok(None));
        let mut single = RawFields::default();
        single.insert_form_value("groups", "a".into());
        assert_eq!(single.list("groups"), Ok(Some(vec!["a".into()])));
        let mut json = RawFields::default();
        json.insert("groups", Input::from_json(serde_json::json!("a")));
        assert_eq!(
            json.list("groups"),
            Err(vec![
                "Expected a list of items but got type \"str\".".into()
            ])
        );
        json.insert("groups", Input::from_json(serde_json::json!(["a", {}])));
        assert_eq!(
            json.list("groups"),
            Err(vec![messages::INVALID_VALUE.into()])
        );
    }

    #[test]
    fn word_chars_match_python() {
        assert!(is_python_word_char('é'));
        assert!(is_python_word_char('٣'));
        assert!(is_python_word_char('_'));
        assert!(!is_python_word_char('$'));
        // Combining marks are not `\w` in Python, although Rust calls some alphabetic.
        assert!(!is_python_word_char('\u{093e}'));
    }

    #[test]
    fn integers_read_as_drf_reads_them() {
        let text = |t: &str| Input::Text(t.to_owned());
        assert_eq!(integer(&Input::Missing, 1, 10), Ok(None));
        assert_eq!(integer(&text("7"), 1, 10), Ok(Some(7)));
        assert_eq!(integer(&text(" 7 "), 1, 10), Ok(Some(7)));
        assert_eq!(integer(&text("7.00"), 1, 10), Ok(Some(7)));
        let invalid = Err(vec![messages::INVALID_INTEGER.to_owned()]);
        assert_eq!(integer(&text("7.5"), 1, 10), invalid);
        assert_eq!(integer(&text("1e3"), 1, 10), invalid);
        assert_eq!(integer(&Input::Bool(true), 1, 10), invalid);
        assert_eq!(integer(&text("99999999999999999999"), 1, 10), invalid);
        assert_eq!(
            integer(&text("0"), 1, 10),
            Err(vec![
                "Ensure this value is greater than or equal to 1.".to_owned()
            ])
        );
        assert_eq!(
            integer(&text("11"), 1, 10),
            Err(vec![
                "Ensure this value is less than or equal to 10.".to_owned()
            ])
        );
        assert_eq!(
            integer(&Input::Null, 1, 10),
            Err(vec![messages::NULL.to_owned()])
        );
    }
}
