//! Server-to-client messages (RFC 6143 §7.6), decoded as the bytes arrive: [`Decoder::feed`]
//! takes whatever has been read, consumes every complete part, applies framebuffer
//! rectangles to the [`Framebuffer`] straight away (a Raw rectangle is copied in as its
//! pixels arrive, never buffered whole) and reports the rest as [`ServerEvent`]s.
//!
//! Handled: FramebufferUpdate (§7.6.1) with Raw, CopyRect and the DesktopSize
//! pseudo-encoding; SetColourMapEntries (§7.6.2, read and ignored: we asked for true
//! colour); Bell (§7.6.3); ServerCutText (§7.6.4), legacy Latin-1 and Extended Clipboard.
//! Anything else is a protocol error: we never asked for it.
//!
//! Not here: answering the messages (`connection`).

use super::{
    clipboard::{self, ClipboardMessage},
    framebuffer::{BYTES_PER_PIXEL, Framebuffer, Rect},
    messages::encoding,
};
use crate::desktop::error::LinkError;

/// Server message types (RFC 6143 §7.6).
pub mod server_type {
    /// FramebufferUpdate (§7.6.1).
    pub const FRAMEBUFFER_UPDATE: u8 = 0;
    /// SetColourMapEntries (§7.6.2).
    pub const SET_COLOUR_MAP_ENTRIES: u8 = 1;
    /// Bell (§7.6.3).
    pub const BELL: u8 = 2;
    /// ServerCutText (§7.6.4).
    pub const SERVER_CUT_TEXT: u8 = 3;
}

/// Largest legacy ServerCutText we keep (bytes); longer ones are skipped.
pub const MAX_CUT_TEXT_BYTES: usize = 1 << 20;

/// What a server said, other than pixels (those go straight to the framebuffer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// A FramebufferUpdate is complete; `resized` when it carried DesktopSize.
    UpdateDone {
        /// Whether the framebuffer changed size during the update.
        resized: bool,
    },
    /// Bell.
    Bell,
    /// Legacy ServerCutText, decoded from Latin-1 (None when it was over
    /// [`MAX_CUT_TEXT_BYTES`] and skipped).
    CutText(Option<String>),
    /// An Extended Clipboard message.
    Clipboard(ClipboardMessage),
}

/// Where the decoder is within the stream.
#[derive(Clone, Copy, Debug, Default)]
enum State {
    /// Between messages.
    #[default]
    Idle,
    /// Inside a FramebufferUpdate, before the next rectangle header.
    Rects { left: u16, resized: bool },
    /// Inside a Raw rectangle, `done` pixels read.
    Raw {
        rect: Rect,
        done: usize,
        left: u16,
        resized: bool,
    },
    /// Skipping `left` bytes (colour map entries, oversized cut text).
    Skip { left: usize },
}

/// The incremental decoder; one per connection.
#[derive(Debug, Default)]
pub struct Decoder {
    state: State,
}

impl Decoder {
    /// A decoder waiting for the first message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes as much of `input` as forms complete parts, applying rectangles to `fb` and
    /// pushing events to `events`; returns the number of bytes consumed. The caller keeps
    /// the rest and feeds it again with more bytes after it. Errors:
    /// [`LinkError::Protocol`] for an unknown message type or encoding, a rectangle outside
    /// the framebuffer or a malformed clipboard message (the connection is unusable then).
    pub fn feed(
        &mut self,
        input: &[u8],
        fb: &mut Framebuffer,
        events: &mut Vec<ServerEvent>,
    ) -> Result<usize, LinkError> {
        let mut at = 0;
        loop {
            let rest = &input[at..];
            let used = match self.state {
                State::Idle => self.message(rest, events)?,
                State::Rects { left: 0, resized } => {
                    events.push(ServerEvent::UpdateDone { resized });
                    self.state = State::Idle;
                    Some(0)
                }
                State::Rects { left, resized } => self.rect_header(rest, fb, left, resized)?,
                State::Raw {
                    rect,
                    done,
                    left,
                    resized,
                } => {
                    let wanted = (rect.pixels() - done) * BYTES_PER_PIXEL;
                    let take = wanted.min(rest.len() / BYTES_PER_PIXEL * BYTES_PER_PIXEL);
                    if take == 0 && wanted > 0 {
                        None
                    } else {
                        fb.put_raw(&rect, done, &rest[..take]);
                        let done = done + take / BYTES_PER_PIXEL;
                        self.state = if done == rect.pixels() {
                            State::Rects { left, resized }
                        } else {
                            State::Raw {
                                rect,
                                done,
                                left,
                                resized,
                            }
                        };
                        Some(take)
                    }
                }
                State::Skip { left } => {
                    let take = left.min(rest.len());
                    if take == 0 && left > 0 {
                        None
                    } else {
                        self.state = if take == left {
                            State::Idle
                        } else {
                            State::Skip { left: left - take }
                        };
                        Some(take)
                    }
                }
            };
            match used {
                Some(n) => at += n,
                None => return Ok(at),
            }
        }
    }

