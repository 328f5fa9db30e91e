//! Agents, sessions and their lifecycle, the event log and its streams, commands,
//! idempotency, the job queue and the desktop runtimes — all through the real server.

use std::{collections::HashSet, time::Duration};

use serde_json::{Value, json};

use crate::{
    backend_tests,
    common::{Appended, Backend, TestApp, Urls, User, fresh_database, test_config},
    db_tests,
};

db_tests!(
    agents_crud_and_concurrency,
    session_lifecycle,
    session_limit_and_isolation,
    events_append_and_read,
    concurrent_appends_are_gapless,
    event_stream_resumes_and_ends,
    org_stream_reports_status_changes,
    commands_capabilities_and_executor,
    idempotency_keys
);
backend_tests!(
    reaper_stops_idle_sessions,
    killed_worker_job_runs_again,
    failing_job_dead_letters_and_is_redriven,
    claims_are_exclusive,
    two_servers_share_the_event_bus,
    process_runtime_runs_xvnc
);

async fn owner_org(app: &TestApp) -> (User, String) {
    let u = app.user("owner").await;
    let org = app.org(&u, "Agents Inc").await;
    (u, org)
}

async fn agents_crud_and_concurrency(app: TestApp) {
    let (u, org) = owner_org(&app).await;
    let base = format!("/v1/orgs/{org}/agents");
    let r = app
        .post(&base)
        .token(&u.token)
        .json(json!({
            "name": "Clicker", "model": "m1", "description": "clicks",
            "desktop": {"width": 1024, "height": 768},
            "capabilities": ["desktop:input.pointer", "desktop:screen.capture", "desktop:input.pointer"]
        }))
        .expect(201)
        .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.header("location"), Some(format!("{base}/{id}").as_str()));
    assert_eq!(
        r.body["capabilities"],
        json!(["desktop:input.pointer", "desktop:screen.capture"])
    );
    assert_eq!(r.body["desktop"], json!({"width": 1024, "height": 768}));

    // Unknown capability, bad size, duplicate name.
    let r = app
        .post(&base)
        .token(&u.token)
        .json(json!({"name": "X", "model": "m", "capabilities": ["desktop:everything"]}))
        .expect(422)
        .await;
    r.assert_problem("validation_failed");
    assert!(
        r.error_fields()
            .iter()
            .any(|f| f.starts_with("capabilities")),
        "{}",
        r.text
    );
    let r = app
        .post(&base)
        .token(&u.token)
        .json(json!({"name": "X", "model": "m", "desktop": {"width": 10, "height": 768}}))
        .expect(422)
        .await;
    assert!(
        r.error_fields().iter().any(|f| f.contains("width")),
        "{}",
        r.text
    );
    app.post(&base)
        .token(&u.token)
        .json(json!({"name": "Clicker", "model": "m"}))
        .expect(409)
        .await
        .assert_problem("agent_name_taken");

    // Optimistic concurrency: If-Match required, stale → 412.
    let one = format!("{base}/{id}");
    app.patch(&one)
        .token(&u.token)
        .json(json!({"model": "m2"}))
        .expect(428)
        .await
        .assert_problem("precondition_required");
    app.patch(&one)
        .token(&u.token)
        .header("If-Match", "")
        .json(json!({"model": "m2"}))
        .expect(428)
        .await
        .assert_problem("precondition_required");
    let r = app
        .patch(&one)
        .token(&u.token)
        .header("If-Match", "\"1\"")
        .json(json!({"model": "m2", "capabilities": ["desktop:shell"]}))
        .expect(200)
        .await;
    assert_eq!(r.header("etag"), Some("\"2\""));
    assert_eq!(r.body["capabilities"], json!(["desktop:shell"]));
    assert_eq!(r.body["model"], "m2");
    app.patch(&one)
        .token(&u.token)
        .header("If-Match", "\"1\"")
        .json(json!({"model": "m3"}))
        .expect(412)
        .await
        .assert_problem("precondition_failed");
    let r = app.get(&one).token(&u.token).expect(200).await;
    assert_eq!(r.header("etag"), Some("\"2\""));
    assert_eq!(r.body["model"], "m2");

    // Pagination.
    for i in 0..3 {
        app.agent(&u, &org, &format!("A{i}"), &[]).await;
    }
    let all = app.walk_pages(&format!("{base}?limit=2"), &u.token).await;
    assert_eq!(all.len(), 4);
    assert_eq!(all[0]["id"], id.as_str());

    // Viewers read but cannot write; other orgs see nothing.
    let viewer = app.user("viewer").await;
    app.add_member(&u, &org, &viewer, "viewer").await;
    app.get(&one).token(&viewer.token).expect(200).await;
    let r = app
        .post(&base)
        .token(&viewer.token)
        .json(json!({"name": "V", "model": "m"}))
        .expect(403)
        .await;
    assert_eq!(r.body["missing_permission"], "agents:write");
    let stranger = app.user("stranger").await;
    let other = app.org(&stranger, "Other").await;
    app.get(&one).token(&stranger.token).expect(404).await;
    app.get(&format!("/v1/orgs/{other}/agents/{id}"))
        .token(&stranger.token)
        .expect(404)
        .await;

    // An agent with a live session cannot be deleted; afterwards it can.
    let s = app.session(&u, &org, &id).await;
    app.wait_status(&u, &org, &s, "running").await;
    app.delete(&one)
        .token(&u.token)
        .expect(409)
        .await
        .assert_problem("agent_has_live_sessions");
    app.post(&format!("/v1/orgs/{org}/sessions/{s}/stop"))
        .token(&u.token)
        .expect(202)
        .await;
    app.wait_status(&u, &org, &s, "stopped").await;
    app.delete(&one).token(&u.token).expect(204).await;
    app.get(&one).token(&u.token).expect(404).await;
    // Its session and log stay.
    app.get(&format!("/v1/orgs/{org}/sessions/{s}/events"))
        .token(&u.token)
        .expect(200)
        .await;
    let audit = app
        .get(&format!("/v1/orgs/{org}/audit-events?action=agent.deleted"))
        .token(&u.token)
        .expect(200)
        .await;
    assert_eq!(audit.body["items"].as_array().unwrap().len(), 1);
}

