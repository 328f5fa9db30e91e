//! The `process` desktop driver: one TigerVNC `Xvnc` server per session, on this host.
//!
//! [`ProcessRuntime::provision`](DesktopRuntime::provision) picks a free X display `N` in
//! `desktop_display_min..=desktop_display_max` (not used by another of our desktops, no
//! `/tmp/.X<N>-lock` held by a live process, no `/tmp/.X11-unix/X<N>` socket, VNC port free)
//! and launches
//!
//! ```text
//! setpriv --pdeathsig KILL -- Xvnc :N -geometry WxH -depth 24 -rfbport PORT \
//!     -localhost -SecurityTypes None -nolisten tcp
//! ```
//!
//! with `PORT = desktop_port_min + (N - desktop_display_min)`. The desktop counts as ready
//! only once a TCP connection to `desktop_vnc_host:PORT` reads an RFB greeting
//! (`RFB 003.00x\n`). Because of `-localhost`, `desktop_vnc_host` must be a loopback address.
//!
//! Crash safety: `setpriv --pdeathsig KILL` (util-linux) makes the kernel kill `Xvnc` when
//! the thread that launched it dies, so all launches happen on one dedicated, long-lived
//! launcher thread (tokio worker and blocking threads may come and go). Every desktop also has
//! `<state_dir>/<session_id>.pid` (`<pid> <display>`); [`ProcessRuntime::start`] kills any
//! `Xvnc` still named by a leftover pid file and removes stale X lock files, so a crashed
//! Agentdesk leaves neither orphans nor blocked displays behind. `Xvnc`'s output goes to
//! `<state_dir>/<session_id>.log` (never a pipe, so it can never block on a full pipe); its
//! last lines are quoted in start-up errors and the file is removed on release.
//!
//! Concurrency: provision and release of one session are serialized by a per-session lock;
//! different sessions launch in parallel (a display being launched is reserved, so two
//! sessions never race for it).

use std::{
    collections::{HashMap, HashSet},
    ffi::{OsStr, OsString},
    net::IpAddr,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    sync::Arc,
    time::Duration,
};

use anyhow::{anyhow, bail};
use async_trait::async_trait;
use tokio::{
    io::AsyncReadExt,
    net::TcpStream,
    process::{Child, Command},
    sync::{Mutex, OwnedMutexGuard, oneshot},
    time::Instant,
};
use uuid::Uuid;

use super::{Desktop, DesktopRuntime, DesktopSpec};
use crate::config::Config;

/// Interval between readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Longest a single readiness probe (connect + read greeting) may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Time a desktop gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Displays tried per provision when `Xvnc` exits before it is ready.
const MAX_LAUNCH_ATTEMPTS: usize = 3;
/// Most bytes of `Xvnc`'s log quoted in an error.
const LOG_TAIL_BYTES: usize = 500;
/// Length of the RFB protocol version greeting, e.g. `RFB 003.008\n`.
const RFB_GREETING_LEN: usize = 12;

/// Settings of the `process` driver, in the units the driver uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessConfig {
    /// The `Xvnc` binary: a name looked up on `PATH`, or a path (`desktop_process_command`).
    pub command: String,
    /// Host the VNC servers listen on and clients connect to; must be a loopback address
    /// because `Xvnc` runs with `-localhost` (`desktop_vnc_host`).
    pub vnc_host: String,
    /// Lowest X display number used (`desktop_display_min`).
    pub display_min: u32,
    /// Highest X display number used, inclusive (`desktop_display_max`).
    pub display_max: u32,
    /// VNC TCP port of `display_min`; display `N` listens on `port_min + (N - display_min)`
    /// (`desktop_port_min`).
    pub port_min: u16,
    /// How long a new desktop gets to answer with an RFB greeting (`desktop_ready_timeout_s`).
    pub ready_timeout: Duration,
    /// Directory for pid and log files (`data_dir/desktops`); created by
    /// [`ProcessRuntime::start`].
    pub state_dir: PathBuf,
}

