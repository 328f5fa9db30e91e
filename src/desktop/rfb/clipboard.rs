//! The Extended Clipboard pseudo-encoding (0xC0A1E5CE, rfbproto community spec "Extended
//! Clipboard Pseudo-Encoding"): ClientCutText / ServerCutText whose length is negative; the
//! payload starts with a u32 of flags (formats in bits 0–15, one action in bits 24–31).
//!
//! - `caps`: the formats and actions a side supports, then one u32 per format: the largest
//!   unsolicited `provide` it wants (0 = notify only).
//! - `request` (formats): "send me your data"; `peek`: "tell me what you have";
//!   `notify` (formats): "I now have data in these formats".
//! - `provide` (formats): a zlib stream (a fresh one per message) holding, per format in
//!   bit order, a u32 length and that many bytes; text is UTF-8 with `\r\n` line ends and
//!   a terminating NUL, which the length counts.
//!
//! The same layout travels both ways, so one encoder and one parser serve both; tests use
//! them as the fake server's side too. Not here: when to send which (the connection).

use std::io::{Read, Write};

use flate2::{Compression, read::ZlibDecoder, write::ZlibEncoder};

use super::messages::message_type;
use crate::desktop::error::LinkError;

/// Format and action bits of the flags word.
pub mod flags {
    /// Plain text, UTF-8 (format bit 0).
    pub const TEXT: u32 = 1 << 0;
    /// Rich text (not used by us).
    pub const RTF: u32 = 1 << 1;
    /// HTML (not used by us).
    pub const HTML: u32 = 1 << 2;
    /// Images (not used by us).
    pub const DIB: u32 = 1 << 3;
    /// Files (not used by us).
    pub const FILES: u32 = 1 << 4;
    /// Mask of the format bits.
    pub const FORMAT_MASK: u32 = 0x0000_ffff;
    /// Action `caps`.
    pub const CAPS: u32 = 1 << 24;
    /// Action `request`.
    pub const REQUEST: u32 = 1 << 25;
    /// Action `peek`.
    pub const PEEK: u32 = 1 << 26;
    /// Action `notify`.
    pub const NOTIFY: u32 = 1 << 27;
    /// Action `provide`.
    pub const PROVIDE: u32 = 1 << 28;
    /// Mask of the action bits.
    pub const ACTION_MASK: u32 = 0xff00_0000;
}

/// What we tell a server we support: text only, and all five actions (the server sends
/// `request` only to clients that list it), with 0 bytes of unsolicited text wanted.
pub const OUR_CAPS: u32 =
    flags::TEXT | flags::REQUEST | flags::PEEK | flags::NOTIFY | flags::PROVIDE;

/// Largest clipboard payload we read or decompress (bytes); larger ones are refused.
pub const MAX_CLIPBOARD_BYTES: usize = 16 << 20;

/// One Extended Clipboard message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClipboardMessage {
    /// `caps`: `flags` (formats and actions) and, per format bit set, the largest
    /// unsolicited provide wanted (bytes), in bit order.
    Caps {
        /// Format and action bits (the `caps` bit removed).
        flags: u32,
        /// One size per format bit set, in bit order (bytes).
        sizes: Vec<u32>,
    },
    /// `request`: send the data of these formats.
    Request(u32),
    /// `peek`: say which formats are available.
    Peek,
    /// `notify`: data in these formats is available (0: none any more).
    Notify(u32),
    /// `provide`: the text, when the text format was provided (`\r\n` turned into `\n`,
    /// NUL dropped).
    Provide(Option<String>),
}

/// A cut-text message with the Extended Clipboard payload `payload` (flags and the rest):
/// type, 3 padding bytes, then −len as an s32.
fn frame(payload: &[u8]) -> Vec<u8> {
    let len = i32::try_from(payload.len()).unwrap_or(i32::MAX);
    let mut b = Vec::with_capacity(8 + payload.len());
    b.extend_from_slice(&[message_type::CLIENT_CUT_TEXT, 0, 0, 0]);
    b.extend_from_slice(&(-len).to_be_bytes());
    b.extend_from_slice(payload);
    b
}

