//! The link to one desktop: the [`DesktopLink`] trait the executor drives, and [`RfbLink`],
//! its implementation over RFB (RFC 6143) on TCP.
//!
//! One background task owns the socket: it reads server messages continuously (applying
//! framebuffer updates to its local copy and answering clipboard requests at any time) and
//! takes requests from a bounded channel, each answered through a oneshot. A capture sends a
//! non-incremental FramebufferUpdateRequest for the whole screen and resolves with the next
//! complete update (servers send updates only when asked, one per request).
//!
//! When the connection drops, the task reconnects with exponential backoff
//! ([`RECONNECT_FIRST_DELAY`] doubling to [`RECONNECT_MAX_DELAY`], giving up after
//! [`RECONNECT_GIVE_UP`] per loss) and announces the clipboard again; calls made meanwhile
//! wait. Once it gives up, every call fails with [`LinkError::Gone`] and
//! [`RfbLink::lost`] resolves. A call answered `Ok` has been written to the socket; an
//! event written in the instant before a drop is noticed is lost, as with any TCP client.
//! The password never reaches a log: [`LinkTarget`]'s `Debug` redacts it.
//!
//! Not here: the protocol itself (`rfb`), what commands map to (`actions`).

mod task;

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, watch};

pub use super::error::LinkError;
use super::rfb::framebuffer::bgrx_to_rgb;
use task::{RawFrame, Request, Status, Task};

/// First pause before a reconnect attempt after a failed one (ms).
pub const RECONNECT_FIRST_DELAY: Duration = Duration::from_millis(50);
/// Longest pause between reconnect attempts (the pause doubles up to it).
pub const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(2);
/// How long the link keeps trying after it lost its connection before it gives up.
pub const RECONNECT_GIVE_UP: Duration = Duration::from_secs(10);
/// Longest one connect (TCP connect, handshake and first update) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests that may wait for the task before callers wait to enqueue.
pub const REQUEST_QUEUE: usize = 64;

/// One full framebuffer: `width × height` pixels, packed RGB, 8 bits per channel, row-major
/// from the top left (`rgb.len() == width × height × 3` bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// Width (pixels).
    pub width: u32,
    /// Height (pixels).
    pub height: u32,
    /// The pixels, R, G, B.
    pub rgb: Vec<u8>,
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("rgb_bytes", &self.rgb.len())
            .finish()
    }
}

/// What the executor needs of a desktop. Coordinates and sizes are framebuffer pixels.
#[async_trait]
pub trait DesktopLink: Send + Sync {
    /// The framebuffer size (width, height) in pixels, as of the last update.
    fn size(&self) -> (u32, u32);

    /// Moves the pointer to (`x`, `y`) with `buttons` held (RFC 6143 §7.5.5 PointerEvent:
    /// bit 0 left, 1 middle, 2 right, 3/4 wheel up/down, 5/6 wheel left/right). The server
    /// clamps positions outside the screen. Errors: [`LinkError::Gone`].
    async fn pointer(&self, x: u16, y: u16, buttons: u8) -> Result<(), LinkError>;

    /// Presses (`down`) or releases the key `keysym` (RFC 6143 §7.5.4 KeyEvent; see
    /// `desktop::keys`). Errors: [`LinkError::Gone`].
    async fn key(&self, keysym: u32, down: bool) -> Result<(), LinkError>;

    /// Makes `text` the desktop's clipboard (Extended Clipboard, else legacy ClientCutText,
    /// RFC 6143 §7.5.6). Errors: [`LinkError::Unsupported`] (legacy server and text outside
    /// Latin-1, NUL characters, over 16 MiB), [`LinkError::Gone`].
    async fn cut_text(&self, text: &str) -> Result<(), LinkError>;

    /// The whole screen as of a full (non-incremental) update requested now (RFC 6143
    /// §7.5.3, §7.6.1). Errors: [`LinkError::Gone`].
    async fn capture(&self) -> Result<Frame, LinkError>;
}

/// Where a desktop's RFB server listens and its VNC password.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkTarget {
    /// Host name or address, e.g. `127.0.0.1`.
    pub host: String,
    /// TCP port, e.g. 5901.
    pub port: u16,
    /// The VNC password (only its first 8 bytes count, RFC 6143 §7.2.2). Never logged.
    pub password: String,
}

impl fmt::Debug for LinkTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The reconnect policy: the pause doubles from `first_delay` up to `max_delay`, and the
/// link gives up `give_up` after the connection was lost. The first attempt is immediate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reconnect {
    /// Pause after the first failed attempt.
    pub first_delay: Duration,
    /// Longest pause.
    pub max_delay: Duration,
    /// Total time per loss before the link is gone.
    pub give_up: Duration,
}

impl Default for Reconnect {
    /// [`RECONNECT_FIRST_DELAY`], [`RECONNECT_MAX_DELAY`], [`RECONNECT_GIVE_UP`].
    fn default() -> Self {
        Self {
            first_delay: RECONNECT_FIRST_DELAY,
            max_delay: RECONNECT_MAX_DELAY,
            give_up: RECONNECT_GIVE_UP,
        }
    }
}

