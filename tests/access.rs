//! Issue 5: API keys, custom roles, the role × operation matrix for custom roles and keys,
//! invitations, login throttling, logout everywhere, export, erasure, audit filters.

use agentdesk::{
    auth::rbac::{self, Role},
    entity::{api_key, audit_event, invitation},
};
use sea_orm::{ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    backend_tests,
    common::{Backend, Cred, Resp, TestApp, User, eventually},
    db_tests,
};

db_tests!(
    access_matrix_custom_role_and_keys,
    api_keys_lifecycle,
    custom_roles,
    invitations_flow,
    account_rights,
    audit_filters
);
backend_tests!(login_throttling, custom_role_change_holds_on_another_node);

/// The permissions of a built-in role, or of the custom role the matrix creates.
const AUDITOR: &[&str] = &[
    rbac::ORGS_READ,
    rbac::MEMBERS_READ,
    rbac::MEMBERS_WRITE,
    rbac::AGENTS_READ,
    rbac::SESSIONS_READ,
    rbac::ROLES_READ,
    rbac::AUDIT_READ,
    rbac::API_KEYS_READ,
];

fn sorted(perms: &[&'static str]) -> Vec<&'static str> {
    let mut v = perms.to_vec();
    v.sort();
    v
}

/// Asserts the outcome a caller holding `held` must see: the first of `needed` it lacks →
/// 403 naming it; none → `ok`.
fn check(who: &str, held: &[&str], needed: &[&str], r: Resp, ok: u16) {
    match needed.iter().find(|p| !held.contains(p)) {
        None => assert_eq!(
            r.status, ok,
            "{who} should be allowed {needed:?}: {}",
            r.text
        ),
        Some(missing) => {
            assert_eq!(
                r.status, 403,
                "{who} should be denied {missing}: {}",
                r.text
            );
            r.assert_problem("permission_denied");
            assert_eq!(r.body["missing_permission"], *missing, "{who}");
        }
    }
}

async fn access_matrix_custom_role_and_keys(app: TestApp) {
    // Callers: a member with a custom role, API keys with a built-in and a custom role, sent
    // as `Authorization: Bearer` and as `X-API-Key`.
    #[derive(Clone, Copy, Debug)]
    enum Kind {
        CustomMember,
        AdminKeyBearer,
        OperatorKeyHeader,
        CustomKeyHeader,
        ViewerKeyBearer,
    }
    for kind in [
        Kind::CustomMember,
        Kind::AdminKeyBearer,
        Kind::OperatorKeyHeader,
        Kind::CustomKeyHeader,
        Kind::ViewerKeyBearer,
    ] {
        let owner = app.user("owner").await;
        let org = app.org(&owner, "Matrix").await;
        app.custom_role(&owner, &org, "auditor", AUDITOR).await;
        let target = app.user("target").await;
        app.add_member(&owner, &org, &target, "viewer").await;
        let newcomer = app.user("newcomer").await;
        let (cred, held): (Cred, Vec<&str>) = match kind {
            Kind::CustomMember => {
                let me = app.user("auditor").await;
                app.add_member(&owner, &org, &me, "auditor").await;
                (Cred::Bearer(me.token), AUDITOR.to_vec())
            }
            Kind::AdminKeyBearer => {
                let (_, key) = app.api_key(&owner, &org, "admin").await;
                (Cred::Bearer(key), Role::Admin.permissions().to_vec())
            }
            Kind::OperatorKeyHeader => {
                let (_, key) = app.api_key(&owner, &org, "operator").await;
                (Cred::ApiKey(key), Role::Operator.permissions().to_vec())
            }
            Kind::CustomKeyHeader => {
                let (_, key) = app.api_key(&owner, &org, "auditor").await;
                (Cred::ApiKey(key), AUDITOR.to_vec())
            }
            Kind::ViewerKeyBearer => {
                let (_, key) = app.api_key(&owner, &org, "viewer").await;
                (Cred::Bearer(key), Role::Viewer.permissions().to_vec())
            }
        };
        let who = format!("{kind:?}");
        let c = &cred;
        let grant = |role: Role| {
            let mut v = vec![rbac::MEMBERS_WRITE];
            v.extend(sorted(role.permissions()));
            v
        };
        check(
            &who,
            &held,
            &[rbac::ORGS_READ],
            app.get(&format!("/v1/orgs/{org}")).cred(c).send().await,
            200,
        );
        check(
            &who,
            &held,
            &[rbac::ORGS_WRITE],
            app.patch(&format!("/v1/orgs/{org}"))
                .cred(c)
                .json(json!({ "name": "Renamed" }))
                .send()
                .await,
            200,
        );
        check(
            &who,
            &held,
            &[rbac::MEMBERS_READ],
            app.get(&format!("/v1/orgs/{org}/members"))
                .cred(c)
                .send()
                .await,
            200,
        );
        check(
            &who,
            &held,
            &[rbac::ROLES_READ],
            app.get(&format!("/v1/orgs/{org}/roles"))
                .cred(c)
                .send()
                .await,
            200,
        );
        check(
            &who,
            &held,
            &[rbac::AGENTS_READ],
            app.get(&format!("/v1/orgs/{org}/agents"))
                .cred(c)
                .send()
                .await,
            200,
        );
        check(
            &who,
            &held,
            &[rbac::AGENTS_WRITE],
            app.post(&format!("/v1/orgs/{org}/agents"))
                .cred(c)
                .json(json!({ "name": "A", "model": "m", "capabilities": [] }))
                .send()
                .await,
            201,
        );
        check(
            &who,
            &held,
            &[rbac::SESSIONS_READ],
            app.get(&format!("/v1/orgs/{org}/sessions"))
                .cred(c)
                .send()
                .await,
            200,
        );
        check(
            &who,
            &held,
            &[rbac::JOBS_READ],
            app.get(&format!("/v1/orgs/{org}/jobs"))
                .cred(c)
                .send()
                .await,
            200,
        );
        check(
            &who,
            &held,
            &[rbac::AUDIT_READ],
            app.get(&format!("/v1/orgs/{org}/audit-events"))
                .cred(c)
                .send()
                .await,
            200,
        );
        check(
            &who,
            &held,
            &[rbac::API_KEYS_READ],
            app.get(&format!("/v1/orgs/{org}/api-keys"))
                .cred(c)
                .send()
                .await,
            200,
        );
        // Adding a viewer needs `members:write` and every permission a viewer holds.
        check(
            &who,
            &held,
            &grant(Role::Viewer),
            app.post(&format!("/v1/orgs/{org}/members"))
                .cred(c)
                .json(json!({ "email": newcomer.email, "role": "viewer" }))
                .send()
                .await,
            202,
        );
        check(
            &who,
            &held,
            &grant(Role::Operator),
            app.put(&format!("/v1/orgs/{org}/members/{}", target.id))
                .cred(c)
                .json(json!({ "role": "operator" }))
                .send()
                .await,
            200,
        );
        let mut owner_grant = vec![rbac::MEMBERS_WRITE, rbac::MEMBERS_OWNER];
        owner_grant.extend(sorted(Role::Owner.permissions()));
        check(
            &who,
            &held,
            &owner_grant,
            app.put(&format!("/v1/orgs/{org}/members/{}", target.id))
                .cred(c)
                .json(json!({ "role": "owner" }))
                .send()
                .await,
            200,
        );
        check(
            &who,
            &held,
            &grant(Role::Viewer),
            app.post(&format!("/v1/orgs/{org}/invitations"))
                .cred(c)
                .json(json!({ "email": "invitee@example.com", "role": "viewer" }))
                .send()
                .await,
            201,
        );
        check(
            &who,
            &held,
            &[rbac::ROLES_WRITE],
            app.post(&format!("/v1/orgs/{org}/roles"))
                .cred(c)
                .json(json!({ "name": "reader", "permissions": [rbac::ORGS_READ] }))
                .send()
                .await,
            201,
        );
        check(
            &who,
            &held,
            &[rbac::API_KEYS_WRITE],
            app.post(&format!("/v1/orgs/{org}/api-keys"))
                .cred(c)
                .json(json!({ "name": "k", "role": "viewer" }))
                .send()
                .await,
            201,
        );
        check(
            &who,
            &held,
            &[rbac::ORGS_DELETE],
            app.delete(&format!("/v1/orgs/{org}")).cred(c).send().await,
            204,
        );
    }
}

fn assert_key_shape(secret: &str) {
    let (prefix, rest) = secret
        .strip_prefix("ad_")
        .and_then(|s| s.split_once('_'))
        .unwrap_or_else(|| panic!("not ad_<prefix>_<secret>: {secret}"));
    assert_eq!(prefix.len(), 12);
    assert_eq!(rest.len(), 32);
    assert!(rest.chars().all(|c| c.is_ascii_alphanumeric()));
}

async fn api_keys_lifecycle(app: TestApp) {
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Keys").await;
    let other_org = app.org(&owner, "Other").await;
    let r = app
        .post(&format!("/v1/orgs/{org}/api-keys"))
        .token(&owner.token)
        .json(json!({ "name": "runner", "role": "operator" }))
        .expect(201)
        .await;
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    let key_id = r.body["id"].as_str().unwrap().to_owned();
    assert_key_shape(&secret);
    assert_eq!(r.body["prefix"], secret[3..15]);
    assert_eq!(r.body["role"], "operator");
    assert_eq!(r.body["created_by"], owner.id.as_str());
    assert!(r.body.get("last_used_at").is_none());
    assert_eq!(
        r.header("location"),
        Some(format!("/v1/orgs/{org}/api-keys/{key_id}").as_str())
    );

    // Only the SHA-256 of the secret part is stored.
    let db = app.db().await;
    let row = api_key::Entity::find()
        .filter(api_key::Column::Prefix.eq(&secret[3..15]))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    let stored = row.secret_hash;
    assert_eq!(stored, agentdesk::auth::secrets::hash(&secret[16..]));
    assert!(!stored.contains(&secret[16..]));

    // Accepted as a bearer credential and as X-API-Key, in its own org only.
    let bearer = Cred::Bearer(secret.clone());
    let header = Cred::ApiKey(secret.clone());
    for c in [&bearer, &header] {
        let got = app
            .get(&format!("/v1/orgs/{org}"))
            .cred(c)
            .expect(200)
            .await;
        assert_eq!(got.body["role"], "operator");
        app.get(&format!("/v1/orgs/{other_org}"))
            .cred(c)
            .expect(404)
            .await
            .assert_problem("not_found");
    }
    // Account and cross-org operations need a user.
    for r in [
        app.get("/v1/me").cred(&bearer).send().await,
        app.get("/v1/orgs").cred(&bearer).send().await,
        app.post("/v1/orgs")
            .cred(&bearer)
            .json(json!({ "name": "Mine" }))
            .send()
            .await,
        app.get("/v1/me/export").cred(&bearer).send().await,
        // The same key as `X-API-Key`: the same answer, not a 401 that reads like a dead key.
        app.get("/v1/me").cred(&header).send().await,
        app.get("/v1/orgs").cred(&header).send().await,
        app.get("/v1/me/export").cred(&header).send().await,
    ] {
        assert_eq!(r.status, 403, "{}", r.text);
        r.assert_problem("user_token_required");
        assert!(
            r.body["detail"].as_str().unwrap().contains("access token"),
            "{}",
            r.text
        );
    }

    // Sessions created by a key record no user; the audit names the key.
    let agent = app.agent(&owner, &org, "Bot", &[]).await;
    let s = app
        .post(&format!("/v1/orgs/{org}/sessions"))
        .cred(&header)
        .json(json!({ "agent_id": agent }))
        .expect(202)
        .await;
    assert!(s.body.get("created_by").is_none(), "{}", s.text);
    let audit = app
        .get(&format!(
            "/v1/orgs/{org}/audit-events?action=session.created"
        ))
        .token(&owner.token)
        .expect(200)
        .await;
    assert_eq!(audit.body["items"][0]["actor"]["type"], "api_key");
    assert_eq!(audit.body["items"][0]["actor"]["id"], key_id.as_str());

    // last_used_at is recorded, and not rewritten on every request (at most once a minute).
    let list = app
        .get(&format!("/v1/orgs/{org}/api-keys"))
        .token(&owner.token)
        .expect(200)
        .await;
    let first_use = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == key_id.as_str())
        .unwrap()["last_used_at"]
        .as_str()
        .expect("last_used_at set")
        .to_owned();
    app.get(&format!("/v1/orgs/{org}"))
        .cred(&bearer)
        .expect(200)
        .await;
    let list = app
        .get(&format!("/v1/orgs/{org}/api-keys"))
        .token(&owner.token)
        .expect(200)
        .await;
    assert!(
        !list.text.contains(&secret[16..]),
        "a list never shows secrets"
    );
    let again = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == key_id.as_str())
        .unwrap()["last_used_at"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(first_use, again);

    // A key can never exceed its creator's role; unknown roles and past expiry are 422.
    let admin = app.user("admin").await;
    app.add_member(&owner, &org, &admin, "admin").await;
    for (role, expires, field) in [
        ("owner", None, "role"),
        ("nosuchrole", None, "role"),
        ("viewer", Some("2001-01-01T00:00:00Z"), "expires_at"),
    ] {
        let mut body = json!({ "name": "k", "role": role });
        if let Some(e) = expires {
            body["expires_at"] = json!(e);
        }
        let r = app
            .post(&format!("/v1/orgs/{org}/api-keys"))
            .token(&admin.token)
            .json(body)
            .expect(422)
            .await;
        assert_eq!(r.error_fields(), [field], "{}", r.text);
    }
    // A key made by a key is bounded by the making key's role too.
    let (_, admin_key) = app.api_key(&owner, &org, "admin").await;
    let r = app
        .post(&format!("/v1/orgs/{org}/api-keys"))
        .cred(&Cred::Bearer(admin_key.clone()))
        .json(json!({ "name": "k", "role": "owner" }))
        .expect(422)
        .await;
    assert_eq!(r.error_fields(), ["role"]);
    let r = app
        .post(&format!("/v1/orgs/{org}/api-keys"))
        .cred(&Cred::Bearer(admin_key))
        .json(json!({ "name": "k", "role": "viewer" }))
        .expect(201)
        .await;
    assert!(r.body.get("created_by").is_none());

    // Wrong secret, malformed key: 401.
    let mut tampered = secret.clone();
    tampered.pop();
    tampered.push(if secret.ends_with('A') { 'B' } else { 'A' });
    for bad in [
        tampered.as_str(),
        "ad_nonsense",
        "ad_abcdefghijkl_00000000000000000000000000000000",
    ] {
        app.get(&format!("/v1/orgs/{org}"))
            .cred(&Cred::Bearer(bad.to_owned()))
            .expect(401)
            .await
            .assert_problem("invalid_token");
    }

    // An expired key answers 401.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let r = app
        .post(&format!("/v1/orgs/{org}/api-keys"))
        .token(&owner.token)
        .json(json!({ "name": "brief", "role": "viewer", "expires_at": soon }))
        .expect(201)
        .await;
    let brief = Cred::ApiKey(r.body["secret"].as_str().unwrap().to_owned());
    app.get(&format!("/v1/orgs/{org}"))
        .cred(&brief)
        .expect(200)
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let r = app
        .get(&format!("/v1/orgs/{org}"))
        .cred(&brief)
        .expect(401)
        .await;
    assert!(r.text.contains("expired"), "{}", r.text);

    // Revocation: every later request is 401; revoking again is fine; audited.
    app.delete(&format!("/v1/orgs/{org}/api-keys/{key_id}"))
        .token(&owner.token)
        .expect(204)
        .await;
    for c in [&bearer, &header] {
        let r = app
            .get(&format!("/v1/orgs/{org}"))
            .cred(c)
            .expect(401)
            .await;
        assert!(r.text.contains("revoked"), "{}", r.text);
    }
    app.delete(&format!("/v1/orgs/{org}/api-keys/{key_id}"))
        .token(&owner.token)
        .expect(204)
        .await;
    app.delete(&format!("/v1/orgs/{other_org}/api-keys/{key_id}"))
        .token(&owner.token)
        .expect(404)
        .await;
    let actions: Vec<String> = app
        .walk_pages(
            &format!("/v1/orgs/{org}/audit-events?limit=100"),
            &owner.token,
        )
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "api_key.revoked").count(),
        1
    );
    assert!(actions.iter().filter(|a| *a == "api_key.created").count() >= 3);
}

