//! `Idempotency-Key` (ARCHITECTURE §4, after Stripe's and the IETF
//! draft-ietf-httpapi-idempotency-key-header): a retried POST does its work once.
//!
//! For the operations that declare the `Idempotency-Key` header in the spec (one source: the
//! contract; [`Idempotency::new`] takes their `(method, path template)` list), a request
//! carrying the header (1–255 visible ASCII characters) is recorded per principal — the
//! caller resolved once per request by the principal middleware, a user (`user:<id>`) or an
//! API key (`key:<id>`) alike — with a fingerprint of method, path and body (SHA-256):
//!
//! * first time: the request runs; its response (status, body, `Location`/`ETag`/
//!   `Content-Type`) is stored for `idempotency_ttl_s` (24 h);
//! * same key, same fingerprint, finished: the stored response is replayed with
//!   `Idempotent-Replayed: true`;
//! * same key, different fingerprint: 422 `idempotency_key_reused`;
//! * same key while the first request is still running: 409 `idempotency_key_in_use`.
//!
//! **A replay is authorized first.** The operation's own authorization (`api::access`, which
//! checks org membership and the permission) notes what it granted with [`note_authorized`];
//! the record keeps that list, and before a stored response is replayed the caller must still
//! hold every one of those grants (`domain::orgs::authorize`): a member removed from the org,
//! or a key whose role lost the permission, gets the 404/403 a fresh request would get, never
//! the stored response. Unauthenticated callers never reach a record (see below).
//!
//! A 5xx or a 429 is not stored (the record is dropped, so a retry runs again). The operation
//! and the recording run in their own task, so a client that disconnects after the work
//! committed still gets the stored response on its retry. A record left `in_flight` by a
//! crashed node is taken over after twice `request_timeout_s`. Storage is
//! `domain::idempotency`.

use std::{cell::RefCell, sync::Arc};

use poem::{Endpoint, IntoResponse, Middleware, Request, Response, http::StatusCode};
use sea_orm::DatabaseConnection;
use sha2::{Digest, Sha256};

use super::validation::template_matches;
use crate::{
    auth::{Subject, principal::Principal, rbac::Rbac},
    domain::{
        idempotency::{self, Begin, Stored},
        orgs,
    },
    entity::idempotency_key,
    error::{AppError, FieldError, ProblemCode},
};

tokio::task_local! {
    /// The grants `(org_id, permission)` the running idempotent request was authorized for.
    static AUTHORIZED: RefCell<Vec<(uuid::Uuid, String)>>;
}

/// Records that the current request was authorized for `permission` in `org_id` (called by
/// the operations' authorization, `api::access`). Outside an idempotent request it does
/// nothing.
pub fn note_authorized(org_id: uuid::Uuid, permission: &str) {
    let _ = AUTHORIZED.try_with(|a| a.borrow_mut().push((org_id, permission.to_owned())));
}

fn authorized_json(grants: &[(uuid::Uuid, String)]) -> serde_json::Value {
    grants
        .iter()
        .map(|(org, perm)| serde_json::json!({ "org_id": org, "permission": perm }))
        .collect()
}

/// Authorizes `subject` again for every grant the first run was authorized for. Errors: what
/// a fresh request would get (404 for a non-member, 403 naming the permission).
async fn reauthorize(
    db: &DatabaseConnection,
    rbac: &Rbac,
    subject: &Subject,
    stored: &idempotency_key::Model,
) -> Result<(), AppError> {
    let grants = stored
        .authorized
        .as_ref()
        .and_then(serde_json::Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for g in grants {
        let org = g["org_id"]
            .as_str()
            .and_then(|s| uuid::Uuid::parse_str(s).ok());
        let (Some(org), Some(perm)) = (org, g["permission"].as_str()) else {
            return Err(AppError::Internal(anyhow::anyhow!(
                "malformed authorization record of an idempotency key"
            )));
        };
        orgs::authorize(db, rbac, subject, org, perm).await?;
    }
    Ok(())
}

/// Request header.
pub const HEADER: &str = "idempotency-key";
/// Response header on a replay.
pub const REPLAYED: &str = "idempotent-replayed";

/// Response headers stored and replayed besides the body.
const KEPT_HEADERS: [&str; 3] = ["content-type", "location", "etag"];

/// Whether a key is acceptable: 1–255 visible ASCII characters.
pub fn valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// SHA-256 (hex) of method, path and body.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b"\n");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body);
    crate::auth::tokens::hex(&h.finalize())
}

