//! `Idempotency-Key` (ARCHITECTURE §4, after Stripe's and the IETF
//! draft-ietf-httpapi-idempotency-key-header): a retried POST does its work once.
//!
//! For the operations in [`COVERED`], a request carrying `Idempotency-Key` (1–255 visible
//! ASCII characters) is recorded per principal (`user:<id>` from the bearer token) with a
//! fingerprint of method, path and body (SHA-256):
//!
//! * first time: the request runs; its response (status, body, `Location`/`ETag`/
//!   `Content-Type`) is stored for `idempotency_ttl_s` (24 h);
//! * same key, same fingerprint, finished: the stored response is replayed with
//!   `Idempotent-Replayed: true`;
//! * same key, different fingerprint: 422 `idempotency_key_reused`;
//! * same key while the first request is still running: 409 `idempotency_key_in_use`.
//!
//! A 5xx or a 429 is not stored (the record is dropped, so a retry runs again). The operation
//! and the recording run in their own task, so a client that disconnects after the work
//! committed still gets the stored response on its retry. A record left `in_flight` by a
//! crashed node is taken over after twice `request_timeout_s`.

use chrono::Utc;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, http::StatusCode};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    sea_query::Expr,
};
use sha2::{Digest, Sha256};

use crate::{app::AppState, entity::idempotency_key, error::AppError, error::FieldError};

/// Request header.
pub const HEADER: &str = "idempotency-key";
/// Response header on a replay.
pub const REPLAYED: &str = "idempotent-replayed";

/// `(method, path template)` of the operations that honour `Idempotency-Key`.
pub const COVERED: &[(&str, &str)] = &[
    ("POST", "/v1/orgs/{}/agents"),
    ("POST", "/v1/orgs/{}/sessions"),
    ("POST", "/v1/orgs/{}/sessions/{}/stop"),
    ("POST", "/v1/orgs/{}/sessions/{}/events"),
    ("POST", "/v1/orgs/{}/sessions/{}/commands"),
];

/// Response headers stored and replayed besides the body.
const KEPT_HEADERS: [&str; 3] = ["content-type", "location", "etag"];

fn covered(method: &str, path: &str) -> bool {
    COVERED.iter().any(|(m, t)| {
        *m == method && {
            let (mut a, mut b) = (t.split('/'), path.split('/'));
            loop {
                match (a.next(), b.next()) {
                    (None, None) => break true,
                    (Some("{}"), Some(seg)) if !seg.is_empty() => {}
                    (Some(x), Some(y)) if x == y => {}
                    _ => break false,
                }
            }
        }
    })
}

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

/// The middleware; needs `AppState` in the request data (install it inside `.data(state)`).
pub struct Idempotency;

impl<E: Endpoint + 'static> Middleware<E> for Idempotency {
    type Output = IdempotencyEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        IdempotencyEndpoint {
            inner: std::sync::Arc::new(ep),
        }
    }
}

/// See [`Idempotency`].
pub struct IdempotencyEndpoint<E> {
    inner: std::sync::Arc<E>,
}

enum Begin {
    Run,
    Replay(idempotency_key::Model),
    Reused,
    InFlight,
}

async fn begin(
    db: &DatabaseConnection,
    principal: &str,
    key: &str,
    fp: &str,
    ttl_s: u64,
    lock_s: u64,
) -> Result<Begin, sea_orm::DbErr> {
    for _ in 0..3 {
        let now = Utc::now();
        let row = idempotency_key::ActiveModel {
            principal: Set(principal.to_owned()),
            key: Set(key.to_owned()),
            fingerprint: Set(fp.to_owned()),
            status: Set("in_flight".into()),
            response_status: Set(None),
            response_headers: Set(None),
            response_body: Set(None),
            locked_until: Set(now + chrono::Duration::seconds(lock_s as i64)),
            created_at: Set(now),
            expires_at: Set(now + chrono::Duration::seconds(ttl_s as i64)),
        };
        match idempotency_key::Entity::insert(row)
            .exec_without_returning(db)
            .await
        {
            Ok(_) => return Ok(Begin::Run),
            Err(e)
                if matches!(
                    e.sql_err(),
                    Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                ) => {}
            Err(e) => return Err(e),
        }
        let Some(existing) =
            idempotency_key::Entity::find_by_id((principal.to_owned(), key.to_owned()))
                .one(db)
                .await?
        else {
            continue; // Deleted meanwhile: try again.
        };
        if existing.expires_at <= now {
            delete(db, principal, key).await?;
            continue;
        }
        if existing.fingerprint != fp {
            return Ok(Begin::Reused);
        }
        if existing.status == "completed" {
            return Ok(Begin::Replay(existing));
        }
        if existing.locked_until <= now {
            // Abandoned by a crashed request: take it over (compare-and-set on the lock).
            let taken = idempotency_key::Entity::update_many()
                .col_expr(
                    idempotency_key::Column::LockedUntil,
                    Expr::value(now + chrono::Duration::seconds(lock_s as i64)),
                )
                .filter(idempotency_key::Column::Principal.eq(principal))
                .filter(idempotency_key::Column::Key.eq(key))
                .filter(idempotency_key::Column::LockedUntil.eq(existing.locked_until))
                .exec(db)
                .await?
                .rows_affected;
            if taken == 1 {
                return Ok(Begin::Run);
            }
        }
        return Ok(Begin::InFlight);
    }
    Ok(Begin::InFlight)
}

