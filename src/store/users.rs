//! Queries on `auth_user`.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, ExprTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, sea_query::Expr,
};

use super::entity::auth_user::{ActiveModel, Column, Entity, Model};

/// An account as the rest of the service sees it: everything on its row but the password
/// hash, which only a login and a `current_password` check read ([`Credentials`]). Built from
/// the row here and nowhere else, so that what the guard caches never holds a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: i64,
    pub username: String,
    pub username_canonical: String,
    pub email: String,
    pub email_canonical: Option<String>,
    /// Bumped by every password change: what a credential-dependent write re-checks.
    pub password_version: i64,
    pub is_active: bool,
    /// Inactive and waiting for activation by email, as opposed to deactivated by an operator.
    pub activation_pending: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub date_joined: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
}

impl From<Model> for Principal {
    fn from(row: Model) -> Self {
        Self {
            id: row.id,
            username: row.username,
            username_canonical: row.username_canonical,
            email: row.email,
            email_canonical: row.email_canonical,
            password_version: row.password_version,
            is_active: row.is_active,
            activation_pending: row.activation_pending,
            is_staff: row.is_staff,
            is_superuser: row.is_superuser,
            date_joined: row.date_joined,
            last_login: row.last_login,
        }
    }
}

/// An account with its password hash: what a password check needs, and nothing keeps.
#[derive(Clone)]
pub struct Credentials {
    pub principal: Principal,
    pub password_hash: String,
}

impl From<Model> for Credentials {
    fn from(mut row: Model) -> Self {
        let password_hash = std::mem::take(&mut row.password);
        Self {
            principal: row.into(),
            password_hash,
        }
    }
}

/// The password hash stays out of logs.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

/// Which unique value of an account a write collided with: the losing side of a race that the
/// checks before the write could not see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Username,
    Email,
}

/// The database names the index: SQLite "UNIQUE constraint failed: auth_user.username_canonical",
/// PostgreSQL the constraint `auth_user_username_canonical_key`.
impl super::Unique for Taken {
    fn of(violated: &str) -> Option<Self> {
        if violated.contains("username_canonical") {
            Some(Taken::Username)
        } else if violated.contains("email_canonical") {
            Some(Taken::Email)
        } else {
            None
        }
    }
}

/// What a new account is made of; hashing and validation happened before.
pub struct NewUser {
    pub username: String,
    pub username_canonical: String,
    pub email: String,
    pub email_canonical: Option<String>,
    pub password_hash: String,
    pub is_active: bool,
    pub activation_pending: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
}

/// The password hash stays out of logs.
impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("is_active", &self.is_active)
            .field("is_staff", &self.is_staff)
            .finish_non_exhaustive()
    }
}