/// The middleware, built with what it needs: the database, the retention and in-flight lock
/// (s), and the covered operations. Install it inside the principal middleware, which puts
/// the [`Principal`] into the request.
#[derive(Clone)]
pub struct Idempotency {
    db: DatabaseConnection,
    rbac: Rbac,
    ttl_s: u64,
    lock_s: u64,
    covered: Arc<Vec<(String, String)>>,
}

impl Idempotency {
    /// Records for `ttl_s`; an in-flight record is taken over after `lock_s`; `covered` lists
    /// `(METHOD, /path/{template})` of the idempotent operations (from the spec); `rbac`
    /// authorizes replays again.
    pub fn new(
        db: DatabaseConnection,
        rbac: Rbac,
        ttl_s: u64,
        lock_s: u64,
        covered: Vec<(String, String)>,
    ) -> Self {
        Self {
            db,
            rbac,
            ttl_s,
            lock_s,
            covered: Arc::new(covered),
        }
    }

    fn covers(&self, method: &str, path: &str) -> bool {
        self.covered
            .iter()
            .any(|(m, t)| m == method && template_matches(t, path))
    }
}

impl<E: Endpoint + 'static> Middleware<E> for Idempotency {
    type Output = IdempotencyEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        IdempotencyEndpoint {
            config: self.clone(),
            inner: Arc::new(ep),
        }
    }
}

/// See [`Idempotency`].
pub struct IdempotencyEndpoint<E> {
    config: Idempotency,
    inner: Arc<E>,
}

fn replay(stored: idempotency_key::Model) -> Response {
    let status = stored
        .response_status
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut resp = Response::builder()
        .status(status)
        .header(REPLAYED, "true")
        .body(stored.response_body.unwrap_or_default());
    if let Some(serde_json::Value::Object(h)) = stored.response_headers {
        for (name, v) in h {
            if let (Ok(n), Some(Ok(v))) = (
                poem::http::HeaderName::from_bytes(name.as_bytes()),
                v.as_str().map(poem::http::HeaderValue::from_str),
            ) {
                resp.headers_mut().insert(n, v);
            }
        }
    }
    resp
}