impl ProcessConfig {
    /// Reads the `desktop_*` keys and `data_dir` of `c` (seconds become a [`Duration`];
    /// `state_dir` is `data_dir/desktops`). Infallible: validation happens in
    /// [`ProcessRuntime::start`].
    pub fn from_config(c: &Config) -> Self {
        Self {
            command: c.desktop_process_command.clone(),
            vnc_host: c.desktop_vnc_host.clone(),
            display_min: c.desktop_display_min,
            display_max: c.desktop_display_max,
            port_min: c.desktop_port_min,
            ready_timeout: Duration::from_secs(c.desktop_ready_timeout_s),
            state_dir: c.data_dir.join("desktops"),
        }
    }

    /// Semantic checks: non-empty command, a non-empty display range, ports within `u16`.
    fn validate(&self) -> anyhow::Result<()> {
        if self.command.trim().is_empty() {
            bail!("`desktop_process_command`: must name the Xvnc binary");
        }
        if self.display_min > self.display_max {
            bail!(
                "`desktop_display_min` ({}) must not exceed `desktop_display_max` ({})",
                self.display_min,
                self.display_max
            );
        }
        if port_for_display(self.display_max, self.display_min, self.port_min).is_none() {
            bail!(
                "`desktop_port_min` ({}) plus the display range {}..={} exceeds TCP port 65535",
                self.port_min,
                self.display_min,
                self.display_max
            );
        }
        Ok(())
    }
}

/// A desktop this driver started and has not released.
struct Running {
    /// The `Xvnc` process (`kill_on_drop`).
    child: Child,
    /// Its X display number.
    display: u32,
    /// The endpoint handed out for it.
    desktop: Desktop,
}

/// Desktops as TigerVNC `Xvnc` processes on this host, one per session. See the module docs.
///
/// Dropping the runtime kills every desktop it still holds (SIGKILL); the leftover pid and
/// lock files are cleaned up by the next [`ProcessRuntime::start`].
pub struct ProcessRuntime {
    cfg: ProcessConfig,
    /// File name of `cfg.command`, to recognise our processes in `/proc/<pid>/cmdline`.
    command_name: String,
    /// `setpriv`, when present and supporting `--pdeathsig`.
    setpriv: Option<PathBuf>,
    /// Requests to the launcher thread.
    launcher: std::sync::mpsc::Sender<LaunchRequest>,
    /// `state_dir/.lock`, held exclusively (flock) for the runtime's life: one process owns
    /// the desktops of a state directory, so no process reaps another's desktops.
    _owner_lock: std::fs::File,
    /// Live desktops by session id.
    live: Mutex<HashMap<Uuid, Running>>,
    /// Displays being launched or torn down (not in `live`, but not free either). Never held
    /// across an await.
    reserved: std::sync::Mutex<HashSet<u32>>,
    /// Per-session locks serializing provision and release of one session.
    session_locks: Mutex<HashMap<Uuid, Arc<Mutex<()>>>>,
    /// Sessions whose desktops a previous run left behind (reaped at start), for
    /// [`DesktopRuntime::take_lost`].
    lost: std::sync::Mutex<Vec<Uuid>>,
}

