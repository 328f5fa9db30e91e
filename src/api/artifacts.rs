//! `/v1/orgs/{org_id}/sessions/{session_id}/artifacts`: the binary results of a session
//! (screenshots) — their list with sizes and hashes, and each one's bytes, served with its
//! media type, a strong `ETag` and long private caching (the bytes never change).

use chrono::{DateTime, Utc};
use poem::{IntoResponse, Response, http::StatusCode, web::Data};
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Header, Path, Query},
    payload::{Binary, Json},
    registry::{MetaResponses, Registry},
};
use uuid::Uuid;

use super::{OrgAuth, Tag, access, if_none_match};
use crate::{
    api_errors,
    auth::rbac,
    domain::{
        artifacts::{self, ArtifactKind},
        page::PageRequest,
    },
    entity::{SessionId, artifact},
    http::middleware::OwnCacheControl,
    state::AppState,
};

/// `Cache-Control` of an artifact's bytes (RFC 9111 §5.2.2, RFC 8246 `immutable`): they are
/// content-addressed and never change, so the caller's own cache may keep them for a year
/// without revalidating; `private`, as they are the org's.
pub const ARTIFACT_CACHE_CONTROL: &str = "private, max-age=31536000, immutable";

/// What an artifact is.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum ArtifactKindName {
    /// A capture of the session's desktop (`image/png`).
    Screenshot,
}

impl From<ArtifactKind> for ArtifactKindName {
    fn from(k: ArtifactKind) -> Self {
        match k {
            ArtifactKind::Screenshot => Self::Screenshot,
        }
    }
}

/// An artifact: a binary result of a session, such as a screenshot. Its bytes are at
/// `artifacts.get`.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ArtifactOut {
    /// Artifact id (UUIDv7; creation order).
    pub id: Uuid,
    /// The session it came from.
    pub session_id: Uuid,
    /// The command that produced it (a `screenshot` command), when there was one.
    pub command_id: Option<Uuid>,
    /// What it is.
    pub kind: ArtifactKindName,
    /// Its media type (RFC 6838), e.g. `image/png`: the `Content-Type` of its bytes.
    pub media_type: String,
    /// Size of the content (bytes).
    pub bytes: i64,
    /// Image width (pixels), for images.
    pub width: Option<i32>,
    /// Image height (pixels), for images.
    pub height: Option<i32>,
    /// SHA-256 of the content, lower-case hex (64 characters). Its bytes are served with
    /// `ETag: "<sha256>"`.
    pub sha256: String,
    /// When it was stored (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
}

impl From<artifact::Model> for ArtifactOut {
    fn from(a: artifact::Model) -> Self {
        Self {
            id: a.id,
            session_id: a.session_id,
            command_id: a.command_id,
            kind: a.kind.into(),
            media_type: a.media_type,
            bytes: a.bytes,
            width: a.width,
            height: a.height,
            sha256: a.sha256,
            created_at: a.created_at,
        }
    }
}

/// A page of a session's artifacts.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ArtifactList {
    /// The artifacts, oldest first.
    pub items: Vec<ArtifactOut>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A page of artifacts.
#[derive(ApiResponse)]
pub enum ArtifactListResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<ArtifactList>),
}

