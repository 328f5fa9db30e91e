//! `/v1/orgs/{org_id}/api-keys`: org-scoped API keys for agent runners and integrations,
//! accepted as `Authorization: Bearer ad_…` or `X-API-Key: ad_…`.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{OrgAuth, Tag, access};
use crate::{
    api_errors,
    auth::rbac,
    domain::{api_keys, page::PageRequest},
    entity::api_key,
    http::middleware::ClientInfo,
    state::AppState,
};

/// An API key, without its secret.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ApiKeyOut {
    /// Key id (UUIDv7); also the actor id of its audit events.
    pub id: Uuid,
    /// Human label.
    pub name: String,
    /// The key's public prefix: the key is `ad_<prefix>_<secret>`.
    pub prefix: String,
    /// The role it acts with, in this organization only.
    pub role: String,
    /// The member who created it (absent when another API key did).
    pub created_by: Option<Uuid>,
    /// Creation time (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// Last authenticated use (RFC 3339, UTC), recorded at most once a minute.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Expiry (RFC 3339, UTC); absent: never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Revocation time (RFC 3339, UTC); a revoked key answers 401.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<api_key::Model> for ApiKeyOut {
    fn from(k: api_key::Model) -> Self {
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            role: k.role,
            created_by: k.created_by,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A new API key with its secret, shown once.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ApiKeyCreatedOut {
    /// The key's fields.
    #[oai(flatten)]
    pub key: ApiKeyOut,
    /// The full key `ad_<prefix>_<secret>`. Shown only in this response: store it now. Send
    /// it as `Authorization: Bearer <key>` or `X-API-Key: <key>`.
    pub secret: String,
}

/// `api_keys.create` request.
#[derive(Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct ApiKeyIn {
    /// Human label, 1–200 characters, not blank, no control characters.
    #[oai(validator(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    ))]
    pub name: String,
    /// The role the key acts with: built-in or custom. It may not hold a permission the
    /// caller's role lacks (`422` naming `role`).
    #[oai(validator(pattern = "^[a-z][a-z0-9_-]{0,63}$"))]
    pub role: String,
    /// Expiry (RFC 3339), in the future; absent: never expires.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A page of keys.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ApiKeyList {
    /// The keys, newest first (revoked and expired ones included).
    pub items: Vec<ApiKeyOut>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Created.
#[derive(ApiResponse)]
pub enum ApiKeyCreated {
    /// Created; the secret is in the body, once.
    #[oai(status = 201)]
    Created(
        Json<ApiKeyCreatedOut>,
        /// The key's URL.
        #[oai(header = "Location")]
        String,
    ),
}

/// A page of keys.
#[derive(ApiResponse)]
pub enum ApiKeyListResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<ApiKeyList>),
}

/// Revoked.
#[derive(ApiResponse)]
pub enum ApiKeyRevoked {
    /// The key is revoked (also when it already was).
    #[oai(status = 204)]
    NoContent,
}

api_errors!(ApiKeyCreateErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable
});
api_errors!(ApiKeyReadErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound
});

/// The API key operations.
pub struct ApiKeysApi;

#[OpenApi(tag = "Tag::ApiKeys")]
impl ApiKeysApi {
    /// Create an API key
    ///
    /// Needs `api_keys:write`. Returns the key `ad_<prefix>_<secret>` once; only its SHA-256
    /// is stored. The key acts in this organization only, with `role`, which may not hold a
    /// permission the caller lacks (`422`), then or later: when its creator (the member, or
    /// the API key, that made it) no longer holds every permission of `role` (demoted,
    /// removed, left, erased, a custom role edited), the key is revoked. An organization
    /// holds at most `max_api_keys_per_org` keys neither revoked nor expired (`409
    /// quota_exceeded`, naming the limit in `limit`). Audited as `api_key.created`.
    #[oai(
        path = "/v1/orgs/:org_id/api-keys",
        method = "post",
        operation_id = "api_keys.create"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        body: Json<ApiKeyIn>,
    ) -> Result<ApiKeyCreated, ApiKeyCreateErrors> {
        let a = access(&state, &auth, org_id.0, rbac::API_KEYS_WRITE).await?;
        let ctx = client.audit().as_subject(&a.subject);
        let org = a.org_id;
        let b = body.0;
        let limits = api_keys::Limits {
            max_live_per_org: state.config.max_api_keys_per_org,
        };
        let created = api_keys::create(
            &state.db,
            &state.rbac,
            a,
            &limits,
            &b.name,
            &b.role,
            b.expires_at,
            &ctx,
        )
        .await?;
        let location = format!("/v1/orgs/{org}/api-keys/{}", created.key.id);
        Ok(ApiKeyCreated::Created(
            Json(ApiKeyCreatedOut {
                key: created.key.into(),
                secret: created.secret,
            }),
            location,
        ))
    }

    /// List API keys
    ///
    /// Needs `api_keys:read`. Newest first, revoked and expired keys included; never the
    /// secrets.
    #[oai(
        path = "/v1/orgs/:org_id/api-keys",
        method = "get",
        operation_id = "api_keys.list"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Page size, 1–200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` from the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<ApiKeyListResponse, ApiKeyReadErrors> {
        let a = access(&state, &auth, org_id.0, rbac::API_KEYS_READ).await?;
        let page = PageRequest::new(limit.0, cursor.0.as_deref())?;
        let page = api_keys::list(&state.db, a.org_id, page).await?;
        Ok(ApiKeyListResponse::Ok(Json(ApiKeyList {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        })))
    }

    /// Revoke an API key
    ///
    /// Needs `api_keys:write`, and every permission of the key's role (`members:owner` for
    /// an `owner` key): `403 permission_denied` names the first one the caller lacks. A key
    /// may always revoke itself. Every later request with the key answers 401, on every node
    /// (each node's cache hears of the revocation through the event bus); the keys and
    /// pending invitations it made are revoked with it. Revoking a revoked key succeeds.
    /// Audited as `api_key.revoked`.
    #[oai(
        path = "/v1/orgs/:org_id/api-keys/:key_id",
        method = "delete",
        operation_id = "api_keys.revoke"
    )]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Key id.
        key_id: Path<Uuid>,
    ) -> Result<ApiKeyRevoked, ApiKeyReadErrors> {
        let a = access(&state, &auth, org_id.0, rbac::API_KEYS_WRITE).await?;
        let ctx = client.audit().as_subject(&a.subject);
        api_keys::revoke(&state.db, &state.rbac, &state.auth_cache, a, key_id.0, &ctx).await?;
        Ok(ApiKeyRevoked::NoContent)
    }
}

/// A key for an agent runner, acting as `operator`.
impl poem_openapi::types::Example for ApiKeyIn {
    fn example() -> Self {
        Self {
            name: "invoice-clerk runner".into(),
            role: "operator".into(),
            expires_at: None,
        }
    }
}
