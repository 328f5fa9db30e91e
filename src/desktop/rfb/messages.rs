//! Client-to-server messages (RFC 6143 §7.5) as exact bytes, and the shared wire types:
//! [`PixelFormat`] (§7.4) and the encoding numbers we use (§7.7, §7.8).
//!
//! All integers on the wire are big-endian. Every function here is pure: it returns the
//! bytes to write, so tests compare them byte for byte.
//!
//! Not here: the Extended Clipboard's ClientCutText variants (`clipboard`), reading the
//! server's messages (`decode`).

use crate::desktop::error::LinkError;

/// Encoding numbers (RFC 6143 §7.7, §7.8; IANA "RFB Encoding Types").
pub mod encoding {
    /// Raw (§7.7.1): width × height pixels, left to right, top to bottom.
    pub const RAW: i32 = 0;
    /// CopyRect (§7.7.2): copy a rectangle already in the framebuffer.
    pub const COPY_RECT: i32 = 1;
    /// DesktopSize pseudo-encoding (§7.8.2): the framebuffer changed size.
    pub const DESKTOP_SIZE: i32 = -223;
    /// Extended Clipboard pseudo-encoding (0xC0A1E5CE, rfbproto community spec): UTF-8
    /// clipboard with caps / request / peek / notify / provide.
    pub const EXTENDED_CLIPBOARD: i32 = 0xC0A1_E5CE_u32 as i32;
}

/// The encodings we ask for, in order of preference (lossless only): CopyRect, Raw,
/// DesktopSize, Extended Clipboard.
pub const ENCODINGS: [i32; 4] = [
    encoding::COPY_RECT,
    encoding::RAW,
    encoding::DESKTOP_SIZE,
    encoding::EXTENDED_CLIPBOARD,
];

/// Client message types (RFC 6143 §7.5).
pub mod message_type {
    /// SetPixelFormat (§7.5.1).
    pub const SET_PIXEL_FORMAT: u8 = 0;
    /// SetEncodings (§7.5.2).
    pub const SET_ENCODINGS: u8 = 2;
    /// FramebufferUpdateRequest (§7.5.3).
    pub const FRAMEBUFFER_UPDATE_REQUEST: u8 = 3;
    /// KeyEvent (§7.5.4).
    pub const KEY_EVENT: u8 = 4;
    /// PointerEvent (§7.5.5).
    pub const POINTER_EVENT: u8 = 5;
    /// ClientCutText (§7.5.6), also carrying the Extended Clipboard messages.
    pub const CLIENT_CUT_TEXT: u8 = 6;
}

/// How pixels are laid out on the wire (RFC 6143 §7.4): 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelFormat {
    /// Bits per pixel on the wire: 8, 16 or 32.
    pub bits_per_pixel: u8,
    /// Useful bits in a pixel.
    pub depth: u8,
    /// Whether multi-byte pixels are big-endian.
    pub big_endian: bool,
    /// True colour (shifts and maxima) rather than a colour map.
    pub true_colour: bool,
    /// Largest red value (2^n − 1).
    pub red_max: u16,
    /// Largest green value.
    pub green_max: u16,
    /// Largest blue value.
    pub blue_max: u16,
    /// Bit position of red within a pixel.
    pub red_shift: u8,
    /// Bit position of green.
    pub green_shift: u8,
    /// Bit position of blue.
    pub blue_shift: u8,
}

impl PixelFormat {
    /// The format we ask every server for: 32 bpp, depth 24, little-endian, true colour,
    /// 8 bits per channel at shifts 16/8/0, so a pixel arrives as the bytes B, G, R, X.
    pub const BGRX: Self = Self {
        bits_per_pixel: 32,
        depth: 24,
        big_endian: false,
        true_colour: true,
        red_max: 255,
        green_max: 255,
        blue_max: 255,
        red_shift: 16,
        green_shift: 8,
        blue_shift: 0,
    };

    /// The 16 wire bytes (3 bytes of padding at the end).
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0] = self.bits_per_pixel;
        b[1] = self.depth;
        b[2] = u8::from(self.big_endian);
        b[3] = u8::from(self.true_colour);
        b[4..6].copy_from_slice(&self.red_max.to_be_bytes());
        b[6..8].copy_from_slice(&self.green_max.to_be_bytes());
        b[8..10].copy_from_slice(&self.blue_max.to_be_bytes());
        b[10] = self.red_shift;
        b[11] = self.green_shift;
        b[12] = self.blue_shift;
        b
    }

    /// Reads the 16 wire bytes (padding ignored).
    pub fn from_bytes(b: &[u8; 16]) -> Self {
        Self {
            bits_per_pixel: b[0],
            depth: b[1],
            big_endian: b[2] != 0,
            true_colour: b[3] != 0,
            red_max: u16::from_be_bytes([b[4], b[5]]),
            green_max: u16::from_be_bytes([b[6], b[7]]),
            blue_max: u16::from_be_bytes([b[8], b[9]]),
            red_shift: b[10],
            green_shift: b[11],
            blue_shift: b[12],
        }
    }
}

/// SetPixelFormat (§7.5.1): 20 bytes.
pub fn set_pixel_format(format: &PixelFormat) -> [u8; 20] {
    let mut b = [0u8; 20];
    b[0] = message_type::SET_PIXEL_FORMAT;
    b[4..].copy_from_slice(&format.to_bytes());
    b
}

/// SetEncodings (§7.5.2): 4 + 4 × n bytes. At most 65535 encodings (the count is a u16);
/// we send four.
pub fn set_encodings(encodings: &[i32]) -> Vec<u8> {
    let count = u16::try_from(encodings.len()).unwrap_or(u16::MAX);
    let mut b = Vec::with_capacity(4 + 4 * encodings.len());
    b.extend_from_slice(&[message_type::SET_ENCODINGS, 0]);
    b.extend_from_slice(&count.to_be_bytes());
    for encoding in encodings.iter().take(usize::from(count)) {
        b.extend_from_slice(&encoding.to_be_bytes());
    }
    b
}

