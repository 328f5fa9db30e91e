//! [`AppError`]: every failure the domain and auth layers report, in HTTP-neutral terms
//! plus the status it maps to. `http::problem` turns it into an RFC 9457 body; this is the
//! one place database constraint violations become 409 (see [`AppError::from_db`]).

use poem::http::StatusCode;

mod code;
pub use code::ProblemCode;

/// A field-level validation message: `field` is the JSON field name (dotted for nesting).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// JSON field name, e.g. `password`.
    pub field: String,
    /// What is wrong, in a sentence a developer can act on.
    pub message: String,
}

impl FieldError {
    /// Shorthand constructor.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Rate-limit details carried by a 429 (`Retry-After`, `RateLimit-Policy`, `RateLimit`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimited {
    /// Seconds until a retry can succeed (`Retry-After`, RFC 9110 §10.2.3).
    pub retry_after_s: u64,
    /// `RateLimit-Policy` value, e.g. `"auth";q=10;w=60`.
    pub policy: String,
    /// `RateLimit` value, e.g. `"auth";r=0;t=6`.
    pub limit: String,
}

/// Errors with a stable `code` (snake_case) that clients switch on.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 422 `validation_failed`: the request was well-formed but fields break the rules.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// 400: malformed request (bad JSON, wrong types, bad parameter).
    #[error("{detail}")]
    BadRequest {
        code: ProblemCode,
        detail: String,
        errors: Vec<FieldError>,
    },
    /// 401: missing or invalid credentials. `bearer_error` is the RFC 6750 §3 `error`
    /// attribute for `WWW-Authenticate` (`invalid_token`), when a bearer token was at fault.
    #[error("{detail}")]
    Unauthorized {
        code: ProblemCode,
        detail: String,
        bearer_error: Option<&'static str>,
    },
    /// 403 `permission_denied` naming the missing permission, or another 403 code.
    #[error("{detail}")]
    Forbidden {
        code: ProblemCode,
        detail: String,
        permission: Option<String>,
    },
    /// 404 `not_found`. Also what a non-member sees for an org and everything in it.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409: the request conflicts with current state (taken email, last owner, …).
    #[error("{detail}")]
    Conflict { code: ProblemCode, detail: String },
    /// 409 `invalid_transition` or `session_not_live`: the session is in `current`, which does
    /// not allow this; the problem carries `current_status`.
    #[error("{detail}")]
    SessionState {
        code: ProblemCode,
        current: &'static str,
        detail: String,
    },
    /// 410: a one-time token that was valid once is spent, revoked or expired.
    #[error("{detail}")]
    Gone { code: ProblemCode, detail: String },
    /// 412 `precondition_failed`: `If-Match` did not match the current `ETag`.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 428 `precondition_required`: the operation needs `If-Match` and it was not sent.
    #[error("{0}")]
    PreconditionRequired(String),
    /// 413 `payload_too_large`.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415 `unsupported_media_type`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429: over a rate limit.
    #[error("{detail}")]
    TooManyRequests {
        code: ProblemCode,
        detail: String,
        limit: RateLimited,
    },
    /// 409 `quota_exceeded` (a count that only the caller can lower: orgs, API keys, pending
    /// invitations) or 429 `quota_exceeded` with `Retry-After` (a count that falls by itself:
    /// live sessions). The problem names the setting in `limit` and its value in
    /// `limit_value`.
    #[error("{detail}")]
    QuotaExceeded {
        /// The setting, e.g. `max_orgs_per_user`.
        limit: &'static str,
        /// Its value.
        max: u64,
        /// What happened and what to do.
        detail: String,
        /// `Some(s)`: 429 with `Retry-After: s`; `None`: 409.
        retry_after_s: Option<u64>,
    },
    /// 503: not ready or timed out; retry later.
    #[error("{detail}")]
    Unavailable { code: ProblemCode, detail: String },
    /// 500: a bug or an infrastructure failure. The message is logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Shorthand result type for domain functions.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// The HTTP status this error maps to.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } | Self::SessionState { .. } => StatusCode::CONFLICT,
            Self::Gone { .. } => StatusCode::GONE,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::PreconditionRequired(_) => StatusCode::PRECONDITION_REQUIRED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::QuotaExceeded {
                retry_after_s: Some(_),
                ..
            } => StatusCode::TOO_MANY_REQUESTS,
            Self::QuotaExceeded { .. } => StatusCode::CONFLICT,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable problem `code`.
    pub fn code(&self) -> ProblemCode {
        match self {
            Self::Validation(_) => ProblemCode::ValidationFailed,
            Self::BadRequest { code, .. }
            | Self::Unauthorized { code, .. }
            | Self::Forbidden { code, .. }
            | Self::Conflict { code, .. }
            | Self::Gone { code, .. }
            | Self::SessionState { code, .. }
            | Self::TooManyRequests { code, .. }
            | Self::Unavailable { code, .. } => *code,
            Self::NotFound(_) => ProblemCode::NotFound,
            Self::QuotaExceeded { .. } => ProblemCode::QuotaExceeded,
            Self::PreconditionFailed(_) => ProblemCode::PreconditionFailed,
            Self::PreconditionRequired(_) => ProblemCode::PreconditionRequired,
            Self::PayloadTooLarge(_) => ProblemCode::PayloadTooLarge,
            Self::UnsupportedMediaType(_) => ProblemCode::UnsupportedMediaType,
            Self::Internal(_) => ProblemCode::InternalError,
        }
    }

    /// One field failed validation.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    /// 409 with a code and detail.
    pub fn conflict(code: ProblemCode, detail: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
        }
    }

    /// 409 `quota_exceeded`: `count` things already exist and `limit` (= `max`) allows no more.
    pub fn quota(limit: &'static str, max: u64, what: &str) -> Self {
        Self::QuotaExceeded {
            limit,
            max,
            detail: format!(
                "{what}: the limit `{limit}` is {max}; remove one first or ask the operator to raise it"
            ),
            retry_after_s: None,
        }
    }

    /// 403 with a code other than `permission_denied`.
    pub fn forbidden(code: ProblemCode, detail: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            detail: detail.into(),
            permission: None,
        }
    }

    /// 401 for bad credentials at login/refresh (no `WWW-Authenticate` challenge attributes).
    pub fn unauthorized(code: ProblemCode, detail: impl Into<String>) -> Self {
        Self::Unauthorized {
            code,
            detail: detail.into(),
            bearer_error: None,
        }
    }

    /// 401 for a missing/invalid bearer token (RFC 6750 §3.1 `invalid_token`).
    pub fn invalid_token(detail: impl Into<String>) -> Self {
        Self::Unauthorized {
            code: ProblemCode::InvalidToken,
            detail: detail.into(),
            bearer_error: Some("invalid_token"),
        }
    }

    /// 428 `precondition_required` for an operation that needs `If-Match` (RFC 6585 §3).
    pub fn if_match_required() -> Self {
        Self::PreconditionRequired(
            "send `If-Match` with the `ETag` you last read (e.g. `\"3\"`)".into(),
        )
    }

    /// 403 `permission_denied` naming the permission the caller lacks.
    pub fn permission_denied(permission: &str) -> Self {
        Self::Forbidden {
            code: ProblemCode::PermissionDenied,
            detail: format!("your role in this organization lacks the `{permission}` permission"),
            permission: Some(permission.to_owned()),
        }
    }

    /// Maps a database error: unique-constraint violations become 409 `code`/`detail`;
    /// anything else is internal. The one place that looks at database error kinds.
    pub fn from_db(err: sea_orm::DbErr, code: ProblemCode, detail: &str) -> Self {
        match err.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => Self::conflict(code, detail),
            _ => Self::Internal(err.into()),
        }
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Internal(err.into())
    }
}

impl From<sea_orm::TransactionError<AppError>> for AppError {
    fn from(err: sea_orm::TransactionError<AppError>) -> Self {
        match err {
            sea_orm::TransactionError::Connection(e) => e.into(),
            sea_orm::TransactionError::Transaction(e) => e,
        }
    }
}
