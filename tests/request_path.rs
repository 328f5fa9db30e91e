//! The request path (ARCHITECTURE §3, "One request path"), through the real server:
//! `Idempotency-Key` for API-key callers (the principal is resolved once, whatever the
//! credential), CORS for same-origin writes and for browser apps on allowed origins, and
//! `jobs.retry` waking a worker through the outbox.

use std::time::Duration;

use sea_orm::{ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};

use crate::{
    backend_tests,
    common::{Backend, Cred, Resp, TestApp, fresh_database, test_config},
    db_tests,
};

db_tests!(api_key_callers_are_idempotent, cors_for_browsers);
backend_tests!(redriven_job_starts_without_polling);

/// Sends the same request twice with one `Idempotency-Key` as `cred`: the first runs
/// (`status`), the second replays it. Returns the first response.
async fn twice(
    app: &TestApp,
    cred: &Cred,
    path: &str,
    key: &str,
    body: Value,
    status: u16,
) -> Resp {
    let first = app
        .post(path)
        .cred(cred)
        .header("Idempotency-Key", key)
        .json(body.clone())
        .expect(status)
        .await;
    assert!(first.header("idempotent-replayed").is_none(), "{path}");
    let again = app
        .post(path)
        .cred(cred)
        .header("Idempotency-Key", key)
        .json(body)
        .expect(status)
        .await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"), "{path}");
    assert_eq!(again.body, first.body, "{path}: the stored response");
    first
}

fn count(list: &Resp) -> usize {
    list.body["items"].as_array().unwrap().len()
}

async fn api_key_callers_are_idempotent(app: TestApp) {
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Runners").await;
    let (_, key_a) = app.api_key(&owner, &org, "admin").await;
    let (_, key_b) = app.api_key(&owner, &org, "admin").await;
    for (i, cred) in [Cred::ApiKey(key_a.clone()), Cred::Bearer(key_a.clone())]
        .iter()
        .enumerate()
    {
        let agents = format!("/v1/orgs/{org}/agents");
        let agent_body = json!({
            "name": format!("Runner {i}"),
            "model": "test-model",
            "capabilities": ["desktop:screen.capture"],
        });
        let agent = twice(&app, cred, &agents, &format!("agent-{i}"), agent_body, 201).await;
        let agent_id = agent.body["id"].as_str().unwrap().to_owned();
        let sessions = format!("/v1/orgs/{org}/sessions");
        let session = twice(
            &app,
            cred,
            &sessions,
            &format!("session-{i}"),
            json!({ "agent_id": agent_id }),
            202,
        )
        .await;
        let s = session.body["id"].as_str().unwrap().to_owned();
        app.wait_status(&owner, &org, &s, "running").await;
        let events = format!("/v1/orgs/{org}/sessions/{s}/events");
        let batch = json!({"events": [{"kind": "log", "payload": {"retried": true}}]});
        twice(&app, cred, &events, &format!("append-{i}"), batch, 201).await;
        let commands = format!("/v1/orgs/{org}/sessions/{s}/commands");
        twice(
            &app,
            cred,
            &commands,
            &format!("command-{i}"),
            json!({"kind": "screenshot", "args": {}}),
            202,
        )
        .await;
        // Each was done once.
        let logs = app
            .get(&format!("{events}?kind=log"))
            .token(&owner.token)
            .expect(200)
            .await;
        assert_eq!(count(&logs), 1, "the batch was stored once");
        let queued = app.get(&commands).token(&owner.token).expect(200).await;
        assert_eq!(count(&queued), 1, "the command was queued once");
        let mine = app
            .get(&format!("{sessions}?agent_id={agent_id}"))
            .token(&owner.token)
            .expect(200)
            .await;
        assert_eq!(count(&mine), 1, "the session was created once");
    }
    let all = app
        .get(&format!("/v1/orgs/{org}/agents"))
        .token(&owner.token)
        .expect(200)
        .await;
    assert_eq!(count(&all), 2, "one agent per credential form");

    // Another principal with the same key does not see key A's stored response: its request
    // runs (a new agent; in a shared key space it would answer 422 `idempotency_key_reused`),
    // and is not marked as a replay. The owner's own key space too.
    for (i, cred) in [Cred::ApiKey(key_b), Cred::Bearer(owner.token.clone())]
        .iter()
        .enumerate()
    {
        let other = app
            .post(&format!("/v1/orgs/{org}/agents"))
            .cred(cred)
            .header("Idempotency-Key", "agent-0")
            .json(json!({"name": format!("Other {i}"), "model": "test-model"}))
            .expect(201)
            .await;
        assert!(other.header("idempotent-replayed").is_none());
    }
    let body = json!({"name": "Refused", "model": "test-model"});
    let all = app
        .get(&format!("/v1/orgs/{org}/agents"))
        .token(&owner.token)
        .expect(200)
        .await;
    assert_eq!(count(&all), 4);
    // A refused key is answered 401 before anything is recorded.
    app.post(&format!("/v1/orgs/{org}/agents"))
        .cred(&Cred::ApiKey(
            "ad_000000000000_notavalidsecretnotavalidsecret00".into(),
        ))
        .header("Idempotency-Key", "agent-0")
        .json(body)
        .expect(401)
        .await
        .assert_problem("invalid_token");
}

