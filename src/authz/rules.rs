//! Who may read and change groups and permissions: the Django admin's rules, with the warning
//! its documentation gives ("editing users equals superuser status") made rules of their own.

use std::collections::BTreeSet;

use crate::domain::permissions::{AUTH_APP, PermissionName};

/// Django's four model actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    View,
    Add,
    Change,
    Delete,
}

/// The `auth` models an endpoint or command acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    Permission,
    Group,
    User,
}

/// Who acts, as they are inside the change's transaction (never as a cache remembers them).
#[derive(Debug, Clone)]
pub struct Actor {
    /// `None`: the operator at the command line, who may do anything.
    pub user_id: Option<i64>,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    /// Effective permissions, `app_label.codename`.
    pub permissions: BTreeSet<String>,
}

impl Actor {
    pub fn operator() -> Self {
        Self {
            user_id: None,
            is_active: true,
            is_staff: true,
            is_superuser: true,
            permissions: BTreeSet::new(),
        }
    }

    /// Django's `ModelBackend.has_perm`: an active superuser holds every permission, even one
    /// that does not exist; an inactive user holds none.
    pub fn has_perm(&self, permission: &str) -> bool {
        self.is_active && (self.is_superuser || self.permissions.contains(permission))
    }

    /// The admin's rule: active, and a superuser or staff holding `auth.<action>_<model>`.
    pub fn may(&self, action: Action, model: Model) -> bool {
        let action = match action {
            Action::View => "view",
            Action::Add => "add",
            Action::Change => "change",
            Action::Delete => "delete",
        };
        let model = match model {
            Model::Permission => "permission",
            Model::Group => "group",
            Model::User => "user",
        };
        self.is_active
            && (self.is_superuser
                || (self.is_staff && self.has_perm(&format!("{AUTH_APP}.{action}_{model}"))))
    }

    /// Whether this actor may give `permission` to someone (directly, through a group, or by
    /// adding someone to a group that has it): only what they hold themselves, and never an
    /// `auth.*` permission unless they are a superuser.
    pub fn may_grant(&self, permission: &PermissionName) -> bool {
        self.is_superuser || (!permission.is_auth() && self.has_perm(&permission.to_string()))
    }

    /// Whether this actor may take `permission` away from someone: `auth.*` ones only as a
    /// superuser (revoking the admin's power is managing it).
    pub fn may_revoke(&self, permission: &PermissionName) -> bool {
        self.is_superuser || !permission.is_auth()
    }

    /// Setting `is_staff` or `is_superuser`, and renaming a permission (which changes what
    /// every holder holds), is for superusers only.
    pub fn may_set_roles(&self) -> bool {
        self.is_active && self.is_superuser
    }

    /// Whether this actor may write another user's record (its address recovers the account,
    /// so writing it is taking the account over): a superuser any; staff only an account with
    /// no role of its own and no permission the actor lacks.
    pub fn may_take_over(&self, target: &Holder) -> bool {
        self.is_active
            && (self.is_superuser
                || (self.is_staff
                    && !target.is_staff
                    && !target.is_superuser
                    && target
                        .permissions
                        .iter()
                        .all(|permission| self.has_perm(permission))))
    }
}

/// An account another user would act on, as it is inside the change's transaction.
#[derive(Debug, Clone)]
pub struct Holder {
    pub is_staff: bool,
    pub is_superuser: bool,
    /// Effective permissions, `app_label.codename`.
    pub permissions: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staff(permissions: &[&str]) -> Actor {
        Actor {
            user_id: Some(2),
            is_active: true,
            is_staff: true,
            is_superuser: false,
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    fn name(text: &str) -> PermissionName {
        PermissionName::parse(text).expect("a permission name")
    }

    #[test]
    fn superusers_hold_everything_and_inactive_users_nothing() {
        let mut root = staff(&[]);
        root.is_superuser = true;
        assert!(root.has_perm("no.such_permission"));
        assert!(root.may(Action::Delete, Model::User));
        root.is_active = false;
        assert!(!root.has_perm("no.such_permission"));
        assert!(!root.may(Action::View, Model::Group));
    }

    #[test]
    fn staff_need_the_matching_auth_permission() {
        let clerk = staff(&["auth.view_group", "auth.add_group"]);
        assert!(clerk.may(Action::View, Model::Group));
        assert!(clerk.may(Action::Add, Model::Group));
        assert!(!clerk.may(Action::Change, Model::Group));
        assert!(!clerk.may(Action::View, Model::User));
        let mut not_staff = clerk.clone();
        not_staff.is_staff = false;
        assert!(!not_staff.may(Action::View, Model::Group));
    }

    #[test]
    fn staff_grant_only_what_they_hold_and_never_auth() {
        let clerk = staff(&["auth.change_user", "blog.add_post"]);
        assert!(clerk.may_grant(&name("blog.add_post")));
        assert!(!clerk.may_grant(&name("blog.delete_post")));
        assert!(!clerk.may_grant(&name("auth.change_user")));
        assert!(clerk.may_revoke(&name("blog.delete_post")));
        assert!(!clerk.may_revoke(&name("auth.view_user")));
        assert!(!clerk.may_set_roles());
        assert!(Actor::operator().may_grant(&name("auth.change_user")));
        assert!(Actor::operator().may_set_roles());
    }

    #[test]
    fn staff_take_over_only_accounts_with_less_power() {
        let clerk = staff(&["blog.add_post"]);
        let holder = |is_staff, is_superuser, permissions: &[&str]| Holder {
            is_staff,
            is_superuser,
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        };
        assert!(clerk.may_take_over(&holder(false, false, &[])));
        assert!(clerk.may_take_over(&holder(false, false, &["blog.add_post"])));
        assert!(!clerk.may_take_over(&holder(false, false, &["blog.delete_post"])));
        assert!(!clerk.may_take_over(&holder(true, false, &[])));
        assert!(!clerk.may_take_over(&holder(false, true, &[])));
        let mut root = staff(&[]);
        root.is_superuser = true;
        assert!(root.may_take_over(&holder(true, true, &["blog.delete_post"])));
        let mut not_staff = clerk.clone();
        not_staff.is_staff = false;
        assert!(!not_staff.may_take_over(&holder(false, false, &[])));
    }
}
