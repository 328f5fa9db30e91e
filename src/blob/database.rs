//! [`DatabaseBlobs`]: blobs in the `blobs` table of the application database (BYTEA on
//! PostgreSQL, BLOB on SQLite), so every node reads what any node wrote.

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, sea_query::OnConflict,
};

use super::BlobStore;
use crate::entity::blob;

/// The database blob store (`blob_store = "database"`).
#[derive(Clone, Debug)]
pub struct DatabaseBlobs {
    db: DatabaseConnection,
}

impl DatabaseBlobs {
    /// A store on the pool `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Writes `data` under `key` (replacing what was there) on `conn`, which may be a
    /// transaction: the blob then commits with it. Errors: database errors.
    pub async fn put_in(conn: &impl ConnectionTrait, key: &str, data: &[u8]) -> Result<(), DbErr> {
        let row = blob::ActiveModel {
            key: Set(key.to_owned()),
            data: Set(data.to_vec()),
            created_at: Set(Utc::now()),
        };
        blob::Entity::insert(row)
            .on_conflict(
                OnConflict::column(blob::Column::Key)
                    .update_columns([blob::Column::Data, blob::Column::CreatedAt])
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
        Ok(())
    }

    /// Deletes every blob whose key starts with `prefix` (e.g. `<org_id>/`) on `conn`, which
    /// may be a transaction; returns how many went. `prefix` must not contain `%` or `_` (LIKE
    /// wildcards), as a UUID-and-`/` prefix never does. Errors: database errors.
    pub async fn delete_prefix_in(conn: &impl ConnectionTrait, prefix: &str) -> Result<u64, DbErr> {
        debug_assert!(!prefix.contains(['%', '_', '\\']), "{prefix}");
        Ok(blob::Entity::delete_many()
            .filter(blob::Column::Key.like(format!("{prefix}%")))
            .exec(conn)
            .await?
            .rows_affected)
    }
}

#[async_trait]
impl BlobStore for DatabaseBlobs {
    fn name(&self) -> &'static str {
        "database"
    }

    fn in_database(&self) -> bool {
        true
    }

    async fn put(&self, key: &str, data: Bytes) -> anyhow::Result<()> {
        Ok(Self::put_in(&self.db, key, &data).await?)
    }

    async fn get(&self, key: &str) -> anyhow::Result<Option<Bytes>> {
        Ok(blob::Entity::find_by_id(key.to_owned())
            .one(&self.db)
            .await?
            .map(|b| Bytes::from(b.data)))
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        blob::Entity::delete_by_id(key.to_owned())
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
