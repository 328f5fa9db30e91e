//! Commands in a desktop's environment (`shell`, `open_url`) and who they run as.
//!
//! Each desktop has a user of its own: uid = gid = `desktop_exec_uid_base + display` (no
//! `passwd` entry needed), so sessions cannot read each other's files, signal each other's
//! processes or reach each other's screens. A command is `/bin/sh -c <script>` switched to
//! that uid by `setpriv --reuid --regid --clear-groups --no-new-privs` (under
//! `prlimit --nproc` when available, so a fork bomb stays the session's problem), with a clean
//! environment: the session's `DISPLAY` and an `XAUTHORITY` holding the desktop's X cookie
//! (Xvnc runs with `-auth`, so an X client without it is refused), `HOME` = a working
//! directory of the session's own (`<desktop_work_dir>/<session_id>`, mode 0700). It runs in a
//! process group of its own, killed whole at its timeout; what it starts in the background
//! (`xterm &`) runs until the desktop is released, when every process of the desktop's uid
//! is killed. Stdout and stderr are read until the script exits (plus a short grace for
//! background children holding them open); only their first `max_output_bytes` are kept.
//!
//! The server must be root to switch users. A server that is not root would run commands as
//! itself, able to read its own keys and database: refused, unless
//! `desktop_exec_as_server_user` says this is a development machine.
//!
//! Not here: which commands may run (agent capabilities, in `domain`).

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::Stdio,
};

use anyhow::{anyhow, bail};
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    process::Command,
};
use uuid::Uuid;

use super::{ProcessRuntime, launch::find_on_path};
use crate::runtime::{ExecOutput, ExecRequest};

