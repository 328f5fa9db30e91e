//! The untimed part: what the scenarios need, made over HTTP as a client would (sign-up,
//! log-in, an org, API keys, an agent, running sessions, events), and the event batches the
//! appenders send.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use reqwest::Method;
use serde_json::{Value, json};

/// Size of each appended event's payload as compact JSON (bytes).
pub const PAYLOAD_BYTES: usize = 100;
/// Sessions made for `sessions.list` (a full default page of 50, one more for `next_cursor`).
pub const LIST_SESSIONS: usize = 51;
/// Events in the session `events.list` reads (more than the 200 it asks for).
pub const READ_EVENTS: usize = 300;
/// Longest wait for a new session to be `running`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP client of the server for the set-up (30 s timeout per request).
#[derive(Clone, Debug)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// What the set-up made.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The owner's access token (JWT).
    pub token: String,
    /// The owner's e-mail and password, to log in again on a second server.
    pub login: (String, String),
    /// A `viewer` API key's secret (reads).
    pub viewer_key: String,
    /// An `operator` API key's secret (appends, as an agent runner would).
    pub operator_key: String,
    /// The org.
    pub org: String,
    /// The agent every session runs.
    pub agent: String,
    /// A running session with [`READ_EVENTS`] events: `sessions.get` and `events.list` read it.
    pub read_session: String,
}

/// A `POST …/events` body of `n` `log` events, each payload [`PAYLOAD_BYTES`] long.
pub fn batch_body(n: usize) -> Bytes {
    // {"line":"…"} is 11 bytes around the string.
    let payload = json!({ "line": "x".repeat(PAYLOAD_BYTES - 11) });
    debug_assert_eq!(payload.to_string().len(), PAYLOAD_BYTES);
    let events: Vec<Value> = (0..n)
        .map(|_| json!({ "kind": "log", "payload": payload }))
        .collect();
    Bytes::from(json!({ "events": events }).to_string())
}

