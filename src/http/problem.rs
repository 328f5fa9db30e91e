//! RFC 9457 problem details: the [`Problem`] body every error carries, the request context
//! it reads (`instance`, `request_id`), the [`api_errors!`] macro that declares each
//! operation's error responses, and [`from_poem_error`] for errors raised outside our
//! handlers (poem-openapi parse errors, unknown routes, wrong methods).

use poem::{IntoResponse, Response, http::StatusCode};
use poem_openapi::Object;

use crate::error::{AppError, FieldError, ProblemCode};

/// Media type of every error body (RFC 9457 §3).
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

tokio::task_local! {
    static REQUEST: RequestContext;
}

/// What the request-id middleware records about the current request; read when a problem
/// is built so every body carries `instance` and `request_id`.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    /// The `X-Request-Id` in force (accepted from the client if sane, else generated).
    pub request_id: String,
    /// The request path, used as the problem `instance`.
    pub path: String,
    /// The contract, for answers that name what the spec says (405 `Allow`, path parameter
    /// names).
    pub contract: Option<std::sync::Arc<super::validation::Contract>>,
    /// The request carried an `X-API-Key` header (whatever its value): an operation that
    /// takes only a user's bearer token then answers 403 `user_token_required`, as
    /// `Authorization: Bearer ad_…` does, rather than a 401 that looks like a dead key.
    pub api_key_header: bool,
}

/// Runs `fut` with `ctx` as the current request context.
pub async fn with_request_context<F: Future>(ctx: RequestContext, fut: F) -> F::Output {
    REQUEST.scope(ctx, fut).await
}

/// The current request context, if inside a request.
pub fn current_request() -> Option<RequestContext> {
    REQUEST.try_with(|c| c.clone()).ok()
}

/// One invalid field in a request.
#[derive(Clone, Debug, Object)]
pub struct ProblemFieldError {
    /// The JSON field or parameter name, e.g. `password` or `limit`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An RFC 9457 problem details object, with Agentdesk's extension members.
#[derive(Clone, Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Problem {
    /// A URI identifying the problem type: `urn:agentdesk:problem:<code>` (RFC 9457 §3.1.1).
    #[oai(rename = "type")]
    pub type_: String,
    /// A short, human-readable summary of the problem type (the HTTP reason phrase).
    pub title: String,
    /// The HTTP status code (RFC 9457 §3.1.2).
    pub status: u16,
    /// A human-readable explanation of this occurrence.
    pub detail: String,
    /// The request path this occurrence happened on (RFC 9457 §3.1.5).
    pub instance: Option<String>,
    /// Stable, snake_case machine-readable code, e.g. `permission_denied`: switch on it.
    pub code: ProblemCode,
    /// The request's `X-Request-Id`, for support.
    pub request_id: Option<String>,
    /// On 5xx only: an id also written to the server log with the cause.
    pub error_id: Option<String>,
    /// On validation problems: the fields at fault.
    pub errors: Option<Vec<ProblemFieldError>>,
    /// On `permission_denied`: the permission the caller's role lacks, e.g. `members:write`;
    /// on `capability_denied`: the capability the agent lacks, e.g. `desktop:shell`.
    pub missing_permission: Option<String>,
    /// On `invalid_transition` and `session_not_live`: the session's current status.
    pub current_status: Option<String>,
    /// On `quota_exceeded`: the setting whose limit was reached, e.g. `max_orgs_per_user`.
    pub limit: Option<String>,
    /// On `quota_exceeded`: that setting's value.
    pub limit_value: Option<u64>,
}

/// Response headers a problem may need beside its body.
#[derive(Clone, Debug, Default)]
pub struct ProblemHeaders {
    /// `WWW-Authenticate` on 401 (RFC 6750 §3).
    pub www_authenticate: Option<String>,
    /// `Retry-After` (s) on 429/503.
    pub retry_after: Option<String>,
    /// `RateLimit-Policy` on 429.
    pub ratelimit_policy: Option<String>,
    /// `RateLimit` on 429.
    pub ratelimit: Option<String>,
}

