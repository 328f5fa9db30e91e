//! Durable background work (ARCHITECTURE §6): the queue's semantics ([`queue`]), the worker
//! that runs jobs and the reaper ([`worker`]), and the job handlers ([`handlers`]).
//!
//! Delivery is at least once: a job is claimed under a lease the worker keeps extending; a
//! worker that dies stops extending it, and once it lapses another worker claims the job
//! again. Handlers are therefore idempotent. Failures are retried with exponential backoff
//! and jitter; after `max_attempts` the job is dead-lettered (`dead`), what it worked for (a
//! session) goes to `failed`, and the API can re-drive it (`jobs.retry`).

pub mod handlers;
pub mod queue;
pub mod worker;
