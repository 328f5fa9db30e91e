//! The task behind an [`RfbLink`](super::RfbLink): it owns the connection, serves requests,
//! reads the server, and reconnects.
//!
//! Captures: at most one full update request is in flight. Captures that arrive meanwhile
//! are queued and get a request of their own once it completes, so no capture is answered
//! with pixels from before it was asked for (a server may merge two pending requests into
//! one update, so counting requests would not do). An update that resized the framebuffer
//! (DesktopSize) is asked for again before anyone is answered.
//!
//! Losses: a request whose write failed is replayed on the next connection, and waiting
//! captures are asked for again there; the clipboard text set last is announced again,
//! unless the desktop has since told us (Extended Clipboard `notify`, or legacy
//! ServerCutText) that one of its applications took the clipboard over.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    net::TcpStream,
    sync::{mpsc, oneshot, watch},
    time::Instant,
};

use super::{LinkError, LinkTarget, Reconnect, pack};
use crate::desktop::rfb::{
    RfbConnection, ServerEvent,
    clipboard::{ClipboardMessage, flags},
    messages::{key_event, pointer_event},
};

/// An answer channel.
pub(super) type Reply<T> = oneshot::Sender<Result<T, LinkError>>;

/// A capture as the task hands it out: BGRX pixels (converted by the caller).
#[derive(Clone, Debug)]
pub(super) struct RawFrame {
    pub(super) width: u16,
    pub(super) height: u16,
    pub(super) bgrx: Vec<u8>,
}

/// What callers ask of the task.
#[derive(Debug)]
pub(super) enum Request {
    Pointer {
        x: u16,
        y: u16,
        buttons: u8,
        reply: Reply<()>,
    },
    Key {
        keysym: u32,
        down: bool,
        reply: Reply<()>,
    },
    CutText {
        text: String,
        reply: Reply<()>,
    },
    Capture {
        reply: Reply<RawFrame>,
    },
}

/// The link's state as callers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Status {
    Up,
    Reconnecting,
    Gone(String),
}

impl Status {
    /// The reason, once gone.
    pub(super) fn reason(&self) -> Option<String> {
        match self {
            Self::Gone(reason) => Some(reason.clone()),
            Self::Up | Self::Reconnecting => None,
        }
    }
}

/// Opens one RFB connection to `target` within `timeout`. Errors: as
/// [`RfbConnection::open`], and [`LinkError::Io`] (`TimedOut`) past `timeout`.
pub(super) async fn open(
    target: &LinkTarget,
    timeout: Duration,
) -> Result<RfbConnection<TcpStream>, LinkError> {
    let attempt = async {
        let stream = TcpStream::connect((target.host.as_str(), target.port)).await?;
        stream.set_nodelay(true)?;
        RfbConnection::open(stream, &target.password).await
    };
    tokio::time::timeout(timeout, attempt).await.map_err(|_| {
        LinkError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no RFB session within {} ms", timeout.as_millis()),
        ))
    })?
}

/// What woke the serving loop.
enum Next {
    Closed,
    Events(Result<Vec<ServerEvent>, LinkError>),
    Request(Option<Request>),
}

/// Why serving a connection stopped.
enum Exit {
    /// For good: closed, dropped, or given up (the reason).
    Gone(String),
    /// The connection failed; reconnect.
    Lost(LinkError),
}

pub(super) struct Task {
    target: LinkTarget,
    reconnect: Reconnect,
    requests: mpsc::Receiver<Request>,
    closed: watch::Receiver<bool>,
    status: watch::Sender<Status>,
    size: Arc<AtomicU64>,
    /// The clipboard text set last, announced again after a reconnect.
    clipboard: Option<String>,
    /// Captures answered by the update in flight.
    inflight: Vec<Reply<RawFrame>>,
    /// Captures waiting for the next request.
    queued: Vec<Reply<RawFrame>>,
    /// Requests to replay on the next connection.
    retry: VecDeque<Request>,
}

impl Task {
    pub(super) fn new(
        target: LinkTarget,
        reconnect: Reconnect,
        requests: mpsc::Receiver<Request>,
        closed: watch::Receiver<bool>,
        status: watch::Sender<Status>,
        size: Arc<AtomicU64>,
    ) -> Self {
        Self {
            target,
            reconnect,
            requests,
            closed,
            status,
            size,
            clipboard: None,
            inflight: Vec::new(),
            queued: Vec::new(),
            retry: VecDeque::new(),
        }
    }

