//! `/v1/permissions` and `/v1/orgs/{org_id}/roles`: the permission catalog and the org's
//! built-in (read-only) and custom roles.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Header, Path},
    payload::Json,
};
use uuid::Uuid;

use super::{OrgAuth, Tag, access, etag, required_if_match};
use crate::{
    api_errors,
    auth::rbac,
    domain::roles::{self, RoleView},
    http::middleware::ClientInfo,
    state::AppState,
};

/// A permission of the catalog (`permissions.list` describes each).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// `orgs:read`.
    #[oai(rename = "orgs:read")]
    OrgsRead,
    /// `orgs:write`.
    #[oai(rename = "orgs:write")]
    OrgsWrite,
    /// `orgs:delete`.
    #[oai(rename = "orgs:delete")]
    OrgsDelete,
    /// `members:read`.
    #[oai(rename = "members:read")]
    MembersRead,
    /// `members:write`.
    #[oai(rename = "members:write")]
    MembersWrite,
    /// `members:owner`.
    #[oai(rename = "members:owner")]
    MembersOwner,
    /// `audit:read`.
    #[oai(rename = "audit:read")]
    AuditRead,
    /// `agents:read`.
    #[oai(rename = "agents:read")]
    AgentsRead,
    /// `agents:write`.
    #[oai(rename = "agents:write")]
    AgentsWrite,
    /// `sessions:read`.
    #[oai(rename = "sessions:read")]
    SessionsRead,
    /// `sessions:write`.
    #[oai(rename = "sessions:write")]
    SessionsWrite,
    /// `commands:write`.
    #[oai(rename = "commands:write")]
    CommandsWrite,
    /// `commands:execute`.
    #[oai(rename = "commands:execute")]
    CommandsExecute,
    /// `desktop:control`.
    #[oai(rename = "desktop:control")]
    DesktopControl,
    /// `jobs:read`.
    #[oai(rename = "jobs:read")]
    JobsRead,
    /// `jobs:write`.
    #[oai(rename = "jobs:write")]
    JobsWrite,
    /// `roles:read`.
    #[oai(rename = "roles:read")]
    RolesRead,
    /// `roles:write`.
    #[oai(rename = "roles:write")]
    RolesWrite,
    /// `api_keys:read`.
    #[oai(rename = "api_keys:read")]
    ApiKeysRead,
    /// `api_keys:write`.
    #[oai(rename = "api_keys:write")]
    ApiKeysWrite,
}

impl Permission {
    /// Every permission, in catalog order.
    pub const ALL: [Permission; 20] = [
        Self::OrgsRead,
        Self::OrgsWrite,
        Self::OrgsDelete,
        Self::MembersRead,
        Self::MembersWrite,
        Self::MembersOwner,
        Self::AuditRead,
        Self::AgentsRead,
        Self::AgentsWrite,
        Self::SessionsRead,
        Self::SessionsWrite,
        Self::CommandsWrite,
        Self::CommandsExecute,
        Self::DesktopControl,
        Self::JobsRead,
        Self::JobsWrite,
        Self::RolesRead,
        Self::RolesWrite,
        Self::ApiKeysRead,
        Self::ApiKeysWrite,
    ];

    /// The catalog name (`object:action`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrgsRead => "orgs:read",
            Self::OrgsWrite => "orgs:write",
            Self::OrgsDelete => "orgs:delete",
            Self::MembersRead => "members:read",
            Self::MembersWrite => "members:write",
            Self::MembersOwner => "members:owner",
            Self::AuditRead => "audit:read",
            Self::AgentsRead => "agents:read",
            Self::AgentsWrite => "agents:write",
            Self::SessionsRead => "sessions:read",
            Self::SessionsWrite => "sessions:write",
            Self::CommandsWrite => "commands:write",
            Self::CommandsExecute => "commands:execute",
            Self::DesktopControl => "desktop:control",
            Self::JobsRead => "jobs:read",
            Self::JobsWrite => "jobs:write",
            Self::RolesRead => "roles:read",
            Self::RolesWrite => "roles:write",
            Self::ApiKeysRead => "api_keys:read",
            Self::ApiKeysWrite => "api_keys:write",
        }
    }
}

/// A permission of the catalog.
#[derive(Object)]
pub struct PermissionOut {
    /// `object:action`, e.g. `sessions:write`.
    pub name: String,
    /// What it allows.
    pub description: String,
}

/// The permission catalog.
#[derive(Object)]
pub struct PermissionList {
    /// Every permission a role can hold.
    pub items: Vec<PermissionOut>,
}

