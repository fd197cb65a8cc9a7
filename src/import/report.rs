//! What an import did (or, dry, would do): the summary printed for people and as `--json`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::rows::Password;
use crate::store::django::DjangoUser;

/// Another account a skipped row collides with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Collision {
    pub id: i64,
    pub username: String,
}

/// A row left behind, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skip {
    pub id: i64,
    pub username: String,
    pub reason: &'static str,
    pub collides_with: Option<Collision>,
}

impl Skip {
    pub fn of(id: i64, username: &str, reason: &'static str) -> Self {
        Skip {
            id,
            username: username.to_owned(),
            reason,
            collides_with: None,
        }
    }

    pub fn colliding(user: &DjangoUser, reason: &'static str, id: i64, username: &str) -> Self {
        Skip {
            collides_with: Some(Collision {
                id,
                username: username.to_owned(),
            }),
            ..Skip::of(user.id, &user.username, reason)
        }
    }

    pub fn colliding_group(id: i64, name: &str, other: i64) -> Self {
        Skip {
            collides_with: Some(Collision {
                id: other,
                username: name.to_owned(),
            }),
            ..Skip::of(id, name, "name_collision")
        }
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}: {}", self.id, self.username, self.reason)?;
        if let Some(other) = &self.collides_with {
            write!(f, " (with {} {:?})", other.id, other.username)?;
        }
        Ok(())
    }
}

/// Counts for users and groups.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    pub imported: usize,
    pub updated: usize,
    pub skipped: Vec<Skip>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub users: Tally,
    pub tokens: TokenTally,
    pub groups: Tally,
    pub permissions: PermissionTally,
    /// Hashes of the accounts imported, or whose password was updated, by algorithm.
    pub hashes: BTreeMap<String, usize>,
    /// Accounts imported as superusers in this run.
    pub superusers: Vec<Collision>,
    /// Whether anything was (for a dry run: would be) written.
    pub changed: bool,
    pub dry_run: bool,
    /// The target database, its password redacted.
    pub target: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TokenTally {
    pub imported: usize,
    /// Replaced in Django since the last run: the old key ended, the new one imported.
    pub updated: usize,
    pub deleted: usize,
    pub skipped: Vec<Skip>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PermissionTally {
    pub imported: usize,
    /// Reused: one authd already held by `app_label.codename`, or another Django row of the
    /// same name (on another model).
    pub merged: usize,
    pub skipped: Vec<Skip>,
}

impl Report {
    pub fn new(dry_run: bool, target: String) -> Self {
        Report {
            users: Tally::default(),
            tokens: TokenTally::default(),
            groups: Tally::default(),
            permissions: PermissionTally::default(),
            hashes: BTreeMap::new(),
            superusers: Vec::new(),
            changed: false,
            dry_run,
            target,
        }
    }

    pub(super) fn count_hash(&mut self, password: &Password) {
        *self.hashes.entry(password.algorithm.clone()).or_default() += 1;
    }
}

/// The summary for people.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "would import"
        } else {
            "imported"
        };
        writeln!(
            f,
            "Django import into {}{}",
            self.target,
            if self.dry_run {
                " (dry run: nothing written)"
            } else {
                ""
            }
        )?;
        if !self.changed {
            writeln!(
                f,
                "no change: authd already holds everything the source has"
            )?;
        }
        writeln!(
            f,
            "users: {verb} {}, updated {}, skipped {}",
            self.users.imported,
            self.users.updated,
            self.users.skipped.len()
        )?;
        writeln!(
            f,
            "DRF tokens: {verb} {}, replaced {}, ended {}, skipped {}",
            self.tokens.imported,
            self.tokens.updated,
            self.tokens.deleted,
            self.tokens.skipped.len()
        )?;
        writeln!(
            f,
            "groups: {verb} {}, updated {}, skipped {}",
            self.groups.imported,
            self.groups.updated,
            self.groups.skipped.len()
        )?;
        writeln!(
            f,
            "permissions: {verb} {}, merged {}",
            self.permissions.imported, self.permissions.merged
        )?;
        if !self.hashes.is_empty() {
            let hashes: Vec<String> = self
                .hashes
                .iter()
                .map(|(algorithm, count)| format!("{algorithm} {count}"))
                .collect();
            writeln!(f, "password hashes: {}", hashes.join(", "))?;
        }
        let unusable: usize = self
            .hashes
            .iter()
            .filter(|(algorithm, _)| !super::rows::is_verified(algorithm))
            .map(|(_, count)| count)
            .sum();
        if unusable > 0 {
            writeln!(
                f,
                "{unusable} account(s) arrive with an unusable password (none, or a weak \
                 hash, in Django): they cannot log in or ask for a reset link, as in Djoser; \
                 `authd changepassword` gives them one"
            )?;
        }
        for superuser in &self.superusers {
            writeln!(f, "superuser: {} {:?}", superuser.id, superuser.username)?;
        }
        for (kind, skipped) in [
            ("user", &self.users.skipped),
            ("token of user", &self.tokens.skipped),
            ("group", &self.groups.skipped),
        ] {
            for skip in skipped {
                writeln!(f, "skipped {kind} {skip}")?;
            }
        }
        Ok(())
    }
}
