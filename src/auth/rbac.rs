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

use std::sync::Arc;

use async_trait::async_trait;
use casbin::{Adapter, CoreApi, DefaultModel, Enforcer, Filter, MgmtApi, Model};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait,
    sea_query::ExprTrait,
};
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::entity::casbin_rule;

/// The casbin model: RBAC with domains; `p.dom == "*"` rules apply in every org.
pub const MODEL: &str = r#"
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub, r.dom) && (p.dom == "*" || r.dom == p.dom) && r.obj == p.obj && r.act == p.act
"#;

/// Read the organization (`orgs.get`).
pub const ORGS_READ: &str = "orgs:read";
/// Rename the organization (`orgs.update`).
pub const ORGS_WRITE: &str = "orgs:write";
/// Delete the organization (`orgs.delete`).
pub const ORGS_DELETE: &str = "orgs:delete";
/// List members (`members.list`).
pub const MEMBERS_READ: &str = "members:read";
/// Add, change and remove non-owner members (`members.add`, `members.update`, `members.remove`).
pub const MEMBERS_WRITE: &str = "members:write";
/// Grant or take the `owner` role.
pub const MEMBERS_OWNER: &str = "members:owner";
/// Read the audit log (`audit.list`).
pub const AUDIT_READ: &str = "audit:read";

/// Read agents (`agents.list`, `agents.get`).
pub const AGENTS_READ: &str = "agents:read";
/// Create, change and delete agents and their capabilities.
pub const AGENTS_WRITE: &str = "agents:write";
/// Read sessions, their event logs and streams, and their commands.
pub const SESSIONS_READ: &str = "sessions:read";
/// Start and stop sessions; append events.
pub const SESSIONS_WRITE: &str = "sessions:write";
/// Send commands to a session's desktop (`commands.create`).
pub const COMMANDS_WRITE: &str = "commands:write";
/// Act as a session's executor: claim commands and report results.
pub const COMMANDS_EXECUTE: &str = "commands:execute";
/// Read the org's background jobs, including dead ones.
pub const JOBS_READ: &str = "jobs:read";
/// Re-drive dead jobs (`jobs.retry`).
pub const JOBS_WRITE: &str = "jobs:write";
/// List the org's roles, built-in and custom (`roles.list`, `roles.get`).
pub const ROLES_READ: &str = "roles:read";
/// Create, change and delete custom roles.
pub const ROLES_WRITE: &str = "roles:write";
/// List the org's API keys (never their secrets).
pub const API_KEYS_READ: &str = "api_keys:read";
/// Create and revoke API keys.
pub const API_KEYS_WRITE: &str = "api_keys:write";

/// The permission catalog: `(name, description)`.
pub const PERMISSIONS: &[(&str, &str)] = &[
    (ORGS_READ, "Read the organization."),
    (ORGS_WRITE, "Change the organization's settings."),
    (ORGS_DELETE, "Delete the organization and everything in it."),
    (MEMBERS_READ, "List members and their roles."),
    (
        MEMBERS_WRITE,
        "Add members, change their roles (except owner), remove them.",
    ),
    (MEMBERS_OWNER, "Grant or take the owner role."),
    (AUDIT_READ, "Read the organization's audit log."),
    (AGENTS_READ, "Read agents and their capabilities."),
    (
        AGENTS_WRITE,
        "Create, change and delete agents and their capabilities.",
    ),
    (
        SESSIONS_READ,
        "Read sessions, their event logs, live streams and commands.",
    ),
    (SESSIONS_WRITE, "Start and stop sessions; append events."),
    (COMMANDS_WRITE, "Send commands to a session's desktop."),
    (
        COMMANDS_EXECUTE,
        "Claim a session's commands and report their results (the desktop-side executor).",
    ),
    (
        JOBS_READ,
        "Read background jobs, including dead-lettered ones.",
    ),
    (JOBS_WRITE, "Re-drive dead-lettered jobs."),
    (
        ROLES_READ,
        "List the organization's built-in and custom roles.",
    ),
    (ROLES_WRITE, "Create, change and delete custom roles."),
    (
        API_KEYS_READ,
        "List API keys (name, prefix, role, use; never the secret).",
    ),
    (API_KEYS_WRITE, "Create and revoke API keys."),
];

