//! Provision and release of one session's desktop: launching `Xvnc` (through `setpriv
//! --pdeathsig KILL` when available) on the one long-lived launcher thread, retrying on
//! another display when it exits early, waiting until it is ready, and stopping it again;
//! plus finding the `Xvnc` binary and building its command line.
//!
//! Not here: the per-session locking around these (in `mod.rs`), choosing the display
//! (`display`), the readiness probe (`rfb`), stopping processes (`signals`), the pid, log and
//! X lock files (`files`).

use std::{
    collections::HashSet,
    ffi::OsString,
    path::{Path, PathBuf},
    process::Stdio,
};

use anyhow::{anyhow, bail};
use tokio::{
    process::{Child, Command},
    sync::oneshot,
};
use uuid::Uuid;

use super::{
    ProcessRuntime, Running,
    display::port_for_display,
    files::{cleanup_display_files, log_tail, remove_file_quietly},
    rfb::{Readiness, wait_ready},
    signals::stop_child,
};
use crate::runtime::{Desktop, DesktopSpec};

/// Displays tried per provision when `Xvnc` exits before it is ready.
const MAX_LAUNCH_ATTEMPTS: usize = 3;

impl ProcessRuntime {
    pub(super) async fn provision_locked(&self, spec: &DesktopSpec) -> anyhow::Result<Desktop> {
        let session_id = spec.session_id;
        if spec.width == 0 || spec.height == 0 {
            bail!(
                "desktop size {}x{} for session {session_id} is invalid: both must be positive",
                spec.width,
                spec.height
            );
        }

        // An existing desktop: reuse it while it runs, clean up after it when it has exited.
        {
            let mut live = self.live.lock().await;
            let exited = match live.get_mut(&session_id) {
                None => None,
                Some(running) => match running.child.try_wait() {
                    Ok(None) => return Ok(running.desktop.clone()),
                    Ok(Some(status)) => Some(status),
                    Err(e) => {
                        bail!("checking on the desktop of session {session_id}: {e}");
                    }
                },
            };
            if let Some(status) = exited
                && let Some(dead) = live.remove(&session_id)
            {
                // Still under the map lock, so no other session can pick the display while
                // its stale files are removed.
                tracing::warn!(
                    session_id = %session_id,
                    display = dead.display,
                    %status,
                    log_tail = %log_tail(&self.log_path(session_id)),
                    "desktop had exited; starting a new one"
                );
                remove_file_quietly(&self.pid_path(session_id));
                cleanup_display_files(dead.display);
            }
        }

        let command = resolve_command(&self.cfg.command)
            .ok_or_else(|| command_not_found(&self.cfg.command))?;
        let mut tried = HashSet::new();
        let mut last_error: Option<anyhow::Error> = None;
        for _ in 0..MAX_LAUNCH_ATTEMPTS {
            let reservation = {
                let live = self.live.lock().await;
                self.reserve_free_display(&live, &tried)
            };
            let Some(reservation) = reservation else {
                return Err(match last_error {
                    Some(e) => anyhow!("{e:#} (and no other free display to retry on)"),
                    None => self.no_free_display(),
                });
            };
            let display = reservation.display;
            tried.insert(display);
            match self.launch(spec, &command, display).await {
                Ok(running) => {
                    let desktop = running.desktop.clone();
                    self.live.lock().await.insert(session_id, running);
                    drop(reservation);
                    return Ok(desktop);
                }
                Err(LaunchError::ExitedEarly(e)) => {
                    let display_no = display;
                    tracing::warn!(
                        session_id = %session_id,
                        display = display_no,
                        error = %e,
                        "Xvnc exited before it was ready; trying another display"
                    );
                    last_error = Some(e);
                }
                Err(LaunchError::Fatal(e)) => return Err(e),
            }
        }
        let last_error = last_error.unwrap_or_else(|| self.no_free_display());
        Err(anyhow!(
            "giving up on a desktop for session {session_id} after {MAX_LAUNCH_ATTEMPTS} \
             attempts: {last_error:#}"
        ))
    }