async fn custom_roles(app: TestApp) {
    let catalog = app.get("/v1/permissions").expect(200).await;
    let names: Vec<&str> = catalog.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), rbac::PERMISSIONS.len());
    assert!(names.contains(&"api_keys:write") && names.contains(&"sessions:write"));
    assert!(
        catalog.body["items"][0]["description"]
            .as_str()
            .unwrap()
            .len()
            > 5
    );

    let owner = app.user("owner").await;
    let org = app.org(&owner, "Roles").await;
    let roles = app
        .get(&format!("/v1/orgs/{org}/roles"))
        .token(&owner.token)
        .expect(200)
        .await;
    let builtin: Vec<&str> = roles.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(builtin, ["owner", "admin", "operator", "viewer"]);
    assert_eq!(roles.body["items"][0]["builtin"], true);

    // Create: validation names the field.
    let r = app
        .post(&format!("/v1/orgs/{org}/roles"))
        .token(&owner.token)
        .json(json!({ "name": "triage", "permissions": ["orgs:read", "orgs:fly", "x"] }))
        .expect(422)
        .await;
    assert_eq!(r.error_fields(), ["permissions[1]", "permissions[2]"]);
    app.post(&format!("/v1/orgs/{org}/roles"))
        .token(&owner.token)
        .json(json!({ "name": "admin", "permissions": [] }))
        .expect(409)
        .await
        .assert_problem("role_name_taken");
    let r = app
        .post(&format!("/v1/orgs/{org}/roles"))
        .token(&owner.token)
        .json(json!({ "name": "ctl", "description": "bell\u{7}", "permissions": [] }))
        .expect(422)
        .await;
    assert_eq!(r.error_fields(), ["description"]);
    let created = app
        .post(&format!("/v1/orgs/{org}/roles"))
        .token(&owner.token)
        .json(json!({
            "name": "triage",
            "description": "Reads sessions",
            "permissions": ["sessions:read", "orgs:read", "orgs:read"],
        }))
        .expect(201)
        .await;
    assert_eq!(
        created.body["permissions"],
        json!(["orgs:read", "sessions:read"])
    );
    assert_eq!(created.body["builtin"], false);
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert_eq!(
        created.header("location"),
        Some(format!("/v1/orgs/{org}/roles/triage").as_str())
    );
    app.post(&format!("/v1/orgs/{org}/roles"))
        .token(&owner.token)
        .json(json!({ "name": "triage", "permissions": [] }))
        .expect(409)
        .await
        .assert_problem("role_name_taken");

    // A member with the custom role can do exactly what it holds.
    let m = app.user("member").await;
    app.add_member(&owner, &org, &m, "triage").await;
    app.get(&format!("/v1/orgs/{org}/sessions"))
        .token(&m.token)
        .expect(200)
        .await;
    let denied = app
        .get(&format!("/v1/orgs/{org}/agents"))
        .token(&m.token)
        .expect(403)
        .await;
    assert_eq!(denied.body["missing_permission"], "agents:read");
    // Assigning a role that does not exist is 422 naming `role`.
    let x = app.user("x").await;
    let r = app
        .post(&format!("/v1/orgs/{org}/members"))
        .token(&owner.token)
        .json(json!({ "email": x.email, "role": "ghost" }))
        .expect(422)
        .await;
    assert_eq!(r.error_fields(), ["role"]);

    // Update needs If-Match; the change holds on the member's next request.
    let url = format!("/v1/orgs/{org}/roles/triage");
    app.put(&url)
        .token(&owner.token)
        .json(json!({ "permissions": ["agents:read"] }))
        .expect(428)
        .await
        .assert_problem("precondition_required");
    app.put(&url)
        .token(&owner.token)
        .header("if-match", "\"7\"")
        .json(json!({ "permissions": ["agents:read"] }))
        .expect(412)
        .await;
    let up = app
        .put(&url)
        .token(&owner.token)
        .header("if-match", "\"1\"")
        .json(json!({ "description": "Reads agents and sessions", "permissions": ["orgs:read", "sessions:read", "agents:read"] }))
        .expect(200)
        .await;
    assert_eq!(up.header("etag"), Some("\"2\""));
    app.get(&format!("/v1/orgs/{org}/agents"))
        .token(&m.token)
        .expect(200)
        .await;
    let got = app.get(&url).token(&m.token).send().await;
    assert_eq!(got.status, 403, "roles:read is not in triage: {}", got.text);

    // Built-in roles are read-only.
    app.put(&format!("/v1/orgs/{org}/roles/admin"))
        .token(&owner.token)
        .header("if-match", "\"0\"")
        .json(json!({ "permissions": [] }))
        .expect(409)
        .await
        .assert_problem("role_read_only");
    app.delete(&format!("/v1/orgs/{org}/roles/owner"))
        .token(&owner.token)
        .expect(409)
        .await
        .assert_problem("role_read_only");
    let admin_role = app
        .get(&format!("/v1/orgs/{org}/roles/admin"))
        .token(&owner.token)
        .expect(200)
        .await;
    assert_eq!(admin_role.body["builtin"], true);

    // No role may exceed its author: an admin cannot write `orgs:delete` into a role, nor
    // change or delete a role holding it.
    let admin = app.user("admin").await;
    app.add_member(&owner, &org, &admin, "admin").await;
    let r = app
        .post(&format!("/v1/orgs/{org}/roles"))
        .token(&admin.token)
        .json(json!({ "name": "destroyer", "permissions": ["orgs:delete"] }))
        .expect(422)
        .await;
    assert_eq!(r.error_fields(), ["permissions[0]"]);
    app.custom_role(&owner, &org, "destroyer", &["orgs:delete"])
        .await;
    let r = app
        .put(&format!("/v1/orgs/{org}/roles/destroyer"))
        .token(&admin.token)
        .header("if-match", "\"1\"")
        .json(json!({ "permissions": [] }))
        .expect(403)
        .await;
    assert_eq!(r.body["missing_permission"], "orgs:delete");
    app.delete(&format!("/v1/orgs/{org}/roles/destroyer"))
        .token(&admin.token)
        .expect(403)
        .await;
    // …nor give it to anyone.
    let y = app.user("y").await;
    let r = app
        .post(&format!("/v1/orgs/{org}/members"))
        .token(&admin.token)
        .json(json!({ "email": y.email, "role": "destroyer" }))
        .expect(403)
        .await;
    assert_eq!(r.body["missing_permission"], "orgs:delete");

    // Delete: 409 while a member, a live key or a pending invitation holds it.
    app.delete(&url)
        .token(&owner.token)
        .expect(409)
        .await
        .assert_problem("role_in_use");
    app.put(&format!("/v1/orgs/{org}/members/{}", m.id))
        .token(&owner.token)
        .json(json!({ "role": "viewer" }))
        .expect(200)
        .await;
    let (key_id, _) = app.api_key(&owner, &org, "triage").await;
    app.delete(&url).token(&owner.token).expect(409).await;
    app.delete(&format!("/v1/orgs/{org}/api-keys/{key_id}"))
        .token(&owner.token)
        .expect(204)
        .await;
    let inv = app
        .post(&format!("/v1/orgs/{org}/invitations"))
        .token(&owner.token)
        .json(json!({ "email": "later@example.com", "role": "triage" }))
        .expect(201)
        .await;
    app.delete(&url).token(&owner.token).expect(409).await;
    app.delete(&format!(
        "/v1/orgs/{org}/invitations/{}",
        inv.body["id"].as_str().unwrap()
    ))
    .token(&owner.token)
    .expect(204)
    .await;
    app.delete(&url).token(&owner.token).expect(204).await;
    app.get(&url).token(&owner.token).expect(404).await;

    // Roles of one org do not exist in another.
    let other = app.org(&owner, "Other").await;
    app.custom_role(&owner, &other, "triage", &["orgs:read"])
        .await;
    app.get(&format!("/v1/orgs/{org}/roles/triage"))
        .token(&owner.token)
        .expect(404)
        .await;
    let actions: Vec<String> = app
        .walk_pages(
            &format!("/v1/orgs/{org}/audit-events?limit=100"),
            &owner.token,
        )
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    for a in ["role.created", "role.updated", "role.deleted"] {
        assert!(actions.iter().any(|x| x == a), "{a} missing: {actions:?}");
    }
}