pub async fn insert(db: &impl ConnectionTrait, new: NewUser) -> Result<Principal, DbErr> {
    ActiveModel {
        username: Set(new.username),
        username_canonical: Set(new.username_canonical),
        email: Set(new.email),
        email_canonical: Set(new.email_canonical),
        password: Set(new.password_hash),
        password_version: Set(0),
        is_active: Set(new.is_active),
        activation_pending: Set(new.activation_pending),
        is_staff: Set(new.is_staff),
        is_superuser: Set(new.is_superuser),
        date_joined: Set(Utc::now()),
        last_login: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .map(Principal::from)
}

pub async fn find_by_id(db: &impl ConnectionTrait, id: i64) -> Result<Option<Principal>, DbErr> {
    Ok(Entity::find_by_id(id).one(db).await?.map(Principal::from))
}

/// The account and its hash, for a login by username.
pub async fn find_by_username(
    db: &impl ConnectionTrait,
    canonical: &str,
) -> Result<Option<Credentials>, DbErr> {
    let found = Entity::find()
        .filter(Column::UsernameCanonical.eq(canonical))
        .one(db)
        .await?;
    Ok(found.map(Credentials::from))
}

/// The account and its hash, for a login by email.
pub async fn find_by_email(
    db: &impl ConnectionTrait,
    canonical: &str,
) -> Result<Option<Credentials>, DbErr> {
    let found = Entity::find()
        .filter(Column::EmailCanonical.eq(canonical))
        .one(db)
        .await?;
    Ok(found.map(Credentials::from))
}

/// The account as it is now and its hash, for a `current_password` check.
pub async fn credentials(db: &impl ConnectionTrait, id: i64) -> Result<Option<Credentials>, DbErr> {
    Ok(Entity::find_by_id(id).one(db).await?.map(Credentials::from))
}

pub async fn username_taken(db: &impl ConnectionTrait, canonical: &str) -> Result<bool, DbErr> {
    Ok(Entity::find()
        .filter(Column::UsernameCanonical.eq(canonical))
        .count(db)
        .await?
        > 0)
}

pub async fn email_taken(
    db: &impl ConnectionTrait,
    canonical: &str,
    except_user: Option<i64>,
) -> Result<bool, DbErr> {
    let mut query = Entity::find().filter(Column::EmailCanonical.eq(canonical));
    if let Some(id) = except_user {
        query = query.filter(Column::Id.ne(id));
    }
    Ok(query.count(db).await? > 0)
}

pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<Principal>, DbErr> {
    let rows = Entity::find().order_by_asc(Column::Id).all(db).await?;
    Ok(rows.into_iter().map(Principal::from).collect())
}

pub async fn set_email(
    db: &impl ConnectionTrait,
    id: i64,
    email: &str,
    email_canonical: Option<String>,
) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::Email, Expr::value(email))
        .col_expr(Column::EmailCanonical, Expr::value(email_canonical))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}

/// The user's row, locked until the transaction ends, so that what a write depends on cannot
/// change under it (PostgreSQL: `FOR UPDATE`; SQLite: the write transaction already holds the
/// database's lock).
pub async fn lock(db: &impl ConnectionTrait, id: i64) -> Result<Option<Principal>, DbErr> {
    let found = Entity::find_by_id(id).lock_exclusive().one(db).await?;
    Ok(found.map(Principal::from))
}

/// A new password: bumps the version that credential-dependent writes check.
pub async fn set_password(db: &impl ConnectionTrait, id: i64, hash: &str) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::Password, Expr::value(hash))
        .col_expr(
            Column::PasswordVersion,
            Expr::col(Column::PasswordVersion).add(1),
        )
        .filter(Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}

/// The same password hashed at today's cost, only if the stored hash is still the one that
/// was verified; the version stays, so a rehash never fails a concurrent login or change.
pub async fn rehash(
    db: &impl ConnectionTrait,
    id: i64,
    verified: &str,
    rehashed: &str,
) -> Result<bool, DbErr> {
    let result = Entity::update_many()
        .col_expr(Column::Password, Expr::value(rehashed))
        .filter(Column::Id.eq(id))
        .filter(Column::Password.eq(verified))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

pub async fn set_username(
    db: &impl ConnectionTrait,
    id: i64,
    username: &str,
    canonical: &str,
) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::Username, Expr::value(username))
        .col_expr(Column::UsernameCanonical, Expr::value(canonical))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}

pub async fn touch_last_login(db: &impl ConnectionTrait, id: i64) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::LastLogin, Expr::value(Utc::now()))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}

/// Up to `limit` password hashes in another format than authd's own Argon2id, unusable ones
/// (`!…`) left out: the hashes accounts imported from Django keep until they log in. A random
/// sample of them: the first rows would be the oldest accounts, whose hashes (Django raises
/// its cost only at a login) are the most likely to be of an older cost than most.
pub async fn legacy_hashes(db: &impl ConnectionTrait, limit: u64) -> Result<Vec<String>, DbErr> {
    Entity::find()
        .select_only()
        .column(Column::Password)
        .filter(Column::Password.not_like("$argon2id$%"))
        .filter(Column::Password.not_like("!%"))
        // SQLite and PostgreSQL both spell it so.
        .order_by(Expr::cust("RANDOM()"), sea_orm::Order::Asc)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await
}

