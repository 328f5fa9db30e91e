//! The desktop relay: RFB (RFC 6143) between a viewer's WebSocket and the session's desktop.
//!
//! **Authentication happens upstream.** [`connect_desktop`] opens the TCP connection to the
//! desktop and runs VNC Authentication with the password of the viewer's mode (the
//! view-only password for watchers, so the VNC server itself drops their input). The viewer
//! is then offered only security type None (§7.2.1) by [`relay`]: no VNC password ever
//! reaches a browser. The viewer's ClientInit is replaced by shared-flag = 1, so a viewer
//! cannot disconnect the others (or the agent's own link) by asking for exclusive access.
//! After ClientInit, bytes flow both ways unchanged, as binary WebSocket messages (the
//! `binary` subprotocol noVNC speaks).
//!
//! **Bounded.** Reads from the desktop are at most [`READ_CHUNK`] (64 KiB) and the next read
//! waits until the previous message was written to the viewer's socket, so a slow viewer
//! slows only its own upstream connection (where the VNC server defers updates), never the
//! server's memory. Messages from the viewer are limited to [`MAX_VIEWER_MESSAGE`].
//!
//! **Tidy.** The viewer is pinged every `ping`, and dropped when silent, or not reading, for
//! two; the
//! connection closes after `idle` without an RFB byte either way (4008), when the caller's
//! access check fails (4003, checked every `reauthorize`), when the session leaves
//! `running` (4001, [`left_running`]) or when the desktop closes (4010). [`ViewerSlots`]
//! caps viewers per session on this node.
//!
//! Metrics: `agentdesk_desktop_relay_bytes_total{direction="to_viewer"|"from_viewer"}`.
//!
//! Not here: tickets and who may watch (`domain::viewers`), the HTTP upgrade (`api`).

use std::{
    collections::HashMap,
    future::Future,
    io,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use poem::web::websocket::{CloseCode, Message};
use sea_orm::{DatabaseConnection, EntityTrait};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::broadcast::error::RecvError,
    time::Instant,
};
use uuid::Uuid;

use super::bus::{Bus, BusMessage};
use crate::{
    desktop::{
        LinkError, LinkTarget,
        rfb::handshake::{self, SECURITY_NONE, Version},
    },
    entity::session::{self, Status},
};

/// Largest read from the desktop, and so the largest message to a viewer (bytes).
pub const READ_CHUNK: usize = 64 * 1024;
/// Largest message a viewer may send (bytes): RFB client messages are small; a
/// ClientCutText of up to this size still fits.
pub const MAX_VIEWER_MESSAGE: usize = 1 << 20;
/// Time allowed for the TCP connect to the desktop.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for each side's RFB handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for sending the close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Viewers per session on this node: [`ViewerSlots::try_take`] hands out a slot while there
/// are fewer than the cap; dropping the [`ViewerSlot`] gives it back.
#[derive(Clone, Default)]
pub struct ViewerSlots {
    taken: Arc<Mutex<HashMap<Uuid, u32>>>,
}

/// One viewer's place in [`ViewerSlots`], given back when dropped.
pub struct ViewerSlot {
    slots: ViewerSlots,
    session_id: Uuid,
}

impl ViewerSlots {
    /// A slot for one more viewer of `session_id`, or `None` when it already has `max`.
    pub fn try_take(&self, session_id: Uuid, max: u32) -> Option<ViewerSlot> {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        let n = taken.entry(session_id).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ViewerSlot {
            slots: self.clone(),
            session_id,
        })
    }

    /// How many viewers `session_id` has on this node.
    pub fn count(&self, session_id: Uuid) -> u32 {
        let taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        taken.get(&session_id).copied().unwrap_or(0)
    }
}

impl Drop for ViewerSlot {
    fn drop(&mut self) {
        let mut taken = self.slots.taken.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = taken.get_mut(&self.session_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                taken.remove(&self.session_id);
            }
        }
    }
}

