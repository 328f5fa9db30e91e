//! What a run creates and must remove again, whatever happens: temporary directories and
//! PostgreSQL databases. [`Scratch::clean`] runs after every backend, also after a failure,
//! a timeout or Ctrl-C.

use std::{io::Read, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use tokio::process::Command;

/// Longest a `psql` call may take.
const PSQL_TIMEOUT: Duration = Duration::from_secs(60);

/// `n` bytes from the kernel's random source.
pub fn random_bytes(n: usize) -> anyhow::Result<Vec<u8>> {
    let mut buf = vec![0; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf)
}

/// `n` random bytes as lower-case hex (for unique names).
pub fn random_hex(n: usize) -> anyhow::Result<String> {
    Ok(random_bytes(n)?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// `url` with its database (the path) replaced by `database`; the query (`?sslmode=…`) is
/// kept.
pub fn with_database(url: &str, database: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let authority_start = head.find("://").map_or(0, |i| i + 3);
    let base = match head[authority_start..].find('/') {
        Some(i) => &head[..authority_start + i],
        None => head,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

/// Runs one SQL command with `psql` against `url`; returns its unaligned output.
pub async fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let run = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(PSQL_TIMEOUT, run)
        .await
        .with_context(|| format!("psql did not answer within {PSQL_TIMEOUT:?}: {sql}"))?
        .context("running psql (apt-get install postgresql-client)")?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!(
            "psql {sql:?} failed: {}",
            stderr.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Temporary directories and databases created so far, to remove in [`Scratch::clean`].
#[derive(Debug, Default)]
pub struct Scratch {
    dirs: Vec<PathBuf>,
    /// `(admin URL, database name)`.
    databases: Vec<(String, String)>,
}

impl Scratch {
    /// Creates a fresh directory `agentdesk-bench-<random>` under the temporary directory.
    pub fn dir(&mut self) -> anyhow::Result<PathBuf> {
        let dir = std::env::temp_dir().join(format!("agentdesk-bench-{}", random_hex(6)?));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        self.dirs.push(dir.clone());
        Ok(dir)
    }

    /// Creates the database `name` on the server at `admin_url` (its name is recorded first,
    /// so that it is dropped even when the creation fails half-way); returns its URL.
    pub async fn database(&mut self, admin_url: &str, name: &str) -> anyhow::Result<String> {
        self.databases.push((admin_url.to_owned(), name.to_owned()));
        psql(admin_url, &format!("CREATE DATABASE {name}")).await?;
        Ok(with_database(admin_url, name))
    }

    /// Drops every database (`WITH (FORCE)`: a killed server's connections do not keep it)
    /// and removes every directory; failures are printed, not returned.
    pub async fn clean(&mut self) {
        for (url, name) in self.databases.drain(..) {
            if let Err(e) = psql(
                &url,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await
            {
                eprintln!("warning: could not drop database {name}: {e:#}");
            }
        }
        for dir in self.dirs.drain(..) {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                eprintln!("warning: could not remove {}: {e}", dir.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_in_url() {
        let base = "postgres://postgres@127.0.0.1:5432/postgres";
        assert_eq!(
            with_database(base, "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database(&format!("{base}?sslmode=disable"), "x"),
            "postgres://postgres@127.0.0.1:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
        assert_eq!(random_hex(4).unwrap().len(), 8);
    }
}
