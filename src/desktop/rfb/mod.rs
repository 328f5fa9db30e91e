//! The RFB protocol (RFC 6143), client side, byte-exact: what Agentdesk needs to drive a
//! TigerVNC desktop and nothing more.
//!
//! - `handshake`: ProtocolVersion (3.3, 3.7, 3.8), security (VNC Authentication only),
//!   ClientInit (shared), ServerInit (§7.1–§7.3).
//! - `auth`: the VNC DES quirk, the challenge response, `-rfbauth` password files.
//! - `messages`: client messages (§7.5) and the pixel format and encodings we ask for:
//!   32 bpp BGRX true colour; CopyRect, Raw, DesktopSize, Extended Clipboard (lossless only).
//! - `clipboard`: the Extended Clipboard pseudo-encoding (caps, request, peek, notify,
//!   provide; zlib-compressed UTF-8).
//! - `decode`: server messages (§7.6) decoded incrementally into a `framebuffer`.
//! - `connection`: one open connection and its protocol duties (answering the clipboard).
//!
//! Not here: reconnecting and callers (`desktop::link`), PNG (`desktop::actions`).

pub mod auth;
pub mod clipboard;
pub mod connection;
pub mod decode;
pub mod framebuffer;
pub mod handshake;
pub mod messages;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;

pub use connection::RfbConnection;
pub use decode::ServerEvent;
pub use framebuffer::{Framebuffer, Rect};
pub use handshake::{ServerInit, Version};
pub use messages::PixelFormat;
