//! Group commit for `events.append`: one appender per session per node on PostgreSQL, one per
//! node on SQLite.
//!
//! Sequence numbers come from `sessions.last_seq`, whose row lock orders appenders (see
//! [`super::events`]): with one transaction per request, 32 writers on one session took turns
//! holding that lock for a whole transaction each. Here the batches waiting for a session are
//! merged into **one** transaction: one `UPDATE … last_seq = last_seq + n` for all of them, the
//! rows inserted together, one NOTIFY, one commit; then each caller is answered with its own
//! `first_seq..=last_seq`, in the order the batches were queued.
//!
//! What stays exactly as it was:
//!
//! * seqs are gapless and in commit order (a group is one transaction; groups of one session
//!   on one node run one after another, and across nodes they still queue on the row lock);
//! * a caller is answered only after its events are committed, and its range is exactly the
//!   seqs its events got, in the order it sent them;
//! * a batch is validated before it is queued (422 for that caller alone);
//! * when a group's transaction fails, every caller in it gets an error and none of its events
//!   exist (409 `session_not_live` / 404 as the session says; otherwise 500);
//! * the SSE feeds are woken by the one NOTIFY (or in-process message) of the commit.
//!
//! On SQLite, which has one writer at a time whatever the sessions, one appender takes the
//! batches of every session: a group then takes each session's seqs and inserts its rows in
//! the one transaction (a session that is not live fails only its own callers). Separate
//! appenders would only queue on SQLite's write lock, whose busy handler sleeps.
//!
//! A group holds at most [`MAX_GROUP_EVENTS`] events (one batch always fits). An appender task
//! ends after [`IDLE`] without work. A caller that goes away before its answer does not take
//! its batch back: queued events are committed (retry with the same `Idempotency-Key` to learn
//! the seqs).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use sea_orm::{DatabaseConnection, DbBackend};
use tokio::sync::{mpsc, oneshot};

use super::{
    events::{NewEvent, insert_events},
    sessions,
};
use crate::{
    entity::{OrgId, SessionId},
    error::{AppError, AppResult},
    realtime::bus::{Bus, BusEvent, Outbox},
};

/// Most events merged into one transaction.
pub const MAX_GROUP_EVENTS: usize = 5_000;
/// An appender with nothing to do for this long ends (a new one starts with the next batch).
pub const IDLE: Duration = Duration::from_secs(10);

type Reply = oneshot::Sender<AppResult<(i64, i64)>>;

struct Job {
    session: Key,
    events: Vec<NewEvent>,
    reply: Reply,
}

/// A session, with its org (every statement is scoped by both).
type Key = (OrgId, SessionId);
/// Which appender takes a session's batches: the session itself, or `None` (SQLite: one for
/// all).
type QueueKey = Option<Key>;
type Queues = Arc<Mutex<HashMap<QueueKey, mpsc::UnboundedSender<Job>>>>;

/// The node's appenders, one per session with work. Cheap to clone.
#[derive(Clone)]
pub struct Appenders {
    db: DatabaseConnection,
    bus: Bus,
    queues: Queues,
    per_session: bool,
}

impl Appenders {
    /// Appenders writing to `db` and publishing on `bus`.
    pub fn new(db: DatabaseConnection, bus: Bus) -> Self {
        let per_session = db.get_database_backend() != DbBackend::Sqlite;
        Self {
            db,
            bus,
            queues: Arc::default(),
            per_session,
        }
    }

    /// Queues `events` (already validated) for the session's appender and waits until they are
    /// committed; returns `(first_seq, last_seq)`. Errors: 404, 409 `session_not_live`, 500.
    pub async fn append(
        &self,
        org_id: OrgId,
        session_id: SessionId,
        events: Vec<NewEvent>,
    ) -> AppResult<(i64, i64)> {
        let (reply, answer) = oneshot::channel();
        {
            let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            let session = (org_id, session_id);
            let key = self.per_session.then_some(session);
            let mut job = Some(Job {
                session,
                events,
                reply,
            });
            // Sent under the lock: an idle appender removes itself under the same lock, only
            // when its queue is empty, so a job is never left in a queue nobody reads.
            if let Some(queue) = queues.get(&key)
                && let Some(j) = job.take()
                && let Err(mpsc::error::SendError(j)) = queue.send(j)
            {
                job = Some(j); // The appender is gone (it panicked).
            }
            if let Some(job) = job {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(run(self.clone(), key, rx));
                let _ = tx.send(job);
                queues.insert(key, tx);
            }
        }
        answer
            .await
            .map_err(|_| AppError::Internal(anyhow::anyhow!("the session's appender stopped")))?
    }
}