async fn custom_role_change_holds_on_another_node(backend: Backend) {
    // Two servers on one PostgreSQL database (SQLite is one node), each with its own auth
    // cache, whose entries would live 10 minutes: every change made through one is enforced
    // by the other at once, because the database's triggers invalidate through the bus.
    if backend == Backend::Sqlite {
        return;
    }
    let Some(a) = TestApp::spawn(backend).await else {
        return;
    };
    let owner = a.user("owner").await;
    let org = a.org(&owner, "Nodes").await;
    a.custom_role(&owner, &org, "reader", &["orgs:read"]).await;
    let m = a.user("member").await;
    a.add_member(&owner, &org, &m, "reader").await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::common::test_config(dir.path(), a.database_url.clone());
    config.migrate_on_start = false;
    config.worker_concurrency = 0;
    config.auth_cache_ttl_s = 600;
    let b = TestApp::start(backend, dir, a.database_url.clone(), config).await;
    let status_on_b = |path: String, cred: Cred| {
        let b = &b;
        async move { b.get(&path).cred(&cred).send().await.status }
    };
    let member = Cred::Bearer(m.token.clone());
    let agents = format!("/v1/orgs/{org}/agents");
    // Warm b's cache: membership, decision, org row.
    b.get(&agents).token(&m.token).expect(403).await;
    b.get(&format!("/v1/orgs/{org}"))
        .token(&m.token)
        .expect(200)
        .await;
    a.put(&format!("/v1/orgs/{org}/roles/reader"))
        .token(&owner.token)
        .header("if-match", "\"1\"")
        .json(json!({ "permissions": ["orgs:read", "agents:read"] }))
        .expect(200)
        .await;
    eventually("a granted permission holds on b", || {
        let f = status_on_b(agents.clone(), member.clone());
        async move { f.await == 200 }
    })
    .await;
    a.put(&format!("/v1/orgs/{org}/roles/reader"))
        .token(&owner.token)
        .header("if-match", "\"2\"")
        .json(json!({ "permissions": ["orgs:read"] }))
        .expect(200)
        .await;
    eventually("a withdrawn permission is refused on b", || {
        let f = status_on_b(agents.clone(), member.clone());
        async move { f.await == 403 }
    })
    .await;

    // An org renamed on a is read renamed on b (the org row is cached).
    a.patch(&format!("/v1/orgs/{org}"))
        .token(&owner.token)
        .json(json!({ "name": "Renamed" }))
        .expect(200)
        .await;
    eventually("b reads the new name", || {
        let (b, path, token) = (&b, format!("/v1/orgs/{org}"), m.token.clone());
        async move { b.get(&path).token(&token).expect(200).await.body["name"] == "Renamed" }
    })
    .await;

    // A key revoked on a is refused by b (its verification was cached there).
    let (key_id, key) = a.api_key(&owner, &org, "viewer").await;
    let key = Cred::ApiKey(key);
    b.get(&format!("/v1/orgs/{org}"))
        .cred(&key)
        .expect(200)
        .await;
    a.delete(&format!("/v1/orgs/{org}/api-keys/{key_id}"))
        .token(&owner.token)
        .expect(204)
        .await;
    a.get(&format!("/v1/orgs/{org}"))
        .cred(&key)
        .expect(401)
        .await;
    eventually("b refuses the revoked key", || {
        let f = status_on_b(format!("/v1/orgs/{org}"), key.clone());
        async move { f.await == 401 }
    })
    .await;

    // A member removed on a is a stranger on b.
    a.delete(&format!("/v1/orgs/{org}/members/{}", m.id))
        .token(&owner.token)
        .expect(204)
        .await;
    eventually("b no longer knows the removed member", || {
        let f = status_on_b(format!("/v1/orgs/{org}"), member.clone());
        async move { f.await == 404 }
    })
    .await;
    b.stop().await;
    a.stop().await;
}

