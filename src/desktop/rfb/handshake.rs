//! The opening of an RFB connection (RFC 6143 §7.1, §7.2, §7.3): protocol version, security
//! (VNC Authentication only), ClientInit and ServerInit.
//!
//! Versions: the server's `RFB 003.00x\n` is answered with the highest version both speak:
//! 3.8 for 3.8 and later, 3.7 for 3.7, 3.3 otherwise (§7.1.1 asks unknown minors to be
//! treated as 3.3). Security: only type 2 (VNC Authentication, §7.2.2) is accepted; a server
//! offering only None (1) or other types is refused with [`LinkError::NoVncAuth`] before
//! anything is sent back. The SecurityResult (§7.1.3) ends the handshake with
//! [`LinkError::AuthFailed`] on failure, with the server's reason on 3.8.
//!
//! Not here: what follows ServerInit (`connection`).

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{
    auth::{CHALLENGE_LEN, challenge_response},
    messages::PixelFormat,
};
use crate::desktop::error::LinkError;

/// Security type None (RFC 6143 §7.2.1).
pub const SECURITY_NONE: u8 = 1;
/// Security type VNC Authentication (RFC 6143 §7.2.2).
pub const SECURITY_VNC_AUTH: u8 = 2;
/// Longest reason string or desktop name we read (bytes); longer ones are protocol errors.
const MAX_STRING_BYTES: u32 = 64 << 10;

/// The protocol versions we speak (RFC 6143 §7.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    /// RFB 3.3: the server picks the security type; no failure reasons.
    V3_3,
    /// RFB 3.7: the client picks from a list; no reason on auth failure.
    V3_7,
    /// RFB 3.8: as 3.7, with a reason string on auth failure.
    V3_8,
}

impl Version {
    /// The 12-byte ProtocolVersion message, e.g. `RFB 003.008\n`.
    pub fn greeting(self) -> &'static [u8; 12] {
        match self {
            Self::V3_3 => b"RFB 003.003\n",
            Self::V3_7 => b"RFB 003.007\n",
            Self::V3_8 => b"RFB 003.008\n",
        }
    }

    /// The version to answer a server's greeting with. Errors: [`LinkError::Protocol`] when
    /// the greeting is not `RFB 003.xxx\n`.
    pub fn answer_to(greeting: &[u8; 12]) -> Result<Self, LinkError> {
        let minor = greeting
            .strip_prefix(b"RFB 003.")
            .and_then(|rest| rest.strip_suffix(b"\n"))
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u16>().ok())
            .ok_or_else(|| {
                LinkError::protocol(format!(
                    "expected an RFB 3.x greeting, got {:?}",
                    String::from_utf8_lossy(greeting)
                ))
            })?;
        Ok(match minor {
            8.. => Self::V3_8,
            7 => Self::V3_7,
            _ => Self::V3_3,
        })
    }
}

/// The ServerInit message (RFC 6143 §7.3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInit {
    /// Framebuffer width (pixels).
    pub width: u16,
    /// Framebuffer height (pixels).
    pub height: u16,
    /// The server's native pixel format (we replace it with SetPixelFormat).
    pub pixel_format: PixelFormat,
    /// The desktop's name (lossy UTF-8).
    pub name: String,
}

/// Runs the handshake on `stream` up to and including ServerInit, with `password` for VNC
/// Authentication and the shared flag set (other viewers stay connected). Returns the
/// negotiated version and ServerInit. Errors: as [`authenticate`].
pub async fn handshake<S>(
    stream: &mut S,
    password: &str,
) -> Result<(Version, ServerInit), LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let version = authenticate(stream, password).await?;
    // ClientInit (§7.3.1): shared-flag = 1.
    stream.write_all(&[1]).await?;
    let mut head = [0u8; 20];
    stream.read_exact(&mut head).await?;
    let mut format = [0u8; 16];
    format.copy_from_slice(&head[4..20]);
    let init = ServerInit {
        width: u16::from_be_bytes([head[0], head[1]]),
        height: u16::from_be_bytes([head[2], head[3]]),
        pixel_format: PixelFormat::from_bytes(&format),
        name: read_string(stream, "desktop name").await?,
    };
    Ok((version, init))
}

