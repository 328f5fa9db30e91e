//! [`ProblemCode`]: the one list of every `code` an RFC 9457 problem of this API can carry.
//! [`AppError`](super::AppError) and every problem built outside it take a `ProblemCode`, so a
//! code the list lacks does not compile; the spec publishes the list as the `ProblemCode` enum
//! (`Problem.code`), and the TypeScript SDK's `ProblemCode` union is generated from it.
//! Adding a code is a compatible change (clients must expect new ones); renaming or removing
//! one is breaking.

use std::{borrow::Cow, sync::LazyLock};

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde_json::Value;

/// Declares [`ProblemCode`] with its wire name and meaning: the meaning is the variant's doc
/// and a line of the spec's `ProblemCode` description.
macro_rules! problem_codes {
    ($($variant:ident = $name:literal : $meaning:literal,)+) => {
        /// A problem's stable, snake_case `code` (see the module doc).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ProblemCode {
            $(#[doc = $meaning] $variant,)+
        }

        impl ProblemCode {
            /// Every code with its meaning, in the order the spec lists them.
            pub const ALL: &'static [(ProblemCode, &'static str)] = &[$((ProblemCode::$variant, $meaning),)+];

            /// The wire name, e.g. `permission_denied`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ProblemCode::$variant => $name,)+
                }
            }
        }
    };
}

problem_codes! {
    MalformedJson = "malformed_json": "400: the body is not valid JSON.",
    InvalidParameter = "invalid_parameter": "400: a path, query or header parameter, or a body field's type, is wrong; `errors` names it.",
    InvalidState = "invalid_state": "400: the OIDC `state` is unknown, used or expired.",
    WebsocketUpgradeRequired = "websocket_upgrade_required": "400: `desktop.connect` was not a WebSocket handshake offering the `binary` subprotocol.",
    InvalidGrant = "invalid_grant": "400: the OIDC provider refused the authorization code.",
    BadRequest = "bad_request": "400: the request is malformed in a way no other code names.",
    InvalidContentLength = "invalid_content_length": "400: the `Content-Length` header is not a number.",
    ValidationFailed = "validation_failed": "422: fields break the rules; `errors` names each one.",
    InvalidToken = "invalid_token": "401: the bearer credential is missing, malformed, expired or revoked (RFC 6750 `invalid_token`).",
    InvalidCredentials = "invalid_credentials": "401: wrong e-mail or password.",
    InvalidRefreshToken = "invalid_refresh_token": "401: the refresh token is unknown, expired or was already used (a reuse revokes its family).",
    InvalidVerificationToken = "invalid_verification_token": "401: the e-mail verification or password reset token is unknown or expired.",
    InvalidTicket = "invalid_ticket": "401: the one-time ticket is unknown, used, expired or bound to something else.",
    PermissionDenied = "permission_denied": "403: the caller's role lacks a permission; `missing_permission` names it.",
    CapabilityDenied = "capability_denied": "403: the session's agent lacks a capability; `missing_permission` names it.",
    RegistrationClosed = "registration_closed": "403: this server does not take self-registration.",
    UserTokenRequired = "user_token_required": "403: an API key was sent to an account operation, which needs a user's access token.",
    InvitationEmailMismatch = "invitation_email_mismatch": "403: the invitation was sent to another e-mail address.",
    EmailNotVerified = "email_not_verified": "403: verify the account's e-mail first.",
    OriginNotAllowed = "origin_not_allowed": "403: the browser `Origin` is neither this server's nor in `cors_allowed_origins`.",
    NotFound = "not_found": "404: no such resource, or not in an organization the caller belongs to.",
    RouteNotFound = "route_not_found": "404: no operation has this path (check the `/v1` prefix and the spelling).",
    MethodNotAllowed = "method_not_allowed": "405: the path exists but not with this method; `Allow` lists the methods.",
    EmailTaken = "email_taken": "409: an account already uses this e-mail.",
    EmailAlreadyVerified = "email_already_verified": "409: the e-mail is already verified.",
    LastOwner = "last_owner": "409: the organization would be left without an owner.",
    AlreadyMember = "already_member": "409: the user is already a member.",
    AgentNameTaken = "agent_name_taken": "409: another agent of the organization has this name.",
    RoleNameTaken = "role_name_taken": "409: another role of the organization has this name.",
    RoleLimitReached = "role_limit_reached": "409: the organization has as many custom roles as it may.",
    RoleReadOnly = "role_read_only": "409: built-in roles cannot be changed or deleted.",
    RoleInUse = "role_in_use": "409: members or API keys still hold the role.",
    InvalidTransition = "invalid_transition": "409: the session's status does not allow this; `current_status` says which it is.",
    SessionNotLive = "session_not_live": "409: the session has ended; `current_status` says how.",
    SessionNotRunning = "session_not_running": "409: the session's desktop is not running yet or any more.",
    OrgHasLiveSessions = "org_has_live_sessions": "409: stop the organization's sessions first.",
    AgentHasLiveSessions = "agent_has_live_sessions": "409: stop the agent's sessions first.",
    CommandNotDispatched = "command_not_dispatched": "409: only a dispatched command takes a result.",
    ExecutorBuiltin = "executor_builtin": "409: the built-in executor performs this session's commands; an external executor may not claim them.",
    JobNotDead = "job_not_dead": "409: only a job in the dead-letter queue can be retried.",
    IdempotencyKeyInUse = "idempotency_key_in_use": "409: a request with this `Idempotency-Key` is still being processed; retry after `Retry-After`.",
    IdempotencyKeyReused = "idempotency_key_reused": "422: this `Idempotency-Key` was used with a different request.",
    QuotaExceeded = "quota_exceeded": "409 or 429: a limit was reached; `limit` names the setting and `limit_value` its value.",
    InvitationUsed = "invitation_used": "410: the invitation was already accepted.",
    InvitationRevoked = "invitation_revoked": "410: the invitation was revoked.",
    InvitationExpired = "invitation_expired": "410: the invitation expired.",
    PreconditionFailed = "precondition_failed": "412: `If-Match` does not match the current `ETag`; read again and retry.",
    PreconditionRequired = "precondition_required": "428: this operation needs `If-Match`.",
    PayloadTooLarge = "payload_too_large": "413: the body is larger than `body_limit_bytes`.",
    UnsupportedMediaType = "unsupported_media_type": "415: send `Content-Type: application/json`.",
    RateLimited = "rate_limited": "429: over a rate limit; retry after `Retry-After` seconds.",
    LoginThrottled = "login_throttled": "429: too many failed logins for this account; retry after `Retry-After` seconds.",
    SessionLimitReached = "session_limit_reached": "429: the organization runs as many sessions as it may.",
    InternalError = "internal_error": "500: a bug or an infrastructure failure; `error_id` is in the server log.",
    RequestTimeout = "request_timeout": "503: the request took longer than `request_timeout_s`; retry.",
    DatabaseUnavailable = "database_unavailable": "503: the database is unreachable; retry.",
    IdpUnavailable = "idp_unavailable": "503: the OpenID provider is unreachable; retry.",
    BlobStoreUnavailable = "blob_store_unavailable": "503: the artifact store is unreachable; retry.",
    DesktopUnreachable = "desktop_unreachable": "503: the session's desktop does not answer; retry.",
    RuntimeUnavailable = "runtime_unavailable": "503: the desktop runtime cannot take the request; retry.",
}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ProblemCode {
    type Err = ();

    /// The code named `s`, if the list has it.
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL
            .iter()
            .map(|(c, _)| *c)
            .find(|c| c.as_str() == s)
            .ok_or(())
    }
}