impl ProcessRuntime {
    /// Validates `cfg`, creates `cfg.state_dir`, checks for `setpriv` (warns once when it is
    /// missing: desktops may then outlive a crashed Agentdesk until the next start), starts
    /// the launcher thread and reaps desktops left over by a previous run (leftover `*.pid`
    /// files: the named `Xvnc` gets SIGTERM, SIGKILL after 2 s; stale X lock files of its
    /// display are removed). Must be called inside a Tokio runtime.
    ///
    /// Errors: invalid configuration (the message names the key), the state directory cannot
    /// be created or read, the launcher thread cannot be started.
    pub async fn start(cfg: ProcessConfig) -> anyhow::Result<Self> {
        cfg.validate()?;
        tokio::fs::create_dir_all(&cfg.state_dir)
            .await
            .map_err(|e| {
                anyhow!(
                    "creating the desktop state directory {} (under `data_dir`): {e}",
                    cfg.state_dir.display()
                )
            })?;
        let lock_path = cfg.state_dir.join(".lock");
        let owner_lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| anyhow!("opening {}: {e}", lock_path.display()))?;
        if owner_lock.try_lock().is_err() {
            bail!(
                "another agentdesk process runs the desktops of {} (`data_dir`): one process per \
                 data_dir owns desktops; run the jobs there, or give this process its own data_dir",
                cfg.state_dir.display()
            );
        }
        let setpriv = detect_setpriv().await;
        if setpriv.is_none() {
            tracing::warn!(
                "`setpriv` (util-linux) with --pdeathsig was not found on PATH: Xvnc is \
                 launched directly and may outlive a crashed agentdesk until its next start"
            );
        }
        if !is_loopback_host(&cfg.vnc_host) {
            tracing::warn!(
                vnc_host = %cfg.vnc_host,
                "`desktop_vnc_host` is not a loopback address, but Xvnc runs with -localhost; \
                 desktops will not become ready"
            );
        }
        if resolve_command(&cfg.command).is_none() {
            tracing::warn!("{}", command_not_found(&cfg.command));
        }
        let launcher = start_launcher()?;
        let command_name = Path::new(&cfg.command)
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| cfg.command.clone());
        let runtime = Self {
            cfg,
            command_name,
            setpriv,
            launcher,
            _owner_lock: owner_lock,
            live: Mutex::new(HashMap::new()),
            reserved: std::sync::Mutex::new(HashSet::new()),
            session_locks: Mutex::new(HashMap::new()),
            lost: std::sync::Mutex::new(Vec::new()),
        };
        runtime.reap_leftovers().await?;
        Ok(runtime)
    }

    fn pid_path(&self, session_id: Uuid) -> PathBuf {
        self.cfg.state_dir.join(format!("{session_id}.pid"))
    }

    fn log_path(&self, session_id: Uuid) -> PathBuf {
        self.cfg.state_dir.join(format!("{session_id}.log"))
    }

    /// Takes the session's lock (created on demand).
    async fn lock_session(&self, session_id: Uuid) -> OwnedMutexGuard<()> {
        let lock = Arc::clone(
            self.session_locks
                .lock()
                .await
                .entry(session_id)
                .or_default(),
        );
        lock.lock_owned().await
    }

    /// Forgets the session's lock when nobody else holds or waits for it. Call after dropping
    /// the guard from [`Self::lock_session`]. (Clones are only made under the map lock, so a
    /// strong count of 1 there means the map holds the only reference.)
    async fn prune_session_lock(&self, session_id: Uuid) {
        let mut locks = self.session_locks.lock().await;
        if locks
            .get(&session_id)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            locks.remove(&session_id);
        }
    }

    /// Marks `display` as taken until the returned guard drops.
    fn reserve(&self, display: u32) -> Reservation<'_> {
        lock_set(&self.reserved).insert(display);
        Reservation {
            set: &self.reserved,
            display,
        }
    }

    /// Finds and reserves a free display, skipping `skip`. `live` must be the locked map.
    fn reserve_free_display(
        &self,
        live: &HashMap<Uuid, Running>,
        skip: &HashSet<u32>,
    ) -> Option<Reservation<'_>> {
        let mut reserved = lock_set(&self.reserved);
        let display = self.find_free_display(live, &reserved, skip)?;
        reserved.insert(display);
        drop(reserved);
        Some(Reservation {
            set: &self.reserved,
            display,
        })
    }

    /// The first display in range that is not ours (live or reserved), not in `skip`, free on
    /// the host (stale lock files of dead servers are removed on the way) and whose port can
    /// be bound on `vnc_host`.
    fn find_free_display(
        &self,
        live: &HashMap<Uuid, Running>,
        reserved: &HashSet<u32>,
        skip: &HashSet<u32>,
    ) -> Option<u32> {
        (self.cfg.display_min..=self.cfg.display_max).find(|&display| {
            !skip.contains(&display)
                && !reserved.contains(&display)
                && !live.values().any(|running| running.display == display)
                && display_free_on_host(display)
                && port_for_display(display, self.cfg.display_min, self.cfg.port_min)
                    .is_some_and(|port| port_free(&self.cfg.vnc_host, port))
        })
    }

    fn no_free_display(&self) -> anyhow::Error {
        anyhow!(
            "no free X display in `desktop_display_min`..=`desktop_display_max` ({}..={}): each \
             is used by a desktop, has a live /tmp/.X<N>-lock or a /tmp/.X11-unix/X<N> socket, \
             or its VNC port (from `desktop_port_min` {}) is busy on {}",
            self.cfg.display_min,
            self.cfg.display_max,
            self.cfg.port_min,
            self.cfg.vnc_host
        )
    }

    async fn provision_locked(&self, spec: &DesktopSpec) -> anyhow::Result<Desktop> {
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
            xvnc_args(display, port, spec.width, spec.height)
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

    async fn release_locked(&self, session_id: Uuid) -> anyhow::Result<()> {
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
        remove_file_quietly(&self.pid_path(session_id));
        cleanup_display_files(display);
        remove_file_quietly(&log_path);
        drop(reservation);
        let display_no = display;
        tracing::info!(session_id = %session_id, display = display_no, "desktop released");
        Ok(())
    }

    /// Kills desktops named by leftover pid files and removes the files (see [`Self::start`]).
    async fn reap_leftovers(&self) -> anyhow::Result<()> {
        let dir = &self.cfg.state_dir;
        let names = ["Xvnc", self.command_name.as_str()];
        let mut entries = tokio::fs::read_dir(dir)
            .await
            .map_err(|e| anyhow!("reading the desktop state directory {}: {e}", dir.display()))?;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| anyhow!("reading the desktop state directory {}: {e}", dir.display()))?
        {
            let path = entry.path();
            if path.extension() != Some(OsStr::new("pid")) {
                continue;
            }
            let parsed = std::fs::read_to_string(&path)
                .ok()
                .as_deref()
                .and_then(parse_pid_line);
            match parsed {
                None => tracing::warn!(
                    file = %path.display(),
                    "removing an unreadable desktop pid file"
                ),
                Some((pid, display)) => {
                    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    if pid_alive(pid) && cmdline_matches(&cmdline, display, &names) {
                        let display_no = display;
                        tracing::warn!(
                            pid,
                            display = display_no,
                            file = %path.display(),
                            "reaping an orphaned Xvnc left by a previous run"
                        );
                        terminate_pid(pid).await;
                    } else {
                        let display_no = display;
                        tracing::info!(
                            pid,
                            display = display_no,
                            file = %path.display(),
                            "removing the pid file of a desktop that is gone"
                        );
                    }
                    cleanup_display_files(display);
                }
            }
            if let Some(id) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| Uuid::parse_str(s).ok())
                && let Ok(mut lost) = self.lost.lock()
            {
                lost.push(id);
            }
            remove_file_quietly(&path);
        }
        Ok(())
    }
}

