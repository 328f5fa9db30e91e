//! What agent commands map to on a [`DesktopLink`], in framebuffer pixels: pointer moves,
//! clicks and wheel scrolls (RFC 6143 §7.5.5 button masks), typing and key chords (§7.5.4
//! KeyEvents with X keysyms), the clipboard, and PNG screenshots (optionally downscaled).
//!
//! Coordinates are not checked against the screen here (the server clamps them); the
//! executor validates commands before they get here. PNG encoding and resizing run on
//! `spawn_blocking`, off the async workers.
//!
//! Not here: the connection (`link`), keysym names (`keys`).

use image::{
    ExtendedColorType, ImageEncoder, RgbImage,
    codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder},
    imageops::{self, FilterType},
};

use super::{
    error::LinkError,
    keys::{RETURN, char_keysym},
    link::{DesktopLink, Frame},
};

/// PNG compression for screenshots. Measured on a 1280×800 desktop of four text-filled
/// xterms (release build, this 2-core machine): `Fast` + `Adaptive` 1.4 ms / 159 KB,
/// `Fast` + `Up` 0.8 ms / 237 KB, `Default` + `Adaptive` 8.6 ms / 27 KB, `Best` 18 ms /
/// 27 KB. `Fast` wins on time, as asked of screenshots; `Default` is the choice if bytes
/// ever matter more than 7 ms.
const PNG_COMPRESSION: CompressionType = CompressionType::Fast;
/// PNG row filter for screenshots: `Adaptive` (per-row choice) keeps `Fast` files small.
const PNG_FILTER: PngFilter = PngFilter::Adaptive;
/// The resampling filter for downscaled screenshots: Catmull-Rom (bicubic), sharp text
/// without Lanczos' ringing; 1280×800 → 640×400 takes 9.5 ms (Lanczos3 12.6 ms, Triangle
/// 9.0 ms) in a release build.
const RESIZE_FILTER: FilterType = FilterType::CatmullRom;

/// A mouse button (RFC 6143 §7.5.5 button-mask bits 0–2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Button {
    /// Button 1 (mask bit 0).
    Left,
    /// Button 2 (mask bit 1).
    Middle,
    /// Button 3 (mask bit 2).
    Right,
}

impl Button {
    /// The button-mask bit while this button is held.
    pub fn mask(self) -> u8 {
        match self {
            Self::Left => 1,
            Self::Middle => 1 << 1,
            Self::Right => 1 << 2,
        }
    }
}

/// Wheel buttons: 4 up, 5 down, 6 left, 7 right (mask bits 3–6, the X11 convention).
const WHEEL_UP: u8 = 1 << 3;
const WHEEL_DOWN: u8 = 1 << 4;
const WHEEL_LEFT: u8 = 1 << 5;
const WHEEL_RIGHT: u8 = 1 << 6;

/// An encoded screenshot.
#[derive(Clone, PartialEq)]
pub struct Png {
    /// The PNG file (RGB, 8 bits per channel).
    pub bytes: Vec<u8>,
    /// Image width (pixels).
    pub width: u32,
    /// Image height (pixels).
    pub height: u32,
    /// Image pixels per desktop pixel (≤ 1.0; 1.0 when not downscaled): desktop
    /// coordinates are image coordinates divided by it.
    pub scale: f64,
}

impl std::fmt::Debug for Png {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Png")
            .field("bytes", &self.bytes.len())
            .field("width", &self.width)
            .field("height", &self.height)
            .field("scale", &self.scale)
            .finish()
    }
}

/// Moves the pointer to (`x`, `y`) with no button held. Errors: as
/// [`DesktopLink::pointer`].
pub async fn move_to<L: DesktopLink + ?Sized>(link: &L, x: u16, y: u16) -> Result<(), LinkError> {
    link.pointer(x, y, 0).await
}

/// Moves to (`x`, `y`), then presses and releases `button` `count` times (2 = a double
/// click: the events go out back to back, well within any double-click time). Errors: as
/// [`DesktopLink::pointer`].
pub async fn click<L: DesktopLink + ?Sized>(
    link: &L,
    x: u16,
    y: u16,
    button: Button,
    count: u8,
) -> Result<(), LinkError> {
    link.pointer(x, y, 0).await?;
    for _ in 0..count {
        link.pointer(x, y, button.mask()).await?;
        link.pointer(x, y, 0).await?;
    }
    Ok(())
}

/// Moves to (`x`, `y`) and turns the wheel: `dy` notches down (negative: up), then `dx`
/// notches right (negative: left); one press and release of button 4/5/6/7 per notch.
/// Errors: as [`DesktopLink::pointer`].
pub async fn scroll<L: DesktopLink + ?Sized>(
    link: &L,
    x: u16,
    y: u16,
    dx: i32,
    dy: i32,
) -> Result<(), LinkError> {
    link.pointer(x, y, 0).await?;
    let vertical = if dy < 0 { WHEEL_UP } else { WHEEL_DOWN };
    let horizontal = if dx < 0 { WHEEL_LEFT } else { WHEEL_RIGHT };
    for (button, notches) in [
        (vertical, dy.unsigned_abs()),
        (horizontal, dx.unsigned_abs()),
    ] {
        for _ in 0..notches {
            link.pointer(x, y, button).await?;
            link.pointer(x, y, 0).await?;
        }
    }
    Ok(())
}

