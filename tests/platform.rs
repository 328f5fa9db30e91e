//! The platform around the contract: bad input never gets a 5xx, body limits, rate limits,
//! request ids, security headers, CORS, health/readiness/metrics, 5xx error ids, migrations,
//! the generated signing key, closed registration.

use migration::{Migrator, MigratorTrait};
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::{
    backend_tests,
    common::{Backend, TestApp, fresh_database, test_config},
    db_tests,
};

db_tests!(
    malformed_input_is_4xx,
    health_ready_metrics_and_headers,
    internal_errors_carry_an_error_id
);
backend_tests!(
    migrations_up_down_up,
    generated_signing_key_survives_restart
);

async fn malformed_input_is_4xx(app: TestApp) {
    let u = app.user("mal").await;
    let org = app.org(&u, "Mal").await;
    let post = |path: &str, body: &'static str| {
        app.post(path)
            .token(&u.token)
            .header("content-type", "application/json")
            .body(body)
    };
    // Not JSON → 400 malformed_json.
    post("/v1/orgs", "{\"name\": ")
        .expect(400)
        .await
        .assert_problem("malformed_json");
    // Wrong type, missing field, unknown enum value, over-long string → 422 naming the field.
    // No silent coercion of numbers or booleans into strings.
    let r = post("/v1/orgs", "{\"name\": 42}").expect(422).await;
    r.assert_problem("validation_failed");
    assert_eq!(r.error_fields(), ["name"]);
    let r = post("/v1/orgs", "{}").expect(422).await;
    assert_eq!(r.error_fields(), ["name"]);
    let r = app
        .post(&format!("/v1/orgs/{org}/members"))
        .token(&u.token)
        .json(json!({ "email": "x@example.com", "role": "Emperor!" }))
        .expect(422)
        .await;
    assert_eq!(r.error_fields(), ["role"]);
    let r = app
        .post("/v1/orgs")
        .token(&u.token)
        .json(json!({ "name": "n".repeat(201) }))
        .expect(422)
        .await;
    assert_eq!(r.error_fields(), ["name"]);
    let r = app
        .post("/v1/auth/register")
        .json(json!({ "email": ["a"], "password": null }))
        .expect(422)
        .await;
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["display_name", "email", "password"]);
    // Wrong media type → 415.
    app.post("/v1/orgs")
        .token(&u.token)
        .header("content-type", "text/plain")
        .body("name=x")
        .expect(415)
        .await
        .assert_problem("unsupported_media_type");
    // Bodies over the limit (1 MiB): announced, and chunked without a length.
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(1024 * 1024 + 10));
    app.post("/v1/orgs")
        .token(&u.token)
        .header("content-type", "application/json")
        // The server answers before reading the body and drops the connection: do not reuse it.
        .header("connection", "close")
        .body(big.clone())
        .expect(413)
        .await
        .assert_problem("payload_too_large");
    let stream = futures_util::stream::iter(
        big.into_bytes()
            .chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    app.post("/v1/orgs")
        .token(&u.token)
        .header("content-type", "application/json")
        // The server answers before reading the body and drops the connection: do not reuse it.
        .header("connection", "close")
        .body(reqwest::Body::wrap_stream(stream))
        .expect(413)
        .await;
    // Bad parameters → 400 naming them.
    let r = app
        .get("/v1/orgs?limit=0")
        .token(&u.token)
        .expect(400)
        .await;
    r.assert_problem("invalid_parameter");
    assert_eq!(r.error_fields(), ["limit"]);
    let r = app
        .get("/v1/orgs?limit=lots")
        .token(&u.token)
        .expect(400)
        .await;
    assert_eq!(r.error_fields(), ["limit"]);
    assert_eq!(
        r.body["errors"][0]["message"],
        "must be an integer from 1 to 200"
    );
    let r = app
        .get("/v1/orgs?cursor=%%%")
        .token(&u.token)
        .expect(400)
        .await;
    assert_eq!(r.error_fields(), ["cursor"]);
    let r = app
        .get("/v1/orgs/not-a-uuid")
        .token(&u.token)
        .expect(400)
        .await;
    assert_eq!(r.error_fields(), ["org_id"]);
    // What a parameter must be, in its own terms, never the parser's type names.
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("parameter `org_id` must be a UUID"),
        "{}",
        r.text
    );
    let org = app.org(&u, "Parameters").await;
    for (query, field, expected) in [
        (
            "audit-events?since=yesterday",
            "since",
            "must be an RFC 3339 date-time",
        ),
        (
            "jobs?status=bogus",
            "status",
            "must be one of: pending, running, succeeded, dead",
        ),
        ("audit-events?actor_id=7", "actor_id", "must be a UUID"),
    ] {
        let r = app
            .get(&format!("/v1/orgs/{org}/{query}"))
            .token(&u.token)
            .expect(400)
            .await;
        r.assert_problem("invalid_parameter");
        assert_eq!(r.error_fields(), [field]);
        let message = r.body["errors"][0]["message"].as_str().unwrap();
        assert!(message.starts_with(expected), "{}", r.text);
        for internal in [
            "parse \"",
            "string_",
            "optional_",
            "integer_",
            "occurred while",
        ] {
            assert!(!r.text.contains(internal), "{internal} leaked: {}", r.text);
        }
    }
    // Unknown routes and methods.
    app.get("/v1/nothing-here")
        .expect(404)
        .await
        .assert_problem("route_not_found");
    let r = app.put("/v1/me").token(&u.token).expect(405).await;
    r.assert_problem("method_not_allowed");
    // RFC 9110 §15.5.6: the 405 says which methods the route takes.
    let mut allow: Vec<&str> = r.header("allow").unwrap().split(", ").collect();
    allow.sort();
    assert_eq!(allow, ["DELETE", "GET", "PATCH"]);
    // Optional fields may be left out, not sent as null (that used to bump the version).
    let org = app.org(&u, "Nullable").await;
    let r = app
        .patch(&format!("/v1/orgs/{org}"))
        .token(&u.token)
        .json(serde_json::json!({ "name": null }))
        .expect(422)
        .await;
    assert_eq!(r.error_fields(), ["name"]);
    let r = app
        .get(&format!("/v1/orgs/{org}"))
        .token(&u.token)
        .expect(200)
        .await;
    assert_eq!(r.header("etag"), Some("\"1\""));
}

