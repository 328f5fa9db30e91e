//! Agentdesk database migrations.
//!
//! One module per migration, applied in order by [`Migrator`]. Every migration has a real
//! `down` that undoes its `up` exactly, and the integration tests run all of them up, all
//! the way down and up again on SQLite and PostgreSQL. Names are snake_case; every lookup
//! the application makes has an index here.

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_accounts;
mod m20261121_000002_sessions;
mod m20261121_000003_access;
mod m20261129_000004_trust;
mod m20261129_000005_desktop;
mod m20261129_000006_artifacts;
mod m20261129_000007_auth_notify;

/// Adds each `(table, column)`, one `ALTER TABLE` each (SQLite adds one column per
/// statement).
async fn add_columns(
    manager: &SchemaManager<'_>,
    columns: Vec<(DynIden, ColumnDef)>,
) -> Result<(), DbErr> {
    for (table, mut column) in columns {
        manager
            .alter_table(
                Table::alter()
                    .table(table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

/// Drops what [`add_columns`] added, last first.
async fn drop_columns(
    manager: &SchemaManager<'_>,
    columns: Vec<(DynIden, ColumnDef)>,
) -> Result<(), DbErr> {
    for (table, column) in columns.into_iter().rev() {
        manager
            .alter_table(
                Table::alter()
                    .table(table)
                    .drop_column(Alias::new(column.get_column_name()))
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

/// The ordered list of Agentdesk migrations, driven by `agentdesk migrate …` and by
/// `serve` on start (unless `migrate_on_start = false`).
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_accounts::Migration),
            Box::new(m20261121_000002_sessions::Migration),
            Box::new(m20261121_000003_access::Migration),
            Box::new(m20261129_000004_trust::Migration),
            Box::new(m20261129_000005_desktop::Migration),
            Box::new(m20261129_000006_artifacts::Migration),
            Box::new(m20261129_000007_auth_notify::Migration),
        ]
    }
}