/// A [`DesktopLink`] over RFB on TCP, with reconnects. Dropping it (or [`close`](Self::close))
/// ends the background task and the connection.
pub struct RfbLink {
    requests: mpsc::Sender<Request>,
    status: watch::Receiver<Status>,
    closed: watch::Sender<bool>,
    size: Arc<AtomicU64>,
    endpoint: String,
}

impl fmt::Debug for RfbLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RfbLink")
            .field("endpoint", &self.endpoint)
            .field("size", &self.size())
            .finish()
    }
}

impl RfbLink {
    /// Connects to `target` (TCP, handshake with VNC Authentication, first full update)
    /// with the default [`Reconnect`] policy. Errors: [`LinkError::Io`] (unreachable, or no
    /// session within [`CONNECT_TIMEOUT`]), [`LinkError::Protocol`],
    /// [`LinkError::NoVncAuth`], [`LinkError::AuthFailed`]; the first connect is not retried.
    pub async fn connect(target: LinkTarget) -> Result<Self, LinkError> {
        Self::connect_with(target, Reconnect::default()).await
    }

    /// As [`connect`](Self::connect), with the reconnect policy `reconnect`.
    pub async fn connect_with(target: LinkTarget, reconnect: Reconnect) -> Result<Self, LinkError> {
        let conn = task::open(&target, CONNECT_TIMEOUT).await?;
        let fb = conn.framebuffer();
        let size = Arc::new(AtomicU64::new(pack(fb.width(), fb.height())));
        let (requests, receiver) = mpsc::channel(REQUEST_QUEUE);
        let (status_sender, status) = watch::channel(Status::Up);
        let (closed, closed_receiver) = watch::channel(false);
        let endpoint = format!("{}:{}", target.host, target.port);
        let task = Task::new(
            target,
            reconnect,
            receiver,
            closed_receiver,
            status_sender,
            Arc::clone(&size),
        );
        tokio::spawn(task.run(conn));
        Ok(Self {
            requests,
            status,
            closed,
            size,
            endpoint,
        })
    }

    /// Resolves once the link has given up on its desktop (or was closed), with the
    /// [`LinkError::Gone`] every call now fails with; the executor fails the session with
    /// its text (`desktop lost: <reason>`).
    pub async fn lost(&self) -> LinkError {
        let mut status = self.status.clone();
        let reason = match status.wait_for(|s| matches!(s, Status::Gone(_))).await {
            Ok(status) => status.reason(),
            Err(_) => None,
        };
        LinkError::Gone(reason.unwrap_or_else(|| "the link's task has ended".to_owned()))
    }

    /// Ends the link: the connection closes, waiting calls and every later one fail with
    /// [`LinkError::Gone`] ("the link was closed"), [`lost`](Self::lost) resolves.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// The error for a link whose task is gone.
    fn gone(&self) -> LinkError {
        let reason = self.status.borrow().reason();
        LinkError::Gone(reason.unwrap_or_else(|| "the link's task has ended".to_owned()))
    }

    /// Sends the request `make` builds and waits for its answer.
    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, LinkError>>) -> Request,
    ) -> Result<T, LinkError> {
        if let Some(reason) = self.status.borrow().reason() {
            return Err(LinkError::Gone(reason));
        }
        let (reply, answer) = oneshot::channel();
        if self.requests.send(make(reply)).await.is_err() {
            return Err(self.gone());
        }
        answer.await.unwrap_or_else(|_| Err(self.gone()))
    }
}

#[async_trait]
impl DesktopLink for RfbLink {
    fn size(&self) -> (u32, u32) {
        unpack(self.size.load(Ordering::Relaxed))
    }

    async fn pointer(&self, x: u16, y: u16, buttons: u8) -> Result<(), LinkError> {
        self.call(|reply| Request::Pointer {
            x,
            y,
            buttons,
            reply,
        })
        .await
    }

    async fn key(&self, keysym: u32, down: bool) -> Result<(), LinkError> {
        self.call(|reply| Request::Key {
            keysym,
            down,
            reply,
        })
        .await
    }

    async fn cut_text(&self, text: &str) -> Result<(), LinkError> {
        let text = text.to_owned();
        self.call(|reply| Request::CutText { text, reply }).await
    }

    async fn capture(&self) -> Result<Frame, LinkError> {
        let raw: RawFrame = self.call(|reply| Request::Capture { reply }).await?;
        Ok(Frame {
            width: u32::from(raw.width),
            height: u32::from(raw.height),
            rgb: bgrx_to_rgb(&raw.bgrx),
        })
    }
}

/// Width and height in one word (for the lock-free `size`).
fn pack(width: u16, height: u16) -> u64 {
    (u64::from(width) << 32) | u64::from(height)
}

fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

#[cfg(test)]
mod tests;