fn statuses(events: &Value) -> Vec<String> {
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "status")
        .map(|e| e["payload"]["status"].as_str().unwrap().to_owned())
        .collect()
}

async fn session_lifecycle(app: TestApp) {
    let (u, org) = owner_org(&app).await;
    let agent = app.agent(&u, &org, "Runner", &[]).await;
    let r = app
        .post(&format!("/v1/orgs/{org}/sessions"))
        .token(&u.token)
        .json(json!({"agent_id": agent, "timeout_s": 600, "metadata": {"ticket": "T-1"}}))
        .expect(202)
        .await;
    let s = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("location"),
        Some(format!("/v1/orgs/{org}/sessions/{s}").as_str())
    );
    assert_eq!(r.body["metadata"], json!({"ticket": "T-1"}));
    assert_eq!(r.body["timeout_s"], 600);
    assert_eq!(r.body["max_duration_s"], 14400);
    let running = app.wait_status(&u, &org, &s, "running").await;
    assert!(running["started_at"].is_string());
    // The none runtime has no desktop: the field is absent (as the spec says), not null.
    assert!(running.get("desktop").is_none(), "{running}");
    assert!(running.get("ended_at").is_none(), "{running}");

    let one = format!("/v1/orgs/{org}/sessions/{s}");
    let stopped = app
        .post(&format!("{one}/stop"))
        .token(&u.token)
        .expect(202)
        .await;
    assert_eq!(stopped.body["status"], "stopping");
    assert_eq!(stopped.body["status_reason"], "stop_requested");
    let done = app.wait_status(&u, &org, &s, "stopped").await;
    assert!(done["ended_at"].is_string());
    let r = app
        .post(&format!("{one}/stop"))
        .token(&u.token)
        .expect(409)
        .await;
    r.assert_problem("invalid_transition");
    assert_eq!(r.body["current_status"], "stopped");
    let r = app
        .post(&format!("{one}/events"))
        .token(&u.token)
        .json(json!({"events": [{"kind": "log", "payload": {}}]}))
        .expect(409)
        .await;
    r.assert_problem("session_not_live");
    assert_eq!(r.body["current_status"], "stopped");

    // The log holds each transition once, in order, gapless.
    let log = app
        .get(&format!("{one}/events"))
        .token(&u.token)
        .expect(200)
        .await;
    assert_eq!(
        statuses(&log.body),
        ["pending", "provisioning", "running", "stopping", "stopped"]
    );
    let seqs: Vec<i64> = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=5).collect::<Vec<_>>());

    // Filters.
    let r = app
        .get(&format!(
            "/v1/orgs/{org}/sessions?status=stopped&agent_id={agent}"
        ))
        .token(&u.token)
        .expect(200)
        .await;
    assert_eq!(r.body["items"][0]["id"], s.as_str());
    let r = app
        .get(&format!("/v1/orgs/{org}/sessions?status=running"))
        .token(&u.token)
        .expect(200)
        .await;
    assert!(r.body["items"].as_array().unwrap().is_empty());
    app.get(&format!("/v1/orgs/{org}/sessions?status=dancing"))
        .token(&u.token)
        .expect(400)
        .await;
    let audit = app
        .get(&format!(
            "/v1/orgs/{org}/audit-events?action=session.stopped"
        ))
        .token(&u.token)
        .expect(200)
        .await;
    assert_eq!(audit.body["items"][0]["target"]["id"], s.as_str());
    assert_eq!(audit.body["items"][0]["target"]["type"], "session");
}

async fn session_limit_and_isolation(app: TestApp) {
    let (u, org) = owner_org(&app).await;
    let agent = app.agent(&u, &org, "Many", &[]).await;
    let mut live = Vec::new();
    for _ in 0..10 {
        live.push(app.session(&u, &org, &agent).await);
    }
    let r = app
        .post(&format!("/v1/orgs/{org}/sessions"))
        .token(&u.token)
        .header("Idempotency-Key", "over-the-limit")
        .json(json!({"agent_id": agent}))
        .expect(429)
        .await;
    r.assert_problem("session_limit_reached");
    assert!(r.header("retry-after").is_some());
    // The org cannot be deleted while sessions are live.
    app.delete(&format!("/v1/orgs/{org}"))
        .token(&u.token)
        .expect(409)
        .await
        .assert_problem("org_has_live_sessions");
    // Another org's agent is not usable, nor its sessions visible.
    let stranger = app.user("stranger").await;
    let other = app.org(&stranger, "Other").await;
    let r = app
        .post(&format!("/v1/orgs/{other}/sessions"))
        .token(&stranger.token)
        .json(json!({"agent_id": agent}))
        .expect(422)
        .await;
    assert_eq!(r.error_fields(), ["agent_id"]);
    app.get(&format!("/v1/orgs/{other}/sessions/{}", live[0]))
        .token(&stranger.token)
        .expect(404)
        .await;
    app.get(&format!("/v1/orgs/{org}/sessions/{}/events", live[0]))
        .token(&stranger.token)
        .expect(404)
        .await;
    // Viewers may watch but not start.
    let viewer = app.user("viewer").await;
    app.add_member(&u, &org, &viewer, "viewer").await;
    app.get(&format!("/v1/orgs/{org}/sessions/{}", live[0]))
        .token(&viewer.token)
        .expect(200)
        .await;
    let r = app
        .post(&format!("/v1/orgs/{org}/sessions"))
        .token(&viewer.token)
        .json(json!({"agent_id": agent}))
        .expect(403)
        .await;
    assert_eq!(r.body["missing_permission"], "sessions:write");
    // Stopping one frees a slot.
    app.post(&format!("/v1/orgs/{org}/sessions/{}/stop", live[0]))
        .token(&u.token)
        .expect(202)
        .await;
    app.wait_status(&u, &org, &live[0], "stopped").await;
    // The 429 was not stored under its Idempotency-Key: the retry now succeeds.
    let r = app
        .post(&format!("/v1/orgs/{org}/sessions"))
        .token(&u.token)
        .header("Idempotency-Key", "over-the-limit")
        .json(json!({"agent_id": agent}))
        .expect(202)
        .await;
    assert!(r.header("idempotent-replayed").is_none());
}

