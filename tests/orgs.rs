//! Organizations, members, the role × operation matrix, tenant isolation, audit.

use agentdesk::auth::rbac::{self, Role};
use serde_json::json;

use crate::{
    common::{TestApp, User},
    db_tests,
};

db_tests!(
    org_crud_pagination_etag,
    role_matrix,
    cross_tenant_is_404,
    last_owner_and_owner_rights,
    audit_log
);

async fn org_crud_pagination_etag(app: TestApp) {
    let u = app.user("olga").await;
    let r = app
        .post("/v1/orgs")
        .token(&u.token)
        .json(json!({ "name": "  Acme  " }))
        .expect(201)
        .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("location"),
        Some(format!("/v1/orgs/{id}").as_str())
    );
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.body["name"], "Acme");
    assert_eq!(r.body["role"], "owner");
    app.post("/v1/orgs")
        .token(&u.token)
        .json(json!({ "name": "" }))
        .expect(422)
        .await
        .assert_problem("validation_failed");

    // Pagination: 5 orgs, pages of 2.
    for i in 0..4 {
        app.org(&u, &format!("Org {i}")).await;
    }
    let first = app
        .get("/v1/orgs?limit=2")
        .token(&u.token)
        .expect(200)
        .await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    let seen: Vec<String> = app
        .walk_pages("/v1/orgs?limit=2", &u.token)
        .await
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen.len(), 5);
    assert_eq!(seen[0], id, "oldest first");
    let distinct: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(distinct.len(), 5, "no item repeats across pages");

    // GET sends ETag; PATCH with the right If-Match succeeds, a stale one is 412.
    let got = app
        .get(&format!("/v1/orgs/{id}"))
        .token(&u.token)
        .expect(200)
        .await;
    assert_eq!(got.header("etag"), Some("\"1\""));
    let p = app
        .patch(&format!("/v1/orgs/{id}"))
        .token(&u.token)
        .header("if-match", "\"1\"")
        .json(json!({ "name": "Acme Corp" }))
        .expect(200)
        .await;
    assert_eq!(p.header("etag"), Some("\"2\""));
    assert_eq!(p.body["name"], "Acme Corp");
    app.patch(&format!("/v1/orgs/{id}"))
        .token(&u.token)
        .header("if-match", "\"1\"")
        .json(json!({ "name": "Lost update" }))
        .expect(412)
        .await
        .assert_problem("precondition_failed");
    let got = app
        .get(&format!("/v1/orgs/{id}"))
        .token(&u.token)
        .expect(200)
        .await;
    assert_eq!(got.body["name"], "Acme Corp");
    // Without If-Match the update applies (last write wins, by choice of the caller).
    app.patch(&format!("/v1/orgs/{id}"))
        .token(&u.token)
        .json(json!({ "name": "Acme 3" }))
        .expect(200)
        .await;

    app.delete(&format!("/v1/orgs/{id}"))
        .token(&u.token)
        .expect(204)
        .await;
    app.get(&format!("/v1/orgs/{id}"))
        .token(&u.token)
        .expect(404)
        .await
        .assert_problem("not_found");
    let all = app.get("/v1/orgs").token(&u.token).expect(200).await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 4);
}

