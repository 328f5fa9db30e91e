//! `casbin_rule`: casbin policies (`p`) and role grants (`g`), read and written by our
//! SeaORM adapter in `auth::rbac`.

use sea_orm::entity::prelude::*;

/// One casbin rule; unused `vN` are empty strings.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "casbin_rule")]
pub struct Model {
    /// Surrogate key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `p` or `g`.
    pub ptype: String,
    /// Rule field 0.
    pub v0: String,
    /// Rule field 1.
    pub v1: String,
    /// Rule field 2.
    pub v2: String,
    /// Rule field 3.
    pub v3: String,
    /// Rule field 4.
    pub v4: String,
    /// Rule field 5.
    pub v5: String,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
