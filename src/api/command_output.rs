//! The typed outputs of commands (`CommandOut.output`): one schema per kind, told apart by
//! their own `kind` field (an OpenAPI `oneOf` with a discriminator, like the request's
//! `args`), so SDKs narrow on it.

use poem_openapi::{Object, Union, types::ParseFromJSON};
use uuid::Uuid;

use crate::domain::commands::CommandKind;

/// `screenshot`: the stored PNG.
#[derive(Object)]
pub struct ScreenshotOutput {
    /// The artifact holding the image (`artifacts.get`).
    pub artifact_id: Uuid,
    /// Image width (pixels).
    pub width: u32,
    /// Image height (pixels).
    pub height: u32,
    /// Image size ÷ desktop size (1.0 unless `max_width`/`max_height` downscaled it).
    pub scale: f64,
    /// `image/png`.
    pub media_type: String,
    /// Image size (bytes).
    pub bytes: u64,
}

/// `shell`: what the command printed and how it exited.
#[derive(Object)]
pub struct ShellOutput {
    /// Exit status; absent when it was killed (at its timeout).
    pub exit_code: Option<i32>,
    /// Standard output (UTF-8; invalid sequences replaced), at most `shell_max_output_bytes`.
    pub stdout: String,
    /// Standard error, likewise.
    pub stderr: String,
    /// Whether stdout or stderr was longer and was cut.
    pub truncated: bool,
}

/// Declares the output of a kind that reports nothing beyond success (input kinds and
/// `open_url`): `{kind}` only.
macro_rules! done_output {
    ($($(#[$doc:meta])* $name:ident;)+) => {$(
        $(#[$doc])*
        #[derive(Object)]
        pub struct $name {}
    )+};
}

done_output! {
    /// `click`: the click was performed.
    ClickOutput;
    /// `move`: the pointer moved.
    MoveOutput;
    /// `scroll`: the wheel turned.
    ScrollOutput;
    /// `type`: the text was typed.
    TypeOutput;
    /// `key`: the chord was pressed and released.
    KeyOutput;
    /// `clipboard_set`: the clipboard holds the text.
    ClipboardSetOutput;
    /// `open_url`: the URL was handed to the desktop's browser.
    OpenUrlOutput;
}

/// What an external executor reported, when it is not the kind's typed shape.
#[derive(Object)]
pub struct ExternalOutput {
    /// The JSON as the executor sent it.
    pub data: serde_json::Value,
}

/// A finished command's output, by `kind`.
#[derive(Union)]
#[oai(discriminator_name = "kind", one_of = true)]
pub enum CommandOutput {
    /// A screenshot's artifact.
    #[oai(mapping = "screenshot")]
    Screenshot(ScreenshotOutput),
    /// A shell command's result.
    #[oai(mapping = "shell")]
    Shell(ShellOutput),
    /// A click was performed.
    #[oai(mapping = "click")]
    Click(ClickOutput),
    /// The pointer moved.
    #[oai(mapping = "move")]
    Move(MoveOutput),
    /// The wheel turned.
    #[oai(mapping = "scroll")]
    Scroll(ScrollOutput),
    /// The text was typed.
    #[oai(mapping = "type")]
    Type(TypeOutput),
    /// The chord was pressed.
    #[oai(mapping = "key")]
    Key(KeyOutput),
    /// The clipboard was set.
    #[oai(mapping = "clipboard_set")]
    ClipboardSet(ClipboardSetOutput),
    /// The URL was handed to the browser.
    #[oai(mapping = "open_url")]
    OpenUrl(OpenUrlOutput),
    /// An external executor's own output.
    #[oai(mapping = "external")]
    External(ExternalOutput),
}

impl CommandOutput {
    /// The stored output of a command of `kind`: its typed shape when it has one (with the
    /// kind's own `kind` tag), else `external`.
    pub fn from_stored(kind: CommandKind, output: serde_json::Value) -> Self {
        let typed = output.get("kind").and_then(|k| k.as_str()) == Some(kind.as_str());
        if typed && let Ok(parsed) = Self::parse_from_json(Some(output.clone())) {
            return parsed;
        }
        Self::External(ExternalOutput { data: output })
    }
}
