//! Server-sent event plumbing for live streams: a producer task per subscriber feeds a
//! bounded channel that the response streams from; the task re-checks the caller's access
//! every [`REAUTHORIZE`] (through a callback) and ends when the client goes away, access is
//! gone or the source ends. [`event_stream`] encodes the items (`data:` = JSON) with a
//! heartbeat comment.
//!
//! Not here: the HTTP contract (the item types, the operations, who may read what). Callers
//! pass in the mapping from rows to items and the re-authorization check.

use std::{future::Future, time::Duration};

use bytes::Bytes;
use futures_util::{StreamExt, stream::BoxStream};
use poem_openapi::{
    payload::{EventStream, Payload},
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::{ToJSON, Type},
};
use sea_orm::DatabaseConnection;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use super::{
    bus::{Bus, BusMessage},
    feed::{Encode, Follower},
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
/// gap or a duplicate) as SSE frames written by `encode` (shared by every subscriber of the
/// node, see [`super::feed`]); ends after the event for which `is_last` holds, when the client
/// goes away, or when `still_allowed` says no.
pub fn follow_session<A, Fut>(
    mut follower: Follower,
    encode: Encode,
    is_last: fn(&session_event::Model) -> bool,
    still_allowed: A,
) -> BoxStream<'static, Bytes>
where
    A: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    guarded(still_allowed, move |tx| async move {
        loop {
            match follower.next_frames(encode, is_last).await {
                Ok(Some(frames)) => {
                    if tx.send(frames).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "event stream read failed");
                    return;
                }
            }
        }
    })
}

/// Writes the SSE frame of one item: `id: <id>`, `event: <event>` (left out for `message`,
/// the default type), `data: <item as JSON>` (one line: compact JSON has none), then a blank
/// line; the bytes [`event_stream`] writes for the same item.
pub fn write_frame(out: &mut Vec<u8>, id: &str, event: &str, item: &impl ToJSON) {
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(id.as_bytes());
    if event != "message" {
        out.extend_from_slice(b"\nevent: ");
        out.extend_from_slice(event.as_bytes());
    }
    out.extend_from_slice(b"\ndata: ");
    let _ = serde_json::to_writer(&mut *out, &item.to_json());
    out.extend_from_slice(b"\n\n");
}

/// A `text/event-stream` response of frames encoded beforehand ([`write_frame`]), with a `:`
/// heartbeat comment every `heartbeat`. In the spec it is exactly poem-openapi's
/// `EventStream` of `E` (an `array` of `E`, format `event-stream`): the same schema, the same
/// bytes on the wire, without encoding each item once per subscriber.
pub struct EncodedEventStream<E> {
    frames: BoxStream<'static, Bytes>,
    heartbeat: Duration,
    _item: std::marker::PhantomData<fn() -> E>,
}

impl<E> EncodedEventStream<E> {
    /// The response streaming `frames`.
    pub fn new(frames: BoxStream<'static, Bytes>, heartbeat: Duration) -> Self {
        Self {
            frames,
            heartbeat,
            _item: std::marker::PhantomData,
        }
    }
}

impl<E: Type + ToJSON> Payload for EncodedEventStream<E> {
    const CONTENT_TYPE: &'static str = "text/event-stream";

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            items: Some(Box::new(E::schema_ref())),
            ..MetaSchema::new_with_format("array", "event-stream")
        }))
    }

    fn register(registry: &mut Registry) {
        E::register(registry);
    }
}

impl<E> poem::IntoResponse for EncodedEventStream<E> {
    fn into_response(self) -> poem::Response {
        let comment = Bytes::from_static(b":\n\n");
        let mut frames = self.frames;
        let mut beat =
            tokio::time::interval_at(tokio::time::Instant::now() + self.heartbeat, self.heartbeat);
        let body = futures_util::stream::poll_fn(move |cx| {
            if let std::task::Poll::Ready(frame) = frames.poll_next_unpin(cx) {
                beat.reset();
                return std::task::Poll::Ready(frame.map(Ok::<_, std::io::Error>));
            }
            beat.poll_tick(cx).map(|_| Some(Ok(comment.clone())))
        });
        poem::Response::builder()
            .content_type("text/event-stream")
            .header("X-Accel-Buffering", "no")
            .header("Cache-Control", "no-cache")
            .body(poem::Body::from_bytes_stream(body))
    }
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