async fn health_ready_metrics_and_headers(app: TestApp) {
    let h = app.get("/healthz").expect(200).await;
    assert_eq!(h.body["status"], "ok");
    assert_eq!(app.get("/readyz").expect(200).await.body["status"], "ready");
    // Security headers on the API.
    assert_eq!(
        h.header("content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'")
    );
    assert_eq!(h.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(h.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(h.header("x-frame-options"), Some("DENY"));
    assert!(
        h.header("strict-transport-security").is_none(),
        "HSTS is off by default"
    );
    // Request ids: a sane one is echoed and lands in problems; an insane one is replaced.
    let r = app
        .get("/v1/me")
        .header("x-request-id", "trace-abc.123")
        .expect(401)
        .await;
    assert_eq!(r.header("x-request-id"), Some("trace-abc.123"));
    assert_eq!(r.body["request_id"], "trace-abc.123");
    assert_eq!(r.body["instance"], "/v1/me");
    let r = app
        .get("/healthz")
        .header("x-request-id", "bad id <script>")
        .expect(200)
        .await;
    let id = r.header("x-request-id").unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    // Metrics by route template, not by raw path.
    let u = app.user("met").await;
    let org = app.org(&u, "Met").await;
    app.get(&format!("/v1/orgs/{org}"))
        .token(&u.token)
        .expect(200)
        .await;
    // A request answered before routing (413) must not put its raw path into a label.
    app.post("/v1/made-up-path-xyz")
        .header("content-type", "application/json")
        // The server answers before reading the body and drops the connection: do not reuse it.
        .header("connection", "close")
        .body("x".repeat(1024 * 1024 + 1))
        .expect(413)
        .await;
    let m = app.get("/metrics").expect(200).await;
    assert!(
        !m.text.contains("made-up-path-xyz"),
        "unrouted paths stay out of labels"
    );
    assert!(m.text.contains("route=\"unrouted\""));
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    assert!(
        m.text.contains("http_requests_total{"),
        "{}",
        &m.text[..m.text.len().min(500)]
    );
    assert!(
        m.text.contains("route=\"/v1/orgs/:param0\""),
        "route template label"
    );
    assert!(!m.text.contains(&org), "raw ids must not become labels");
    assert!(m.text.contains("http_request_duration_seconds_bucket"));
    assert!(m.text.contains("process_"), "process metrics");
    // CORS: no origin is allowed by default.
    let r = app
        .get("/healthz")
        .header("origin", "https://evil.example")
        .send()
        .await;
    assert!(r.header("access-control-allow-origin").is_none());
}

async fn internal_errors_carry_an_error_id(app: TestApp) {
    let u = app.user("err").await;
    let org = app.org(&u, "Err").await;
    // Break the database under the server: the audit table disappears.
    let db = sea_orm::Database::connect(&app.database_url).await.unwrap();
    db.execute_unprepared("DROP TABLE audit_events")
        .await
        .unwrap();
    let r = app
        .get(&format!("/v1/orgs/{org}/audit-events"))
        .token(&u.token)
        .expect(500)
        .await;
    r.assert_problem("internal_error");
    let error_id = r.body["error_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(error_id).is_ok());
    assert!(
        !r.text.to_lowercase().contains("audit_events"),
        "no internals: {}",
        r.text
    );
    assert!(
        !r.text.to_lowercase().contains("sql"),
        "no internals: {}",
        r.text
    );
}

async fn migrations_up_down_up(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = fresh_database(backend, dir.path()).await else {
        return;
    };
    let db = sea_orm::Database::connect(&url).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    assert!(
        Migrator::get_pending_migrations(&db)
            .await
            .unwrap()
            .is_empty()
    );
    let applied = Migrator::get_applied_migrations(&db).await.unwrap().len() as u32;
    assert!(applied >= 1);
    Migrator::down(&db, Some(applied)).await.unwrap();
    assert_eq!(
        Migrator::get_applied_migrations(&db).await.unwrap().len(),
        0
    );
    // Everything is gone: the tables' names are free again.
    let probe = db
        .execute_unprepared("CREATE TABLE users (x integer)")
        .await;
    assert!(probe.is_ok(), "down left `users` behind");
    db.execute_unprepared("DROP TABLE users").await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    assert!(
        Migrator::get_pending_migrations(&db)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn generated_signing_key_survives_restart(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = fresh_database(backend, dir.path()).await else {
        return;
    };
    let mut config = test_config(dir.path(), url.clone());
    config.jwt_signing_key = String::new();
    let first = TestApp::start(
        backend,
        tempfile::tempdir().unwrap(),
        url.clone(),
        config.clone(),
    )
    .await;
    let key_file = dir.path().join("jwt-signing-key");
    assert!(key_file.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let u = first.user("keep").await;
    first.stop().await;
    let second = TestApp::start(backend, tempfile::tempdir().unwrap(), url, config).await;
    second.get("/v1/me").token(&u.token).expect(200).await;
}

#[tokio::test]
async fn registration_can_be_closed() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.registration_open = false)
        .await
        .unwrap();
    app.post("/v1/auth/register")
        .json(json!({ "email": "a@example.com", "password": "correct horse battery", "display_name": "A" }))
        .expect(403)
        .await
        .assert_problem("registration_closed");
}

#[tokio::test]
async fn rate_limits_answer_429_with_headers() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.auth_rate_limit_per_ip_per_min = 3;
        c.login_rate_limit_per_account_per_min = 2;
        c.trust_forwarded_for = true;
    })
    .await
    .unwrap();
    let login = |ip: &str| {
        app.post("/v1/auth/login")
            .header("x-forwarded-for", &format!("203.0.113.9, {ip}"))
            .json(json!({ "email": "victim@example.com", "password": "guess guess guess" }))
    };
    // Per IP on /v1/auth/*: 3 a minute (the per-account limit is hit first here, so use
    // another account on the third).
    let r = login("10.0.0.1").expect(401).await;
    assert_eq!(r.header("ratelimit-policy"), Some("\"auth\";q=3;w=60"));
    assert!(r.header("ratelimit").unwrap().starts_with("\"auth\";r=2;"));
    // Per account: the second attempt from another IP is still allowed, the third is not.
    login("10.0.0.2").expect(401).await;
    let r = login("10.0.0.3").expect(429).await;
    r.assert_problem("rate_limited");
    assert!(
        r.header("ratelimit-policy")
            .unwrap()
            .contains("login_account")
    );
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    // The per-IP auth limit: a fourth request from one IP within the minute.
    for _ in 0..2 {
        app.post("/v1/auth/logout")
            .header("x-forwarded-for", "10.0.0.9")
            .json(json!({ "refresh_token": "x" }))
            .expect(204)
            .await;
    }
    app.post("/v1/auth/logout")
        .header("x-forwarded-for", "10.0.0.9")
        .json(json!({ "refresh_token": "x" }))
        .expect(204)
        .await;
    let r = app
        .post("/v1/auth/logout")
        .header("x-forwarded-for", "10.0.0.9")
        .json(json!({ "refresh_token": "x" }))
        .expect(429)
        .await;
    r.assert_problem("rate_limited");
    assert_eq!(r.header("ratelimit-policy"), Some("\"auth\";q=3;w=60"));
    assert!(
        r.header("ratelimit")
            .unwrap()
            .starts_with("\"auth\";r=0;t=")
    );
    assert!(r.header("retry-after").is_some());
    // Other routes are under the general limit only.
    app.get("/healthz")
        .header("x-forwarded-for", "10.0.0.9")
        .expect(200)
        .await;
}

#[tokio::test]
async fn cors_allow_list_and_hsts() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.cors_allowed_origins = vec!["https://app.example.com".into()];
        c.hsts_max_age_s = 31_536_000;
    })
    .await
    .unwrap();
    let r = app
        .call(reqwest::Method::OPTIONS, "/v1/orgs")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await;
    assert!(r.status < 300, "{}", r.text);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let r = app
        .get("/healthz")
        .header("origin", "https://evil.example")
        .send()
        .await;
    assert!(r.header("access-control-allow-origin").is_none());
    let r = app.get("/healthz").expect(200).await;
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
}
