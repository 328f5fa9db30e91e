//! VNC Authentication (RFC 6143 §7.2.2): the DES quirk, the challenge response and the
//! `-rfbauth` file format live in [`crate::runtime::vncauth`], shared with the runtime that
//! writes each desktop's password file.

pub use crate::runtime::vncauth::*;