#[async_trait]
impl DesktopRuntime for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    fn take_lost(&self) -> Vec<Uuid> {
        self.lost
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }

    /// Returns the session's running desktop, or starts one (see the module docs). The
    /// returned size is the one the desktop was started with. Errors: invalid size,
    /// `desktop_process_command` not found or not startable, no free display, `Xvnc` not
    /// ready within `desktop_ready_timeout_s` or exiting early on every display tried (the
    /// message quotes the end of its log).
    async fn provision(&self, spec: &DesktopSpec) -> anyhow::Result<Option<Desktop>> {
        let guard = self.lock_session(spec.session_id).await;
        let result = self.provision_locked(spec).await;
        drop(guard);
        self.prune_session_lock(spec.session_id).await;
        result.map(Some)
    }

    /// SIGTERM, up to 2 s for `Xvnc` to exit, then SIGKILL; removes its pid, log and stale X
    /// lock files. `Ok` when the session has no desktop here. Errors: none in practice
    /// (failures to signal or remove files are logged).
    async fn release(&self, session_id: Uuid) -> anyhow::Result<()> {
        let guard = self.lock_session(session_id).await;
        let result = self.release_locked(session_id).await;
        drop(guard);
        self.prune_session_lock(session_id).await;
        result
    }

    /// Errors: `desktop_process_command` names no executable (neither an existing path nor
    /// found on `PATH`), or no display in the configured range is free.
    async fn health(&self) -> anyhow::Result<()> {
        if resolve_command(&self.cfg.command).is_none() {
            return Err(command_not_found(&self.cfg.command));
        }
        let live = self.live.lock().await;
        let reserved = lock_set(&self.reserved).clone();
        if self
            .find_free_display(&live, &reserved, &HashSet::new())
            .is_none()
        {
            return Err(self.no_free_display());
        }
        Ok(())
    }
}

