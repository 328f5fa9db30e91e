//! Desktop runtimes: where a session's desktop (a VNC display) comes from.
//!
//! [`DesktopRuntime`] is the seam between the session lifecycle and the machines: the
//! provision job calls [`DesktopRuntime::provision`] and stores the returned [`Desktop`] on the
//! session; the stop and release jobs call [`DesktopRuntime::release`]. Both must be
//! idempotent, because jobs are delivered at least once: provisioning a session that already
//! has a desktop returns the same desktop, releasing one that has none succeeds.
//!
//! Drivers: [`NoneRuntime`] (no desktop; API-only agents, the default) and
//! [`process::ProcessRuntime`] (one TigerVNC `Xvnc` per session on this host).

pub mod process;
pub mod vncauth;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{Config, DesktopRuntimeKind};

/// Where a running session's desktop can be reached: an RFB (VNC) endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desktop {
    /// Host the VNC server listens on, as seen from Agentdesk (e.g. `127.0.0.1`).
    pub vnc_host: String,
    /// TCP port of the VNC server.
    pub vnc_port: u16,
    /// X display name, e.g. `:101`.
    pub display: String,
    /// Screen width (pixels).
    pub width: u32,
    /// Screen height (pixels).
    pub height: u32,
}

/// The VNC passwords of one desktop (RFC 6143 §7.2.2 VNC Authentication): `control` gives
/// full access, `view` a view-only connection (the server drops its input). Random per
/// session, generated and sealed by the session's provision job; only their first 8 bytes
/// count (the protocol's limit). `Debug` prints no secret.
#[derive(Clone, PartialEq, Eq)]
pub struct DesktopPasswords {
    /// Full-access password.
    pub control: String,
    /// View-only password.
    pub view: String,
}

impl std::fmt::Debug for DesktopPasswords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DesktopPasswords(..)")
    }
}

/// What a session asks of its desktop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesktopSpec {
    /// The session the desktop belongs to (the key for idempotency and release).
    pub session_id: Uuid,
    /// Screen width (pixels), from the agent's desktop profile.
    pub width: u32,
    /// Screen height (pixels), from the agent's desktop profile.
    pub height: u32,
    /// The passwords the desktop must require; it never accepts security type None.
    pub passwords: DesktopPasswords,
}

/// A command line to run in a desktop's environment (`shell`, `open_url`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    /// Run by `/bin/sh -c` (`$1`… are `args`).
    pub script: String,
    /// Positional parameters of the script (`$1`, `$2`, …), passed without shell parsing.
    pub args: Vec<String>,
    /// Killed (with its whole process group) after this long.
    pub timeout: std::time::Duration,
    /// Most bytes kept of stdout and of stderr each; the rest is read and dropped.
    pub max_output_bytes: usize,
}

/// What a command run by [`DesktopRuntime::exec`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit status; `None` when it was killed by a signal (e.g. at its timeout).
    pub exit_code: Option<i32>,
    /// Standard output, UTF-8 (invalid sequences and NUL replaced by U+FFFD), at most
    /// `max_output_bytes`.
    pub stdout: String,
    /// Standard error, likewise.
    pub stderr: String,
    /// Whether stdout or stderr was longer than `max_output_bytes` and cut.
    pub truncated: bool,
    /// Whether it was killed at its timeout.
    pub timed_out: bool,
}

/// A desktop driver. Implementations are shared by all job handlers (`Send + Sync`).
#[async_trait]
pub trait DesktopRuntime: Send + Sync {
    /// The driver's name (`none`, `process`), as in `desktop_runtime`.
    fn name(&self) -> &'static str;

    /// Starts (or finds) the desktop for `spec.session_id` and returns once it is ready to
    /// accept connections; `None` for drivers without desktops. Idempotent. Errors: the
    /// desktop could not be started or did not become ready in time (the job retries).
    async fn provision(&self, spec: &DesktopSpec) -> anyhow::Result<Option<Desktop>>;

    /// Stops the session's desktop and frees its resources. Idempotent: succeeds when there
    /// is nothing to release.
    async fn release(&self, session_id: Uuid) -> anyhow::Result<()>;

    /// Sessions whose desktops were lost before this driver started (a previous run of the
    /// server died and its desktops with it); each id is returned once. Default: none.
    fn take_lost(&self) -> Vec<Uuid> {
        Vec::new()
    }

    /// Runs `request` in the environment of the session's desktop (its `DISPLAY`, a working
    /// directory of its own) as the desktop's own unprivileged user, and returns
    /// once it exited or was killed at its timeout. Default: the driver has no desktops.
    /// Errors: the session has no desktop here, or the command could not be started.
    async fn exec(&self, session_id: Uuid, request: &ExecRequest) -> anyhow::Result<ExecOutput> {
        let _ = request;
        anyhow::bail!(
            "the `{}` desktop runtime cannot run commands (session {session_id})",
            self.name()
        )
    }

    /// Whether the driver can provision at all (binary present, capacity left). Used by
    /// `/readyz`. Errors: a message an operator can act on.
    async fn health(&self) -> anyhow::Result<()>;
}

/// Sessions without a desktop: `provision` succeeds at once with no endpoint.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoneRuntime;

#[async_trait]
impl DesktopRuntime for NoneRuntime {
    fn name(&self) -> &'static str {
        "none"
    }
    async fn provision(&self, _spec: &DesktopSpec) -> anyhow::Result<Option<Desktop>> {
        Ok(None)
    }
    async fn release(&self, _session_id: Uuid) -> anyhow::Result<()> {
        Ok(())
    }
    async fn health(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Builds the driver `config.desktop_runtime` names; with `worker_concurrency = 0` (an API
/// node whose jobs run in `agentdesk worker`) no desktops are run here. Errors: the process
/// driver's state directory cannot be created, or another process owns it.
pub async fn from_config(config: &Config) -> anyhow::Result<Arc<dyn DesktopRuntime>> {
    Ok(match config.desktop_runtime {
        DesktopRuntimeKind::None => Arc::new(NoneRuntime),
        // A process that runs no jobs never provisions; the worker process owns the desktops.
        DesktopRuntimeKind::Process if config.worker_concurrency == 0 => Arc::new(NoneRuntime),
        DesktopRuntimeKind::Process => Arc::new(
            process::ProcessRuntime::start(process::ProcessConfig::from_config(config)).await?,
        ),
    })
}
