//! Blob stores: where the bytes of artifacts (screenshots) live, behind one trait,
//! [`BlobStore`], so the rest of the server never knows which.
//!
//! * [`DatabaseBlobs`] (`blob_store = "database"`, the default): the `blobs` table of the
//!   application database, on SQLite and PostgreSQL alike. Every node sees every blob; nothing
//!   else to run.
//! * [`S3Blobs`] (`blob_store = "s3"`): an S3-compatible bucket through the `object_store`
//!   crate (AWS S3, MinIO, moto…), configured by the `blob_s3_*` keys.
//!
//! Keys are chosen by the writer (`<org_id>/<session_id>/<artifact_id>` for artifacts, see
//! `domain::artifacts`); a store only puts, gets and deletes bytes by key. Here: the stores
//! and [`from_config`]; not here: which key an artifact has, or who may read it. A leaf below
//! the domain: it names only `config` and `entity`.

mod database;
mod s3;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use sea_orm::DatabaseConnection;

pub use database::DatabaseBlobs;
pub use s3::S3Blobs;

use crate::config::{BlobStoreKind, Config};

/// Bytes by key. Implementations are shared by every request and job of a node (`Send +
/// Sync`, behind an `Arc`).
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// The store's name, as recorded in `artifacts.storage`: `database` or `s3`.
    fn name(&self) -> &'static str;

    /// Whether the bytes live in the application database. A writer that holds a database
    /// transaction then writes them through it with [`DatabaseBlobs::put_in`] instead of
    /// [`BlobStore::put`]: the blob commits (or rolls back) with the rows that name it, and
    /// on SQLite a second connection would wait on the transaction's own write lock.
    fn in_database(&self) -> bool {
        false
    }

    /// Stores `data` under `key`, replacing what was there. Errors: the store failed (the
    /// database, or the bucket: unreachable, refused, …).
    async fn put(&self, key: &str, data: Bytes) -> anyhow::Result<()>;

    /// The bytes under `key`; `None` when there are none. Errors: the store failed.
    async fn get(&self, key: &str) -> anyhow::Result<Option<Bytes>>;

    /// Removes `key`; a missing key is not an error. Errors: the store failed.
    async fn delete(&self, key: &str) -> anyhow::Result<()>;
}

/// The blob store `config.blob_store` names: [`DatabaseBlobs`] on `db`, or [`S3Blobs`] from
/// the `blob_s3_*` keys (built, not contacted: an unreachable bucket shows on first use).
/// Errors: the S3 client cannot be built from the settings.
pub async fn from_config(
    config: &Config,
    db: &DatabaseConnection,
) -> anyhow::Result<Arc<dyn BlobStore>> {
    Ok(match config.blob_store {
        BlobStoreKind::Database => Arc::new(DatabaseBlobs::new(db.clone())),
        BlobStoreKind::S3 => Arc::new(S3Blobs::new(config)?),
    })
}

#[cfg(test)]
mod tests {
    use figment::{
        Figment,
        providers::{Format, Serialized, Toml},
    };

    use crate::config::Config;

    fn with(toml: &str) -> Result<Config, crate::config::ConfigError> {
        Config::from_figment(
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(toml)),
        )
    }

    #[test]
    fn blob_settings_are_checked_naming_the_key() {
        for (toml, key) in [
            ("blob_store = \"s3\"", "blob_s3_bucket"),
            ("blob_store = \"tape\"", "blob_store"),
            (
                "blob_s3_endpoint = \"http://minio.internal:9000\"",
                "blob_s3_endpoint",
            ),
            (
                "blob_s3_endpoint = \"https://s3.example.com/bucket\"",
                "blob_s3_endpoint",
            ),
            ("blob_s3_region = \"\"", "blob_s3_region"),
            (
                "blob_s3_access_key_id = \"AKIA\"",
                "blob_s3_secret_access_key",
            ),
            ("blob_s3_prefix = \"artifacts\"", "blob_s3_prefix"),
            ("blob_s3_prefix = \"/artifacts/\"", "blob_s3_prefix"),
        ] {
            let e = with(toml).unwrap_err().to_string();
            assert!(e.contains(key), "{toml}: {e}");
        }
        for ok in [
            "blob_store = \"s3\"\nblob_s3_bucket = \"b\"\nblob_s3_endpoint = \"http://127.0.0.1:9000\"",
            "blob_s3_endpoint = \"https://s3.example.com\"\nblob_s3_prefix = \"\"",
            "blob_s3_endpoint = \"http://[::1]:9000/\"\nblob_s3_prefix = \"a/b-1/\"",
        ] {
            with(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn the_secret_key_stays_out_of_debug_output() {
        let c = with(
            "blob_s3_access_key_id = \"AKIAEXAMPLE\"\nblob_s3_secret_access_key = \"hunter2-secret\"",
        )
        .unwrap();
        assert_eq!(c.blob_s3_secret_access_key.expose(), "hunter2-secret");
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("blob_s3_secret_access_key: \"***\""),
            "{shown}"
        );
    }
}
