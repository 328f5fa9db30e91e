//! The pre-account-takeover guard of single sign-on (`domain::takeover`), against the real
//! provider: an account whose address was never verified is handed to the first identity a
//! provider vouches for, and everything an unproven claimant may hold ends with that login.

use serde_json::{Value, json};

use super::{World, query};
use crate::{
    backend_tests,
    common::{Backend, TestApp, Urls, User},
};

backend_tests!(
    sso_takeover_guard,
    sso_takeover_guard_drops_unproven_identities
);

/// The `user.identity_linked` events of `user_id` (account events: read the table).
async fn identity_linked(app: &TestApp, user_id: &str) -> Vec<Value> {
    use agentdesk::entity::audit_event;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("user.identity_linked"))
        .filter(audit_event::Column::SubjectUserId.eq(uuid::Uuid::parse_str(user_id).unwrap()))
        .all(&app.db().await)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.details)
        .collect()
}

/// A squatter registers the owner's address with a password; the owner's SSO login takes the
/// account over and every credential the squatter held dies.
async fn sso_takeover_guard(backend: Backend) {
    let Some(world) = World::start(backend).await else {
        return;
    };
    let (app, sso) = (&world.app, world.sso());
    let email = "victim@example.com";
    let password = "the squatter's long password";

    // The squatter signs the address up (never opening the link mailed to it) and logs in.
    app.post(&Urls::signup())
        .json(json!({ "email": email, "password": password, "display_name": "Not the victim" }))
        .expect(202)
        .await;
    let tokens = app
        .post(&Urls::login())
        .json(json!({ "email": email, "password": password }))
        .expect(200)
        .await;
    let me = app
        .get("/v1/me")
        .token(tokens.body["access_token"].as_str().unwrap())
        .expect(200)
        .await;
    assert_eq!(me.body["email_verified"], false);
    let squatter = User {
        id: me.body["id"].as_str().unwrap().to_owned(),
        email: email.to_owned(),
        password: password.to_owned(),
        token: tokens.body["access_token"].as_str().unwrap().to_owned(),
        refresh: tokens.body["refresh_token"].as_str().unwrap().to_owned(),
    };
    // An org, an API key there, a key made by that key, a pending invitation.
    let org = app.org(&squatter, "Squatted").await;
    let (_, key) = app.api_key(&squatter, &org, "admin").await;
    let made = app
        .post(&Urls::api_keys(&org))
        .token(&key)
        .json(json!({ "name": "made by a key", "role": "viewer" }))
        .expect(201)
        .await;
    let key2 = made.body["secret"].as_str().unwrap().to_owned();
    app.post(&Urls::invitations(&org))
        .token(&squatter.token)
        .json(json!({ "email": "accomplice@example.com", "role": "admin" }))
        .expect(201)
        .await;
    for k in [&key, &key2] {
        app.get(&Urls::org(&org)).token(k).expect(200).await;
    }

    // The owner signs in with SSO; the provider vouches for the address: the same account.
    let (owner, owner_tokens) = sso.login_user(email).await;
    assert_eq!(owner["id"], squatter.id.as_str());
    assert_eq!(owner["email_verified"], true);
    let owner_token = owner_tokens["access_token"].as_str().unwrap();

    // Everything the squatter held is dead: password, access and refresh tokens, both keys.
    app.post(&Urls::login())
        .json(json!({ "email": email, "password": password }))
        .expect(401)
        .await
        .assert_problem("invalid_credentials");
    app.get("/v1/me").token(&squatter.token).expect(401).await;
    app.post("/v1/auth/refresh")
        .json(json!({ "refresh_token": squatter.refresh }))
        .expect(401)
        .await;
    for k in [&key, &key2] {
        app.get(&Urls::org(&org)).token(k).expect(401).await;
    }
    // The pending invitation is revoked; the org stays with the account (now the owner's).
    app.get(&Urls::org(&org))
        .token(owner_token)
        .expect(200)
        .await;
    let invitations = app
        .get(&Urls::invitations(&org))
        .token(owner_token)
        .expect(200)
        .await;
    assert_eq!(invitations.body["items"][0]["status"], "revoked");
    let export = app
        .get("/v1/me/export")
        .token(owner_token)
        .expect(200)
        .await;
    assert_eq!(export.body["has_password"], false);
    assert_eq!(export.body["identities"].as_array().unwrap().len(), 1);

    // Audited: the link says the guard fired, each key's revocation says why, in its org.
    let linked = identity_linked(app, &squatter.id).await;
    assert_eq!(linked.len(), 1, "{linked:?}");
    let d = &linked[0];
    assert_eq!(d["takeover_guard"], true, "{d}");
    assert_eq!(d["password_removed"], true, "{d}");
    assert_eq!(d["refresh_tokens_revoked"], 1, "{d}");
    assert_eq!(d["api_keys_revoked"], 2, "{d}");
    assert_eq!(d["invitations_revoked"], 1, "{d}");
    assert_eq!(d["identities_removed"], json!([]), "{d}");
    let revoked = app
        .get(&format!(
            "/v1/orgs/{org}/audit-events?action=api_key.revoked"
        ))
        .token(owner_token)
        .expect(200)
        .await;
    let revoked = revoked.body["items"].as_array().unwrap();
    assert_eq!(revoked.len(), 2);
    for e in revoked {
        assert_eq!(e["details"]["reason"], "account_takeover_guard", "{e}");
    }

    // The guard fires once: the next SSO login is a plain login that ends nothing.
    let (again, _) = sso.login_user(email).await;
    assert_eq!(again["id"], squatter.id.as_str());
    app.get("/v1/me").token(owner_token).expect(200).await;
    assert_eq!(identity_linked(app, &squatter.id).await.len(), 1);
    // Signing the address up again only tells the owner.
    app.post(&Urls::signup())
        .json(json!({ "email": email, "password": password, "display_name": "Again" }))
        .expect(202)
        .await;
    assert!(
        app.mails_to(email)
            .iter()
            .any(|m| m.kind == "signup_attempt")
    );
    app.post(&Urls::login())
        .json(json!({ "email": email, "password": password }))
        .expect(401)
        .await;
}

