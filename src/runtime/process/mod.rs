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
//!
//! Layout: this file holds the configuration, the runtime's state, its start-up and its
//! [`DesktopRuntime`] impl. The rest sits in sub-modules: `display` (choosing and reserving a
//! free display and its VNC port), `launch` (provision and release: launching `Xvnc` on the
//! launcher thread, `setpriv`, finding the binary), `rfb` (the readiness probe: waiting for
//! the RFB greeting), `signals` (stopping processes and checking they are alive) and `files`
//! (the pid and log files of the state directory, the X server's lock files, and reaping the
//! desktops a previous run left behind).

mod display;
mod exec;
mod files;
mod launch;
mod rfb;
mod signals;

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{anyhow, bail};
use async_trait::async_trait;
use tokio::{
    process::Child,
    sync::{Mutex, OwnedMutexGuard},
};
use uuid::Uuid;

use self::{
    display::{lock_set, port_for_display},
    launch::{LaunchRequest, command_not_found, detect_setpriv, resolve_command, start_launcher},
};
use super::{Desktop, DesktopRuntime, DesktopSpec};
use crate::config::Config;

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
    /// Desktop `N`'s commands run as uid = gid = `exec_uid_base + N` when the server runs as
    /// root (`desktop_exec_uid_base`).
    pub exec_uid_base: u32,
    /// When the server is not root: run commands as its own user anyway (development only;
    /// `desktop_exec_as_server_user`), else refuse them.
    pub exec_as_server_user: bool,
    /// Where the sessions' working directories live (`desktop_work_dir`, default
    /// `<temp dir>/agentdesk-desktops`): outside `data_dir`, whose own mode may keep the
    /// desktop users out; created mode 0711, owned by the server.
    pub work_root: PathBuf,
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
            exec_uid_base: c.desktop_exec_uid_base,
            exec_as_server_user: c.desktop_exec_as_server_user,
            work_root: if c.desktop_work_dir.as_os_str().is_empty() {
                std::env::temp_dir().join("agentdesk-desktops")
            } else {
                c.desktop_work_dir.clone()
            },
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
    /// The X server's `MIT-MAGIC-COOKIE-1` (Xvnc `-auth`): X clients need it.
    x_cookie: [u8; 16],
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
    /// Who commands run as.
    exec_as: exec::ExecIdentity,
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
        files::prepare_work_root(&cfg.work_root)?;
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
        let exec_as = exec::ExecIdentity::resolve(
            cfg.exec_uid_base,
            cfg.exec_as_server_user,
            setpriv.as_deref(),
        )?;
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
            exec_as,
        };
        runtime.reap_leftovers().await?;
        Ok(runtime)
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

    /// Runs the command as the desktop's own user (see `exec`). Errors: the session has no
    /// desktop here; commands are refused on this host; the command could not be started.
    async fn exec(
        &self,
        session_id: Uuid,
        request: &super::ExecRequest,
    ) -> anyhow::Result<super::ExecOutput> {
        self.exec_in_desktop(session_id, request).await
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

fn is_loopback_host(host: &str) -> bool {
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            exec_uid_base: 900_000,
            exec_as_server_user: false,
            work_root: PathBuf::from("/tmp/agentdesk-desktops"),
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
    fn loopback_hosts() {
        assert!(is_loopback_host("127.0.0.1"));
        assert!(is_loopback_host("::1"));
        assert!(is_loopback_host("localhost"));
        assert!(!is_loopback_host("10.0.0.5"));
    }
}