async fn events_append_and_read(app: TestApp) {
    let (u, org) = owner_org(&app).await;
    let agent = app.agent(&u, &org, "Logger", &[]).await;
    let s = app.session(&u, &org, &agent).await;
    app.wait_status(&u, &org, &s, "running").await;
    let ev = format!("/v1/orgs/{org}/sessions/{s}/events");
    let r = app
        .post(&ev)
        .token(&u.token)
        .json(json!({"events": [
            {"kind": "action", "payload": {"step": 1}},
            {"kind": "message", "payload": {"text": "hi"}},
            {"kind": "log", "payload": {"line": "x"}},
        ]}))
        .expect(201)
        .await;
    assert_eq!(r.body, json!({"first_seq": 4, "last_seq": 6}));

    // Bad batches name the field; nothing is appended.
    let r = app
        .post(&ev)
        .token(&u.token)
        .json(
            json!({"events": [{"kind": "log", "payload": {}}, {"kind": "status", "payload": {}}]}),
        )
        .expect(422)
        .await;
    assert_eq!(r.error_fields(), ["events[1].kind"], "{}", r.text);
    let r = app
        .post(&ev)
        .token(&u.token)
        .json(json!({"events": [{"kind": "log", "payload": [1, 2]}]}))
        .expect(422)
        .await;
    assert!(
        r.error_fields()[0].starts_with("events[0].payload"),
        "{}",
        r.text
    );
    app.post(&ev)
        .token(&u.token)
        .json(json!({"events": []}))
        .expect(422)
        .await;
    let many: Vec<Value> = (0..501)
        .map(|_| json!({"kind": "log", "payload": {}}))
        .collect();
    app.post(&ev)
        .token(&u.token)
        .json(json!({ "events": many }))
        .expect(422)
        .await;
    // NUL cannot be stored by PostgreSQL: refused up front on every backend, naming the field.
    let r = app
        .post(&ev)
        .token(&u.token)
        .body(r#"{"events": [{"kind": "log", "payload": {"line": "a\u0000b"}}]}"#)
        .header("content-type", "application/json")
        .expect(422)
        .await;
    assert_eq!(r.error_fields(), ["events[0].payload.line"], "{}", r.text);
    let big = "x".repeat(300 * 1024);
    let r = app
        .post(&ev)
        .token(&u.token)
        .json(json!({"events": [{"kind": "screenshot", "payload": {"png": big}}]}))
        .expect(422)
        .await;
    assert_eq!(r.error_fields(), ["events[0].payload"]);

    // Reading: after_seq, limit, kind; next_after_seq resumes exactly.
    let page = app
        .get(&format!("{ev}?after_seq=3&limit=2"))
        .token(&u.token)
        .expect(200)
        .await;
    let seqs: Vec<i64> = page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [4, 5]);
    assert_eq!(page.body["next_after_seq"], 5);
    assert_eq!(page.body["has_more"], true);
    let rest = app
        .get(&format!("{ev}?after_seq=5"))
        .token(&u.token)
        .expect(200)
        .await;
    assert_eq!(rest.body["items"][0]["seq"], 6);
    assert_eq!(rest.body["items"][0]["payload"], json!({"line": "x"}));
    assert_eq!(rest.body["has_more"], false);
    let msgs = app
        .get(&format!("{ev}?kind=message"))
        .token(&u.token)
        .expect(200)
        .await;
    assert_eq!(msgs.body["items"].as_array().unwrap().len(), 1);
    let empty = app
        .get(&format!("{ev}?after_seq=100"))
        .token(&u.token)
        .expect(200)
        .await;
    assert_eq!(empty.body["next_after_seq"], 100);
    app.get(&format!("{ev}?limit=0"))
        .token(&u.token)
        .expect(400)
        .await;
    app.get(&format!("{ev}?after_seq=-1"))
        .token(&u.token)
        .expect(400)
        .await;
}

