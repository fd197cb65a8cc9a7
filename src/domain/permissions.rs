//! Django's permission names (`app_label.codename`) and the rules on their parts.
//!
//! An app label is a Python identifier (Django requires it of every app). A codename has no
//! whitespace, so that a space-separated OAuth2 scope can name permissions.

use std::fmt;

use super::fields::CharField;
use super::{Input, messages};

pub const APP_LABEL: CharField = CharField::REQUIRED.max_length(100);
pub const CODENAME: CharField = CharField::REQUIRED.max_length(100);
pub const PERMISSION_NAME: CharField = CharField::REQUIRED.max_length(255);
pub const GROUP_NAME: CharField = CharField::REQUIRED.max_length(150);

/// The app label that names Django's own models: granting its permissions is granting power
/// over users, groups and permissions themselves.
pub const AUTH_APP: &str = "auth";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PermissionName {
    pub app_label: String,
    pub codename: String,
}

impl PermissionName {
    /// `app_label.codename`, split at the first dot (an app label has none).
    pub fn parse(text: &str) -> Option<Self> {
        let (app_label, codename) = text.split_once('.')?;
        (valid_app_label(app_label) && valid_codename(codename)).then(|| Self {
            app_label: app_label.to_owned(),
            codename: codename.to_owned(),
        })
    }

    pub fn is_auth(&self) -> bool {
        self.app_label == AUTH_APP
    }
}

impl fmt::Display for PermissionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.app_label, self.codename)
    }
}

fn valid_app_label(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && text.len() <= 100
}

fn valid_codename(text: &str) -> bool {
    !text.is_empty()
        && text.chars().count() <= 100
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The `app_label` field of a new or changed permission.
pub fn app_label(input: &Input) -> Result<Option<String>, Vec<String>> {
    let text = APP_LABEL.parse(input)?;
    match &text {
        Some(label) if !valid_app_label(label) => Err(vec![messages::INVALID_APP_LABEL.into()]),
        _ => Ok(text),
    }
}

/// The `codename` field of a new or changed permission.
pub fn codename(input: &Input) -> Result<Option<String>, Vec<String>> {
    let text = CODENAME.parse(input)?;
    match &text {
        Some(codename) if !valid_codename(codename) => Err(vec![messages::INVALID_CODENAME.into()]),
        _ => Ok(text),
    }
}

/// DRF's answer for a slug that names nothing: `Object with name=… does not exist.`
pub fn does_not_exist(slug: &str, value: &str) -> String {
    format!("Object with {slug}={value} does not exist.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_at_the_first_dot() {
        let name = PermissionName::parse("blog.add_post").expect("valid");
        assert_eq!(
            (name.app_label.as_str(), name.codename.as_str()),
            ("blog", "add_post")
        );
        assert_eq!(name.to_string(), "blog.add_post");
        assert_eq!(
            PermissionName::parse("blog.post.v2").map(|n| n.codename),
            Some("post.v2".into())
        );
        for bad in [
            "blog",
            ".add",
            "blog.",
            "9app.x",
            "a-b.x",
            "blog.add post",
            "",
        ] {
            assert_eq!(PermissionName::parse(bad), None, "{bad:?}");
        }
        assert!(PermissionName::parse("auth.add_user").is_some_and(|n| n.is_auth()));
    }

    #[test]
    fn fields_get_their_messages() {
        assert_eq!(
            app_label(&Input::Text("my-app".into())),
            Err(vec![messages::INVALID_APP_LABEL.to_owned()])
        );
        assert_eq!(
            codename(&Input::Text("two words".into())),
            Err(vec![messages::INVALID_CODENAME.to_owned()])
        );
        assert_eq!(codename(&Input::Text(" ok ".into())), Ok(Some("ok".into())));
    }
}