/// `caps` with `flags` (formats and actions) and one size per format bit set (bytes; a
/// missing size counts as 0). Like every encoder here it frames a ClientCutText (type 6); a
/// server's ServerCutText differs only in its first byte (3).
pub fn caps(flags: u32, sizes: &[u32]) -> Vec<u8> {
    let mut payload = (flags | self::flags::CAPS).to_be_bytes().to_vec();
    let formats = (0..16).filter(|bit| flags & (1 << bit) != 0).count();
    for i in 0..formats {
        payload.extend_from_slice(&sizes.get(i).copied().unwrap_or(0).to_be_bytes());
    }
    frame(&payload)
}

/// `request` for `formats`.
pub fn request(formats: u32) -> Vec<u8> {
    frame(&(formats | flags::REQUEST).to_be_bytes())
}

/// `peek`.
pub fn peek() -> Vec<u8> {
    frame(&flags::PEEK.to_be_bytes())
}

/// `notify` for `formats` (0: nothing available).
pub fn notify(formats: u32) -> Vec<u8> {
    frame(&(formats | flags::NOTIFY).to_be_bytes())
}

/// `provide` of `text` (UTF-8; lone `\n` become `\r\n`; NUL-terminated; zlib level 6).
/// Errors: [`LinkError::Unsupported`] for text over [`MAX_CLIPBOARD_BYTES`] or holding NUL.
pub fn provide_text(text: &str) -> Result<Vec<u8>, LinkError> {
    if text.contains('\0') {
        return Err(LinkError::Unsupported(
            "clipboard text must not contain NUL characters".into(),
        ));
    }
    let mut data = text
        .replace("\r\n", "\n")
        .replace('\n', "\r\n")
        .into_bytes();
    data.push(0);
    if data.len() > MAX_CLIPBOARD_BYTES {
        return Err(LinkError::Unsupported(format!(
            "clipboard text of {} bytes is over the limit of {MAX_CLIPBOARD_BYTES} bytes",
            data.len()
        )));
    }
    let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    zlib.write_all(&len.to_be_bytes())
        .and_then(|()| zlib.write_all(&data))
        .map_err(LinkError::Io)?;
    let compressed = zlib.finish().map_err(LinkError::Io)?;
    let mut payload = (flags::TEXT | flags::PROVIDE).to_be_bytes().to_vec();
    payload.extend_from_slice(&compressed);
    Ok(frame(&payload))
}

/// Parses the payload of an extended cut-text message (after the negative length).
/// Errors: [`LinkError::Protocol`] for a short payload, no or several actions, a bad zlib
/// stream or text that is not UTF-8.
pub fn parse(payload: &[u8]) -> Result<ClipboardMessage, LinkError> {
    let Some((head, rest)) = payload.split_first_chunk::<4>() else {
        return Err(LinkError::protocol(format!(
            "Extended Clipboard message of {} bytes has no flags",
            payload.len()
        )));
    };
    let word = u32::from_be_bytes(*head);
    let formats = word & flags::FORMAT_MASK;
    let action = word & flags::ACTION_MASK;
    if action & flags::CAPS != 0 {
        let count = formats.count_ones() as usize;
        if rest.len() < 4 * count {
            return Err(LinkError::protocol(format!(
                "Extended Clipboard caps lists {count} formats but carries {} bytes of sizes",
                rest.len()
            )));
        }
        let sizes = rest
            .chunks_exact(4)
            .take(count)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        return Ok(ClipboardMessage::Caps {
            flags: word & !flags::CAPS,
            sizes,
        });
    }
    match action {
        flags::REQUEST => Ok(ClipboardMessage::Request(formats)),
        flags::PEEK => Ok(ClipboardMessage::Peek),
        flags::NOTIFY => Ok(ClipboardMessage::Notify(formats)),
        flags::PROVIDE => parse_provide(formats, rest).map(ClipboardMessage::Provide),
        other => Err(LinkError::protocol(format!(
            "Extended Clipboard message with action bits {other:#010x}"
        ))),
    }
}

