//! `agentdesk-bench`: the platform benchmark, run by `benches/run.sh` (the one entry point,
//! which builds the release binaries first so that compile time is not measured).
//!
//! For each backend — SQLite (a file in a fresh temporary directory), then PostgreSQL (a fresh
//! `agentdesk_bench_<random>` database at `AGENTDESK_BENCH_POSTGRES_URL`) — it starts the
//! release `agentdesk serve` as a child process on 127.0.0.1 (a free port, runtime `none`,
//! rate limits out of the way, a database pool of `--db-connections`), sets up over HTTP what
//! the scenarios need, runs them, stops the server and removes the database, also after a
//! failure, a timeout or Ctrl-C. Every load generator runs on the same machine as the server
//! (and PostgreSQL), so they share its cores. Scenarios, in the order run (`D` = `--duration`,
//! 10 s; `C` = `--connections`, 32):
//!
//! 1. **Ceilings.** `GET /healthz` with wrk (2 threads, `C` connections, `D`): no credentials,
//!    no database — what the HTTP stack alone serves. On PostgreSQL, `pgbench -S -M prepared
//!    -c C -j 2 -T D` on a scratch database made with `pgbench -i -s 10`: one primary-key
//!    SELECT per transaction, PostgreSQL's own ceiling for a request that reads one row.
//! 2. **Reads** with wrk, same load: `orgs.get` with the owner's JWT and with a `viewer` API
//!    key (target ≥ 0.60 × healthz, p99 < 10 ms); `sessions.get` of a running session
//!    (PostgreSQL ≥ 0.70 × `pgbench -S`, SQLite ≥ 0.50 × healthz; p99 < 10 ms);
//!    `sessions.list` and `audit.list` (pages of 50, full) and `events.list?limit=200` (a full
//!    page), p99 < 20 ms. Reads other than the API-key one use the owner's JWT.
//! 3. **Event append**, by this program: `--writers` (32) tasks, each with its own
//!    keep-alive connection and an `operator` API key, POST batches of `--batch` (100) `log`
//!    events with 100-byte payloads back to back for `D` — first all on one session, then each
//!    on its own session. Target: ≥ 50,000 events/s on PostgreSQL, ≥ 30,000 on SQLite, p99 <
//!    50 ms per request, in both shapes.
//! 4. **SSE fan-out**: `--subscribers` (1,000) clients follow one session's
//!    `events.stream`; once all are attached, one writer appends `--sse-events` (10,000) events
//!    as batches of `--batch`, one batch every `--sse-interval-ms` (100 ms: 1,000 events/s,
//!    10 s). Every subscriber must read every event exactly once and in order; latency per
//!    (event, subscriber) pair p99 < 50 ms. The server's RSS is read before, with everyone
//!    attached, after delivery and after the subscribers left.
//! 5. **Memory**: the server's RSS idle after start-up, after set-up, after the reads and
//!    around every step of 3–4, which run twice, identically (round 1 and round 2, on fresh
//!    sessions each). A leak shows as growth: round 2 may end at most max(8 MiB, 5 %) above
//!    round 1 — allocators keep freed memory and fragmentation moves RSS by a few MiB, while
//!    leaking even one byte per delivered event (10 M per round) would add ~10 MiB.
//! 6. **Session start** (formerly `benches/sessions.rs`): `--starts` (50) sessions one after
//!    another, `POST /sessions` → `running` on the org's status stream, each stopped again;
//!    runtime `none` on the same server (p95 < 100 ms), then runtime `process` on a second
//!    server on the same database (one TigerVNC `Xvnc` per session; p95 < 1 s; skipped with a
//!    note when `Xvnc` is not on `PATH`).
//!
//! **Units**: latency in milliseconds (ms); throughput in requests/s (wrk), transactions/s
//! (pgbench), events/s (appends) or deliveries/s (fan-out: (event, subscriber) pairs read per
//! second); memory in MiB (2^20 bytes) of `VmRSS` (resident now) and `VmHWM` (peak) from
//! `/proc/<pid>/status` of the server process.
//!
//! **Latency** is measured by the client, on the same machine: wrk from writing a request to
//! reading its response (report.lua prints wrk's own percentiles); pgbench per transaction
//! (its `-l` log); an append from sending the request to reading the whole answer; a fan-out
//! pair from the instant its batch's append answer arrived at the writer to the instant the
//! subscriber read the chunk that completed the event (see [`fanout`]); a session start from
//! sending `POST /sessions` to reading `running` on the org stream. Percentiles are by
//! nearest rank over every sample.
//!
//! **Exit status**: 0 when every selected backend ran to the end — targets not met are FAIL
//! rows in the table, findings, not errors; 1 when a backend could not run (a tool or the
//! database missing, the server not starting, the set-up failing, the time bound hit,
//! Ctrl-C); 2 on a usage error. The table is printed in every case, with what ran.

mod api;
mod append;
mod backend;
mod ceilings;
mod fanout;
mod options;
mod report;
mod scratch;
mod server;
mod sse;
mod starts;
mod stats;
mod stream;

use std::{process::ExitCode, time::Duration};

use anyhow::{anyhow, bail};

use crate::{
    options::{Backend, Options, USAGE},
    report::{BackendReport, render},
    scratch::{Scratch, psql},
    stats::thousands,
};