/// Every built-in role against every org operation; expected outcomes come from the written
/// permission table (`rbac::BUILTIN_ROLES`), plus a few facts spelled out by hand.
async fn role_matrix(app: TestApp) {
    // Hand-written facts the table must keep.
    assert!(!Role::Viewer.permissions().contains(&rbac::MEMBERS_WRITE));
    assert!(!Role::Admin.permissions().contains(&rbac::ORGS_DELETE));
    assert!(!Role::Operator.permissions().contains(&rbac::AUDIT_READ));

    for role in Role::ALL {
        let owner = app.user("owner").await;
        let org = app.org(&owner, "Matrix").await;
        let me = app.user(role.as_str()).await;
        app.add_member(&owner, &org, &me, role.as_str()).await;
        let target = app.user("target").await;
        app.add_member(&owner, &org, &target, "viewer").await;
        let newcomer = app.user("newcomer").await;

        // Expected: the first permission (in the order the gates check them) the role lacks
        // → 403 naming it; none lacking → success.
        let check = |perms: &[&'static str], r: crate::common::Resp, ok: u16| match perms
            .iter()
            .find(|p| !role.permissions().contains(p))
        {
            None => assert_eq!(
                r.status, ok,
                "{role:?} should be allowed {perms:?}: {}",
                r.text
            ),
            Some(missing) => {
                assert_eq!(
                    r.status, 403,
                    "{role:?} should be denied {missing}: {}",
                    r.text
                );
                r.assert_problem("permission_denied");
                assert_eq!(r.body["missing_permission"], *missing);
            }
        };
        let t = &me.token;
        check(
            &[rbac::ORGS_READ],
            app.get(&format!("/v1/orgs/{org}")).token(t).send().await,
            200,
        );
        check(
            &[rbac::ORGS_WRITE],
            app.patch(&format!("/v1/orgs/{org}"))
                .token(t)
                .json(json!({ "name": "Renamed" }))
                .send()
                .await,
            200,
        );
        check(
            &[rbac::MEMBERS_READ],
            app.get(&format!("/v1/orgs/{org}/members"))
                .token(t)
                .send()
                .await,
            200,
        );
        check(
            &[rbac::MEMBERS_WRITE],
            app.post(&format!("/v1/orgs/{org}/members"))
                .token(t)
                .json(json!({ "email": newcomer.email, "role": "viewer" }))
                .send()
                .await,
            202,
        );
        check(
            &[rbac::MEMBERS_WRITE],
            app.put(&format!("/v1/orgs/{org}/members/{}", target.id))
                .token(t)
                .json(json!({ "role": "operator" }))
                .send()
                .await,
            200,
        );
        check(
            &[rbac::MEMBERS_WRITE, rbac::MEMBERS_OWNER],
            app.put(&format!("/v1/orgs/{org}/members/{}", target.id))
                .token(t)
                .json(json!({ "role": "owner" }))
                .send()
                .await,
            200,
        );
        check(
            &[rbac::AUDIT_READ],
            app.get(&format!("/v1/orgs/{org}/audit-events"))
                .token(t)
                .send()
                .await,
            200,
        );
        // members.add only invited the newcomer; they join by accepting.
        app.add_member(&owner, &org, &newcomer, "viewer").await;
        check(
            &[rbac::MEMBERS_WRITE],
            app.delete(&format!("/v1/orgs/{org}/members/{}", newcomer.id))
                .token(t)
                .send()
                .await,
            204,
        );
        check(
            &[rbac::ORGS_DELETE],
            app.delete(&format!("/v1/orgs/{org}")).token(t).send().await,
            204,
        );
    }
}

async fn cross_tenant_is_404(app: TestApp) {
    let a = app.user("alice").await;
    let b = app.user("bob").await;
    let org = app.org(&a, "Alice's").await;
    let t = &b.token;
    for r in [
        app.get(&format!("/v1/orgs/{org}")).token(t).send().await,
        app.patch(&format!("/v1/orgs/{org}"))
            .token(t)
            .json(json!({ "name": "mine" }))
            .send()
            .await,
        app.delete(&format!("/v1/orgs/{org}")).token(t).send().await,
        app.get(&format!("/v1/orgs/{org}/members"))
            .token(t)
            .send()
            .await,
        app.post(&format!("/v1/orgs/{org}/members"))
            .token(t)
            .json(json!({ "email": b.email, "role": "owner" }))
            .send()
            .await,
        app.put(&format!("/v1/orgs/{org}/members/{}", a.id))
            .token(t)
            .json(json!({ "role": "viewer" }))
            .send()
            .await,
        app.delete(&format!("/v1/orgs/{org}/members/{}", a.id))
            .token(t)
            .send()
            .await,
        app.get(&format!("/v1/orgs/{org}/audit-events"))
            .token(t)
            .send()
            .await,
    ] {
        assert_eq!(r.status, 404, "{}", r.text);
        r.assert_problem("not_found");
    }
    // Same answer as for an org that does not exist.
    let missing = app
        .get(&format!("/v1/orgs/{}", uuid::Uuid::now_v7()))
        .token(t)
        .expect(404)
        .await;
    assert_eq!(
        missing.body["detail"],
        app.get(&format!("/v1/orgs/{org}"))
            .token(t)
            .send()
            .await
            .body["detail"]
    );
    // The org is not in Bob's list, and Alice's org is untouched.
    let list = app.get("/v1/orgs").token(t).expect(200).await;
    assert!(list.body["items"].as_array().unwrap().is_empty());
    let mine = app
        .get(&format!("/v1/orgs/{org}/members"))
        .token(&a.token)
        .expect(200)
        .await;
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 1);
    // A member of one org cannot reach a member of another through its own org.
    let org_b = app.org(&b, "Bob's").await;
    app.put(&format!("/v1/orgs/{org_b}/members/{}", a.id))
        .token(t)
        .json(json!({ "role": "viewer" }))
        .expect(404)
        .await;
}