/// `PATH` of commands run on a desktop.
const EXEC_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long output is still read after the command exited (its background children may
/// hold the pipes open).
const OUTPUT_GRACE: std::time::Duration = std::time::Duration::from_millis(200);
/// Most processes one desktop's user may have at once (`RLIMIT_NPROC`).
const MAX_PROCESSES: u32 = 1024;
/// The X authority file in a session's working directory.
const XAUTHORITY: &str = ".Xauthority";

/// Who commands run as.
#[derive(Clone, Debug)]
pub(super) enum ExecIdentity {
    /// As root: switch to `uid_base + display` with `setpriv` (and `prlimit`, when found).
    PerDesktop {
        uid_base: u32,
        setpriv: PathBuf,
        prlimit: Option<PathBuf>,
    },
    /// Not root, and `desktop_exec_as_server_user` allows running as the server's own user.
    ServerUser,
    /// Commands cannot run here; the reason is the command's error.
    Refused(String),
}

impl ExecIdentity {
    /// Decides from who this process is. Errors: root without `setpriv`.
    pub(super) fn resolve(
        uid_base: u32,
        as_server_user: bool,
        setpriv: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let me = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(0);
        if me == 0 {
            let setpriv = setpriv.ok_or_else(|| {
                anyhow!(
                    "the server runs as root and `setpriv` (util-linux) is missing, so agent \
                     commands cannot be switched to an unprivileged user"
                )
            })?;
            return Ok(Self::PerDesktop {
                uid_base,
                setpriv: setpriv.to_path_buf(),
                prlimit: find_on_path("prlimit"),
            });
        }
        if as_server_user {
            tracing::warn!(
                "`desktop_exec_as_server_user`: agent `shell` commands run as the server's own \
                 user and can read its keys and database; for development machines only"
            );
            return Ok(Self::ServerUser);
        }
        Ok(Self::Refused(
            "the server is not root, so agent commands could only run as its own user (which can \
             read its keys and database): run it as root, or set desktop_exec_as_server_user on \
             a development machine"
                .into(),
        ))
    }

    /// The uid commands of `display` run as, when they switch.
    pub(super) fn uid(&self, display: u32) -> Option<u32> {
        match self {
            Self::PerDesktop { uid_base, .. } => uid_base.checked_add(display),
            _ => None,
        }
    }
}

/// An X authority file (the format of `xauth`, `Xau` entries) with one `MIT-MAGIC-COOKIE-1`
/// entry for display `display` on any host (family Wild).
pub(super) fn xauthority(display: u32, cookie: &[u8; 16]) -> Vec<u8> {
    // Family Wild (0xffff), not length-prefixed; then address (none), display number, auth
    // name and auth data, each with a 16-bit big-endian length.
    let mut file = vec![0xff, 0xff];
    for field in [
        &[][..],
        display.to_string().as_bytes(),
        b"MIT-MAGIC-COOKIE-1",
        &cookie[..],
    ] {
        file.extend_from_slice(&(field.len() as u16).to_be_bytes());
        file.extend_from_slice(field);
    }
    file
}

impl ProcessRuntime {
    /// See the module docs. Errors: no desktop for the session here; commands refused on
    /// this host; the working directory or the process could not be created.
    pub(super) async fn exec_in_desktop(
        &self,
        session_id: Uuid,
        request: &ExecRequest,
    ) -> anyhow::Result<ExecOutput> {
        let (display, x_display, cookie) = {
            let live = self.live.lock().await;
            let running = live
                .get(&session_id)
                .ok_or_else(|| anyhow!("session {session_id} has no desktop on this node"))?;
            (
                running.display,
                running.desktop.display.clone(),
                running.x_cookie,
            )
        };
        let uid = self.exec_as.uid(display);
        let work = self.work_path(session_id);
        prepare_workdir(&work, uid, &xauthority(display, &cookie))?;

        let mut command = match &self.exec_as {
            ExecIdentity::Refused(reason) => bail!("{reason}"),
            ExecIdentity::ServerUser => Command::new("/bin/sh"),
            ExecIdentity::PerDesktop {
                setpriv, prlimit, ..
            } => {
                let uid = uid.ok_or_else(|| anyhow!("display :{display} has no user id"))?;
                let mut c = Command::new(setpriv);
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .args(["--clear-groups", "--no-new-privs", "--"]);
                if let Some(prlimit) = prlimit {
                    c.arg(prlimit)
                        .arg(format!("--nproc={MAX_PROCESSES}:{MAX_PROCESSES}"))
                        .arg("--");
                }
                c.arg("/bin/sh");
                c
            }
        };
        command
            .arg("-c")
            .arg(&request.script)
            .arg("sh")
            .args(&request.args)
            .current_dir(&work)
            .env_clear()
            .env("PATH", EXEC_PATH)
            .env("HOME", &work)
            .env("DISPLAY", &x_display)
            .env("XAUTHORITY", work.join(XAUTHORITY))
            .env("LANG", "C.UTF-8")
            .env("LC_ALL", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| anyhow!("starting the command: {e}"))?;
        let pgid = child.id();
        let limit = request.max_output_bytes;
        let stdout = Captured::default();
        let stderr = Captured::default();
        let readers = [
            tokio::spawn(read_capped(child.stdout.take(), limit, stdout.clone())),
            tokio::spawn(read_capped(child.stderr.take(), limit, stderr.clone())),
        ];
        let (status, timed_out) = match tokio::time::timeout(request.timeout, child.wait()).await {
            Ok(status) => (Some(status?), false),
            Err(_) => {
                // The leader is not reaped yet, so its group id cannot have been reused.
                if let Some(pgid) = pgid {
                    signal(&["-KILL", "--", &format!("-{pgid}")]).await;
                }
                let _ = child.kill().await;
                (child.wait().await.ok(), true)
            }
        };
        for reader in readers {
            let abort = reader.abort_handle();
            if tokio::time::timeout(OUTPUT_GRACE, reader).await.is_err() {
                abort.abort();
            }
        }
        let (stdout, out_cut) = stdout.take();
        let (stderr, err_cut) = stderr.take();
        Ok(ExecOutput {
            exit_code: if timed_out {
                None
            } else {
                status.and_then(|s| s.code())
            },
            stdout: text(&stdout),
            stderr: text(&stderr),
            truncated: out_cut || err_cut,
            timed_out,
        })
    }

    /// Ends every process of the desktop's user (what its commands left running, however
    /// detached) and removes the session's working directory. Called when the desktop is
    /// released and before a display is handed to a new session.
    pub(super) async fn end_desktop_processes(&self, session_id: Option<Uuid>, display: u32) {
        if let Some(uid) = self.exec_as.uid(display) {
            signal_user(uid).await;
        }
        if let Some(id) = session_id {
            super::files::remove_dir_quietly(&self.work_path(id));
        }
    }
}

/// Creates the working directory (mode 0700) owned by `uid` with the desktop's X authority
/// file (mode 0600) in it.
fn prepare_workdir(path: &Path, uid: Option<u32>, xauthority: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, chown};
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => bail!("creating the working directory {}: {e}", path.display()),
    }
    let auth = path.join(XAUTHORITY);
    if !auth.exists() {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&auth)
            .map_err(|e| anyhow!("creating {}: {e}", auth.display()))?;
        std::io::Write::write_all(&mut f, xauthority)?;
    }
    if let Some(uid) = uid {
        for p in [path, auth.as_path()] {
            chown(p, Some(uid), Some(uid))
                .map_err(|e| anyhow!("handing {} to uid {uid}: {e}", p.display()))?;
        }
    }
    Ok(())
}