/// Why a launch failed: `ExitedEarly` may succeed on another display, `Fatal` will not.
enum LaunchError {
    ExitedEarly(anyhow::Error),
    Fatal(anyhow::Error),
}

/// Outcome of waiting for a new desktop.
enum Readiness {
    Ready,
    Exited(ExitStatus),
    TimedOut,
}

/// A display reserved while it is launched or torn down; unreserved on drop (also when the
/// provision or release future is cancelled).
struct Reservation<'a> {
    set: &'a std::sync::Mutex<HashSet<u32>>,
    display: u32,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        lock_set(self.set).remove(&self.display);
    }
}

fn lock_set(set: &std::sync::Mutex<HashSet<u32>>) -> std::sync::MutexGuard<'_, HashSet<u32>> {
    set.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A process to start on the launcher thread, stdout and stderr to `log`.
struct LaunchRequest {
    program: PathBuf,
    args: Vec<OsString>,
    log: std::fs::File,
    reply: oneshot::Sender<std::io::Result<Child>>,
}

/// Starts the thread all desktops are spawned from. `PR_SET_PDEATHSIG` fires when the
/// *thread* that forked the child exits, so spawning from short-lived threads would kill
/// healthy desktops; this thread lives as long as the runtime's sender.
fn start_launcher() -> anyhow::Result<std::sync::mpsc::Sender<LaunchRequest>> {
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
async fn detect_setpriv() -> Option<PathBuf> {
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

/// The `Xvnc` arguments after the program name.
fn xvnc_args(display: u32, port: u16, width: u32, height: u32) -> Vec<String> {
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
        "None".into(),
        "-nolisten".into(),
        "tcp".into(),
    ]
}

/// Polls every [`POLL_INTERVAL`] until the server greets, the child exits or `timeout`
/// passes. Errors: the child's status cannot be read.
async fn wait_ready(
    child: &mut Child,
    host: &str,
    port: u16,
    timeout: Duration,
) -> anyhow::Result<Readiness> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| anyhow!("checking on Xvnc: {e}"))?
        {
            return Ok(Readiness::Exited(status));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Readiness::TimedOut);
        }
        if probe_rfb(host, port, left.min(PROBE_TIMEOUT)).await {
            return Ok(Readiness::Ready);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(left.min(POLL_INTERVAL)).await;
    }
}

/// Whether `host:port` accepts a connection and sends an RFB greeting within `budget`.
async fn probe_rfb(host: &str, port: u16, budget: Duration) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect((host, port)).await?;
        let mut greeting = [0u8; RFB_GREETING_LEN];
        stream.read_exact(&mut greeting).await?;
        Ok::<_, std::io::Error>(greeting)
    };
    matches!(
        tokio::time::timeout(budget, attempt).await,
        Ok(Ok(greeting)) if is_rfb_greeting(&greeting)
    )
}

/// An RFB 3.x protocol version message: `RFB 003.00x\n` (12 bytes).
fn is_rfb_greeting(bytes: &[u8]) -> bool {
    bytes.len() == RFB_GREETING_LEN && bytes.starts_with(b"RFB 003.00") && bytes[11] == b'\n'
}

/// VNC port of `display`: `port_min + (display - display_min)`; `None` below the range or
/// past port 65535.
fn port_for_display(display: u32, display_min: u32, port_min: u16) -> Option<u16> {
    let offset = display.checked_sub(display_min)?;
    u16::try_from(u32::from(port_min).checked_add(offset)?).ok()
}

