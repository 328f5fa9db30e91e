//! Typed job kinds (the shape of crates.io's `BackgroundJob`): a job is a serde type with a
//! stable kind name, its payload is the type itself, and it brings its own handler and its
//! own dead-letter hook. [`Registry`] maps stored kind names to them, and also holds the
//! periodic sweeps the reaper runs; the worker asks it, so the queue and the worker never
//! name a domain.

use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc};

use sea_orm::DatabaseConnection;
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use super::queue::NewJob;
use crate::{
    blob::BlobStore, config::Config, entity::job, realtime::bus::Bus, runtime::DesktopRuntime,
};

/// What a job may use: the narrow context of background work (not the HTTP server's state).
#[derive(Clone)]
pub struct JobContext {
    /// The connection pool.
    pub db: DatabaseConnection,
    /// The event bus, to publish what a job's transactions commit.
    pub bus: Bus,
    /// Where desktops come from.
    pub runtime: Arc<dyn DesktopRuntime>,
    /// Where artifact bytes live (the desktop executor stores screenshots from its task).
    pub blobs: Arc<dyn BlobStore>,
    /// The configuration in force.
    pub config: Arc<Config>,
    /// Seals and opens secrets at rest (the desktops' VNC passwords).
    pub sealer: Arc<crate::auth::seal::Sealer>,
    /// The node's long-running per-session tasks (built-in executors).
    pub session_tasks: super::SessionTasks,
}

/// A kind of background job. The value is the job's payload (stored as JSON in
/// `jobs.payload`); [`BackgroundJob::run`] must be idempotent (delivery is at least once).
pub trait BackgroundJob: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stored `kind`, stable across releases (`session.provision`).
    const KIND: &'static str;

    /// The org the job works for (`jobs.list` shows it there), or `None` for system work
    /// (a retention sweep).
    fn org_id(&self) -> Option<Uuid>;

    /// The session it works for, if any (`jobs.list?session_id=`).
    fn session_id(&self) -> Option<Uuid> {
        None
    }

    /// Does the work. Errors: anything worth retrying (the message becomes `last_error`).
    fn run(&self, ctx: &JobContext) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Runs once when the job is dead-lettered (attempts exhausted, or its last lease
    /// lapsed); `job` is the dead row. Default: nothing. Errors: logged.
    fn on_dead(
        &self,
        ctx: &JobContext,
        job: &job::Model,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = (ctx, job);
        async { Ok(()) }
    }
}

impl NewJob {
    /// The row to enqueue for `job`: its kind, org, session and payload.
    ///
    /// # Panics
    /// When the payload does not serialise to JSON, which a `#[derive(Serialize)]` of plain
    /// data (ids, numbers, strings) never does.
    pub fn of<J: BackgroundJob>(job: &J) -> NewJob {
        NewJob {
            kind: J::KIND,
            org_id: job.org_id(),
            session_id: job.session_id(),
            payload: serde_json::to_value(job).expect("job payloads serialise to JSON"),
        }
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A job kind with its type erased, so the worker can run any registered kind by name.
trait ErasedJob: Send + Sync {
    fn run<'a>(
        &'a self,
        ctx: &'a JobContext,
        row: &'a job::Model,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    fn on_dead<'a>(
        &'a self,
        ctx: &'a JobContext,
        row: &'a job::Model,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

struct Kind<J>(std::marker::PhantomData<fn() -> J>);

fn payload<J: BackgroundJob>(row: &job::Model) -> anyhow::Result<J> {
    serde_json::from_value(row.payload.clone())
        .map_err(|e| anyhow::anyhow!("payload of job kind {} does not parse: {e}", J::KIND))
}

impl<J: BackgroundJob> ErasedJob for Kind<J> {
    fn run<'a>(
        &'a self,
        ctx: &'a JobContext,
        row: &'a job::Model,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { payload::<J>(row)?.run(ctx).await })
    }

    fn on_dead<'a>(
        &'a self,
        ctx: &'a JobContext,
        row: &'a job::Model,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { payload::<J>(row)?.on_dead(ctx, row).await })
    }
}

/// A periodic task of the reaper (expire commands, purge idempotency keys, …).
pub type Sweep = Arc<dyn Fn(JobContext) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// The job kinds a worker runs and the sweeps its reaper runs, registered once at start-up.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: HashMap<&'static str, Arc<dyn ErasedJob>>,
    sweeps: Vec<(&'static str, Sweep)>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers job kind `J`. Panics when another type already registered `J::KIND` (a
    /// programming error caught by the first test run).
    pub fn register<J: BackgroundJob>(mut self) -> Self {
        let previous = self
            .kinds
            .insert(J::KIND, Arc::new(Kind::<J>(std::marker::PhantomData)));
        assert!(previous.is_none(), "job kind {} registered twice", J::KIND);
        self
    }

    /// Registers a sweep the reaper runs every `reaper_interval_ms`, in registration order;
    /// `name` labels its failures in the log.
    pub fn sweep<F, Fut>(mut self, name: &'static str, f: F) -> Self
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.sweeps
            .push((name, Arc::new(move |ctx| Box::pin(f(ctx)))));
        self
    }

    /// The registered kind names.
    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }

    /// Runs a claimed job. Errors: an unknown kind, a payload that does not parse, or the
    /// handler's error.
    pub async fn run(&self, ctx: &JobContext, row: &job::Model) -> anyhow::Result<()> {
        match self.kinds.get(row.kind.as_str()) {
            Some(kind) => kind.run(ctx, row).await,
            None => anyhow::bail!("unknown job kind {:?}", row.kind),
        }
    }

    /// Runs the dead-letter hook of a dead job's kind (nothing for an unknown kind).
    pub async fn on_dead(&self, ctx: &JobContext, row: &job::Model) -> anyhow::Result<()> {
        match self.kinds.get(row.kind.as_str()) {
            Some(kind) => kind.on_dead(ctx, row).await,
            None => Ok(()),
        }
    }

    /// The sweeps, in registration order.
    pub fn sweeps(&self) -> impl Iterator<Item = &(&'static str, Sweep)> {
        self.sweeps.iter()
    }
}