impl Problem {
    /// A problem with the context's `instance` and `request_id` filled in.
    pub fn new(status: StatusCode, code: ProblemCode, detail: impl Into<String>) -> Self {
        let ctx = current_request();
        Self {
            type_: format!("urn:agentdesk:problem:{}", code.as_str()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            instance: ctx.as_ref().map(|c| c.path.clone()),
            code,
            request_id: ctx.map(|c| c.request_id),
            error_id: None,
            errors: None,
            missing_permission: None,
            current_status: None,
            limit: None,
            limit_value: None,
        }
    }

    fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        if !errors.is_empty() {
            self.errors = Some(
                errors
                    .into_iter()
                    .map(|e| ProblemFieldError {
                        field: e.field,
                        message: e.message,
                    })
                    .collect(),
            );
        }
        self
    }

    /// A 500 problem: logs `cause` with a fresh `error_id`, returns a body without internals.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        let error_id = uuid::Uuid::now_v7().to_string();
        tracing::error!(error_id = %error_id, error = %cause, "internal error");
        let mut p = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ProblemCode::InternalError,
            "an internal error occurred; quote the error_id when reporting it",
        );
        p.error_id = Some(error_id);
        p
    }

    /// Renders as an `application/problem+json` response with `headers`.
    pub fn into_response_with(self, headers: ProblemHeaders) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body =
            serde_json::to_vec(&poem_openapi::types::ToJSON::to_json(&self)).unwrap_or_default();
        let mut resp = Response::builder()
            .status(status)
            .content_type(PROBLEM_CONTENT_TYPE)
            .body(body);
        apply_headers(&mut resp, headers);
        resp
    }
}

fn apply_headers(resp: &mut Response, h: ProblemHeaders) {
    for (name, value) in [
        ("www-authenticate", h.www_authenticate),
        ("retry-after", h.retry_after),
        ("ratelimit-policy", h.ratelimit_policy),
        ("ratelimit", h.ratelimit),
    ] {
        if let Some(v) = value
            && let Ok(v) = poem::http::HeaderValue::from_str(&v)
        {
            resp.headers_mut().insert(name, v);
        }
    }
}

