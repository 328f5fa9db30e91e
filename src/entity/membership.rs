//! `memberships`: a user's role in an org. Kept in step with the casbin `g` rules in the
//! same transaction (see `auth::rbac`).

use sea_orm::entity::prelude::*;

/// A membership row; primary key `(org_id, user_id)`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "memberships")]
pub struct Model {
    /// The organization.
    #[sea_orm(primary_key, auto_increment = false)]
    pub org_id: Uuid,
    /// The member.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// Role name (`owner`, `admin`, `operator`, `viewer`).
    pub role: String,
    /// When the user joined (UTC).
    pub created_at: DateTimeUtc,
    /// When the role last changed (UTC).
    pub updated_at: DateTimeUtc,
}

/// Memberships belong to a user (joined when listing members).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The member's user row.
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id"
    )]
    User,
    /// The organization row.
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id"
    )]
    Organization,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl Related<super::organization::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organization.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