/// Connects to the desktop at `target` and runs the RFB handshake up to a successful
/// SecurityResult with `target.password` (VNC Authentication); the next message is the
/// ClientInit that [`relay`] sends. Errors: [`LinkError::Io`] (also for the 5 s connect and
/// 10 s handshake deadlines), [`LinkError::Protocol`], [`LinkError::NoVncAuth`],
/// [`LinkError::AuthFailed`].
pub async fn connect_desktop(target: &LinkTarget) -> Result<TcpStream, LinkError> {
    let timed_out = |what: &str| LinkError::Io(io::Error::new(io::ErrorKind::TimedOut, what));
    let mut stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| timed_out("connecting to the desktop timed out"))??;
    stream.set_nodelay(true)?;
    tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        handshake::authenticate(&mut stream, &target.password),
    )
    .await
    .map_err(|_| timed_out("the desktop's RFB handshake timed out"))??;
    Ok(stream)
}

/// The relay's timing.
#[derive(Clone, Copy, Debug)]
pub struct RelayOptions {
    /// Interval of WebSocket pings; a viewer silent for two is gone.
    pub ping: Duration,
    /// Close after this long without an RFB byte either way.
    pub idle: Duration,
    /// Interval of the access re-check.
    pub reauthorize: Duration,
}

/// Why a relayed connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The viewer closed the WebSocket.
    ViewerClosed,
    /// The viewer's connection broke or stopped answering pings.
    ViewerGone,
    /// The viewer broke RFB or sent a text message (close 1002).
    ViewerProtocol,
    /// The desktop closed its connection or failed (close 4010).
    DesktopClosed,
    /// The session left `running` (close 4001).
    SessionEnded,
    /// The access re-check failed: a removed member, a revoked key (close 4003).
    AccessRevoked,
    /// No RFB byte either way for `idle` (close 4008).
    Idle,
}

impl End {
    /// A stable name: `viewer_closed`, `viewer_gone`, `viewer_protocol_error`,
    /// `desktop_closed`, `session_ended`, `access_revoked`, `idle`.
    pub fn as_str(self) -> &'static str {
        match self {
            End::ViewerClosed => "viewer_closed",
            End::ViewerGone => "viewer_gone",
            End::ViewerProtocol => "viewer_protocol_error",
            End::DesktopClosed => "desktop_closed",
            End::SessionEnded => "session_ended",
            End::AccessRevoked => "access_revoked",
            End::Idle => "idle",
        }
    }

    /// The close frame the server sends (RFC 6455 §7.4; 4000–4999 are ours), if any: none
    /// when the viewer closed (its close is answered as it is) or is gone.
    pub fn close_frame(self) -> Option<(u16, &'static str)> {
        match self {
            End::ViewerClosed | End::ViewerGone => None,
            End::ViewerProtocol => Some((1002, "RFB protocol error")),
            End::DesktopClosed => Some((4010, "desktop connection lost")),
            End::SessionEnded => Some((4001, "the session is no longer running")),
            End::AccessRevoked => Some((4003, "access revoked")),
            End::Idle => Some((4008, "idle timeout")),
        }
    }
}

/// What a relayed connection did.
#[derive(Clone, Copy, Debug)]
pub struct Report {
    /// Why it ended.
    pub end: End,
    /// RFB bytes sent to the viewer.
    pub bytes_to_viewer: u64,
    /// RFB bytes sent by the viewer to the desktop.
    pub bytes_from_viewer: u64,
    /// From the upgrade to the end.
    pub duration: Duration,
}

