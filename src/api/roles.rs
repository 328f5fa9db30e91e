//! `/v1/permissions` and `/v1/orgs/{org_id}/roles`: the permission catalog and the org's
//! built-in (read-only) and custom roles.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Header, Path},
    payload::Json,
};
use uuid::Uuid;

use super::{OrgAuth, Tag, access, etag, required_if_match};
use crate::{
    api_errors,
    app::AppState,
    auth::rbac,
    domain::roles::{self, RoleView},
    http::middleware::ClientInfo,
};

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
#[oai(skip_serializing_if_is_none)]
pub struct RoleIn {
    /// Name, unique in the organization: 1–64 characters `[a-z0-9_-]` starting with a letter,
    /// not a built-in role's name.
    #[oai(validator(pattern = "^[a-z][a-z0-9_-]{0,63}$"))]
    pub name: String,
    /// What the role is for (at most 500 characters).
    #[oai(validator(max_length = 500))]
    pub description: Option<String>,
    /// Permissions from the catalog (`permissions.list`); each must also be held by the caller.
    #[oai(validator(max_items = 64))]
    pub permissions: Vec<String>,
}

/// `roles.update` request: replaces description and permissions.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RoleUpdate {
    /// What the role is for (at most 500 characters); absent clears it.
    #[oai(validator(max_length = 500))]
    pub description: Option<String>,
    /// The complete new permission list; each must be in the catalog and held by the caller.
    #[oai(validator(max_items = 64))]
    pub permissions: Vec<String>,
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
    /// the caller (`422` naming `permissions[i]` otherwise, as for unknown ones). The name must
    /// not be a built-in role's (`422`) nor taken (`409 role_name_taken`); at most 100 custom
    /// roles per organization (`409 role_limit_reached`). Audited as `role.created`.
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
            &b.permissions,
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
    /// Audited as `role.updated`.
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
            a,
            &role.0,
            b.description.as_deref().unwrap_or(""),
            &b.permissions,
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
