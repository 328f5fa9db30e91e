//! HTTP transport only: RFC 9457 problems, middleware (request id, logging, metrics,
//! security headers, CORS, rate limits, body limit, timeout, the principal resolved once per
//! request, idempotency, deprecation headers), the contract as the request path reads it, and
//! the Swagger UI handler. Every middleware is built with what it needs; nothing here names
//! `api`, `app` or `jobs`. Business rules live in `domain/`; the contract in `api/`.

pub mod console;
pub mod cors;
pub mod deprecation;
pub mod docs;
pub mod idempotency;
pub mod metrics;
pub mod middleware;
pub mod principal;
pub mod problem;
pub mod ratelimit;
pub mod timing;
pub mod validation;
