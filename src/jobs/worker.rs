//! The worker: claims due jobs up to its concurrency, runs each under a lease it extends
//! every third of `job_lease_s`, records the outcome (fenced by the claim), and runs the
//! reaper every `reaper_interval_ms`. It runs inside `serve` (`worker_concurrency > 0`) and
//! alone as `agentdesk worker`, so workers scale apart from API nodes.
//!
//! Wake-ups: a job enqueued (or re-driven) on any node wakes idle workers at once (the bus);
//! otherwise they poll every `job_poll_interval_ms`, which also picks up retries whose backoff
//! ended and jobs whose lease lapsed.
//!
//! What a job does, and what the reaper sweeps, come from the [`Registry`]; the worker
//! knows only the queue.

use std::{sync::Arc, time::Duration};

use tokio::{sync::Semaphore, task::JoinHandle};
use uuid::Uuid;

use super::{JobContext, Registry, queue};
use crate::entity::job;

/// A running worker; dropping the handle does not stop it, [`Worker::shutdown`] does.
pub struct Worker {
    /// This worker's id (`locked_by` of the jobs it holds).
    pub id: String,
    tasks: Vec<JoinHandle<()>>,
}

impl Worker {
    /// Stops claiming and aborts jobs in progress (their leases lapse and another worker
    /// runs them again: at-least-once).
    pub fn shutdown(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Starts a worker with `concurrency` job slots and the reaper, running the kinds and sweeps
/// of `registry`.
pub fn spawn(ctx: JobContext, registry: Registry, concurrency: u32) -> Worker {
    let id = format!("worker-{}", Uuid::now_v7().simple());
    let registry = Arc::new(registry);
    let claim_loop = tokio::spawn(claim_loop(
        ctx.clone(),
        registry.clone(),
        id.clone(),
        concurrency,
    ));
    let reaper = tokio::spawn(reaper_loop(ctx, registry));
    Worker {
        id,
        tasks: vec![claim_loop, reaper],
    }
}

async fn claim_loop(
    state: JobContext,
    registry: Arc<Registry>,
    worker_id: String,
    concurrency: u32,
) {
    let slots = Arc::new(Semaphore::new(concurrency as usize));
    let lease = Duration::from_secs(state.config.job_lease_s);
    let poll = Duration::from_millis(state.config.job_poll_interval_ms);
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        let free = slots.available_permits() as u32;
        let claimed = match queue::claim(&state.db, &worker_id, free, lease).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, "job claim failed");
                Vec::new()
            }
        };
        let got = claimed.len() as u32;
        for j in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (state, registry) = (state.clone(), registry.clone());
            running.spawn(async move {
                run_one(&state, &registry, j, lease).await;
                drop(permit);
            });
        }
        if got > 0 && got == free {
            continue; // Possibly more due: claim again as slots free up.
        }
        tokio::select! {
            _ = state.bus.job_wakeup() => {}
            _ = tokio::time::sleep(poll) => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
}

async fn run_one(state: &JobContext, registry: &Registry, claimed: job::Model, lease: Duration) {
    // The lease is extended every third of it, in the same task as the handler: if the
    // lease is lost (another worker claimed the job after our extensions failed), the
    // handler is dropped at its next await instead of racing the new owner, and nothing
    // outlives this function.
    let heartbeat = async {
        let mut tick = tokio::time::interval(lease / 3);
        tick.tick().await;
        loop {
            tick.tick().await;
            match queue::extend_lease(&state.db, &claimed, lease).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(error = %e, job_id = %claimed.id, "lease extension failed")
                }
            }
        }
    };
    let span = tracing::info_span!("job", job_id = %claimed.id, kind = %claimed.kind, attempt = claimed.attempts);
    let handler = tracing::Instrument::instrument(registry.run(state, &claimed), span);
    let outcome = tokio::select! {
        outcome = handler => outcome,
        () = heartbeat => {
            tracing::warn!(job_id = %claimed.id, "lease lost; another worker owns the job now");
            return;
        }
    };
    metrics::counter!("agentdesk_jobs_total", "kind" => claimed.kind.clone(), "outcome" => if outcome.is_ok() { "succeeded" } else { "failed" }).increment(1);
    let result = match outcome {
        Ok(()) => queue::complete(&state.db, &claimed).await.map(|_| ()),
        Err(e) => {
            let delay = queue::backoff(
                claimed.attempts.max(1) as u32,
                Duration::from_millis(state.config.job_backoff_base_ms),
                Duration::from_millis(state.config.job_backoff_max_ms),
                rand::random::<f64>(),
            );
            let message = format!("{e:#}");
            tracing::warn!(job_id = %claimed.id, kind = %claimed.kind, attempt = claimed.attempts, error = %message, "job failed");
            match queue::fail(&state.db, &claimed, &message, delay).await {
                Ok(queue::Failed::Dead) => {
                    tracing::error!(job_id = %claimed.id, kind = %claimed.kind, "job dead-lettered");
                    let mut dead = claimed.clone();
                    dead.last_error = Some(message);
                    if let Err(e) = registry.on_dead(state, &dead).await {
                        tracing::error!(error = %e, job_id = %claimed.id, "dead-letter hook failed");
                    }
                    Ok(())
                }
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            }
        }
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, job_id = %claimed.id, "recording the job outcome failed; the lease will lapse and it runs again");
    }
}

async fn reaper_loop(state: JobContext, registry: Arc<Registry>) {
    let mut tick = tokio::time::interval(Duration::from_millis(state.config.reaper_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = reap_once(&state, &registry).await {
            tracing::warn!(error = %e, "reaper pass failed");
        }
    }
}

/// One reaper pass: dead-letter jobs whose last lease lapsed (running their kind's
/// dead-letter hook), then every sweep of the registry in order. A failing sweep is logged
/// and does not stop the others. Errors: the queue could not be read.
pub async fn reap_once(state: &JobContext, registry: &Registry) -> anyhow::Result<()> {
    for dead in queue::sweep_expired(&state.db).await? {
        tracing::error!(job_id = %dead.id, kind = %dead.kind, "job dead-lettered (lease lapsed on the last attempt)");
        if let Err(e) = registry.on_dead(state, &dead).await {
            tracing::error!(error = %e, job_id = %dead.id, "dead-letter hook failed");
        }
    }
    for (name, sweep) in registry.sweeps() {
        if let Err(e) = sweep(state.clone()).await {
            tracing::warn!(error = %e, sweep = name, "reaper sweep failed");
        }
    }
    Ok(())
}
