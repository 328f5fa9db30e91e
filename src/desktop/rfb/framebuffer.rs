//! The client's copy of the remote framebuffer: `width × height` pixels stored as B, G, R, X
//! bytes (the [`PixelFormat::BGRX`](super::messages::PixelFormat::BGRX) wire layout, so Raw
//! rectangles are copied in unchanged), row after row, top to bottom.
//!
//! Not here: reading rectangles off the wire (`decode`), PNG encoding (`actions`).

use crate::desktop::error::LinkError;

/// Bytes per pixel in the framebuffer and on the wire (32 bpp).
pub const BYTES_PER_PIXEL: usize = 4;

/// A rectangle in framebuffer pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    /// Left edge (pixels).
    pub x: u16,
    /// Top edge (pixels).
    pub y: u16,
    /// Width (pixels).
    pub width: u16,
    /// Height (pixels).
    pub height: u16,
}

impl Rect {
    /// Number of pixels in the rectangle.
    pub fn pixels(&self) -> usize {
        usize::from(self.width) * usize::from(self.height)
    }
}

/// Largest framebuffer side a desktop may announce (pixels, ServerInit or DesktopSize):
/// 8192 × 8192 × 4 bytes is 256 MiB, the most one link will hold. Larger → a protocol error,
/// never an allocation the process cannot survive.
pub const MAX_SIDE: u16 = 8192;

/// Errors with [`LinkError::Protocol`] when `width` × `height` exceeds [`MAX_SIDE`].
pub fn check_size(width: u16, height: u16) -> Result<(), LinkError> {
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(LinkError::protocol(format!(
            "the desktop announced a {width}x{height} framebuffer; at most {MAX_SIDE}x{MAX_SIDE} is accepted"
        )));
    }
    Ok(())
}

/// The local framebuffer (BGRX, 4 bytes per pixel).
#[derive(Clone, Debug, Default)]
pub struct Framebuffer {
    width: u16,
    height: u16,
    bgrx: Vec<u8>,
}

impl Framebuffer {
    /// A black framebuffer of `width × height` pixels.
    pub fn new(width: u16, height: u16) -> Self {
        Self {
            width,
            height,
            bgrx: vec![0; usize::from(width) * usize::from(height) * BYTES_PER_PIXEL],
        }
    }

    /// Width (pixels).
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Height (pixels).
    pub fn height(&self) -> u16 {
        self.height
    }

    /// The pixels, BGRX, row-major (`width × height × 4` bytes).
    pub fn bgrx(&self) -> &[u8] {
        &self.bgrx
    }

    /// Changes the size (DesktopSize, RFC 6143 §7.8.2); the contents become black until the
    /// next full update.
    pub fn resize(&mut self, width: u16, height: u16) {
        *self = Self::new(width, height);
    }

    /// Errors with [`LinkError::Protocol`] unless `rect` lies inside the framebuffer.
    pub fn check(&self, rect: &Rect, what: &str) -> Result<(), LinkError> {
        let right = u32::from(rect.x) + u32::from(rect.width);
        let bottom = u32::from(rect.y) + u32::from(rect.height);
        if right > u32::from(self.width) || bottom > u32::from(self.height) {
            return Err(LinkError::protocol(format!(
                "{what} rectangle {}x{} at ({}, {}) lies outside the {}x{} framebuffer",
                rect.width, rect.height, rect.x, rect.y, self.width, self.height
            )));
        }
        Ok(())
    }

    /// Writes Raw pixel bytes (`bytes.len()` a multiple of 4) into `rect` (already
    /// [`check`](Self::check)ed), starting at pixel number `first` of the rectangle in
    /// row-major order; lets a rectangle arrive in pieces of any whole number of pixels.
    pub fn put_raw(&mut self, rect: &Rect, first: usize, bytes: &[u8]) {
        let rect_width = usize::from(rect.width);
        if rect_width == 0 {
            return;
        }
        let stride = usize::from(self.width) * BYTES_PER_PIXEL;
        let mut pixel = first;
        let mut rest = bytes;
        while !rest.is_empty() {
            let (row, col) = (pixel / rect_width, pixel % rect_width);
            let run = (rect_width - col).min(rest.len() / BYTES_PER_PIXEL);
            if run == 0 {
                break;
            }
            let at = (usize::from(rect.y) + row) * stride
                + (usize::from(rect.x) + col) * BYTES_PER_PIXEL;
            let (chunk, tail) = rest.split_at(run * BYTES_PER_PIXEL);
            self.bgrx[at..at + chunk.len()].copy_from_slice(chunk);
            rest = tail;
            pixel += run;
        }
    }

