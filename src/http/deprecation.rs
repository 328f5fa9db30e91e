//! Deprecation of operations (RFC 9745 `Deprecation`, RFC 8594 `Sunset`, `Link:
//! rel="deprecation"`).
//!
//! One mechanism, declared next to the operation, in two halves that a contract test keeps
//! together (`tests/contract.rs`): the operation carries `#[oai(deprecated)]`, which marks it
//! `deprecated: true` in the spec, and its module lists it in its `DEPRECATIONS` table (a
//! [`Deprecation`] with the date it was deprecated, its sunset and a link to the migration
//! notes). [`Deprecations`], a middleware over all the tables (`api::deprecations`),
//! adds the three headers to every response of those operations. A deprecated operation lives
//! until its sunset (at least 6 months, see the README); breaking changes go to `/v2`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, http::HeaderValue};

/// A deprecated operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deprecation {
    /// HTTP method, upper case (`GET`).
    pub method: &'static str,
    /// The spec's path template (`/v1/orgs/{org_id}/legacy`).
    pub path: &'static str,
    /// When it was deprecated: Unix time (s), sent as `Deprecation: @<s>` (RFC 9745 §2.1).
    pub deprecated_at: i64,
    /// When it stops working: Unix time (s), sent as an HTTP-date in `Sunset` (RFC 8594 §3).
    pub sunset_at: i64,
    /// Migration notes, sent as `Link: <…>; rel="deprecation"` (RFC 9745 §3).
    pub link: &'static str,
}

impl Deprecation {
    /// The three header values: `Deprecation`, `Sunset`, `Link`.
    pub fn headers(&self) -> [(&'static str, String); 3] {
        let sunset = DateTime::<Utc>::from_timestamp(self.sunset_at, 0)
            .unwrap_or_default()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        [
            ("deprecation", format!("@{}", self.deprecated_at)),
            ("sunset", sunset),
            ("link", format!("<{}>; rel=\"deprecation\"", self.link)),
        ]
    }
}

/// The middleware adding the headers to responses of deprecated operations.
#[derive(Clone, Debug, Default)]
pub struct Deprecations {
    table: Arc<Vec<Deprecation>>,
}

impl Deprecations {
    /// Over `table`.
    pub fn new(table: Vec<Deprecation>) -> Self {
        Self {
            table: Arc::new(table),
        }
    }

    fn find(&self, method: &str, path: &str) -> Option<&Deprecation> {
        self.table
            .iter()
            .find(|d| d.method == method && super::validation::template_matches(d.path, path))
    }
}

impl<E: Endpoint> Middleware<E> for Deprecations {
    type Output = DeprecationsEndpoint<E>;
    fn transform(&self, inner: E) -> Self::Output {
        DeprecationsEndpoint {
            inner,
            table: self.clone(),
        }
    }
}

/// See [`Deprecations`].
pub struct DeprecationsEndpoint<E> {
    inner: E,
    table: Deprecations,
}

impl<E: Endpoint> Endpoint for DeprecationsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let found = self
            .table
            .find(req.method().as_str(), req.uri().path())
            .copied();
        let result = self.inner.call(req).await;
        let Some(d) = found else {
            return result.map(IntoResponse::into_response);
        };
        let mut resp = match result {
            Ok(r) => r.into_response(),
            Err(e) => super::problem::from_poem_error(e),
        };
        for (name, value) in d.headers() {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_formats() {
        let d = Deprecation {
            method: "GET",
            path: "/v1/things/{id}",
            deprecated_at: 1_767_225_600, // 2026-01-01
            sunset_at: 1_782_864_000,     // 2026-07-01
            link: "https://docs.example/migrate",
        };
        let h = d.headers();
        assert_eq!(h[0].1, "@1767225600");
        assert_eq!(h[1].1, "Wed, 01 Jul 2026 00:00:00 GMT");
        assert_eq!(
            h[2].1,
            "<https://docs.example/migrate>; rel=\"deprecation\""
        );
        let t = Deprecations::new(vec![d]);
        assert!(t.find("GET", "/v1/things/abc").is_some());
        assert!(t.find("POST", "/v1/things/abc").is_none());
    }
}