pub async fn delete(db: &impl ConnectionTrait, id: i64) -> Result<(), DbErr> {
    Entity::delete_by_id(id).exec(db).await.map(|_| ())
}

/// Makes `email_canonical` match the LOGIN_FIELD setting: filled for every account while
/// email login is on, NULL everywhere otherwise. Returns the clashing address, if two accounts
/// share one, so start-up can refuse with a message instead of failing a unique index.
pub async fn sync_email_login(
    db: &impl ConnectionTrait,
    email_login: bool,
    canonical: impl Fn(&str) -> Option<String>,
) -> Result<Result<(), String>, DbErr> {
    if !email_login {
        Entity::update_many()
            .col_expr(Column::EmailCanonical, Expr::value(Option::<String>::None))
            .filter(Column::EmailCanonical.is_not_null())
            .exec(db)
            .await?;
        return Ok(Ok(()));
    }
    let missing = Entity::find()
        .filter(Column::EmailCanonical.is_null())
        .filter(Column::Email.ne(""))
        .all(db)
        .await?;
    for user in missing {
        let Some(value) = canonical(&user.email) else {
            continue;
        };
        if email_taken(db, &value, Some(user.id)).await? {
            return Ok(Err(user.email));
        }
        Entity::update_many()
            .col_expr(Column::EmailCanonical, Expr::value(value))
            .filter(Column::Id.eq(user.id))
            .exec(db)
            .await?;
    }
    Ok(Ok(()))
}

/// Which accounts an emailed request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holders {
    /// Active accounts (password and username resets).
    Active,
    /// Accounts waiting for activation (resend_activation), not ones an operator deactivated.
    AwaitingActivation,
}

/// Accounts with this address, as typed or with its domain lowercased (how registration stores
/// it): what reset and resend look up.
pub async fn find_by_address(
    db: &impl ConnectionTrait,
    addresses: &[String],
    holders: Holders,
) -> Result<Vec<Principal>, DbErr> {
    // Djoser's `get_user` wants `has_usable_password()`: an account without a password (or
    // whose weak Django hash `authd import-django` made unusable) gets no link.
    let query = Entity::find()
        .filter(Column::Email.is_in(addresses.iter().cloned()))
        .filter(Column::Email.ne(""))
        .filter(Column::Password.not_like("!%"));
    let query = match holders {
        Holders::Active => query.filter(Column::IsActive.eq(true)),
        Holders::AwaitingActivation => query
            .filter(Column::IsActive.eq(false))
            .filter(Column::ActivationPending.eq(true)),
    };
    let rows = query.order_by_asc(Column::Id).all(db).await?;
    Ok(rows.into_iter().map(Principal::from).collect())
}

/// Django's `is_active`, and whether an inactive account waits for activation by email.
pub async fn set_activation(
    db: &impl ConnectionTrait,
    id: i64,
    is_active: bool,
    activation_pending: bool,
) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::IsActive, Expr::value(is_active))
        .col_expr(Column::ActivationPending, Expr::value(activation_pending))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_users_debug_output_hides_the_hash() {
        let new = NewUser {
            username: "alice".into(),
            username_canonical: "alice".into(),
            email: String::new(),
            email_canonical: None,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            is_active: true,
            activation_pending: false,
            is_staff: false,
            is_superuser: false,
        };
        assert!(!format!("{new:?}").contains("argon2"));
    }

    #[test]
    fn credentials_debug_output_hides_the_hash() {
        let row = Model {
            id: 7,
            username: "alice".into(),
            username_canonical: "alice".into(),
            email: String::new(),
            email_canonical: None,
            password: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            password_version: 0,
            is_active: true,
            activation_pending: false,
            is_staff: false,
            is_superuser: false,
            date_joined: Utc::now(),
            last_login: None,
        };
        let credentials = Credentials::from(row);
        assert_eq!(credentials.principal.username, "alice");
        assert!(!format!("{credentials:?}").contains("argon2"));
    }
}
