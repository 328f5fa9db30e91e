//! The typed job registry on its own (no server, no session): a job kind that belongs to no
//! session (a retention sweep, a webhook delivery) is enqueued, claimed and run by a worker
//! through the registry, and a kind that keeps failing is dead-lettered once and runs its own
//! dead-letter hook.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use agentdesk::jobs::{
    BackgroundJob, JobContext, Registry,
    queue::{self, NewJob},
    worker,
};
use sea_orm::{ActiveValue::Set, EntityTrait};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    backend_tests,
    common::{Backend, fresh_database, test_config},
};

backend_tests!(jobs_without_a_session_run_and_dead_letter);

/// What the jobs of each test run did: `[swept, failed attempts, dead-letter hooks]` (the
/// SQLite and PostgreSQL variants run at once in one process).
static SEEN: Mutex<Option<HashMap<Uuid, [usize; 3]>>> = Mutex::new(None);

fn count(run: Uuid, what: usize) {
    let mut seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
    seen.get_or_insert_with(HashMap::new)
        .entry(run)
        .or_default()[what] += 1;
}

fn seen(run: Uuid) -> [usize; 3] {
    let seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
    seen.as_ref()
        .and_then(|s| s.get(&run).copied())
        .unwrap_or_default()
}

/// A system job: no org, no session.
#[derive(Serialize, Deserialize)]
struct RetentionSweep {
    run: Uuid,
    older_than_s: u64,
}

impl BackgroundJob for RetentionSweep {
    const KIND: &'static str = "test.retention_sweep";

    fn org_id(&self) -> Option<Uuid> {
        None
    }

    async fn run(&self, _: &JobContext) -> anyhow::Result<()> {
        assert_eq!(self.older_than_s, 3600, "the payload round-trips");
        count(self.run, 0);
        Ok(())
    }
}

/// An org's job that never succeeds.
#[derive(Serialize, Deserialize)]
struct Doomed {
    run: Uuid,
    org_id: Uuid,
}

impl BackgroundJob for Doomed {
    const KIND: &'static str = "test.doomed";

    fn org_id(&self) -> Option<Uuid> {
        Some(self.org_id)
    }

    async fn run(&self, _: &JobContext) -> anyhow::Result<()> {
        count(self.run, 1);
        anyhow::bail!("the endpoint answered 503")
    }

    async fn on_dead(
        &self,
        _: &JobContext,
        job: &agentdesk::entity::job::Model,
    ) -> anyhow::Result<()> {
        assert_eq!(job.kind, Self::KIND);
        assert_eq!(job.org_id, Some(self.org_id));
        count(self.run, 2);
        Ok(())
    }
}

async fn jobs_without_a_session_run_and_dead_letter(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = fresh_database(backend, dir.path()).await else {
        return;
    };
    let mut config = test_config(dir.path(), url);
    config.job_poll_interval_ms = 20;
    config.job_backoff_base_ms = 10;
    config.job_backoff_max_ms = 20;
    let state = agentdesk::build_state(config).await.unwrap();
    let run = Uuid::now_v7();
    let mut outbox = agentdesk::realtime::bus::Outbox::default();
    let sweep = NewJob::of(&RetentionSweep {
        run,
        older_than_s: 3600,
    });
    assert_eq!((sweep.org_id, sweep.session_id), (None, None));
    queue::enqueue(&state.db, sweep, 5, &mut outbox)
        .await
        .unwrap();
    // An org for the org's job (jobs reference their org).
    let org_id = Uuid::now_v7();
    let now = chrono::Utc::now();
    agentdesk::entity::organization::Entity::insert(agentdesk::entity::organization::ActiveModel {
        id: Set(org_id),
        name: Set("Integrations".into()),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        created_by: Set(None),
    })
    .exec_without_returning(&state.db)
    .await
    .unwrap();
    let doomed = NewJob::of(&Doomed { run, org_id });
    queue::enqueue(&state.db, doomed, 2, &mut outbox)
        .await
        .unwrap();
    let registry = Registry::new()
        .register::<RetentionSweep>()
        .register::<Doomed>();
    let w = worker::spawn(state.jobs(), registry, 2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen(run)[0] == 0 || seen(run)[2] == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never ran both jobs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.shutdown();
    assert_eq!(
        seen(run),
        [1, 2, 1],
        "ran once; failed max_attempts times; dead once"
    );
}