async fn concurrent_appends_are_gapless(app: TestApp) {
    let (u, org) = owner_org(&app).await;
    let agent = app.agent(&u, &org, "Busy", &[]).await;
    let s = app.running_session(&u, &org, &agent).await;
    let ev = Urls::events(&org, &s);
    let mut tasks = Vec::new();
    for client in 0..8 {
        let (api, ev) = (app.as_user(&u), ev.clone());
        tasks.push(tokio::spawn(async move {
            let mut ranges = Vec::new();
            for batch in 0..10 {
                let events: Vec<Value> = (0..5)
                    .map(|i| json!({"kind": "log", "payload": {"client": client, "batch": batch, "i": i}}))
                    .collect();
                let b: Appended = api.post(&ev, &json!({ "events": events }), 201).await;
                ranges.push((client, batch, b.first_seq, b.last_seq));
            }
            ranges
        }));
    }
    let mut ranges = Vec::new();
    for t in tasks {
        ranges.extend(t.await.unwrap());
    }
    let mut log = Vec::new();
    let mut after = 0;
    loop {
        let page = app
            .get(&format!("{ev}?after_seq={after}&limit=500"))
            .token(&u.token)
            .expect(200)
            .await;
        let items = page.body["items"].as_array().unwrap().clone();
        if items.is_empty() {
            break;
        }
        after = page.body["next_after_seq"].as_i64().unwrap();
        log.extend(items);
    }
    // 3 status events, then 400 appended: seqs 1..=403 with no gap and no duplicate.
    let seqs: Vec<i64> = log.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=403).collect::<Vec<_>>());
    // Each batch got a contiguous range holding exactly its events, in order.
    for (client, batch, first, last) in ranges {
        assert_eq!(last - first, 4);
        for (i, seq) in (first..=last).enumerate() {
            let p = &log[(seq - 1) as usize]["payload"];
            assert_eq!(p, &json!({"client": client, "batch": batch, "i": i}));
        }
    }
}

async fn event_stream_resumes_and_ends(app: TestApp) {
    let (u, org) = owner_org(&app).await;
    let agent = app.agent(&u, &org, "Streamer", &[]).await;
    let s = app.running_session(&u, &org, &agent).await;
    let (base, stream) = (Urls::events(&org, &s), Urls::event_stream(&org, &s));
    let mut sse = app.sse(&stream, &u.token, &[]).await;
    // Catch-up: the three status events.
    for (seq, status) in [(1, "pending"), (2, "provisioning"), (3, "running")] {
        let e = sse.next().await.unwrap();
        assert_eq!(e.id.as_deref(), Some(seq.to_string().as_str()));
        assert_eq!(e.event.as_deref(), Some("status"));
        assert_eq!(e.json()["payload"]["status"], status);
    }
    // Live: appends arrive in order.
    for i in 0..3 {
        app.post(&base)
            .token(&u.token)
            .json(json!({"events": [{"kind": "message", "payload": {"i": i}}, {"kind": "log", "payload": {"i": i}}]}))
            .expect(201)
            .await;
    }
    let mut got = Vec::new();
    for _ in 0..6 {
        let e = sse.next().await.unwrap();
        got.push(e.id.unwrap().parse::<i64>().unwrap());
    }
    assert_eq!(got, (4..=9).collect::<Vec<_>>());
    drop(sse);

    // Resume after a drop: Last-Event-ID 5 → 6.. without a gap or a duplicate, while
    // appends keep arriving.
    app.post(&base)
        .token(&u.token)
        .json(json!({"events": [{"kind": "log", "payload": {"late": true}}]}))
        .expect(201)
        .await;
    let mut sse = app.sse(&stream, &u.token, &[("Last-Event-ID", "5")]).await;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(
            sse.next()
                .await
                .unwrap()
                .id
                .unwrap()
                .parse::<i64>()
                .unwrap(),
        );
    }
    assert_eq!(got, (6..=10).collect::<Vec<_>>());
    // Stopping ends the stream after the final status event.
    app.post(&Urls::stop(&org, &s))
        .token(&u.token)
        .expect(202)
        .await;
    let mut last = None;
    while let Some(e) = sse.next().await {
        last = Some(e);
    }
    let last = last.unwrap();
    assert_eq!(last.json()["payload"]["status"], "stopped");
    assert_eq!(last.id.as_deref(), Some("12"));
    // A finished session's stream replays and ends; past the end it ends at once.
    let mut sse = app
        .sse(&format!("{stream}?after_seq=10"), &u.token, &[])
        .await;
    assert_eq!(sse.next().await.unwrap().id.as_deref(), Some("11"));
    assert_eq!(sse.next().await.unwrap().id.as_deref(), Some("12"));
    assert!(sse.next().await.is_none());
    let mut sse = app.sse(&stream, &u.token, &[("Last-Event-ID", "12")]).await;
    assert!(sse.next().await.is_none());
    app.get(&stream)
        .token(&u.token)
        .header("Last-Event-ID", "soon")
        .expect(400)
        .await;
}

