//! Paths of the API, built one way for tests and benches. Queries are appended by the caller.

/// Path builders: `Urls::session(org, id)` is `/v1/orgs/{org}/sessions/{id}`.
pub struct Urls;

impl Urls {
    pub fn register() -> String {
        "/v1/auth/register".into()
    }
    pub fn signup() -> String {
        "/v1/auth/signup".into()
    }
    pub fn verify_email() -> String {
        "/v1/auth/verify-email".into()
    }
    pub fn invitations(org: &str) -> String {
        format!("/v1/orgs/{org}/invitations")
    }
    pub fn login() -> String {
        "/v1/auth/login".into()
    }
    pub fn orgs() -> String {
        "/v1/orgs".into()
    }
    pub fn org(org: &str) -> String {
        format!("/v1/orgs/{org}")
    }
    pub fn members(org: &str) -> String {
        format!("/v1/orgs/{org}/members")
    }
    pub fn roles(org: &str) -> String {
        format!("/v1/orgs/{org}/roles")
    }
    pub fn api_keys(org: &str) -> String {
        format!("/v1/orgs/{org}/api-keys")
    }
    pub fn agents(org: &str) -> String {
        format!("/v1/orgs/{org}/agents")
    }
    pub fn jobs(org: &str) -> String {
        format!("/v1/orgs/{org}/jobs")
    }
    /// The org's status stream (SSE).
    pub fn org_stream(org: &str) -> String {
        format!("/v1/orgs/{org}/events/stream")
    }
    pub fn sessions(org: &str) -> String {
        format!("/v1/orgs/{org}/sessions")
    }
    pub fn session(org: &str, session: &str) -> String {
        format!("/v1/orgs/{org}/sessions/{session}")
    }
    pub fn stop(org: &str, session: &str) -> String {
        format!("/v1/orgs/{org}/sessions/{session}/stop")
    }
    /// A session's event log: `GET` reads it, `POST` appends.
    pub fn events(org: &str, session: &str) -> String {
        format!("/v1/orgs/{org}/sessions/{session}/events")
    }
    /// A session's event stream (SSE).
    pub fn event_stream(org: &str, session: &str) -> String {
        format!("/v1/orgs/{org}/sessions/{session}/events/stream")
    }
    pub fn commands(org: &str, session: &str) -> String {
        format!("/v1/orgs/{org}/sessions/{session}/commands")
    }
    /// A session's artifacts (`artifacts.list`).
    pub fn artifacts(org: &str, session: &str) -> String {
        format!("/v1/orgs/{org}/sessions/{session}/artifacts")
    }
    /// One artifact's bytes (`artifacts.get`).
    pub fn artifact(org: &str, session: &str, id: &str) -> String {
        format!("/v1/orgs/{org}/sessions/{session}/artifacts/{id}")
    }
}
