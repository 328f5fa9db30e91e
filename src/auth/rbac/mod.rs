//! Authorization with casbin: RBAC with domains (ARCHITECTURE §5).
//!
//! * Request `(subject, domain, object, action)`; domains are `org:<uuid>`; permissions are
//!   `object:action` (`members:write`).
//! * Built-in roles are `p` rules in the wildcard domain `*`, written from [`BUILTIN_ROLES`]
//!   (the one permission table, also in the README) into `casbin_rule` at start-up.
//! * Memberships are `g, user:<id>, role:<name>, org:<id>` rules, written in the same
//!   transaction as the `memberships` row ([`grant_in_tx`], [`revoke_in_tx`]) and applied to the
//!   in-memory enforcer after the commit ([`Rbac::apply`]).
//! * A request is decided from the caller's membership row, read fresh from the database on
//!   every request (so a role change on one node holds on every node at once), and casbin's
//!   evaluation of that role's permissions in the org's domain ([`Rbac::allows`]).
//!
//! The adapter ([`SeaOrmAdapter`]) is ours: no published casbin adapter supports sea-orm 2.
//!
//! The module is split at its seams:
//!
//! * `catalog`: the permission and capability catalogs and the built-in roles (a leaf: it
//!   knows nothing of casbin or the database);
//! * `policies`: the policy store, the `*_in_tx` functions writing `casbin_rule` rows in the
//!   caller's transaction, the reads of stored rules, and the casbin subject/domain names;
//! * `enforcer`: [`Rbac`], the shared in-memory casbin enforcer and its [`MODEL`];
//! * `adapter`: [`SeaOrmAdapter`], the `casbin::Adapter` over SeaORM, and the `casbin_rule`
//!   row helpers.
//!
//! Dependencies point one way: `enforcer` uses `policies` and `adapter`, `policies` uses
//! `adapter` (its row helper), and `catalog` is a leaf used by both `enforcer` and `policies`.
//! Everything public is re-exported here, so callers name `crate::auth::rbac::<item>` only.

mod adapter;
mod catalog;
mod enforcer;
mod policies;

pub use adapter::SeaOrmAdapter;
pub use catalog::{
    AGENTS_READ, AGENTS_WRITE, API_KEYS_READ, API_KEYS_WRITE, AUDIT_READ, BUILTIN_ROLES,
    CAPABILITIES, COMMANDS_EXECUTE, COMMANDS_WRITE, DESKTOP_CONTROL, JOBS_READ, JOBS_WRITE,
    MEMBERS_OWNER, MEMBERS_READ, MEMBERS_WRITE, ORGS_DELETE, ORGS_READ, ORGS_WRITE, PERMISSIONS,
    ROLES_READ, ROLES_WRITE, Role, SESSIONS_READ, SESSIONS_WRITE, builtin_permissions,
    is_capability, is_permission,
};
pub use enforcer::{MODEL, Rbac};
pub use policies::{
    RuleChange, agent_capabilities, custom_role_permissions, drop_domain_in_tx, grant_in_tx,
    key_subject, revoke_in_tx, set_agent_capabilities_in_tx, set_role_permissions_in_tx,
    user_subject,
};