async fn invitations_flow(app: TestApp) {
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Invites").await;
    let invitee = app.user("invitee").await;
    let stranger = app.user("stranger").await;
    let r = app
        .post(&format!("/v1/orgs/{org}/invitations"))
        .token(&owner.token)
        .json(json!({ "email": invitee.email.to_uppercase(), "role": "operator" }))
        .expect(201)
        .await;
    let token = r.body["token"].as_str().unwrap().to_owned();
    let inv_id = r.body["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("inv_"));
    assert_eq!(r.body["email"], invitee.email.as_str());
    assert_eq!(r.body["status"], "pending");
    assert_eq!(
        r.body["accept_url"],
        format!("http://127.0.0.1:0/invitations/accept#token={token}")
    );
    let list = app
        .get(&format!("/v1/orgs/{org}/invitations"))
        .token(&owner.token)
        .expect(200)
        .await;
    assert_eq!(list.body["items"][0]["id"], inv_id.as_str());
    assert!(!list.text.contains(&token), "lists never show tokens");

    let accept = format!("/v1/invitations/{token}/accept");
    app.post(&accept).expect(401).await;
    app.post(&accept)
        .token(&stranger.token)
        .expect(403)
        .await
        .assert_problem("invitation_email_mismatch");
    let ok = app.post(&accept).token(&invitee.token).expect(200).await;
    assert_eq!(ok.body["org_id"], org.as_str());
    assert_eq!(ok.body["role"], "operator");
    let members = app
        .get(&format!("/v1/orgs/{org}/members"))
        .token(&invitee.token)
        .expect(200)
        .await;
    assert!(
        members.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["user_id"] == invitee.id.as_str() && m["role"] == "operator")
    );
    app.post(&accept)
        .token(&invitee.token)
        .expect(410)
        .await
        .assert_problem("invitation_used");
    app.delete(&format!("/v1/orgs/{org}/invitations/{inv_id}"))
        .token(&owner.token)
        .expect(409)
        .await
        .assert_problem("invitation_used");
    app.post("/v1/invitations/inv_unknown/accept")
        .token(&invitee.token)
        .expect(404)
        .await;

    // Revoked and expired tokens are gone (410).
    let second = app.user("second").await;
    let r = app
        .post(&format!("/v1/orgs/{org}/invitations"))
        .token(&owner.token)
        .json(json!({ "email": second.email, "role": "viewer", "expires_in_s": 60 }))
        .expect(201)
        .await;
    let t2 = r.body["token"].as_str().unwrap().to_owned();
    app.delete(&format!(
        "/v1/orgs/{org}/invitations/{}",
        r.body["id"].as_str().unwrap()
    ))
    .token(&owner.token)
    .expect(204)
    .await;
    app.post(&format!("/v1/invitations/{t2}/accept"))
        .token(&second.token)
        .expect(410)
        .await
        .assert_problem("invitation_revoked");
    let r = app
        .post(&format!("/v1/orgs/{org}/invitations"))
        .token(&owner.token)
        .json(json!({ "email": second.email, "role": "viewer", "expires_in_s": 60 }))
        .expect(201)
        .await;
    let t3 = r.body["token"].as_str().unwrap().to_owned();
    let db = app.db().await;
    invitation::Entity::update_many()
        .col_expr(
            invitation::Column::ExpiresAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::seconds(1)),
        )
        .filter(invitation::Column::Id.eq(Uuid::parse_str(r.body["id"].as_str().unwrap()).unwrap()))
        .exec(&db)
        .await
        .unwrap();
    app.post(&format!("/v1/invitations/{t3}/accept"))
        .token(&second.token)
        .expect(410)
        .await
        .assert_problem("invitation_expired");
    let list = app
        .get(&format!("/v1/orgs/{org}/invitations"))
        .token(&owner.token)
        .expect(200)
        .await;
    let statuses: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["expired", "revoked", "accepted"]);

    // Rules: members cannot be invited again; only owners invite owners; bounds on lifetime.
    app.post(&format!("/v1/orgs/{org}/invitations"))
        .token(&owner.token)
        .json(json!({ "email": invitee.email, "role": "viewer" }))
        .expect(409)
        .await
        .assert_problem("already_member");
    let admin = app.user("admin").await;
    app.add_member(&owner, &org, &admin, "admin").await;
    let r = app
        .post(&format!("/v1/orgs/{org}/invitations"))
        .token(&admin.token)
        .json(json!({ "email": "boss@example.com", "role": "owner" }))
        .expect(403)
        .await;
    assert_eq!(r.body["missing_permission"], "members:owner");
    let r = app
        .post(&format!("/v1/orgs/{org}/invitations"))
        .token(&owner.token)
        .json(json!({ "email": "x@example.com", "role": "viewer", "expires_in_s": 10 }))
        .expect(422)
        .await;
    assert_eq!(r.error_fields(), ["expires_in_s"]);
    // A viewer cannot invite.
    let r = app
        .post(&format!("/v1/orgs/{org}/invitations"))
        .token(&invitee.token)
        .json(json!({ "email": "x@example.com", "role": "viewer" }))
        .send()
        .await;
    assert_eq!(r.status, 403, "operators lack members:write: {}", r.text);

    let actions: Vec<String> = app
        .walk_pages(
            &format!("/v1/orgs/{org}/audit-events?limit=100"),
            &owner.token,
        )
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    for a in [
        "invitation.created",
        "invitation.revoked",
        "invitation.accepted",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} missing");
    }
}

