//! `login_failures`: failed-login counters for throttling, per account and per IP.

use sea_orm::entity::prelude::*;

/// A counter row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_failures")]
pub struct Model {
    /// `account:<hex sha256 of the normalised email>` or `ip:<address>`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// Consecutive failures inside the window.
    pub failures: i32,
    /// Last failure (UTC).
    pub last_failure_at: DateTimeUtc,
    /// No login attempt is checked before this time (UTC).
    pub locked_until: Option<DateTimeUtc>,
}

/// No relations are navigated through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
