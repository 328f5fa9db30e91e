//! The event bus (ARCHITECTURE §6): ids only, never payloads.
//!
//! * SQLite (one node): an in-process `tokio::sync::broadcast`, fed after the writing
//!   transaction commits.
//! * PostgreSQL (many nodes): `NOTIFY agentdesk_events '<org>:<session>:<seq>:<e|s>'` issued
//!   inside the writing transaction, so it is delivered if and only if the
//!   transaction commits, in commit order. Each node keeps one `LISTEN` connection
//!   ([`Bus::start_listener`]) and fans what it hears out in-process, its own writes included.
//!   A lost listener connection is re-established and announced as [`BusMessage::Resync`], so
//!   subscribers re-read the table instead of waiting for a wake-up that was lost.
//!
//! Job wake-ups travel the same way on channel `agentdesk_jobs`, and the auth cache's
//! invalidations on `agentdesk_auth` ([`crate::auth::cache`]; written by database triggers):
//! the listener applies those to the node's [`AuthCache`] itself, as it reads them, and marks
//! the cache unusable while its connection is down. Writers publish only through
//! [`Bus::commit`], which commits their transaction together with its [`Outbox`].

use std::{sync::Arc, time::Duration};

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, Statement};
use tokio::sync::{Notify, broadcast};
use uuid::Uuid;

use crate::auth::cache::{AUTH_CHANNEL, AuthCache, Invalidation};

/// PostgreSQL channel for session events.
pub const EVENTS_CHANNEL: &str = "agentdesk_events";
/// PostgreSQL channel for "a job was enqueued".
pub const JOBS_CHANNEL: &str = "agentdesk_jobs";

/// "Session `session_id` of `org_id` has committed events up to `seq`."
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusEvent {
    /// The session's org (for org-wide streams).
    pub org_id: Uuid,
    /// The session.
    pub session_id: Uuid,
    /// The highest seq written by the transaction.
    pub seq: i64,
    /// The event at `seq` is a `status` event (a lifecycle change).
    pub status: bool,
}

impl BusEvent {
    /// The NOTIFY payload: `<org>:<session>:<seq>:<s|e>` (at most 80 bytes).
    pub fn encode(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.org_id.simple(),
            self.session_id.simple(),
            self.seq,
            if self.status { 's' } else { 'e' }
        )
    }

    /// Parses [`BusEvent::encode`]'s output; `None` for anything else.
    pub fn decode(s: &str) -> Option<Self> {
        let mut parts = s.split(':');
        let org_id = Uuid::parse_str(parts.next()?).ok()?;
        let session_id = Uuid::parse_str(parts.next()?).ok()?;
        let seq = parts.next()?.parse().ok()?;
        let status = match parts.next()? {
            "s" => true,
            "e" => false,
            _ => return None,
        };
        parts.next().is_none().then_some(Self {
            org_id,
            session_id,
            seq,
            status,
        })
    }
}

/// What subscribers receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusMessage {
    /// Events were committed.
    Event(BusEvent),
    /// Wake-ups may have been lost (listener reconnected): re-read from the table.
    Resync,
}

/// Notifications a transaction produces (the transactional outbox), published by
/// [`Bus::commit`] with the transaction.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Session event wake-ups.
    pub events: Vec<BusEvent>,
    /// A job was enqueued.
    pub job_enqueued: bool,
}

/// The node's bus. Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    tx: broadcast::Sender<BusMessage>,
    backend: DbBackend,
    jobs: Arc<Notify>,
    auth: Arc<AuthCache>,
}