async fn last_owner_and_owner_rights(app: TestApp) {
    let owner = app.user("owner").await;
    let admin = app.user("admin").await;
    let org = app.org(&owner, "Keep").await;
    app.add_member(&owner, &org, &admin, "admin").await;

    // The last owner cannot be demoted or removed.
    app.put(&format!("/v1/orgs/{org}/members/{}", owner.id))
        .token(&owner.token)
        .json(json!({ "role": "admin" }))
        .expect(409)
        .await
        .assert_problem("last_owner");
    app.delete(&format!("/v1/orgs/{org}/members/{}", owner.id))
        .token(&owner.token)
        .expect(409)
        .await
        .assert_problem("last_owner");
    // Only owners grant or take owner.
    let r = app
        .put(&format!("/v1/orgs/{org}/members/{}", admin.id))
        .token(&admin.token)
        .json(json!({ "role": "owner" }))
        .expect(403)
        .await;
    assert_eq!(r.body["missing_permission"], "members:owner");
    app.delete(&format!("/v1/orgs/{org}/members/{}", owner.id))
        .token(&admin.token)
        .expect(403)
        .await;
    let newbie = app.user("newbie").await;
    app.post(&format!("/v1/orgs/{org}/members"))
        .token(&admin.token)
        .json(json!({ "email": newbie.email, "role": "owner" }))
        .expect(403)
        .await;
    // Adding twice, or an address with or without an account: the latter two answer the same
    // (an invitation), so members.add tells nobody which addresses have accounts.
    app.post(&format!("/v1/orgs/{org}/members"))
        .token(&owner.token)
        .json(json!({ "email": admin.email, "role": "viewer" }))
        .expect(409)
        .await
        .assert_problem("already_member");
    let shape = |v: &serde_json::Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    let unknown = app
        .post(&format!("/v1/orgs/{org}/members"))
        .token(&owner.token)
        .json(json!({ "email": "ghost@example.com", "role": "viewer" }))
        .expect(202)
        .await;
    let known = app
        .post(&format!("/v1/orgs/{org}/members"))
        .token(&owner.token)
        .json(json!({ "email": newbie.email, "role": "viewer" }))
        .expect(202)
        .await;
    assert_eq!(shape(&unknown.body), shape(&known.body));
    assert_eq!(known.body["status"], "pending");
    // Hand over ownership, then the first owner may step down.
    app.put(&format!("/v1/orgs/{org}/members/{}", admin.id))
        .token(&owner.token)
        .json(json!({ "role": "owner" }))
        .expect(200)
        .await;
    app.put(&format!("/v1/orgs/{org}/members/{}", owner.id))
        .token(&owner.token)
        .json(json!({ "role": "viewer" }))
        .expect(200)
        .await;
    // The demoted owner's new role holds at once.
    app.delete(&format!("/v1/orgs/{org}"))
        .token(&owner.token)
        .expect(403)
        .await;
    app.get(&format!("/v1/orgs/{org}"))
        .token(&owner.token)
        .expect(200)
        .await;
    // Removing a plain member works and they lose access.
    app.delete(&format!("/v1/orgs/{org}/members/{}", owner.id))
        .token(&admin.token)
        .expect(204)
        .await;
    app.get(&format!("/v1/orgs/{org}"))
        .token(&owner.token)
        .expect(404)
        .await;
}

async fn two_owners_race(app: &TestApp, org: &str, a: &User, b: &User) -> (u16, u16) {
    let (ra, rb) = tokio::join!(
        app.put(&format!("/v1/orgs/{org}/members/{}", a.id))
            .token(&a.token)
            .json(json!({ "role": "viewer" }))
            .send(),
        app.put(&format!("/v1/orgs/{org}/members/{}", b.id))
            .token(&b.token)
            .json(json!({ "role": "viewer" }))
            .send(),
    );
    (ra.status, rb.status)
}

