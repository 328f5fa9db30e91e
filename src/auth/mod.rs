//! Authentication and authorization: argon2id passwords, access JWTs and opaque refresh
//! tokens, API key verification, the principal resolved once per request, the casbin RBAC
//! enforcer with its SeaORM adapter and the OpenID Connect protocol client.
//! Nothing here knows about orgs' business rules; `domain/` calls in.

pub mod api_keys;
pub mod cache;
pub mod oidc;
pub mod password;
pub mod principal;
pub mod rbac;
pub mod seal;
pub mod secrets;
pub mod tokens;

use uuid::Uuid;

/// Who is calling, as established by a security scheme: a user (access JWT) or an API key.
/// Authorization decides from it ([`crate::domain::orgs::authorize`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A user, from a verified access token (`sub`).
    User(Uuid),
    /// An API key, from a verified `ad_…` secret: it acts in `org_id` only, with `role`.
    ApiKey {
        /// The key id.
        id: Uuid,
        /// The only org it acts in.
        org_id: Uuid,
        /// Its role (built-in or custom name).
        role: String,
    },
}

impl Subject {
    /// The user id, for a user.
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Subject::User(id) => Some(*id),
            Subject::ApiKey { .. } => None,
        }
    }

    /// The key id, for an API key.
    pub fn key_id(&self) -> Option<Uuid> {
        match self {
            Subject::User(_) => None,
            Subject::ApiKey { id, .. } => Some(*id),
        }
    }

    /// The org an API key is bound to (`None` for a user).
    pub fn org_id(&self) -> Option<Uuid> {
        match self {
            Subject::User(_) => None,
            Subject::ApiKey { org_id, .. } => Some(*org_id),
        }
    }

    /// The subject's stable name: `user:<id>` or `key:<id>` (its casbin subject, and the
    /// scope of the `Idempotency-Key`s it sends).
    pub fn name(&self) -> String {
        match self {
            Subject::User(id) => rbac::user_subject(*id),
            Subject::ApiKey { id, .. } => rbac::key_subject(*id),
        }
    }
}