/// The agent capability catalog: `(name, description)`. A capability is a casbin `p` rule
/// `agent:<id>, org:<org>, <object>, <action>` for the name `<object>:<action>`.
pub const CAPABILITIES: &[(&str, &str)] = &[
    ("desktop:screen.capture", "Take screenshots of the desktop."),
    (
        "desktop:input.pointer",
        "Move, click and scroll the pointer.",
    ),
    ("desktop:input.keyboard", "Type text and press keys."),
    ("desktop:clipboard", "Set the desktop clipboard."),
    ("desktop:shell", "Run shell commands on the desktop."),
    ("desktop:files", "Read and write files on the desktop."),
    ("browser:navigate", "Open URLs in the desktop's browser."),
];

/// A built-in role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything, including deleting the org and managing owners.
    Owner,
    /// Manages the org, members (not owners) and reads the audit log.
    Admin,
    /// Runs sessions and commands; reads the org, its members and agents.
    Operator,
    /// Reads the org and its members.
    Viewer,
}

/// The permission table: which built-in role holds which permission.
pub const BUILTIN_ROLES: &[(Role, &[&str])] = &[
    (
        Role::Owner,
        &[
            ORGS_READ,
            ORGS_WRITE,
            ORGS_DELETE,
            MEMBERS_READ,
            MEMBERS_WRITE,
            MEMBERS_OWNER,
            AUDIT_READ,
            AGENTS_READ,
            AGENTS_WRITE,
            SESSIONS_READ,
            SESSIONS_WRITE,
            COMMANDS_WRITE,
            COMMANDS_EXECUTE,
            JOBS_READ,
            JOBS_WRITE,
            ROLES_READ,
            ROLES_WRITE,
            API_KEYS_READ,
            API_KEYS_WRITE,
        ],
    ),
    (
        Role::Admin,
        &[
            ORGS_READ,
            ORGS_WRITE,
            MEMBERS_READ,
            MEMBERS_WRITE,
            AUDIT_READ,
            AGENTS_READ,
            AGENTS_WRITE,
            SESSIONS_READ,
            SESSIONS_WRITE,
            COMMANDS_WRITE,
            COMMANDS_EXECUTE,
            JOBS_READ,
            JOBS_WRITE,
            ROLES_READ,
            ROLES_WRITE,
            API_KEYS_READ,
            API_KEYS_WRITE,
        ],
    ),
    (
        Role::Operator,
        &[
            ORGS_READ,
            MEMBERS_READ,
            AGENTS_READ,
            SESSIONS_READ,
            SESSIONS_WRITE,
            COMMANDS_WRITE,
            COMMANDS_EXECUTE,
            ROLES_READ,
        ],
    ),
    (
        Role::Viewer,
        &[
            ORGS_READ,
            MEMBERS_READ,
            AGENTS_READ,
            SESSIONS_READ,
            ROLES_READ,
        ],
    ),
];

impl Role {
    /// Every built-in role, most powerful first.
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Operator, Role::Viewer];

    /// The stored name (`owner`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The role's permissions from [`BUILTIN_ROLES`].
    pub fn permissions(self) -> &'static [&'static str] {
        BUILTIN_ROLES
            .iter()
            .find(|(r, _)| *r == self)
            .map(|(_, p)| *p)
            .unwrap_or(&[])
    }

    fn subject(self) -> String {
        role_subject(self.as_str())
    }
}

/// Whether `name` is a permission in [`PERMISSIONS`].
pub fn is_permission(name: &str) -> bool {
    PERMISSIONS.iter().any(|(n, _)| *n == name)
}

/// The permissions of the built-in role `name`, or `None` when it is not a built-in role.
pub fn builtin_permissions(name: &str) -> Option<&'static [&'static str]> {
    Role::parse(name).map(Role::permissions)
}

/// The casbin subject of a role (`role:<name>`), built-in or custom.
fn role_subject(name: &str) -> String {
    format!("role:{name}")
}

