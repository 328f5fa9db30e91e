//! The principal: who is calling, resolved **once per request** (ARCHITECTURE §3, "One
//! request path") from the credential the request presents.
//!
//! * [`Credential`]: what was presented — `Authorization: Bearer <access JWT | ad_… key>`
//!   (RFC 6750 §2.1) or `X-API-Key: ad_…`; `Authorization` wins when both are sent.
//! * [`Authenticator::resolve`]: verifies it (the JWT's signature and claims, or the API key
//!   through the per-node cache) into a [`Subject`].
//! * [`Principal`]: the outcome, which the request-path middleware stores in the request for
//!   everything after it (the operation's security extractor, idempotency, audit). Nothing
//!   after that middleware verifies a credential again.
//!
//! Authorization (what the subject may do in an org) is not decided here: see
//! `domain::orgs::authorize` and [`crate::auth::rbac`].

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::{
    auth::{Subject, api_keys::KeyCache, secrets, tokens::Keyring},
    error::{AppError, AppResult},
};

/// A credential as presented, before verification. Never logged.
pub enum Credential {
    /// `Authorization: Bearer <token>`: an access JWT, or an API key when it looks like one
    /// (`ad_<prefix>_<secret>`).
    Bearer(String),
    /// `X-API-Key: <key>`.
    ApiKey(String),
}

/// The outcome of resolving a request's credential, stored in the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// No credential was presented: operations that need one answer 401 themselves.
    Anonymous,
    /// A verified caller.
    Authenticated(Subject),
    /// A credential was presented and refused; `detail` says why (expired, revoked, bad
    /// signature, …). Operations that need a caller answer 401 `invalid_token` with it.
    Refused {
        /// Why, for the 401 problem's `detail` (never contains the credential).
        detail: String,
    },
}

impl Principal {
    /// The verified subject, if any.
    pub fn subject(&self) -> Option<&Subject> {
        match self {
            Principal::Authenticated(s) => Some(s),
            _ => None,
        }
    }

    /// The subject, or the error an operation that needs one answers: 401 `invalid_token`
    /// with the refusal's detail, or a bare 401 when nothing was presented.
    pub fn require(&self) -> AppResult<Subject> {
        match self {
            Principal::Authenticated(s) => Ok(s.clone()),
            Principal::Refused { detail } => Err(AppError::invalid_token(detail.clone())),
            Principal::Anonymous => Err(AppError::Unauthorized {
                code: "invalid_token",
                detail: "a bearer access token is required (Authorization: Bearer <token>)".into(),
                bearer_error: None,
            }),
        }
    }
}

/// Resolves credentials into subjects. Cheap to clone; one per node.
#[derive(Clone)]
pub struct Authenticator {
    db: DatabaseConnection,
    keyring: Arc<Keyring>,
    keys: Arc<KeyCache>,
}

impl Authenticator {
    /// An authenticator over the access-token keys, the database (API key rows) and the
    /// node's cache of verified API keys.
    pub fn new(db: DatabaseConnection, keyring: Arc<Keyring>, keys: Arc<KeyCache>) -> Self {
        Self { db, keyring, keys }
    }

    /// Verifies `credential`. Errors: 401 `invalid_token` (malformed, expired, wrong issuer
    /// or audience, bad signature, unknown/revoked/expired key); 500 when the database cannot
    /// be read.
    pub async fn resolve(&self, credential: &Credential) -> AppResult<Subject> {
        let key = match credential {
            Credential::ApiKey(key) => key,
            Credential::Bearer(token) if secrets::looks_like_api_key(token) => token,
            Credential::Bearer(token) => {
                let claims = self.keyring.verify(token)?;
                let user_id = Uuid::parse_str(&claims.sub)
                    .map_err(|_| AppError::invalid_token("bad subject"))?;
                return Ok(Subject::User(user_id));
            }
        };
        super::api_keys::authenticate(&self.db, &self.keys, key).await
    }

    /// [`Authenticator::resolve`] as a [`Principal`]: refusals become
    /// [`Principal::Refused`]; only infrastructure failures stay errors (500).
    pub async fn principal(&self, credential: Option<&Credential>) -> AppResult<Principal> {
        let Some(credential) = credential else {
            return Ok(Principal::Anonymous);
        };
        match self.resolve(credential).await {
            Ok(subject) => Ok(Principal::Authenticated(subject)),
            Err(AppError::Unauthorized { detail, .. }) => Ok(Principal::Refused { detail }),
            Err(e) => Err(e),
        }
    }
}
