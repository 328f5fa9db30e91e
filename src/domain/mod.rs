//! The rules: accounts, organizations, memberships, audit. Functions over
//! `&impl ConnectionTrait` (or a connection they open transactions on); no HTTP types.
//! Errors are [`AppError`](crate::error::AppError)s with stable codes.

pub mod accounts;
pub mod audit;
pub mod orgs;
pub mod page;
