//! The policy store: the casbin rules in `casbin_rule`, written inside the caller's
//! transaction ([`grant_in_tx`], [`revoke_in_tx`], [`set_role_permissions_in_tx`],
//! [`set_agent_capabilities_in_tx`], [`drop_domain_in_tx`]) and read back from it
//! ([`agent_capabilities`], [`custom_role_permissions`]); the built-in role rules written at
//! start-up; the [`RuleChange`]s to mirror in memory after a commit; and the casbin names of
//! subjects (`user:`, `key:`, `role:`, `agent:`) and domains (`org:`).
//!
//! Not here: the in-memory enforcer that applies the changes and decides requests
//! (`enforcer`), the casbin adapter (`adapter`), the permission catalog (`catalog`).

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait,
    sea_query::ExprTrait,
};
use uuid::Uuid;

use super::{
    adapter::rule_row,
    catalog::{BUILTIN_ROLES, Role},
};
use crate::{auth::cache::Invalidation, entity::casbin_rule};

// The casbin name of a built-in role lives with the other casbin names, so that `catalog`
// stays free of casbin.
impl Role {
    pub(super) fn subject(self) -> String {
        role_subject(self.as_str())
    }
}

/// The casbin subject of a role (`role:<name>`), built-in or custom.
pub(super) fn role_subject(name: &str) -> String {
    format!("role:{name}")
}

/// The casbin subject of an API key (`key:<id>`).
pub fn key_subject(key_id: Uuid) -> String {
    format!("key:{key_id}")
}

pub(super) fn domain(org_id: Uuid) -> String {
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

impl RuleChange {
    /// What the change invalidates in the [`AuthCache`](crate::auth::cache::AuthCache):
    /// a membership, a key, an org's custom roles or the whole org. Agents' capabilities are
    /// not cached.
    pub fn invalidation(&self) -> Option<Invalidation> {
        match self {
            RuleChange::Grant {
                subject, org_id, ..
            }
            | RuleChange::Revoke {
                subject, org_id, ..
            } => {
                let (kind, id) = subject.split_once(':')?;
                let id = Uuid::parse_str(id).ok()?;
                match kind {
                    "user" => Some(Invalidation::Member {
                        org_id: *org_id,
                        user_id: id,
                    }),
                    "key" => Some(Invalidation::Key(id)),
                    _ => None,
                }
            }
            RuleChange::DropDomain { org_id } => Some(Invalidation::Org(*org_id)),
            RuleChange::RolePermissions { org_id, .. } => Some(Invalidation::Roles(*org_id)),
            RuleChange::AgentCapabilities { .. } => None,
        }
    }
}

pub(super) fn agent_subject(agent_id: Uuid) -> String {
    format!("agent:{agent_id}")
}

/// The `p` rule `subject, org:<id>, object, action` for `object:action`.
pub(super) fn permission_rule(
    subject: &str,
    org_id: Uuid,
    permission: &str,
) -> Option<Vec<String>> {
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

/// Replaces the agent's capability rules inside the caller's transaction; apply the returned
/// change with [`Rbac::apply`] after the commit. An empty list removes them all (agent
/// deleted). Errors: database errors.
///
/// [`Rbac::apply`]: super::Rbac::apply
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
///
/// [`Rbac::apply`]: super::Rbac::apply
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

pub(super) async fn sync_builtin_roles(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
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