async fn delete(db: &DatabaseConnection, principal: &str, key: &str) -> Result<(), sea_orm::DbErr> {
    idempotency_key::Entity::delete_many()
        .filter(idempotency_key::Column::Principal.eq(principal))
        .filter(idempotency_key::Column::Key.eq(key))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes records past their retention. Errors: database errors.
pub async fn purge_expired(db: &impl ConnectionTrait) -> Result<u64, sea_orm::DbErr> {
    Ok(idempotency_key::Entity::delete_many()
        .filter(idempotency_key::Column::ExpiresAt.lte(Utc::now()))
        .exec(db)
        .await?
        .rows_affected)
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
        let (Some(key), true) = (key, covered(&method, &path)) else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        if !valid_key(&key) {
            return Ok(AppError::BadRequest {
                code: "invalid_parameter",
                detail: "header `Idempotency-Key` must be 1 to 255 visible ASCII characters".into(),
                errors: vec![FieldError::new(
                    "Idempotency-Key",
                    "1 to 255 visible ASCII characters",
                )],
            }
            .into_response());
        }
        let Some(state) = req.data::<AppState>().cloned() else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        // The principal: a valid bearer token's subject. Without one the operation answers
        // 401 itself and nothing is recorded.
        let principal = req
            .headers()
            .get(poem::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|t| state.keyring.verify(t.trim()).ok())
            .map(|c| format!("user:{}", c.sub));
        let Some(principal) = principal else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        let body = req.take_body().into_bytes().await?;
        let fp = fingerprint(&method, &path, &body);
        let lock_s = state.config.request_timeout_s.saturating_mul(2);
        let begun = begin(
            &state.db,
            &principal,
            &key,
            &fp,
            state.config.idempotency_ttl_s,
            lock_s,
        )
        .await
        .map_err(|e| poem::Error::from(AppError::Internal(e.into())))?;
        match begun {
            Begin::Run => {}
            Begin::Replay(stored) => return Ok(replay(stored)),
            Begin::Reused => {
                let mut p = super::problem::Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
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
                    "idempotency_key_in_use",
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
        let work = async move {
            let resp = match inner.call(req).await {
                Ok(r) => r.into_response(),
                Err(e) => super::problem::from_poem_error(e),
            };
            finish(&state.db, &principal, &key, resp).await
        };
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
    principal: &str,
    key: &str,
    mut resp: Response,
) -> poem::Result<Response> {
    let status = resp.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        if let Err(e) = delete(db, principal, key).await {
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
    let stored = idempotency_key::Entity::update_many()
        .col_expr(idempotency_key::Column::Status, Expr::value("completed"))
        .col_expr(
            idempotency_key::Column::ResponseStatus,
            Expr::value(i32::from(status.as_u16())),
        )
        .col_expr(
            idempotency_key::Column::ResponseHeaders,
            Expr::value(serde_json::Value::Object(headers)),
        )
        .col_expr(
            idempotency_key::Column::ResponseBody,
            Expr::value(bytes.to_vec()),
        )
        .filter(idempotency_key::Column::Principal.eq(principal))
        .filter(idempotency_key::Column::Key.eq(key))
        .exec(db)
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
    fn covered_operations_and_keys() {
        assert!(covered("POST", "/v1/orgs/a/sessions"));
        assert!(covered("POST", "/v1/orgs/a/sessions/b/events"));
        assert!(!covered("GET", "/v1/orgs/a/sessions"));
        assert!(!covered("POST", "/v1/orgs/a/sessions/b/events/stream"));
        assert!(!covered("POST", "/v1/orgs//sessions"));
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
