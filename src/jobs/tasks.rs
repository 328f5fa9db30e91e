//! Long-running per-session work of one node (the built-in executor of a running session):
//! at most one task per session, started by whoever gets there first and forgotten when it
//! ends. The set knows nothing about what the tasks do.

use std::{collections::HashMap, future::Future, sync::Arc};

use tokio::task::AbortHandle;
use uuid::Uuid;

/// The node's per-session tasks. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct SessionTasks {
    running: Arc<std::sync::Mutex<HashMap<Uuid, AbortHandle>>>,
}

impl SessionTasks {
    /// Spawns `task` for `session_id` unless one is running for it already; `true` when it
    /// was spawned. The entry is removed when the task ends.
    pub fn spawn_once<F>(&self, session_id: Uuid, task: F) -> bool
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Ok(mut running) = self.running.lock() else {
            return false;
        };
        if running.get(&session_id).is_some_and(|h| !h.is_finished()) {
            return false;
        }
        let map = self.running.clone();
        let handle = tokio::spawn(async move {
            task.await;
            if let Ok(mut m) = map.lock() {
                m.remove(&session_id);
            }
        });
        running.insert(session_id, handle.abort_handle());
        true
    }

    /// Whether a task runs for `session_id`.
    pub fn is_running(&self, session_id: Uuid) -> bool {
        self.running
            .lock()
            .is_ok_and(|m| m.get(&session_id).is_some_and(|h| !h.is_finished()))
    }
}