/// The casbin subject of an API key (`key:<id>`).
pub fn key_subject(key_id: Uuid) -> String {
    format!("key:{key_id}")
}

fn domain(org_id: Uuid) -> String {
    format!("org:{org_id}")
}

/// The casbin subject of a user (`user:<id>`).
pub fn user_subject(user_id: Uuid) -> String {
    format!("user:{user_id}")
}

/// A change to the in-memory policy, applied after the transaction that stored it commits.
#[derive(Clone, Debug)]
pub enum RuleChange {
    /// `g, subject, role, org` added (subject `user:<id>` or `key:<id>`).
    Grant {
        subject: String,
        org_id: Uuid,
        role: String,
    },
    /// `g, subject, role, org` removed.
    Revoke {
        subject: String,
        org_id: Uuid,
        role: String,
    },
    /// Every rule in the org's domain removed (org deleted).
    DropDomain { org_id: Uuid },
    /// The agent's capability rules replaced by `capabilities` (empty: agent deleted).
    AgentCapabilities {
        agent_id: Uuid,
        org_id: Uuid,
        capabilities: Vec<String>,
    },
    /// A custom role's permission rules replaced by `permissions` (empty: role deleted).
    RolePermissions {
        role: String,
        org_id: Uuid,
        permissions: Vec<String>,
    },
}

fn agent_subject(agent_id: Uuid) -> String {
    format!("agent:{agent_id}")
}

/// The `p` rule `subject, org:<id>, object, action` for `object:action`.
fn permission_rule(subject: &str, org_id: Uuid, permission: &str) -> Option<Vec<String>> {
    let (obj, act) = permission.split_once(':')?;
    Some(vec![
        subject.to_owned(),
        domain(org_id),
        obj.to_owned(),
        act.to_owned(),
    ])
}

fn capability_rule(agent_id: Uuid, org_id: Uuid, capability: &str) -> Option<Vec<String>> {
    permission_rule(&agent_subject(agent_id), org_id, capability)
}

/// Whether `name` is in [`CAPABILITIES`].
pub fn is_capability(name: &str) -> bool {
    CAPABILITIES.iter().any(|(n, _)| *n == name)
}

/// The enforcer, shared by all requests.
#[derive(Clone)]
pub struct Rbac {
    enforcer: Arc<RwLock<Enforcer>>,
}

impl Rbac {
    /// Writes the built-in role rules (replacing older ones in one transaction), then loads
    /// every rule into a casbin enforcer. Errors: database or model errors.
    pub async fn load(db: &DatabaseConnection) -> anyhow::Result<Self> {
        sync_builtin_roles(db).await?;
        let model = DefaultModel::from_str(MODEL).await?;
        let mut enforcer = Enforcer::new(model, SeaOrmAdapter::new(db.clone())).await?;
        // Rules are written by the domain inside its own transactions; the enforcer only
        // mirrors them in memory.
        enforcer.enable_auto_save(false);
        Ok(Self {
            enforcer: Arc::new(RwLock::new(enforcer)),
        })
    }

    /// Whether the built-in `role` holds `permission` (`object:action`) in `org_id`.
    pub async fn allows(&self, role: Role, org_id: Uuid, permission: &str) -> bool {
        self.enforce(&role.subject(), org_id, permission).await
    }

    /// Whether the role named `role` holds `permission` in `org_id`. For a custom role,
    /// `stored` are its permissions as read from `casbin_rule` in the caller's transaction
    /// ([`custom_role_permissions`]); when this node's in-memory copy differs (another node changed
    /// the role), it is brought up to date first. Built-in roles pass `None`.
    pub async fn role_allows(
        &self,
        role: &str,
        org_id: Uuid,
        stored: Option<&[String]>,
        permission: &str,
    ) -> bool {
        let subject = role_subject(role);
        if let Some(stored) = stored
            && !self.sync_subject(&subject, org_id, stored).await
        {
            return false;
        }
        self.enforce(&subject, org_id, permission).await
    }

