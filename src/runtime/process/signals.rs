//! Stopping processes and checking on them: our `Xvnc` children (SIGTERM, then SIGKILL after
//! a grace period), processes that are not our children (orphans of a previous run), and
//! whether a pid is alive (from `/proc/<pid>/stat`).
//!
//! Not here: deciding which processes to stop (`launch`, `files`).

use std::{process::Stdio, time::Duration};

use tokio::{
    process::{Child, Command},
    time::Instant,
};

/// Time a desktop gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Stops a child: SIGTERM, up to [`STOP_GRACE`] to exit, then SIGKILL. Returns once it has
/// exited (or killing failed, which is logged).
pub(super) async fn stop_child(child: &mut Child) {
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
pub(super) async fn terminate_pid(pid: u32) {
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
pub(super) fn pid_alive(pid: u32) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_states() {
        assert_eq!(proc_stat_state("123 (Xvnc) S 1 123 123"), Some('S'));
        assert_eq!(proc_stat_state("123 (a) b) Z 1"), Some('Z'));
        assert_eq!(proc_stat_state("garbage"), None);
    }
}
