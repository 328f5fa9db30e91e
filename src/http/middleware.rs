//! The middleware stack, outermost first (see [`wrap`]):
//!
//! 1. **edge**: accepts a sane `X-Request-Id` (1–128 of `[A-Za-z0-9._-]`) or makes one, runs
//!    the request inside a tracing span and a problem context carrying it, turns every error
//!    into `application/problem+json`, records metrics, logs one line per request, and sets
//!    security headers (strict CSP on the API, the console's own on `/console`, a looser one
//!    on `/docs` only).
//! 2. **CORS** from `cors_allowed_origins` (none by default; see [`super::cors`]).
//! 3. **rate limits** per client IP (stricter on `/v1/auth/*`).
//! 4. **body limit**: `body_limit_bytes`, by `Content-Length` or while reading a chunked body.
//! 5. **timeout**: `request_timeout_s`, then 503 `request_timeout`.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use poem::{
    Endpoint, EndpointExt, IntoResponse, PathPattern, Request, Response,
    http::{HeaderValue, Method, header},
};
use tracing::Instrument;

use super::{
    cors::Cors,
    problem::{RequestContext, from_poem_error, with_request_context},
    ratelimit::Limiters,
    validation::Contract,
};
use crate::{
    config::Config,
    domain::audit::AuditCtx,
    error::{AppError, ProblemCode},
};

/// Request header carrying the request id (also echoed on the response).
pub const REQUEST_ID: &str = "x-request-id";

/// CSP for API responses: nothing may load, nothing may frame.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// CSP for Swagger UI under `/docs`: its own scripts and styles (it injects inline styles and
/// its initializer), images as data URIs, fetches to this origin only.
pub const DOCS_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Response data (`Response::set_data`) of a response whose handler set its own
/// `Cache-Control`, which the edge then keeps instead of `no-store`: the content-addressed,
/// immutable bytes of `artifacts.get` (and their 304). Every other `/v1` response is
/// `no-store`.
#[derive(Clone, Copy, Debug)]
pub struct OwnCacheControl;

/// Who is calling, from where: inserted by the edge middleware for handlers.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    /// Client IP (`X-Forwarded-For` right-most entry when `trust_forwarded_for`).
    pub ip: Option<IpAddr>,
    /// `User-Agent`, truncated to 512 bytes.
    pub user_agent: Option<String>,
    /// The request id.
    pub request_id: String,
}

impl ClientInfo {
    /// The audit context for an anonymous caller.
    pub fn audit(&self) -> AuditCtx {
        AuditCtx {
            actor_id: None,
            actor_type: crate::domain::audit::ActorType::Anonymous,
            ip: self.ip.map(|i| i.to_string()),
            user_agent: self.user_agent.clone(),
            request_id: Some(self.request_id.clone()),
        }
    }
}

/// The request path as logged: one-time secrets that the contract puts in a path (the
/// invitation token of `invitations.accept`) are replaced by `{token}`, so no log line
/// carries them.
pub fn redact_path(path: &str) -> String {
    match path.strip_prefix("/v1/invitations/") {
        Some(rest) => match rest.split_once('/') {
            Some((_, tail)) => format!("/v1/invitations/{{token}}/{tail}"),
            None => "/v1/invitations/{token}".to_owned(),
        },
        None => path.to_owned(),
    }
}