async fn org_stream_reports_status_changes(app: TestApp) {
    let (u, org) = owner_org(&app).await;
    let agent = app.agent(&u, &org, "Dash", &[]).await;
    let mut sse = app.sse(&Urls::org_stream(&org), &u.token, &[]).await;
    // Another org's sessions never show up.
    let stranger = app.user("stranger").await;
    let other = app.org(&stranger, "Other").await;
    let other_agent = app.agent(&stranger, &other, "Theirs", &[]).await;
    app.session(&stranger, &other, &other_agent).await;
    let s = app.session(&u, &org, &agent).await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let e = sse.next().await.unwrap();
        assert_eq!(e.event.as_deref(), Some("status"));
        assert_eq!(
            e.json()["session_id"],
            s.as_str(),
            "only this org's sessions"
        );
        seen.push(e.json()["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["pending", "provisioning", "running"]);
}

async fn commands_capabilities_and_executor(app: TestApp) {
    let (u, org) = owner_org(&app).await;
    let agent = app
        .agent(&u, &org, "Pointer", &["desktop:input.pointer"])
        .await;
    let s = app.session(&u, &org, &agent).await;
    let cmds = format!("/v1/orgs/{org}/sessions/{s}/commands");
    // Not running yet (or already): 409 unless running.
    app.wait_status(&u, &org, &s, "running").await;

    // Outside the agent's capabilities: 403, audited, nothing queued.
    let r = app
        .post(&cmds)
        .token(&u.token)
        .json(json!({"kind": "shell", "args": {"command": "rm -rf /"}}))
        .expect(403)
        .await;
    r.assert_problem("capability_denied");
    assert_eq!(r.body["missing_permission"], "desktop:shell");
    let list = app.get(&cmds).token(&u.token).expect(200).await;
    assert!(list.body["items"].as_array().unwrap().is_empty());
    let audit = app
        .get(&format!(
            "/v1/orgs/{org}/audit-events?action=command.denied"
        ))
        .token(&u.token)
        .expect(200)
        .await;
    assert_eq!(
        audit.body["items"][0]["details"]["capability"],
        "desktop:shell"
    );
    assert_eq!(audit.body["items"][0]["outcome"], "failure");
    // Bad args name the field.
    let r = app
        .post(&cmds)
        .token(&u.token)
        .json(json!({"kind": "click", "args": {"x": 10}}))
        .expect(422)
        .await;
    assert_eq!(r.error_fields(), ["args.y"]);
    // The kind picks the shape of args (a oneOf on `kind` in the spec).
    let r = app
        .post(&cmds)
        .token(&u.token)
        .json(json!({"kind": "reboot", "args": {}}))
        .expect(422)
        .await;
    assert_eq!(r.error_fields(), ["kind"]);
    // Without credentials the answer is 401, whatever the body.
    app.post(&cmds)
        .json(json!({"kind": "click"}))
        .expect(401)
        .await
        .assert_problem("invalid_token");

    // The executor long-polls; an accepted command wakes it.
    let claim = {
        let (http, url, token) = (
            app.http.clone(),
            app.url(&format!("{cmds}/claim?wait_s=10")),
            u.token.clone(),
        );
        tokio::spawn(async move {
            let r = http.post(url).bearer_auth(token).send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = app
        .post(&cmds)
        .token(&u.token)
        .json(json!({"kind": "click", "args": {"x": 10, "y": 20, "button": "left"}}))
        .expect(202)
        .await;
    let cmd = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["status"], "queued");
    let (status, claimed) = claim.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(claimed["id"], cmd.as_str());
    assert_eq!(claimed["status"], "dispatched");
    // Nothing else queued: an immediate claim answers 204.
    app.post(&format!("{cmds}/claim"))
        .token(&u.token)
        .expect(204)
        .await;
    app.post(&format!("{cmds}/claim?wait_s=31"))
        .token(&u.token)
        .expect(400)
        .await;
    let done = app
        .post(&format!("{cmds}/{cmd}/result"))
        .token(&u.token)
        .json(json!({"status": "succeeded", "output": {"clicked": true}}))
        .expect(200)
        .await;
    assert_eq!(done.body["status"], "succeeded");
    assert_eq!(done.body["output"], json!({"clicked": true}));
    app.post(&format!("{cmds}/{cmd}/result"))
        .token(&u.token)
        .json(json!({"status": "failed"}))
        .expect(409)
        .await
        .assert_problem("command_not_dispatched");
    // Both show in the log: the action and its result.
    let log = app
        .get(&format!("/v1/orgs/{org}/sessions/{s}/events?after_seq=3"))
        .token(&u.token)
        .expect(200)
        .await;
    let items = log.body["items"].as_array().unwrap();
    assert_eq!(items[0]["kind"], "action");
    assert_eq!(items[0]["payload"]["command_id"], cmd.as_str());
    assert_eq!(items[1]["kind"], "result");
    assert_eq!(items[1]["payload"]["status"], "succeeded");

    // A viewer cannot send commands; stopping cancels what is queued.
    let viewer = app.user("viewer").await;
    app.add_member(&u, &org, &viewer, "viewer").await;
    app.post(&cmds)
        .token(&viewer.token)
        .json(json!({"kind": "move", "args": {"x": 1, "y": 1}}))
        .expect(403)
        .await
        .assert_problem("permission_denied");
    let r = app
        .post(&cmds)
        .token(&u.token)
        .json(json!({"kind": "move", "args": {"x": 1, "y": 1}}))
        .expect(202)
        .await;
    let queued = r.body["id"].as_str().unwrap().to_owned();
    app.post(&format!("/v1/orgs/{org}/sessions/{s}/stop"))
        .token(&u.token)
        .expect(202)
        .await;
    let c = app
        .get(&format!("{cmds}/{queued}"))
        .token(&u.token)
        .expect(200)
        .await;
    assert_eq!(c.body["status"], "cancelled");
    app.post(&cmds)
        .token(&u.token)
        .json(json!({"kind": "move", "args": {"x": 1, "y": 1}}))
        .expect(409)
        .await
        .assert_problem("session_not_running");
}

async fn idempotency_keys(app: TestApp) {
    let (u, org) = owner_org(&app).await;
    let agent = app.agent(&u, &org, "Once", &[]).await;
    let url = format!("/v1/orgs/{org}/sessions");
    let body = json!({"agent_id": agent});
    let first = app
        .post(&url)
        .token(&u.token)
        .header("Idempotency-Key", "start-1")
        .json(body.clone())
        .expect(202)
        .await;
    assert!(first.header("idempotent-replayed").is_none());
    let again = app
        .post(&url)
        .token(&u.token)
        .header("Idempotency-Key", "start-1")
        .json(body.clone())
        .expect(202)
        .await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.header("location"), first.header("location"));
    let list = app.get(&url).token(&u.token).expect(200).await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        1,
        "created once"
    );
    // Same key, different body → 422; a different principal's key space is separate.
    app.post(&url)
        .token(&u.token)
        .header("Idempotency-Key", "start-1")
        .json(json!({"agent_id": agent, "timeout_s": 5}))
        .expect(422)
        .await
        .assert_problem("idempotency_key_reused");
    app.post(&url)
        .token(&u.token)
        .header("Idempotency-Key", "has space")
        .json(body.clone())
        .expect(400)
        .await;

    // Concurrent duplicates of an append: exactly one is applied; the others are replays
    // or 409 idempotency_key_in_use, never a second append.
    let s = first.body["id"].as_str().unwrap();
    app.wait_status(&u, &org, s, "running").await;
    let ev = format!("/v1/orgs/{org}/sessions/{s}/events");
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (http, full, token) = (app.http.clone(), app.url(&ev), u.token.clone());
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(full)
                .bearer_auth(token)
                .header("Idempotency-Key", "append-1")
                .json(&json!({"events": [{"kind": "log", "payload": {"once": true}}]}))
                .send()
                .await
                .unwrap();
            let replay = r.headers().get("idempotent-replayed").is_some();
            (
                r.status().as_u16(),
                replay,
                r.json::<Value>().await.unwrap(),
            )
        }));
    }
    let mut applied = 0;
    for t in tasks {
        let (status, replay, body) = t.await.unwrap();
        match status {
            201 if !replay => applied += 1,
            201 => assert_eq!(body["first_seq"], 4),
            409 => assert_eq!(body["code"], "idempotency_key_in_use"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(applied, 1);
    let log = app
        .get(&format!("{ev}?kind=log"))
        .token(&u.token)
        .expect(200)
        .await;
    assert_eq!(log.body["items"].as_array().unwrap().len(), 1);
    // The replay after everything finished is the stored 201.
    let r = app
        .post(&ev)
        .token(&u.token)
        .header("Idempotency-Key", "append-1")
        .json(json!({"events": [{"kind": "log", "payload": {"once": true}}]}))
        .expect(201)
        .await;
    assert_eq!(r.body, json!({"first_seq": 4, "last_seq": 4}));
}

async fn reaper_stops_idle_sessions(backend: Backend) {
    let Some(app) = app_with(backend, |c| {
        c.reaper_interval_ms = 100;
        c.command_claim_timeout_s = 1;
    })
    .await
    else {
        return;
    };
    let (u, org) = owner_org(&app).await;
    let agent = app
        .agent(&u, &org, "Idle", &["desktop:screen.capture"])
        .await;
    let url = format!("/v1/orgs/{org}/sessions");
    let idle = app
        .post(&url)
        .token(&u.token)
        .json(json!({"agent_id": agent, "timeout_s": 1}))
        .expect(202)
        .await;
    let busy = app
        .post(&url)
        .token(&u.token)
        .json(json!({"agent_id": agent, "timeout_s": 3}))
        .expect(202)
        .await;
    let (idle, busy) = (
        idle.body["id"].as_str().unwrap().to_owned(),
        busy.body["id"].as_str().unwrap().to_owned(),
    );
    let stopped = app.wait_status(&u, &org, &idle, "stopped").await;
    assert_eq!(stopped["status_reason"], "idle_timeout");
    // Activity keeps the other alive past its timeout.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    while tokio::time::Instant::now() < deadline {
        app.post(&format!("{url}/{busy}/events"))
            .token(&u.token)
            .json(json!({"events": [{"kind": "log", "payload": {}}]}))
            .expect(201)
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let r = app
        .get(&format!("{url}/{busy}"))
        .token(&u.token)
        .expect(200)
        .await;
    assert_eq!(r.body["status"], "running");
    // A command nobody claims within command_claim_timeout_s expires and can no longer be
    // claimed.
    let c = app
        .post(&format!("{url}/{busy}/commands"))
        .token(&u.token)
        .json(json!({"kind": "screenshot"}))
        .expect(202)
        .await;
    let cmd = format!("{url}/{busy}/commands/{}", c.body["id"].as_str().unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = app.get(&cmd).token(&u.token).expect(200).await;
        if r.body["status"] == "expired" {
            assert!(r.body["completed_at"].is_string());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never expired: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.post(&format!("{url}/{busy}/commands/claim"))
        .token(&u.token)
        .expect(204)
        .await;
}

async fn app_with(backend: Backend, tweak: impl FnOnce(&mut agentdesk::Config)) -> Option<TestApp> {
    TestApp::spawn_with(backend, tweak).await
}

async fn killed_worker_job_runs_again(backend: Backend) {
    // A server without a worker accepts the session; a "worker" claims its job and dies.
    let Some(api) = app_with(backend, |c| c.worker_concurrency = 0).await else {
        return;
    };
    let (u, org) = owner_org(&api).await;
    let agent = api.agent(&u, &org, "Survivor", &[]).await;
    let s = api.session(&u, &org, &agent).await;
    let db = sea_orm::Database::connect(&api.database_url).await.unwrap();
    let claimed = agentdesk::jobs::queue::claim(&db, "doomed-worker", 10, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].kind, "session.provision");
    // A real worker (a second node on the same database) takes over once the lease lapses.
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), api.database_url.clone());
    config.job_poll_interval_ms = 100;
    let worker = TestApp::start(backend, dir, api.database_url.clone(), config).await;
    let running = api.wait_status(&u, &org, &s, "running").await;
    assert_eq!(running["status"], "running");
    let jobs = api
        .get(&format!("/v1/orgs/{org}/jobs?session_id={s}"))
        .token(&u.token)
        .expect(200)
        .await;
    let job = &jobs.body["items"][0];
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["attempts"], 2, "claimed by the dead worker, then again");
    // The dead worker's late report is fenced off.
    assert!(
        !agentdesk::jobs::queue::complete(&db, &claimed[0])
            .await
            .unwrap()
    );
    worker.stop().await;
}