    async fn enforce(&self, subject: &str, org_id: Uuid, permission: &str) -> bool {
        let Some((obj, act)) = permission.split_once(':') else {
            return false;
        };
        let enforcer = self.enforcer.read().await;
        enforcer
            .enforce((subject, domain(org_id), obj.to_owned(), act.to_owned()))
            .unwrap_or(false)
    }

    /// Brings the in-memory `p` rules of `subject` in `org_id` in line with `stored`
    /// (`object:action` names). False when the update failed (logged).
    async fn sync_subject(&self, subject: &str, org_id: Uuid, stored: &[String]) -> bool {
        let in_sync = {
            let enforcer = self.enforcer.read().await;
            let mut mem: Vec<String> = enforcer
                .get_filtered_policy(0, vec![subject.to_owned(), domain(org_id)])
                .into_iter()
                .filter(|r| r.len() >= 4)
                .map(|r| format!("{}:{}", r[2], r[3]))
                .collect();
            mem.sort();
            let mut want = stored.to_vec();
            want.sort();
            mem == want
        };
        if in_sync {
            return true;
        }
        let mut enforcer = self.enforcer.write().await;
        match replace_subject_rules(&mut enforcer, subject, org_id, stored).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "casbin in-memory sync failed");
                false
            }
        }
    }

    /// Mirrors committed changes in memory. Failures are logged (the database holds the truth
    /// and authorization reads memberships from it).
    pub async fn apply(&self, changes: Vec<RuleChange>) {
        let mut enforcer = self.enforcer.write().await;
        for change in changes {
            let result = match change {
                RuleChange::Grant {
                    subject,
                    org_id,
                    role,
                } => enforcer
                    .add_grouping_policy(vec![subject, role_subject(&role), domain(org_id)])
                    .await
                    .map(|_| ()),
                RuleChange::Revoke {
                    subject,
                    org_id,
                    role,
                } => enforcer
                    .remove_grouping_policy(vec![subject, role_subject(&role), domain(org_id)])
                    .await
                    .map(|_| ()),
                RuleChange::DropDomain { org_id } => {
                    let r = enforcer
                        .remove_filtered_grouping_policy(2, vec![domain(org_id)])
                        .await;
                    let _ = enforcer
                        .remove_filtered_policy(1, vec![domain(org_id)])
                        .await;
                    r.map(|_| ())
                }
                RuleChange::AgentCapabilities {
                    agent_id,
                    org_id,
                    capabilities,
                } => {
                    replace_subject_rules(
                        &mut enforcer,
                        &agent_subject(agent_id),
                        org_id,
                        &capabilities,
                    )
                    .await
                }
                RuleChange::RolePermissions {
                    role,
                    org_id,
                    permissions,
                } => {
                    replace_subject_rules(&mut enforcer, &role_subject(&role), org_id, &permissions)
                        .await
                }
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "casbin in-memory update failed");
            }
        }
    }
}

/// Replaces the `p` rules of `subject` in `org_id` in the in-memory enforcer.
async fn replace_subject_rules(
    enforcer: &mut Enforcer,
    subject: &str,
    org_id: Uuid,
    names: &[String],
) -> casbin::Result<()> {
    enforcer
        .remove_filtered_policy(0, vec![subject.to_owned(), domain(org_id)])
        .await?;
    let rules: Vec<Vec<String>> = names
        .iter()
        .filter_map(|c| permission_rule(subject, org_id, c))
        .collect();
    if !rules.is_empty() {
        enforcer.add_policies(rules).await?;
    }
    Ok(())
}

impl Rbac {
    /// Whether the agent holds `capability` in `org_id`, decided by casbin over the agent's
    /// rules. `stored` are the agent's capabilities as read from `casbin_rule` in the caller's
    /// transaction ([`agent_capabilities`]): when this node's in-memory copy differs (another
    /// node changed the agent), it is brought up to date first, so a decision never rests on
    /// a stale policy.
    pub async fn agent_allows(
        &self,
        agent_id: Uuid,
        org_id: Uuid,
        stored: &[String],
        capability: &str,
    ) -> bool {
        let subject = agent_subject(agent_id);
        if !self.sync_subject(&subject, org_id, stored).await {
            return false;
        }
        self.enforce(&subject, org_id, capability).await
    }
}

