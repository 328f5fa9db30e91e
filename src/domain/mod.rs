//! The rules: accounts, organizations, memberships, audit, agents, sessions (state machine,
//! store, lifecycle, jobs), the event log, commands, artifacts, jobs as an org sees them, idempotency
//! records, one-time tickets, and the bound every key and invitation keeps to its grantor's
//! current rights (`grants`). Functions over `&impl ConnectionTrait` (or a connection they
//! open transactions on); no HTTP types. Errors are [`AppError`](crate::error::AppError)s with
//! stable codes. Writes that publish or enqueue commit through the bus's outbox
//! (`Bus::commit`).

pub mod accounts;
pub mod agents;
pub mod api_keys;
pub mod appender;
pub mod artifacts;
pub mod audit;
pub mod commands;
pub mod desktops;
pub mod email;
pub mod events;
pub mod executor;
pub mod grants;
pub mod idempotency;
pub mod invitations;
pub mod jobs;
pub mod oidc;
pub mod orgs;
pub mod page;
pub mod roles;
pub mod sessions;
pub mod takeover;
pub mod throttle;
pub mod tickets;
pub mod verification;
pub mod viewers;

use sea_orm::{
    AccessMode, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, IsolationLevel,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

/// Begins a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`: the write lock is
/// taken up front (waiting up to the busy timeout), so a transaction that reads before it
/// writes cannot fail with `SQLITE_BUSY` when another writer commits in between. Elsewhere a
/// plain `BEGIN`. Errors: database errors.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return db.begin().await;
    }
    db.begin_with_options(TransactionOptions {
        isolation_level: None::<IsolationLevel>,
        access_mode: None::<AccessMode>,
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
    })
    .await
}
