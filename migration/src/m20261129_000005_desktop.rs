//! Agents drive their desktops (issue 12): who performs an agent's commands, the sealed VNC
//! secrets of each session's desktop, and a stable error code and a typed result on commands.

use sea_orm_migration::{prelude::*, schema::*};

/// Adds the columns below; `down` drops them.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261129_000005_desktop"
    }
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Executor,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    DesktopSecret,
    Executor,
}

#[derive(DeriveIden)]
enum Commands {
    Table,
    ErrorCode,
    Result,
}

/// `(table, column definition)` pairs, each added by its own `ALTER TABLE` (SQLite adds one
/// column per statement).
fn columns() -> Vec<(DynIden, ColumnDef)> {
    vec![
        // `builtin` | `external`; `NULL` = the default (built-in when the session has a
        // desktop).
        (Agents::Table.into_iden(), string_null(Agents::Executor)),
        // The desktop's VNC passwords (full access and view-only), sealed with an AEAD under
        // the node's sealing key: `v1.<base64 nonce ‖ ciphertext>`. Never returned by the API.
        (
            Sessions::Table.into_iden(),
            text_null(Sessions::DesktopSecret),
        ),
        // The agent's `executor` when the session was created (`NULL` = the default).
        (Sessions::Table.into_iden(), string_null(Sessions::Executor)),
        // Why a command failed, as a stable code (`desktop_unreachable`, `timeout`, …).
        (
            Commands::Table.into_iden(),
            string_null(Commands::ErrorCode),
        ),
        // The built-in executor's typed outcome (`{kind, …}` per command kind); `output` stays
        // what an external executor reported, verbatim.
        (
            Commands::Table.into_iden(),
            json_binary_null(Commands::Result),
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::add_columns(manager, columns()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_columns(manager, columns()).await
    }
}