/// A role: built-in or custom.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RoleOut {
    /// The role's name, as given to members, invitations and API keys.
    pub name: String,
    /// What the role is for.
    pub description: String,
    /// Built-in roles (`owner`, `admin`, `operator`, `viewer`) are read-only.
    pub builtin: bool,
    /// The permissions it holds, sorted (see `permissions.list`).
    pub permissions: Vec<String>,
    /// Version for optimistic concurrency (custom roles; 0 for built-in ones): the `ETag` is
    /// `"<version>"`; `roles.update` needs it in `If-Match`.
    pub version: i64,
    /// Creation time of a custom role (RFC 3339, UTC).
    pub created_at: Option<DateTime<Utc>>,
    /// Last change of a custom role (RFC 3339, UTC).
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<RoleView> for RoleOut {
    fn from(r: RoleView) -> Self {
        Self {
            name: r.name,
            description: r.description,
            builtin: r.builtin,
            permissions: r.permissions,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The org's roles.
#[derive(Object)]
pub struct RoleList {
    /// Built-in roles first (most powerful first), then custom roles by name.
    pub items: Vec<RoleOut>,
}

/// `roles.create` request.
#[derive(Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct RoleIn {
    /// Name, unique in the organization: 1–64 characters `[a-z0-9_-]` starting with a letter.
    /// A built-in role's name is taken (`409 role_name_taken`).
    #[oai(validator(pattern = "^[a-z][a-z0-9_-]{0,63}$"))]
    pub name: String,
    /// What the role is for: at most 500 characters, no control characters other than tab
    /// and line breaks.
    #[oai(validator(
        max_length = 500,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
    ))]
    pub description: Option<String>,
    /// Permissions from the catalog (`permissions.list`); each must also be held by the
    /// caller (`422` naming `permissions[i]` otherwise).
    #[oai(validator(max_items = 64))]
    pub permissions: Vec<Permission>,
}

/// `roles.update` request: replaces description and permissions.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RoleUpdate {
    /// What the role is for (as in `roles.create`); absent clears it.
    #[oai(validator(
        max_length = 500,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
    ))]
    pub description: Option<String>,
    /// The complete new permission list; each must be held by the caller (`422` naming
    /// `permissions[i]` otherwise).
    #[oai(validator(max_items = 64))]
    pub permissions: Vec<Permission>,
}

/// The catalog.
#[derive(ApiResponse)]
pub enum PermissionListResponse {
    /// The catalog.
    #[oai(status = 200)]
    Ok(Json<PermissionList>),
}

/// The roles.
#[derive(ApiResponse)]
pub enum RoleListResponse {
    /// The roles.
    #[oai(status = 200)]
    Ok(Json<RoleList>),
}

/// One role.
#[derive(ApiResponse)]
pub enum RoleResponse {
    /// The role.
    #[oai(status = 200)]
    Ok(
        Json<RoleOut>,
        /// Current version, for `If-Match`.
        #[oai(header = "ETag")]
        String,
    ),
}

/// Created.
#[derive(ApiResponse)]
pub enum RoleCreated {
    /// Created.
    #[oai(status = 201)]
    Created(
        Json<RoleOut>,
        /// The new role's URL.
        #[oai(header = "Location")]
        String,
        /// Current version, for `If-Match`.
        #[oai(header = "ETag")]
        String,
    ),
}

/// Deleted.
#[derive(ApiResponse)]
pub enum RoleDeleted {
    /// The role is gone.
    #[oai(status = 204)]
    NoContent,
}

api_errors!(PermissionListErrors { BadRequest });
api_errors!(RoleReadErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound
});
api_errors!(RoleCreateErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable
});
api_errors!(RoleUpdateErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PreconditionFailed,
    PreconditionRequired,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable
});
api_errors!(RoleDeleteErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict
});

fn names(perms: &[Permission]) -> Vec<String> {
    perms.iter().map(|p| p.as_str().to_owned()).collect()
}

/// The role operations.
pub struct RolesApi;