async fn failing_job_dead_letters_and_is_redriven(backend: Backend) {
    let script_dir = tempfile::tempdir().unwrap();
    let script = script_dir.path().join("fake-xvnc");
    let counter = script_dir.path().join("runs");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho run >> {}\necho 'cannot open display' >&2\nexit 1\n",
            counter.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let Some(app) = app_with(backend, |c| {
        c.desktop_runtime = agentdesk::config::DesktopRuntimeKind::Process;
        c.desktop_process_command = script.display().to_string();
        c.job_max_attempts = 3;
        c.job_backoff_base_ms = 10;
        c.job_backoff_max_ms = 20;
        c.job_poll_interval_ms = 50;
        c.desktop_display_min = 300;
        c.desktop_display_max = 310;
        c.desktop_port_min = 17300;
    })
    .await
    else {
        return;
    };
    let (u, org) = owner_org(&app).await;
    let agent = app.agent(&u, &org, "Doomed", &[]).await;
    let s = app.session(&u, &org, &agent).await;
    let failed = app.wait_status(&u, &org, &s, "failed").await;
    let reason = failed["status_reason"].as_str().unwrap();
    assert!(
        reason.contains("session.provision dead after 3 attempts"),
        "{reason}"
    );
    let dead = app
        .get(&format!("/v1/orgs/{org}/jobs?status=dead"))
        .token(&u.token)
        .expect(200)
        .await;
    let job = dead.body["items"][0].clone();
    assert_eq!(job["kind"], "session.provision");
    assert_eq!(job["attempts"], 3, "exactly max_attempts attempts");
    assert!(
        job["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot open display"),
        "{job}"
    );
    assert!(job["dead_at"].is_string());
    let job_id = job["id"].as_str().unwrap();
    // Each attempt launched the desktop command (up to 3 displays per attempt), no more.
    let runs = std::fs::read_to_string(&counter).unwrap().lines().count();
    assert!((3..=9).contains(&runs), "{runs} launches");
    // Operators and viewers: jobs are admin-only.
    let viewer = app.user("viewer").await;
    app.add_member(&u, &org, &viewer, "operator").await;
    app.get(&format!("/v1/orgs/{org}/jobs"))
        .token(&viewer.token)
        .expect(403)
        .await;
    // Re-drive through the API: the handler sees the failed session and finishes.
    let r = app
        .post(&format!("/v1/orgs/{org}/jobs/{job_id}/retry"))
        .token(&u.token)
        .expect(200)
        .await;
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["attempts"], 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let j = app
            .get(&format!(
                "/v1/orgs/{org}/jobs?session_id={s}&status=succeeded"
            ))
            .token(&u.token)
            .expect(200)
            .await;
        if j.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == job_id)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "re-driven job never finished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.post(&format!("/v1/orgs/{org}/jobs/{job_id}/retry"))
        .token(&u.token)
        .expect(409)
        .await
        .assert_problem("job_not_dead");
    // The failed session's release job ran too.
    let all = app
        .get(&format!("/v1/orgs/{org}/jobs?session_id={s}"))
        .token(&u.token)
        .expect(200)
        .await;
    assert!(
        all.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["kind"] == "session.release")
    );
}