const ALLOWED_ORIGIN: &str = "https://app.example.com";

fn header_list(r: &reqwest::Response, name: &str) -> Vec<String> {
    r.headers()
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect()
}

async fn cors_for_browsers(app: TestApp) {
    let owner = app.user("owner").await;
    // Same-origin writes: the browser sends the server's own origin on every POST.
    let own_origin = format!("http://{}", app.addr);
    let org = app
        .post("/v1/orgs")
        .token(&owner.token)
        .header("Origin", &own_origin)
        .json(json!({"name": "Same origin"}))
        .expect(201)
        .await;
    assert!(org.header("access-control-allow-origin").is_none());
    let org = org.body["id"].as_str().unwrap().to_owned();
    // A foreign origin is not refused either: it just gets no CORS headers.
    let foreign = app
        .get(&format!("/v1/orgs/{org}"))
        .token(&owner.token)
        .header("Origin", "https://evil.example")
        .expect(200)
        .await;
    assert!(foreign.header("access-control-allow-origin").is_none());
    assert!(foreign.header("vary").is_some_and(|v| v.contains("Origin")));
    let preflight = app
        .http
        .request(
            reqwest::Method::OPTIONS,
            app.url(&format!("/v1/orgs/{org}")),
        )
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "PATCH")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    // An allowed origin (a server configured with one).
    let Some(other) = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.cors_allowed_origins = vec![ALLOWED_ORIGIN.into()];
    })
    .await
    else {
        unreachable!("SQLite is always available")
    };
    let wanted = [
        "authorization",
        "x-api-key",
        "content-type",
        "idempotency-key",
        "if-match",
        "last-event-id",
        "x-request-id",
    ];
    let preflight = other
        .http
        .request(reqwest::Method::OPTIONS, other.url("/v1/orgs"))
        .header("Origin", ALLOWED_ORIGIN)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", wanted.join(","))
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        ALLOWED_ORIGIN
    );
    let allowed = header_list(&preflight, "access-control-allow-headers");
    for h in wanted {
        assert!(allowed.contains(&h.to_owned()), "{h} not in {allowed:?}");
    }
    assert!(header_list(&preflight, "access-control-allow-methods").contains(&"patch".into()));
    let user = other.user("browser").await;
    let created = other
        .http
        .post(other.url("/v1/orgs"))
        .bearer_auth(&user.token)
        .header("Origin", ALLOWED_ORIGIN)
        .json(&json!({"name": "From the SPA"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(
        created.headers()["access-control-allow-origin"],
        ALLOWED_ORIGIN
    );
    let exposed = header_list(&created, "access-control-expose-headers");
    for h in [
        "location",
        "etag",
        "retry-after",
        "ratelimit",
        "ratelimit-policy",
        "x-request-id",
        "idempotent-replayed",
        "deprecation",
        "sunset",
        "link",
    ] {
        assert!(exposed.contains(&h.to_owned()), "{h} not in {exposed:?}");
    }
    other.stop().await;
}

async fn redriven_job_starts_without_polling(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = fresh_database(backend, dir.path()).await else {
        return;
    };
    let mut config = test_config(dir.path(), url.clone());
    // Only a wake-up through the bus can start the re-driven job within the test.
    config.job_poll_interval_ms = 3_600_000;
    let app = TestApp::start(backend, dir, url, config).await;
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Operators").await;
    // A dead job of the org (a desktop release: a no-op on the `none` runtime).
    let db = app.db().await;
    let job_id = uuid::Uuid::now_v7();
    let now = chrono::Utc::now();
    agentdesk::entity::job::Entity::insert(agentdesk::entity::job::ActiveModel {
        id: Set(job_id),
        org_id: Set(Some(org.parse().unwrap())),
        session_id: Set(None),
        kind: Set("session.release".into()),
        payload: Set(json!({"session_id": uuid::Uuid::now_v7()})),
        status: Set(agentdesk::entity::job::Status::Dead),
        attempts: Set(5),
        max_attempts: Set(5),
        run_at: Set(now),
        lease_until: Set(None),
        locked_by: Set(None),
        last_error: Set(Some("gave up".into())),
        dead_at: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(&db)
    .await
    .unwrap();
    let r = app
        .post(&format!("/v1/orgs/{org}/jobs/{job_id}/retry"))
        .token(&owner.token)
        .expect(200)
        .await;
    assert_eq!(r.body["status"], "pending");
    // The job goes pending → running → succeeded; the only thing that can start it is the
    // wake-up the retry committed (the worker's poll is an hour away). The deadline only
    // keeps a broken build from hanging.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let j = app
            .get(&format!("/v1/orgs/{org}/jobs?status=succeeded"))
            .token(&owner.token)
            .expect(200)
            .await;
        if j.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == job_id.to_string())
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the re-driven job was never picked up: no wake-up reached the worker"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}
