//! Command-line options (hand-parsed: a handful of flags).

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, anyhow, bail};

/// The default PostgreSQL server (`AGENTDESK_BENCH_POSTGRES_URL` overrides it).
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Usage text for `--help` and errors.
pub const USAGE: &str = "\
usage: agentdesk-bench [sqlite] [postgres] [options]      (default: both backends)

  --bin PATH           release agentdesk binary (default $CARGO_TARGET_DIR/release/agentdesk,
                       else target/release/agentdesk)
  --duration D         per wrk target, pgbench and append run: 10s (also 3s, 2m; at least 1s)
  --connections N      wrk connections and pgbench clients (32)
  --writers N          concurrent appenders (32); --batch N events per append (100)
  --db-connections N   the server's database pool (AGENTDESK_DB_MAX_CONNECTIONS, 16)
  --subscribers N      SSE subscribers of the fan-out (1000)
  --sse-events N       events appended during the fan-out (10000)
  --sse-interval-ms N  one batch of --batch events every N ms during the fan-out (100)
  --starts N           sequential session starts per runtime (50; 0 skips the scenario)

env: AGENTDESK_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres; append
     ?sslmode=disable to turn TLS over loopback off; the default negotiates it, `prefer`)
exit: 0 when every selected backend ran (targets not met are reported in the table, not an
      error); 1 when a backend could not run; 2 on a usage error.";

/// A database backend the server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a fresh temporary directory.
    Sqlite,
    /// A fresh database on the PostgreSQL server at `AGENTDESK_BENCH_POSTGRES_URL`.
    Postgres,
}

impl Backend {
    /// The name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// What to run and how hard.
#[derive(Clone, Debug)]
pub struct Options {
    /// The release `agentdesk` binary started as the server.
    pub bin: PathBuf,
    /// Backends, in order.
    pub backends: Vec<Backend>,
    /// Length of each wrk run, of `pgbench -S` and of each append run.
    pub duration: Duration,
    /// wrk connections and pgbench clients.
    pub connections: u32,
    /// Concurrent appenders.
    pub writers: usize,
    /// Events per append request.
    pub batch: usize,
    /// The server's database pool size.
    pub db_connections: u32,
    /// The PostgreSQL server where scratch databases are created.
    pub postgres_url: String,
    /// SSE subscribers of the fan-out.
    pub subscribers: usize,
    /// Events appended during the fan-out.
    pub sse_events: usize,
    /// Interval between the fan-out's batches.
    pub sse_interval: Duration,
    /// Sequential session starts per runtime (0: skipped).
    pub starts: usize,
    /// The wrk reporter script (`benches/report.lua`).
    pub wrk_script: PathBuf,
}

impl Options {
    /// Parses the arguments (without the program name). `Ok(None)`: `--help` was asked for.
    pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Option<Self>> {
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target"));
        let mut o = Options {
            bin: target_dir.join("release/agentdesk"),
            backends: Vec::new(),
            duration: Duration::from_secs(10),
            connections: 32,
            writers: 32,
            batch: 100,
            db_connections: 16,
            postgres_url: std::env::var("AGENTDESK_BENCH_POSTGRES_URL")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned()),
            subscribers: 1000,
            sse_events: 10_000,
            sse_interval: Duration::from_millis(100),
            starts: 50,
            wrk_script: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../report.lua")),
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| anyhow!("{arg} needs a value"));
            match arg.as_str() {
                "sqlite" => o.backends.push(Backend::Sqlite),
                "postgres" => o.backends.push(Backend::Postgres),
                "--bin" => o.bin = PathBuf::from(value()?),
                "--duration" => o.duration = parse_duration(&value()?)?,
                "--connections" => o.connections = number(&arg, &value()?)?,
                "--writers" => o.writers = number(&arg, &value()?)?,
                "--batch" => o.batch = number(&arg, &value()?)?,
                "--db-connections" => o.db_connections = number(&arg, &value()?)?,
                "--subscribers" => o.subscribers = number(&arg, &value()?)?,
                "--sse-events" => o.sse_events = number(&arg, &value()?)?,
                "--sse-interval-ms" => {
                    o.sse_interval = Duration::from_millis(number(&arg, &value()?)?)
                }
                "--starts" => o.starts = number(&arg, &value()?)?,
                "-h" | "--help" => return Ok(None),
                other => bail!("unknown argument {other:?}"),
            }
        }
        if o.backends.is_empty() {
            o.backends = vec![Backend::Sqlite, Backend::Postgres];
        }
        o.backends.dedup();
        if o.duration < Duration::from_secs(1) {
            bail!("--duration must be at least 1s (wrk counts in seconds)");
        }
        if !(1..=500).contains(&o.batch) {
            bail!("--batch must be 1–500 (events.append takes at most 500)");
        }
        if !o.sse_events.is_multiple_of(o.batch) {
            bail!("--sse-events must be a multiple of --batch");
        }
        for (name, v) in [
            ("--connections", o.connections as usize),
            ("--writers", o.writers),
            ("--db-connections", o.db_connections as usize),
            ("--subscribers", o.subscribers),
            ("--sse-events", o.sse_events),
        ] {
            if v == 0 {
                bail!("{name} must be at least 1");
            }
        }
        Ok(Some(o))
    }

    /// The duration in whole seconds, as wrk and pgbench take it.
    pub fn seconds(&self) -> u64 {
        self.duration.as_secs().max(1)
    }
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> anyhow::Result<T> {
    v.parse()
        .map_err(|_| anyhow!("{flag}: expected a number, got {v:?}"))
}

/// `10s`, `1500ms`, `2m` or a bare number of seconds.
fn parse_duration(v: &str) -> anyhow::Result<Duration> {
    let (n, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let n: u64 = n
        .parse()
        .with_context(|| format!("--duration: expected e.g. 10s, got {v:?}"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => bail!("--duration: unknown unit in {v:?} (ms, s or m)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Option<Options>> {
        Options::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_and_flags() {
        let o = parse(&[]).unwrap().unwrap();
        assert_eq!(o.backends, vec![Backend::Sqlite, Backend::Postgres]);
        assert_eq!(o.duration, Duration::from_secs(10));
        let o = parse(&["postgres", "--duration", "3s", "--subscribers", "10"])
            .unwrap()
            .unwrap();
        assert_eq!(o.backends, vec![Backend::Postgres]);
        assert_eq!((o.seconds(), o.subscribers), (3, 10));
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&["--duration"]).is_err());
        assert!(parse(&["--duration", "3h"]).is_err());
        assert!(parse(&["mysql"]).is_err());
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
    }
}