impl AppError {
    /// The problem body and headers for this error. Internal errors are logged here with
    /// their `error_id`.
    pub fn to_problem(&self) -> (Problem, ProblemHeaders) {
        let status = self.status();
        let mut headers = ProblemHeaders::default();
        let problem = match self {
            AppError::Internal(e) => Problem::internal(e),
            AppError::Validation(errors) => Problem::new(
                status,
                self.code(),
                format!(
                    "the request has {} invalid field(s): {}",
                    errors.len(),
                    errors
                        .iter()
                        .map(|e| e.field.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .with_errors(errors.clone()),
            AppError::BadRequest { detail, errors, .. } => {
                Problem::new(status, self.code(), detail).with_errors(errors.clone())
            }
            AppError::Unauthorized {
                detail,
                bearer_error,
                ..
            } => {
                headers.www_authenticate = Some(match bearer_error {
                    Some(err) => format!(
                        "Bearer realm=\"agentdesk\", error=\"{err}\", error_description=\"{}\"",
                        detail.replace('"', "'")
                    ),
                    None => "Bearer realm=\"agentdesk\"".to_owned(),
                });
                Problem::new(status, self.code(), detail)
            }
            AppError::Forbidden {
                detail, permission, ..
            } => {
                let mut p = Problem::new(status, self.code(), detail);
                p.missing_permission = permission.clone();
                p
            }
            AppError::SessionState {
                detail, current, ..
            } => {
                let mut p = Problem::new(status, self.code(), detail);
                p.current_status = Some((*current).to_owned());
                p
            }
            AppError::TooManyRequests { detail, limit, .. } => {
                headers.retry_after = Some(limit.retry_after_s.to_string());
                headers.ratelimit_policy = Some(limit.policy.clone());
                headers.ratelimit = Some(limit.limit.clone());
                Problem::new(status, self.code(), detail)
            }
            AppError::Unavailable { detail, .. } => {
                headers.retry_after = Some("5".into());
                Problem::new(status, self.code(), detail)
            }
            AppError::QuotaExceeded {
                limit,
                max,
                detail,
                retry_after_s,
            } => {
                headers.retry_after = retry_after_s.map(|s| s.to_string());
                let mut p = Problem::new(status, self.code(), detail);
                p.limit = Some((*limit).to_owned());
                p.limit_value = Some(*max);
                p
            }
            other => Problem::new(status, other.code(), other.to_string()),
        };
        (problem, headers)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (p, h) = self.to_problem();
        p.into_response_with(h)
    }
}

/// Converts any error that reached the outer middleware into a problem response: our own
/// problem responses pass through; poem-openapi's parse errors become 400/415/422 naming the
/// field; routing errors become 404/405; anything else keeps its status with a generic body.
pub fn from_poem_error(err: poem::Error) -> Response {
    use poem_openapi::error::{
        AuthorizationError, ContentTypeError, ParseParamError, ParsePathError,
        ParseRequestPayloadError,
    };
    if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        // Normally answered by the body middleware with field names; this is the fallback.
        return AppError::Validation(vec![FieldError::new("body", e.reason.clone())])
            .into_response();
    }
    if let Some(e) = err.downcast_ref::<ParseParamError>() {
        if e.name == "If-Match" {
            // A required `If-Match` that is missing: RFC 6585 §3.
            return AppError::if_match_required().into_response();
        }
        return invalid_parameter(e.name, &e.reason);
    }
    if let Some(e) = err.downcast_ref::<ParsePathError>() {
        let name = e
            .name
            .strip_prefix("param")
            .and_then(|i| i.parse().ok())
            .zip(current_request())
            .and_then(|(i, ctx)| ctx.contract.as_ref()?.path_param_name(&ctx.path, i))
            .unwrap_or_else(|| e.name.to_owned());
        return invalid_parameter(&name, &e.reason);
    }
    if let Some(e) = err.downcast_ref::<ContentTypeError>() {
        return AppError::UnsupportedMediaType(format!(
            "{e}; send `Content-Type: application/json`"
        ))
        .into_response();
    }
    if err.is::<AuthorizationError>() {
        if current_request().is_some_and(|c| c.api_key_header) {
            return AppError::forbidden(
                ProblemCode::UserTokenRequired,
                "this operation needs a user's access token (`Authorization: Bearer <access token>` \
                 from `auth.login`); API keys act only on their organization's resources",
            )
            .into_response();
        }
        // No credentials at all: a bare challenge, no `error` attribute (RFC 6750 §3.1).
        return AppError::Unauthorized {
            code: ProblemCode::InvalidToken,
            detail: "a bearer access token is required (Authorization: Bearer <token>)".into(),
            bearer_error: None,
        }
        .into_response();
    }
    if err.is::<poem::error::NotFoundError>() {
        return Problem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::RouteNotFound,
            "no such route",
        )
        .into_response_with(ProblemHeaders::default());
    }
    if err.is::<poem::error::MethodNotAllowedError>() {
        let allowed = current_request()
            .and_then(|ctx| Some(ctx.contract.as_ref()?.allowed_methods(&ctx.path)))
            .unwrap_or_default()
            .join(", ");
        let mut resp = Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ProblemCode::MethodNotAllowed,
            format!("this route accepts {allowed}"),
        )
        .into_response_with(ProblemHeaders::default());
        // RFC 9110 §15.5.6: a 405 carries `Allow`.
        if let Ok(v) = poem::http::HeaderValue::from_str(&allowed) {
            resp.headers_mut().insert(poem::http::header::ALLOW, v);
        }
        return resp;
    }
    let status = err.status();
    let resp = err.into_response();
    if is_problem(&resp) {
        return resp;
    }
    if status.is_server_error() {
        return Problem::internal(&format!("unhandled {status}"))
            .into_response_with(ProblemHeaders::default());
    }
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ProblemCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ProblemCode::UnsupportedMediaType,
        StatusCode::NOT_FOUND => ProblemCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ProblemCode::MethodNotAllowed,
        _ => ProblemCode::BadRequest,
    };
    Problem::new(status, code, status.canonical_reason().unwrap_or("error"))
        .into_response_with(ProblemHeaders::default())
}