/// Output as text: UTF-8 with invalid sequences and NUL (which PostgreSQL's JSONB cannot
/// hold) replaced by U+FFFD.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\0', "\u{FFFD}")
}

/// Output read so far: the kept bytes and whether more came than was kept. Shared with the
/// reader, so what was read is there even when the reader is stopped early.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<(Vec<u8>, bool)>>);

impl Captured {
    fn take(&self) -> (Vec<u8>, bool) {
        self.0
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }
}

/// Reads `from` to its end into `into`, keeping the first `limit` bytes.
async fn read_capped(from: Option<impl AsyncRead + Unpin>, limit: usize, into: Captured) {
    let Some(mut from) = from else {
        return;
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let Ok(mut c) = into.0.lock() else { break };
                let room = limit.saturating_sub(c.0.len());
                c.0.extend_from_slice(&buf[..n.min(room)]);
                c.1 |= n > room;
            }
        }
    }
}

/// `kill <args>`, quietly.
async fn signal(args: &[&str]) {
    let _ = Command::new("kill")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

/// SIGKILL to every process whose real uid is `uid` (`pkill -KILL -U`), twice (a process
/// forking as it dies leaves a child behind once).
async fn signal_user(uid: u32) {
    for _ in 0..2 {
        let _ = Command::new("pkill")
            .args(["-KILL", "-U", &uid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_text_holds_no_nul() {
        assert_eq!(text(b"a\0b\xffc"), "a\u{FFFD}b\u{FFFD}c");
    }

    /// The bytes `xauth -f F add :42 MIT-MAGIC-COOKIE-1 <hex>` writes for a wildcard host
    /// (`xauth nlist` shows `ffff 0000  0002 3432  0012 4d49…  0010 <cookie>`).
    #[test]
    fn xauthority_entry() {
        let cookie = [0xabu8; 16];
        let file = xauthority(42, &cookie);
        let mut want = vec![0xff, 0xff, 0, 0, 0, 2, b'4', b'2', 0, 18];
        want.extend_from_slice(b"MIT-MAGIC-COOKIE-1");
        want.extend_from_slice(&[0, 16]);
        want.extend_from_slice(&cookie);
        assert_eq!(file, want);
    }

    #[tokio::test]
    async fn output_is_capped_and_says_so() {
        let data: &[u8] = &[b'x'; 100];
        for (limit, want) in [
            (10, (vec![b'x'; 10], true)),
            (100, (vec![b'x'; 100], false)),
        ] {
            let c = Captured::default();
            read_capped(Some(data), limit, c.clone()).await;
            assert_eq!(c.take(), want);
        }
    }

    #[test]
    fn per_desktop_uids() {
        let id = ExecIdentity::PerDesktop {
            uid_base: 900_000,
            setpriv: PathBuf::from("/usr/bin/setpriv"),
            prlimit: None,
        };
        assert_eq!(id.uid(101), Some(900_101));
        assert_eq!(ExecIdentity::ServerUser.uid(101), None);
    }
}