    /// Serves `conn`, reconnecting on losses, until the link is gone.
    pub(super) async fn run(mut self, mut conn: RfbConnection<TcpStream>) {
        loop {
            let error = match self.serve(&mut conn).await {
                Exit::Gone(reason) => return self.finish(reason),
                Exit::Lost(error) => error,
            };
            tracing::warn!(
                host = %self.target.host,
                port = self.target.port,
                error = %error,
                "desktop connection lost; reconnecting"
            );
            self.status.send_replace(Status::Reconnecting);
            conn = match self.reconnect(error).await {
                Ok(conn) => conn,
                Err(reason) => return self.finish(reason),
            };
            tracing::info!(
                host = %self.target.host,
                port = self.target.port,
                "desktop connection restored"
            );
            self.status.send_replace(Status::Up);
        }
    }

    /// Serves one connection until it fails or the link ends.
    async fn serve(&mut self, conn: &mut RfbConnection<TcpStream>) -> Exit {
        if let Err(error) = self.resume(conn).await {
            return Exit::Lost(error);
        }
        loop {
            let next = tokio::select! {
                biased;
                _ = self.closed.wait_for(|closed| *closed) => Next::Closed,
                events = conn.next_events() => Next::Events(events),
                request = self.requests.recv() => Next::Request(request),
            };
            let outcome = match next {
                Next::Closed => return Exit::Gone("the link was closed".into()),
                Next::Events(Ok(events)) => self.on_events(conn, events).await,
                Next::Events(Err(error)) => Err(error),
                Next::Request(Some(request)) => self.on_request(conn, request).await,
                Next::Request(None) => return Exit::Gone("the link was dropped".into()),
            };
            if let Err(error) = outcome {
                return Exit::Lost(error);
            }
        }
    }

    /// On a new connection: the size, the clipboard, waiting captures, replayed requests.
    async fn resume(&mut self, conn: &mut RfbConnection<TcpStream>) -> Result<(), LinkError> {
        self.store_size(conn);
        if let Some(text) = self.clipboard.clone() {
            match conn.set_clipboard(&text).await {
                Ok(()) => {}
                Err(error) if error.is_connection_loss() => return Err(error),
                Err(error) => {
                    tracing::warn!(
                        host = %self.target.host,
                        port = self.target.port,
                        error = %error,
                        "the clipboard could not be set again after reconnecting"
                    );
                    self.clipboard = None;
                }
            }
        }
        self.inflight.append(&mut self.queued);
        if !self.inflight.is_empty() {
            conn.request_full_update().await?;
        }
        let mut replay = std::mem::take(&mut self.retry);
        while let Some(request) = replay.pop_front() {
            if let Err(error) = self.on_request(conn, request).await {
                // The failed request went back to `retry`; the rest follow it in order.
                self.retry.append(&mut replay);
                return Err(error);
            }
        }
        Ok(())
    }

    /// Handles one request; on a connection failure the request is kept for the next one.
    async fn on_request(
        &mut self,
        conn: &mut RfbConnection<TcpStream>,
        request: Request,
    ) -> Result<(), LinkError> {
        let sent = match &request {
            Request::Pointer { x, y, buttons, .. } => {
                conn.send(&pointer_event(*buttons, *x, *y)).await
            }
            Request::Key { keysym, down, .. } => conn.send(&key_event(*down, *keysym)).await,
            Request::CutText { text, .. } => conn.set_clipboard(text).await,
            Request::Capture { .. } if !self.inflight.is_empty() => Ok(()),
            Request::Capture { .. } => conn.request_full_update().await,
        };
        match sent {
            Err(error) if error.is_connection_loss() => {
                self.retry.push_back(request);
                Err(error)
            }
            Err(error) => {
                match request {
                    Request::Pointer { reply, .. }
                    | Request::Key { reply, .. }
                    | Request::CutText { reply, .. } => drop(reply.send(Err(error))),
                    Request::Capture { reply } => drop(reply.send(Err(error))),
                }
                Ok(())
            }
            Ok(()) => {
                match request {
                    Request::Pointer { reply, .. } | Request::Key { reply, .. } => {
                        drop(reply.send(Ok(())));
                    }
                    Request::CutText { text, reply } => {
                        self.clipboard = Some(text);
                        drop(reply.send(Ok(())));
                    }
                    Request::Capture { reply } if self.inflight.is_empty() => {
                        self.inflight.push(reply);
                    }
                    Request::Capture { reply } => self.queued.push(reply),
                }
                Ok(())
            }
        }
    }

