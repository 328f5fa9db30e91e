//! Commands in a desktop's environment (`shell`, `open_url`): `/bin/sh -c <script>` with
//! the session's `DISPLAY`, in a working directory of the session's own
//! (`<state_dir>/<session_id>.work`, removed with the desktop), as the unprivileged
//! `desktop_exec_user` when the server runs as root (through `setpriv --reuid --regid
//! --clear-groups`; root itself is refused), with a clean environment, in a process group of
//! its own that is killed whole at the timeout and when the desktop is released (what a
//! script starts in the background, such as `xterm &`, keeps running until then). Stdout and
//! stderr are read until the script exits (plus a short grace for background children that
//! hold them open); only their first `max_output_bytes` are kept.
//!
//! Not here: which commands may run (agent capabilities, in `domain`).

use std::{os::unix::fs::MetadataExt, path::Path, process::Stdio};

use anyhow::{anyhow, bail};
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    process::Command,
};
use uuid::Uuid;

use super::ProcessRuntime;
use crate::runtime::{ExecOutput, ExecRequest};

/// How long output is still read after the command exited (its background children may
/// hold the pipes open).
const OUTPUT_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// `PATH` of commands run on a desktop.
const EXEC_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Who commands run as: `Some((uid, gid))` of `user` when this process is root (`user` must
/// exist, must not be root, and `setpriv` must be there to switch), `None` otherwise.
/// Errors: running as root without a usable unprivileged user or without `setpriv`.
pub(super) async fn resolve_exec_user(
    user: &str,
    have_setpriv: bool,
) -> anyhow::Result<Option<(u32, u32)>> {
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    if me != 0 {
        return Ok(None);
    }
    let user = user.trim();
    if user.is_empty() {
        bail!("`desktop_exec_user`: the server runs as root, so commands need a user to run as");
    }
    if !have_setpriv {
        bail!(
            "`desktop_exec_user`: the server runs as root and `setpriv` (util-linux) is missing, \
             so commands cannot be run as {user:?}"
        );
    }
    let out = Command::new("getent")
        .args(["passwd", user])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| anyhow!("`desktop_exec_user`: running getent: {e}"))?;
    let line = String::from_utf8_lossy(&out.stdout);
    let ids = parse_passwd_ids(&line)
        .ok_or_else(|| anyhow!("`desktop_exec_user`: no user {user:?} on this host"))?;
    if ids.0 == 0 {
        bail!("`desktop_exec_user`: {user:?} is root; agent commands never run as root");
    }
    Ok(Some(ids))
}

/// `(uid, gid)` of a `passwd` line `name:x:uid:gid:…`.
fn parse_passwd_ids(line: &str) -> Option<(u32, u32)> {
    let mut fields = line.trim().split(':');
    let (_, _, uid, gid) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    Some((uid.parse().ok()?, gid.parse().ok()?))
}

impl ProcessRuntime {
    /// See the module docs. Errors: no desktop for the session here; the working directory
    /// or the process could not be created.
    pub(super) async fn exec_in_desktop(
        &self,
        session_id: Uuid,
        request: &ExecRequest,
    ) -> anyhow::Result<ExecOutput> {
        let display = {
            let live = self.live.lock().await;
            let running = live
                .get(&session_id)
                .ok_or_else(|| anyhow!("session {session_id} has no desktop on this node"))?;
            running.desktop.display.clone()
        };
        let work = self.work_path(session_id);
        prepare_workdir(&work, self.exec_as)?;

        let mut command = match (self.exec_as, &self.setpriv) {
            (Some((uid, gid)), Some(setpriv)) => {
                let mut c = Command::new(setpriv);
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg("/bin/sh");
                c
            }
            _ => Command::new("/bin/sh"),
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
            .env("DISPLAY", &display)
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
        if let Some(pgid) = pgid
            && let Ok(mut groups) = self.exec_groups.lock()
        {
            groups.entry(session_id).or_default().push(pgid);
        }
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
                if let Some(pgid) = pgid {
                    kill_group(pgid).await;
                }
                let _ = child.kill().await;
                (child.wait().await.ok(), true)
            }
        };
        // What the script started in the background (`xterm &`) keeps running, in its group,
        // until the desktop is released; if it holds the pipes open, reading stops after a
        // short grace.
        for reader in readers {
            let abort = reader.abort_handle();
            if tokio::time::timeout(OUTPUT_GRACE, reader).await.is_err() {
                abort.abort();
            }
        }
        // Forget the group once it is empty, so a later release never signals a reused id.
        if let Some(pgid) = pgid
            && !group_alive(pgid).await
            && let Ok(mut groups) = self.exec_groups.lock()
            && let Some(list) = groups.get_mut(&session_id)
        {
            list.retain(|g| *g != pgid);
        }
        let (stdout, out_cut) = stdout.take();
        let (stderr, err_cut) = stderr.take();
        Ok(ExecOutput {
            exit_code: if timed_out {
                None
            } else {
                status.and_then(|s| s.code())
            },
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            truncated: out_cut || err_cut,
            timed_out,
        })
    }

    /// Ends the process groups of the session's commands and removes its working
    /// directory (the desktop is being released).
    pub(super) async fn end_session_processes(&self, session_id: Uuid) {
        let groups = self
            .exec_groups
            .lock()
            .map(|mut g| g.remove(&session_id).unwrap_or_default())
            .unwrap_or_default();
        for pgid in groups {
            kill_group(pgid).await;
        }
        super::files::remove_dir_quietly(&self.work_path(session_id));
    }
}

/// Creates the working directory (mode 0700) owned by the user commands run as.
fn prepare_workdir(path: &Path, owner: Option<(u32, u32)>) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, chown};
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => bail!("creating the working directory {}: {e}", path.display()),
    }
    if let Some((uid, gid)) = owner {
        chown(path, Some(uid), Some(gid))
            .map_err(|e| anyhow!("handing {} to uid {uid}: {e}", path.display()))?;
    }
    Ok(())
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

/// Whether any process is left in group `pgid` (`kill -0 -- -<pgid>`).
async fn group_alive(pgid: u32) -> bool {
    Command::new("kill")
        .args(["-0", "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// `kill -KILL -- -<pgid>`: the whole process group, quietly.
async fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines() {
        assert_eq!(
            parse_passwd_ids("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
            Some((65534, 65534))
        );
        assert_eq!(parse_passwd_ids(""), None);
        assert_eq!(parse_passwd_ids("a:x:b:1:"), None);
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
}