    /// The start of a message at `rest[0]`; `None` until enough bytes are there.
    fn message(
        &mut self,
        rest: &[u8],
        events: &mut Vec<ServerEvent>,
    ) -> Result<Option<usize>, LinkError> {
        let Some(&kind) = rest.first() else {
            return Ok(None);
        };
        match kind {
            server_type::FRAMEBUFFER_UPDATE => {
                let Some(head) = rest.get(..4) else {
                    return Ok(None);
                };
                let left = u16::from_be_bytes([head[2], head[3]]);
                self.state = State::Rects {
                    left,
                    resized: false,
                };
                Ok(Some(4))
            }
            server_type::SET_COLOUR_MAP_ENTRIES => {
                let Some(head) = rest.get(..6) else {
                    return Ok(None);
                };
                let colours = usize::from(u16::from_be_bytes([head[4], head[5]]));
                self.state = State::Skip { left: colours * 6 };
                Ok(Some(6))
            }
            server_type::BELL => {
                events.push(ServerEvent::Bell);
                Ok(Some(1))
            }
            server_type::SERVER_CUT_TEXT => {
                let Some(head) = rest.get(..8) else {
                    return Ok(None);
                };
                let len = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
                let (extended, size) = (len < 0, len.unsigned_abs() as usize);
                let limit = if extended {
                    clipboard::MAX_CLIPBOARD_BYTES
                } else {
                    MAX_CUT_TEXT_BYTES
                };
                if size > limit {
                    if extended {
                        return Err(LinkError::protocol(format!(
                            "Extended Clipboard message of {size} bytes is over {limit}"
                        )));
                    }
                    events.push(ServerEvent::CutText(None));
                    self.state = State::Skip { left: size };
                    return Ok(Some(8));
                }
                let Some(body) = rest.get(8..8 + size) else {
                    return Ok(None);
                };
                events.push(if extended {
                    ServerEvent::Clipboard(clipboard::parse(body)?)
                } else {
                    ServerEvent::CutText(Some(body.iter().copied().map(char::from).collect()))
                });
                Ok(Some(8 + size))
            }
            other => Err(LinkError::protocol(format!(
                "unknown server message type {other}"
            ))),
        }
    }

