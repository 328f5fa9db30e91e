//! `roles`: custom roles of an org. Their permissions are casbin `p` rules
//! (`role:<name>, org:<id>, object, action`), the one source of truth (see `auth::rbac`).

use sea_orm::entity::prelude::*;

/// A custom role row; `(org_id, name)` is unique.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "roles")]
pub struct Model {
    /// UUIDv7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The organization the role belongs to.
    pub org_id: Uuid,
    /// Name, unique in the org, never a built-in role's name.
    pub name: String,
    /// What the role is for.
    pub description: String,
    /// Bumped on every change (the `ETag`).
    pub version: i64,
    /// The user who created it.
    pub created_by: Option<Uuid>,
    /// Creation time (UTC).
    pub created_at: DateTimeUtc,
    /// Last change (UTC).
    pub updated_at: DateTimeUtc,
}

/// No relations are navigated through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