    /// Sends queued clipboard answers and answers captures on complete updates.
    async fn on_events(
        &mut self,
        conn: &mut RfbConnection<TcpStream>,
        events: Vec<ServerEvent>,
    ) -> Result<(), LinkError> {
        conn.flush().await?;
        for event in events {
            let resized = match event {
                ServerEvent::UpdateDone { resized } => resized,
                // Someone on the desktop copied something: ours is no longer the clipboard,
                // and announcing it again after a reconnect would overwrite theirs.
                ServerEvent::Clipboard(ClipboardMessage::Notify(formats))
                    if formats & flags::TEXT != 0 =>
                {
                    self.clipboard = None;
                    continue;
                }
                ServerEvent::CutText(_) => {
                    self.clipboard = None;
                    continue;
                }
                _ => continue,
            };
            self.store_size(conn);
            if resized {
                // The new size's contents may be incomplete: ask again for everyone.
                self.inflight.append(&mut self.queued);
                if !self.inflight.is_empty() {
                    conn.request_full_update().await?;
                }
                continue;
            }
            if self.inflight.is_empty() {
                continue;
            }
            let fb = conn.framebuffer();
            let frame = RawFrame {
                width: fb.width(),
                height: fb.height(),
                bgrx: fb.bgrx().to_vec(),
            };
            let mut waiting = std::mem::take(&mut self.inflight);
            let last = waiting.pop();
            for reply in waiting {
                drop(reply.send(Ok(frame.clone())));
            }
            if let Some(reply) = last {
                drop(reply.send(Ok(frame)));
            }
            if !self.queued.is_empty() {
                std::mem::swap(&mut self.inflight, &mut self.queued);
                conn.request_full_update().await?;
            }
        }
        Ok(())
    }

    fn store_size(&self, conn: &RfbConnection<TcpStream>) {
        let fb = conn.framebuffer();
        self.size
            .store(pack(fb.width(), fb.height()), Ordering::Relaxed);
    }

    /// Tries to connect again: at once, then after pauses doubling from the policy's first
    /// delay, until its `give_up` time has passed since the loss. Errors: the reason the
    /// link is gone (given up, refused credentials, closed).
    async fn reconnect(&mut self, lost: LinkError) -> Result<RfbConnection<TcpStream>, String> {
        let endpoint = format!("{}:{}", self.target.host, self.target.port);
        let deadline = Instant::now() + self.reconnect.give_up;
        let mut delay = self.reconnect.first_delay;
        let mut last = lost;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let reason = format!(
                    "no RFB connection to {endpoint} for {} ms: {last}",
                    self.reconnect.give_up.as_millis()
                );
                tracing::warn!(
                    host = %self.target.host,
                    port = self.target.port,
                    error = %last,
                    "giving up on the desktop"
                );
                return Err(reason);
            }
            let attempt = tokio::select! {
                biased;
                _ = self.closed.wait_for(|closed| *closed) => {
                    return Err("the link was closed".into());
                }
                attempt = open(&self.target, super::CONNECT_TIMEOUT.min(left)) => attempt,
            };
            match attempt {
                Ok(conn) => return Ok(conn),
                Err(error @ (LinkError::AuthFailed(_) | LinkError::NoVncAuth { .. })) => {
                    return Err(format!("reconnecting to {endpoint}: {error}"));
                }
                Err(error) => last = error,
            }
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::select! {
                biased;
                _ = self.closed.wait_for(|closed| *closed) => {
                    return Err("the link was closed".into());
                }
                () = tokio::time::sleep(delay.min(left)) => {}
            }
            delay = (delay * 2).min(self.reconnect.max_delay);
        }
    }

    /// The link is gone for `reason`: everyone waiting and every later call hears it.
    fn finish(mut self, reason: String) {
        self.status.send_replace(Status::Gone(reason.clone()));
        self.requests.close();
        let gone = || LinkError::Gone(reason.clone());
        for reply in self.inflight.drain(..).chain(self.queued.drain(..)) {
            drop(reply.send(Err(gone())));
        }
        let mut waiting: Vec<Request> = self.retry.drain(..).collect();
        while let Ok(request) = self.requests.try_recv() {
            waiting.push(request);
        }
        for request in waiting {
            match request {
                Request::Pointer { reply, .. }
                | Request::Key { reply, .. }
                | Request::CutText { reply, .. } => drop(reply.send(Err(gone()))),
                Request::Capture { reply } => drop(reply.send(Err(gone()))),
            }
        }
    }
}
