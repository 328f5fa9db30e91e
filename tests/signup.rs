//! Sign-up that does not tell who has an account (`auth.signup`), and the deprecated
//! operations it and invitations replace: `auth.register` and `members.add`, which keep working
//! with `Deprecation`, `Sunset` and `Link` headers until their sunset.

use serde_json::{Value, json};

use crate::{
    common::{Resp, TestApp, Urls},
    db_tests,
};

db_tests!(
    signup_answers_alike_for_new_and_taken_addresses,
    register_still_works_and_is_deprecated,
    members_add_invites_any_address_and_is_deprecated
);

const SUNSET: &str = "Tue, 01 Jun 2027 00:00:00 GMT";
/// 2026-11-29T00:00:00Z.
const DEPRECATED_AT: &str = "@1795910400";

fn assert_deprecated(r: &Resp, successor: &str) {
    assert_eq!(r.header("deprecation"), Some(DEPRECATED_AT), "{}", r.what);
    assert_eq!(r.header("sunset"), Some(SUNSET), "{}", r.what);
    assert_eq!(
        r.header("link"),
        Some(format!("</docs/#/{successor}>; rel=\"deprecation\"").as_str()),
        "{}",
        r.what
    );
}

/// The sorted names of a response's headers, without those that differ per request.
fn header_names(r: &Resp) -> Vec<String> {
    let mut names: Vec<String> = r
        .headers
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| !matches!(k.as_str(), "date" | "x-request-id"))
        .collect();
    names.sort();
    names.dedup();
    names
}

async fn signup(app: &TestApp, email: &str, password: &str, name: &str) -> Resp {
    app.post(&Urls::signup())
        .json(json!({ "email": email, "password": password, "display_name": name }))
        .expect(202)
        .await
}

async fn account_count(app: &TestApp, email: &str) -> u64 {
    use agentdesk::entity::user;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .count(&app.db().await)
        .await
        .unwrap()
}

async fn signup_answers_alike_for_new_and_taken_addresses(app: TestApp) {
    let owner = app.user("owner").await;
    let fresh = "newcomer@example.com";
    let new = signup(&app, fresh, "a long new password", "Newcomer").await;
    // The taken address, written differently (the canonical form is what counts).
    let taken = signup(
        &app,
        &owner.email.to_uppercase(),
        "the squatter's password",
        "Squatter",
    )
    .await;

    // The same status, headers and body, but for the address each was about.
    assert_eq!(new.status, taken.status);
    assert_eq!(header_names(&new), header_names(&taken));
    assert_eq!(
        new.body,
        json!({ "email": fresh, "status": "verification_sent" })
    );
    assert_eq!(
        taken.body,
        json!({ "email": owner.email, "status": "verification_sent" })
    );
    assert_eq!(
        new.text.replace(fresh, "<email>"),
        taken.text.replace(&owner.email, "<email>")
    );
    assert!(new.header("deprecation").is_none());

    // The newcomer got a verification link; the owner was told someone tried, nothing else.
    let kinds =
        |email: &str| -> Vec<String> { app.mails_to(email).into_iter().map(|m| m.kind).collect() };
    assert_eq!(kinds(fresh), ["email_verification"]);
    assert_eq!(
        kinds(&owner.email),
        ["email_verification", "signup_attempt"]
    );
    let attempt = app.mails_to(&owner.email).pop().unwrap();
    assert!(attempt.token().is_none(), "no link that proves anything");

    // No second account; the owner's password is untouched; the attempt's password opens nothing.
    assert_eq!(account_count(&app, &owner.email).await, 1);
    assert_eq!(account_count(&app, fresh).await, 1);
    app.post(&Urls::login())
        .json(json!({ "email": owner.email, "password": owner.password }))
        .expect(200)
        .await;
    app.post(&Urls::login())
        .json(json!({ "email": owner.email, "password": "the squatter's password" }))
        .expect(401)
        .await
        .assert_problem("invalid_credentials");
}

async fn register_still_works_and_is_deprecated(app: TestApp) {
    let email = "legacy@example.com";
    let r = app
        .post(&Urls::register())
        .json(json!({ "email": email, "password": "a legacy client's password", "display_name": "Legacy" }))
        .expect(201)
        .await;
    assert_eq!(r.body["email"], email);
    assert_eq!(r.body["email_verified"], false);
    assert_deprecated(&r, "Auth/auth.signup");
    app.post(&Urls::login())
        .json(json!({ "email": email, "password": "a legacy client's password" }))
        .expect(200)
        .await;
    // Errors of the deprecated operation carry the headers too.
    let r = app
        .post(&Urls::register())
        .json(
            json!({ "email": email, "password": "another long password", "display_name": "Again" }),
        )
        .expect(409)
        .await;
    r.assert_problem("email_taken");
    assert_deprecated(&r, "Auth/auth.signup");
    assert_eq!(account_count(&app, email).await, 1);
}

async fn members_add_invites_any_address_and_is_deprecated(app: TestApp) {
    let owner = app.user("owner").await;
    let known = app.user("known").await;
    let org = app.org(&owner, "Acme").await;
    let add = |email: String| {
        let app = &app;
        let token = owner.token.clone();
        let org = org.clone();
        async move {
            app.post(&Urls::members(&org))
                .token(&token)
                .json(json!({ "email": email, "role": "operator" }))
                .expect(202)
                .await
        }
    };
    let for_known = add(known.email.clone()).await;
    let for_unknown = add("nobody@example.com".into()).await;

    // One shape for both: an invitation, whether or not the address has an account.
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    for r in [&for_known, &for_unknown] {
        assert_deprecated(r, "Invitations/invitations.create");
        assert!(r.body["token"].as_str().unwrap().starts_with("inv_"));
        assert!(
            r.body["accept_url"]
                .as_str()
                .unwrap()
                .contains("#token=inv_")
        );
        assert_eq!(r.body["status"], "pending");
        assert_eq!(r.body["role"], "operator");
        let id = r.body["id"].as_str().unwrap();
        assert_eq!(
            r.header("location"),
            Some(format!("/v1/orgs/{org}/invitations/{id}").as_str())
        );
    }
    assert_eq!(keys(&for_known.body), keys(&for_unknown.body));
    assert_eq!(header_names(&for_known), header_names(&for_unknown));
    assert_eq!(for_known.body["email"], known.email.as_str());
    assert_eq!(for_unknown.body["email"], "nobody@example.com");

    // Nobody joined: the known user becomes a member only by accepting.
    let members = app
        .get(&Urls::members(&org))
        .token(&owner.token)
        .expect(200)
        .await;
    assert_eq!(members.body["items"].as_array().unwrap().len(), 1);
    let token = for_known.body["token"].as_str().unwrap();
    app.post(&format!("/v1/invitations/{token}/accept"))
        .token(&known.token)
        .expect(200)
        .await;
    let members = app
        .get(&Urls::members(&org))
        .token(&owner.token)
        .expect(200)
        .await;
    assert_eq!(members.body["items"].as_array().unwrap().len(), 2);
    // The operation that replaces it carries no deprecation headers.
    let r = app
        .post(&Urls::invitations(&org))
        .token(&owner.token)
        .json(json!({ "email": "someone@example.com", "role": "viewer" }))
        .expect(201)
        .await;
    assert!(r.header("deprecation").is_none());
}
