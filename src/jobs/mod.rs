//! Durable background work (ARCHITECTURE §6): the queue's semantics ([`queue`]), the typed
//! job kinds and their registry ([`registry`]), and the worker that runs jobs and the
//! periodic sweeps ([`worker`]).
//!
//! The queue knows nothing about what a job does: each job kind is a type implementing
//! [`BackgroundJob`] next to the domain it serves (the session jobs live in
//! `domain::sessions::jobs`), registered once in a [`Registry`] at start-up. Jobs run with a
//! narrow [`JobContext`] (database, bus, desktop runtime, blob store, configuration), not the server.
//!
//! Delivery is at least once: a job is claimed under a lease the worker keeps extending; a
//! worker that dies stops extending it, and once it lapses another worker claims the job
//! again. Handlers are therefore idempotent. Failures are retried with exponential backoff
//! and jitter; after `max_attempts` the job is dead-lettered (`dead`), its type's
//! [`BackgroundJob::on_dead`] runs (a session provisioning job fails its session), and the
//! API can re-drive it (`jobs.retry`).

pub mod queue;
pub mod registry;
pub mod tasks;
pub mod worker;

pub use registry::{BackgroundJob, JobContext, Registry};
pub use tasks::SessionTasks;
