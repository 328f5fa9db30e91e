//! SeaORM entities: one file per table, no logic. Nothing here crosses the API boundary;
//! `api/` maps these into its own response types.
//!
//! Also here, because every layer above reads rows through them:
//! * stored enums ([`stored_enum!`]): a status or kind column is a Rust enum with one name
//!   per variant, written once; an unknown stored value is a database error where it is
//!   read, never a silent default;
//! * typed ids ([`ids`]) for the ids that travel together (org, session, command), so they
//!   cannot be swapped;
//! * scoped finders ([`Tenant`]): rows of tenant tables are found, updated and deleted
//!   within one org (`session::Entity::find_in(org)`), after svix's `secure_find`.

pub mod agent;
pub mod api_key;
pub mod artifact;
pub mod audit_event;
pub mod auth_ticket;
pub mod blob;
pub mod casbin_rule;
pub mod command;
pub mod idempotency_key;
pub mod identity;
pub mod ids;
pub mod invitation;
pub mod job;
pub mod login_failure;
pub mod membership;
pub mod organization;
pub mod refresh_token;
pub mod role;
pub mod session;
pub mod session_event;
pub mod user;

use sea_orm::{ColumnTrait, DeleteMany, EntityTrait, QueryFilter, Select, UpdateMany};
use uuid::Uuid;

pub use ids::{CommandId, OrgId, SessionId};

/// Declares a stored enum: a text column whose values are the given names. Generates the
/// SeaORM `ActiveEnum` (so the entity's field is the enum and filters take it), `ALL`,
/// `as_str` (the one format) and `parse` (the one parse), and `Display`.
macro_rules! stored_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash,
            sea_orm::EnumIter, sea_orm::DeriveActiveEnum,
        )]
        #[sea_orm(rs_type = "String", db_type = "Text")]
        pub enum $name {
            $( $(#[$vmeta])* #[sea_orm(string_value = $value)] $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored (and wire) name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $value,)+
                }
            }

            /// Parses a stored name; `None` for anything else.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use stored_enum;

/// A tenant table: every row carries `org_id`. Its rows are found, updated and deleted
/// through these scoped constructors, so the tenant filter is part of how a row is reached,
/// not a condition each query must remember (ARCHITECTURE §5, tenant isolation).
pub trait Tenant: EntityTrait {
    /// The `org_id` column.
    const ORG_ID: Self::Column;

    /// Rows of `org_id`.
    fn find_in(org_id: impl Into<Uuid>) -> Select<Self> {
        Self::find().filter(Self::ORG_ID.eq(org_id.into()))
    }

    /// The row with primary key `id`, if it belongs to `org_id`.
    fn find_in_by_id<T>(org_id: impl Into<Uuid>, id: T) -> Select<Self>
    where
        T: Into<<Self::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType>,
    {
        Self::find_by_id(id).filter(Self::ORG_ID.eq(org_id.into()))
    }

    /// An update of rows of `org_id` (add the row filters and the columns).
    fn update_in(org_id: impl Into<Uuid>) -> UpdateMany<Self> {
        Self::update_many().filter(Self::ORG_ID.eq(org_id.into()))
    }

    /// A delete of rows of `org_id` (add the row filters).
    fn delete_in(org_id: impl Into<Uuid>) -> DeleteMany<Self> {
        Self::delete_many().filter(Self::ORG_ID.eq(org_id.into()))
    }
}

macro_rules! tenant_tables {
    ($($table:ident),+) => {
        $(impl Tenant for $table::Entity {
            const ORG_ID: Self::Column = $table::Column::OrgId;
        })+
    };
}
tenant_tables!(
    agent,
    api_key,
    artifact,
    command,
    invitation,
    job,
    membership,
    role,
    session,
    session_event
);
