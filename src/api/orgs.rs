//! `/v1/orgs`: organizations. Non-members get 404 for an org and everything in it.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Header, Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{BearerAuth, OrgAuth, Tag, access, etag, parse_if_match};
use crate::{
    api_errors,
    auth::rbac,
    domain::{orgs, page::PageRequest},
    entity::organization,
    http::middleware::ClientInfo,
    state::AppState,
};

/// An organization, with the caller's role in it.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct OrgOut {
    /// Organization id (UUIDv7).
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Version for optimistic concurrency: the `ETag` is `"<version>"`; send it back in `If-Match`.
    pub version: i64,
    /// The caller's role in this organization: a built-in role (`owner`, `admin`, `operator`,
    /// `viewer`) or a custom role's name.
    pub role: String,
    /// Creation time (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// Last change (RFC 3339, UTC).
    pub updated_at: DateTime<Utc>,
}

impl OrgOut {
    fn new(o: organization::Model, role: String) -> Self {
        Self {
            id: o.id,
            name: o.name,
            version: o.version,
            role,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// `orgs.create` request.
#[derive(Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct OrgIn {
    /// Display name, 1–200 characters, not blank, no control characters.
    #[oai(validator(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    ))]
    pub name: String,
}

/// `orgs.update` request: every field optional.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct OrgPatch {
    /// New display name, 1–200 characters, not blank, no control characters.
    #[oai(validator(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    ))]
    pub name: Option<String>,
}

/// A page of organizations.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct OrgList {
    /// The organizations, oldest first.
    pub items: Vec<OrgOut>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `orgs.create` success.
#[derive(ApiResponse)]
pub enum OrgCreated {
    /// Created; the caller is its owner.
    #[oai(status = 201)]
    Created(
        Json<OrgOut>,
        /// The new organization's URL.
        #[oai(header = "Location")]
        String,
        /// Current version, for `If-Match`.
        #[oai(header = "ETag")]
        String,
    ),
}

/// One organization.
#[derive(ApiResponse)]
pub enum OrgResponse {
    /// The organization.
    #[oai(status = 200)]
    Ok(
        Json<OrgOut>,
        /// Current version, for `If-Match`.
        #[oai(header = "ETag")]
        String,
    ),
}

/// A page of organizations.
#[derive(ApiResponse)]
pub enum OrgListResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<OrgList>),
}

/// Deleted.
#[derive(ApiResponse)]
pub enum OrgDeleted {
    /// The organization, its memberships and its policies are gone; its audit rows are kept.
    #[oai(status = 204)]
    NoContent,
}

api_errors!(OrgCreateErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable
});
api_errors!(OrgListErrors {
    BadRequest,
    Unauthorized,
    Forbidden
});
api_errors!(OrgGetErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound
});
api_errors!(OrgDeleteErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict
});
api_errors!(OrgUpdateErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    PreconditionFailed,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable
});

/// The organization operations.
pub struct OrgsApi;

#[OpenApi(tag = "Tag::Organizations")]
impl OrgsApi {
    /// Create an organization
    ///
    /// The caller becomes its owner. A user may have created at most `max_orgs_per_user`
    /// organizations that still exist (`409 quota_exceeded`, naming the limit in `limit`).
    /// Audited as `org.created`.
    #[oai(path = "/v1/orgs", method = "post", operation_id = "orgs.create")]
    async fn create(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: BearerAuth,
        body: Json<OrgIn>,
    ) -> Result<OrgCreated, OrgCreateErrors> {
        let user_id = auth.user()?;
        let org = orgs::create(
            &state.db,
            &state.rbac,
            user_id,
            &body.name,
            state.config.max_orgs_per_user,
            &client.audit().as_actor(user_id),
        )
        .await?;
        let (location, tag) = (format!("/v1/orgs/{}", org.id), etag(org.version));
        Ok(OrgCreated::Created(
            Json(OrgOut::new(org, rbac::Role::Owner.as_str().to_owned())),
            location,
            tag,
        ))
    }

    /// List the caller's organizations
    ///
    /// Cursor-paginated, oldest first, each with the caller's role.
    #[oai(path = "/v1/orgs", method = "get", operation_id = "orgs.list")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// Page size, 1–200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` from the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<OrgListResponse, OrgListErrors> {
        let page = PageRequest::new(limit.0, cursor.0.as_deref())?;
        let page = orgs::list_for_user(&state.db, auth.user()?, page).await?;
        Ok(OrgListResponse::Ok(Json(OrgList {
            items: page
                .items
                .into_iter()
                .map(|(o, r)| OrgOut::new(o, r))
                .collect(),
            next_cursor: page.next_cursor,
        })))
    }

    /// Get an organization
    ///
    /// Needs `orgs:read`. Sends `ETag`.
    #[oai(path = "/v1/orgs/:org_id", method = "get", operation_id = "orgs.get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
    ) -> Result<OrgResponse, OrgGetErrors> {
        let access = access(&state, &auth, org_id.0, rbac::ORGS_READ).await?;
        let tag = etag(access.org.version);
        Ok(OrgResponse::Ok(
            Json(OrgOut::new(access.org, access.role)),
            tag,
        ))
    }

    /// Update an organization
    ///
    /// Needs `orgs:write`. Send `If-Match` with the `ETag` you read to avoid overwriting a
    /// concurrent change (`412 precondition_failed` when it moved on). Audited as `org.updated`.
    #[oai(
        path = "/v1/orgs/:org_id",
        method = "patch",
        operation_id = "orgs.update"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// The `ETag` last read (`"<version>"`); optional, `*` matches any.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: Json<OrgPatch>,
    ) -> Result<OrgResponse, OrgUpdateErrors> {
        let access = access(&state, &auth, org_id.0, rbac::ORGS_WRITE).await?;
        let version = parse_if_match(if_match.0.as_deref());
        let ctx = client.audit().as_subject(&access.subject);
        let org = orgs::update(
            &state.db,
            &state.auth_cache,
            org_id.0,
            body.name.as_deref(),
            version,
            &ctx,
        )
        .await?;
        let tag = etag(org.version);
        Ok(OrgResponse::Ok(Json(OrgOut::new(org, access.role)), tag))
    }

    /// Delete an organization
    ///
    /// Needs `orgs:delete` (owners). Removes its memberships, policies, agents, sessions
    /// (with their event logs, commands and artifacts, bytes included) and jobs; audit rows
    /// are kept. Refused with 409 `org_has_live_sessions` while a session is live or a job
    /// (such as a desktop release) has yet to run. Audited as `org.deleted`.
    #[oai(
        path = "/v1/orgs/:org_id",
        method = "delete",
        operation_id = "orgs.delete"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
    ) -> Result<OrgDeleted, OrgDeleteErrors> {
        let access = access(&state, &auth, org_id.0, rbac::ORGS_DELETE).await?;
        orgs::delete(
            &state.db,
            &state.rbac,
            state.blobs.as_ref(),
            org_id.0,
            &client.audit().as_subject(&access.subject),
        )
        .await?;
        Ok(OrgDeleted::NoContent)
    }
}

/// An organization name as a team would pick it.
impl poem_openapi::types::Example for OrgIn {
    fn example() -> Self {
        Self {
            name: "Analytical Engines Ltd".into(),
        }
    }
}