/// One appender: takes every batch waiting (up to [`MAX_GROUP_EVENTS`]), commits them
/// together, answers, repeats; ends after [`IDLE`].
async fn run(appenders: Appenders, key: QueueKey, mut rx: mpsc::UnboundedReceiver<Job>) {
    loop {
        let first = match tokio::time::timeout(IDLE, rx.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(_) => {
                let mut queues = appenders.queues.lock().unwrap_or_else(|e| e.into_inner());
                if rx.is_empty() {
                    queues.remove(&key);
                    return;
                }
                continue;
            }
        };
        let mut count = first.events.len();
        let mut group = vec![first];
        while count < MAX_GROUP_EVENTS {
            let Ok(job) = rx.try_recv() else { break };
            count += job.events.len();
            group.push(job);
        }
        commit_group(&appenders, group).await;
    }
}

/// One session's share of a group: its callers in queue order, their batch sizes, the events.
struct Share {
    session: Key,
    replies: Vec<Reply>,
    sizes: Vec<i64>,
    events: Vec<NewEvent>,
}

/// What a share's callers are answered: their seqs from `first` on, or (`None`) that the
/// session is not live.
struct Answer {
    replies: Vec<Reply>,
    sizes: Vec<i64>,
    session: Key,
    first: Option<i64>,
}

/// Commits `group` in one transaction and answers each job.
async fn commit_group(appenders: &Appenders, group: Vec<Job>) {
    let mut shares: Vec<Share> = Vec::new();
    for job in group {
        let at = match shares.iter().position(|s| s.session == job.session) {
            Some(at) => at,
            None => {
                shares.push(Share {
                    session: job.session,
                    replies: Vec::new(),
                    sizes: Vec::new(),
                    events: Vec::new(),
                });
                shares.len() - 1
            }
        };
        let share = &mut shares[at];
        share.sizes.push(job.events.len() as i64);
        share.replies.push(job.reply);
        share.events.extend(job.events);
    }
    let mut answers: Vec<Answer> = Vec::new();
    let result = async {
        let tx = super::begin_write(&appenders.db).await?;
        let mut outbox = Outbox::default();
        for share in shares {
            let (org_id, session_id) = share.session;
            let count = share.events.len() as i64;
            let first = match sessions::take_seqs(&tx, org_id, session_id, count).await? {
                Some(last) => {
                    let first = last - count + 1;
                    insert_events(&tx, org_id, session_id, first, share.events).await?;
                    outbox.events.push(BusEvent {
                        org_id: org_id.0,
                        session_id: session_id.0,
                        seq: last,
                        status: false,
                    });
                    Some(first)
                }
                None => None,
            };
            answers.push(Answer {
                replies: share.replies,
                sizes: share.sizes,
                session: share.session,
                first,
            });
        }
        appenders.bus.commit(tx, outbox).await?;
        AppResult::Ok(())
    }
    .await;
    if let Err(e) = result {
        let batches: usize = answers.iter().map(|a| a.replies.len()).sum();
        tracing::error!(error = %e, batches, "event append group failed");
        for answer in answers {
            for reply in answer.replies {
                let _ = reply.send(Err(AppError::Internal(anyhow::anyhow!(
                    "event append failed: {e}"
                ))));
            }
        }
        return;
    }
    for Answer {
        replies,
        sizes,
        session: (org_id, session_id),
        first,
    } in answers
    {
        let Some(mut next) = first else {
            // Not live (or not there): every caller gets what the session says now, read once.
            let status = sessions::get(&appenders.db, org_id, session_id)
                .await
                .map(|s| s.status);
            for reply in replies {
                let answer = match &status {
                    Ok(status) => sessions::not_live(*status),
                    Err(AppError::NotFound(what)) => AppError::NotFound(what),
                    Err(e) => {
                        AppError::Internal(anyhow::anyhow!("reading the session failed: {e}"))
                    }
                };
                let _ = reply.send(Err(answer));
            }
            continue;
        };
        for (reply, n) in replies.into_iter().zip(sizes) {
            let _ = reply.send(Ok((next, next + n - 1)));
            next += n;
        }
    }
}