    /// CopyRect (RFC 6143 §7.7.2): copies the `dst`-sized rectangle at (`src_x`, `src_y`) to
    /// `dst`; both already checked. Overlapping areas copy as if through a temporary.
    pub fn copy_rect(&mut self, src_x: u16, src_y: u16, dst: &Rect) {
        let stride = usize::from(self.width) * BYTES_PER_PIXEL;
        let row_bytes = usize::from(dst.width) * BYTES_PER_PIXEL;
        let row_at = |y: usize, x: u16| y * stride + usize::from(x) * BYTES_PER_PIXEL;
        let rows = usize::from(dst.height);
        // Copy rows in the order that never overwrites a row before it is read.
        let downwards = dst.y <= src_y;
        for i in 0..rows {
            let r = if downwards { i } else { rows - 1 - i };
            let from = row_at(usize::from(src_y) + r, src_x);
            let to = row_at(usize::from(dst.y) + r, dst.x);
            self.bgrx.copy_within(from..from + row_bytes, to);
        }
    }

    /// The pixels as packed RGB (`width × height × 3` bytes).
    pub fn to_rgb(&self) -> Vec<u8> {
        bgrx_to_rgb(&self.bgrx)
    }
}

/// Packed RGB from BGRX bytes (4 bytes in, 3 out per pixel).
pub fn bgrx_to_rgb(bgrx: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(bgrx.len() / BYTES_PER_PIXEL * 3);
    for px in bgrx.chunks_exact(BYTES_PER_PIXEL) {
        rgb.extend_from_slice(&[px[2], px[1], px[0]]);
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(v: u8) -> [u8; 4] {
        [v, v, v, 0]
    }

    /// A 4x3 framebuffer whose pixel (x, y) has value 10 * y + x.
    fn numbered() -> Framebuffer {
        let mut fb = Framebuffer::new(4, 3);
        let all = Rect {
            x: 0,
            y: 0,
            width: 4,
            height: 3,
        };
        let bytes: Vec<u8> = (0..12u8).flat_map(|i| px((i / 4) * 10 + i % 4)).collect();
        fb.put_raw(&all, 0, &bytes);
        fb
    }

    fn value(fb: &Framebuffer, x: usize, y: usize) -> u8 {
        fb.bgrx()[(y * usize::from(fb.width()) + x) * 4]
    }

    #[test]
    fn raw_in_pieces_lands_in_place() {
        let mut fb = Framebuffer::new(4, 3);
        let rect = Rect {
            x: 1,
            y: 1,
            width: 2,
            height: 2,
        };
        fb.check(&rect, "Raw").unwrap();
        let bytes: Vec<u8> = [1, 2, 3, 4].into_iter().flat_map(px).collect();
        fb.put_raw(&rect, 0, &bytes[..4]);
        fb.put_raw(&rect, 1, &bytes[4..12]);
        fb.put_raw(&rect, 3, &bytes[12..]);
        assert_eq!(value(&fb, 1, 1), 1);
        assert_eq!(value(&fb, 2, 1), 2);
        assert_eq!(value(&fb, 1, 2), 3);
        assert_eq!(value(&fb, 2, 2), 4);
        assert_eq!(value(&fb, 0, 0), 0);
        assert_eq!(value(&fb, 3, 2), 0);
    }

    #[test]
    fn copy_rect_handles_overlap_both_ways() {
        let mut fb = numbered();
        // Shift rows 0..2 down by one (overlapping).
        fb.copy_rect(
            0,
            0,
            &Rect {
                x: 0,
                y: 1,
                width: 4,
                height: 2,
            },
        );
        assert_eq!(value(&fb, 0, 0), 0);
        assert_eq!(value(&fb, 3, 1), 3);
        assert_eq!(value(&fb, 2, 2), 12);
        let mut fb = numbered();
        // Shift rows 1..3 up by one.
        fb.copy_rect(
            0,
            1,
            &Rect {
                x: 0,
                y: 0,
                width: 4,
                height: 2,
            },
        );
        assert_eq!(value(&fb, 1, 0), 11);
        assert_eq!(value(&fb, 1, 1), 21);
        let mut fb = numbered();
        // Shift right by one within a row.
        fb.copy_rect(
            0,
            0,
            &Rect {
                x: 1,
                y: 0,
                width: 3,
                height: 1,
            },
        );
        assert_eq!(
            [value(&fb, 0, 0), value(&fb, 1, 0), value(&fb, 3, 0)],
            [0, 0, 2]
        );
    }

    #[test]
    fn bounds_and_rgb() {
        let fb = Framebuffer::new(4, 3);
        assert!(
            fb.check(
                &Rect {
                    x: 3,
                    y: 2,
                    width: 1,
                    height: 1
                },
                "Raw"
            )
            .is_ok()
        );
        assert!(
            fb.check(
                &Rect {
                    x: 3,
                    y: 2,
                    width: 2,
                    height: 1
                },
                "Raw"
            )
            .is_err()
        );
        assert!(
            fb.check(
                &Rect {
                    x: 0,
                    y: 65535,
                    width: 1,
                    height: 65535
                },
                "Raw"
            )
            .is_err()
        );
        assert_eq!(bgrx_to_rgb(&[1, 2, 3, 0, 4, 5, 6, 0]), [3, 2, 1, 6, 5, 4]);
    }
}