/// A squatter who made the account through SSO with an unproven claim to the address loses
/// that identity when a provider vouches for the address: it cannot log in again.
async fn sso_takeover_guard_drops_unproven_identities(backend: Backend) {
    let Some(world) = World::start(backend).await else {
        return;
    };
    let (app, sso) = (&world.app, world.sso());
    let claim = "unverified:owner@example.com";
    let (squatter, squatter_tokens) = sso.login_user(claim).await;
    assert_eq!(squatter["email"], "owner@example.com");
    assert_eq!(squatter["email_verified"], false);

    let (owner, owner_tokens) = sso.login_user("owner@example.com").await;
    assert_eq!(owner["id"], squatter["id"]);
    assert_eq!(owner["email_verified"], true);
    app.get("/v1/me")
        .token(squatter_tokens["access_token"].as_str().unwrap())
        .expect(401)
        .await;
    // The squatter's identity is gone: logging in with it again is an unproven claim on a
    // verified account, refused.
    let landed = sso.login("test", claim).await;
    assert_eq!(
        query(&landed, "error").as_deref(),
        Some("email_not_verified"),
        "{landed}"
    );
    let export = app
        .get("/v1/me/export")
        .token(owner_tokens["access_token"].as_str().unwrap())
        .expect(200)
        .await;
    let identities = export.body["identities"].as_array().unwrap();
    assert_eq!(identities.len(), 1);
    assert_ne!(identities[0]["email"], Value::Null);
    let linked = identity_linked(app, squatter["id"].as_str().unwrap()).await;
    assert_eq!(linked.len(), 1, "{linked:?}");
    assert_eq!(linked[0]["password_removed"], false);
    assert_eq!(linked[0]["identities_removed"], json!(["test"]));
}
