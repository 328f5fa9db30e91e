//! The readiness probe: a new desktop counts as ready once a TCP connection to its VNC port
//! reads an RFB protocol version greeting (`RFB 003.00x\n`); [`wait_ready`] polls for it
//! until the child exits or the timeout passes.
//!
//! Not here: what happens when the desktop is not ready (`launch`).

use std::{process::ExitStatus, time::Duration};

use anyhow::anyhow;
use tokio::{io::AsyncReadExt, net::TcpStream, process::Child, time::Instant};

/// Interval between readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Longest a single readiness probe (connect + read greeting) may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Length of the RFB protocol version greeting, e.g. `RFB 003.008\n`.
const RFB_GREETING_LEN: usize = 12;

/// Outcome of waiting for a new desktop.
pub(super) enum Readiness {
    Ready,
    Exited(ExitStatus),
    TimedOut,
}

/// Polls every [`POLL_INTERVAL`] until the server greets, the child exits or `timeout`
/// passes. Errors: the child's status cannot be read.
pub(super) async fn wait_ready(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
