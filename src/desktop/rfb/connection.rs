//! One open RFB connection, after the handshake: the client messages we send, the server
//! messages we read, and the protocol duties that need no caller.
//!
//! [`RfbConnection::open`] runs the handshake, sets our pixel format ([`PixelFormat::BGRX`])
//! and encodings ([`ENCODINGS`]), asks for one full update and reads until it is complete.
//! Servers answer messages in order, so by then a server that speaks the Extended Clipboard
//! has sent its `caps` (TigerVNC does so on SetEncodings) and we know which clipboard to use.
//!
//! Clipboard duties (Extended Clipboard): the server's `caps` are answered with ours
//! ([`OUR_CAPS`]: text, all actions, no unsolicited data wanted), `peek` with `notify`, and
//! `request` with `provide` of the text set last. TigerVNC (1.10 and later, `SConnection`,
//! `VNCServerST`) takes clipboard data only from the client that announced it with
//! `notify`, and asks for it with `request` when an X application reads the selection, at
//! any later time; hence [`RfbConnection::set_clipboard`] only announces, and the answers
//! are sent while reading. Without the extension the text goes out as legacy ClientCutText
//! (Latin-1 only).
//!
//! Cancel safety: [`RfbConnection::next_events`] awaits only the socket read and queues its
//! answers, so it can sit in a `select!`; they go out with the next [`RfbConnection::flush`]
//! or send. Not here: reconnecting, waiting callers (`link`).

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{
    clipboard::{self, ClipboardMessage, OUR_CAPS, flags},
    decode::{Decoder, ServerEvent},
    framebuffer::Framebuffer,
    handshake::{Version, handshake},
    messages::{
        ENCODINGS, PixelFormat, client_cut_text_latin1, framebuffer_update_request, set_encodings,
        set_pixel_format,
    },
};
use crate::desktop::error::LinkError;

/// Bytes asked of the socket per read (64 KiB).
pub const READ_CHUNK_BYTES: usize = 64 << 10;

/// The server's Extended Clipboard capabilities, once it announced them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ServerClipboard {
    /// Its format and action bits.
    flags: u32,
    /// The largest unsolicited text `provide` it accepts (bytes).
    text_size: u32,
}

