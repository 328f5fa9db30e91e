//! SeaORM entities: one file per table, no logic. Nothing here crosses the API boundary;
//! `api/` maps these into its own response types.

pub mod agent;
pub mod api_key;
pub mod audit_event;
pub mod auth_ticket;
pub mod casbin_rule;
pub mod command;
pub mod idempotency_key;
pub mod identity;
pub mod invitation;
pub mod job;
pub mod login_failure;
pub mod membership;
pub mod organization;
pub mod refresh_token;
pub mod role;
pub mod session;
pub mod session_event;
pub mod user;
