//! Persistence: the `contact` table, its one migration, and the queries the handlers need.

use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, Database, DatabaseConnection, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, Set,
};
use sea_orm_migration::MigratorTrait;

use crate::contact::ContactChange;

pub mod contact {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "contact")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        /// authd's user id (introspection's `sub`).
        pub owner: i64,
        pub first_name: String,
        pub last_name: String,
        pub email: String,
        pub phone: String,
        pub birthday: Option<Date>,
        pub notes: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub use contact::Model as Contact;

mod migrations {
    use sea_orm_migration::{prelude::*, schema::*};

    pub struct Migrator;

    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            vec![Box::new(CreateContact)]
        }
    }

    struct CreateContact;

    impl MigrationName for CreateContact {
        fn name(&self) -> &str {
            "m20261207_000001_create_contact"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for CreateContact {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(Contact::Table)
                        .if_not_exists()
                        .col(big_pk_auto(Contact::Id))
                        .col(big_integer(Contact::Owner))
                        .col(string_len(Contact::FirstName, 100))
                        .col(string_len(Contact::LastName, 100))
                        .col(string_len(Contact::Email, 254))
                        .col(string_len(Contact::Phone, 32))
                        .col(date_null(Contact::Birthday))
                        .col(text(Contact::Notes))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name("contact_owner_idx")
                        .table(Contact::Table)
                        .col(Contact::Owner)
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .drop_table(Table::drop().table(Contact::Table).to_owned())
                .await
        }
    }

    #[derive(DeriveIden)]
    enum Contact {
        Table,
        Id,
        Owner,
        FirstName,
        LastName,
        Email,
        Phone,
        Birthday,
        Notes,
    }
}

/// Connects and brings the schema up to date.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let db = Database::connect(url).await?;
    migrations::Migrator::up(&db, None).await?;
    Ok(db)
}

/// Whose contacts a query may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Everyone,
    OwnedBy(i64),
}

impl Scope {
    fn condition(self) -> Condition {
        match self {
            Scope::Everyone => Condition::all(),
            Scope::OwnedBy(owner) => Condition::all().add(contact::Column::Owner.eq(owner)),
        }
    }
}

/// Contacts in `scope` whose first name, last name or email contains every word of `search`
/// (DRF's `SearchFilter`), by name.
pub async fn list(
    db: &DatabaseConnection,
    scope: Scope,
    search: &str,
) -> Result<Vec<Contact>, DbErr> {
    let mut condition = scope.condition();
    for term in search.split_whitespace() {
        condition = condition.add(
            Condition::any()
                .add(containing(contact::Column::FirstName, term))
                .add(containing(contact::Column::LastName, term))
                .add(containing(contact::Column::Email, term)),
        );
    }
    contact::Entity::find()
        .filter(condition)
        .order_by_asc(contact::Column::LastName)
        .order_by_asc(contact::Column::FirstName)
        .order_by_asc(contact::Column::Id)
        .all(db)
        .await
}

/// `column LIKE '%term%'` with `%` and `_` in the term taken literally (sea-orm's `contains`
/// leaves them wildcards). Case-insensitive for ASCII, as SQLite's `LIKE` is.
fn containing(column: contact::Column, term: &str) -> Expr {
    let literal = term
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    Expr::col((contact::Entity, column)).like(LikeExpr::new(format!("%{literal}%")).escape('\\'))
}

/// Contacts in `scope` that have a birthday.
pub async fn with_birthdays(db: &DatabaseConnection, scope: Scope) -> Result<Vec<Contact>, DbErr> {
    contact::Entity::find()
        .filter(scope.condition())
        .filter(contact::Column::Birthday.is_not_null())
        .all(db)
        .await
}

pub async fn find(db: &DatabaseConnection, id: i64) -> Result<Option<Contact>, DbErr> {
    contact::Entity::find_by_id(id).one(db).await
}

/// A new contact from a complete, validated change.
pub async fn insert(
    db: &DatabaseConnection,
    owner: i64,
    change: ContactChange,
) -> Result<Contact, DbErr> {
    let mut row = contact::ActiveModel {
        owner: Set(owner),
        first_name: Set(String::new()),
        last_name: Set(String::new()),
        email: Set(String::new()),
        phone: Set(String::new()),
        birthday: Set(None),
        notes: Set(String::new()),
        ..Default::default()
    };
    apply(&mut row, change);
    row.insert(db).await
}

/// `contact` with the fields `change` names replaced.
pub async fn update(
    db: &DatabaseConnection,
    contact: Contact,
    change: ContactChange,
) -> Result<Contact, DbErr> {
    let mut row = contact.into_active_model();
    apply(&mut row, change);
    row.update(db).await
}

pub async fn delete(db: &DatabaseConnection, contact: Contact) -> Result<(), DbErr> {
    contact::Entity::delete_by_id(contact.id).exec(db).await?;
    Ok(())
}

fn apply(row: &mut contact::ActiveModel, change: ContactChange) {
    if let Some(value) = change.first_name {
        row.first_name = Set(value);
    }
    if let Some(value) = change.last_name {
        row.last_name = Set(value);
    }
    if let Some(value) = change.email {
        row.email = Set(value);
    }
    if let Some(value) = change.phone {
        row.phone = Set(value);
    }
    if let Some(value) = change.birthday {
        row.birthday = Set(value);
    }
    if let Some(value) = change.notes {
        row.notes = Set(value);
    }
}