impl Api {
    /// A client of the server at `base` (`http://127.0.0.1:<port>`).
    pub fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            base: base.to_owned(),
        })
    }

    /// `method path` with an optional bearer `token` and JSON `body`; the JSON answer, or an
    /// error naming the call when the status is not `expect`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        expect: u16,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        if status != expect {
            bail!("{method} {path}: expected {expect}, got {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Signs up a user (no e-mail verification needed for what follows) and logs in; returns
    /// `(email, password)`.
    pub async fn sign_up(&self) -> anyhow::Result<(String, String)> {
        let email = format!("bench-{}@example.com", crate::scratch::random_hex(6)?);
        let password = "benchmark correct horse battery".to_owned();
        self.call(
            Method::POST,
            "/v1/auth/signup",
            None,
            Some(&json!({ "email": email, "password": password, "display_name": "Bench" })),
            202,
        )
        .await?;
        Ok((email, password))
    }

    /// Logs in; returns the access token.
    pub async fn log_in(&self, email: &str, password: &str) -> anyhow::Result<String> {
        let r = self
            .call(
                Method::POST,
                "/v1/auth/login",
                None,
                Some(&json!({ "email": email, "password": password })),
                200,
            )
            .await?;
        str_field(&r, "access_token")
    }

    /// Starts `n` sessions of `agent` and waits until all are `running`; returns their ids.
    pub async fn running_sessions(
        &self,
        token: &str,
        org: &str,
        agent: &str,
        n: usize,
    ) -> anyhow::Result<Vec<String>> {
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let s = self
                .call(
                    Method::POST,
                    &format!("/v1/orgs/{org}/sessions"),
                    Some(token),
                    Some(&json!({ "agent_id": agent })),
                    202,
                )
                .await?;
            ids.push(str_field(&s, "id")?);
        }
        let deadline = Instant::now() + START_TIMEOUT;
        for id in &ids {
            loop {
                let s = self
                    .call(
                        Method::GET,
                        &format!("/v1/orgs/{org}/sessions/{id}"),
                        Some(token),
                        None,
                        200,
                    )
                    .await?;
                match s["status"].as_str() {
                    Some("running") => break,
                    Some("failed" | "stopped") => bail!("session {id} ended before running: {s}"),
                    _ => {}
                }
                ensure!(
                    Instant::now() < deadline,
                    "session {id} not running within {START_TIMEOUT:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(ids)
    }

    /// Asks each session to stop (202); does not wait for `stopped`.
    pub async fn stop_sessions(
        &self,
        token: &str,
        org: &str,
        ids: &[String],
    ) -> anyhow::Result<()> {
        for id in ids {
            self.call(
                Method::POST,
                &format!("/v1/orgs/{org}/sessions/{id}/stop"),
                Some(token),
                None,
                202,
            )
            .await?;
        }
        Ok(())
    }

    /// The seq of the last event in `session`'s log (`events.list`, `next_after_seq`).
    pub async fn last_seq(&self, token: &str, org: &str, session: &str) -> anyhow::Result<i64> {
        let mut after = 0;
        loop {
            let page = self
                .call(
                    Method::GET,
                    &format!(
                        "/v1/orgs/{org}/sessions/{session}/events?after_seq={after}&limit=500"
                    ),
                    Some(token),
                    None,
                    200,
                )
                .await?;
            after = page["next_after_seq"]
                .as_i64()
                .context("events.list without next_after_seq")?;
            if page["has_more"] != Value::Bool(true) {
                return Ok(after);
            }
        }
    }

    /// Appends the serialised batch `body` to `session` (201); returns `(first_seq, last_seq)`.
    pub async fn append(
        &self,
        token: &str,
        org: &str,
        session: &str,
        body: &Bytes,
    ) -> anyhow::Result<(i64, i64)> {
        let path = format!("/v1/orgs/{org}/sessions/{session}/events");
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = r.status().as_u16();
        let bytes = r.bytes().await?;
        parse_appended(status, &bytes).with_context(|| format!("POST {path}"))
    }
}

/// `(first_seq, last_seq)` of an `events.append` answer. Errors: not 201, or no seqs.
pub fn parse_appended(status: u16, body: &[u8]) -> anyhow::Result<(i64, i64)> {
    if status != 201 {
        bail!(
            "expected 201, got {status}: {}",
            String::from_utf8_lossy(body)
        );
    }
    let v: Value = serde_json::from_slice(body)?;
    match (v["first_seq"].as_i64(), v["last_seq"].as_i64()) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => bail!("no first_seq/last_seq in {v}"),
    }
}

fn str_field(v: &Value, name: &str) -> anyhow::Result<String> {
    v[name]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no {name:?} in {v}"))
}

/// Makes everything the scenarios read: a user and its token, an org, a `viewer` and an
/// `operator` key, an agent, [`LIST_SESSIONS`] running sessions (one of them with
/// [`READ_EVENTS`] events). The audit log gets its entries on the way (org, keys, agent,
/// sessions).
pub async fn setup(api: &Api) -> anyhow::Result<Setup> {
    let (email, password) = api.sign_up().await?;
    let token = api.log_in(&email, &password).await?;
    let t = Some(token.as_str());
    let org = str_field(
        &api.call(
            Method::POST,
            "/v1/orgs",
            t,
            Some(&json!({ "name": "Bench" })),
            201,
        )
        .await?,
        "id",
    )?;
    let key = |role: &'static str| {
        let org = org.clone();
        async move {
            let r = api
                .call(
                    Method::POST,
                    &format!("/v1/orgs/{org}/api-keys"),
                    t,
                    Some(&json!({ "name": format!("bench {role}"), "role": role })),
                    201,
                )
                .await?;
            str_field(&r, "secret")
        }
    };
    let viewer_key = key("viewer").await?;
    let operator_key = key("operator").await?;
    let agent = str_field(
        &api.call(
            Method::POST,
            &format!("/v1/orgs/{org}/agents"),
            t,
            Some(&json!({ "name": "bench-agent", "model": "bench-model", "capabilities": [] })),
            201,
        )
        .await?,
        "id",
    )?;
    let sessions = api
        .running_sessions(&token, &org, &agent, LIST_SESSIONS)
        .await?;
    let read_session = sessions[0].clone();
    let body = batch_body(100);
    for _ in 0..READ_EVENTS / 100 {
        api.append(&token, &org, &read_session, &body).await?;
    }
    Ok(Setup {
        token,
        login: (email, password),
        viewer_key,
        operator_key,
        org,
        agent,
        read_session,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_payloads_have_the_stated_size() {
        let v: Value = serde_json::from_slice(&batch_body(3)).unwrap();
        let events = v["events"].as_array().unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0]["kind"], "log");
        assert_eq!(events[0]["payload"].to_string().len(), PAYLOAD_BYTES);
    }

    #[test]
    fn appended_answers() {
        assert_eq!(
            parse_appended(201, br#"{"first_seq":3,"last_seq":102}"#).unwrap(),
            (3, 102)
        );
        assert!(parse_appended(409, b"{}").is_err());
        assert!(parse_appended(201, b"{}").is_err());
    }
}