/// An open RFB connection over `S` (a `TcpStream`, or a `tokio::io::duplex` end in tests).
#[derive(Debug)]
pub struct RfbConnection<S> {
    stream: S,
    version: Version,
    name: String,
    framebuffer: Framebuffer,
    decoder: Decoder,
    /// Bytes read but not yet consumed by the decoder.
    pending: Vec<u8>,
    chunk: Box<[u8]>,
    /// Answers and messages waiting to be written.
    outbox: Vec<u8>,
    server_clipboard: Option<ServerClipboard>,
    /// The `provide` message for the text we announced last.
    provide: Option<Vec<u8>>,
    /// Whether `outbox` holds a `provide` already (requests are answered once per flush).
    provide_queued: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> RfbConnection<S> {
    /// Handshake with `password` (see `handshake`), SetPixelFormat, SetEncodings and a first
    /// full update. Errors: any [`LinkError`] of the handshake, [`LinkError::Io`] and
    /// [`LinkError::Protocol`] while reading the first update.
    pub async fn open(mut stream: S, password: &str) -> Result<Self, LinkError> {
        let (version, init) = handshake(&mut stream, password).await?;
        super::framebuffer::check_size(init.width, init.height)?;
        let mut conn = Self {
            stream,
            version,
            name: init.name,
            framebuffer: Framebuffer::new(init.width, init.height),
            decoder: Decoder::new(),
            pending: Vec::new(),
            chunk: vec![0; READ_CHUNK_BYTES].into_boxed_slice(),
            outbox: Vec::new(),
            provide_queued: false,
            server_clipboard: None,
            provide: None,
        };
        conn.outbox
            .extend_from_slice(&set_pixel_format(&PixelFormat::BGRX));
        conn.outbox.extend_from_slice(&set_encodings(&ENCODINGS));
        conn.request_full_update().await?;
        loop {
            let events = conn.next_events().await?;
            conn.flush().await?;
            if events
                .iter()
                .any(|e| matches!(e, ServerEvent::UpdateDone { .. }))
            {
                return Ok(conn);
            }
        }
    }

    /// The negotiated protocol version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The desktop's name from ServerInit.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The local framebuffer, as of the last decoded rectangle.
    pub fn framebuffer(&self) -> &Framebuffer {
        &self.framebuffer
    }

    /// Whether the server announced the Extended Clipboard (sent its `caps`).
    pub fn extended_clipboard(&self) -> bool {
        self.server_clipboard.is_some()
    }

    /// Reads once from the socket and decodes what came: rectangles go to the framebuffer,
    /// clipboard duties are queued (sent by the next [`flush`](Self::flush)), and every
    /// event is returned. Cancel-safe. Errors: [`LinkError::Io`] (the server closed the
    /// connection: `UnexpectedEof`), [`LinkError::Protocol`].
    pub async fn next_events(&mut self) -> Result<Vec<ServerEvent>, LinkError> {
        let n = self.stream.read(&mut self.chunk).await?;
        if n == 0 {
            return Err(LinkError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the desktop closed the connection",
            )));
        }
        let mut events = Vec::new();
        if self.pending.is_empty() {
            let used = self
                .decoder
                .feed(&self.chunk[..n], &mut self.framebuffer, &mut events)?;
            self.pending.extend_from_slice(&self.chunk[used..n]);
        } else {
            self.pending.extend_from_slice(&self.chunk[..n]);
            let used = self
                .decoder
                .feed(&self.pending, &mut self.framebuffer, &mut events)?;
            self.pending.drain(..used);
        }
        for event in &events {
            if let ServerEvent::Clipboard(message) = event {
                self.answer_clipboard(message);
            }
        }
        Ok(events)
    }

    /// Queues the answer an Extended Clipboard message needs, if any.
    fn answer_clipboard(&mut self, message: &ClipboardMessage) {
        match message {
            ClipboardMessage::Caps { flags, sizes } => {
                let text_size = if flags & flags::TEXT != 0 {
                    sizes.first().copied().unwrap_or(0)
                } else {
                    0
                };
                self.server_clipboard = Some(ServerClipboard {
                    flags: *flags,
                    text_size,
                });
                self.outbox
                    .extend_from_slice(&clipboard::caps(OUR_CAPS, &[0]));
            }
            ClipboardMessage::Request(formats) if formats & flags::TEXT != 0 => {
                // One answer per flush, however many requests one read held.
                if let Some(provide) = &self.provide
                    && !self.provide_queued
                {
                    self.outbox.extend_from_slice(provide);
                    self.provide_queued = true;
                }
            }
            ClipboardMessage::Peek => {
                let available = if self.provide.is_some() {
                    flags::TEXT
                } else {
                    0
                };
                self.outbox.extend_from_slice(&clipboard::notify(available));
            }
            ClipboardMessage::Request(_)
            | ClipboardMessage::Notify(_)
            | ClipboardMessage::Provide(_) => {}
        }
    }

    /// Writes everything queued. Not cancel-safe (a cancelled write leaves the stream
    /// mid-message). Errors: [`LinkError::Io`].
    pub async fn flush(&mut self) -> Result<(), LinkError> {
        if !self.outbox.is_empty() {
            self.stream.write_all(&self.outbox).await?;
            self.outbox.clear();
            self.provide_queued = false;
        }
        self.stream.flush().await?;
        Ok(())
    }

    /// Sends `message` (after anything queued). Errors: [`LinkError::Io`].
    pub async fn send(&mut self, message: &[u8]) -> Result<(), LinkError> {
        self.outbox.extend_from_slice(message);
        self.flush().await
    }

    /// Asks for the whole framebuffer, non-incremental (RFC 6143 §7.5.3); the answer is
    /// the next [`ServerEvent::UpdateDone`]. Errors: [`LinkError::Io`].
    pub async fn request_full_update(&mut self) -> Result<(), LinkError> {
        let (w, h) = (self.framebuffer.width(), self.framebuffer.height());
        self.send(&framebuffer_update_request(false, 0, 0, w, h))
            .await
    }

    /// Makes `text` the desktop's clipboard. With the Extended Clipboard: `notify` (text),
    /// and `provide` when the server asks (or at once when it takes no `notify` but wants
    /// unsolicited text this large); else legacy ClientCutText. Errors:
    /// [`LinkError::Unsupported`] (legacy and not Latin-1, NUL characters, over 16 MiB),
    /// [`LinkError::Io`].
    pub async fn set_clipboard(&mut self, text: &str) -> Result<(), LinkError> {
        let Some(server) = self.server_clipboard else {
            let message = client_cut_text_latin1(text)?;
            return self.send(&message).await;
        };
        let provide = clipboard::provide_text(text)?;
        let message = if server.flags & flags::NOTIFY != 0 {
            clipboard::notify(flags::TEXT)
        } else if server.flags & flags::PROVIDE != 0 && text.len() < server.text_size as usize {
            provide.clone()
        } else {
            client_cut_text_latin1(text)?
        };
        self.provide = Some(provide);
        self.send(&message).await
    }
}