/// The text of a `provide` payload (after the flags), `None` when text is not among
/// `formats`.
fn parse_provide(formats: u32, compressed: &[u8]) -> Result<Option<String>, LinkError> {
    if formats & flags::TEXT == 0 {
        return Ok(None);
    }
    let bad = |what: String| LinkError::protocol(format!("Extended Clipboard provide: {what}"));
    let mut zlib = ZlibDecoder::new(compressed).take(MAX_CLIPBOARD_BYTES as u64 + 4);
    let mut len = [0u8; 4];
    zlib.read_exact(&mut len)
        .map_err(|e| bad(format!("reading the text length: {e}")))?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_CLIPBOARD_BYTES {
        return Err(bad(format!(
            "text of {len} bytes is over {MAX_CLIPBOARD_BYTES}"
        )));
    }
    let mut text = vec![0u8; len];
    zlib.read_exact(&mut text)
        .map_err(|e| bad(format!("reading {len} bytes of text: {e}")))?;
    if text.last() == Some(&0) {
        text.pop();
    }
    let text = String::from_utf8(text).map_err(|e| bad(format!("text is not UTF-8: {e}")))?;
    Ok(Some(text.replace("\r\n", "\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload of a framed message, checking the type and the negative length.
    fn payload(msg: &[u8]) -> &[u8] {
        assert_eq!(msg[..4], [6, 0, 0, 0]);
        let len = i32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]);
        assert_eq!(-len as usize, msg.len() - 8);
        &msg[8..]
    }

    #[test]
    fn small_messages_byte_for_byte() {
        assert_eq!(
            caps(OUR_CAPS, &[0]),
            [
                6, 0, 0, 0, 0xff, 0xff, 0xff, 0xf8, 0x1f, 0, 0, 1, 0, 0, 0, 0
            ]
        );
        assert_eq!(
            notify(flags::TEXT),
            [6, 0, 0, 0, 0xff, 0xff, 0xff, 0xfc, 0x08, 0, 0, 1]
        );
        assert_eq!(
            notify(0),
            [6, 0, 0, 0, 0xff, 0xff, 0xff, 0xfc, 0x08, 0, 0, 0]
        );
        assert_eq!(
            request(flags::TEXT),
            [6, 0, 0, 0, 0xff, 0xff, 0xff, 0xfc, 0x02, 0, 0, 1]
        );
        assert_eq!(peek(), [6, 0, 0, 0, 0xff, 0xff, 0xff, 0xfc, 0x04, 0, 0, 0]);
    }

    #[test]
    fn provide_round_trips_with_crlf_and_nul() {
        let msg = provide_text("Grüße 你好\nline").unwrap();
        let body = payload(&msg);
        assert_eq!(body[..4], [0x10, 0, 0, 1]);
        // The zlib stream holds the length (with the NUL) and the CRLF text.
        let mut plain = Vec::new();
        ZlibDecoder::new(&body[4..])
            .read_to_end(&mut plain)
            .unwrap();
        let text = "Grüße 你好\r\nline\0".as_bytes();
        assert_eq!(plain[..4], (text.len() as u32).to_be_bytes());
        assert_eq!(&plain[4..], text);
        assert_eq!(
            parse(body).unwrap(),
            ClipboardMessage::Provide(Some("Grüße 你好\nline".into()))
        );
        assert!(provide_text("a\0b").is_err());
    }

    #[test]
    fn parses_what_tigervnc_sends() {
        // TigerVNC's caps: text | caps | request | peek | notify | provide, size 0.
        let server_caps = [0x1f, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(
            parse(&server_caps).unwrap(),
            ClipboardMessage::Caps {
                flags: OUR_CAPS,
                sizes: vec![0]
            }
        );
        assert_eq!(
            parse(&[0x02, 0, 0, 1]).unwrap(),
            ClipboardMessage::Request(1)
        );
        assert_eq!(parse(&[0x04, 0, 0, 0]).unwrap(), ClipboardMessage::Peek);
        assert_eq!(
            parse(&[0x08, 0, 0, 1]).unwrap(),
            ClipboardMessage::Notify(1)
        );
        assert_eq!(
            parse(&[0x10, 0, 0, 2, 1, 2]).unwrap(),
            ClipboardMessage::Provide(None)
        );
        assert!(
            parse(&[0x1f, 0, 0, 3, 0, 0, 0, 0]).is_err(),
            "two formats, one size"
        );
        assert!(parse(&[0, 0, 0, 1]).is_err(), "no action");
        assert!(parse(&[0x10, 0, 0, 1, 9, 9, 9]).is_err(), "not zlib");
        assert!(parse(&[1, 2]).is_err(), "no flags");
    }
}
