//! The external load generators: wrk for the HTTP reads (with `benches/report.lua`, which
//! prints one `RESULT …` line) and `pgbench -S` for PostgreSQL's own ceiling of one indexed
//! read per request.

use std::{path::Path, process::Stdio, time::Duration};

use anyhow::{Context, bail};
use tokio::process::Command;

use crate::stats::Pct;

/// Extra time a wrk or pgbench run gets beyond its duration before it is killed.
const SLACK: Duration = Duration::from_secs(30);

/// One wrk run: throughput, latency and what went wrong.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WrkResult {
    /// Requests per second over the run.
    pub rps: f64,
    /// Latency percentiles (ms) as wrk measured them.
    pub pct: Pct,
    /// Requests completed.
    pub requests: u64,
    /// Socket errors (connect, read, write, timeout).
    pub errors: u64,
    /// Answers that were not 2xx/3xx.
    pub non2xx: u64,
}

/// How a load generator is driven.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Concurrent connections (wrk) or clients (pgbench).
    pub connections: u32,
    /// Threads of the load generator.
    pub threads: u32,
    /// Whole seconds to run.
    pub seconds: u64,
}

/// Runs `wrk` against `url` (GET; `token` as `Authorization: Bearer`, through `BENCH_TOKEN`).
pub async fn wrk(
    script: &Path,
    url: &str,
    token: Option<&str>,
    load: Load,
) -> anyhow::Result<WrkResult> {
    let mut run = Command::new("wrk");
    run.arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.seconds))
        .arg("-s")
        .arg(script)
        .arg(url)
        .env("BENCH_TOKEN", token.unwrap_or(""));
    let stdout = bounded("wrk", "wrk", run, load.seconds).await?;
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .with_context(|| format!("no RESULT line in wrk's output:\n{stdout}"))?;
    parse_wrk(line)
}

/// Runs `cmd` (`what`, from Debian's `package`) for `seconds` plus [`SLACK`] at most and
/// returns its stdout. Errors: it did not start, overran, or exited non-zero (with its output).
async fn bounded(
    what: &str,
    package: &str,
    mut cmd: Command,
    seconds: u64,
) -> anyhow::Result<String> {
    let limit = Duration::from_secs(seconds) + SLACK;
    let out = tokio::time::timeout(limit, cmd.stdin(Stdio::null()).kill_on_drop(true).output())
        .await
        .with_context(|| format!("{what} did not finish within {limit:?}"))?
        .with_context(|| format!("running {what} (apt-get install {package})"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(stdout)
}

/// Parses `RESULT rps=… p50_ms=… p95_ms=… p99_ms=… requests=… errors=… non2xx=…`.
fn parse_wrk(line: &str) -> anyhow::Result<WrkResult> {
    let field = |name: &str| -> anyhow::Result<f64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {name}= in {line:?}"))
    };
    let requests = field("requests")? as u64;
    Ok(WrkResult {
        rps: field("rps")?,
        pct: Pct {
            n: requests as usize,
            p50: field("p50_ms")?,
            p95: field("p95_ms")?,
            p99: field("p99_ms")?,
            // report.lua does not print the maximum.
            max: 0.0,
        },
        requests,
        errors: field("errors")? as u64,
        non2xx: field("non2xx")? as u64,
    })
}

/// Fills the scratch database at `url` with `pgbench -i -s 10` (1,000,000 accounts).
pub async fn pgbench_init(url: &str) -> anyhow::Result<()> {
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        Command::new("pgbench")
            .args(["-i", "-q", "-s", "10", url])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("pgbench -i did not finish within 180 s")?
    .context("running pgbench (apt-get install postgresql-client)")?;
    if !out.status.success() {
        bail!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `pgbench -S -M prepared -n` (one primary-key SELECT per transaction) on `url`,
/// logging every transaction into `log_dir` for the percentiles; returns transactions per
/// second and latency.
pub async fn pgbench_select(url: &str, load: Load, log_dir: &Path) -> anyhow::Result<(f64, Pct)> {
    std::fs::create_dir_all(log_dir)?;
    let prefix = log_dir.join("pgbench");
    let mut run = Command::new("pgbench");
    run.args(["-S", "-n", "-M", "prepared", "-l"])
        .arg(format!("--log-prefix={}", prefix.display()))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-j{}", load.threads))
        .arg(format!("-T{}", load.seconds))
        .arg(url)
        .current_dir(log_dir);
    let stdout = bounded("pgbench -S", "postgresql-client", run, load.seconds).await?;
    let tps = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("tps = "))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .with_context(|| format!("no `tps = ` in pgbench's output:\n{stdout}"))?;
    // Per-transaction log lines: `client_id transaction_no time_us script_no epoch epoch_us`.
    let mut samples = Vec::new();
    for entry in std::fs::read_dir(log_dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("pgbench"))
        {
            let text = std::fs::read_to_string(&path)?;
            samples.extend(
                text.lines()
                    .filter_map(|l| l.split_whitespace().nth(2)?.parse::<f64>().ok())
                    .map(|us| us / 1e3),
            );
        }
    }
    if samples.is_empty() {
        bail!("pgbench wrote no transaction log in {}", log_dir.display());
    }
    Ok((tps, Pct::of_ms(&mut samples)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_result_line() {
        let r = parse_wrk(
            "RESULT rps=51770 p50_ms=0.57 p95_ms=1.45 p99_ms=2.22 requests=517700 errors=0 non2xx=3",
        )
        .unwrap();
        assert_eq!(r.rps, 51770.0);
        assert_eq!((r.pct.p50, r.pct.p95, r.pct.p99), (0.57, 1.45, 2.22));
        assert_eq!((r.requests, r.errors, r.non2xx), (517700, 0, 3));
        assert!(parse_wrk("RESULT rps=1").is_err());
    }
}
