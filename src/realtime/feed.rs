//! Per-session feeds: one task per session with subscribers on this node turns bus wake-ups
//! into ordered batches of events, read from the table once for all of the node's
//! subscribers (100 SSE clients on one session cost one query per wake-up, not 100).
//!
//! A [`Follower`] is how a subscriber reads a session's log without a gap or a duplicate:
//! it subscribes to the feed *before* it catches up from the table, skips what it has
//! already seen, and re-reads from the table whenever the feed jumps ahead of it (a lagged
//! receiver, a resync). The feed itself is only an accelerator; the table is the truth.
//!
//! What followers send is encoded once per node, not once per follower: a [`FeedBatch`]
//! carries its events' SSE frames, written by the first follower that needs them and handed to
//! the others as slices of the same bytes (1,000 subscribers of one session cost one JSON
//! encoding per event, and one write per subscriber per batch).

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock, Weak},
};

use bytes::Bytes;

use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tokio::sync::{Mutex, broadcast};
use uuid::Uuid;

use super::bus::{Bus, BusMessage};
use crate::entity::session_event;

/// Largest batch read from the table at once (events; with 256 KiB payloads at most
/// 50 MiB).
pub const READ_BATCH: u64 = 200;

/// How often a feed re-reads the table without a wake-up.
const SAFETY_READ: std::time::Duration = std::time::Duration::from_secs(1);

/// Writes one event as its SSE frame (`id:`, `event:`, `data:` lines and the blank line that
/// ends it) to the buffer. One encoding per node: every follower of a feed passes the same one.
pub type Encode = fn(&session_event::Model, &mut Vec<u8>);

/// Events committed together, in seq order, as the feed hands them to every follower.
pub struct FeedBatch {
    events: Vec<session_event::Model>,
    frames: OnceLock<Frames>,
}

/// A batch's frames, back to back; `ends[i]` is where event `i`'s frame ends.
struct Frames {
    bytes: Bytes,
    ends: Vec<usize>,
}

impl FeedBatch {
    fn frames(&self, encode: Encode) -> &Frames {
        self.frames.get_or_init(|| {
            let mut bytes = Vec::with_capacity(self.events.len() * 256);
            let mut ends = Vec::with_capacity(self.events.len());
            for e in &self.events {
                encode(e, &mut bytes);
                ends.push(bytes.len());
            }
            Frames {
                bytes: bytes.into(),
                ends,
            }
        })
    }
}

type Batch = Arc<FeedBatch>;

struct Shared {
    tx: broadcast::Sender<Batch>,
}

/// The node's feeds, keyed by session. Cheap to clone.
#[derive(Clone)]
pub struct Feeds {
    db: DatabaseConnection,
    bus: Bus,
    map: Arc<Mutex<HashMap<Uuid, Weak<Shared>>>>,
}

/// Events of `session_id` with `seq > after`, oldest first, at most `limit`.
pub async fn read_after(
    db: &DatabaseConnection,
    session_id: Uuid,
    after: i64,
    limit: u64,
) -> Result<Vec<session_event::Model>, DbErr> {
    session_event::Entity::find()
        .filter(session_event::Column::SessionId.eq(session_id))
        .filter(session_event::Column::Seq.gt(after))
        .order_by_asc(session_event::Column::Seq)
        .limit(limit)
        .all(db)
        .await
}

async fn max_seq(db: &DatabaseConnection, session_id: Uuid) -> Result<i64, DbErr> {
    Ok(session_event::Entity::find()
        .filter(session_event::Column::SessionId.eq(session_id))
        .order_by_desc(session_event::Column::Seq)
        .one(db)
        .await?
        .map(|e| e.seq)
        .unwrap_or(0))
}