/// Replaces the agent's capability rules inside the caller's transaction; apply the returned
/// change with [`Rbac::apply`] after the commit. An empty list removes them all (agent
/// deleted). Errors: database errors.
pub async fn set_agent_capabilities_in_tx(
    db: &impl ConnectionTrait,
    agent_id: Uuid,
    org_id: Uuid,
    capabilities: &[String],
) -> Result<RuleChange, sea_orm::DbErr> {
    casbin_rule::Entity::delete_many()
        .filter(casbin_rule::Column::Ptype.eq("p"))
        .filter(casbin_rule::Column::V0.eq(agent_subject(agent_id)))
        .exec(db)
        .await?;
    let rows: Vec<_> = capabilities
        .iter()
        .filter_map(|c| capability_rule(agent_id, org_id, c))
        .map(|r| {
            let refs: Vec<&str> = r.iter().map(String::as_str).collect();
            rule_row("p", &refs)
        })
        .collect();
    if !rows.is_empty() {
        casbin_rule::Entity::insert_many(rows).exec(db).await?;
    }
    Ok(RuleChange::AgentCapabilities {
        agent_id,
        org_id,
        capabilities: capabilities.to_vec(),
    })
}

/// The stored capabilities of each agent in `agent_ids` (sorted by name), read from
/// `casbin_rule`, the one source of truth. Agents without rules map to an empty list.
pub async fn agent_capabilities(
    db: &impl ConnectionTrait,
    agent_ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, Vec<String>>, sea_orm::DbErr> {
    let mut out: std::collections::HashMap<Uuid, Vec<String>> =
        agent_ids.iter().map(|id| (*id, Vec::new())).collect();
    if agent_ids.is_empty() {
        return Ok(out);
    }
    let rows = casbin_rule::Entity::find()
        .filter(casbin_rule::Column::Ptype.eq("p"))
        .filter(casbin_rule::Column::V0.is_in(agent_ids.iter().map(|id| agent_subject(*id))))
        .all(db)
        .await?;
    for row in rows {
        if let Some(id) = row
            .v0
            .strip_prefix("agent:")
            .and_then(|s| Uuid::parse_str(s).ok())
        {
            out.entry(id)
                .or_default()
                .push(format!("{}:{}", row.v2, row.v3));
        }
    }
    for caps in out.values_mut() {
        caps.sort();
    }
    Ok(out)
}

/// Inserts the `g` rule giving `subject` (`user:<id>` or `key:<id>`) the role named `role` in
/// `org_id`, inside the caller's transaction.
pub async fn grant_in_tx(
    db: &impl ConnectionTrait,
    subject: String,
    org_id: Uuid,
    role: &str,
) -> Result<RuleChange, sea_orm::DbErr> {
    casbin_rule::Entity::insert(rule_row(
        "g",
        &[&subject, &role_subject(role), &domain(org_id)],
    ))
    .exec(db)
    .await?;
    Ok(RuleChange::Grant {
        subject,
        org_id,
        role: role.to_owned(),
    })
}

/// Deletes the `g` rule giving `subject` the role named `role` in `org_id`, inside the
/// caller's transaction.
pub async fn revoke_in_tx(
    db: &impl ConnectionTrait,
    subject: String,
    org_id: Uuid,
    role: &str,
) -> Result<RuleChange, sea_orm::DbErr> {
    casbin_rule::Entity::delete_many()
        .filter(casbin_rule::Column::Ptype.eq("g"))
        .filter(casbin_rule::Column::V0.eq(subject.clone()))
        .filter(casbin_rule::Column::V1.eq(role_subject(role)))
        .filter(casbin_rule::Column::V2.eq(domain(org_id)))
        .exec(db)
        .await?;
    Ok(RuleChange::Revoke {
        subject,
        org_id,
        role: role.to_owned(),
    })
}

/// Replaces a custom role's permission rules inside the caller's transaction; apply the
/// returned change with [`Rbac::apply`] after the commit. An empty list removes them all
/// (role deleted). Errors: database errors.
pub async fn set_role_permissions_in_tx(
    db: &impl ConnectionTrait,
    role: &str,
    org_id: Uuid,
    permissions: &[String],
) -> Result<RuleChange, sea_orm::DbErr> {
    let subject = role_subject(role);
    casbin_rule::Entity::delete_many()
        .filter(casbin_rule::Column::Ptype.eq("p"))
        .filter(casbin_rule::Column::V0.eq(subject.clone()))
        .filter(casbin_rule::Column::V1.eq(domain(org_id)))
        .exec(db)
        .await?;
    let rows: Vec<_> = permissions
        .iter()
        .filter_map(|p| permission_rule(&subject, org_id, p))
        .map(|r| {
            let refs: Vec<&str> = r.iter().map(String::as_str).collect();
            rule_row("p", &refs)
        })
        .collect();
    if !rows.is_empty() {
        casbin_rule::Entity::insert_many(rows).exec(db).await?;
    }
    Ok(RuleChange::RolePermissions {
        role: role.to_owned(),
        org_id,
        permissions: permissions.to_vec(),
    })
}

/// The stored permissions of each custom role in `roles` of `org_id`, sorted, read from
/// `casbin_rule` (the one source of truth). Roles without rules map to an empty list.
pub async fn custom_role_permissions(
    db: &impl ConnectionTrait,
    org_id: Uuid,
    roles: &[String],
) -> Result<std::collections::HashMap<String, Vec<String>>, sea_orm::DbErr> {
    let mut out: std::collections::HashMap<String, Vec<String>> =
        roles.iter().map(|r| (r.clone(), Vec::new())).collect();
    if roles.is_empty() {
        return Ok(out);
    }
    let rows = casbin_rule::Entity::find()
        .filter(casbin_rule::Column::Ptype.eq("p"))
        .filter(casbin_rule::Column::V0.is_in(roles.iter().map(|r| role_subject(r))))
        .filter(casbin_rule::Column::V1.eq(domain(org_id)))
        .all(db)
        .await?;
    for row in rows {
        if let Some(name) = row.v0.strip_prefix("role:") {
            out.entry(name.to_owned())
                .or_default()
                .push(format!("{}:{}", row.v2, row.v3));
        }
    }
    for perms in out.values_mut() {
        perms.sort();
    }
    Ok(out)
}

/// Deletes every rule in an org's domain, inside the caller's transaction.
pub async fn drop_domain_in_tx(
    db: &impl ConnectionTrait,
    org_id: Uuid,
) -> Result<RuleChange, sea_orm::DbErr> {
    let dom = domain(org_id);
    casbin_rule::Entity::delete_many()
        .filter(
            sea_orm::Condition::any()
                .add(
                    casbin_rule::Column::Ptype
                        .eq("g")
                        .and(casbin_rule::Column::V2.eq(dom.clone())),
                )
                .add(
                    casbin_rule::Column::Ptype
                        .eq("p")
                        .and(casbin_rule::Column::V1.eq(dom)),
                ),
        )
        .exec(db)
        .await?;
    Ok(RuleChange::DropDomain { org_id })
}

async fn sync_builtin_roles(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    let tx = db.begin().await?;
    casbin_rule::Entity::delete_many()
        .filter(casbin_rule::Column::Ptype.eq("p"))
        .filter(casbin_rule::Column::V1.eq("*"))
        .exec(&tx)
        .await?;
    let rows: Vec<_> = BUILTIN_ROLES
        .iter()
        .flat_map(|(role, perms)| {
            perms.iter().map(move |p| {
                let (obj, act) = p.split_once(':').expect("permission is object:action");
                rule_row("p", &[&role.subject(), "*", obj, act])
            })
        })
        .collect();
    casbin_rule::Entity::insert_many(rows).exec(&tx).await?;
    tx.commit().await
}

fn rule_row(ptype: &str, values: &[&str]) -> casbin_rule::ActiveModel {
    let v = |i: usize| Set(values.get(i).map(|s| (*s).to_owned()).unwrap_or_default());
    casbin_rule::ActiveModel {
        id: NotSet,
        ptype: Set(ptype.to_owned()),
        v0: v(0),
        v1: v(1),
        v2: v(2),
        v3: v(3),
        v4: v(4),
        v5: v(5),
    }
}

fn row_values(row: &casbin_rule::Model) -> Vec<String> {
    let mut v = vec![
        row.v0.clone(),
        row.v1.clone(),
        row.v2.clone(),
        row.v3.clone(),
        row.v4.clone(),
        row.v5.clone(),
    ];
    while v.last().is_some_and(String::is_empty) {
        v.pop();
    }
    v
}

/// A casbin [`Adapter`] storing rules in the `casbin_rule` table through SeaORM.
pub struct SeaOrmAdapter {
    db: DatabaseConnection,
    filtered: bool,
}

impl SeaOrmAdapter {
    /// An adapter over `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            filtered: false,
        }
    }
}

