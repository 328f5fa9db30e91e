//! HTTP transport only: RFC 9457 problems, middleware (request id, logging, metrics,
//! security headers, CORS, rate limits, body limit, timeout) and the Swagger UI handler.
//! Business rules live in `domain/`; the contract in `api/`.

pub mod deprecation;
pub mod docs;
pub mod idempotency;
pub mod metrics;
pub mod middleware;
pub mod problem;
pub mod ratelimit;
pub mod validation;
