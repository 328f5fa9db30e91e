//! The enforcer: [`Rbac`], one casbin enforcer over the casbin [`MODEL`], shared by all
//! requests. It is loaded from `casbin_rule` at start-up, decides requests ([`Rbac::allows`],
//! [`Rbac::role_allows`], [`Rbac::agent_allows`]) and mirrors committed rule changes in memory
//! ([`Rbac::apply`]).
//!
//! Not here: writing rules to the database (`policies`), the adapter it loads them through
//! (`adapter`), the permission catalog (`catalog`).

use std::sync::Arc;

use casbin::{CoreApi, DefaultModel, Enforcer, MgmtApi};
use sea_orm::DatabaseConnection;
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::auth::cache::AuthCache;

use super::{
    adapter::SeaOrmAdapter,
    catalog::Role,
    policies::{
        RuleChange, agent_subject, domain, permission_rule, role_subject, sync_builtin_roles,
    },
};

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

/// The enforcer, shared by all requests, with the node's [`AuthCache`], which
/// [`Rbac::apply`] invalidates after each committed change.
#[derive(Clone)]
pub struct Rbac {
    enforcer: Arc<RwLock<Enforcer>>,
    cache: Arc<AuthCache>,
}

impl Rbac {
    /// Writes the built-in role rules (replacing older ones in one transaction), then loads
    /// every rule into a casbin enforcer; committed changes will invalidate `cache`. Errors:
    /// database or model errors.
    pub async fn load(db: &DatabaseConnection, cache: Arc<AuthCache>) -> anyhow::Result<Self> {
        sync_builtin_roles(db).await?;
        let model = DefaultModel::from_str(MODEL).await?;
        let mut enforcer = Enforcer::new(model, SeaOrmAdapter::new(db.clone())).await?;
        // Rules are written by the domain inside its own transactions; the enforcer only
        // mirrors them in memory.
        enforcer.enable_auto_save(false);
        Ok(Self {
            enforcer: Arc::new(RwLock::new(enforcer)),
            cache,
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
    ///
    /// [`custom_role_permissions`]: super::custom_role_permissions
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

    /// The node's auth cache.
    pub fn cache(&self) -> &AuthCache {
        &self.cache
    }

    /// Mirrors committed changes in memory and invalidates what they touch in the node's
    /// [`AuthCache`] (other nodes hear of them from the database's triggers). Failures of the
    /// in-memory casbin update are logged (the database holds the truth and authorization
    /// reads memberships from it).
    pub async fn apply(&self, changes: Vec<RuleChange>) {
        for change in &changes {
            if let Some(i) = change.invalidation() {
                self.cache.invalidate(i);
            }
        }
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
    ///
    /// [`agent_capabilities`]: super::agent_capabilities
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::rbac::catalog::{CAPABILITIES, is_capability};

    #[tokio::test]
    async fn agent_capabilities_are_decided_by_casbin() {
        let model = DefaultModel::from_str(MODEL).await.unwrap();
        let enforcer = Enforcer::new(model, casbin::MemoryAdapter::default())
            .await
            .unwrap();
        let rbac = Rbac {
            enforcer: Arc::new(RwLock::new(enforcer)),
            cache: Arc::new(AuthCache::new(std::time::Duration::from_secs(60), true)),
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
}