/// What the spec says `artifacts.get` answers on success. Only its metadata is used: the
/// handler answers with [`ArtifactContent`], whose `Content-Type` is the artifact's own.
#[derive(ApiResponse)]
#[allow(dead_code)]
enum ArtifactContentSpec {
    /// The artifact's bytes. `Content-Type` is its `media_type` (`image/png` for
    /// screenshots).
    #[oai(status = 200, content_type = "image/png")]
    Ok(
        Binary<Vec<u8>>,
        /// Size of the content (bytes), as `bytes` in its metadata.
        #[oai(header = "Content-Length")]
        u64,
        /// Strong entity tag (RFC 9110 §8.8.3): the content's SHA-256, lower-case hex, in
        /// quotes (`"<sha256>"`). Send it back in `If-None-Match` to revalidate.
        #[oai(header = "ETag")]
        String,
        /// `private, max-age=31536000, immutable` (RFC 9111 §5.2.2, RFC 8246): the bytes
        /// never change, so the caller's own cache may keep them for a year; shared caches
        /// may not. (Every other `/v1` response is `no-store`.)
        #[oai(header = "Cache-Control")]
        String,
    ),
    /// `If-None-Match` matched the artifact's `ETag` (RFC 9110 §15.4.5): no body; use the
    /// cached copy.
    #[oai(status = 304)]
    NotModified(
        /// The artifact's strong entity tag, `"<sha256>"`.
        #[oai(header = "ETag")]
        String,
        /// `private, max-age=31536000, immutable`, as on 200.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

/// `artifacts.get` success: the bytes with their own media type, or 304. Both keep their
/// `Cache-Control` past the edge middleware (see [`OwnCacheControl`]).
pub enum ArtifactContent {
    /// 200 with the bytes.
    Ok {
        /// `Content-Type`: the artifact's media type.
        media_type: String,
        /// The strong `ETag`, quoted.
        etag: String,
        /// The content.
        data: bytes::Bytes,
    },
    /// 304 Not Modified.
    NotModified {
        /// The strong `ETag`, quoted.
        etag: String,
    },
}

impl ApiResponse for ArtifactContent {
    fn meta() -> MetaResponses {
        ArtifactContentSpec::meta()
    }

    fn register(registry: &mut Registry) {
        ArtifactContentSpec::register(registry);
    }
}

impl IntoResponse for ArtifactContent {
    fn into_response(self) -> Response {
        let (status, etag, body) = match self {
            Self::Ok {
                media_type,
                etag,
                data,
            } => (StatusCode::OK, etag, Some((media_type, data))),
            Self::NotModified { etag } => (StatusCode::NOT_MODIFIED, etag, None),
        };
        let builder = Response::builder()
            .status(status)
            .header("etag", etag)
            .header("cache-control", ARTIFACT_CACHE_CONTROL);
        let mut resp = match body {
            // The media type was checked when the artifact was stored (`type/subtype` of
            // token characters), so it is a valid header value.
            Some((media_type, data)) => builder.content_type(media_type).body(data),
            None => builder.finish(),
        };
        resp.set_data(OwnCacheControl);
        resp
    }
}

api_errors!(ArtifactReadErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound
});

/// The artifact operations.
pub struct ArtifactsApi;

#[OpenApi(tag = "Tag::Artifacts")]
impl ArtifactsApi {
    /// List a session's artifacts
    ///
    /// Needs `sessions:read`. The session's artifacts (screenshots), oldest first,
    /// cursor-paginated: id, kind, media type, size in bytes, size in pixels and SHA-256. The
    /// bytes themselves are at `artifacts.get`. 404 for a session of another organization.
    #[oai(
        path = "/v1/orgs/:org_id/sessions/:session_id/artifacts",
        method = "get",
        operation_id = "artifacts.list"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Session id.
        session_id: Path<Uuid>,
        /// Page size, 1–200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` from the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<ArtifactListResponse, ArtifactReadErrors> {
        let a = access(&state, &auth, org_id.0, rbac::SESSIONS_READ).await?;
        let page = PageRequest::new(limit.0, cursor.0.as_deref())?;
        let page = artifacts::list(&state.db, a.org(), SessionId(session_id.0), page).await?;
        Ok(ArtifactListResponse::Ok(Json(ArtifactList {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        })))
    }

    /// Download an artifact
    ///
    /// Needs `sessions:read`. The artifact's bytes, with its media type as `Content-Type`
    /// (`image/png` for screenshots), `Content-Length`, a strong `ETag` (`"<sha256>"`, RFC
    /// 9110 §8.8.3) and `Cache-Control: private, max-age=31536000, immutable` (the bytes
    /// never change). With `If-None-Match` matching the `ETag` → 304 without a body. 404 for
    /// an unknown artifact or one of another session or organization.
    #[oai(
        path = "/v1/orgs/:org_id/sessions/:session_id/artifacts/:artifact_id",
        method = "get",
        operation_id = "artifacts.get"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn get(
        &self,
        req: &poem::Request,
        state: Data<&AppState>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Session id.
        session_id: Path<Uuid>,
        /// Artifact id.
        artifact_id: Path<Uuid>,
        /// Entity tags of copies the caller has (RFC 9110 §13.1.2): `"<sha256>"`, a list, or
        /// `*`. A match (weak comparison) answers 304 without a body.
        #[oai(name = "If-None-Match")]
        _if_none_match: Header<Option<String>>,
    ) -> Result<ArtifactContent, ArtifactReadErrors> {
        let a = access(&state, &auth, org_id.0, rbac::SESSIONS_READ).await?;
        let (org, session) = (a.org(), SessionId(session_id.0));
        // Every `If-None-Match` field line counts (RFC 9110 §5.3), not just the first.
        let tags: Vec<&str> = req
            .headers()
            .get_all("if-none-match")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !tags.is_empty() {
            let meta = artifacts::get_meta(&state.db, org, session, artifact_id.0).await?;
            let etag = format!("\"{}\"", meta.sha256);
            if if_none_match(&tags.join(","), &etag) {
                return Ok(ArtifactContent::NotModified { etag });
            }
        }
        let (meta, data) =
            artifacts::fetch(&state.db, state.blobs.as_ref(), org, session, artifact_id.0).await?;
        Ok(ArtifactContent::Ok {
            media_type: meta.media_type,
            etag: format!("\"{}\"", meta.sha256),
            data,
        })
    }
}