fn adapter_err(e: sea_orm::DbErr) -> casbin::Error {
    casbin::error::AdapterError(Box::new(e)).into()
}

fn load_row(m: &mut dyn Model, row: &casbin_rule::Model) {
    let sec = if row.ptype.starts_with('g') { "g" } else { "p" };
    m.add_policy(sec, &row.ptype, row_values(row));
}

fn matches_filter(values: &[String], filter: &[&str]) -> bool {
    filter
        .iter()
        .enumerate()
        .all(|(i, f)| f.is_empty() || values.get(i).map(String::as_str) == Some(*f))
}

#[async_trait]
impl Adapter for SeaOrmAdapter {
    async fn load_policy(&mut self, m: &mut dyn Model) -> casbin::Result<()> {
        self.filtered = false;
        for row in casbin_rule::Entity::find()
            .all(&self.db)
            .await
            .map_err(adapter_err)?
        {
            load_row(m, &row);
        }
        Ok(())
    }

    async fn load_filtered_policy<'a>(
        &mut self,
        m: &mut dyn Model,
        f: Filter<'a>,
    ) -> casbin::Result<()> {
        for row in casbin_rule::Entity::find()
            .all(&self.db)
            .await
            .map_err(adapter_err)?
        {
            let values = row_values(&row);
            let filter = if row.ptype.starts_with('g') {
                &f.g
            } else {
                &f.p
            };
            if matches_filter(&values, filter) {
                load_row(m, &row);
            } else {
                self.filtered = true;
            }
        }
        Ok(())
    }

    async fn save_policy(&mut self, m: &mut dyn Model) -> casbin::Result<()> {
        let mut rows = Vec::new();
        for sec in ["p", "g"] {
            if let Some(map) = m.get_model().get(sec) {
                for (ptype, ast) in map {
                    for rule in ast.get_policy() {
                        let refs: Vec<&str> = rule.iter().map(String::as_str).collect();
                        rows.push(rule_row(ptype, &refs));
                    }
                }
            }
        }
        let tx = self.db.begin().await.map_err(adapter_err)?;
        casbin_rule::Entity::delete_many()
            .exec(&tx)
            .await
            .map_err(adapter_err)?;
        if !rows.is_empty() {
            casbin_rule::Entity::insert_many(rows)
                .exec(&tx)
                .await
                .map_err(adapter_err)?;
        }
        tx.commit().await.map_err(adapter_err)
    }

    async fn clear_policy(&mut self) -> casbin::Result<()> {
        casbin_rule::Entity::delete_many()
            .exec(&self.db)
            .await
            .map_err(adapter_err)?;
        Ok(())
    }

    fn is_filtered(&self) -> bool {
        self.filtered
    }

    async fn add_policy(
        &mut self,
        _sec: &str,
        ptype: &str,
        rule: Vec<String>,
    ) -> casbin::Result<bool> {
        self.add_policies(_sec, ptype, vec![rule]).await
    }

    async fn add_policies(
        &mut self,
        _sec: &str,
        ptype: &str,
        rules: Vec<Vec<String>>,
    ) -> casbin::Result<bool> {
        if rules.is_empty() {
            return Ok(true);
        }
        let rows = rules.iter().map(|r| {
            let refs: Vec<&str> = r.iter().map(String::as_str).collect();
            rule_row(ptype, &refs)
        });
        casbin_rule::Entity::insert_many(rows)
            .exec(&self.db)
            .await
            .map_err(adapter_err)?;
        Ok(true)
    }

    async fn remove_policy(
        &mut self,
        sec: &str,
        ptype: &str,
        rule: Vec<String>,
    ) -> casbin::Result<bool> {
        self.remove_policies(sec, ptype, vec![rule]).await
    }

    async fn remove_policies(
        &mut self,
        _sec: &str,
        ptype: &str,
        rules: Vec<Vec<String>>,
    ) -> casbin::Result<bool> {
        let tx = self.db.begin().await.map_err(adapter_err)?;
        let mut removed = 0;
        for rule in rules {
            let mut q =
                casbin_rule::Entity::delete_many().filter(casbin_rule::Column::Ptype.eq(ptype));
            for (i, col) in value_columns().into_iter().enumerate() {
                q = q.filter(col.eq(rule.get(i).cloned().unwrap_or_default()));
            }
            removed += q.exec(&tx).await.map_err(adapter_err)?.rows_affected;
        }
        tx.commit().await.map_err(adapter_err)?;
        Ok(removed > 0)
    }

    async fn remove_filtered_policy(
        &mut self,
        _sec: &str,
        ptype: &str,
        field_index: usize,
        field_values: Vec<String>,
    ) -> casbin::Result<bool> {
        let mut q = casbin_rule::Entity::delete_many().filter(casbin_rule::Column::Ptype.eq(ptype));
        for (offset, value) in field_values.into_iter().enumerate() {
            if let Some(col) = value_columns().get(field_index + offset)
                && !value.is_empty()
            {
                q = q.filter(col.eq(value));
            }
        }
        Ok(q.exec(&self.db).await.map_err(adapter_err)?.rows_affected > 0)
    }
}

