//! The principal: who is calling, resolved **once per request** (ARCHITECTURE §3, "One
//! request path") from the credential the request presents.
//!
//! * [`Credential`]: what was presented — `Authorization: Bearer <access JWT | ad_… key>`
//!   (RFC 6750 §2.1) or `X-API-Key: ad_…`; `Authorization` wins when both are sent.
//! * [`Authenticator::resolve`]: verifies it (the JWT's signature and claims, or the API key
//!   through the node's [`AuthCache`]) into a [`Subject`].
//! * [`Principal`]: the outcome, which the request-path middleware stores in the request for
//!   everything after it (the operation's security extractor, idempotency, audit). Nothing
//!   after that middleware verifies a credential again.
//!
//! Authorization (what the subject may do in an org) is not decided here: see
//! `domain::orgs::authorize` and [`crate::auth::rbac`].

use std::sync::Arc;

use sea_orm::{DatabaseConnection, EntityTrait};
use uuid::Uuid;

use crate::{
    auth::{
        Subject,
        cache::{AccountState, AuthCache, VerifiedToken},
        secrets,
        tokens::Keyring,
    },
    entity::user,
    error::{AppError, AppResult, ProblemCode},
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
    /// A credential was presented and refused. Operations that need a caller answer 401
    /// `invalid_token` with a generic detail: the exact reason goes to the log only (with the
    /// request id), so a client probing forged tokens learns nothing from the answer.
    Refused {
        /// Why (expired, revoked, bad signature, …), for the log; never contains the
        /// credential and is never sent to the client.
        reason: String,
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
    /// ([`REFUSED_DETAIL`] for a refused credential; the reason is in the log).
    pub fn require(&self) -> AppResult<Subject> {
        match self {
            Principal::Authenticated(s) => Ok(s.clone()),
            Principal::Refused { .. } => Err(AppError::invalid_token(REFUSED_DETAIL)),
            Principal::Anonymous => Err(AppError::Unauthorized {
                code: ProblemCode::InvalidToken,
                detail: "a bearer access token is required (Authorization: Bearer <token>)".into(),
                bearer_error: None,
            }),
        }
    }
}

/// The `detail` of every 401 for a refused credential (the reason is logged, not sent).
pub const REFUSED_DETAIL: &str =
    "the access token or API key is invalid, expired or revoked; log in again or use a valid key";

/// Resolves credentials into subjects. Cheap to clone; one per node.
#[derive(Clone)]
pub struct Authenticator {
    db: DatabaseConnection,
    keyring: Arc<Keyring>,
    cache: Arc<AuthCache>,
}

impl Authenticator {
    /// An authenticator over the access-token keys, the database (accounts, API key rows)
    /// and the node's [`AuthCache`].
    pub fn new(db: DatabaseConnection, keyring: Arc<Keyring>, cache: Arc<AuthCache>) -> Self {
        Self { db, keyring, cache }
    }

    /// Verifies `credential`. Errors: 401 `invalid_token` (malformed, expired, wrong issuer
    /// or audience, bad signature, unknown/revoked/expired key); 500 when the database cannot
    /// be read.
    pub async fn resolve(&self, credential: &Credential) -> AppResult<Subject> {
        let key = match credential {
            Credential::ApiKey(key) => key,
            Credential::Bearer(token) if secrets::looks_like_api_key(token) => token,
            Credential::Bearer(token) => {
                let verified = match self.cache.token(token) {
                    Some(v) => v,
                    None => {
                        let claims = self.keyring.verify(token)?;
                        let v = VerifiedToken {
                            user_id: Uuid::parse_str(&claims.sub)
                                .map_err(|_| AppError::invalid_token("bad subject"))?,
                            generation: claims.generation,
                            expires_at: claims.exp,
                        };
                        self.cache.put_token(token, v);
                        v
                    }
                };
                return self
                    .current_user(verified.user_id, verified.generation)
                    .await;
            }
        };
        super::api_keys::authenticate(&self.db, &self.cache, key).await
    }

    /// The account behind a verified access token, when the token is still current: the
    /// account exists, is neither disabled nor erased, and its access-token generation is
    /// still the token's `gen` (logout, logout-all, password change, refresh-token reuse and
    /// the SSO takeover guard move it on). From the node's cache, else one primary-key read;
    /// a change on any node invalidates the cached state through the bus. Errors: 401
    /// `invalid_token`.
    async fn current_user(&self, user_id: Uuid, generation: i64) -> AppResult<Subject> {
        let state = match self.cache.account(user_id) {
            Some(state) => state,
            None => {
                let fill = self.cache.begin();
                let state = match user::Entity::find_by_id(user_id).one(&self.db).await? {
                    None => AccountState::Missing,
                    Some(u) if u.disabled_at.is_some() || u.deleted_at.is_some() => {
                        AccountState::Closed
                    }
                    Some(u) => AccountState::Open {
                        token_generation: u.token_generation,
                    },
                };
                self.cache.put_account(fill, user_id, state);
                state
            }
        };
        match state {
            AccountState::Closed => {
                Err(AppError::invalid_token("the account is disabled or erased"))
            }
            AccountState::Open { token_generation } if token_generation == generation => {
                Ok(Subject::User(user_id))
            }
            AccountState::Open { .. } => Err(AppError::invalid_token(
                "the access token was revoked (logout, password change or token reuse)",
            )),
            AccountState::Missing => Err(AppError::invalid_token("no such account")),
        }
    }

    /// [`Authenticator::resolve`] as a [`Principal`]: refusals become
    /// [`Principal::Refused`]; only infrastructure failures stay errors (500).
    pub async fn principal(&self, credential: Option<&Credential>) -> AppResult<Principal> {
        let Some(credential) = credential else {
            return Ok(Principal::Anonymous);
        };
        match self.resolve(credential).await {
            Ok(subject) => Ok(Principal::Authenticated(subject)),
            Err(AppError::Unauthorized { detail, .. }) => {
                tracing::info!(reason = %detail, "credential refused");
                Ok(Principal::Refused { reason: detail })
            }
            Err(e) => Err(e),
        }
    }
}