    /// Launches `Xvnc` on `display` (reserved by the caller) and waits until it is ready.
    /// On any failure the process is stopped and its pid and stale lock files are removed.
    async fn launch(
        &self,
        spec: &DesktopSpec,
        command: &Path,
        display: u32,
    ) -> Result<Running, LaunchError> {
        let session_id = spec.session_id;
        let port = port_for_display(display, self.cfg.display_min, self.cfg.port_min)
            .ok_or_else(|| LaunchError::Fatal(anyhow!("display :{display} has no VNC port")))?;
        let log_path = self.log_path(session_id);
        let log = std::fs::File::create(&log_path).map_err(|e| {
            LaunchError::Fatal(anyhow!(
                "creating the desktop log {}: {e}",
                log_path.display()
            ))
        })?;

        let auth_path = self.rfbauth_path(session_id);
        write_private_file(
            &auth_path,
            &crate::runtime::vncauth::rfbauth_file(
                &spec.passwords.control,
                Some(&spec.passwords.view),
            ),
        )
        .map_err(|e| {
            LaunchError::Fatal(anyhow!(
                "writing the desktop's VNC password file {}: {e}",
                auth_path.display()
            ))
        })?;

        // X clients need the desktop's cookie (the commands get it in their XAUTHORITY), so
        // one session's commands cannot reach another session's screen.
        let x_cookie: [u8; 16] = rand::random();
        let xauth_path = self.xauth_path(session_id);
        write_private_file(&xauth_path, &super::exec::xauthority(display, &x_cookie)).map_err(
            |e| {
                LaunchError::Fatal(anyhow!(
                    "writing the desktop's X authority file {}: {e}",
                    xauth_path.display()
                ))
            },
        )?;
        // Whatever a previous session on this display left running goes first.
        self.end_desktop_processes(None, display).await;

        let mut args: Vec<OsString> = Vec::new();
        let program = match &self.setpriv {
            Some(setpriv) => {
                args.extend(["--pdeathsig", "KILL", "--"].map(OsString::from));
                args.push(command.as_os_str().to_owned());
                setpriv.clone()
            }
            None => command.to_path_buf(),
        };
        args.extend(
            xvnc_args(
                display,
                port,
                spec.width,
                spec.height,
                &auth_path,
                &xauth_path,
            )
            .into_iter()
            .map(OsString::from),
        );

        let (reply, replied) = oneshot::channel();
        self.launcher
            .send(LaunchRequest {
                program: program.clone(),
                args,
                log,
                reply,
            })
            .map_err(|_| LaunchError::Fatal(anyhow!("the desktop launcher thread has stopped")))?;
        let mut child = replied
            .await
            .map_err(|_| LaunchError::Fatal(anyhow!("the desktop launcher thread has stopped")))?
            .map_err(|e| {
                LaunchError::Fatal(anyhow!(
                    "`desktop_process_command`: starting {} failed: {e}",
                    program.display()
                ))
            })?;
        let pid = child.id().unwrap_or(0);

        let pid_path = self.pid_path(session_id);
        if let Err(e) = std::fs::write(&pid_path, format!("{pid} {display}\n")) {
            stop_child(&mut child).await;
            remove_file_quietly(&pid_path);
            cleanup_display_files(display);
            return Err(LaunchError::Fatal(anyhow!(
                "writing the desktop pid file {}: {e}",
                pid_path.display()
            )));
        }

        let readiness =
            wait_ready(&mut child, &self.cfg.vnc_host, port, self.cfg.ready_timeout).await;
        if let Ok(Readiness::Ready) = readiness {
            let display_no = display;
            tracing::info!(
                session_id = %session_id,
                display = display_no,
                port,
                pid,
                "desktop ready"
            );
            return Ok(Running {
                child,
                display,
                x_cookie,
                desktop: Desktop {
                    vnc_host: self.cfg.vnc_host.clone(),
                    vnc_port: port,
                    display: format!(":{display}"),
                    width: spec.width,
                    height: spec.height,
                },
            });
        }

        stop_child(&mut child).await;
        remove_file_quietly(&pid_path);
        cleanup_display_files(display);
        let tail = log_tail(&log_path);
        Err(match readiness {
            Ok(Readiness::Exited(status)) => LaunchError::ExitedEarly(anyhow!(
                "Xvnc on display :{display} (port {port}) exited before it was ready ({status}); \
                 last lines of {}:\n{tail}",
                log_path.display()
            )),
            Ok(Readiness::TimedOut) => LaunchError::Fatal(anyhow!(
                "Xvnc on display :{display} did not answer with an RFB greeting on {}:{port} \
                 within {:?} (`desktop_ready_timeout_s`); last lines of {}:\n{tail}",
                self.cfg.vnc_host,
                self.cfg.ready_timeout,
                log_path.display()
            )),
            Ok(Readiness::Ready) => unreachable!("handled above"),
            Err(e) => LaunchError::Fatal(anyhow!(
                "waiting for Xvnc on display :{display}: {e:#}; last lines of {}:\n{tail}",
                log_path.display()
            )),
        })
    }

    pub(super) async fn release_locked(&self, session_id: Uuid) -> anyhow::Result<()> {
        let (mut running, reservation) = {
            let mut live = self.live.lock().await;
            let Some(running) = live.remove(&session_id) else {
                return Ok(());
            };
            let reservation = self.reserve(running.display);
            (running, reservation)
        };
        let display = running.display;
        let log_path = self.log_path(session_id);
        if let Ok(Some(status)) = running.child.try_wait() {
            let display_no = display;
            tracing::warn!(
                session_id = %session_id,
                display = display_no,
                %status,
                log_tail = %log_tail(&log_path),
                "desktop had already exited before release"
            );
        }
        stop_child(&mut running.child).await;
        drop(running);
        self.end_desktop_processes(Some(session_id), display).await;
        remove_file_quietly(&self.pid_path(session_id));
        remove_file_quietly(&self.rfbauth_path(session_id));
        remove_file_quietly(&self.xauth_path(session_id));
        cleanup_display_files(display);
        remove_file_quietly(&log_path);
        drop(reservation);
        let display_no = display;
        tracing::info!(session_id = %session_id, display = display_no, "desktop released");
        Ok(())
    }
}