/// Whether a listener can be bound on `host:port` right now (released at once).
fn port_free(host: &str, port: u16) -> bool {
    std::net::TcpListener::bind((host, port)).is_ok()
}

fn is_loopback_host(host: &str) -> bool {
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// Stops a child: SIGTERM, up to [`STOP_GRACE`] to exit, then SIGKILL. Returns once it has
/// exited (or killing failed, which is logged).
async fn stop_child(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Some(pid) = child.id()
        && send_signal("TERM", pid).await
        && let Ok(Ok(_)) = tokio::time::timeout(STOP_GRACE, child.wait()).await
    {
        return;
    }
    if let Err(e) = child.kill().await {
        tracing::warn!(error = %e, "could not kill Xvnc");
    }
}

/// Runs `kill -<signal> <pid>`; `true` when it succeeded.
async fn send_signal(signal: &str, pid: u32) -> bool {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    match status {
        Ok(status) => status.success(),
        Err(e) => {
            tracing::warn!(pid, signal, error = %e, "could not run `kill`");
            false
        }
    }
}

/// Terminates a process that is not our child: SIGTERM, SIGKILL after [`STOP_GRACE`].
async fn terminate_pid(pid: u32) {
    send_signal("TERM", pid).await;
    if wait_pid_gone(pid, STOP_GRACE).await {
        return;
    }
    send_signal("KILL", pid).await;
    if !wait_pid_gone(pid, Duration::from_secs(1)).await {
        tracing::warn!(pid, "orphaned Xvnc is still alive after SIGKILL");
    }
}

async fn wait_pid_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if !pid_alive(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `pid` names a process that has not exited (zombies count as exited).
fn pid_alive(pid: u32) -> bool {
    pid != 0
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .as_deref()
            .and_then(proc_stat_state)
            .is_some_and(|state| state != 'Z' && state != 'X' && state != 'x')
}

/// The state letter of a `/proc/<pid>/stat` line (`pid (comm) S ...`; `comm` may hold `)`).
fn proc_stat_state(stat: &str) -> Option<char> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.trim_start().chars().next()
}

/// Parses a pid file: `<pid> <display>`.
fn parse_pid_line(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split_whitespace();
    let pid: u32 = parts.next()?.parse().ok()?;
    let display: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || pid == 0 {
        return None;
    }
    Some((pid, display))
}

/// Whether a NUL-separated `/proc/<pid>/cmdline` is an X server for `display`: one argument
/// is exactly `:<display>` and one has a file name containing `Xvnc` or equal to one of
/// `names`.
fn cmdline_matches(cmdline: &[u8], display: u32, names: &[&str]) -> bool {
    let display_arg = format!(":{display}");
    let args: Vec<&[u8]> = cmdline
        .split(|&byte| byte == 0)
        .filter(|arg| !arg.is_empty())
        .collect();
    let has_display = args.contains(&display_arg.as_bytes());
    let has_program = args.iter().any(|arg| {
        let arg = String::from_utf8_lossy(arg);
        let file = Path::new(&*arg)
            .file_name()
            .and_then(OsStr::to_str)
            .unwrap_or("");
        file.contains("Xvnc") || names.iter().any(|name| !name.is_empty() && file == *name)
    });
    has_display && has_program
}

fn lock_path(display: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/.X{display}-lock"))
}

fn socket_path(display: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/.X11-unix/X{display}"))
}

enum LockState {
    /// No lock file.
    Absent,
    /// A lock file naming a process that has exited.
    Stale,
    /// A lock file naming a live process, or one we cannot read.
    Held,
}

fn lock_state(display: u32) -> LockState {
    match std::fs::read_to_string(lock_path(display)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => LockState::Absent,
        Err(_) => LockState::Held,
        Ok(text) => match text.trim().parse::<u32>() {
            Ok(pid) if !pid_alive(pid) => LockState::Stale,
            _ => LockState::Held,
        },
    }
}

/// Whether no X server holds `display` on this host. A stale lock (its server died, e.g.
/// killed with SIGKILL) is removed together with the socket, and the display counts as free.
fn display_free_on_host(display: u32) -> bool {
    match lock_state(display) {
        LockState::Held => false,
        LockState::Stale => {
            let display_no = display;
            tracing::info!(display = display_no, "removing stale X lock files");
            remove_file_quietly(&lock_path(display));
            remove_file_quietly(&socket_path(display));
            true
        }
        LockState::Absent => !socket_path(display).exists(),
    }
}

/// After our server on `display` exited: removes its lock file and socket unless a live
/// process holds the lock.
fn cleanup_display_files(display: u32) {
    match lock_state(display) {
        LockState::Held => {}
        LockState::Stale => {
            remove_file_quietly(&lock_path(display));
            remove_file_quietly(&socket_path(display));
        }
        LockState::Absent => remove_file_quietly(&socket_path(display)),
    }
}

/// Removes a file; a missing file is fine, other failures are logged.
fn remove_file_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(file = %path.display(), error = %e, "could not remove file");
    }
}

