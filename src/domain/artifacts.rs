//! Session artifacts: binary results of a session (screenshots), stored once and never
//! changed. The row (`artifacts`) carries what the API shows — media type, size, pixel size,
//! SHA-256 — and which store holds the bytes; the bytes live in the [`BlobStore`] under
//! [`blob_key`] = `<org_id>/<session_id>/<artifact_id>`.
//!
//! Writing ([`store`]) puts the blob first, then the row, so a committed row always has its
//! bytes. The caller may pass its own transaction: with the database store the blob is
//! written through that transaction and commits or rolls back with it; with S3 the object is
//! written at once, and if the transaction then rolls back it stays behind as an orphan
//! nobody references — harmless (no row, so never listed or served) apart from its storage,
//! and deleted with the org. The built-in executor stores a screenshot just before it records
//! the command's result; should that recording fail, the command ends `failed` (`internal`)
//! and the artifact stays listed with it.
//!
//! Reading is tenant-scoped like every session sub-resource: another org's session or
//! artifact is 404. Org deletion removes the org's artifacts and blobs ([`delete_in_org`],
//! then [`delete_blobs`] after commit).

use bytes::Bytes;
use chrono::Utc;
use futures_util::{StreamExt, stream};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    commands,
    page::{Page, PageRequest},
    sessions,
};
use crate::{
    blob::{BlobStore, DatabaseBlobs},
    entity::{
        CommandId, OrgId, SessionId, Tenant,
        artifact::{self, Storage},
    },
    error::{AppError, AppResult, FieldError, ProblemCode},
};

pub use crate::entity::artifact::Kind as ArtifactKind;

/// Longest media type accepted (characters; RFC 6838 §4.2 allows 127 per name part).
pub const MEDIA_TYPE_MAX: usize = 255;

/// S3 deletes run at once when an org goes.
const DELETE_CONCURRENCY: usize = 16;

/// An artifact to store.
#[derive(Clone, Debug)]
pub struct NewArtifact {
    /// The session's organization.
    pub org_id: OrgId,
    /// The session it comes from (must belong to `org_id`).
    pub session_id: SessionId,
    /// The command that produced it (must belong to the session), if any.
    pub command_id: Option<CommandId>,
    /// What it is.
    pub kind: ArtifactKind,
    /// Its media type (`type/subtype`, RFC 6838), e.g. `image/png`: served as its
    /// `Content-Type`.
    pub media_type: String,
    /// Image width (pixels), 1 or more, for images.
    pub width: Option<u32>,
    /// Image height (pixels), 1 or more, for images.
    pub height: Option<u32>,
    /// The content; not empty.
    pub data: Bytes,
}

/// The blob key of an artifact: `<org_id>/<session_id>/<artifact_id>` (every key of an org
/// starts with `<org_id>/`).
pub fn blob_key(org_id: Uuid, session_id: Uuid, artifact_id: Uuid) -> String {
    format!("{org_id}/{session_id}/{artifact_id}")
}

/// The blob key of a stored artifact.
pub fn key_of(a: &artifact::Model) -> String {
    blob_key(a.org_id, a.session_id, a.id)
}

