//! The request path's one credential check (ARCHITECTURE §3, "One request path"): reads the
//! credential a request presents — `Authorization: Bearer …` (RFC 6750 §2.1; it wins when
//! both are sent) or `X-API-Key` — has the [`Authenticator`] verify it once, and puts the
//! outcome, a [`Principal`], into the request's extensions. Everything after reads it: the
//! idempotency middleware (its scope), the operations' security extractors (`api::OrgAuth`,
//! `BearerAuth`), audit. Nothing verifies a credential twice.
//!
//! A refused credential does not stop the request here: operations that need a caller
//! answer 401 themselves (with the refusal's detail), the others ignore it. Only a failure to
//! verify at all (the database is unreachable) answers 500 here.

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response,
    web::headers::{Authorization, HeaderMapExt, authorization::Bearer},
};

use crate::auth::principal::{Authenticator, Credential};

/// The header an API key may be sent in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The credential `req` presents, read exactly as the security schemes read it.
pub fn credential(req: &Request) -> Option<Credential> {
    let headers = req.headers();
    if headers.contains_key(poem::http::header::AUTHORIZATION) {
        return headers
            .typed_get::<Authorization<Bearer>>()
            .map(|a| Credential::Bearer(a.token().to_owned()));
    }
    headers
        .get(API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|k| Credential::ApiKey(k.to_owned()))
}

/// The middleware, built with the node's [`Authenticator`].
pub struct ResolvePrincipal {
    auth: Authenticator,
}

impl ResolvePrincipal {
    /// Resolves principals with `auth`.
    pub fn new(auth: Authenticator) -> Self {
        Self { auth }
    }
}

impl<E: Endpoint> Middleware<E> for ResolvePrincipal {
    type Output = ResolvePrincipalEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        ResolvePrincipalEndpoint {
            auth: self.auth.clone(),
            inner: ep,
        }
    }
}

/// See [`ResolvePrincipal`].
pub struct ResolvePrincipalEndpoint<E> {
    auth: Authenticator,
    inner: E,
}

impl<E: Endpoint> Endpoint for ResolvePrincipalEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let principal = match self.auth.principal(credential(&req).as_ref()).await {
            Ok(p) => p,
            Err(e) => return Ok(e.into_response()),
        };
        req.extensions_mut().insert(principal);
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}