/// Relays RFB between the viewer's WebSocket `ws` and `desktop` (a connection
/// [`connect_desktop`] authenticated) until one of them ends, `still_allowed` (called every
/// `opts.reauthorize`) resolves to `false`, or `session_ended` resolves; then closes both
/// and reports. First the viewer's side of the handshake: ProtocolVersion 3.8 (3.3 and 3.7
/// viewers are answered in their version), security type None, SecurityResult OK on 3.8, and
/// its ClientInit, forwarded as shared.
pub async fn relay<W, A, Fut>(
    ws: W,
    desktop: TcpStream,
    opts: RelayOptions,
    mut still_allowed: A,
    session_ended: impl Future<Output = ()>,
) -> Report
where
    W: Stream<Item = io::Result<Message>> + Sink<Message, Error = io::Error> + Unpin,
    A: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    let since = |t: &AtomicU64| started.elapsed().as_millis() as u64 - t.load(Ordering::Relaxed);
    let now = || started.elapsed().as_millis() as u64;
    let (to_viewer, from_viewer) = (AtomicU64::new(0), AtomicU64::new(0));
    let (last_heard, last_rfb) = (AtomicU64::new(0), AtomicU64::new(0));
    let to_viewer_total =
        metrics::counter!("agentdesk_desktop_relay_bytes_total", "direction" => "to_viewer");
    let from_viewer_total =
        metrics::counter!("agentdesk_desktop_relay_bytes_total", "direction" => "from_viewer");
    let (mut sink, mut inbound) = ws.split();
    let (mut up_read, mut up_write) = desktop.into_split();

    let end =
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, viewer_handshake(&mut sink, &mut inbound))
            .await
        {
            Ok(Ok(rest)) => {
                // ClientInit, always shared, then whatever the viewer sent after it.
                let mut first = Vec::with_capacity(1 + rest.len());
                first.push(1);
                first.extend_from_slice(&rest);
                match up_write.write_all(&first).await {
                    Ok(()) => None,
                    Err(_) => Some(End::DesktopClosed),
                }
            }
            Ok(Err(end)) => Some(end),
            Err(_) => Some(End::ViewerProtocol),
        };

    let end = match end {
        Some(end) => end,
        None => {
            // A viewer that answers nothing, or stops reading, for two pings is gone.
            let stalled = 2 * opts.ping;
            let down = async {
                let mut ping = tokio::time::interval(opts.ping);
                ping.tick().await;
                loop {
                    let mut buf = Vec::with_capacity(READ_CHUNK);
                    tokio::select! {
                        read = up_read.read_buf(&mut buf) => match read {
                            Ok(0) | Err(_) => return End::DesktopClosed,
                            Ok(n) => {
                                if !sent(&mut sink, Message::Binary(buf), stalled).await {
                                    return End::ViewerGone;
                                }
                                to_viewer.fetch_add(n as u64, Ordering::Relaxed);
                                to_viewer_total.increment(n as u64);
                                last_rfb.store(now(), Ordering::Relaxed);
                            }
                        },
                        _ = ping.tick() => {
                            if since(&last_heard) > stalled.as_millis() as u64
                                || !sent(&mut sink, Message::Ping(Vec::new()), stalled).await
                            {
                                return End::ViewerGone;
                            }
                        }
                    }
                }
            };
            let up = async {
                while let Some(msg) = inbound.next().await {
                    last_heard.store(now(), Ordering::Relaxed);
                    match msg {
                        Ok(Message::Binary(b)) => {
                            from_viewer.fetch_add(b.len() as u64, Ordering::Relaxed);
                            from_viewer_total.increment(b.len() as u64);
                            last_rfb.store(now(), Ordering::Relaxed);
                            if up_write.write_all(&b).await.is_err() {
                                return End::DesktopClosed;
                            }
                        }
                        Ok(Message::Ping(_) | Message::Pong(_)) => {}
                        Ok(Message::Close(_)) => return End::ViewerClosed,
                        Ok(Message::Text(_)) => return End::ViewerProtocol,
                        Err(_) => return End::ViewerGone,
                    }
                }
                End::ViewerGone
            };
            let revoked = async {
                let mut recheck = tokio::time::interval(opts.reauthorize);
                recheck.tick().await;
                loop {
                    recheck.tick().await;
                    if !still_allowed().await {
                        return;
                    }
                }
            };
            let idle = async {
                let mut tick = tokio::time::interval(opts.idle.min(Duration::from_secs(5)));
                loop {
                    tick.tick().await;
                    if since(&last_rfb) >= opts.idle.as_millis() as u64 {
                        return;
                    }
                }
            };
            tokio::select! {
                end = down => end,
                end = up => end,
                () = session_ended => End::SessionEnded,
                () = revoked => End::AccessRevoked,
                () = idle => End::Idle,
            }
        }
    };

    if let Some((code, reason)) = end.close_frame() {
        let frame = Message::Close(Some((CloseCode::from(code), reason.to_owned())));
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(frame)).await;
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
    let _ = up_write.shutdown().await;
    Report {
        end,
        bytes_to_viewer: to_viewer.load(Ordering::Relaxed),
        bytes_from_viewer: from_viewer.load(Ordering::Relaxed),
        duration: started.elapsed(),
    }
}