    /// A rectangle header (and the small bodies: CopyRect, DesktopSize).
    fn rect_header(
        &mut self,
        rest: &[u8],
        fb: &mut Framebuffer,
        left: u16,
        resized: bool,
    ) -> Result<Option<usize>, LinkError> {
        let Some(h) = rest.get(..12) else {
            return Ok(None);
        };
        let u16_at = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        let rect = Rect {
            x: u16_at(0),
            y: u16_at(2),
            width: u16_at(4),
            height: u16_at(6),
        };
        let kind = i32::from_be_bytes([h[8], h[9], h[10], h[11]]);
        let left = left - 1;
        match kind {
            encoding::RAW => {
                fb.check(&rect, "Raw")?;
                self.state = State::Raw {
                    rect,
                    done: 0,
                    left,
                    resized,
                };
                Ok(Some(12))
            }
            encoding::COPY_RECT => {
                let Some(src) = rest.get(12..16) else {
                    return Ok(None);
                };
                let (src_x, src_y) = (
                    u16::from_be_bytes([src[0], src[1]]),
                    u16::from_be_bytes([src[2], src[3]]),
                );
                fb.check(&rect, "CopyRect destination")?;
                fb.check(
                    &Rect {
                        x: src_x,
                        y: src_y,
                        ..rect
                    },
                    "CopyRect source",
                )?;
                fb.copy_rect(src_x, src_y, &rect);
                self.state = State::Rects { left, resized };
                Ok(Some(16))
            }
            encoding::DESKTOP_SIZE => {
                super::framebuffer::check_size(rect.width, rect.height)?;
                fb.resize(rect.width, rect.height);
                self.state = State::Rects {
                    left,
                    resized: true,
                };
                Ok(Some(12))
            }
            other => Err(LinkError::protocol(format!(
                "rectangle in encoding {other}, which we did not ask for"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect_header(x: u16, y: u16, w: u16, h: u16, kind: i32) -> Vec<u8> {
        [x, y, w, h]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .chain(kind.to_be_bytes())
            .collect()
    }

    /// Feeds `bytes` in pieces of `step` bytes, as a socket would deliver them.
    fn feed_in_steps(
        bytes: &[u8],
        step: usize,
        fb: &mut Framebuffer,
    ) -> Result<Vec<ServerEvent>, LinkError> {
        let (mut decoder, mut events, mut pending) = (Decoder::new(), Vec::new(), Vec::new());
        for piece in bytes.chunks(step) {
            pending.extend_from_slice(piece);
            let used = decoder.feed(&pending, fb, &mut events)?;
            pending.drain(..used);
        }
        assert!(pending.is_empty(), "{} bytes left over", pending.len());
        Ok(events)
    }

    fn update_with_raw_copy_and_bell() -> Vec<u8> {
        let mut msg = vec![0, 0, 0, 2];
        msg.extend(rect_header(0, 0, 2, 2, encoding::RAW));
        for v in [1u8, 2, 3, 4] {
            msg.extend([v, v + 10, v + 20, 0]);
        }
        msg.extend(rect_header(2, 1, 2, 1, encoding::COPY_RECT));
        msg.extend([0, 0, 0, 0]); // from (0, 0)
        msg.push(server_type::BELL);
        msg
    }

    #[test]
    fn raw_copy_rect_and_bell_in_any_split() {
        for step in [1, 3, 7, 64] {
            let mut fb = Framebuffer::new(4, 2);
            let events = feed_in_steps(&update_with_raw_copy_and_bell(), step, &mut fb).unwrap();
            assert_eq!(
                events,
                [
                    ServerEvent::UpdateDone { resized: false },
                    ServerEvent::Bell
                ],
                "step {step}"
            );
            let rgb = fb.to_rgb();
            // (0,0) = B1 G11 R21 → RGB 21,11,1; (2,1) copied from (0,0), (3,1) from (1,0).
            assert_eq!(rgb[..3], [21, 11, 1]);
            assert_eq!(rgb[(4 + 2) * 3..(4 + 3) * 3], [21, 11, 1]);
            assert_eq!(rgb[(4 + 3) * 3..], [22, 12, 2]);
            assert_eq!(rgb[3 * 3..4 * 3], [0, 0, 0]);
        }
    }

    #[test]
    fn desktop_size_resizes_and_is_reported() {
        let mut msg = vec![0, 0, 0, 2];
        msg.extend(rect_header(0, 0, 3, 1, encoding::DESKTOP_SIZE));
        msg.extend(rect_header(2, 0, 1, 1, encoding::RAW));
        msg.extend([9, 9, 9, 0]);
        let mut fb = Framebuffer::new(1, 1);
        let events = feed_in_steps(&msg, 5, &mut fb).unwrap();
        assert_eq!(events, [ServerEvent::UpdateDone { resized: true }]);
        assert_eq!((fb.width(), fb.height()), (3, 1));
        assert_eq!(fb.bgrx()[8..], [9, 9, 9, 0]);
    }

    #[test]
    fn colour_map_is_skipped_and_cut_text_read() {
        let mut msg = vec![1, 0, 0, 0, 0, 2];
        msg.extend([0u8; 12]);
        msg.extend([3, 0, 0, 0, 0, 0, 0, 3, b'a', 0xe9, b'\n']);
        msg.extend([3, 0, 0, 0, 0xff, 0xff, 0xff, 0xfc, 0x04, 0, 0, 0]);
        msg.extend([0, 0, 0, 0]); // an empty update
        let mut fb = Framebuffer::new(1, 1);
        let events = feed_in_steps(&msg, 2, &mut fb).unwrap();
        assert_eq!(
            events,
            [
                ServerEvent::CutText(Some("aé\n".into())),
                ServerEvent::Clipboard(ClipboardMessage::Peek),
                ServerEvent::UpdateDone { resized: false },
            ]
        );
    }

    #[test]
    fn refuses_what_we_did_not_ask_for() {
        let mut fb = Framebuffer::new(4, 4);
        let mut zrle = vec![0, 0, 0, 1];
        zrle.extend(rect_header(0, 0, 1, 1, 16));
        let err = feed_in_steps(&zrle, 64, &mut fb).unwrap_err();
        assert!(err.to_string().contains("encoding 16"), "{err}");
        let mut outside = vec![0, 0, 0, 1];
        outside.extend(rect_header(3, 3, 2, 1, encoding::RAW));
        assert!(feed_in_steps(&outside, 64, &mut fb).is_err());
        let err = feed_in_steps(&[9], 1, &mut fb).unwrap_err();
        assert!(err.to_string().contains("message type 9"), "{err}");
    }
}