impl Feeds {
    /// Feeds over `db`, woken by `bus`.
    pub fn new(db: DatabaseConnection, bus: Bus) -> Self {
        Self {
            db,
            bus,
            map: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A follower of `session_id` positioned after `after_seq`. Errors: database errors.
    pub async fn follow(&self, session_id: Uuid, after_seq: i64) -> Result<Follower, DbErr> {
        let shared = {
            let mut map = self.map.lock().await;
            match map.get(&session_id).and_then(Weak::upgrade) {
                Some(s) => s,
                None => {
                    let (tx, _) = broadcast::channel(64);
                    let shared = Arc::new(Shared { tx });
                    // Listen to the bus before reading where the feed starts, so nothing
                    // committed in between is missed.
                    let bus_rx = self.bus.subscribe();
                    let start = max_seq(&self.db, session_id).await?;
                    tokio::spawn(run_feed(
                        self.db.clone(),
                        session_id,
                        start,
                        bus_rx,
                        Arc::downgrade(&shared),
                    ));
                    map.retain(|_, w| w.strong_count() > 0);
                    map.insert(session_id, Arc::downgrade(&shared));
                    shared
                }
            }
        };
        let rx = shared.tx.subscribe();
        Ok(Follower {
            db: self.db.clone(),
            session_id,
            last: after_seq,
            rx,
            _shared: shared,
            pending: None,
            need_table: true,
            ended: false,
        })
    }
}

async fn run_feed(
    db: DatabaseConnection,
    session_id: Uuid,
    mut last: i64,
    mut bus_rx: broadcast::Receiver<BusMessage>,
    shared: Weak<Shared>,
) {
    // A slow safety net besides the bus: a wake-up lost to a failed read is made up within
    // a second.
    let mut safety = tokio::time::interval(SAFETY_READ);
    safety.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Wait for a wake-up for this session; drain what is queued (coalescing).
        let mut wake = tokio::select! {
            msg = bus_rx.recv() => match msg {
                Ok(BusMessage::Event(e)) => e.session_id == session_id && e.seq > last,
                Ok(BusMessage::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => true,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = safety.tick() => true,
        };
        loop {
            match bus_rx.try_recv() {
                Ok(BusMessage::Event(e)) => wake |= e.session_id == session_id && e.seq > last,
                Ok(BusMessage::Resync) | Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    wake = true
                }
                Err(_) => break,
            }
        }
        let Some(sh) = shared.upgrade() else { return };
        if !wake {
            continue;
        }
        loop {
            match read_after(&db, session_id, last, READ_BATCH).await {
                Ok(batch) if batch.is_empty() => break,
                Ok(batch) => {
                    let full = batch.len() as u64 == READ_BATCH;
                    last = batch.last().map(|e| e.seq).unwrap_or(last);
                    let _ = sh.tx.send(Arc::new(FeedBatch {
                        events: batch,
                        frames: OnceLock::new(),
                    }));
                    if !full {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, %session_id, "feed read failed");
                    break;
                }
            }
        }
    }
}

/// Reads one session's log in order, from a position, without gaps or duplicates: first
/// from the table, then live from the feed; as SSE frames ([`Follower::next_frames`]).
pub struct Follower {
    db: DatabaseConnection,
    session_id: Uuid,
    last: i64,
    rx: broadcast::Receiver<Batch>,
    _shared: Arc<Shared>,
    /// A live batch and the index of its first event not yet sent.
    pending: Option<(Batch, usize)>,
    need_table: bool,
    ended: bool,
}

impl Follower {
    /// The frames of the next events after the last one returned, waiting for them if there
    /// are none yet: at least one event, and up to the end of a batch. `None` once the event
    /// for which `is_last` holds has been returned (nothing follows it). Errors: database
    /// errors.
    pub async fn next_frames(
        &mut self,
        encode: Encode,
        is_last: fn(&session_event::Model) -> bool,
    ) -> Result<Option<Bytes>, DbErr> {
        loop {
            if self.ended {
                return Ok(None);
            }
            if let Some((batch, start)) = self.pending.take() {
                let rest = &batch.events[start..];
                let stop = match rest.iter().position(is_last) {
                    Some(i) => {
                        self.ended = true;
                        start + i + 1
                    }
                    None => batch.events.len(),
                };
                let frames = batch.frames(encode);
                let from = start.checked_sub(1).map_or(0, |i| frames.ends[i]);
                self.last = batch.events[stop - 1].seq;
                return Ok(Some(frames.bytes.slice(from..frames.ends[stop - 1])));
            }
            // Catch-up and repair read the table; once caught up, only the feed is read.
            if self.need_table {
                let rows = read_after(&self.db, self.session_id, self.last, READ_BATCH).await?;
                self.need_table = rows.len() as u64 == READ_BATCH;
                if !rows.is_empty() {
                    let mut bytes = Vec::with_capacity(rows.len() * 256);
                    for e in &rows {
                        encode(e, &mut bytes);
                        self.last = e.seq;
                        if is_last(e) {
                            self.ended = true;
                            break;
                        }
                    }
                    return Ok(Some(bytes.into()));
                }
            }
            match self.rx.recv().await {
                Ok(batch) => {
                    let start = batch.events.partition_point(|e| e.seq <= self.last);
                    match batch.events.get(start) {
                        None => {}
                        Some(first) if first.seq == self.last + 1 => {
                            self.pending = Some((batch, start));
                        }
                        // The feed is ahead of us: repair from the table.
                        Some(_) => self.need_table = true,
                    }
                }
                Err(_) => self.need_table = true,
            }
        }
    }
}