/// The security part of the handshake (§7.1.1–§7.2.2): version, VNC Authentication with
/// `password`, SecurityResult. The next message is the client's ClientInit. Returns the
/// negotiated version. Errors: [`LinkError::Io`] when the connection fails,
/// [`LinkError::Protocol`] for a non-RFB peer or a server that refuses the connection (with
/// its reason), [`LinkError::NoVncAuth`], [`LinkError::AuthFailed`].
pub async fn authenticate<S>(stream: &mut S, password: &str) -> Result<Version, LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut greeting = [0u8; 12];
    stream.read_exact(&mut greeting).await?;
    let version = Version::answer_to(&greeting)?;
    stream.write_all(version.greeting()).await?;

    choose_vnc_auth(stream, version).await?;
    let mut challenge = [0u8; CHALLENGE_LEN];
    stream.read_exact(&mut challenge).await?;
    stream
        .write_all(&challenge_response(password, &challenge))
        .await?;
    match stream.read_u32().await? {
        0 => Ok(version),
        status => {
            let reason = if version == Version::V3_8 {
                read_string(stream, "SecurityResult reason").await?
            } else {
                format!("the server answered SecurityResult {status}")
            };
            Err(LinkError::AuthFailed(reason))
        }
    }
}

/// The security-type negotiation (§7.1.2), ending with VNC Authentication chosen.
async fn choose_vnc_auth<S>(stream: &mut S, version: Version) -> Result<(), LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if version == Version::V3_3 {
        // The server decides: a u32 security type, 0 = failure with a reason.
        return match stream.read_u32().await? {
            0 => Err(refused(read_string(stream, "failure reason").await?)),
            2 => Ok(()),
            other => Err(LinkError::NoVncAuth {
                offered: type_names(&[u8::try_from(other).unwrap_or(u8::MAX)]),
            }),
        };
    }
    let count = stream.read_u8().await?;
    if count == 0 {
        return Err(refused(read_string(stream, "failure reason").await?));
    }
    let mut offered = vec![0u8; usize::from(count)];
    stream.read_exact(&mut offered).await?;
    if !offered.contains(&SECURITY_VNC_AUTH) {
        return Err(LinkError::NoVncAuth {
            offered: type_names(&offered),
        });
    }
    stream.write_all(&[SECURITY_VNC_AUTH]).await?;
    Ok(())
}

fn refused(reason: String) -> LinkError {
    LinkError::protocol(format!("the server refused the connection: {reason}"))
}

/// Security type numbers with the names of the common ones (IANA "RFB Security Types").
fn type_names(types: &[u8]) -> String {
    types
        .iter()
        .map(|&t| match t {
            SECURITY_NONE => "None".to_owned(),
            16 => "16 (Tight)".to_owned(),
            18 => "18 (TLS)".to_owned(),
            19 => "19 (VeNCrypt)".to_owned(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A u32 length and that many bytes, as lossy UTF-8. Errors: [`LinkError::Protocol`] when
/// longer than 64 KiB.
async fn read_string<S>(stream: &mut S, what: &str) -> Result<String, LinkError>
where
    S: AsyncRead + Unpin,
{
    let len = stream.read_u32().await?;
    if len > MAX_STRING_BYTES {
        return Err(LinkError::protocol(format!(
            "{what} of {len} bytes is over {MAX_STRING_BYTES}"
        )));
    }
    let mut bytes = vec![0u8; len as usize];
    stream.read_exact(&mut bytes).await?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(Version::answer_to(b"RFB 003.008\n").unwrap(), Version::V3_8);
        assert_eq!(Version::answer_to(b"RFB 003.889\n").unwrap(), Version::V3_8);
        assert_eq!(Version::answer_to(b"RFB 003.007\n").unwrap(), Version::V3_7);
        assert_eq!(Version::answer_to(b"RFB 003.003\n").unwrap(), Version::V3_3);
        assert_eq!(Version::answer_to(b"RFB 003.005\n").unwrap(), Version::V3_3);
        assert!(Version::answer_to(b"RFB 004.001\n").is_err());
        assert!(Version::answer_to(b"HTTP/1.1 200").is_err());
        assert_eq!(Version::V3_8.greeting(), b"RFB 003.008\n");
        assert_eq!(type_names(&[1, 19, 7]), "None, 19 (VeNCrypt), 7");
    }
}