/// FramebufferUpdateRequest (§7.5.3): 10 bytes asking for the rectangle at (`x`, `y`) of
/// `width` × `height` pixels; `incremental = false` asks for its whole contents.
pub fn framebuffer_update_request(
    incremental: bool,
    x: u16,
    y: u16,
    width: u16,
    height: u16,
) -> [u8; 10] {
    let mut b = [0u8; 10];
    b[0] = message_type::FRAMEBUFFER_UPDATE_REQUEST;
    b[1] = u8::from(incremental);
    b[2..4].copy_from_slice(&x.to_be_bytes());
    b[4..6].copy_from_slice(&y.to_be_bytes());
    b[6..8].copy_from_slice(&width.to_be_bytes());
    b[8..10].copy_from_slice(&height.to_be_bytes());
    b
}

/// KeyEvent (§7.5.4): 8 bytes, `keysym` pressed (`down`) or released.
pub fn key_event(down: bool, keysym: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = message_type::KEY_EVENT;
    b[1] = u8::from(down);
    b[4..8].copy_from_slice(&keysym.to_be_bytes());
    b
}

/// PointerEvent (§7.5.5): 6 bytes; the pointer at (`x`, `y`) pixels with `buttons` held
/// (bit 0 left, 1 middle, 2 right, 3/4 wheel up/down, 5/6 wheel left/right).
pub fn pointer_event(buttons: u8, x: u16, y: u16) -> [u8; 6] {
    let mut b = [0u8; 6];
    b[0] = message_type::POINTER_EVENT;
    b[1] = buttons;
    b[2..4].copy_from_slice(&x.to_be_bytes());
    b[4..6].copy_from_slice(&y.to_be_bytes());
    b
}

/// Legacy ClientCutText (§7.5.6): 8 + n bytes of ISO 8859-1 (Latin-1) text, lines ended by
/// `\n` alone. Errors: [`LinkError::Unsupported`] naming the first character outside
/// Latin-1 (never mangled into `?`), or text over 4 GiB.
pub fn client_cut_text_latin1(text: &str) -> Result<Vec<u8>, LinkError> {
    let latin1 = to_latin1(text)?;
    let len = u32::try_from(latin1.len())
        .map_err(|_| LinkError::Unsupported("clipboard text over 4 GiB".into()))?;
    let mut b = Vec::with_capacity(8 + latin1.len());
    b.extend_from_slice(&[message_type::CLIENT_CUT_TEXT, 0, 0, 0]);
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(&latin1);
    Ok(b)
}

/// `text` as Latin-1 bytes (`\r\n` becomes `\n`, as §7.5.6 asks). Errors:
/// [`LinkError::Unsupported`] for a character above U+00FF.
fn to_latin1(text: &str) -> Result<Vec<u8>, LinkError> {
    let text = text.replace("\r\n", "\n");
    text.chars()
        .map(|c| {
            u8::try_from(u32::from(c)).map_err(|_| {
                LinkError::Unsupported(format!(
                    "the desktop only takes Latin-1 clipboard text (no Extended Clipboard), \
                     and {c:?} (U+{:04X}) is outside it",
                    u32::from(c)
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_format_bytes() {
        assert_eq!(
            PixelFormat::BGRX.to_bytes(),
            [32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]
        );
        assert_eq!(
            PixelFormat::from_bytes(&PixelFormat::BGRX.to_bytes()),
            PixelFormat::BGRX
        );
        let msg = set_pixel_format(&PixelFormat::BGRX);
        assert_eq!(msg[..4], [0, 0, 0, 0]);
        assert_eq!(msg[4..], PixelFormat::BGRX.to_bytes());
    }

    #[test]
    fn set_encodings_bytes() {
        assert_eq!(
            set_encodings(&ENCODINGS),
            [
                2, 0, 0, 4, // type, pad, count
                0, 0, 0, 1, // CopyRect
                0, 0, 0, 0, // Raw
                0xff, 0xff, 0xff, 0x21, // DesktopSize -223
                0xc0, 0xa1, 0xe5, 0xce, // Extended Clipboard
            ]
        );
    }

    #[test]
    fn input_and_request_bytes() {
        assert_eq!(
            framebuffer_update_request(false, 0, 0, 1280, 800),
            [3, 0, 0, 0, 0, 0, 0x05, 0x00, 0x03, 0x20]
        );
        assert_eq!(
            framebuffer_update_request(true, 1, 2, 3, 4),
            [3, 1, 0, 1, 0, 2, 0, 3, 0, 4]
        );
        assert_eq!(key_event(true, 0xff0d), [4, 1, 0, 0, 0, 0, 0xff, 0x0d]);
        assert_eq!(
            key_event(false, 0x0100_4f60),
            [4, 0, 0, 0, 0x01, 0x00, 0x4f, 0x60]
        );
        assert_eq!(pointer_event(1, 200, 300), [5, 1, 0, 200, 0x01, 0x2c]);
    }

    #[test]
    fn legacy_cut_text_is_latin1_or_refused() {
        assert_eq!(
            client_cut_text_latin1("Grüße\r\n").unwrap(),
            [6, 0, 0, 0, 0, 0, 0, 6, b'G', b'r', 0xfc, 0xdf, b'e', b'\n']
        );
        let err = client_cut_text_latin1("Grüße 你好").unwrap_err();
        assert!(matches!(err, LinkError::Unsupported(_)));
        assert!(err.to_string().contains("U+4F60"), "{err}");
    }
}