fn sane_request_id(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// The client IP for `req`: the socket peer, or with `trust_forwarded_for` the right-most
/// `X-Forwarded-For` entry (the one the proxy in front appended). Only that entry is trusted:
/// when it does not parse as an IP, the socket peer is used, never an earlier entry the client
/// may have written.
pub fn client_ip(req: &Request, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for
        && let Some(ip) = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .and_then(|s| s.trim().parse::<IpAddr>().ok())
    {
        return Some(ip);
    }
    req.remote_addr().as_socket_addr().map(SocketAddr::ip)
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Wraps the application routes in the whole stack, built with what it needs: the
/// configuration, the limiters and the contract (the body check and problem answers read it).
pub fn wrap(
    app: impl Endpoint + 'static,
    config: Arc<Config>,
    limiters: Arc<Limiters>,
    contract: Arc<Contract>,
) -> impl Endpoint {
    let body_limit = config.body_limit_bytes as usize;
    let timeout = Duration::from_secs(config.request_timeout_s);
    let edge_config = config.clone();
    let edge_contract = contract.clone();
    app.around(move |ep, req| async move {
        match tokio::time::timeout(timeout, ep.call(req)).await {
            Ok(r) => r.map(IntoResponse::into_response),
            Err(_) => Ok(AppError::Unavailable {
                code: ProblemCode::RequestTimeout,
                detail: format!("the request did not finish within {} s", timeout.as_secs()),
            }
            .into_response()),
        }
    })
    .around(move |ep, req| {
        let contract = contract.clone();
        async move { body_limit_and_diagnosis(ep, req, body_limit, &contract).await }
    })
    .around(move |ep, req| {
        let limiters = limiters.clone();
        async move {
            let ip = client_ip(&req, limiters.trust_forwarded_for);
            let is_auth = req.uri().path().starts_with("/v1/auth/");
            let state = match limiters.check_ip(ip, is_auth) {
                Ok(state) => state,
                Err(err) => return Ok(err.into_response()),
            };
            let mut resp = match ep.call(req).await {
                Ok(resp) => resp.into_response(),
                // Unmatched routes keep their error type so the edge labels them `unmatched`.
                Err(err) if err.is::<poem::error::NotFoundError>() => return Err(err),
                Err(err) => {
                    let route = err.data::<PathPattern>().cloned();
                    let mut resp = from_poem_error(err);
                    if let Some(route) = route {
                        resp.set_data(route);
                    }
                    resp
                }
            };
            state.apply(&mut resp);
            Ok(resp)
        }
    })
    .with(Cors::new(&config.cors_allowed_origins))
    .around(move |ep, req| {
        let (config, contract) = (edge_config.clone(), edge_contract.clone());
        edge(ep, req, config, contract)
    })
}

/// Enforces `body_limit_bytes` (by `Content-Length`, or while reading a chunked body), keeps
/// the buffered body, and turns poem-openapi's body parse errors into field-level problems.
async fn body_limit_and_diagnosis<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    limit: usize,
    contract: &Contract,
) -> poem::Result<Response> {
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH) {
        match len.to_str().ok().and_then(|l| l.parse::<usize>().ok()) {
            Some(len) if len > limit => return Ok(too_large(limit)),
            Some(_) => {}
            None => {
                return Ok(AppError::BadRequest {
                    code: ProblemCode::InvalidContentLength,
                    detail: "Content-Length is not a number".into(),
                    errors: vec![],
                }
                .into_response());
            }
        }
    }
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return ep.call(req).await.map(IntoResponse::into_response);
    }
    let body = match req.take_body().into_bytes_limit(limit).await {
        Ok(bytes) => bytes,
        Err(poem::error::ReadBodyError::PayloadTooLarge) => return Ok(too_large(limit)),
        Err(e) => return Err(e.into()),
    };
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    // Without credentials an operation that needs them answers 401 first (as poem-openapi
    // checks the security scheme before the body), so the body is not judged here.
    let anonymous = !req.headers().contains_key(header::AUTHORIZATION)
        && !req.headers().contains_key(super::principal::API_KEY_HEADER);
    let judge = is_json && !(anonymous && contract.requires_auth(method.as_str(), &path));
    if judge && let Some(problem) = contract.precheck(method.as_str(), &path, &body) {
        return Ok(problem.into_response());
    }
    req.set_body(body.clone());
    match ep.call(req).await {
        Ok(resp) => Ok(resp.into_response()),
        Err(err) => match err.downcast_ref::<poem_openapi::error::ParseRequestPayloadError>() {
            Some(parse) => Ok(contract
                .diagnose(method.as_str(), &path, &body, &parse.reason)
                .into_response()),
            None => Err(err),
        },
    }
}

fn too_large(limit: usize) -> Response {
    AppError::PayloadTooLarge(format!("the request body is larger than {limit} bytes"))
        .into_response()
}