async fn audit_log(app: TestApp) {
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Audited").await;
    let m = app.user("member").await;
    app.add_member(&owner, &org, &m, "viewer").await;
    app.put(&format!("/v1/orgs/{org}/members/{}", m.id))
        .token(&owner.token)
        .json(json!({ "role": "admin" }))
        .expect(200)
        .await;
    app.patch(&format!("/v1/orgs/{org}"))
        .token(&owner.token)
        .json(json!({ "name": "Audited 2" }))
        .expect(200)
        .await;
    app.post("/v1/auth/login")
        .header("user-agent", "audit-test/1.0")
        .json(json!({ "email": m.email, "password": "wrong wrong wrong" }))
        .expect(401)
        .await;
    app.delete(&format!("/v1/orgs/{org}/members/{}", m.id))
        .token(&owner.token)
        .expect(204)
        .await;

    let r = app
        .get(&format!("/v1/orgs/{org}/audit-events?limit=200"))
        .token(&owner.token)
        .expect(200)
        .await;
    let items = r.body["items"].as_array().unwrap();
    let actions: Vec<&str> = items
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // Newest first. The removed member's account events are no longer shown.
    assert_eq!(
        &actions[..4],
        [
            "member.removed",
            "org.updated",
            "member.updated",
            "member.added"
        ],
        "{actions:?}"
    );
    assert!(actions.contains(&"org.created"));
    // Account history from before joining the org is never shown (the owner logged in, and
    // the member registered, before either belonged to it).
    assert!(!actions.contains(&"auth.login"), "{actions:?}");
    assert!(!actions.contains(&"user.registered"), "{actions:?}");
    let updated = &items[2];
    assert_eq!(
        updated["details"],
        json!({ "from": "viewer", "to": "admin" })
    );
    assert_eq!(updated["actor"]["id"], owner.id.as_str());
    assert_eq!(
        updated["target"],
        json!({ "type": "membership", "id": m.id })
    );
    assert_eq!(updated["ip"], "127.0.0.1");
    assert!(updated["created_at"].is_string() && updated["request_id"].is_string());

    // Someone else's failed logins against a member's account never reach the org (their IP
    // and user agent are the member's business: they are in the member's own export). The
    // member's own logins while a member do.
    let m2 = app.user("member2").await;
    app.add_member(&owner, &org, &m2, "viewer").await;
    app.post("/v1/auth/login")
        .header("user-agent", "third-party/1.0")
        .json(json!({ "email": m2.email, "password": "wrong wrong wrong" }))
        .expect(401)
        .await;
    let logins = format!("/v1/orgs/{org}/audit-events?action=auth.login&limit=100");
    let r = app.get(&logins).token(&owner.token).expect(200).await;
    // m2's successful login from before joining stays hidden too.
    assert_eq!(r.body["items"], json!([]), "{}", r.text);
    let export = app.get("/v1/me/export").token(&m2.token).expect(200).await;
    assert!(
        export.body["audit_events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "auth.login"
                && e["outcome"] == "failure"
                && e["user_agent"] == "third-party/1.0"),
        "{}",
        export.text
    );
    app.post("/v1/auth/login")
        .header("user-agent", "audit-test/1.0")
        .json(json!({ "email": m2.email, "password": m2.password }))
        .expect(200)
        .await;
    let r = app.get(&logins).token(&owner.token).expect(200).await;
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", r.text);
    assert_eq!(items[0]["outcome"], "success");
    assert_eq!(items[0]["actor"]["id"], m2.id.as_str());
    assert_eq!(items[0]["user_agent"], "audit-test/1.0");

    // Cursor pages walk the whole log without repeats.
    let ids: Vec<String> = app
        .walk_pages(
            &format!("/v1/orgs/{org}/audit-events?limit=3"),
            &owner.token,
        )
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "no event repeats across pages");
    let total = app
        .get(&format!("/v1/orgs/{org}/audit-events?limit=200"))
        .token(&owner.token)
        .expect(200)
        .await;
    assert_eq!(ids.len(), total.body["items"].as_array().unwrap().len());

    // Two owners demoting themselves at once: at most one succeeds, an owner always remains.
    let o2 = app.user("owner2").await;
    app.add_member(&owner, &org, &o2, "owner").await;
    let (a, b) = two_owners_race(&app, &org, &owner, &o2).await;
    assert!(matches!((a, b), (200, 409) | (409, 200)), "{a} {b}");
}