/// The last lines of a log file, at most [`LOG_TAIL_BYTES`]; a note when it is unreadable.
fn log_tail(path: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let read = || -> std::io::Result<Vec<u8>> {
        let mut file = std::fs::File::open(path)?;
        let window = 2 * LOG_TAIL_BYTES as u64;
        let start = file.metadata()?.len().saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        file.take(window).read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    match read() {
        Ok(bytes) => tail_text(&bytes, LOG_TAIL_BYTES),
        Err(e) => format!("(log {} unreadable: {e})", path.display()),
    }
}

/// The end of `bytes` as text: at most `max` bytes, starting at a line boundary when the text
/// was cut, each line trimmed, blank lines dropped.
fn tail_text(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let tail = if text.len() <= max {
        text
    } else {
        let mut start = text.len() - max;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        let cut = &text[start..];
        match cut.find('\n') {
            Some(newline) if newline + 1 < cut.len() => &cut[newline + 1..],
            _ => cut,
        }
    };
    let lines: Vec<&str> = tail
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    if lines.is_empty() {
        "(empty log)".into()
    } else {
        lines.join("\n")
    }
}

/// `command` as an executable path: as given when it contains `/`, else found on `PATH`.
fn resolve_command(command: &str) -> Option<PathBuf> {
    if command.is_empty() {
        return None;
    }
    if command.contains('/') {
        let path = Path::new(command);
        return is_executable_file(path).then(|| path.to_path_buf());
    }
    find_on_path(command)
}

fn find_on_path(name: &str) -> Option<PathBuf> {
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

fn command_not_found(command: &str) -> anyhow::Error {
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
    fn pid_lines_parse() {
        assert_eq!(parse_pid_line("1234 101\n"), Some((1234, 101)));
        assert_eq!(parse_pid_line("  7 150  "), Some((7, 150)));
        assert_eq!(parse_pid_line("1234"), None);
        assert_eq!(parse_pid_line("1234 101 extra"), None);
        assert_eq!(parse_pid_line("0 101"), None);
        assert_eq!(parse_pid_line("abc 101"), None);
        assert_eq!(parse_pid_line(""), None);
    }

    #[test]
    fn rfb_greetings() {
        assert!(is_rfb_greeting(b"RFB 003.008\n"));
        assert!(is_rfb_greeting(b"RFB 003.003\n"));
        assert!(!is_rfb_greeting(b"RFB 004.001\n"));
        assert!(!is_rfb_greeting(b"RFB 003.008"));
        assert!(!is_rfb_greeting(b"RFB 003.008X"));
        assert!(!is_rfb_greeting(b"HTTP/1.1 200"));
        assert!(!is_rfb_greeting(b""));
    }

    #[test]
    fn display_to_port() {
        assert_eq!(port_for_display(100, 100, 15900), Some(15900));
        assert_eq!(port_for_display(199, 100, 15900), Some(15999));
        assert_eq!(port_for_display(99, 100, 15900), None);
        assert_eq!(
            port_for_display(100 + 65535 - 15900, 100, 15900),
            Some(65535)
        );
        assert_eq!(port_for_display(100 + 65536 - 15900, 100, 15900), None);
        assert_eq!(port_for_display(u32::MAX, 0, u16::MAX), None);
    }

    #[test]
    fn config_validation() {
        let cfg = ProcessConfig {
            command: "Xvnc".into(),
            vnc_host: "127.0.0.1".into(),
            display_min: 100,
            display_max: 199,
            port_min: 15900,
            ready_timeout: Duration::from_secs(10),
            state_dir: PathBuf::from("/tmp/desktops"),
        };
        assert!(cfg.validate().is_ok());
        let inverted = ProcessConfig {
            display_min: 200,
            ..cfg.clone()
        };
        assert!(
            inverted
                .validate()
                .unwrap_err()
                .to_string()
                .contains("desktop_display_min")
        );
        let overflow = ProcessConfig {
            port_min: 65500,
            ..cfg.clone()
        };
        assert!(
            overflow
                .validate()
                .unwrap_err()
                .to_string()
                .contains("desktop_port_min")
        );
        let empty = ProcessConfig {
            command: " ".into(),
            ..cfg
        };
        assert!(
            empty
                .validate()
                .unwrap_err()
                .to_string()
                .contains("desktop_process_command")
        );
    }

    #[test]
    fn from_config_maps_units_and_state_dir() {
        let config = Config::default();
        let cfg = ProcessConfig::from_config(&config);
        assert_eq!(cfg.state_dir, config.data_dir.join("desktops"));
        assert_eq!(
            cfg.ready_timeout,
            Duration::from_secs(config.desktop_ready_timeout_s)
        );
        assert_eq!(cfg.command, config.desktop_process_command);
        assert_eq!(cfg.port_min, config.desktop_port_min);
    }

    #[test]
    fn xvnc_command_line() {
        assert_eq!(
            xvnc_args(150, 16050, 800, 600).join(" "),
            ":150 -geometry 800x600 -depth 24 -rfbport 16050 -localhost -SecurityTypes None \
             -nolisten tcp"
        );
    }

    #[test]
    fn cmdlines_match_our_servers_only() {
        let names = ["Xvnc", "Xtigervnc"];
        assert!(cmdline_matches(
            b"Xvnc\0:150\0-geometry\0800x600\0",
            150,
            &names
        ));
        assert!(cmdline_matches(b"/usr/bin/Xvnc\0:150\0", 150, &names));
        assert!(cmdline_matches(b"/usr/bin/Xtigervnc\0:150\0", 150, &names));
        assert!(cmdline_matches(
            b"setpriv\0--pdeathsig\0KILL\0--\0/usr/bin/Xvnc\0:150\0",
            150,
            &names
        ));
        assert!(!cmdline_matches(b"Xvnc\0:1500\0", 150, &names));
        assert!(!cmdline_matches(b"Xvnc\0:151\0", 150, &names));
        assert!(!cmdline_matches(b"/usr/bin/sleep\0:150\0", 150, &names));
        assert!(!cmdline_matches(b"", 150, &names));
    }

    #[test]
    fn proc_stat_states() {
        assert_eq!(proc_stat_state("123 (Xvnc) S 1 123 123"), Some('S'));
        assert_eq!(proc_stat_state("123 (a) b) Z 1"), Some('Z'));
        assert_eq!(proc_stat_state("garbage"), None);
    }

    #[test]
    fn log_tails() {
        assert_eq!(tail_text(b"", 500), "(empty log)");
        assert_eq!(tail_text(b"\n  one\n\n two  \n", 500), "one\ntwo");
        let long: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let tail = tail_text(long.as_bytes(), 50);
        assert!(tail.len() <= 50, "{tail:?}");
        assert!(tail.starts_with("line "), "{tail:?}");
        assert!(tail.ends_with("line 99"), "{tail:?}");
        // Never panics on a cut inside a multi-byte character.
        let wide = "é".repeat(400);
        assert!(tail_text(wide.as_bytes(), 51).len() <= 51);
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("127.0.0.1"));
        assert!(is_loopback_host("::1"));
        assert!(is_loopback_host("localhost"));
        assert!(!is_loopback_host("10.0.0.5"));
    }
}