/// Types `text`: one key press and release per character ([`char_keysym`]; `\r\n` counts
/// as one Return). Errors: as [`DesktopLink::key`].
pub async fn type_text<L: DesktopLink + ?Sized>(link: &L, text: &str) -> Result<(), LinkError> {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let keysym = if c == '\r' && chars.peek() == Some(&'\n') {
            chars.next();
            RETURN
        } else {
            char_keysym(c)
        };
        link.key(keysym, true).await?;
        link.key(keysym, false).await?;
    }
    Ok(())
}

/// Presses `keysyms` in order and releases them in reverse (a chord from
/// [`parse_chord`](super::keys::parse_chord)). When a press fails, the keys already down
/// are released (best effort) before the error is returned. Errors: as
/// [`DesktopLink::key`].
pub async fn key_chord<L: DesktopLink + ?Sized>(
    link: &L,
    keysyms: &[u32],
) -> Result<(), LinkError> {
    for (pressed, &keysym) in keysyms.iter().enumerate() {
        if let Err(error) = link.key(keysym, true).await {
            for &down in keysyms[..pressed].iter().rev() {
                let _ = link.key(down, false).await;
            }
            return Err(error);
        }
    }
    for &keysym in keysyms.iter().rev() {
        link.key(keysym, false).await?;
    }
    Ok(())
}

/// Makes `text` the desktop's clipboard. Errors: as [`DesktopLink::cut_text`].
pub async fn set_clipboard<L: DesktopLink + ?Sized>(link: &L, text: &str) -> Result<(), LinkError> {
    link.cut_text(text).await
}

/// Captures the screen and encodes it as PNG, downscaled (aspect ratio kept, never
/// upscaled) to fit within `max_width × max_height` pixels when given. Errors: as
/// [`DesktopLink::capture`]; [`LinkError::Unsupported`] for a maximum of 0 pixels.
pub async fn screenshot<L: DesktopLink + ?Sized>(
    link: &L,
    max_width: Option<u32>,
    max_height: Option<u32>,
) -> Result<Png, LinkError> {
    if max_width == Some(0) || max_height == Some(0) {
        return Err(LinkError::Unsupported(
            "a screenshot's maximum width and height must be at least 1 pixel".into(),
        ));
    }
    let frame = link.capture().await?;
    tokio::task::spawn_blocking(move || encode(frame, max_width, max_height))
        .await
        .map_err(|e| LinkError::Unsupported(format!("encoding the screenshot failed: {e}")))?
}

/// The size `width × height` is scaled to so it fits `max_width × max_height`, and the
/// factor: the tighter limit decides; never above 1.0; at least 1 pixel each way.
pub fn fit(
    width: u32,
    height: u32,
    max_width: Option<u32>,
    max_height: Option<u32>,
) -> (u32, u32, f64) {
    let ratio = |max: Option<u32>, size: u32| match max {
        Some(max) if max < size => f64::from(max) / f64::from(size),
        _ => 1.0,
    };
    let scale = ratio(max_width, width).min(ratio(max_height, height));
    if scale >= 1.0 {
        return (width, height, 1.0);
    }
    let scaled = |size: u32| ((f64::from(size) * scale).round() as u32).max(1);
    (scaled(width), scaled(height), scale)
}

/// Downscales (when needed) and encodes `frame`. Errors: [`LinkError::Unsupported`] when
/// the encoder fails (it does not for a well-formed frame).
fn encode(frame: Frame, max_width: Option<u32>, max_height: Option<u32>) -> Result<Png, LinkError> {
    let (width, height, scale) = fit(frame.width, frame.height, max_width, max_height);
    let image = RgbImage::from_raw(frame.width, frame.height, frame.rgb).ok_or_else(|| {
        LinkError::Unsupported("the frame's pixel count does not match its size".into())
    })?;
    let image = if (width, height) == (frame.width, frame.height) {
        image
    } else {
        imageops::resize(&image, width, height, RESIZE_FILTER)
    };
    let mut bytes = Vec::new();
    PngEncoder::new_with_quality(&mut bytes, PNG_COMPRESSION, PNG_FILTER)
        .write_image(image.as_raw(), width, height, ExtendedColorType::Rgb8)
        .map_err(|e| LinkError::Unsupported(format!("encoding the screenshot failed: {e}")))?;
    Ok(Png {
        bytes,
        width,
        height,
        scale,
    })
}

#[cfg(test)]
mod tests;