async fn login(app: &TestApp, email: &str, password: &str) -> Resp {
    app.post("/v1/auth/login")
        .json(json!({ "email": email, "password": password }))
        .send()
        .await
}

async fn login_throttling(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.login_throttle_free_failures = 2;
        c.login_throttle_ip_free_failures = 8;
        c.login_throttle_base_delay_s = 1;
        c.login_throttle_max_delay_s = 2;
    })
    .await
    else {
        return;
    };
    let u = app.user("victim").await;
    let org = app.org(&u, "Mine").await;
    // Two free failures, the third locks the account for 1 s.
    for _ in 0..3 {
        let r = login(&app, &u.email, "wrong password!!").await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    // While locked even the right password is refused before it is checked.
    let r = login(&app, &u.email, &u.password).await;
    assert_eq!(r.status, 429, "{}", r.text);
    r.assert_problem("login_throttled");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    tokio::time::sleep(std::time::Duration::from_millis(wait * 1000 + 200)).await;
    // The next failure doubles the delay (capped at 2 s).
    assert_eq!(login(&app, &u.email, "wrong password!!").await.status, 401);
    let r = login(&app, &u.email, &u.password).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("2"));
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert_eq!(login(&app, &u.email, &u.password).await.status, 200);
    // A success clears the account's counter: two more failures are free again.
    for _ in 0..2 {
        assert_eq!(login(&app, &u.email, "wrong password!!").await.status, 401);
    }
    assert_eq!(login(&app, &u.email, &u.password).await.status, 200);

    // Audited, with the outcome, in the account's own export; the org never sees what others
    // tried against its member's account.
    let export = app.get("/v1/me/export").token(&u.token).expect(200).await;
    let events = export.body["audit_events"].as_array().unwrap();
    let throttled: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "auth.login_throttled")
        .collect();
    assert!(throttled.len() >= 2, "{throttled:?}");
    assert_eq!(throttled[0]["outcome"], "failure");
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "auth.login" && e["details"]["reason"] == "throttled")
    );
    let seen_by_org = app
        .walk_pages(
            &format!("/v1/orgs/{org}/audit-events?limit=100&action=auth.login_throttled"),
            &u.token,
        )
        .await;
    assert!(seen_by_org.is_empty(), "{seen_by_org:?}");

    // Per IP (8 free, 6 spent above): failures spread over many accounts lock the address.
    let other = app.user("bystander").await;
    for i in 0..3 {
        login(&app, &format!("nobody{i}@example.com"), "whatever password").await;
    }
    let r = login(&app, &other.email, &other.password).await;
    assert_eq!(r.status, 429, "{}", r.text);
    r.assert_problem("login_throttled");
}

