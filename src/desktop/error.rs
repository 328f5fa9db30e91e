//! [`LinkError`]: every way talking to a desktop over RFB can fail, in words an operator (and
//! the session's `status_reason`) can act on.
//!
//! Not here: mapping these to HTTP problems or command results (the executor and the API do
//! that).

/// Why a desktop link call failed.
///
/// `Gone` is final: once a link has given up reconnecting, every call answers it (see
/// [`RfbLink::lost`](super::link::RfbLink::lost)). The others describe one failed connect or
/// one refused call.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The TCP connection failed (connect, read or write); the link reconnects on its own.
    #[error("desktop connection: {0}")]
    Io(#[from] std::io::Error),
    /// The server broke RFC 6143 (or one of the extensions we asked for): the message says
    /// what was expected and what came.
    #[error("RFB protocol error: {0}")]
    Protocol(String),
    /// VNC Authentication (RFC 6143 §7.2.2) was refused; the server's reason (RFB 3.8
    /// SecurityResult reason string, §7.1.3) or a generic one for 3.3/3.7 servers.
    #[error("VNC authentication failed: {0}")]
    AuthFailed(String),
    /// The server does not offer security type 2 (VNC Authentication). We never accept
    /// None (1) or anything else: every desktop must be password protected.
    #[error("the desktop offers no VNC authentication; refusing security type {offered}")]
    NoVncAuth {
        /// The offered types, e.g. `None` or `None, 19 (VeNCrypt)`.
        offered: String,
    },
    /// The link lost its desktop and gave up reconnecting (or was closed); the reason names
    /// the last failure. Displays as `desktop lost: <reason>`, the session's
    /// `status_reason`.
    #[error("desktop lost: {0}")]
    Gone(String),
    /// The call cannot be carried out on this desktop, e.g. clipboard text outside Latin-1
    /// for a server without the Extended Clipboard pseudo-encoding.
    #[error("not supported by this desktop: {0}")]
    Unsupported(String),
}

impl LinkError {
    /// Whether the error ends the connection it happened on (the link then reconnects).
    pub(crate) fn is_connection_loss(&self) -> bool {
        matches!(self, Self::Io(_) | Self::Protocol(_))
    }

    /// A protocol error with `message`.
    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Self::Protocol(message.into())
    }
}
