//! The v1 contract, declared with poem-openapi: one module per resource, each an `#[OpenApi]`
//! impl with explicit `operation_id`s (`resource.verb`, the SDK's method names), tags,
//! summaries, descriptions and exactly the error statuses each operation returns
//! ([`api_errors!`](crate::api_errors)). Handlers are thin: parse → authorize → call one
//! domain function → map. Request/response types (`XIn` / `XOut` / `XPatch`) are separate from
//! entities.

pub mod agents;
pub mod api_keys;
pub mod artifacts;
pub mod audit;
pub mod auth;
pub mod command_result;
pub mod commands;
pub mod desktop;
pub mod event_payloads;
pub mod events;
pub mod invitations;
pub mod jobs;
pub mod me;
pub mod members;
pub mod oidc;
pub mod orgs;
pub mod roles;
pub mod sessions;
pub mod spec;

use poem::Request;
use poem_openapi::{
    OpenApiService, SecurityScheme, Tags,
    auth::{ApiKey, Bearer},
};
use uuid::Uuid;

use crate::{
    auth::{Subject, principal::Principal},
    domain::orgs::{Access, authorize},
    error::{AppError, AppResult, ProblemCode},
    state::AppState,
};

/// Authorizes the caller (a member or an API key of the org) for `permission` in `org_id`
/// (404 for non-members and keys of other orgs, 403 `permission_denied`).
pub async fn access(
    state: &AppState,
    auth: &OrgAuth,
    org_id: Uuid,
    permission: &str,
) -> AppResult<Access> {
    let granted = authorize(&state.db, &state.rbac, auth.subject(), org_id, permission).await?;
    crate::http::idempotency::note_authorized(org_id, permission);
    Ok(granted)
}

/// `If-Match` for operations that require it (a missing header is answered 428 by
/// `problem::from_poem_error`): the version, or 428 `precondition_required` for an empty value
/// or `*`, which would defeat the check.
pub fn required_if_match(value: &str) -> AppResult<i64> {
    match value.trim() {
        "" | "*" => Err(AppError::if_match_required()),
        v => Ok(parse_if_match(Some(v)).unwrap_or(-1)),
    }
}

/// A JSON object in a request or response (`{}` when absent).
pub type JsonObject = std::collections::BTreeMap<String, serde_json::Value>;

/// Converts a stored JSON value to a [`JsonObject`] (non-objects become `{}`).
pub fn to_object(v: serde_json::Value) -> JsonObject {
    match v {
        serde_json::Value::Object(m) => m.into_iter().collect(),
        _ => JsonObject::new(),
    }
}

/// Deprecated operations of v1: each also carries `#[oai(deprecated)]` on its handler (a
/// contract test keeps the two in step). Their responses get `Deprecation`, `Sunset` and
/// `Link: rel="deprecation"` headers (see [`crate::http::deprecation`]).
pub const DEPRECATED_OPERATIONS: &[crate::http::deprecation::Deprecation] =
    &[auth::REGISTER_DEPRECATION, members::ADD_DEPRECATION];

/// A deprecation of the access-model fixes: deprecated 2026-11-29, sunset 2027-06-01 (six
/// months and a few days), `link` to the replacement's page in Swagger UI.
const fn deprecated_for_consent(
    method: &'static str,
    path: &'static str,
    link: &'static str,
) -> crate::http::deprecation::Deprecation {
    crate::http::deprecation::Deprecation {
        method,
        path,
        deprecated_at: 1_795_910_400, // 2026-11-29T00:00:00Z
        sunset_at: 1_811_808_000,     // 2027-06-01T00:00:00Z
        link,
    }
}

/// The deprecation table the middleware serves.
pub fn deprecations() -> Vec<crate::http::deprecation::Deprecation> {
    DEPRECATED_OPERATIONS.to_vec()
}

/// API version in the spec's `info.version`.
pub const API_VERSION: &str = "1.2.0";

/// Operation tags (groups in Swagger UI and the SDK).
#[derive(Tags)]
pub enum Tag {
    /// Register, log in, rotate and revoke tokens.
    Auth,
    /// The caller's own account.
    Me,
    /// Organizations: the tenant every other resource lives in.
    Organizations,
    /// Members of an organization and their roles.
    Members,
    /// The organization's audit log.
    Audit,
    /// AI agent definitions and their desktop capabilities.
    Agents,
    /// Sessions: one run of an agent on one desktop, and their lifecycle.
    Sessions,
    /// The ordered, replayable event log of a session, and its live streams.
    Events,
    /// Actions relayed to a session's desktop, and the executor's side of them.
    Commands,
    /// The live desktop of a session for the people watching: one-time tickets and the
    /// WebSocket that relays its RFB stream (view-only enforced by the desktop itself).
    Desktop,
    /// Binary results of a session (screenshots): their metadata, and their bytes with a
    /// strong `ETag` and long private caching.
    Artifacts,
    /// Background jobs: provisioning, stops, retries, the dead-letter queue.
    Jobs,
    /// The permission catalog and the organization's built-in and custom roles.
    Roles,
    /// Org-scoped API keys for agent runners and integrations.
    ApiKeys,
    /// Invitations to join an organization.
    Invitations,
}

