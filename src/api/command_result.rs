//! The built-in executor's typed outcomes of commands (`CommandOut.result`): one schema per
//! kind, told apart by their own `kind` field (an OpenAPI `oneOf` with a discriminator, like
//! the request's `args`), so SDKs narrow on it. (`CommandOut.output` stays what an external
//! executor reported, verbatim: typing it would change what they read back.)

use poem_openapi::{Object, Union, types::ParseFromJSON};
use uuid::Uuid;

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
#[oai(skip_serializing_if_is_none)]
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

/// The built-in executor's outcome of a finished command, typed per kind by its own `kind`
/// field (absent for commands an external executor performed: see `output`). A `shell`
/// killed at its timeout keeps what it printed so far.
#[derive(Union)]
#[oai(discriminator_name = "kind", one_of = true)]
pub enum CommandResult {
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
}

impl CommandResult {
    /// The stored `commands.result` (written by the built-in executor only); `None` if it
    /// does not parse (never expected: logged).
    pub fn from_stored(result: serde_json::Value) -> Option<Self> {
        match Self::parse_from_json(Some(result)) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e.message(), "a stored command result does not parse");
                None
            }
        }
    }
}