/// Sends `msg`; `false` when the viewer's socket failed or did not take it within `limit`
/// (it stopped reading: backpressure reached us).
async fn sent<Si>(sink: &mut Si, msg: Message, limit: Duration) -> bool
where
    Si: Sink<Message, Error = io::Error> + Unpin,
{
    matches!(
        tokio::time::timeout(limit, sink.send(msg)).await,
        Ok(Ok(()))
    )
}

/// Bytes read from a viewer's binary messages, for the handshake.
#[derive(Default)]
struct Inbox {
    buf: Vec<u8>,
}

impl Inbox {
    /// The next `n` bytes from the viewer. Errors: the [`End`] its messages amount to.
    async fn take<St>(&mut self, inbound: &mut St, n: usize) -> Result<Vec<u8>, End>
    where
        St: Stream<Item = io::Result<Message>> + Unpin,
    {
        while self.buf.len() < n {
            match inbound.next().await {
                Some(Ok(Message::Binary(b))) => self.buf.extend_from_slice(&b),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Text(_))) => return Err(End::ViewerProtocol),
                Some(Ok(Message::Close(_))) => return Err(End::ViewerClosed),
                Some(Err(_)) | None => return Err(End::ViewerGone),
            }
        }
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }
}

/// The server side of the handshake with the viewer (§7.1, §7.2.1, §7.3.1), offering only
/// security type None. Returns what the viewer sent after its ClientInit (usually nothing).
async fn viewer_handshake<Si, St>(sink: &mut Si, inbound: &mut St) -> Result<Vec<u8>, End>
where
    Si: Sink<Message, Error = io::Error> + Unpin,
    St: Stream<Item = io::Result<Message>> + Unpin,
{
    let send = |bytes: Vec<u8>| Message::Binary(bytes);
    let mut inbox = Inbox::default();
    sink.send(send(Version::V3_8.greeting().to_vec()))
        .await
        .map_err(|_| End::ViewerGone)?;
    let answer = inbox.take(inbound, 12).await?;
    let answer: [u8; 12] = answer.try_into().map_err(|_| End::ViewerProtocol)?;
    let version = Version::answer_to(&answer).map_err(|_| End::ViewerProtocol)?;
    if version == Version::V3_3 {
        // The server decides (§7.1.2): a u32 security type.
        sink.send(send(u32::from(SECURITY_NONE).to_be_bytes().to_vec()))
            .await
            .map_err(|_| End::ViewerGone)?;
    } else {
        sink.send(send(vec![1, SECURITY_NONE]))
            .await
            .map_err(|_| End::ViewerGone)?;
        let chosen = inbox.take(inbound, 1).await?;
        if chosen != [SECURITY_NONE] {
            if version == Version::V3_8 {
                let reason = b"only security type None is offered";
                let mut failed = 1u32.to_be_bytes().to_vec();
                failed.extend_from_slice(&(reason.len() as u32).to_be_bytes());
                failed.extend_from_slice(reason);
                let _ = sink.send(send(failed)).await;
            }
            return Err(End::ViewerProtocol);
        }
        if version == Version::V3_8 {
            // SecurityResult OK (3.7 sends none for None, §7.1.3).
            sink.send(send(0u32.to_be_bytes().to_vec()))
                .await
                .map_err(|_| End::ViewerGone)?;
        }
    }
    let _client_init = inbox.take(inbound, 1).await?;
    Ok(inbox.buf)
}

/// Resolves when session `session_id` is no longer `running` (or is gone): listens to `bus`
/// and re-reads the session's status on each of its status events, on a resync and when
/// the listener lagged; also when the bus closes (the server is stopping).
pub async fn left_running(db: DatabaseConnection, bus: Bus, session_id: Uuid) {
    let mut rx = bus.subscribe();
    // A failed read keeps the viewer: only a status actually read ends it.
    let running = || async {
        match session::Entity::find_by_id(session_id).one(&db).await {
            Ok(Some(s)) => s.status == Status::Running,
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(session_id = %session_id, error = %e, "viewer: reading the session failed");
                true
            }
        }
    };
    if !running().await {
        return;
    }
    loop {
        let recheck = match rx.recv().await {
            Ok(BusMessage::Event(e)) => e.session_id == session_id && e.status,
            Ok(BusMessage::Resync) | Err(RecvError::Lagged(_)) => true,
            Err(RecvError::Closed) => return,
        };
        if recheck && !running().await {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