async fn claims_are_exclusive(backend: Backend) {
    use migration::MigratorTrait;
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = fresh_database(backend, dir.path()).await else {
        return;
    };
    let db = sea_orm::Database::connect(&url).await.unwrap();
    migration::Migrator::up(&db, None).await.unwrap();
    let mut outbox = agentdesk::realtime::bus::Outbox::default();
    for i in 0..120 {
        agentdesk::jobs::queue::enqueue(
            &db,
            agentdesk::jobs::queue::NewJob {
                kind: "test.noop",
                org_id: None,
                session_id: None,
                payload: json!({ "i": i }),
            },
            3,
            &mut outbox,
        )
        .await
        .unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = agentdesk::jobs::queue::claim(
                    &db,
                    &format!("w{w}"),
                    5,
                    Duration::from_secs(60),
                )
                .await
                .unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 120, "every job claimed");
    assert_eq!(distinct.len(), 120, "no job claimed twice");
}

async fn two_servers_share_the_event_bus(backend: Backend) {
    if backend == Backend::Sqlite {
        return; // One node per SQLite file; the in-process bus is covered everywhere else.
    }
    let Some(a) = TestApp::spawn(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), a.database_url.clone());
    let b = TestApp::start(backend, dir, a.database_url.clone(), config).await;
    let (u, org) = owner_org(&a).await;
    let agent = a.agent(&u, &org, "Shared", &[]).await;
    let s = a.running_session(&u, &org, &agent).await;
    let ev = Urls::events(&org, &s);
    let stream = format!("{}?after_seq=3", Urls::event_stream(&org, &s));
    let mut on_b = b.sse(&stream, &u.token, &[]).await;
    let mut dash_b = b.sse(&Urls::org_stream(&org), &u.token, &[]).await;
    for i in 0..3 {
        a.post(&ev)
            .token(&u.token)
            .json(json!({"events": [{"kind": "message", "payload": {"i": i}}]}))
            .expect(201)
            .await;
    }
    for seq in 4..=6 {
        let e = on_b.next().await.unwrap();
        assert_eq!(e.id.unwrap(), seq.to_string());
    }
    a.post(&Urls::stop(&org, &s))
        .token(&u.token)
        .expect(202)
        .await;
    let e = dash_b.next().await.unwrap();
    assert_eq!(e.json()["status"], "stopping");
    b.stop().await;
}

