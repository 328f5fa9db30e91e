//! Agents, sessions, the session event log, commands, the job queue and idempotency keys
//! (issue 3).

use sea_orm_migration::{prelude::*, schema::*};

/// Creates the agent, session, event, command, job and idempotency tables.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261121_000002_sessions"
    }
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
    OrgId,
    Name,
    Description,
    Model,
    Instructions,
    ScreenWidth,
    ScreenHeight,
    Version,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    OrgId,
    AgentId,
    CreatedBy,
    Status,
    StatusReason,
    Version,
    TimeoutS,
    MaxDurationS,
    Metadata,
    Desktop,
    ScreenWidth,
    ScreenHeight,
    LastSeq,
    LastActivityAt,
    StartedAt,
    EndedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SessionEvents {
    Table,
    SessionId,
    Seq,
    OrgId,
    Kind,
    Payload,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Commands {
    Table,
    Id,
    OrgId,
    SessionId,
    Kind,
    Args,
    Status,
    Output,
    Error,
    CreatedBy,
    ExpiresAt,
    DispatchedAt,
    CompletedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    OrgId,
    SessionId,
    Kind,
    Payload,
    Status,
    Attempts,
    MaxAttempts,
    RunAt,
    LeaseUntil,
    LockedBy,
    LastError,
    DeadAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Principal,
    Key,
    Fingerprint,
    Status,
    ResponseStatus,
    ResponseHeaders,
    ResponseBody,
    LockedUntil,
    CreatedAt,
    ExpiresAt,
}

/// `<table>.org_id` → `organizations.id`, deleted with the org.
fn org_fk(name: &str, from: impl IntoIden, col: impl IntoIden) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from, col)
        .to(Organizations::Table, Organizations::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Agents::Table)
                    .col(pk_uuid(Agents::Id))
                    .col(uuid(Agents::OrgId))
                    .col(string_len(Agents::Name, 200))
                    .col(string_len(Agents::Description, 2000))
                    .col(string_len(Agents::Model, 200))
                    .col(text(Agents::Instructions))
                    .col(integer(Agents::ScreenWidth))
                    .col(integer(Agents::ScreenHeight))
                    .col(big_integer(Agents::Version))
                    .col(uuid_null(Agents::CreatedBy))
                    .col(timestamp_with_time_zone(Agents::CreatedAt))
                    .col(timestamp_with_time_zone(Agents::UpdatedAt))
                    .foreign_key(&mut org_fk("fk_agents_org", Agents::Table, Agents::OrgId))
                    .to_owned(),
            )
            .await?;
        // Names are unique per org; also the index for `agents.list` is (org_id, id).
        manager
            .create_index(
                Index::create()
                    .name("idx_agents_org_name")
                    .table(Agents::Table)
                    .col(Agents::OrgId)
                    .col(Agents::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_agents_org_id")
                    .table(Agents::Table)
                    .col(Agents::OrgId)
                    .col(Agents::Id)
                    .to_owned(),
            )
            .await?;

        // `agent_id` has no foreign key on purpose: a deleted agent's past sessions and their
        // event logs are kept (an agent with live sessions cannot be deleted).
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(pk_uuid(Sessions::Id))
                    .col(uuid(Sessions::OrgId))
                    .col(uuid(Sessions::AgentId))
                    .col(uuid_null(Sessions::CreatedBy))
                    .col(string_len(Sessions::Status, 16))
                    .col(string_len_null(Sessions::StatusReason, 500))
                    .col(big_integer(Sessions::Version))
                    .col(big_integer(Sessions::TimeoutS))
                    .col(big_integer(Sessions::MaxDurationS))
                    .col(json_binary(Sessions::Metadata))
                    .col(json_binary_null(Sessions::Desktop))
                    .col(integer(Sessions::ScreenWidth))
                    .col(integer(Sessions::ScreenHeight))
                    .col(big_integer(Sessions::LastSeq))
                    .col(timestamp_with_time_zone(Sessions::LastActivityAt))
                    .col(timestamp_with_time_zone_null(Sessions::StartedAt))
                    .col(timestamp_with_time_zone_null(Sessions::EndedAt))
                    .col(timestamp_with_time_zone(Sessions::CreatedAt))
                    .col(timestamp_with_time_zone(Sessions::UpdatedAt))
                    .foreign_key(&mut org_fk(
                        "fk_sessions_org",
                        Sessions::Table,
                        Sessions::OrgId,
                    ))
                    .to_owned(),
            )
            .await?;
        // `sessions.list` (org, optional status/agent filter, id order) and the live-session
        // count for the per-org limit; the reaper scans live sessions by status.
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_org_status_id")
                    .table(Sessions::Table)
                    .col(Sessions::OrgId)
                    .col(Sessions::Status)
                    .col(Sessions::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_org_id")
                    .table(Sessions::Table)
                    .col(Sessions::OrgId)
                    .col(Sessions::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_agent_status")
                    .table(Sessions::Table)
                    .col(Sessions::AgentId)
                    .col(Sessions::Status)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_status")
                    .table(Sessions::Table)
                    .col(Sessions::Status)
                    .to_owned(),
            )
            .await?;

        // The event log: the primary key (session_id, seq) is the read index.
        manager
            .create_table(
                Table::create()
                    .table(SessionEvents::Table)
                    .col(uuid(SessionEvents::SessionId))
                    .col(big_integer(SessionEvents::Seq))
                    .col(uuid(SessionEvents::OrgId))
                    .col(string_len(SessionEvents::Kind, 16))
                    .col(json_binary(SessionEvents::Payload))
                    .col(timestamp_with_time_zone(SessionEvents::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(SessionEvents::SessionId)
                            .col(SessionEvents::Seq),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_session_events_session")
                            .from(SessionEvents::Table, SessionEvents::SessionId)
                            .to(Sessions::Table, Sessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Commands::Table)
                    .col(pk_uuid(Commands::Id))
                    .col(uuid(Commands::OrgId))
                    .col(uuid(Commands::SessionId))
                    .col(string_len(Commands::Kind, 32))
                    .col(json_binary(Commands::Args))
                    .col(string_len(Commands::Status, 16))
                    .col(json_binary_null(Commands::Output))
                    .col(string_len_null(Commands::Error, 2000))
                    .col(uuid_null(Commands::CreatedBy))
                    .col(timestamp_with_time_zone(Commands::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Commands::DispatchedAt))
                    .col(timestamp_with_time_zone_null(Commands::CompletedAt))
                    .col(timestamp_with_time_zone(Commands::CreatedAt))
                    .col(timestamp_with_time_zone(Commands::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_commands_session")
                            .from(Commands::Table, Commands::SessionId)
                            .to(Sessions::Table, Sessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Claiming takes the oldest queued command of a session; lists go by (session, id).
        manager
            .create_index(
                Index::create()
                    .name("idx_commands_session_status_id")
                    .table(Commands::Table)
                    .col(Commands::SessionId)
                    .col(Commands::Status)
                    .col(Commands::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_commands_status_expires")
                    .table(Commands::Table)
                    .col(Commands::Status)
                    .col(Commands::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        // Jobs keep no foreign key to sessions: a job may outlive what it was for and then
        // finishes as a no-op. Org deletion removes the org's jobs.
        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .col(pk_uuid(Jobs::Id))
                    .col(uuid_null(Jobs::OrgId))
                    .col(uuid_null(Jobs::SessionId))
                    .col(string_len(Jobs::Kind, 32))
                    .col(json_binary(Jobs::Payload))
                    .col(string_len(Jobs::Status, 16))
                    .col(integer(Jobs::Attempts))
                    .col(integer(Jobs::MaxAttempts))
                    .col(timestamp_with_time_zone(Jobs::RunAt))
                    .col(timestamp_with_time_zone_null(Jobs::LeaseUntil))
                    .col(string_len_null(Jobs::LockedBy, 128))
                    .col(string_len_null(Jobs::LastError, 2000))
                    .col(timestamp_with_time_zone_null(Jobs::DeadAt))
                    .col(timestamp_with_time_zone(Jobs::CreatedAt))
                    .col(timestamp_with_time_zone(Jobs::UpdatedAt))
                    .foreign_key(&mut org_fk("fk_jobs_org", Jobs::Table, Jobs::OrgId))
                    .to_owned(),
            )
            .await?;
        // The claim query: due pending jobs by run_at; expired leases by lease_until.
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_status_run_at")
                    .table(Jobs::Table)
                    .col(Jobs::Status)
                    .col(Jobs::RunAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_org_status_id")
                    .table(Jobs::Table)
                    .col(Jobs::OrgId)
                    .col(Jobs::Status)
                    .col(Jobs::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .col(string_len(IdempotencyKeys::Principal, 64))
                    .col(string_len(IdempotencyKeys::Key, 255))
                    .col(string_len(IdempotencyKeys::Fingerprint, 64))
                    .col(string_len(IdempotencyKeys::Status, 16))
                    .col(integer_null(IdempotencyKeys::ResponseStatus))
                    .col(json_binary_null(IdempotencyKeys::ResponseHeaders))
                    .col(binary_null(IdempotencyKeys::ResponseBody))
                    .col(timestamp_with_time_zone(IdempotencyKeys::LockedUntil))
                    .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                    .col(timestamp_with_time_zone(IdempotencyKeys::ExpiresAt))
                    .primary_key(
                        Index::create()
                            .col(IdempotencyKeys::Principal)
                            .col(IdempotencyKeys::Key),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_idempotency_keys_expires")
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            IdempotencyKeys::Table.into_iden(),
            Jobs::Table.into_iden(),
            Commands::Table.into_iden(),
            SessionEvents::Table.into_iden(),
            Sessions::Table.into_iden(),
            Agents::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