/// The spec's description of `ProblemCode`: what the list is, then one line per code.
static DESCRIPTION: LazyLock<String> = LazyLock::new(|| {
    let mut d = String::from(
        "A problem's stable, snake_case code: switch on it. New codes may be added in a \
         minor release (handle an unknown one like its HTTP status); none is ever renamed \
         or removed within `/v1`.\n",
    );
    for (code, meaning) in ProblemCode::ALL {
        d.push_str(&format!("\n- `{}`: {meaning}", code.as_str()));
    }
    d
});

impl Type for ProblemCode {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "ProblemCode".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(Self::name().into_owned())
    }

    fn register(registry: &mut Registry) {
        registry.create_schema::<Self, _>(Self::name().into_owned(), |_| MetaSchema {
            description: Some(DESCRIPTION.as_str()),
            enum_items: Self::ALL
                .iter()
                .map(|(c, _)| Value::String(c.as_str().into()))
                .collect(),
            ..MetaSchema::new("string")
        });
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for ProblemCode {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        let value = value.unwrap_or_default();
        match value.as_str().map(str::parse) {
            Some(Ok(code)) => Ok(code),
            _ => Err(ParseError::expected_type(value)),
        }
    }
}

impl ToJSON for ProblemCode {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.as_str().into()))
    }
}

#[cfg(test)]
mod tests {
    use super::ProblemCode;

    #[test]
    fn names_are_unique_snake_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for (code, meaning) in ProblemCode::ALL {
            let name = code.as_str();
            assert!(seen.insert(name), "{name} listed twice");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name} is not snake_case"
            );
            assert_eq!(name.parse::<ProblemCode>(), Ok(*code));
            assert!(meaning.len() > 10, "{name} has no meaning");
        }
        assert!("permision_denied".parse::<ProblemCode>().is_err());
    }
}
