//! Quotas: orgs a user created, live API keys of an org, live sessions a user is accountable
//! for across orgs. Each answers `quota_exceeded` naming the setting (`limit`) and its value
//! (`limit_value`), and holds under concurrency.

use agentdesk::entity::session;
use sea_orm::EntityTrait;
use serde_json::json;

use crate::{
    backend_tests,
    common::{Backend, Cred, Resp, TestApp, Urls},
};

backend_tests!(org_quota, api_key_quota, live_session_quota);

fn assert_quota(r: &Resp, status: u16, limit: &str, value: u64) {
    assert_eq!(r.status, status, "{}", r.text);
    r.assert_problem("quota_exceeded");
    assert_eq!(r.body["limit"], limit, "{}", r.text);
    assert_eq!(r.body["limit_value"], value, "{}", r.text);
}

async fn org_quota(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.max_orgs_per_user = 3).await else {
        return;
    };
    let alice = app.user("alice").await;
    let mut orgs = Vec::new();
    for i in 0..3 {
        orgs.push(app.org(&alice, &format!("Org {i}")).await);
    }
    let r = app
        .post(&Urls::orgs())
        .token(&alice.token)
        .json(json!({ "name": "One too many" }))
        .send()
        .await;
    assert_quota(&r, 409, "max_orgs_per_user", 3);
    // Orgs joined do not count; orgs deleted free their place.
    let bob = app.user("bob").await;
    let bobs = app.org(&bob, "Bob's").await;
    app.add_member(&bob, &bobs, &alice, "admin").await;
    app.delete(&Urls::org(&orgs[0]))
        .token(&alice.token)
        .expect(204)
        .await;
    app.org(&alice, "Again").await;

    // Ten at once with a limit of three: exactly three succeed.
    let carol = app.user("carol").await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..10 {
        calls.spawn(
            app.post(&Urls::orgs())
                .token(&carol.token)
                .json(json!({ "name": format!("Race {i}") }))
                .send(),
        );
    }
    let answers = calls.join_all().await;
    let created = answers.iter().filter(|r| r.status == 201).count();
    assert_eq!(created, 3, "{answers:?}");
    for r in answers.iter().filter(|r| r.status != 201) {
        assert_quota(r, 409, "max_orgs_per_user", 3);
    }
    let mine = app.get("/v1/orgs").token(&carol.token).expect(200).await;
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 3);
}

async fn api_key_quota(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.max_api_keys_per_org = 2).await else {
        return;
    };
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Keys").await;
    let (first, _) = app.api_key(&owner, &org, "viewer").await;
    app.api_key(&owner, &org, "viewer").await;
    let create = || {
        app.post(&Urls::api_keys(&org))
            .token(&owner.token)
            .json(json!({ "name": "third", "role": "viewer" }))
            .send()
    };
    assert_quota(&create().await, 409, "max_api_keys_per_org", 2);
    // The limit is per org.
    let other = app.org(&owner, "Other").await;
    app.api_key(&owner, &other, "viewer").await;
    // A revoked key no longer counts.
    app.delete(&format!("{}/{first}", Urls::api_keys(&org)))
        .token(&owner.token)
        .expect(204)
        .await;
    assert_eq!(create().await.status, 201);
    assert_quota(&create().await, 409, "max_api_keys_per_org", 2);
}

async fn live_session_quota(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.max_live_sessions_per_user = 2).await else {
        return;
    };
    let alice = app.user("alice").await;
    let a = app.org(&alice, "A").await;
    let b = app.org(&alice, "B").await;
    let agent_a = app.agent(&alice, &a, "Bot", &[]).await;
    let agent_b = app.agent(&alice, &b, "Bot", &[]).await;
    let first = app.session(&alice, &a, &agent_a).await;
    app.session(&alice, &b, &agent_b).await;
    let start = |org: &str, agent: &str, cred: &Cred| {
        app.post(&Urls::sessions(org))
            .cred(cred)
            .json(json!({ "agent_id": agent }))
            .send()
    };
    // Across orgs: a third live session is refused, for a while.
    let me = Cred::Bearer(alice.token.clone());
    let r = start(&a, &agent_a, &me).await;
    assert_quota(&r, 429, "max_live_sessions_per_user", 2);
    assert_eq!(r.header("retry-after"), Some("5"));
    // Sessions started by her keys (and keys made by them) count against her too.
    let (_, secret) = app.api_key(&alice, &a, "admin").await;
    let key = Cred::Bearer(secret);
    let r = app
        .post(&Urls::api_keys(&a))
        .cred(&key)
        .json(json!({ "name": "child", "role": "operator" }))
        .expect(201)
        .await;
    let child = Cred::Bearer(r.body["secret"].as_str().unwrap().to_owned());
    for cred in [&key, &child] {
        assert_quota(
            &start(&a, &agent_a, cred).await,
            429,
            "max_live_sessions_per_user",
            2,
        );
    }
    // Another member of the same org has a quota of their own.
    let bob = app.user("bob").await;
    app.add_member(&alice, &a, &bob, "operator").await;
    let bobs = app.session(&bob, &a, &agent_a).await;

    // A stopped session frees a place; the next one counts against the key's user.
    app.post(&Urls::stop(&a, &first))
        .token(&alice.token)
        .expect(202)
        .await;
    app.wait_status(&alice, &a, &first, "stopped").await;
    let r = start(&a, &agent_a, &child).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let db = app.db().await;
    let row = session::Entity::find_by_id(
        r.body["id"]
            .as_str()
            .unwrap()
            .parse::<uuid::Uuid>()
            .unwrap(),
    )
    .one(&db)
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        row.accountable_user_id.map(|u| u.to_string()),
        Some(alice.id.clone())
    );
    assert_eq!(row.created_by, None);
    let bobs_row = session::Entity::find_by_id(bobs.parse::<uuid::Uuid>().unwrap())
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        bobs_row.accountable_user_id.map(|u| u.to_string()),
        Some(bob.id)
    );
    assert_quota(
        &start(&b, &agent_b, &me).await,
        429,
        "max_live_sessions_per_user",
        2,
    );
}