#[OpenApi(tag = "Tag::Roles")]
impl RolesApi {
    /// List the permission catalog
    ///
    /// Every permission (`object:action`) that built-in and custom roles are made of, with
    /// what it allows. Public: no credentials needed.
    #[oai(
        path = "/v1/permissions",
        method = "get",
        operation_id = "permissions.list"
    )]
    async fn permissions(&self) -> Result<PermissionListResponse, PermissionListErrors> {
        Ok(PermissionListResponse::Ok(Json(PermissionList {
            items: rbac::PERMISSIONS
                .iter()
                .map(|(name, description)| PermissionOut {
                    name: (*name).to_owned(),
                    description: (*description).to_owned(),
                })
                .collect(),
        })))
    }

    /// List roles
    ///
    /// Needs `roles:read`. The four built-in roles, then the organization's custom roles.
    #[oai(
        path = "/v1/orgs/:org_id/roles",
        method = "get",
        operation_id = "roles.list"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
    ) -> Result<RoleListResponse, RoleReadErrors> {
        let a = access(&state, &auth, org_id.0, rbac::ROLES_READ).await?;
        let items = roles::list(&state.db, a.org_id).await?;
        Ok(RoleListResponse::Ok(Json(RoleList {
            items: items.into_iter().map(Into::into).collect(),
        })))
    }

    /// Get a role
    ///
    /// Needs `roles:read`. A built-in or custom role by name. Sends `ETag`.
    #[oai(
        path = "/v1/orgs/:org_id/roles/:role",
        method = "get",
        operation_id = "roles.get"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Role name.
        role: Path<String>,
    ) -> Result<RoleResponse, RoleReadErrors> {
        let a = access(&state, &auth, org_id.0, rbac::ROLES_READ).await?;
        let view = roles::get(&state.db, a.org_id, &role.0).await?;
        let tag = etag(view.version);
        Ok(RoleResponse::Ok(Json(view.into()), tag))
    }

    /// Create a custom role
    ///
    /// Needs `roles:write`. A named set of permissions from the catalog; each must be held by
    /// the caller (`422` naming `permissions[i]` otherwise). A name that is taken, also by a
    /// built-in role, answers `409 role_name_taken`; at most 100 custom roles per organization
    /// (`409 role_limit_reached`). Audited as `role.created`.
    #[oai(
        path = "/v1/orgs/:org_id/roles",
        method = "post",
        operation_id = "roles.create"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        body: Json<RoleIn>,
    ) -> Result<RoleCreated, RoleCreateErrors> {
        let a = access(&state, &auth, org_id.0, rbac::ROLES_WRITE).await?;
        let ctx = client.audit().as_subject(&a.subject);
        let b = body.0;
        let org = a.org_id;
        let view = roles::create(
            &state.db,
            &state.rbac,
            a,
            &b.name,
            b.description.as_deref().unwrap_or(""),
            &names(&b.permissions),
            &ctx,
        )
        .await?;
        let location = format!("/v1/orgs/{org}/roles/{}", view.name);
        let tag = etag(view.version);
        Ok(RoleCreated::Created(Json(view.into()), location, tag))
    }

    /// Replace a custom role
    ///
    /// Needs `roles:write` and `If-Match` with the role's `ETag` (`428` without, `412` when
    /// stale). Replaces description and permissions; members and keys holding the role get the
    /// new permissions on their next request. Built-in roles are read-only (`409
    /// role_read_only`). The caller must hold every permission the role has now and will have.
    /// In the same transaction, API keys and pending invitations the change leaves beyond
    /// their grantor's rights are revoked (those made by holders of a shrunk role; those
    /// holding a grown role their maker lacks), each audited as `api_key.revoked` /
    /// `invitation.revoked` with reason `grantor_lost_rights`. Audited as `role.updated`.
    #[oai(
        path = "/v1/orgs/:org_id/roles/:role",
        method = "put",
        operation_id = "roles.update"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn update(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Role name.
        role: Path<String>,
        /// The `ETag` last read (`"<version>"`). Required: without it 428
        /// `precondition_required`.
        #[oai(name = "If-Match", validator(min_length = 1))]
        if_match: Header<String>,
        body: Json<RoleUpdate>,
    ) -> Result<RoleResponse, RoleUpdateErrors> {
        let a = access(&state, &auth, org_id.0, rbac::ROLES_WRITE).await?;
        let version = required_if_match(&if_match.0)?;
        let ctx = client.audit().as_subject(&a.subject);
        let b = body.0;
        let view = roles::update(
            &state.db,
            &state.rbac,
            &state.auth_cache,
            a,
            &role.0,
            b.description.as_deref().unwrap_or(""),
            &names(&b.permissions),
            version,
            &ctx,
        )
        .await?;
        let tag = etag(view.version);
        Ok(RoleResponse::Ok(Json(view.into()), tag))
    }

    /// Delete a custom role
    ///
    /// Needs `roles:write`. Refused with `409 role_in_use` while a member, a live API key or
    /// a pending invitation holds it, and `409 role_read_only` for built-in roles. Audited as
    /// `role.deleted`.
    #[oai(
        path = "/v1/orgs/:org_id/roles/:role",
        method = "delete",
        operation_id = "roles.delete"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Role name.
        role: Path<String>,
    ) -> Result<RoleDeleted, RoleDeleteErrors> {
        let a = access(&state, &auth, org_id.0, rbac::ROLES_WRITE).await?;
        let ctx = client.audit().as_subject(&a.subject);
        roles::delete(&state.db, &state.rbac, a, &role.0, &ctx).await?;
        Ok(RoleDeleted::NoContent)
    }
}

/// A role that may watch sessions and nothing else.
impl poem_openapi::types::Example for RoleIn {
    fn example() -> Self {
        Self {
            name: "auditor".into(),
            description: Some("Watches sessions and reads the audit log.".into()),
            permissions: vec![Permission::SessionsRead, Permission::AuditRead],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_enum_is_the_catalog() {
        let names: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
        let catalog: Vec<&str> = rbac::PERMISSIONS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, catalog);
    }
}
