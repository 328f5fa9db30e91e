//! Desktops as Agentdesk drives them: an RFB (RFC 6143) client of the session's VNC
//! server (TigerVNC `Xvnc`), with nothing on our side that needs a local X socket.
//!
//! - [`rfb`]: the protocol, byte-exact (handshake with VNC Authentication only, input,
//!   framebuffer updates, legacy and Extended Clipboard).
//! - [`link`]: [`DesktopLink`], the seam the executor drives, and [`RfbLink`], one
//!   reconnecting connection per desktop.
//! - [`keys`]: keysyms for characters and `xdotool`-style chords.
//! - [`actions`]: what commands map to (move, click, scroll, type, key chords, clipboard,
//!   PNG screenshots).
//!
//! Layering: names `runtime` and the leaves (`config`, `error`) at most; never `api`, `app`,
//! `http`, `domain`, `jobs`, `realtime` or `auth` (`tests/layers.rs`).

pub mod actions;
pub mod error;
pub mod keys;
pub mod link;
pub mod rfb;

pub use actions::{Button, Png};
pub use error::LinkError;
pub use link::{DesktopLink, Frame, LinkTarget, Reconnect, RfbLink};