/// Whether `s` is a media type `type/subtype` of RFC 6838 §4.2 restricted-name characters,
/// without parameters: it becomes a response header, so nothing else gets through.
fn valid_media_type(s: &str) -> bool {
    let name = |p: &str| {
        !p.is_empty()
            && p.len() <= 127
            && p.as_bytes()[0].is_ascii_alphanumeric()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    s.len() <= MEDIA_TYPE_MAX && s.split_once('/').is_some_and(|(t, st)| name(t) && name(st))
}

/// Checks a [`NewArtifact`]'s own fields. Errors: 422 naming `media_type`, `width`,
/// `height` or `data`.
pub fn validate(new: &NewArtifact) -> AppResult<()> {
    let mut errors = Vec::new();
    if !valid_media_type(&new.media_type) {
        errors.push(FieldError::new(
            "media_type",
            "must be a media type `type/subtype` (RFC 6838) without parameters",
        ));
    }
    for (field, v) in [("width", new.width), ("height", new.height)] {
        if v.is_some_and(|v| v == 0 || i32::try_from(v).is_err()) {
            errors.push(FieldError::new(
                field,
                format!("must be between 1 and {} pixels", i32::MAX),
            ));
        }
    }
    if new.data.is_empty() {
        errors.push(FieldError::new("data", "must not be empty"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(errors))
    }
}

/// Stores an artifact: checks it, checks that the session (and the command, when given)
/// belongs to the org, writes the blob under [`blob_key`], then the row; returns the row.
/// `db` may be the caller's transaction (see the module docs for what a rollback leaves).
/// Errors: 422 as [`validate`]; 404 `session` / `command`; 500 when the blob store fails.
#[tracing::instrument(name = "artifacts.store", skip_all, fields(org_id = %new.org_id, session_id = %new.session_id, bytes = new.data.len()))]
pub async fn store(
    db: &impl ConnectionTrait,
    blobs: &dyn BlobStore,
    new: NewArtifact,
) -> AppResult<artifact::Model> {
    validate(&new)?;
    sessions::get(db, new.org_id, new.session_id).await?;
    if let Some(c) = new.command_id {
        commands::get(db, new.org_id, new.session_id, c).await?;
    }
    let storage = Storage::parse(blobs.name()).ok_or_else(|| {
        AppError::Internal(anyhow::anyhow!("unknown blob store `{}`", blobs.name()))
    })?;
    let id = Uuid::now_v7();
    let key = blob_key(new.org_id.0, new.session_id.0, id);
    let sha256 = format!("{:x}", Sha256::digest(&new.data));
    let bytes = new.data.len() as i64;
    if blobs.in_database() {
        DatabaseBlobs::put_in(db, &key, &new.data).await?;
    } else {
        blobs
            .put(&key, new.data)
            .await
            .map_err(|e| AppError::Internal(e.context(format!("storing blob `{key}`"))))?;
    }
    let pixels = |v: Option<u32>| v.and_then(|v| i32::try_from(v).ok());
    let row = artifact::ActiveModel {
        id: Set(id),
        org_id: Set(new.org_id.0),
        session_id: Set(new.session_id.0),
        command_id: Set(new.command_id.map(|c| c.0)),
        kind: Set(new.kind),
        media_type: Set(new.media_type),
        bytes: Set(bytes),
        width: Set(pixels(new.width)),
        height: Set(pixels(new.height)),
        sha256: Set(sha256),
        storage: Set(storage),
        created_at: Set(Utc::now()),
    };
    Ok(row.insert(db).await?)
}

/// A session's artifacts, oldest first, cursor-paginated. Errors: 404 `session` (also for a
/// session of another org).
pub async fn list(
    db: &impl ConnectionTrait,
    org_id: OrgId,
    session_id: SessionId,
    page: PageRequest,
) -> AppResult<Page<artifact::Model>> {
    sessions::get(db, org_id, session_id).await?;
    let mut q =
        artifact::Entity::find_in(org_id).filter(artifact::Column::SessionId.eq(session_id));
    if let Some(after) = page.after {
        q = q.filter(artifact::Column::Id.gt(after));
    }
    let rows = q
        .order_by_asc(artifact::Column::Id)
        .limit(page.fetch())
        .all(db)
        .await?;
    Ok(page.finish(rows, |a| a.id))
}

/// One artifact's row. Errors: 404 `artifact` (unknown, of another session, or of another
/// org).
pub async fn get_meta(
    db: &impl ConnectionTrait,
    org_id: OrgId,
    session_id: SessionId,
    artifact_id: Uuid,
) -> AppResult<artifact::Model> {
    artifact::Entity::find_in_by_id(org_id, artifact_id)
        .filter(artifact::Column::SessionId.eq(session_id))
        .one(db)
        .await?
        .ok_or(AppError::NotFound("artifact"))
}

/// One artifact's row and bytes. Errors: 404 as [`get_meta`]; 503 `blob_store_unavailable`
/// when the store fails; 500 when the bytes are missing, or were written by another store
/// than the one in force (the key and the cause are logged, never sent).
#[tracing::instrument(name = "artifacts.fetch", skip_all, fields(org_id = %org_id, session_id = %session_id, artifact_id = %artifact_id))]
pub async fn fetch(
    db: &impl ConnectionTrait,
    blobs: &dyn BlobStore,
    org_id: OrgId,
    session_id: SessionId,
    artifact_id: Uuid,
) -> AppResult<(artifact::Model, Bytes)> {
    let a = get_meta(db, org_id, session_id, artifact_id).await?;
    let key = key_of(&a);
    if a.storage.as_str() != blobs.name() {
        return Err(AppError::Internal(anyhow::anyhow!(
            "artifact blob `{key}` was stored in `{}` but the blob store in force is `{}`",
            a.storage,
            blobs.name()
        )));
    }
    match blobs.get(&key).await {
        Ok(Some(data)) => Ok((a, data)),
        Ok(None) => Err(AppError::Internal(anyhow::anyhow!(
            "artifact blob `{key}` is missing from the `{}` blob store",
            blobs.name()
        ))),
        Err(e) => {
            tracing::error!(key = %key, error = %format!("{e:#}"), "blob store read failed");
            Err(AppError::Unavailable {
                code: ProblemCode::BlobStoreUnavailable,
                detail: "the artifact store could not be read; retry later".into(),
            })
        }
    }
}

/// Deletes the org's artifact rows and, in the same transaction `tx`, its database blobs
/// (every `blobs` key under `<org_id>/`, orphans included). Returns the keys of blobs kept
/// elsewhere (S3), for [`delete_blobs`] once `tx` has committed. Errors: database errors.
pub async fn delete_in_org(tx: &impl ConnectionTrait, org_id: OrgId) -> AppResult<Vec<String>> {
    let elsewhere: Vec<(Uuid, Uuid)> = artifact::Entity::find_in(org_id)
        .select_only()
        .column(artifact::Column::SessionId)
        .column(artifact::Column::Id)
        .filter(artifact::Column::Storage.ne(Storage::Database))
        .into_tuple()
        .all(tx)
        .await?;
    DatabaseBlobs::delete_prefix_in(tx, &format!("{org_id}/")).await?;
    artifact::Entity::delete_in(org_id).exec(tx).await?;
    Ok(elsewhere
        .into_iter()
        .map(|(session_id, id)| blob_key(org_id.0, session_id, id))
        .collect())
}

/// Best effort, after the rows are gone: deletes `keys` from `blobs`, a few at a time. A
/// failure is logged (with the key) and the rest go on: the rows are already deleted, so a
/// blob left behind is never served, only stored. When the store in force keeps its blobs
/// in the database (the S3 keys were written under another setting), they are logged as left
/// behind.
pub async fn delete_blobs(blobs: &dyn BlobStore, org_id: OrgId, keys: Vec<String>) {
    if keys.is_empty() {
        return;
    }
    if blobs.in_database() {
        tracing::warn!(org_id = %org_id, count = keys.len(), "deleted org's S3 artifact blobs were left behind: the blob store in force is the database");
        return;
    }
    let total = keys.len();
    let failed = stream::iter(keys)
        .map(|key| async move {
            let r = blobs.delete(&key).await;
            if let Err(e) = &r {
                tracing::warn!(org_id = %org_id, key = %key, error = %format!("{e:#}"), "could not delete an artifact blob of a deleted org");
            }
            r.is_err()
        })
        .buffer_unordered(DELETE_CONCURRENCY)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await;
    tracing::info!(org_id = %org_id, deleted = total - failed, failed, "deleted org's artifact blobs");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(media_type: &str, width: Option<u32>, data: &'static [u8]) -> NewArtifact {
        NewArtifact {
            org_id: OrgId(Uuid::now_v7()),
            session_id: SessionId(Uuid::now_v7()),
            command_id: None,
            kind: ArtifactKind::Screenshot,
            media_type: media_type.into(),
            width,
            height: Some(1),
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn media_types_are_plain_type_slash_subtype() {
        for ok in ["image/png", "image/svg+xml", "application/vnd.a-b.c"] {
            assert!(valid_media_type(ok), "{ok}");
        }
        for bad in [
            "",
            "png",
            "image/",
            "/png",
            "image/png; charset=x",
            "image/png\r\nX-Evil: 1",
            "image/p ng",
            "ima ge/png",
            "a/b/c",
        ] {
            assert!(!valid_media_type(bad), "{bad:?}");
        }
    }

    #[test]
    fn validation_names_each_field() {
        assert!(validate(&new("image/png", Some(800), b"x")).is_ok());
        let AppError::Validation(errs) = validate(&new("text", Some(0), b"")).unwrap_err() else {
            panic!("validation expected")
        };
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["media_type", "width", "data"]);
        let AppError::Validation(errs) =
            validate(&new("image/png", Some(u32::MAX), b"x")).unwrap_err()
        else {
            panic!("validation expected")
        };
        assert_eq!(errs[0].field, "width");
    }

    #[test]
    fn keys_start_with_the_org() {
        let (o, s, a) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(blob_key(o, s, a), format!("{o}/{s}/{a}"));
    }
}