impl<E: Endpoint + 'static> Endpoint for IdempotencyEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let key = req
            .headers()
            .get(HEADER)
            .map(|v| v.to_str().map(str::to_owned).unwrap_or_default());
        let Some(key) = key.filter(|_| self.config.covers(&method, &path)) else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        if !valid_key(&key) {
            return Ok(AppError::BadRequest {
                code: ProblemCode::InvalidParameter,
                detail: "header `Idempotency-Key` must be 1 to 255 visible ASCII characters".into(),
                errors: vec![FieldError::new(
                    "Idempotency-Key",
                    "1 to 255 visible ASCII characters",
                )],
            }
            .into_response());
        }
        // The principal resolved for this request. Without a verified one the operation
        // answers 401 itself and nothing is recorded.
        let Some(subject) = req
            .extensions()
            .get::<Principal>()
            .and_then(Principal::subject)
            .cloned()
        else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        let scope = subject.name();
        let db = self.config.db.clone();
        let body = req.take_body().into_bytes().await?;
        let fp = fingerprint(&method, &path, &body);
        let begun = idempotency::begin(
            &db,
            &scope,
            &key,
            &fp,
            self.config.ttl_s,
            self.config.lock_s,
        )
        .await
        .map_err(|e| poem::Error::from(AppError::Internal(e.into())))?;
        match begun {
            Begin::Run => {}
            Begin::Replay(stored) => {
                // Boxed: keeps the middleware's future shallow (the authorization's queries are
                // deep types of their own).
                let check = Box::pin(reauthorize(&db, &self.config.rbac, &subject, &stored));
                return Ok(match check.await {
                    Ok(()) => replay(*stored),
                    Err(e) => e.into_response(),
                });
            }
            Begin::Reused => {
                let mut p = super::problem::Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ProblemCode::IdempotencyKeyReused,
                    "this Idempotency-Key was used with a different request; use a new key",
                );
                p.errors = Some(vec![super::problem::ProblemFieldError {
                    field: "Idempotency-Key".into(),
                    message: "was used with a different request body or path".into(),
                }]);
                return Ok(p.into_response_with(Default::default()));
            }
            Begin::InFlight => {
                return Ok(AppError::conflict(
                    ProblemCode::IdempotencyKeyInUse,
                    "a request with this Idempotency-Key is still being processed; retry later",
                )
                .into_response());
            }
        }
        req.set_body(body);
        // Run the operation and record its outcome in a task of its own: if the client goes
        // away or the request times out after the operation committed, the response is still
        // stored, so the retry replays it instead of doing the work twice.
        let inner = self.inner.clone();
        let ctx = super::problem::current_request().unwrap_or_default();
        let work = AUTHORIZED.scope(RefCell::new(Vec::new()), async move {
            let resp = match inner.call(req).await {
                Ok(r) => r.into_response(),
                Err(e) => super::problem::from_poem_error(e),
            };
            let granted = AUTHORIZED.with(|a| a.take());
            finish(&db, &scope, &key, resp, authorized_json(&granted)).await
        });
        // Keep the request's problem context (request id, instance) and tracing span.
        let task = tokio::spawn(tracing::Instrument::instrument(
            super::problem::with_request_context(ctx, work),
            tracing::Span::current(),
        ));
        task.await.map_err(|e| {
            poem::Error::from(AppError::Internal(anyhow::anyhow!(
                "idempotent request task: {e}"
            )))
        })?
    }
}

/// Stores `resp` for the key, or forgets the key when the outcome is worth retrying (a 5xx,
/// or a 429 such as `session_limit_reached`: replaying it for 24 h would block a retry that
/// could now succeed).
async fn finish(
    db: &DatabaseConnection,
    scope: &str,
    key: &str,
    mut resp: Response,
    authorized: serde_json::Value,
) -> poem::Result<Response> {
    let status = resp.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        if let Err(e) = idempotency::release(db, scope, key).await {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
        return Ok(resp);
    }
    let headers: serde_json::Map<String, serde_json::Value> = KEPT_HEADERS
        .iter()
        .filter_map(|h| {
            resp.headers()
                .get(*h)
                .and_then(|v| v.to_str().ok())
                .map(|v| ((*h).to_owned(), serde_json::Value::String(v.to_owned())))
        })
        .collect();
    let bytes = resp.take_body().into_bytes().await?;
    let stored = idempotency::complete(
        db,
        scope,
        key,
        Stored {
            status: status.as_u16(),
            headers: serde_json::Value::Object(headers),
            body: bytes.to_vec(),
            authorized,
        },
    )
    .await;
    if let Err(e) = stored {
        tracing::warn!(error = %e, "could not store an idempotent response");
    }
    resp.set_body(bytes);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_fingerprints() {
        assert!(valid_key("a1-b2_c3"));
        assert!(!valid_key(""));
        assert!(!valid_key("with space"));
        assert!(!valid_key(&"x".repeat(256)));
        assert_ne!(
            fingerprint("POST", "/a", b"{}"),
            fingerprint("POST", "/a", b"{ }")
        );
    }
}
