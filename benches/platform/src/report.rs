//! The one table: a row per scenario and backend with its throughput, latency percentiles,
//! ratio to its ceiling, target and verdict; then the memory lines and the notes.

use std::fmt::Write as _;

use crate::{
    options::Backend,
    server::Memory,
    stats::{Pct, fmt_ms, mib},
};

/// How a row is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The target is met.
    Pass,
    /// The target is not met.
    Fail,
    /// A ceiling other rows are compared with (no target of its own).
    Ceiling,
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// What was measured.
    pub scenario: String,
    /// Throughput with its unit (`req/s`, `events/s`, …), or what stands in for it.
    pub throughput: String,
    /// Latency percentiles (ms), when measured.
    pub pct: Option<Pct>,
    /// The ratio to the row's ceiling, or another comparison.
    pub ratio: String,
    /// The target.
    pub target: String,
    /// The verdict.
    pub verdict: Verdict,
}

/// Everything measured on one backend.
#[derive(Clone, Debug)]
pub struct BackendReport {
    /// The backend.
    pub backend: Backend,
    /// Its rows, in the order run.
    pub rows: Vec<Row>,
    /// Server memory at named points, in order.
    pub memory: Vec<(String, Memory)>,
    /// Free-form findings (errors, server warnings, secondary figures).
    pub notes: Vec<String>,
    /// Why the backend could not be run to the end, if it could not.
    pub error: Option<String>,
}

impl BackendReport {
    /// An empty report for `backend`.
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            rows: Vec::new(),
            memory: Vec::new(),
            notes: Vec::new(),
            error: None,
        }
    }

    /// Records the server's memory at `point`.
    pub fn mem(&mut self, point: impl Into<String>, m: Memory) {
        self.memory.push((point.into(), m));
    }
}

/// The whole report as Markdown: `header` lines, the table over every backend, then per
/// backend its memory line and notes, then the verdict count.
pub fn render(header: &[String], reports: &[BackendReport]) -> String {
    let mut s = String::new();
    for h in header {
        let _ = writeln!(s, "{h}");
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| backend | scenario | throughput | p50 ms | p95 ms | p99 ms | ratio to ceiling | target | result |"
    );
    let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|---|---|");
    for r in reports {
        for row in &r.rows {
            let (p50, p95, p99) = match row.pct {
                Some(p) if p.n > 0 => (fmt_ms(p.p50), fmt_ms(p.p95), fmt_ms(p.p99)),
                _ => ("–".into(), "–".into(), "–".into()),
            };
            let verdict = match row.verdict {
                Verdict::Pass => "PASS",
                Verdict::Fail => "**FAIL**",
                Verdict::Ceiling => "ceiling",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {p50} | {p95} | {p99} | {} | {} | {verdict} |",
                r.backend.name(),
                row.scenario,
                row.throughput,
                row.ratio,
                row.target
            );
        }
    }
    let _ = writeln!(s);
    for r in reports {
        if !r.memory.is_empty() {
            let points: Vec<String> = r
                .memory
                .iter()
                .map(|(p, m)| format!("{p} {}", mib(m.rss_kib)))
                .collect();
            let peak = r.memory.iter().map(|(_, m)| m.hwm_kib).max().unwrap_or(0);
            let _ = writeln!(
                s,
                "- {} server RSS (VmRSS, MiB): {}; peak (VmHWM) {}.",
                r.backend.name(),
                points.join(" · "),
                mib(peak)
            );
        }
        for n in &r.notes {
            let _ = writeln!(s, "- {}: {}", r.backend.name(), one_line(n));
        }
        if let Some(e) = &r.error {
            let _ = writeln!(
                s,
                "- {}: **the benchmark could not run to the end**: {}",
                r.backend.name(),
                one_line(e)
            );
        }
    }
    let judged: Vec<&Row> = reports
        .iter()
        .flat_map(|r| &r.rows)
        .filter(|r| r.verdict != Verdict::Ceiling)
        .collect();
    let passed = judged.iter().filter(|r| r.verdict == Verdict::Pass).count();
    let _ = writeln!(
        s,
        "\nTargets met: {passed} of {} (a FAIL is a finding, not an error of the benchmark).",
        judged.len()
    );
    s
}

/// `text` on one line (a Markdown list item), runs of whitespace as one space.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rows_memory_and_count() {
        let mut r = BackendReport::new(Backend::Sqlite);
        r.rows.push(Row {
            scenario: "`GET /healthz`".into(),
            throughput: "50,000 req/s".into(),
            pct: Some(Pct {
                n: 10,
                p50: 0.5,
                p95: 1.0,
                p99: 2.0,
                max: 3.0,
            }),
            ratio: "1.00".into(),
            target: "–".into(),
            verdict: Verdict::Ceiling,
        });
        r.rows.push(Row {
            scenario: "x".into(),
            throughput: "1 req/s".into(),
            pct: None,
            ratio: "".into(),
            target: "t".into(),
            verdict: Verdict::Fail,
        });
        r.mem(
            "idle",
            Memory {
                rss_kib: 2048,
                hwm_kib: 4096,
            },
        );
        let out = render(&["# head".into()], &[r]);
        assert!(out.contains(
            "| SQLite | `GET /healthz` | 50,000 req/s | 0.50 | 1.00 | 2.00 | 1.00 | – | ceiling |"
        ));
        assert!(out.contains("| SQLite | x | 1 req/s | – | – | – |  | t | **FAIL** |"));
        assert!(out.contains("idle 2.0; peak (VmHWM) 4.0."));
        assert!(out.contains("Targets met: 0 of 1"));
    }
}