fn main() -> ExitCode {
    let opts = match Options::parse(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("agentdesk-bench: {e:#}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("agentdesk-bench: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = rt.block_on(run(opts));
    rt.shutdown_timeout(Duration::from_secs(2));
    code
}

/// Prints progress on stderr (the report goes to stdout).
pub fn progress(backend: Backend, what: &str) {
    eprintln!("[{}] {what}", backend.name());
}

/// Runs every backend, each under its own time bound, cleans up after each, and prints the
/// report.
async fn run(o: Options) -> ExitCode {
    if let Err(e) = preflight(&o) {
        eprintln!("agentdesk-bench: cannot run: {e:#}");
        return ExitCode::from(1);
    }
    let header = header(&o).await;
    let mut reports = Vec::new();
    let mut all_ran = true;
    for &backend in &o.backends {
        let mut rep = BackendReport::new(backend);
        let mut scratch = Scratch::default();
        let bound = time_bound(&o);
        let mut interrupted = false;
        let outcome = tokio::select! {
            r = tokio::time::timeout(bound, backend::run_backend(&o, backend, &mut rep, &mut scratch)) => {
                r.unwrap_or_else(|_| Err(anyhow!("gave up after {bound:?}")))
            }
            _ = tokio::signal::ctrl_c() => {
                interrupted = true;
                Err(anyhow!("interrupted (Ctrl-C)"))
            }
        };
        progress(backend, "cleaning up");
        scratch.clean().await;
        if let Err(e) = outcome {
            all_ran = false;
            eprintln!("[{}] could not run: {e:#}", backend.name());
            rep.error = Some(format!("{e:#}"));
        }
        reports.push(rep);
        if interrupted {
            break;
        }
    }
    println!("{}", render(&header, &reports));
    if all_ran {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The time one backend may take before it is abandoned (and cleaned up): far more than a
/// run needs (about 3½ minutes at the defaults), so that only a hang reaches it.
fn time_bound(o: &Options) -> Duration {
    let fanout = o.sse_interval * (o.sse_events / o.batch) as u32;
    Duration::from_secs(240) + o.duration * 16 + fanout * 8
}

/// Checks what can be checked before anything starts: the binary, the tools, the script, the
/// limit on open files.
fn preflight(o: &Options) -> anyhow::Result<()> {
    if !o.bin.is_file() {
        bail!(
            "no server binary at {} (build it: cargo build --release --bin agentdesk, or pass --bin)",
            o.bin.display()
        );
    }
    if !o.wrk_script.is_file() {
        bail!("no wrk script at {}", o.wrk_script.display());
    }
    let mut tools = vec![("wrk", "apt-get install wrk")];
    if o.backends.contains(&Backend::Postgres) {
        tools.push(("psql", "apt-get install postgresql-client"));
        tools.push(("pgbench", "apt-get install postgresql-client"));
    }
    for (tool, install) in tools {
        if !on_path(tool) {
            bail!("{tool} is not on PATH ({install})");
        }
    }
    let needed = o.subscribers as u64 + 256;
    if let Some(limit) = open_files_limit()
        && limit < needed
    {
        bail!(
            "the open-files limit is {limit}; the fan-out needs about {needed} (ulimit -n {})",
            needed.next_power_of_two()
        );
    }
    Ok(())
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// The soft limit on open files of this process (`/proc/self/limits`).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The lines above the table: date, machine, PostgreSQL, the load.
async fn header(o: &Options) -> Vec<String> {
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kib| format!(", {:.1} GiB RAM", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let mut h = vec![
        format!("### Agentdesk platform benchmark, {date}"),
        String::new(),
        format!(
            "- Machine: {cpu}, nproc {nproc}{mem_total}, Linux {kernel}, load average {load} at the start; the server, the load generators and PostgreSQL share it."
        ),
    ];
    if o.backends.contains(&Backend::Postgres) {
        let pg = match (
            psql(&o.postgres_url, "SHOW server_version").await,
            psql(&o.postgres_url, "SHOW ssl").await,
        ) {
            (Ok(v), Ok(ssl)) => format!("PostgreSQL {v} (ssl = {ssl})"),
            (Err(e), _) | (_, Err(e)) => format!("PostgreSQL unreachable ({e:#})"),
        };
        let sslmode = o
            .postgres_url
            .split_once('?')
            .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("sslmode=")))
            .map_or_else(|| "prefer (the default)".to_owned(), str::to_owned);
        h.push(format!(
            "- {pg} on {}; clients connect with sslmode {sslmode}.",
            redact(&o.postgres_url)
        ));
    }
    h.push(format!(
        "- Load: wrk 2 threads × {} connections × {} s per read, `pgbench -S` the same; appends {} writers × {} events (100-byte payloads) for {} s; fan-out {} subscribers × {} events ({} every {} ms); server pool {} connections; binary `{}`.",
        o.connections,
        o.seconds(),
        o.writers,
        o.batch,
        o.seconds(),
        thousands(o.subscribers as f64),
        thousands(o.sse_events as f64),
        o.batch,
        o.sse_interval.as_millis(),
        o.db_connections,
        o.bin.display()
    ));
    h
}

/// `url` without a password (`user:secret@` → `user:***@`).
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{name}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
