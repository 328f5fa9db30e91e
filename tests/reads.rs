//! Issue 15: reads. Every list costs the same number of database statements whatever its page
//! size (no N+1), counted by the server itself (`Server-Timing`, `server_timing = true`), and
//! a warm authenticated single-row read costs no database work but its own row. Concurrency,
//! gaplessness and SSE guarantees of the event log under group commit are covered by
//! `sessions::concurrent_appends_are_gapless` and the stream tests, unchanged.

use serde_json::json;

use crate::{
    backend_tests,
    common::{Backend, Resp, TestApp, Urls},
};

backend_tests!(
    lists_cost_the_same_whatever_the_page,
    warm_reads_touch_only_their_row
);

/// The statement count of a response's `Server-Timing: db;dur=…;desc="<n> statements"`.
fn statements(r: &Resp) -> u32 {
    let h = r
        .header("server-timing")
        .unwrap_or_else(|| panic!("no Server-Timing header: {:?}", r.text));
    let desc = h
        .split("desc=\"")
        .nth(1)
        .and_then(|d| d.split(' ').next())
        .unwrap_or_else(|| panic!("unreadable Server-Timing: {h}"));
    desc.parse()
        .unwrap_or_else(|_| panic!("unreadable count: {h}"))
}

async fn server(backend: Backend) -> Option<TestApp> {
    TestApp::spawn_with(backend, |c| {
        c.server_timing = true;
        c.max_live_sessions_per_org = 50;
        c.max_live_sessions_per_user = 50;
    })
    .await
}

async fn lists_cost_the_same_whatever_the_page(backend: Backend) {
    let Some(app) = server(backend).await else {
        return;
    };
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Lists").await;
    let agent = app.agent(&owner, &org, "Lister", &[]).await;
    let session = app.running_session(&owner, &org, &agent).await;
    for _ in 0..12 {
        app.session(&owner, &org, &agent).await;
    }
    let events: Vec<_> = (0..100)
        .map(|i| json!({ "kind": "log", "payload": { "line": i } }))
        .collect();
    for _ in 0..3 {
        app.post(&Urls::events(&org, &session))
            .token(&owner.token)
            .json(json!({ "events": events }))
            .expect(201)
            .await;
    }
    for name in ["a", "b", "c"] {
        let u = app.user(name).await;
        app.add_member(&owner, &org, &u, "viewer").await;
        app.agent(&owner, &org, &format!("agent-{name}"), &[]).await;
        app.api_key(&owner, &org, "viewer").await;
        app.org(&owner, &format!("Other {name}")).await;
        app.post(&Urls::invitations(&org))
            .token(&owner.token)
            .json(json!({ "email": format!("{name}-invitee@example.com"), "role": "viewer" }))
            .expect(201)
            .await;
    }
    let lists = [
        ("sessions.list", Urls::sessions(&org)),
        ("events.list", Urls::events(&org, &session)),
        ("audit.list", format!("/v1/orgs/{org}/audit-events")),
        ("members.list", Urls::members(&org)),
        ("agents.list", Urls::agents(&org)),
        ("api_keys.list", Urls::api_keys(&org)),
        ("invitations.list", Urls::invitations(&org)),
        ("commands.list", Urls::commands(&org, &session)),
        ("jobs.list", Urls::jobs(&org)),
        ("orgs.list", Urls::orgs()),
    ];
    for (op, path) in lists {
        let mut counts = Vec::new();
        for limit in [1, 200] {
            let url = format!("{path}?limit={limit}");
            // The first call warms the node's auth cache; the second is measured.
            app.get(&url).token(&owner.token).expect(200).await;
            let r = app.get(&url).token(&owner.token).expect(200).await;
            let items = r.body["items"].as_array().map_or(0, Vec::len);
            counts.push((limit, items, statements(&r)));
        }
        let (_, small, few) = counts[0];
        let (_, large, many) = counts[1];
        assert!(small <= 1, "{op}: limit=1 gave {small} items");
        if op != "commands.list" {
            assert!(
                large > 1,
                "{op}: the large page must hold several items ({large})"
            );
        }
        assert_eq!(
            few, many,
            "{op}: {few} statements for 1 item but {many} for {large}: a query per item"
        );
        assert!(
            many <= 3,
            "{op}: {many} statements for one page (authorization is cached, so a page should cost its own queries only)"
        );
    }
}

async fn warm_reads_touch_only_their_row(backend: Backend) {
    let Some(app) = server(backend).await else {
        return;
    };
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Reads").await;
    let agent = app.agent(&owner, &org, "Reader", &[]).await;
    let session = app.running_session(&owner, &org, &agent).await;
    let (_, key) = app.api_key(&owner, &org, "viewer").await;
    // A member who has not called yet: nothing about them is cached.
    let m = app.user("member").await;
    app.add_member(&owner, &org, &m, "viewer").await;
    for (i, (what, path, token)) in [
        ("orgs.get (JWT)", Urls::org(&org), m.token.clone()),
        ("orgs.get (API key)", Urls::org(&org), key.clone()),
        (
            "sessions.get (JWT)",
            Urls::session(&org, &session),
            m.token.clone(),
        ),
        (
            "sessions.get (API key)",
            Urls::session(&org, &session),
            key.clone(),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let cold = app.get(&path).token(&token).expect(200).await;
        let warm = app.get(&path).token(&token).expect(200).await;
        let want = u32::from(what.starts_with("sessions"));
        assert_eq!(
            statements(&warm),
            want,
            "{what}: a warm read must cost {want} statement(s) (cold: {})",
            statements(&cold)
        );
        if i == 0 {
            assert!(
                statements(&cold) > statements(&warm),
                "{what}: the first read fills the cache"
            );
        }
    }
}
