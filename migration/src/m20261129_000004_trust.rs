//! Access you can trust (issue 11): proven emails, a per-user access-token generation, who
//! made each key and invitation (user or key: their rights bound it for its whole life), who
//! created each org and whose quota a session counts against, and what an idempotent request
//! was authorized for (a replay is authorized again first).

use sea_orm_migration::{prelude::*, schema::*};

/// Adds the columns and indexes below; `down` drops them.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261129_000004_trust"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    EmailVerifiedAt,
    TokenGeneration,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    CreatedByKey,
}

#[derive(DeriveIden)]
enum Invitations {
    Table,
    InvitedByKey,
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    CreatedBy,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    AccountableUserId,
    Status,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Authorized,
}

/// `(table, column definition)` pairs, each added by its own `ALTER TABLE` (SQLite adds one
/// column per statement).
fn columns() -> Vec<(DynIden, ColumnDef)> {
    vec![
        // When the owner proved the address (a one-time link, or an OIDC provider vouching
        // for it at the first SSO login); `NULL` = never proven.
        (
            Users::Table.into_iden(),
            timestamp_with_time_zone_null(Users::EmailVerifiedAt),
        ),
        // Access tokens carry the generation they were issued in (`gen`); bumping it (logout,
        // password change, refresh reuse, disable, takeover guard) ends all of them at once.
        (
            Users::Table.into_iden(),
            big_integer(Users::TokenGeneration).default(0).to_owned(),
        ),
        (ApiKeys::Table.into_iden(), uuid_null(ApiKeys::CreatedByKey)),
        (
            Invitations::Table.into_iden(),
            uuid_null(Invitations::InvitedByKey),
        ),
        (
            Organizations::Table.into_iden(),
            uuid_null(Organizations::CreatedBy),
        ),
        (
            Sessions::Table.into_iden(),
            uuid_null(Sessions::AccountableUserId),
        ),
        // `[{"org_id": …, "permission": …}]` the first run was authorized for.
        (
            IdempotencyKeys::Table.into_iden(),
            json_binary_null(IdempotencyKeys::Authorized),
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::add_columns(manager, columns()).await?;
        // Quotas: live sessions per accountable user, orgs per creator.
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_accountable_status")
                    .table(Sessions::Table)
                    .col(Sessions::AccountableUserId)
                    .col(Sessions::Status)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_organizations_created_by")
                    .table(Organizations::Table)
                    .col(Organizations::CreatedBy)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            (
                "idx_organizations_created_by",
                Organizations::Table.into_iden(),
            ),
            (
                "idx_sessions_accountable_status",
                Sessions::Table.into_iden(),
            ),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        crate::drop_columns(manager, columns()).await
    }
}
