//! What the single-run benchmarks (`desktop`, `relay`) share: the `main` that runs one
//! report-producing future under a deadline, and percentiles.

use std::{future::Future, time::Duration};

/// Runs `run()` on a multi-threaded runtime with warn-level logs on stderr, prints its report
/// and exits 0; exits 1 when it fails or is still running after `deadline`.
pub fn main_with<F>(name: &str, deadline: Duration, run: impl FnOnce() -> F)
where
    F: Future<Output = anyhow::Result<String>>,
{
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(async {
        match tokio::time::timeout(deadline, run()).await {
            Ok(Ok(report)) => {
                println!("{report}");
                0
            }
            Ok(Err(e)) => {
                eprintln!("{name} bench failed: {e:#}");
                1
            }
            Err(_) => {
                eprintln!("{name} bench gave up after {deadline:?}");
                1
            }
        }
    });
    std::process::exit(code);
}

/// The `q` quantiles (0–1) of `samples`, nearest rank; sorts `samples`.
pub fn quantiles<const N: usize>(samples: &mut [f64], q: [f64; N]) -> [f64; N] {
    samples.sort_by(f64::total_cmp);
    q.map(|q| samples[((samples.len() as f64 - 1.0) * q).round() as usize])
}
