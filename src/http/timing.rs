//! Per-request database statistics: how many statements a request ran and how long the
//! database took (ms), counted by a sea-orm metric callback ([`on_statement`], installed on the
//! connection pool) into a task-local that the edge middleware scopes around each request
//! ([`scope`]).
//!
//! Every request's log line carries them (`db_statements`, `db_ms`), so an N+1 query shows in
//! the log. With `server_timing = true` they are also sent to the client as a W3C
//! `Server-Timing` header, `db;dur=<ms>;desc="<n> statements"`, which browsers' developer
//! tools display. Off by default: it tells a caller how much database work a request did.
//! Statements run by background tasks (jobs, the event appender) are not counted against
//! any request; `BEGIN`/`COMMIT` are not counted.

use std::{cell::Cell, future::Future, time::Duration};

tokio::task_local! {
    static STATS: Cell<DbStats>;
}

/// What one request asked of the database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DbStats {
    /// Statements run (queries and writes; not `BEGIN`/`COMMIT`).
    pub statements: u32,
    /// Time spent in them.
    pub elapsed: Duration,
}

impl DbStats {
    /// The `Server-Timing` header value: `db;dur=<ms>;desc="<n> statements"`.
    pub fn server_timing(&self) -> String {
        format!(
            "db;dur={:.3};desc=\"{} statements\"",
            self.elapsed.as_secs_f64() * 1000.0,
            self.statements
        )
    }
}

/// The sea-orm metric callback: counts a statement against the current request, if any.
pub fn on_statement(info: &sea_orm::metric::Info<'_>) {
    let _ = STATS.try_with(|s| {
        let mut v = s.get();
        v.statements += 1;
        v.elapsed += info.elapsed;
        s.set(v);
    });
}

/// Runs `f` as one request: returns its output and the statements it ran.
pub async fn scope<F: Future>(f: F) -> (F::Output, DbStats) {
    STATS
        .scope(Cell::new(DbStats::default()), async {
            let out = f.await;
            (out, STATS.with(Cell::get))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_count_and_duration() {
        let s = DbStats {
            statements: 3,
            elapsed: Duration::from_micros(1500),
        };
        assert_eq!(s.server_timing(), "db;dur=1.500;desc=\"3 statements\"");
    }
}
