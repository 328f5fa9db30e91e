//! `idempotency_keys`: `(principal, key)` → request fingerprint and the stored response.

use sea_orm::entity::prelude::*;

/// A stored idempotent request.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    /// Who sent it: `user:<id>`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub principal: String,
    /// The `Idempotency-Key` header value.
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// SHA-256 (hex) of method, path and body.
    pub fingerprint: String,
    /// `in_flight` or `completed`.
    pub status: String,
    /// The stored response's status code.
    pub response_status: Option<i32>,
    /// The stored response's replayed headers (`{name: value}`).
    pub response_headers: Option<Json>,
    /// The stored response body.
    pub response_body: Option<Vec<u8>>,
    /// An `in_flight` record older than this (UTC) was abandoned (crash) and may be taken over.
    pub locked_until: DateTimeUtc,
    /// What the first run was authorized for, `[{"org_id": …, "permission": …}]`: a replay is
    /// authorized again for the same before the stored response is sent.
    pub authorized: Option<Json>,
    /// First seen (UTC).
    pub created_at: DateTimeUtc,
    /// Deleted by the cleanup after this (UTC): 24 h after creation by default.
    pub expires_at: DateTimeUtc,
}

/// No relations are navigated through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
