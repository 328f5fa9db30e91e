//! The rules: accounts, organizations, memberships, audit, agents, sessions (the state
//! machine), the event log and commands. Functions over
//! `&impl ConnectionTrait` (or a connection they open transactions on); no HTTP types.
//! Errors are [`AppError`](crate::error::AppError)s with stable codes.

pub mod accounts;
pub mod agents;
pub mod audit;
pub mod commands;
pub mod events;
pub mod orgs;
pub mod page;
pub mod sessions;
