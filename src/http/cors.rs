//! CORS (the Fetch standard's CORS protocol) for browser apps on other origins.
//!
//! * **Same origin**: untouched and always served — browsers send `Origin` on every
//!   same-origin POST/PUT/PATCH/DELETE (Swagger UI's "Try it out", the console), and nothing
//!   here ever refuses a request.
//! * **An allowed origin** (exactly one of `cors_allowed_origins`): a preflight (`OPTIONS`
//!   with `Access-Control-Request-Method`) answers 204 with the methods and request headers
//!   the API reads ([`ALLOWED_HEADERS`]: credentials, `Idempotency-Key`, `If-Match`,
//!   `Last-Event-ID`, …); responses carry `Access-Control-Allow-Origin` and expose the
//!   response headers clients read ([`EXPOSED_HEADERS`]).
//! * **Any other origin**: no CORS headers at all, never an error: the browser withholds the
//!   response from the page (a preflight gets a bare 204, so the browser refuses the request
//!   itself). Requests without a browser (no `Origin`) are untouched.
//!
//! No credentials mode (`Access-Control-Allow-Credentials` is never sent): the API takes
//! bearer tokens and API keys in headers, not cookies. Every response carries
//! `Vary: Origin`.

use std::{collections::HashSet, sync::Arc};

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
};

/// Request headers a cross-origin page may send.
pub const ALLOWED_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "idempotency-key",
    "if-match",
    "last-event-id",
    "x-api-key",
    "x-request-id",
];

/// Response headers a cross-origin page may read.
pub const EXPOSED_HEADERS: &[&str] = &[
    "deprecation",
    "etag",
    "idempotent-replayed",
    "link",
    "location",
    "ratelimit",
    "ratelimit-policy",
    "retry-after",
    "sunset",
    "x-request-id",
];

/// Methods a cross-origin page may use.
pub const ALLOWED_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";

/// Preflight results may be cached this long (s).
pub const MAX_AGE_S: u32 = 600;

/// The CORS middleware, built from the allowed origins.
#[derive(Clone)]
pub struct Cors {
    allowed: Arc<HashSet<String>>,
}

impl Cors {
    /// `allowed_origins`: exact origins (`https://app.example.com`, no trailing slash).
    pub fn new(allowed_origins: &[String]) -> Self {
        Self {
            allowed: Arc::new(
                allowed_origins
                    .iter()
                    .map(|o| o.trim_end_matches('/').to_owned())
                    .collect(),
            ),
        }
    }
}

impl<E: Endpoint + 'static> Middleware<E> for Cors {
    type Output = CorsEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        CorsEndpoint {
            cors: self.clone(),
            inner: ep,
        }
    }
}

/// See [`Cors`].
pub struct CorsEndpoint<E> {
    cors: Cors,
    inner: E,
}

fn vary_origin(headers: &mut HeaderMap) {
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

fn joined(names: &[&str]) -> HeaderValue {
    HeaderValue::from_str(&names.join(", ")).expect("header names are visible ASCII")
}

impl<E: Endpoint + 'static> Endpoint for CorsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .map(str::to_owned);
        let Some(origin) = origin else {
            let mut resp = self.inner.call(req).await?.into_response();
            vary_origin(resp.headers_mut());
            return Ok(resp);
        };
        let allowed = self.cors.allowed.contains(&origin);
        let preflight = req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if preflight {
            let mut resp = Response::builder().status(StatusCode::NO_CONTENT).finish();
            let h = resp.headers_mut();
            vary_origin(h);
            if allowed && let Ok(o) = HeaderValue::from_str(&origin) {
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(ALLOWED_METHODS),
                );
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    joined(ALLOWED_HEADERS),
                );
                h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(MAX_AGE_S));
            }
            return Ok(resp);
        }
        let mut resp = self.inner.call(req).await?.into_response();
        let h = resp.headers_mut();
        vary_origin(h);
        if allowed && let Ok(o) = HeaderValue::from_str(&origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                joined(EXPOSED_HEADERS),
            );
        }
        Ok(resp)
    }
}
