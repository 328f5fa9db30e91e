//! Sessions: one run of an agent on one desktop (ARCHITECTURE §2), in four parts whose
//! dependencies run one way (`state` ← `store` ← events, commands ← `lifecycle` ← `jobs`):
//!
//! * [`state`]: the state machine, pure.
//! * [`store`]: finding rows (scoped to an org), the live filter, the `seq` counter, locks.
//! * [`lifecycle`]: create, stop, every transition (one transaction each, with its outbox),
//!   and the reaper's pass.
//! * [`jobs`]: the job kinds that bring desktops up and release them.

pub mod jobs;
pub mod lifecycle;
pub mod state;
pub mod store;

pub use lifecycle::{
    DURATION_MAX_S, METADATA_MAX_BYTES, NewSession, Step, create, fail_running, fail_step, reap,
    stop, stop_step, transition, transition_now,
};
pub use state::{Status, check_transition, expiry_reason, invalid_transition, not_live};
pub(crate) use store::take_seqs;
pub use store::{agent_has_live_sessions, find, get, list, org_has_live_work};