/// 400 `invalid_parameter` for the parameter `name` that poem-openapi could not parse: what it
/// must be, in the field's terms, from the spec. The parser's `reason` (its internal type
/// names) is logged at debug level, never sent.
fn invalid_parameter(name: &str, reason: &str) -> Response {
    tracing::debug!(parameter = name, reason, "parameter refused");
    let message = current_request()
        .and_then(|ctx| {
            ctx.contract
                .as_ref()?
                .parameter_expectation(&ctx.path, name)
        })
        .unwrap_or_else(|| {
            "has the wrong form (see the parameter's description in the spec)".into()
        });
    AppError::BadRequest {
        code: ProblemCode::InvalidParameter,
        detail: format!("parameter `{name}` {message}"),
        errors: vec![FieldError::new(name, message)],
    }
    .into_response()
}

/// True when `resp` already carries a problem body.
pub fn is_problem(resp: &Response) -> bool {
    resp.headers()
        .get(poem::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_CONTENT_TYPE))
}

/// Declares an operation's error response type: an `ApiResponse` enum whose variants are
/// exactly the listed statuses, each an `application/problem+json` [`Problem`], plus
/// `TooManyRequests` (the rate limiter can answer any route), `Internal` and `Unavailable`
/// (request timeout). `From<AppError>` maps an error onto its variant; an error whose status
/// the operation does not declare is a bug, logged and answered as 500.
///
/// Variants: `BadRequest`, `Unauthorized`, `Forbidden`, `NotFound`, `Conflict`, `Gone`,
/// `PreconditionFailed`, `PreconditionRequired`, `PayloadTooLarge`, `UnsupportedMediaType`, `Unprocessable`.
#[macro_export]
macro_rules! api_errors {
    ($(#[$m:meta])* $name:ident { $($v:ident),* $(,)? }) => {
        $crate::api_errors!(@build [$(#[$m])*] $name [] [] $($v)* TooManyRequests Internal Unavailable);
    };
    (@build [$($m:tt)*] $name:ident [$($acc:tt)*] [$($names:ident)*] BadRequest $($rest:ident)*) => {
        $crate::api_errors!(@build [$($m)*] $name [$($acc)*
            /// The request is malformed: invalid JSON or an invalid parameter (`malformed_json`, `invalid_parameter`).
            #[oai(status = 400, content_type = "application/problem+json")]
            BadRequest(poem_openapi::payload::Json<$crate::http::problem::Problem>),
        ] [$($names)* BadRequest] $($rest)*);
    };
    (@build [$($m:tt)*] $name:ident [$($acc:tt)*] [$($names:ident)*] Unauthorized $($rest:ident)*) => {
        $crate::api_errors!(@build [$($m)*] $name [$($acc)*
            /// Missing, invalid or expired credentials (`invalid_token`, `invalid_credentials`, `invalid_refresh_token`).
            #[oai(status = 401, content_type = "application/problem+json")]
            Unauthorized(
                poem_openapi::payload::Json<$crate::http::problem::Problem>,
                /// RFC 6750 §3 challenge, e.g. `Bearer realm="agentdesk", error="invalid_token"`.
                #[oai(header = "WWW-Authenticate")] Option<String>,
            ),
        ] [$($names)* Unauthorized] $($rest)*);
    };
    (@build [$($m:tt)*] $name:ident [$($acc:tt)*] [$($names:ident)*] Forbidden $($rest:ident)*) => {
        $crate::api_errors!(@build [$($m)*] $name [$($acc)*
            /// The caller may not do this (`permission_denied` with `missing_permission`, `capability_denied`, `registration_closed`, `owner_required`).
            #[oai(status = 403, content_type = "application/problem+json")]
            Forbidden(poem_openapi::payload::Json<$crate::http::problem::Problem>),
        ] [$($names)* Forbidden] $($rest)*);
    };
    (@build [$($m:tt)*] $name:ident [$($acc:tt)*] [$($names:ident)*] NotFound $($rest:ident)*) => {
        $crate::api_errors!(@build [$($m)*] $name [$($acc)*
            /// No such resource, or it belongs to an organization the caller is not a member of (`not_found`).
            #[oai(status = 404, content_type = "application/problem+json")]
            NotFound(poem_openapi::payload::Json<$crate::http::problem::Problem>),
        ] [$($names)* NotFound] $($rest)*);
    };
    (@build [$($m:tt)*] $name:ident [$($acc:tt)*] [$($names:ident)*] Conflict $($rest:ident)*) => {
        $crate::api_errors!(@build [$($m)*] $name [$($acc)*
            /// Conflicts with current state (`email_taken`, `last_owner`, `already_member`, `invalid_transition`, `session_not_live`, `idempotency_key_in_use`, `quota_exceeded` with `limit`, …).
            #[oai(status = 409, content_type = "application/problem+json")]
            Conflict(poem_openapi::payload::Json<$crate::http::problem::Problem>),
        ] [$($names)* Conflict] $($rest)*);
    };
    (@build [$($m:tt)*] $name:ident [$($acc:tt)*] [$($names:ident)*] Gone $($rest:ident)*) => {
        $crate::api_errors!(@build [$($m)*] $name [$($acc)*
            /// The one-time token is spent, revoked or expired (`invitation_used`, `invitation_revoked`, `invitation_expired`).
            #[oai(status = 410, content_type = "application/problem+json")]
            Gone(poem_openapi::payload::Json<$crate::http::problem::Problem>),
        ] [$($names)* Gone] $($rest)*);
    };
    (@build [$($m:tt)*] $name:ident [$($acc:tt)*] [$($names:ident)*] PreconditionFailed $($rest:ident)*) => {
        $crate::api_errors!(@build [$($m)*] $name [$($acc)*
            /// `If-Match` does not match the current `ETag` (`precondition_failed`): re-read and retry.
            #[oai(status = 412, content_type = "application/problem+json")]
            PreconditionFailed(poem_openapi::payload::Json<$crate::http::problem::Problem>),
        ] [$($names)* PreconditionFailed] $($rest)*);
    };
    (@build [$($m:tt)*] $name:ident [$($acc:tt)*] [$($names:ident)*] PreconditionRequired $($rest:ident)*) => {
        $crate::api_errors!(@build [$($m)*] $name [$($acc)*
            /// `If-Match` is required and was not sent (`precondition_required`): read the resource and send its `ETag`.
            #[oai(status = 428, content_type = "application/problem+json")]
            PreconditionRequired(poem_openapi::payload::Json<$crate::http::problem::Problem>),
        ] [$($names)* PreconditionRequired] $($rest)*);
    };
    (@build [$($m:tt)*] $name:ident [$($acc:tt)*] [$($names:ident)*] PayloadTooLarge $($rest:ident)*) => {
        $crate::api_errors!(@build [$($m)*] $name [$($acc)*
            /// The body is larger than `body_limit_bytes` (`payload_too_large`).
            #[oai(status = 413, content_type = "application/problem+json")]
            PayloadTooLarge(poem_openapi::payload::Json<$crate::http::problem::Problem>),
        ] [$($names)* PayloadTooLarge] $($rest)*);
    };
    (@build [$($m:tt)*] $name:ident [$($acc:tt)*] [$($names:ident)*] UnsupportedMediaType $($rest:ident)*) => {
        $crate::api_errors!(@build [$($m)*] $name [$($acc)*
            /// The body is not `application/json` (`unsupported_media_type`).
            #[oai(status = 415, content_type = "application/problem+json")]
            UnsupportedMediaType(poem_openapi::payload::Json<$crate::http::problem::Problem>),
        ] [$($names)* UnsupportedMediaType] $($rest)*);
    };
    (@build [$($m:tt)*] $name:ident [$($acc:tt)*] [$($names:ident)*] Unprocessable $($rest:ident)*) => {
        $crate::api_errors!(@build [$($m)*] $name [$($acc)*
            /// Well-formed JSON that breaks the rules (`validation_failed`, with `errors` naming each field; `idempotency_key_reused`).
            #[oai(status = 422, content_type = "application/problem+json")]
            Unprocessable(poem_openapi::payload::Json<$crate::http::problem::Problem>),
        ] [$($names)* Unprocessable] $($rest)*);
    };
    (@build [$($m:tt)*] $name:ident [$($acc:tt)*] [$($names:ident)*] TooManyRequests $($rest:ident)*) => {
        $crate::api_errors!(@build [$($m)*] $name [$($acc)*
            /// Over a rate limit (`rate_limited`), the org's live-session limit (`session_limit_reached`) or a quota that falls by itself (`quota_exceeded` with `limit`); retry after `Retry-After` seconds.
            #[oai(status = 429, content_type = "application/problem+json")]
            TooManyRequests(
                poem_openapi::payload::Json<$crate::http::problem::Problem>,
                /// Seconds to wait before retrying (RFC 9110 §10.2.3).
                #[oai(header = "Retry-After")] Option<String>,
                /// The limit's policy, e.g. `"ip";q=600;w=60` (IETF RateLimit header fields draft).
                #[oai(header = "RateLimit-Policy")] Option<String>,
                /// The limit's state, e.g. `"ip";r=0;t=3`.
                #[oai(header = "RateLimit")] Option<String>,
            ),
        ] [$($names)* TooManyRequests] $($rest)*);
    };
    (@build [$($m:tt)*] $name:ident [$($acc:tt)*] [$($names:ident)*] Internal $($rest:ident)*) => {
        $crate::api_errors!(@build [$($m)*] $name [$($acc)*
            /// Unexpected server error (`internal_error`); the body's `error_id` is in the server log.
            #[oai(status = 500, content_type = "application/problem+json")]
            Internal(poem_openapi::payload::Json<$crate::http::problem::Problem>),
        ] [$($names)* Internal] $($rest)*);
    };
    (@build [$($m:tt)*] $name:ident [$($acc:tt)*] [$($names:ident)*] Unavailable $($rest:ident)*) => {
        $crate::api_errors!(@build [$($m)*] $name [$($acc)*
            /// The request did not finish within `request_timeout_s`, or a dependency is down (`request_timeout`, `unavailable`).
            #[oai(status = 503, content_type = "application/problem+json")]
            Unavailable(
                poem_openapi::payload::Json<$crate::http::problem::Problem>,
                /// Seconds to wait before retrying.
                #[oai(header = "Retry-After")] Option<String>,
            ),
        ] [$($names)* Unavailable] $($rest)*);
    };
    (@build [$($m:tt)*] $name:ident [$($acc:tt)*] [$($names:ident)*]) => {
        $($m)*
        #[derive(poem_openapi::ApiResponse, Debug)]
        pub enum $name { $($acc)* }

        impl From<$crate::error::AppError> for $name {
            fn from(err: $crate::error::AppError) -> Self {
                let (problem, headers) = err.to_problem();
                let status = problem.status;
                $( if status == $crate::api_errors!(@status $names) {
                    return $crate::api_errors!(@make $names, problem, headers);
                } )*
                let p = $crate::http::problem::Problem::internal(
                    &format!("undeclared status {status} ({}) returned by {}", problem.code, stringify!($name)),
                );
                Self::Internal(poem_openapi::payload::Json(p))
            }
        }
    };
    (@status BadRequest) => { 400 };
    (@status Unauthorized) => { 401 };
    (@status Forbidden) => { 403 };
    (@status NotFound) => { 404 };
    (@status Conflict) => { 409 };
    (@status Gone) => { 410 };
    (@status PreconditionFailed) => { 412 };
    (@status PreconditionRequired) => { 428 };
    (@status PayloadTooLarge) => { 413 };
    (@status UnsupportedMediaType) => { 415 };
    (@status Unprocessable) => { 422 };
    (@status TooManyRequests) => { 429 };
    (@status Internal) => { 500 };
    (@status Unavailable) => { 503 };
    (@make Unauthorized, $p:ident, $h:ident) => { Self::Unauthorized(poem_openapi::payload::Json($p), $h.www_authenticate) };
    (@make TooManyRequests, $p:ident, $h:ident) => {
        Self::TooManyRequests(poem_openapi::payload::Json($p), $h.retry_after, $h.ratelimit_policy, $h.ratelimit)
    };
    (@make Unavailable, $p:ident, $h:ident) => { Self::Unavailable(poem_openapi::payload::Json($p), $h.retry_after) };
    (@make $v:ident, $p:ident, $h:ident) => {{ let _ = $h; Self::$v(poem_openapi::payload::Json($p)) }};
}
