//! Access you can trust (issue 11), each test performing the attack first: joining without
//! consent and the org watching the account, access tokens outliving their session,
//! idempotent replays skipping authorization, look-alike addresses, and the small leaks
//! (SSE caching, the SQLite file's mode, 401 details).

use agentdesk::{auth::principal::REFUSED_DETAIL, entity::user};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::json;
use uuid::Uuid;

use crate::{
    backend_tests,
    common::{Backend, TestApp, Urls, User, eventually},
    db_tests,
};

db_tests!(
    joining_takes_consent_and_anyone_can_leave,
    access_tokens_die_with_their_session,
    replays_are_authorized_first,
    look_alike_addresses_are_one_account_or_refused,
    credential_refusals_say_nothing_more
);
backend_tests!(revocation_holds_on_every_node_at_once);

async fn org_ids(app: &TestApp, u: &User) -> Vec<String> {
    let r = app.get("/v1/orgs").token(&u.token).expect(200).await;
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn actions_seen_by(app: &TestApp, org: &str, by: &User) -> Vec<(String, String)> {
    app.walk_pages(&format!("/v1/orgs/{org}/audit-events?limit=100"), &by.token)
        .await
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["target"]["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// `members.add` used to put any account into any org and the org then read the victim's
/// account events; and nobody could leave. Now: an invitation the person must accept (with a
/// verified address), and `me.leave_org`.
async fn joining_takes_consent_and_anyone_can_leave(app: TestApp) {
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Watchers").await;
    let victim = app.user("victim").await;
    let r = app
        .post(&Urls::members(&org))
        .token(&owner.token)
        .json(json!({ "email": victim.email, "role": "admin" }))
        .expect(202)
        .await;
    assert!(r.header("deprecation").is_some() && r.header("sunset").is_some());
    let token = r.body["token"].as_str().unwrap().to_owned();
    // Not a member: the org is invisible to them, and they are invisible to it.
    assert!(!org_ids(&app, &victim).await.contains(&org));
    let members = app
        .get(&Urls::members(&org))
        .token(&owner.token)
        .expect(200)
        .await;
    assert!(!members.text.contains(&victim.id), "{}", members.text);
    app.post("/v1/auth/login")
        .json(json!({ "email": victim.email, "password": victim.password }))
        .expect(200)
        .await;
    let seen = actions_seen_by(&app, &org, &owner).await;
    assert!(
        seen.iter().all(|(_, target)| *target != victim.id),
        "{seen:?}"
    );

    // An account whose address was never proven cannot accept (the invitation is for whoever
    // reads that mailbox).
    let squatter = app.unverified_user("squatter").await;
    let inv = app
        .post(&Urls::invitations(&org))
        .token(&owner.token)
        .json(json!({ "email": squatter.email, "role": "viewer" }))
        .expect(201)
        .await;
    let inv_token = inv.body["token"].as_str().unwrap();
    app.post(&format!("/v1/invitations/{inv_token}/accept"))
        .token(&squatter.token)
        .expect(403)
        .await
        .assert_problem("email_not_verified");
    app.post("/v1/me/email-verification")
        .token(&squatter.token)
        .expect(202)
        .await;
    app.verify_email(&squatter.email).await;
    app.post("/v1/me/email-verification")
        .token(&squatter.token)
        .expect(409)
        .await
        .assert_problem("email_already_verified");
    app.post(&format!("/v1/invitations/{inv_token}/accept"))
        .token(&squatter.token)
        .expect(200)
        .await;

    // Consent: the victim accepts, and only from then on does the org see what they do.
    app.post(&format!("/v1/invitations/{token}/accept"))
        .token(&victim.token)
        .expect(200)
        .await;
    assert!(org_ids(&app, &victim).await.contains(&org));
    app.post("/v1/auth/login")
        .json(json!({ "email": victim.email, "password": victim.password }))
        .expect(200)
        .await;
    let logins_seen = |seen: &[(String, String)]| {
        seen.iter()
            .filter(|(a, t)| a == "auth.login" && *t == victim.id)
            .count()
    };
    assert_eq!(logins_seen(&actions_seen_by(&app, &org, &owner).await), 1);

    // Leaving: the victim's own decision, no permission needed.
    let leave = format!("/v1/me/memberships/{org}");
    app.delete(&leave).token(&victim.token).expect(204).await;
    assert!(!org_ids(&app, &victim).await.contains(&org));
    app.get(&format!("/v1/orgs/{org}"))
        .token(&victim.token)
        .expect(404)
        .await;
    app.delete(&leave)
        .token(&victim.token)
        .expect(404)
        .await
        .assert_problem("not_found");
    // After leaving, the org sees none of their account events again, not even the old ones.
    app.post("/v1/auth/login")
        .json(json!({ "email": victim.email, "password": victim.password }))
        .expect(200)
        .await;
    let seen = actions_seen_by(&app, &org, &owner).await;
    assert_eq!(logins_seen(&seen), 0, "{seen:?}");
    assert!(seen.contains(&("member.left".to_owned(), victim.id.clone())));
    // The org's only owner cannot leave it ownerless.
    app.delete(&leave)
        .token(&owner.token)
        .expect(409)
        .await
        .assert_problem("last_owner");
    app.delete(&format!("/v1/me/memberships/{}", Uuid::now_v7()))
        .token(&owner.token)
        .expect(404)
        .await;
}

async fn login(app: &TestApp, u: &User) -> (String, String) {
    let r = app
        .post("/v1/auth/login")
        .json(json!({ "email": u.email, "password": u.password }))
        .expect(200)
        .await;
    (
        r.body["access_token"].as_str().unwrap().to_owned(),
        r.body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn refused(app: &TestApp, token: &str) {
    app.get("/v1/me")
        .token(token)
        .expect(401)
        .await
        .assert_problem("invalid_token");
}

/// Access tokens used to live their 15 minutes through logout, password change and account
/// disable. Now each of those ends them at once.
async fn access_tokens_die_with_their_session(app: TestApp) {
    let u = app.user("u").await;
    // Logout of one login ends the account's access tokens; the other device refreshes.
    let (phone, phone_refresh) = login(&app, &u).await;
    app.post("/v1/auth/logout")
        .json(json!({ "refresh_token": u.refresh }))
        .expect(204)
        .await;
    refused(&app, &u.token).await;
    refused(&app, &phone).await;
    let r = app
        .post("/v1/auth/refresh")
        .json(json!({ "refresh_token": phone_refresh }))
        .expect(200)
        .await;
    let phone = r.body["access_token"].as_str().unwrap().to_owned();
    app.get("/v1/me").token(&phone).expect(200).await;

    // A password change ends every access token.
    app.patch("/v1/me")
        .token(&phone)
        .json(json!({ "current_password": u.password, "new_password": "a new long password" }))
        .expect(200)
        .await;
    refused(&app, &phone).await;
    let u = User {
        password: "a new long password".into(),
        ..u
    };
    let (fresh, _) = login(&app, &u).await;
    app.get("/v1/me").token(&fresh).expect(200).await;

    // An operator disables the account in the database, behind the server's back: on
    // PostgreSQL the `users` trigger tells every node's auth cache, and the tokens stop. (A
    // SQLite node hears only of its own writes; such an edit holds there within
    // `auth_cache_ttl_s`.)
    let db = app.db().await;
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return;
    }
    user::Entity::update_many()
        .col_expr(user::Column::DisabledAt, Expr::value(chrono::Utc::now()))
        .filter(user::Column::Id.eq(Uuid::parse_str(&u.id).unwrap()))
        .exec(&db)
        .await
        .unwrap();
    eventually("the disabled account's token is refused", || {
        let (app, fresh) = (&app, fresh.clone());
        async move { app.get("/v1/me").token(&fresh).send().await.status == 401 }
    })
    .await;
    refused(&app, &fresh).await;
}

/// Logout-all through one node ends the tokens on another node at once: its cached account
/// state (which would live 10 minutes) is invalidated through the bus. PostgreSQL only (SQLite
/// is one node).
async fn revocation_holds_on_every_node_at_once(backend: Backend) {
    if backend == Backend::Sqlite {
        return;
    }
    let Some(a) = TestApp::spawn(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::common::test_config(dir.path(), a.database_url.clone());
    config.migrate_on_start = false;
    config.worker_concurrency = 0;
    config.auth_cache_ttl_s = 600;
    let b = TestApp::start(backend, dir, a.database_url.clone(), config).await;
    let u = a.user("u").await;
    b.get("/v1/me").token(&u.token).expect(200).await;
    a.post("/v1/me/logout-all")
        .token(&u.token)
        .expect(204)
        .await;
    refused(&a, &u.token).await;
    eventually("b refuses the ended token", || {
        let (b, token) = (&b, u.token.clone());
        async move { b.get("/v1/me").token(&token).send().await.status == 401 }
    })
    .await;
    refused(&b, &u.token).await;
    b.stop().await;
    a.stop().await;
}

/// An `Idempotency-Key` replay used to hand the stored response to a caller who has since
/// lost the right to make the request. Now the replay is authorized first.
async fn replays_are_authorized_first(app: TestApp) {
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Replays").await;
    let m = app.user("m").await;
    app.add_member(&owner, &org, &m, "admin").await;
    let create = |key: &'static str, token: String| {
        let app = &app;
        let url = Urls::agents(&org);
        async move {
            app.post(&url)
                .token(&token)
                .header("Idempotency-Key", key)
                .json(json!({ "name": key, "model": "test-model", "capabilities": [] }))
                .send()
                .await
        }
    };
    let first = create("k-demote", m.token.clone()).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = create("k-demote", m.token.clone()).await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    // Demoted to viewer: the replay answers what a fresh request would (403), not the agent.
    app.put(&format!("/v1/orgs/{org}/members/{}", m.id))
        .token(&owner.token)
        .json(json!({ "role": "viewer" }))
        .expect(200)
        .await;
    let r = create("k-demote", m.token.clone()).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.body["missing_permission"], "agents:write");
    assert!(r.header("idempotent-replayed").is_none());
    // Removed: 404, as for any non-member.
    app.delete(&format!("/v1/orgs/{org}/members/{}", m.id))
        .token(&owner.token)
        .expect(204)
        .await;
    let r = create("k-demote", m.token.clone()).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(!r.text.contains(first.body["id"].as_str().unwrap()));
    // The owner's own key still replays.
    let mine = create("k-owner", owner.token.clone()).await;
    assert_eq!(mine.status, 201);
    let replay = create("k-owner", owner.token.clone()).await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body["id"], mine.body["id"]);
}

async fn signup(app: &TestApp, email: &str) -> crate::common::Resp {
    app.post(&Urls::signup())
        .json(json!({ "email": email, "password": "a long enough password", "display_name": "X" }))
        .send()
        .await
}

/// Zero-width characters, bidi controls, NFD vs NFC and fullwidth or Cyrillic look-alikes used
/// to register distinct accounts that read like an existing one.
async fn look_alike_addresses_are_one_account_or_refused(app: TestApp) {
    let tag = Uuid::now_v7().simple().to_string();
    let ada = format!("ada{tag}@example.com");
    let r = signup(&app, &ada).await;
    assert_eq!(r.status, 202, "{}", r.text);
    for look_alike in [
        format!("ad\u{200b}a{tag}@example.com"),
        format!("\u{202e}ada{tag}@example.com"),
        format!("ada{tag}@exa\u{2066}mple.com"),
        format!("\u{ff41}da{tag}@example.com"),
        format!("\u{430}da{tag}@example.com"),
        format!("ada{tag}@\u{ff45}xample.com"),
    ] {
        let r = signup(&app, &look_alike).await;
        assert_eq!(r.status, 422, "{look_alike:?}: {}", r.text);
        assert_eq!(r.error_fields(), ["email"], "{look_alike:?}");
    }
    // NFD and NFC, upper and lower case: one account. The second sign-up creates nothing and
    // tells the owner.
    let nfc = format!("jos\u{e9}{tag}@example.com");
    let nfd = format!("JOSE\u{301}{tag}@Example.COM");
    assert_eq!(signup(&app, &nfc).await.status, 202);
    let second = signup(&app, &nfd).await;
    assert_eq!(second.status, 202);
    assert_eq!(second.body["email"], nfc.as_str());
    let kinds: Vec<String> = app.mails_to(&nfc).iter().map(|m| m.kind.clone()).collect();
    assert_eq!(kinds, ["email_verification", "signup_attempt"]);
    app.post("/v1/auth/login")
        .json(json!({ "email": nfd, "password": "a long enough password" }))
        .expect(200)
        .await;
}

/// A 401 used to name the exact JWT failure (expired, bad signature, wrong audience…), which
/// helps whoever forges tokens. The reason goes to the log; the client gets `invalid_token`.
async fn credential_refusals_say_nothing_more(app: TestApp) {
    let u = app.user("u").await;
    let org = app.org(&u, "Refusals").await;
    let (key_id, key) = app.api_key(&u, &org, "viewer").await;
    app.delete(&format!("/v1/orgs/{org}/api-keys/{key_id}"))
        .token(&u.token)
        .expect(204)
        .await;
    // A different signature (a character well inside it, so no padding bits are involved).
    let mut tampered = u.token.clone().into_bytes();
    let at = tampered.len() - 10;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for (cred, header) in [
        (tampered.as_str(), "authorization"),
        ("not.a.jwt", "authorization"),
        (key.as_str(), "x-api-key"),
        (
            "ad_unknownprefx_0123456789abcdef0123456789abcdef",
            "x-api-key",
        ),
    ] {
        let value = if header == "authorization" {
            format!("Bearer {cred}")
        } else {
            cred.to_owned()
        };
        let r = app
            .get(&format!("/v1/orgs/{org}"))
            .header(header, &value)
            .expect(401)
            .await;
        r.assert_problem("invalid_token");
        // One generic detail for every refusal; the reason is in the server log only.
        assert_eq!(r.body["detail"], REFUSED_DETAIL, "{}", r.text);
        let challenge = r.header("www-authenticate").unwrap();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(challenge.contains(REFUSED_DETAIL), "{challenge}");
    }

    // The event stream is never stored by a cache either.
    let r = app
        .http
        .get(app.url(&format!("/v1/orgs/{org}/events/stream")))
        .bearer_auth(&u.token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    drop(r);

    // The default SQLite database file is the owner's alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let config = agentdesk::Config {
            database_url: None,
            data_dir: dir.path().join("data"),
            ..crate::common::test_config(dir.path(), String::new())
        };
        let db = agentdesk::app::connect(&config).await.unwrap();
        drop(db);
        let mode = std::fs::metadata(dir.path().join("data/agentdesk.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
}