async fn process_runtime_runs_xvnc(backend: Backend) {
    let base = if backend == Backend::Sqlite { 320 } else { 340 };
    let Some(app) = app_with(backend, |c| {
        c.desktop_runtime = agentdesk::config::DesktopRuntimeKind::Process;
        c.desktop_display_min = base;
        c.desktop_display_max = base + 9;
        c.desktop_port_min = 17400 + base as u16;
    })
    .await
    else {
        return;
    };
    let (u, org) = owner_org(&app).await;
    let r = app
        .post(&format!("/v1/orgs/{org}/agents"))
        .token(&u.token)
        .json(json!({"name": "Desk", "model": "m", "desktop": {"width": 800, "height": 600}}))
        .expect(201)
        .await;
    let agent = r.body["id"].as_str().unwrap().to_owned();
    let s = app.session(&u, &org, &agent).await;
    let running = app.wait_status(&u, &org, &s, "running").await;
    let d = &running["desktop"];
    assert_eq!(d["width"], 800);
    assert_eq!(d["height"], 600);
    let addr = format!("{}:{}", d["vnc_host"].as_str().unwrap(), d["vnc_port"]);
    // A real RFB greeting.
    use tokio::io::AsyncReadExt;
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut greeting = [0u8; 12];
    conn.read_exact(&mut greeting).await.unwrap();
    assert!(greeting.starts_with(b"RFB 003.00"), "{greeting:?}");
    drop(conn);
    app.get("/readyz").expect(200).await;
    // Stopping releases it: the port closes.
    app.post(&format!("/v1/orgs/{org}/sessions/{s}/stop"))
        .token(&u.token)
        .expect(202)
        .await;
    app.wait_status(&u, &org, &s, "stopped").await;
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "Xvnc still listening"
    );
}

/// A crashed server leaves no desktop behind: the real binary is started with the `process`
/// runtime, a session gets its Xvnc, the server is killed with SIGKILL, and the desktop's port
/// closes (Xvnc runs under `setpriv --pdeathsig`). Restarted, the server fails that session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_server_leaves_no_xvnc() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_agentdesk"))
            .arg("serve")
            .env_remove("AGENTDESK_TEST_POSTGRES_URL")
            .env("AGENTDESK_LISTEN", format!("127.0.0.1:{port}"))
            .env("AGENTDESK_DATA_DIR", dir.path())
            .env("AGENTDESK_JWT_SIGNING_KEY", crate::common::TEST_KEY)
            .env("AGENTDESK_LOG_LEVEL", "warn")
            .env("AGENTDESK_DESKTOP_RUNTIME", "process")
            .env("AGENTDESK_DESKTOP_DISPLAY_MIN", "360")
            .env("AGENTDESK_DESKTOP_DISPLAY_MAX", "369")
            .env("AGENTDESK_DESKTOP_PORT_MIN", "17760")
            .env("AGENTDESK_AUTH_RATE_LIMIT_PER_IP_PER_MIN", "1000")
            .kill_on_drop(true)
            .spawn()
            .expect("agentdesk binary starts")
    };
    let mut child = start();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "server never came up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut rb = http.post(format!("{base}{path}")).json(&body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        async move {
            let r = rb.send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.json::<Value>().await.unwrap()
        }
    };
    let creds = json!({"email": "crash@example.com", "password": "crash test password"});
    post("/v1/auth/register", None, json!({"email": "crash@example.com", "password": "crash test password", "display_name": "C"})).await;
    let token = post("/v1/auth/login", None, creds).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let org = post("/v1/orgs", Some(&token), json!({"name": "Crash"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let agent = post(
        &format!("/v1/orgs/{org}/agents"),
        Some(&token),
        json!({"name": "A", "model": "m"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let s = post(
        &format!("/v1/orgs/{org}/sessions"),
        Some(&token),
        json!({"agent_id": agent}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let desktop = loop {
        let r: Value = http
            .get(format!("{base}/v1/orgs/{org}/sessions/{s}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if r["status"] == "running" {
            break r["desktop"].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "never running: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let addr = format!("127.0.0.1:{}", desktop["vnc_port"]);
    assert!(tokio::net::TcpStream::connect(&addr).await.is_ok());
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(&addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Xvnc outlived the killed server"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Restarted, the server fails the session whose desktop died with it.
    let _restarted = start();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let session = loop {
        if let Ok(r) = http
            .get(format!("{base}/v1/orgs/{org}/sessions/{s}"))
            .bearer_auth(&token)
            .send()
            .await
        {
            break r.json::<Value>().await.unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "no restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(session["status"], "failed", "{session}");
    assert!(
        session["status_reason"]
            .as_str()
            .unwrap()
            .starts_with("desktop lost"),
        "{session}"
    );
}
