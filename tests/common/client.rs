//! The status-asserting HTTP client. [`Client`] is one server's base URL, a connection pool and
//! an optional bearer token, with typed calls ([`Client::post`], [`Client::get`]) that assert
//! the status and decode the answer, and [`Call`], a request builder for everything else
//! (headers, raw bodies, other methods, any status). Every failure names the call and the
//! answer's body.

use std::time::Duration;

use reqwest::{Method, header::HeaderMap};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use super::sse::Sse;

/// Overall limit of one request (streams have their own: see [`Client::sse`]).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one server.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// A connection pool of its own.
fn pool() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("HTTP client")
}

impl Client {
    /// An anonymous client of the server at `base` (`http://host:port`) with its own pool.
    pub fn new(base: impl Into<String>) -> Self {
        Self::sharing(pool(), base)
    }

    /// An anonymous client of the server at `base` on the connection pool `http`.
    pub fn sharing(http: reqwest::Client, base: impl Into<String>) -> Self {
        Self {
            http,
            base: base.into(),
            token: None,
        }
    }

    /// The same server and credential over a connection pool of its own.
    pub fn with_own_pool(&self) -> Self {
        Self {
            http: pool(),
            ..self.clone()
        }
    }

    /// This client, authenticated with `token` (a JWT or an API key) as a bearer credential.
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Starts a request, with this client's credential if it has one.
    pub fn call(&self, method: Method, path: &str) -> Call {
        let rb = self.http.request(method, self.url(path));
        Call {
            rb: match &self.token {
                Some(t) => rb.bearer_auth(t),
                None => rb,
            },
        }
    }

    /// `POST path` with the JSON `body`; asserts `status`; the answer decoded as `Out`.
    pub async fn post<In, Out>(&self, path: &str, body: &In, status: u16) -> Out
    where
        In: Serialize + ?Sized,
        Out: DeserializeOwned,
    {
        self.call(Method::POST, path)
            .json(body)
            .expect(status)
            .await
            .parse()
    }

    /// `GET path`; asserts `status`; the answer decoded as `Out`.
    pub async fn get<Out: DeserializeOwned>(&self, path: &str, status: u16) -> Out {
        self.call(Method::GET, path).expect(status).await.parse()
    }

    /// Opens the SSE stream at `path` with extra `headers`; asserts a 200 `text/event-stream`.
    /// The stream is exempt from [`REQUEST_TIMEOUT`]; [`Sse::next`] has an idle limit.
    pub async fn sse(&self, path: &str, headers: &[(&str, &str)]) -> Sse {
        let mut call = self
            .call(Method::GET, path)
            .header("accept", "text/event-stream");
        for (k, v) in headers {
            call = call.header(k, v);
        }
        let r = call
            .rb
            .timeout(Duration::from_secs(3600))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        if r.status() != 200 {
            let status = r.status();
            panic!(
                "GET {path}: stream refused with {status}: {}",
                r.text().await.unwrap_or_default()
            );
        }
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        assert!(
            ct.is_some_and(|c| c.starts_with("text/event-stream")),
            "GET {path}: not an event stream: {ct:?}"
        );
        Sse::new(r)
    }
}

/// How a test caller authenticates.
#[derive(Clone, Debug)]
pub enum Cred {
    /// `Authorization: Bearer <JWT or ad_ key>`.
    Bearer(String),
    /// `X-API-Key: <ad_ key>`.
    ApiKey(String),
}

/// A request being built.
pub struct Call {
    rb: reqwest::RequestBuilder,
}

impl Call {
    pub fn token(mut self, token: &str) -> Self {
        self.rb = self.rb.bearer_auth(token);
        self
    }
    /// Authenticates with `cred`: a bearer credential (JWT or API key) or `X-API-Key`.
    pub fn cred(mut self, cred: &Cred) -> Self {
        self.rb = match cred {
            Cred::Bearer(t) => self.rb.bearer_auth(t),
            Cred::ApiKey(k) => self.rb.header("x-api-key", k),
        };
        self
    }
    /// A JSON body serialised from `body` (a `json!` value or any `Serialize`).
    pub fn json(mut self, body: impl Serialize) -> Self {
        self.rb = self.rb.json(&body);
        self
    }
    /// A JSON body already serialised (e.g. once for many requests).
    pub fn json_bytes(self, body: impl Into<reqwest::Body>) -> Self {
        self.header("content-type", "application/json").body(body)
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.rb = self.rb.header(name, value);
        self
    }
    pub fn body(mut self, body: impl Into<reqwest::Body>) -> Self {
        self.rb = self.rb.body(body);
        self
    }

    /// Sends and returns the response, whatever its status.
    pub async fn send(self) -> Resp {
        let (client, request) = self.rb.build_split();
        let request = request.expect("request built");
        let what = format!("{} {}", request.method(), request.url().path());
        let r = client
            .execute(request)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            what,
            status,
            headers,
            body,
            text,
            bytes,
        }
    }

    /// Sends and asserts the status; every 5xx fails the test unless expected.
    pub async fn expect(self, status: u16) -> Resp {
        let r = self.send().await;
        assert_eq!(
            r.status, status,
            "{}: unexpected status; body: {}",
            r.what, r.text
        );
        r
    }
}

/// A response: status, headers, the raw body and the JSON body (`Null` when empty or not
/// JSON).
#[derive(Debug)]
pub struct Resp {
    /// `METHOD /path` of the request, for messages.
    pub what: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
    /// The body as sent (binary bodies: `text` is its lossy UTF-8 reading).
    pub bytes: bytes::Bytes,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body decoded as `T` (an empty body is `null`, so `()` decodes it).
    pub fn parse<T: DeserializeOwned>(&self) -> T {
        T::deserialize(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: answer is not a {}: {e}; body: {}",
                self.what,
                std::any::type_name::<T>(),
                self.text
            )
        })
    }

    /// Asserts an RFC 9457 problem with `code`.
    pub fn assert_problem(&self, code: &str) -> &Self {
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/problem+json")),
            "not a problem: {self:?}"
        );
        assert_eq!(self.body["code"], code, "{}", self.text);
        assert!(
            code.parse::<agentdesk::error::ProblemCode>().is_ok(),
            "`{code}` is not in the ProblemCode list the spec publishes"
        );
        assert_eq!(self.body["status"], self.status, "{}", self.text);
        assert_eq!(self.body["type"], format!("urn:agentdesk:problem:{code}"));
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
        self
    }

    /// The `field` names of a validation problem.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

// Typed answers (the fields callers read; the server sends more).

/// What a create answers: at least the new resource's `id`.
#[derive(Debug, Deserialize)]
pub struct Created {
    pub id: String,
}

/// `POST /v1/auth/login`.
#[derive(Debug, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
}

/// `POST …/events`: the appended events got seqs `first_seq..=last_seq`.
#[derive(Debug, Deserialize)]
pub struct Appended {
    pub first_seq: i64,
    pub last_seq: i64,
}