fn value_columns() -> [casbin_rule::Column; 6] {
    use casbin_rule::Column::*;
    [V0, V1, V2, V3, V4, V5]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_table_is_consistent() {
        for (role, perms) in BUILTIN_ROLES {
            for p in *perms {
                assert!(
                    PERMISSIONS.iter().any(|(n, _)| n == p),
                    "{role:?} has unknown {p}"
                );
            }
        }
        // Each role holds a subset of the permissions of every role above it.
        for pair in Role::ALL.windows(2) {
            for p in pair[1].permissions() {
                assert!(
                    pair[0].permissions().contains(p),
                    "{:?} lacks {p} of {:?}",
                    pair[0],
                    pair[1]
                );
            }
        }
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
    }

    #[tokio::test]
    async fn agent_capabilities_are_decided_by_casbin() {
        let model = DefaultModel::from_str(MODEL).await.unwrap();
        let enforcer = Enforcer::new(model, casbin::MemoryAdapter::default())
            .await
            .unwrap();
        let rbac = Rbac {
            enforcer: Arc::new(RwLock::new(enforcer)),
        };
        let (agent, org, other_org) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let stored = vec!["desktop:input.pointer".to_owned()];
        assert!(
            rbac.agent_allows(agent, org, &stored, "desktop:input.pointer")
                .await
        );
        assert!(
            !rbac
                .agent_allows(agent, org, &stored, "desktop:shell")
                .await
        );
        // The same rule does not hold in another org.
        assert!(
            !rbac
                .agent_allows(agent, other_org, &[], "desktop:input.pointer")
                .await
        );
        // A change made elsewhere (stored differs) is picked up before deciding.
        assert!(
            !rbac
                .agent_allows(agent, org, &[], "desktop:input.pointer")
                .await
        );
        assert!(CAPABILITIES.iter().all(|(c, _)| is_capability(c)));
        assert!(!is_capability("desktop:everything"));
    }

    #[test]
    fn filters_match_by_position() {
        let v = vec![
            "user:1".to_owned(),
            "role:owner".to_owned(),
            "org:a".to_owned(),
        ];
        assert!(matches_filter(&v, &["", "", "org:a"]));
        assert!(!matches_filter(&v, &["user:2"]));
    }
}
