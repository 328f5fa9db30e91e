//! What each command kind does on the desktop (desktop pixels; RFC 6143 messages):
//!
//! | kind | RFB / runtime action | `result` |
//! |---|---|---|
//! | `move` | PointerEvent to `x`, `y`, no button | `{kind}` |
//! | `click` | PointerEvent move, then `count` × press + release of `button` | `{kind}` |
//! | `scroll` | PointerEvent move, then one press + release of wheel button 4/5 (up/down) or 6/7 (left/right) per notch | `{kind}` |
//! | `type` | one KeyEvent down + up per character (Unicode keysyms beyond Latin-1) | `{kind}` |
//! | `key` | KeyEvent downs in order, ups in reverse | `{kind}` |
//! | `clipboard_set` | ClientCutText (Extended Clipboard, UTF-8, when offered) | `{kind}` |
//! | `screenshot` | FramebufferUpdateRequest (non-incremental, Raw) → PNG artifact | `{kind, artifact_id, width, height, scale, media_type, bytes}` |
//! | `shell` | `sh -c` in the desktop's environment as the unprivileged user | `{kind, exit_code, stdout, stderr, truncated}` |
//! | `open_url` | `desktop_open_url_command <url>` in the desktop's environment | `{kind}` |
//!
//! Failures carry a stable code ([`error_codes`]) and a message without secrets (a `shell`
//! killed at its timeout keeps its `result` so far).

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    desktop::{
        Button, DesktopLink, LinkError, RfbLink,
        actions::{click, key_chord, move_to, screenshot, scroll, set_clipboard, type_text},
        keys::parse_chord,
    },
    domain::{
        artifacts::{self, NewArtifact},
        commands::{CommandKind, Outcome},
        events::{EventKind, NewEvent},
    },
    entity::{CommandId, OrgId, SessionId, artifact::Kind as ArtifactKind, command, session},
    jobs::JobContext,
    runtime::ExecRequest,
};

/// The stable codes of failed commands (`CommandOut.error_code`).
pub mod error_codes {
    /// The session has no desktop (a runtime without desktops, `executor: builtin`).
    pub const NO_DESKTOP: &str = "no_desktop";
    /// The RFB link to the desktop failed and did not come back.
    pub const DESKTOP_UNREACHABLE: &str = "desktop_unreachable";
    /// The arguments do not fit this desktop (e.g. a point outside it).
    pub const INVALID_ARGS: &str = "invalid_args";
    /// The desktop cannot take it (e.g. non-Latin-1 clipboard text without the Extended
    /// Clipboard).
    pub const UNSUPPORTED: &str = "unsupported";
    /// Storing the screenshot failed.
    pub const STORAGE_FAILED: &str = "storage_failed";
    /// The command could not be started in the desktop's environment.
    pub const EXEC_FAILED: &str = "exec_failed";
    /// The command ran past its `timeout_s` and was killed.
    pub const TIMEOUT: &str = "timeout";
    /// `open_url`: `desktop_open_url_command` is not installed on the desktop.
    pub const NO_BROWSER: &str = "no_browser";
    /// The outcome could not be recorded (the database refused it); details in the log.
    pub const INTERNAL: &str = "internal";
}

use error_codes as code;

/// Longest `open_url` may take to hand the URL to the browser.
const OPEN_URL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest one RFB action may take (a desktop that keeps its socket open but stopped
/// answering fails the command instead of holding the executor).
const LINK_TIMEOUT: Duration = Duration::from_secs(30);

/// `action` within [`LINK_TIMEOUT`]; past it, the desktop is taken as unreachable.
async fn in_time<T>(
    action: impl std::future::Future<Output = Result<T, LinkError>>,
) -> Result<T, LinkError> {
    tokio::time::timeout(LINK_TIMEOUT, action)
        .await
        .unwrap_or_else(|_| {
            Err(LinkError::Gone(format!(
                "the desktop did not answer within {} s",
                LINK_TIMEOUT.as_secs()
            )))
        })
}

fn failed(code: &'static str, message: impl Into<String>) -> Outcome {
    Outcome {
        succeeded: false,
        error: Some(message.into()),
        error_code: Some(code),
        ..Outcome::default()
    }
}

fn done(result: Value) -> Outcome {
    Outcome {
        succeeded: true,
        result: Some(result),
        ..Outcome::default()
    }
}

fn link_failed(e: LinkError) -> Outcome {
    match e {
        LinkError::Unsupported(m) => failed(code::UNSUPPORTED, m),
        other => failed(code::DESKTOP_UNREACHABLE, other.to_string()),
    }
}

fn int(args: &Value, name: &str) -> i64 {
    args.get(name).and_then(Value::as_i64).unwrap_or(0)
}

fn text<'a>(args: &'a Value, name: &str) -> &'a str {
    args.get(name).and_then(Value::as_str).unwrap_or("")
}