/// RFC 6750 bearer credentials, sent as `Authorization: Bearer <credential>`, either of: an
/// access token (a JWT that lasts `access_token_ttl_s`, 15 min by default) from `auth.login` / `auth.refresh` / `auth.oidc_exchange`, for
/// every operation; or an API key `ad_<prefix>_<secret>` from `api_keys.create`, for its own
/// organization's operations only (account operations answer 403 `user_token_required`). In
/// Swagger UI, paste the `access_token` of `auth.login` without the `Bearer ` prefix.
#[derive(SecurityScheme)]
#[oai(
    ty = "bearer",
    bearer_format = "JWT access token, or API key ad_<prefix>_<secret>",
    checker = "check_bearer"
)]
pub struct BearerAuth(pub Subject);

impl BearerAuth {
    /// The calling user. An API key is refused with 403 `user_token_required`: account and
    /// cross-org operations need a user's access token.
    pub fn user(&self) -> AppResult<Uuid> {
        self.0.user_id().ok_or_else(|| {
            AppError::forbidden(
                ProblemCode::UserTokenRequired,
                "this operation needs a user's access token; API keys act only on their organization's resources",
            )
        })
    }
}

/// An API key `ad_<prefix>_<secret>` from `api_keys.create`, sent as `X-API-Key: <key>`. It
/// acts in its own organization only, with its role.
#[derive(SecurityScheme)]
#[oai(
    ty = "api_key",
    key_name = "X-API-Key",
    key_in = "header",
    checker = "check_api_key"
)]
pub struct ApiKeyAuth(pub Subject);

/// What org operations accept: a bearer credential (JWT or API key) or `X-API-Key`. The
/// scheme is chosen by the header present (`Authorization` wins when both are), so a bad
/// credential is answered with its own 401 detail (poem-openapi's derived enum would report
/// the last scheme's "missing" error instead).
pub enum OrgAuth {
    /// `Authorization: Bearer …`.
    Bearer(BearerAuth),
    /// `X-API-Key: ad_…`.
    ApiKey(ApiKeyAuth),
}

impl<'a> poem_openapi::ApiExtractor<'a> for OrgAuth {
    const TYPES: &'static [poem_openapi::ApiExtractorType] =
        &[poem_openapi::ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut poem_openapi::registry::Registry) {
        BearerAuth::register(registry);
        ApiKeyAuth::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        let mut schemes = BearerAuth::security_schemes();
        schemes.extend(ApiKeyAuth::security_schemes());
        schemes
    }

    async fn from_request(
        req: &'a Request,
        body: &mut poem::RequestBody,
        param_opts: poem_openapi::ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let headers = req.headers();
        if !headers.contains_key(poem::http::header::AUTHORIZATION)
            && headers.contains_key("x-api-key")
        {
            ApiKeyAuth::from_request(req, body, param_opts)
                .await
                .map(OrgAuth::ApiKey)
        } else {
            BearerAuth::from_request(req, body, param_opts)
                .await
                .map(OrgAuth::Bearer)
        }
    }
}

impl OrgAuth {
    /// The authenticated caller.
    pub fn subject(&self) -> &Subject {
        match self {
            OrgAuth::Bearer(b) => &b.0,
            OrgAuth::ApiKey(k) => &k.0,
        }
    }
}

/// The principal the request-path middleware resolved (see `http::principal`): the one
/// credential check of the request. The security schemes' checkers only read it.
fn principal(req: &Request) -> poem::Result<Subject> {
    let principal = req.extensions().get::<Principal>().ok_or_else(|| {
        poem::Error::from(AppError::Internal(anyhow::anyhow!(
            "the principal middleware is not installed"
        )))
    })?;
    Ok(principal.require()?)
}

async fn check_bearer(req: &Request, _: Bearer) -> poem::Result<Subject> {
    principal(req)
}

async fn check_api_key(req: &Request, _: ApiKey) -> poem::Result<Subject> {
    principal(req)
}

impl From<AppError> for poem::Error {
    fn from(err: AppError) -> Self {
        use poem::IntoResponse;
        poem::Error::from_response(err.into_response())
    }
}

/// A strong ETag for a version: `"<version>"`.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// Parses `If-Match` (RFC 9110 §13.1.1): `None` for absent or `*`; a quoted (optionally
/// weak) version otherwise. Anything else can never match: `Some(-1)` (→ 412).
pub fn parse_if_match(value: Option<&str>) -> Option<i64> {
    let v = value?.trim();
    if v == "*" {
        return None;
    }
    let v = v.strip_prefix("W/").unwrap_or(v);
    Some(v.trim_matches('"').parse().unwrap_or(-1))
}

