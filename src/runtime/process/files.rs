//! Files on disk: the state directory's `<session_id>.pid` (`<pid> <display>`) and
//! `<session_id>.log` files and the tail of a log quoted in errors; the X server's
//! `/tmp/.X<N>-lock` and `/tmp/.X11-unix/X<N>` files (stale ones are removed); and recovery
//! of the desktops a previous run left behind ([`ProcessRuntime::reap_leftovers`]: kill the
//! orphaned `Xvnc`, report its session as lost).
//!
//! Not here: taking ownership of the state directory (its `.lock`, in
//! [`ProcessRuntime::start`]), signalling processes (`signals`).

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
};

use anyhow::anyhow;
use uuid::Uuid;

use super::{
    ProcessRuntime,
    signals::{pid_alive, terminate_pid},
};

/// Most bytes of `Xvnc`'s log quoted in an error.
const LOG_TAIL_BYTES: usize = 500;

impl ProcessRuntime {
    pub(super) fn pid_path(&self, session_id: Uuid) -> PathBuf {
        self.cfg.state_dir.join(format!("{session_id}.pid"))
    }

    pub(super) fn log_path(&self, session_id: Uuid) -> PathBuf {
        self.cfg.state_dir.join(format!("{session_id}.log"))
    }

    /// The desktop's VNC password file (mode 0600; `vncpasswd -f` format).
    pub(super) fn rfbauth_path(&self, session_id: Uuid) -> PathBuf {
        self.cfg.state_dir.join(format!("{session_id}.rfbauth"))
    }

    /// The desktop's X authority file (mode 0600; Xvnc `-auth`).
    pub(super) fn xauth_path(&self, session_id: Uuid) -> PathBuf {
        self.cfg.state_dir.join(format!("{session_id}.xauth"))
    }

    /// The working directory of commands run on the session's desktop.
    pub(super) fn work_path(&self, session_id: Uuid) -> PathBuf {
        self.cfg.work_root.join(session_id.to_string())
    }

    /// Kills desktops named by leftover pid files and removes the files (see [`Self::start`]).
    pub(super) async fn reap_leftovers(&self) -> anyhow::Result<()> {
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
                remove_file_quietly(&self.rfbauth_path(id));
                remove_file_quietly(&self.xauth_path(id));
                remove_dir_quietly(&self.work_path(id));
            }
            remove_file_quietly(&path);
        }
        Ok(())
    }
}

/// Creates the root of the sessions' working directories (mode 0711: desktop users may pass
/// through to their own directory, not list the others) and checks it is a real directory
/// of ours, not a link planted in a shared temp dir. Errors: it cannot be created, or it is
/// a symlink, not a directory, or owned by another user.
pub(super) fn prepare_work_root(root: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    match std::fs::DirBuilder::new().mode(0o711).create(root) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(anyhow!(
                "`desktop_work_dir`: creating {}: {e}",
                root.display()
            ));
        }
    }
    let meta = std::fs::symlink_metadata(root)
        .map_err(|e| anyhow!("`desktop_work_dir`: {}: {e}", root.display()))?;
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    if !meta.is_dir() || meta.uid() != me {
        return Err(anyhow!(
            "`desktop_work_dir`: {} must be a directory owned by this server's user (not a \
             symlink, not another user's)",
            root.display()
        ));
    }
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o711))
        .map_err(|e| anyhow!("`desktop_work_dir`: {}: {e}", root.display()))
}

/// Removes a directory tree, logging (not failing) when that does not work.
pub(super) fn remove_dir_quietly(path: &Path) {
    match std::fs::remove_dir_all(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a directory")
        }
    }
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
pub(super) fn display_free_on_host(display: u32) -> bool {
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
pub(super) fn cleanup_display_files(display: u32) {
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
pub(super) fn remove_file_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(file = %path.display(), error = %e, "could not remove file");
    }
}

/// The last lines of a log file, at most [`LOG_TAIL_BYTES`]; a note when it is unreadable.
pub(super) fn log_tail(path: &Path) -> String {
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
}