/// Performs `c` and says how it went (never panics, never leaks a secret).
pub(super) async fn perform(
    ctx: &JobContext,
    s: &session::Model,
    link: Option<&RfbLink>,
    c: &command::Model,
) -> Outcome {
    let kind = c.kind;
    let args = &c.args;
    let input = json!({ "kind": kind.as_str() });
    match kind {
        CommandKind::Shell => return shell(ctx, s, args).await,
        CommandKind::OpenUrl => return open_url(ctx, s, args).await,
        _ => {}
    }
    let Some(link) = link else {
        return failed(
            code::NO_DESKTOP,
            "the session has no desktop for the built-in executor to drive",
        );
    };
    let (width, height) = link.size();
    let point = |args: &Value| -> Result<(u16, u16), Box<Outcome>> {
        let (x, y) = (int(args, "x"), int(args, "y"));
        if x < 0 || y < 0 || x >= i64::from(width) || y >= i64::from(height) {
            return Err(Box::new(failed(
                code::INVALID_ARGS,
                format!("({x}, {y}) lies outside the {width}×{height} desktop"),
            )));
        }
        Ok((x as u16, y as u16))
    };
    let result = match kind {
        CommandKind::Move => match point(args) {
            Ok((x, y)) => in_time(move_to(link, x, y)).await,
            Err(o) => return *o,
        },
        CommandKind::Click => match point(args) {
            Ok((x, y)) => {
                let button = match text(args, "button") {
                    "middle" => Button::Middle,
                    "right" => Button::Right,
                    _ => Button::Left,
                };
                let count = args.get("count").and_then(Value::as_u64).unwrap_or(1);
                in_time(click(link, x, y, button, count.clamp(1, 3) as u8)).await
            }
            Err(o) => return *o,
        },
        CommandKind::Scroll => match point(args) {
            Ok((x, y)) => {
                in_time(scroll(
                    link,
                    x,
                    y,
                    int(args, "dx") as i32,
                    int(args, "dy") as i32,
                ))
                .await
            }
            Err(o) => return *o,
        },
        CommandKind::Type => in_time(type_text(link, text(args, "text"))).await,
        CommandKind::Key => match parse_chord(text(args, "keys")) {
            Ok(keysyms) => in_time(key_chord(link, &keysyms)).await,
            Err(e) => return failed(code::INVALID_ARGS, e.to_string()),
        },
        CommandKind::ClipboardSet => in_time(set_clipboard(link, text(args, "text"))).await,
        CommandKind::Screenshot => return capture(ctx, s, link, c).await,
        CommandKind::Shell | CommandKind::OpenUrl => unreachable!("handled above"),
    };
    match result {
        Ok(()) => done(input),
        Err(e) => link_failed(e),
    }
}