async fn edge<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    config: Arc<Config>,
    contract: Arc<Contract>,
) -> poem::Result<Response> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let path = redact_path(req.uri().path());
    let method = req.method().clone();
    let client = ClientInfo {
        ip: client_ip(&req, config.trust_forwarded_for),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| truncate(v, 512)),
        request_id: request_id.clone(),
    };
    req.extensions_mut().insert(client);
    let span =
        tracing::info_span!("request", request_id = %request_id, method = %method, path = %path);
    let ctx = RequestContext {
        request_id: request_id.clone(),
        path: path.clone(),
        contract: Some(contract),
        api_key_header: req.headers().contains_key("x-api-key"),
    };
    let ((mut resp, route), db) = super::timing::scope(
        with_request_context(ctx, async {
            // Boxed: the stack of endpoint futures is deep enough to hit rustc's layout limit.
            match Box::pin(ep.call(req)).await {
                Ok(resp) => {
                    let resp = resp.into_response();
                    let route = resp.data::<PathPattern>().map(|p| p.0.to_string());
                    (resp, route)
                }
                Err(err) => {
                    let unmatched = err.is::<poem::error::NotFoundError>();
                    let route = err
                        .data::<PathPattern>()
                        .map(|p| p.0.to_string())
                        .filter(|_| !unmatched);
                    (from_poem_error(err), route)
                }
            }
        })
        .instrument(span.clone()),
    )
    .await;
    let status = resp.status();
    let elapsed = started.elapsed();
    // Responses that never reached the router (413, 429, timeouts, body prechecks) share one
    // label: raw paths would let any client grow the metric set without bound.
    let route = route.unwrap_or_else(|| {
        if status.as_u16() == 404 {
            "unmatched".into()
        } else {
            "unrouted".into()
        }
    });
    super::metrics::record_request(method.as_str(), &route, status.as_u16(), elapsed);
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            route = %route,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            db_statements = db.statements,
            db_ms = db.elapsed.as_secs_f64() * 1000.0,
            "request"
        )
    });
    let own_cache_control = resp.data::<OwnCacheControl>().is_some()
        && resp.headers().contains_key(header::CACHE_CONTROL);
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID, v);
    }
    let csp = if path == "/docs" || path.starts_with("/docs/") {
        DOCS_CSP
    } else if path == "/console" || path.starts_with("/console/") {
        super::console::CONSOLE_CSP
    } else {
        API_CSP
    };
    headers.insert("content-security-policy", HeaderValue::from_static(csp));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    // Everything under /v1 is private and per caller: never stored by a cache. This also
    // replaces the `no-cache` poem puts on event streams (SSE), as the README promises. The
    // one exception is marked by its handler ([`OwnCacheControl`]): immutable artifact bytes.
    if path.starts_with("/v1/") && !own_cache_control {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if config.server_timing
        && let Ok(v) = HeaderValue::from_str(&db.server_timing())
    {
        headers.insert("server-timing", v);
    }
    if config.hsts_max_age_s > 0
        && let Ok(v) = HeaderValue::from_str(&format!(
            "max-age={}; includeSubDomains",
            config.hsts_max_age_s
        ))
    {
        headers.insert("strict-transport-security", v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids() {
        assert!(sane_request_id("abc-123_x.y"));
        assert!(!sane_request_id(""));
        assert!(!sane_request_id("a b"));
        assert!(!sane_request_id(&"a".repeat(129)));
        assert!(!sane_request_id("<script>"));
    }

    #[test]
    fn invitation_tokens_never_reach_the_log() {
        assert_eq!(
            redact_path("/v1/invitations/inv_secret/accept"),
            "/v1/invitations/{token}/accept"
        );
        assert_eq!(redact_path("/v1/orgs/x"), "/v1/orgs/x");
    }

    #[test]
    fn forwarded_for_trusts_only_the_right_most_entry() {
        let req = |xff: &str| Request::builder().header("x-forwarded-for", xff).finish();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(&req("9.9.9.9, 10.0.0.1"), true), ip("10.0.0.1"));
        // An unparsable last entry never promotes the client-written one before it.
        assert_eq!(client_ip(&req("9.9.9.9, unknown"), true), None);
        assert_eq!(client_ip(&req("9.9.9.9, 10.0.0.1:4711"), true), None);
        // Off by default: the header is ignored.
        assert_eq!(client_ip(&req("9.9.9.9"), false), None);
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
