//! `artifacts`: binary results of a session (screenshots), one row each; the bytes live in
//! the blob store under `<org_id>/<session_id>/<id>` (see `blob` and `domain::artifacts`).
//! Never updated; deleted with their session's org.

use sea_orm::entity::prelude::*;

super::stored_enum! {
    /// What an artifact is (`artifacts.kind`).
    pub enum Kind {
        /// A capture of the session's desktop (PNG).
        Screenshot = "screenshot",
    }
}

super::stored_enum! {
    /// Where an artifact's bytes live (`artifacts.storage`): the blob store that wrote them,
    /// by its `BlobStore::name`.
    pub enum Storage {
        /// The `blobs` table of the application database.
        Database = "database",
        /// An S3-compatible bucket (`blob_s3_bucket`, under `blob_s3_prefix`).
        S3 = "s3",
    }
}

/// An artifact row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "artifacts")]
pub struct Model {
    /// UUIDv7 (creation order; the list cursor).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The owning organization.
    pub org_id: Uuid,
    /// The session it came from.
    pub session_id: Uuid,
    /// The command that produced it, if any (a `screenshot` command).
    pub command_id: Option<Uuid>,
    /// What it is.
    pub kind: Kind,
    /// Its media type (RFC 6838), e.g. `image/png`: the `Content-Type` it is served with.
    pub media_type: String,
    /// Size of the content (bytes).
    pub bytes: i64,
    /// Image width (pixels), for images.
    pub width: Option<i32>,
    /// Image height (pixels), for images.
    pub height: Option<i32>,
    /// SHA-256 of the content, lower-case hex (64 characters): the strong `ETag`.
    pub sha256: String,
    /// Which blob store holds the bytes.
    pub storage: Storage,
    /// When it was stored (UTC).
    pub created_at: DateTimeUtc,
}

/// No relations are navigated through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