impl Bus {
    /// A bus for `backend` that keeps `auth` up to date; on PostgreSQL call
    /// [`Bus::start_listener`] too.
    pub fn new(backend: DbBackend, auth: Arc<AuthCache>) -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            tx,
            backend,
            jobs: Arc::new(Notify::new()),
            auth,
        }
    }

    /// A receiver of everything published from now on. A slow receiver gets
    /// `RecvError::Lagged` and must re-read from the table.
    pub fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.tx.subscribe()
    }

    /// Resolves when a job may be due (enqueued on any node), or never: callers race it with
    /// their poll interval.
    pub async fn job_wakeup(&self) {
        self.jobs.notified().await;
    }

    /// Commits `tx` together with its outbox — the one way writers publish (ARCHITECTURE §3,
    /// "One outbox"): on PostgreSQL the NOTIFYs are issued inside `tx` (delivered if and only
    /// if it commits, in commit order); on SQLite they are delivered in-process after the
    /// commit. Errors: database errors (nothing is published then).
    pub async fn commit(&self, tx: DatabaseTransaction, outbox: Outbox) -> Result<(), DbErr> {
        self.stage(&tx, &outbox).await?;
        tx.commit().await?;
        self.committed(outbox);
        Ok(())
    }

    /// Inside the writing transaction: on PostgreSQL, issues the NOTIFYs (delivered on
    /// commit). Errors: database errors (the transaction should roll back).
    async fn stage(&self, tx: &impl ConnectionTrait, outbox: &Outbox) -> Result<(), DbErr> {
        if self.backend != DbBackend::Postgres {
            return Ok(());
        }
        for e in &outbox.events {
            tx.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [EVENTS_CHANNEL.into(), e.encode().into()],
            ))
            .await?;
        }
        if outbox.job_enqueued {
            tx.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_notify($1, '')",
                [JOBS_CHANNEL.into()],
            ))
            .await?;
        }
        Ok(())
    }

    /// After the commit: on SQLite, delivers in-process (PostgreSQL delivers through LISTEN).
    fn committed(&self, outbox: Outbox) {
        if self.backend == DbBackend::Postgres {
            return;
        }
        for e in outbox.events {
            let _ = self.tx.send(BusMessage::Event(e));
        }
        if outbox.job_enqueued {
            self.jobs.notify_one();
        }
    }

    /// PostgreSQL: spawns the node's one LISTEN connection, reconnecting with a 1 s pause after
    /// a failure and announcing [`BusMessage::Resync`] after each reconnect; the auth cache is
    /// live only while the connection listens. No-op on SQLite. The task ends
    /// when the returned handle is aborted.
    pub fn start_listener(&self, database_url: &str) -> Option<tokio::task::JoinHandle<()>> {
        if self.backend != DbBackend::Postgres {
            return None;
        }
        let url = database_url.to_owned();
        let bus = self.clone();
        Some(tokio::spawn(async move {
            use sea_orm::sqlx::postgres::PgListener;
            let mut first = true;
            loop {
                let mut listener = match PgListener::connect(&url).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "event bus: LISTEN connection failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if let Err(e) = listener
                    .listen_all([EVENTS_CHANNEL, JOBS_CHANNEL, AUTH_CHANNEL])
                    .await
                {
                    tracing::warn!(error = %e, "event bus: LISTEN failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                if !first {
                    let _ = bus.tx.send(BusMessage::Resync);
                    bus.jobs.notify_one();
                }
                first = false;
                // Listening from here on: changes committed from now are heard.
                bus.auth.set_live(true);
                loop {
                    match listener.try_recv().await {
                        Ok(Some(n)) => match n.channel() {
                            JOBS_CHANNEL => bus.jobs.notify_one(),
                            AUTH_CHANNEL => bus.auth.invalidate(Invalidation::decode(n.payload())),
                            _ => {
                                if let Some(e) = BusEvent::decode(n.payload()) {
                                    let _ = bus.tx.send(BusMessage::Event(e));
                                }
                            }
                        },
                        Ok(None) => {
                            // Connection lost: notifications may be missed until a new one
                            // listens (the outer loop; it announces the resync).
                            bus.auth.set_live(false);
                            break;
                        }
                        Err(e) => {
                            bus.auth.set_live(false);
                            tracing::warn!(error = %e, "event bus: listener failed; reconnecting");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            break;
                        }
                    }
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_payload_round_trips() {
        let e = BusEvent {
            org_id: Uuid::now_v7(),
            session_id: Uuid::now_v7(),
            seq: 42,
            status: true,
        };
        let wire = e.encode();
        assert!(wire.len() <= 80, "{wire}");
        assert_eq!(BusEvent::decode(&wire), Some(e));
        assert_eq!(BusEvent::decode("x:y:1:s"), None);
        assert_eq!(BusEvent::decode(&format!("{wire}:extra")), None);
    }
}
