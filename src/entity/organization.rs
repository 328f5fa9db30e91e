//! `organizations`: the tenant. Every tenant row elsewhere carries its `org_id`.

use sea_orm::entity::prelude::*;

/// An organization row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "organizations")]
pub struct Model {
    /// UUIDv7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Display name, 1–200 characters.
    pub name: String,
    /// Optimistic-concurrency version, starts at 1, +1 on every update (ETag / If-Match).
    pub version: i64,
    /// Creation time (UTC).
    pub created_at: DateTimeUtc,
    /// Last update time (UTC).
    pub updated_at: DateTimeUtc,
    /// The user who created it (counted against `max_orgs_per_user`); `None` for orgs made
    /// before this was recorded.
    pub created_by: Option<Uuid>,
}

/// No relations are navigated through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
