//! Prometheus metrics at `/metrics`: `http_requests_total` and
//! `http_request_duration_seconds` (histogram) labelled by method, route template and status,
//! plus process metrics (CPU seconds, resident memory, open fds, start time) from
//! `metrics-process`, collected on each scrape.

use std::{sync::OnceLock, time::Duration};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();

/// Latency buckets (s): 0.5 ms … 10 s.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the global recorder once per process (several test servers share it).
pub fn install() {
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("http_request_duration_seconds".into()),
                BUCKETS,
            )
            .and_then(PrometheusBuilder::install_recorder);
        match handle {
            Ok(h) => {
                let process = metrics_process::Collector::default();
                process.describe();
                let _ = PROCESS.set(process);
                metrics::describe_counter!("http_requests_total", "HTTP requests served.");
                metrics::describe_histogram!(
                    "http_request_duration_seconds",
                    metrics::Unit::Seconds,
                    "HTTP request latency."
                );
                Some(h)
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed");
                None
            }
        }
    });
}

/// Records one request.
pub fn record_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
}

/// The Prometheus text exposition (format 0.0.4).
pub fn render() -> String {
    if let Some(p) = PROCESS.get() {
        p.collect();
    }
    HANDLE
        .get()
        .and_then(Option::as_ref)
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}