/// Whether `If-None-Match` (RFC 9110 §13.1.2) matches `etag` (a quoted strong tag): `*`, or
/// a listed entity tag equal to it under the weak comparison (a `W/` prefix ignored).
pub fn if_none_match(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// Every resource's operations, in tag order.
pub type V1Apis = (
    auth::AuthApi,
    me::MeApi,
    orgs::OrgsApi,
    members::MembersApi,
    audit::AuditApi,
    agents::AgentsApi,
    sessions::SessionsApi,
    events::EventsApi,
    commands::CommandsApi,
    desktop::DesktopApi,
    artifacts::ArtifactsApi,
    jobs::JobsApi,
    roles::RolesApi,
    api_keys::ApiKeysApi,
    invitations::InvitationsApi,
    oidc::OidcApi,
);

/// The document's `info.description`: what the API is, its conventions, and a first session
/// from an empty server in Swagger UI (`/docs/`), step by step.
const DESCRIPTION: &str = "\
Control plane for AI desktop agents: accounts and organizations, agents and what each may do \
on a desktop, sessions and their desktops, commands, and the ordered event log of everything \
that happened.

## Getting started (in this page)

1. **Register**: *Auth* → `POST /v1/auth/signup` → *Try it out* → *Execute* (the example \
body works; use your own e-mail to get the verification link). 202 returns the account; \
logging in does not wait for the verification.
2. **Log in**: `POST /v1/auth/login` with the same e-mail and password. Copy `access_token` \
from the response.
3. **Authorize**: the *Authorize* button (top right) → `BearerAuth` → paste the token (without \
`Bearer `) → *Authorize*. Every request from the page now carries it; it lasts 15 minutes by default \
(`auth.refresh` gives a new one).
4. **Create an organization**: *Organizations* → `POST /v1/orgs`. Copy its `id`: every \
resource lives in one, and the next steps take it as `org_id`.
5. **Define an agent**: *Agents* → `POST /v1/orgs/{org_id}/agents`. Copy its `id`.
6. **Start a session**: *Sessions* → `POST /v1/orgs/{org_id}/sessions`, with the agent's \
`id` pasted as `agent_id` in the body. \
It answers 202 with the session `pending`; follow it with `GET …/sessions/{session_id}` or \
the event stream (*Events*) until it is `running`, then send it commands (*Commands*) and \
watch its desktop (*Desktop*, or the web console at `/console/`).

Agent runners use an API key (*ApiKeys* → `api_keys.create`) instead of a user's token, as \
`Authorization: Bearer ad_…` or `X-API-Key: ad_…`. The TypeScript SDK `@agentdesk/client` is \
generated from this document.

## Conventions

- Errors are RFC 9457 `application/problem+json` with a stable `code` (see `ProblemCode`) \
and, for invalid fields, `errors` naming each one.
- Lists are cursor-paginated (`limit`, `cursor` → `next_cursor`); the event log pages by \
`after_seq` → `next_after_seq`.
- Retry a `POST` safely with an `Idempotency-Key` header; update with `If-Match` and the \
`ETag` you read.
- Times are RFC 3339 UTC; ids are UUIDv7; durations say their unit (`_s`, `_ms`).";

/// The whole v1 API as one poem-openapi service (no state needed: the spec can be generated
/// without a database).
pub fn service() -> OpenApiService<V1Apis, ()> {
    OpenApiService::new(
        (
            auth::AuthApi,
            me::MeApi,
            orgs::OrgsApi,
            members::MembersApi,
            audit::AuditApi,
            agents::AgentsApi,
            sessions::SessionsApi,
            events::EventsApi,
            commands::CommandsApi,
            desktop::DesktopApi,
            artifacts::ArtifactsApi,
            jobs::JobsApi,
            roles::RolesApi,
            api_keys::ApiKeysApi,
            invitations::InvitationsApi,
            oidc::OidcApi,
        ),
        "Agentdesk API",
        API_VERSION,
    )
    .description(DESCRIPTION)
    .server("/")
}

/// The v1 spec as YAML, exactly as committed in `openapi/v1.yaml` (see [`spec`] for the
/// order of its tags and security schemes).
pub fn spec_yaml() -> String {
    spec::yaml()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_parsing() {
        assert_eq!(parse_if_match(None), None);
        assert_eq!(parse_if_match(Some("*")), None);
        assert_eq!(parse_if_match(Some("\"3\"")), Some(3));
        assert_eq!(parse_if_match(Some("W/\"3\"")), Some(3));
        assert_eq!(parse_if_match(Some("nonsense")), Some(-1));
    }

    #[test]
    fn if_none_match_uses_the_weak_comparison() {
        let tag = "\"abc\"";
        for yes in [
            "\"abc\"",
            "*",
            "W/\"abc\"",
            "\"x\", \"abc\"",
            " \"x\",W/\"abc\" ",
        ] {
            assert!(if_none_match(yes, tag), "{yes}");
        }
        for no in ["", "\"abd\"", "abc", "\"x\", \"y\""] {
            assert!(!if_none_match(no, tag), "{no}");
        }
    }
}
