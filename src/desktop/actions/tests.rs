//! The event sequences actions produce, on a recording [`DesktopLink`], and screenshots of
//! a synthetic frame.

use std::sync::Mutex;

use async_trait::async_trait;

use super::*;

/// What a recording link saw.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    Pointer(u16, u16, u8),
    Key(u32, bool),
    CutText(String),
}

/// A link that records events and captures a fixed frame.
struct Recorder {
    events: Mutex<Vec<Event>>,
    frame: Frame,
    fail_key_after: Option<usize>,
}

impl Recorder {
    fn new() -> Self {
        Self::with_frame(Frame {
            width: 2,
            height: 1,
            rgb: vec![255, 0, 0, 0, 0, 255],
        })
    }

    fn with_frame(frame: Frame) -> Self {
        Self {
            events: Mutex::new(Vec::new()),
            frame,
            fail_key_after: None,
        }
    }

    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}

#[async_trait]
impl DesktopLink for Recorder {
    fn size(&self) -> (u32, u32) {
        (self.frame.width, self.frame.height)
    }
    async fn pointer(&self, x: u16, y: u16, buttons: u8) -> Result<(), LinkError> {
        self.events
            .lock()
            .unwrap()
            .push(Event::Pointer(x, y, buttons));
        Ok(())
    }
    async fn key(&self, keysym: u32, down: bool) -> Result<(), LinkError> {
        let mut events = self.events.lock().unwrap();
        if self.fail_key_after == Some(events.len()) && down {
            return Err(LinkError::Gone("test".into()));
        }
        events.push(Event::Key(keysym, down));
        Ok(())
    }
    async fn cut_text(&self, text: &str) -> Result<(), LinkError> {
        self.events
            .lock()
            .unwrap()
            .push(Event::CutText(text.to_owned()));
        Ok(())
    }
    async fn capture(&self) -> Result<Frame, LinkError> {
        Ok(self.frame.clone())
    }
}

use Event::{Key, Pointer};

#[tokio::test]
async fn pointer_actions() {
    let link = Recorder::new();
    move_to(&link, 200, 300).await.unwrap();
    assert_eq!(link.take(), [Pointer(200, 300, 0)]);

    click(&link, 5, 6, Button::Left, 2).await.unwrap();
    assert_eq!(
        link.take(),
        [
            Pointer(5, 6, 0),
            Pointer(5, 6, 1),
            Pointer(5, 6, 0),
            Pointer(5, 6, 1),
            Pointer(5, 6, 0)
        ]
    );
    click(&link, 1, 1, Button::Right, 1).await.unwrap();
    assert_eq!(link.take()[1], Pointer(1, 1, 4));
    click(&link, 1, 1, Button::Middle, 1).await.unwrap();
    assert_eq!(link.take()[1], Pointer(1, 1, 2));

    scroll(&link, 9, 9, -1, 2).await.unwrap();
    assert_eq!(
        link.take(),
        [
            Pointer(9, 9, 0),
            Pointer(9, 9, 16),
            Pointer(9, 9, 0),
            Pointer(9, 9, 16),
            Pointer(9, 9, 0),
            Pointer(9, 9, 32),
            Pointer(9, 9, 0),
        ]
    );
    scroll(&link, 0, 0, 1, -1).await.unwrap();
    assert_eq!(
        link.take()[1..],
        [
            Pointer(0, 0, 8),
            Pointer(0, 0, 0),
            Pointer(0, 0, 64),
            Pointer(0, 0, 0)
        ]
    );
}

#[tokio::test]
async fn typing_and_chords() {
    let link = Recorder::new();
    type_text(&link, "aΚ\r\n\n").await.unwrap();
    assert_eq!(
        link.take(),
        [
            Key(0x61, true),
            Key(0x61, false),
            Key(0x0100_039a, true),
            Key(0x0100_039a, false),
            Key(0xff0d, true),
            Key(0xff0d, false),
            Key(0xff0d, true),
            Key(0xff0d, false),
        ]
    );
    key_chord(&link, &[0xffe3, 0xffe1, 0x74]).await.unwrap();
    assert_eq!(
        link.take(),
        [
            Key(0xffe3, true),
            Key(0xffe1, true),
            Key(0x74, true),
            Key(0x74, false),
            Key(0xffe1, false),
            Key(0xffe3, false),
        ]
    );
    set_clipboard(&link, "x").await.unwrap();
    assert_eq!(link.take(), [Event::CutText("x".into())]);
}

#[tokio::test]
async fn a_failed_chord_releases_what_it_pressed() {
    let mut link = Recorder::new();
    link.fail_key_after = Some(2);
    let err = key_chord(&link, &[1, 2, 3]).await.unwrap_err();
    assert!(matches!(err, LinkError::Gone(_)));
    assert_eq!(
        link.take(),
        [Key(1, true), Key(2, true), Key(2, false), Key(1, false)]
    );
}

#[test]
fn fitting() {
    assert_eq!(fit(1280, 800, None, None), (1280, 800, 1.0));
    assert_eq!(fit(1280, 800, Some(640), None), (640, 400, 0.5));
    assert_eq!(fit(1280, 800, None, Some(400)), (640, 400, 0.5));
    assert_eq!(fit(1280, 800, Some(640), Some(100)), (160, 100, 0.125));
    assert_eq!(fit(1280, 800, Some(4000), Some(4000)), (1280, 800, 1.0));
    assert_eq!(fit(1280, 800, Some(1), None), (1, 1, 1.0 / 1280.0));
}

#[tokio::test]
async fn screenshots_are_pngs_of_the_frame() {
    let link = Recorder::new();
    let png = screenshot(&link, None, None).await.unwrap();
    assert_eq!((png.width, png.height, png.scale), (2, 1, 1.0));
    let decoded = image::load_from_memory(&png.bytes).unwrap().to_rgb8();
    assert_eq!(decoded.as_raw(), &[255, 0, 0, 0, 0, 255]);

    let red = Frame {
        width: 1280,
        height: 800,
        rgb: [255u8, 0, 0].repeat(1280 * 800),
    };
    let link = Recorder::with_frame(red);
    let png = screenshot(&link, Some(640), None).await.unwrap();
    assert_eq!((png.width, png.height, png.scale), (640, 400, 0.5));
    let decoded = image::load_from_memory(&png.bytes).unwrap().to_rgb8();
    assert_eq!(decoded.dimensions(), (640, 400));
    assert!(decoded.pixels().all(|p| p.0 == [255, 0, 0]));
    assert!(matches!(
        screenshot(&link, Some(0), None).await,
        Err(LinkError::Unsupported(_))
    ));
}