async fn account_rights(app: TestApp) {
    let u = app.user("ada").await;
    let org = app.org(&u, "Ada's").await;
    // A second login on another device.
    let second = login(&app, &u.email, &u.password).await;
    let refresh2 = second.body["refresh_token"].as_str().unwrap().to_owned();

    // Export: profile, memberships, identities, audit events.
    let e = app.get("/v1/me/export").token(&u.token).expect(200).await;
    assert_eq!(e.body["profile"]["email"], u.email.as_str());
    assert_eq!(e.body["has_password"], true);
    assert_eq!(e.body["memberships"][0]["org_id"], org.as_str());
    assert_eq!(e.body["memberships"][0]["role"], "owner");
    assert_eq!(e.body["identities"], json!([]));
    let actions: Vec<&str> = e.body["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.starts_with(&["user.registered", "auth.login"]),
        "{actions:?}"
    );
    assert!(actions.contains(&"org.created"));
    assert!(
        e.header("content-disposition")
            .unwrap()
            .contains("attachment")
    );

    // Logout everywhere: both logins' refresh tokens stop working.
    app.post("/v1/me/logout-all")
        .token(&u.token)
        .expect(204)
        .await;
    for rt in [&u.refresh, &refresh2] {
        app.post("/v1/auth/refresh")
            .json(json!({ "refresh_token": rt }))
            .expect(401)
            .await;
    }
    // …and so do both logins' access tokens, at once.
    let second_token = second.body["access_token"].as_str().unwrap();
    for at in [u.token.as_str(), second_token] {
        app.get("/v1/me").token(at).expect(401).await;
    }
    let again = login(&app, &u.email, &u.password).await;
    let u = User {
        token: again.body["access_token"].as_str().unwrap().to_owned(),
        ..u
    };

    // Erasure: refused while the last owner of an org.
    let r = app.delete("/v1/me").token(&u.token).expect(409).await;
    r.assert_problem("last_owner");
    assert!(r.text.contains(&org), "{}", r.text);
    let bob = app.user("bob").await;
    app.add_member(&u, &org, &bob, "owner").await;
    app.delete("/v1/me").token(&u.token).expect(204).await;
    // Gone: no login, the old access token is refused, the email is free again.
    assert_eq!(login(&app, &u.email, &u.password).await.status, 401);
    app.get("/v1/me").token(&u.token).expect(401).await;
    let members = app
        .get(&format!("/v1/orgs/{org}/members"))
        .token(&bob.token)
        .expect(200)
        .await;
    assert_eq!(members.body["items"].as_array().unwrap().len(), 1);
    assert!(!members.text.contains(&u.email));
    // The audit rows stay, pseudonymised: one pseudonym, no IP, no user agent.
    let events = app
        .walk_pages(
            &format!("/v1/orgs/{org}/audit-events?limit=100"),
            &bob.token,
        )
        .await;
    let created = events
        .iter()
        .find(|e| e["action"] == "org.created")
        .unwrap();
    assert_eq!(created["actor"]["type"], "erased_user");
    assert_ne!(created["actor"]["id"], u.id.as_str());
    assert!(created.get("ip").is_none() && created.get("user_agent").is_none());
    let invited = events
        .iter()
        .find(|e| e["action"] == "invitation.created")
        .unwrap();
    assert_eq!(invited["actor"]["id"], created["actor"]["id"]);
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(&u.id) && !all.contains(&u.email));
    let db = app.db().await;
    let uid = Uuid::parse_str(&u.id).unwrap();
    let n = audit_event::Entity::find()
        .filter(
            Condition::any()
                .add(audit_event::Column::ActorId.eq(uid))
                .add(audit_event::Column::SubjectUserId.eq(uid))
                .add(audit_event::Column::TargetId.eq(u.id.clone())),
        )
        .count(&db)
        .await
        .unwrap();
    let total = audit_event::Entity::find().count(&db).await.unwrap();
    assert!(total > 5, "the erased user's rows stay");
    assert_eq!(n, 0, "no audit row names the erased user");
    app.post("/v1/auth/register")
        .json(json!({ "email": u.email, "password": "a brand new password", "display_name": "Ada 2" }))
        .expect(201)
        .await;
}

