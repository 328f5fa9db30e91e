//! Session artifacts (issue 13): `artifacts`, one row per binary result of a session (a
//! screenshot PNG) with its media type, size, pixel size and SHA-256; and `blobs`, the bytes
//! themselves when the blob store is the database (`blob_store = "database"`). With
//! `blob_store = "s3"` the bytes live in the bucket and `blobs` stays empty.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `artifacts` and `blobs`; `down` drops them.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261129_000006_artifacts"
    }
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Artifacts {
    Table,
    Id,
    OrgId,
    SessionId,
    CommandId,
    Kind,
    MediaType,
    Bytes,
    Width,
    Height,
    Sha256,
    Storage,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Blobs {
    Table,
    Key,
    Data,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // `command_id` has no foreign key: the command is deleted with its session, and so is
        // the artifact (through `session_id`). Org deletion also deletes the rows (and their
        // blobs) explicitly, so it does not depend on cascades.
        manager
            .create_table(
                Table::create()
                    .table(Artifacts::Table)
                    .col(pk_uuid(Artifacts::Id))
                    .col(uuid(Artifacts::OrgId))
                    .col(uuid(Artifacts::SessionId))
                    .col(uuid_null(Artifacts::CommandId))
                    .col(text(Artifacts::Kind))
                    .col(text(Artifacts::MediaType))
                    .col(big_integer(Artifacts::Bytes))
                    .col(integer_null(Artifacts::Width))
                    .col(integer_null(Artifacts::Height))
                    .col(text(Artifacts::Sha256))
                    .col(text(Artifacts::Storage))
                    .col(timestamp_with_time_zone(Artifacts::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_artifacts_org")
                            .from(Artifacts::Table, Artifacts::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_artifacts_session")
                            .from(Artifacts::Table, Artifacts::SessionId)
                            .to(Sessions::Table, Sessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // `artifacts.list`: a session's artifacts in id (creation) order.
        manager
            .create_index(
                Index::create()
                    .name("idx_artifacts_session_id")
                    .table(Artifacts::Table)
                    .col(Artifacts::SessionId)
                    .col(Artifacts::Id)
                    .to_owned(),
            )
            .await?;
        // Org deletion finds the org's artifacts.
        manager
            .create_index(
                Index::create()
                    .name("idx_artifacts_org")
                    .table(Artifacts::Table)
                    .col(Artifacts::OrgId)
                    .to_owned(),
            )
            .await?;

        // The database blob store: `key` is `<org_id>/<session_id>/<artifact_id>`; `data` is
        // BYTEA on PostgreSQL, BLOB on SQLite.
        manager
            .create_table(
                Table::create()
                    .table(Blobs::Table)
                    .col(text(Blobs::Key).primary_key())
                    .col(blob(Blobs::Data))
                    .col(timestamp_with_time_zone(Blobs::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [Blobs::Table.into_iden(), Artifacts::Table.into_iden()] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