/// Why a launch failed: `ExitedEarly` may succeed on another display, `Fatal` will not.
enum LaunchError {
    ExitedEarly(anyhow::Error),
    Fatal(anyhow::Error),
}

/// A process to start on the launcher thread, stdout and stderr to `log`.
pub(super) struct LaunchRequest {
    program: PathBuf,
    args: Vec<OsString>,
    log: std::fs::File,
    reply: oneshot::Sender<std::io::Result<Child>>,
}

/// Starts the thread all desktops are spawned from. `PR_SET_PDEATHSIG` fires when the
/// *thread* that forked the child exits, so spawning from short-lived threads would kill
/// healthy desktops; this thread lives as long as the runtime's sender.
pub(super) fn start_launcher() -> anyhow::Result<std::sync::mpsc::Sender<LaunchRequest>> {
    let handle = tokio::runtime::Handle::try_current().map_err(|e| {
        anyhow!("the process desktop driver must start inside a Tokio runtime: {e}")
    })?;
    let (sender, receiver) = std::sync::mpsc::channel::<LaunchRequest>();
    std::thread::Builder::new()
        .name("desktop-launcher".into())
        .spawn(move || {
            // Child handles register with this runtime's reactor.
            let _runtime = handle.enter();
            while let Ok(request) = receiver.recv() {
                let spawned = spawn_logged(&request.program, &request.args, request.log);
                // A dropped receiver (cancelled provision) drops the child: kill_on_drop.
                let _ = request.reply.send(spawned);
            }
        })
        .map_err(|e| anyhow!("starting the desktop launcher thread: {e}"))?;
    Ok(sender)
}

fn spawn_logged(program: &Path, args: &[OsString], log: std::fs::File) -> std::io::Result<Child> {
    let stderr = log.try_clone()?;
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true)
        .spawn()
}

/// `setpriv` on `PATH`, if it accepts `--pdeathsig` (util-linux 2.33+).
pub(super) async fn detect_setpriv() -> Option<PathBuf> {
    let setpriv = find_on_path("setpriv")?;
    let works = Command::new(&setpriv)
        .args(["--pdeathsig", "KILL", "--"])
        .arg(&setpriv)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|status| status.success());
    works.then_some(setpriv)
}

/// Writes `bytes` to a new file at `path` that only our user can read (mode 0600), replacing
/// an older one.
fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    remove_file_quietly(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// The `Xvnc` arguments after the program name: VNC Authentication only (`-SecurityTypes
/// VncAuth`, passwords in `rfbauth`), loopback only, X clients only with the cookie in
/// `xauth`, no X over TCP. Failed VNC logins never blacklist loopback
/// (`-BlacklistThreshold`): one session's commands must not lock Agentdesk out of another's
/// desktop, and 8 random characters stand up to guessing over loopback.
fn xvnc_args(
    display: u32,
    port: u16,
    width: u32,
    height: u32,
    rfbauth: &Path,
    xauth: &Path,
) -> Vec<String> {
    vec![
        format!(":{display}"),
        "-geometry".into(),
        format!("{width}x{height}"),
        "-depth".into(),
        "24".into(),
        "-rfbport".into(),
        port.to_string(),
        "-localhost".into(),
        "-SecurityTypes".into(),
        "VncAuth".into(),
        "-rfbauth".into(),
        rfbauth.display().to_string(),
        "-auth".into(),
        xauth.display().to_string(),
        "-BlacklistThreshold".into(),
        "1000000".into(),
        "-nolisten".into(),
        "tcp".into(),
    ]
}

/// `command` as an executable path: as given when it contains `/`, else found on `PATH`.
pub(super) fn resolve_command(command: &str) -> Option<PathBuf> {
    if command.is_empty() {
        return None;
    }
    if command.contains('/') {
        let path = Path::new(command);
        return is_executable_file(path).then(|| path.to_path_buf());
    }
    find_on_path(command)
}

pub(super) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable_file(candidate))
}

fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

pub(super) fn command_not_found(command: &str) -> anyhow::Error {
    anyhow!(
        "`desktop_process_command`: {command:?} is neither an executable path nor found on \
         PATH; install TigerVNC (Debian: tigervnc-standalone-server) or point \
         desktop_process_command at the Xvnc binary"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xvnc_command_line() {
        assert_eq!(
            xvnc_args(
                150,
                16050,
                800,
                600,
                Path::new("/d/s.rfbauth"),
                Path::new("/d/s.xauth")
            )
            .join(" "),
            ":150 -geometry 800x600 -depth 24 -rfbport 16050 -localhost -SecurityTypes VncAuth \
             -rfbauth /d/s.rfbauth -auth /d/s.xauth -BlacklistThreshold 1000000 -nolisten tcp"
        );
    }
}