/// `screenshot`: the framebuffer as PNG, stored as an artifact; the outcome also appends a
/// `screenshot` event that references it (no image bytes in the log).
async fn capture(
    ctx: &JobContext,
    s: &session::Model,
    link: &RfbLink,
    c: &command::Model,
) -> Outcome {
    let dim = |name: &str| {
        c.args
            .get(name)
            .and_then(Value::as_u64)
            .map(|v| v.min(u64::from(u32::MAX)) as u32)
    };
    let png = match in_time(screenshot(link, dim("max_width"), dim("max_height"))).await {
        Ok(png) => png,
        Err(e) => return link_failed(e),
    };
    let bytes = png.bytes.len();
    let stored = artifacts::store(
        &ctx.db,
        ctx.blobs.as_ref(),
        NewArtifact {
            org_id: OrgId(s.org_id),
            session_id: SessionId(s.id),
            command_id: Some(CommandId(c.id)),
            kind: ArtifactKind::Screenshot,
            media_type: "image/png".into(),
            width: Some(png.width),
            height: Some(png.height),
            data: png.bytes.into(),
        },
    )
    .await;
    let artifact = match stored {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(session_id = %s.id, command_id = %c.id, error = %e, "storing a screenshot failed");
            return failed(code::STORAGE_FAILED, "the screenshot could not be stored");
        }
    };
    let output = json!({
        "kind": "screenshot",
        "artifact_id": artifact.id,
        "width": png.width,
        "height": png.height,
        "scale": png.scale,
        "media_type": "image/png",
        "bytes": bytes,
    });
    // The `screenshot` event: the result's fields, for the command (no `kind` tag: the
    // event's own kind says it).
    let mut payload = output.clone();
    if let Some(fields) = payload.as_object_mut() {
        fields.remove("kind");
        fields.insert("command_id".into(), json!(c.id));
    }
    Outcome {
        succeeded: true,
        events: vec![NewEvent {
            kind: EventKind::Screenshot,
            payload,
        }],
        result: Some(output),
        ..Outcome::default()
    }
}

/// `shell`: `sh -c <command>` on the desktop, as the unprivileged user, within `timeout_s`.
async fn shell(ctx: &JobContext, s: &session::Model, args: &Value) -> Outcome {
    let timeout_s = args
        .get("timeout_s")
        .and_then(Value::as_u64)
        .unwrap_or(ctx.config.shell_default_timeout_s)
        .clamp(1, 300);
    let request = ExecRequest {
        script: text(args, "command").to_owned(),
        args: Vec::new(),
        timeout: Duration::from_secs(timeout_s),
        max_output_bytes: ctx.config.shell_max_output_bytes as usize,
    };
    match ctx.runtime.exec(s.id, &request).await {
        Err(e) => {
            tracing::warn!(session_id = %s.id, error = %e, "running a shell command failed");
            failed(
                code::EXEC_FAILED,
                "the command could not be started on the desktop",
            )
        }
        Ok(out) => {
            let mut output = json!({
                "kind": "shell",
                "stdout": out.stdout,
                "stderr": out.stderr,
                "truncated": out.truncated,
            });
            // Absent, not `null`, when it was killed: the spec's `exit_code` is optional.
            if let (Some(code), Some(fields)) = (out.exit_code, output.as_object_mut()) {
                fields.insert("exit_code".into(), json!(code));
            }
            if out.timed_out {
                Outcome {
                    result: Some(output),
                    ..failed(
                        code::TIMEOUT,
                        format!("the command ran past its {timeout_s} s timeout and was killed"),
                    )
                }
            } else {
                done(output)
            }
        }
    }
}

/// `open_url`: hands the URL (as one argument, never parsed by a shell) to the desktop's
/// browser command and returns once it started.
async fn open_url(ctx: &JobContext, s: &session::Model, args: &Value) -> Outcome {
    let command = ctx.config.desktop_open_url_command.trim();
    let program = command.split_whitespace().next().unwrap_or("");
    // `$1` is the URL; the configured command is the operator's, not the agent's.
    let script = format!(
        "command -v {program} >/dev/null 2>&1 || exit 127\n{command} \"$1\" >/dev/null 2>&1 &"
    );
    // The URL as the parser normalised it (validated at `commands.create`).
    let url = match url::Url::parse(text(args, "url")) {
        Ok(u) => u.to_string(),
        Err(e) => return failed(code::INVALID_ARGS, format!("`url`: {e}")),
    };
    let request = ExecRequest {
        script,
        args: vec![url],
        timeout: OPEN_URL_TIMEOUT,
        max_output_bytes: 4096,
    };
    match ctx.runtime.exec(s.id, &request).await {
        Ok(out) if out.exit_code == Some(0) => done(json!({ "kind": "open_url" })),
        Ok(out) if out.exit_code == Some(127) => failed(
            code::NO_BROWSER,
            format!("the desktop has no `{program}` to open URLs with (desktop_open_url_command)"),
        ),
        Ok(_) => failed(code::EXEC_FAILED, "the browser command failed"),
        Err(e) => {
            tracing::warn!(session_id = %s.id, error = %e, "opening a URL failed");
            failed(
                code::EXEC_FAILED,
                "the browser could not be started on the desktop",
            )
        }
    }
}
