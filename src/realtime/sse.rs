//! Server-sent event plumbing for live streams: a producer task per subscriber feeds a
//! bounded channel that the response streams from; the task re-checks the caller's access
//! every [`REAUTHORIZE`] (through a callback) and ends when the client goes away, access is
//! gone or the source ends. [`event_stream`] encodes the items (`data:` = JSON) with a
//! heartbeat comment.
//!
//! Not here: the HTTP contract (the item types, the operations, who may read what). Callers
//! pass in the mapping from rows to items and the re-authorization check.

use std::{future::Future, time::Duration};

use futures_util::{StreamExt, stream::BoxStream};
use poem_openapi::{
    payload::EventStream,
    types::{ToJSON, Type},
};
use sea_orm::DatabaseConnection;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use super::{
    bus::{Bus, BusMessage},
    feed::Follower,
};
use crate::entity::{Tenant, session_event};

/// How often a live stream re-checks that its caller may still read it.
pub const REAUTHORIZE: Duration = Duration::from_secs(30);

/// Items buffered between a producer task and its client.
const CHANNEL_CAPACITY: usize = 64;

/// A stream of what a producer task sends; it ends when the task drops its sender, and
/// dropping it (the client went away) closes the channel, which ends the task.
pub fn receiver_stream<T: Send + 'static>(rx: mpsc::Receiver<T>) -> BoxStream<'static, T> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) })
        .boxed()
}

/// An SSE `data:` line's JSON (compact; empty if it cannot be encoded).
pub fn sse_data(value: &impl ToJSON) -> String {
    serde_json::to_string(&value.to_json()).unwrap_or_default()
}

/// The `text/event-stream` response of `items`: each item is sent with `data:` = its JSON,
/// and `event:` and `id:` as `meta` returns them `(event type, id)`; a `:` heartbeat comment
/// every `heartbeat` while nothing else is sent.
pub fn event_stream<T>(
    items: BoxStream<'static, T>,
    heartbeat: Duration,
    meta: impl Fn(&T) -> (&'static str, String) + Send + 'static,
) -> EventStream<BoxStream<'static, T>>
where
    T: Type + ToJSON + Send + 'static,
{
    EventStream::new(items)
        .keep_alive(heartbeat)
        .to_event(move |item: T| {
            let (event_type, id) = meta(&item);
            poem::web::sse::Event::message(sse_data(&item))
                .event_type(event_type)
                .id(id)
        })
}

/// Runs `produce` (which sends into a clone of the returned stream's channel) in a task of its
/// own, and ends it when the client goes away (the stream is dropped) or when `still_allowed`,
/// called every [`REAUTHORIZE`] after the first (the caller was just authorized), resolves to
/// `false`. The stream ends when the task does.
fn guarded<T, A, Fut, P>(
    mut still_allowed: A,
    produce: impl FnOnce(mpsc::Sender<T>) -> P,
) -> BoxStream<'static, T>
where
    T: Send + 'static,
    A: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
    P: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<T>(CHANNEL_CAPACITY);
    let producer = produce(tx.clone());
    tokio::spawn(async move {
        let allowed = async {
            let mut recheck = tokio::time::interval(REAUTHORIZE);
            recheck.tick().await;
            loop {
                recheck.tick().await;
                if !still_allowed().await {
                    return;
                }
            }
        };
        tokio::select! {
            _ = tx.closed() => {}
            () = allowed => {}
            () = producer => {}
        }
    });
    receiver_stream(rx)
}

/// Streams one session's log from `follower` (see [`Follower`]: replay, then live, without a
/// gap or a duplicate), each event mapped by `to_item`. The stream ends after an event for
/// which `is_last` holds (the session's final status), when `still_allowed` (called every
/// [`REAUTHORIZE`]) resolves to `false`, or when reading fails (logged).
pub fn follow_session<T, A, Fut>(
    mut follower: Follower,
    is_last: impl Fn(&session_event::Model) -> bool + Send + 'static,
    to_item: impl Fn(session_event::Model) -> T + Send + 'static,
    still_allowed: A,
) -> BoxStream<'static, T>
where
    T: Send + 'static,
    A: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    guarded(still_allowed, move |tx| async move {
        loop {
            let batch = match follower.next_batch().await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "event stream read failed");
                    return;
                }
            };
            for e in batch {
                let last = is_last(&e);
                if tx.send(to_item(e)).await.is_err() || last {
                    return;
                }
            }
        }
    })
}

/// Streams the `status` events of every session of `org_id` as they are committed (live
/// only: nothing is replayed), each read from `db` (visibility: the row must belong to
/// `org_id` and be a `status` event) and mapped by `to_item` (`None` skips it). Listens to
/// `bus` from the call on. The stream ends when `still_allowed` (called every
/// [`REAUTHORIZE`]) resolves to `false` or the bus closes; a lagging receiver skips what it
/// missed (logged).
pub fn follow_org_status<T, A, Fut>(
    db: DatabaseConnection,
    bus: &Bus,
    org_id: Uuid,
    to_item: impl Fn(session_event::Model) -> Option<T> + Send + 'static,
    still_allowed: A,
) -> BoxStream<'static, T>
where
    T: Send + 'static,
    A: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let mut bus = bus.subscribe();
    guarded(still_allowed, move |tx| async move {
        loop {
            let e = match bus.recv().await {
                Ok(BusMessage::Event(e)) if e.status && e.org_id == org_id => e,
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "org stream lagged");
                    continue;
                }
                Err(_) => return,
            };
            // Visibility: the event must belong to a session of this org.
            let row = session_event::Entity::find_in_by_id(org_id, (e.session_id, e.seq))
                .one(&db)
                .await;
            let Ok(Some(row)) = row else { continue };
            if row.kind != session_event::Kind::Status {
                continue;
            }
            let Some(item) = to_item(row) else { continue };
            if tx.send(item).await.is_err() {
                return;
            }
        }
    })
}