async fn audit_filters(app: TestApp) {
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Audit").await;
    let m = app.user("m").await;
    app.add_member(&owner, &org, &m, "admin").await;
    let before_second = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let n = app.user("n").await;
    app.add_member(&m, &org, &n, "viewer").await;
    let path = |q: &str| format!("/v1/orgs/{org}/audit-events?limit=100&{q}");
    let items = |v: Vec<Value>| -> Vec<(String, String)> {
        v.iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_owned(),
                    e["actor"]["id"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    let by_m = items(
        app.walk_pages(&path(&format!("actor_id={}", m.id)), &owner.token)
            .await,
    );
    assert!(!by_m.is_empty());
    assert!(by_m.iter().all(|(_, actor)| *actor == m.id), "{by_m:?}");
    let invited_by_owner = items(
        app.walk_pages(
            &path(&format!("action=invitation.created&actor_id={}", owner.id)),
            &owner.token,
        )
        .await,
    );
    assert_eq!(invited_by_owner.len(), 1);
    let since = before_second.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let recent = items(
        app.walk_pages(
            &path(&format!(
                "action=invitation.created&since={}",
                since.replace('+', "%2B")
            )),
            &owner.token,
        )
        .await,
    );
    assert_eq!(recent, [("invitation.created".to_owned(), m.id.clone())]);
    let older = items(
        app.walk_pages(
            &path(&format!(
                "action=invitation.created&until={}",
                since.replace('+', "%2B")
            )),
            &owner.token,
        )
        .await,
    );
    assert_eq!(older, [("invitation.created".to_owned(), owner.id.clone())]);
    let empty = app
        .get(&path(&format!("since={since}&until={since}")))
        .token(&owner.token)
        .expect(200)
        .await;
    assert_eq!(empty.body["items"], json!([]));
    app.get(&path("since=yesterday"))
        .token(&owner.token)
        .expect(400)
        .await;
    app.get(&path("actor_id=not-a-uuid"))
        .token(&owner.token)
        .expect(400)
        .await;
}
