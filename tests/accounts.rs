//! Accounts: registration, login, refresh rotation and reuse detection, logout, /v1/me, the
//! access-token (JWT) rejection matrix.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::{
    common::{TEST_KEY_BYTES, TestApp},
    db_tests,
};

db_tests!(
    register_login_and_me,
    refresh_rotation_and_reuse,
    concurrent_refresh_is_reuse,
    password_change_revokes_sessions,
    jwt_rejections
);

async fn register_login_and_me(app: TestApp) {
    let r = app
        .post("/v1/auth/register")
        .json(json!({ "email": "  Ada@Example.COM ", "password": "correct horse battery", "display_name": " Ada " }))
        .expect(201)
        .await;
    assert_eq!(r.header("location"), Some("/v1/me"));
    assert_eq!(r.body["email"], "ada@example.com");
    assert_eq!(r.body["display_name"], "Ada");
    assert!(r.body.get("password_hash").is_none());

    // Email uniqueness is case-insensitive.
    app.post("/v1/auth/register")
        .json(json!({ "email": "ADA@example.com", "password": "another good password", "display_name": "Imposter" }))
        .expect(409)
        .await
        .assert_problem("email_taken");

    // Every invalid field is named.
    let r = app
        .post("/v1/auth/register")
        .json(json!({ "email": "not-an-email", "password": "short", "display_name": "" }))
        .expect(422)
        .await;
    r.assert_problem("validation_failed");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["display_name", "email", "password"]);
    // Password equal to the email.
    let r = app
        .post("/v1/auth/register")
        .json(json!({ "email": "bob@example.com", "password": "bob@example.com", "display_name": "Bob" }))
        .expect(422)
        .await;
    assert_eq!(r.error_fields(), ["password"]);

    // Login: token pair.
    let r = app
        .post("/v1/auth/login")
        .json(json!({ "email": "ada@EXAMPLE.com", "password": "correct horse battery" }))
        .expect(200)
        .await;
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 900);
    assert_eq!(r.body["refresh_expires_in"], 30 * 24 * 3600);
    let token = r.body["access_token"].as_str().unwrap().to_owned();
    assert!(r.body["refresh_token"].as_str().unwrap().starts_with("rt_"));

    // Wrong password and unknown email answer the same.
    let wrong = app
        .post("/v1/auth/login")
        .json(json!({ "email": "ada@example.com", "password": "wrong horse battery" }))
        .expect(401)
        .await;
    let unknown = app
        .post("/v1/auth/login")
        .json(json!({ "email": "nobody@example.com", "password": "wrong horse battery" }))
        .expect(401)
        .await;
    wrong.assert_problem("invalid_credentials");
    unknown.assert_problem("invalid_credentials");
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);

    // /v1/me
    let me = app.get("/v1/me").token(&token).expect(200).await;
    assert_eq!(me.body["email"], "ada@example.com");
    let me = app
        .patch("/v1/me")
        .token(&token)
        .json(json!({ "display_name": "Ada L." }))
        .expect(200)
        .await;
    assert_eq!(me.body["display_name"], "Ada L.");
    app.patch("/v1/me")
        .token(&token)
        .json(json!({ "display_name": "   " }))
        .expect(422)
        .await;
}

async fn refresh_rotation_and_reuse(app: TestApp) {
    let u = app.user("rita").await;
    // Rita's org shows her account events from now on.
    let org = app.org(&u, "Rita's").await;
    let r1 = u.refresh.clone();
    let r2 = app
        .post("/v1/auth/refresh")
        .json(json!({ "refresh_token": r1 }))
        .expect(200)
        .await;
    let r2 = r2.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    let r3 = app
        .post("/v1/auth/refresh")
        .json(json!({ "refresh_token": r2 }))
        .expect(200)
        .await;
    let r3 = r3.body["refresh_token"].as_str().unwrap().to_owned();
    // A second login is a separate family.
    let other = app
        .post("/v1/auth/login")
        .json(json!({ "email": u.email, "password": u.password }))
        .expect(200)
        .await;
    let other = other.body["refresh_token"].as_str().unwrap().to_owned();

    // Reusing r1 (spent) revokes the whole family: r3, the live one, dies too.
    app.post("/v1/auth/refresh")
        .json(json!({ "refresh_token": r1 }))
        .expect(401)
        .await
        .assert_problem("invalid_refresh_token");
    app.post("/v1/auth/refresh")
        .json(json!({ "refresh_token": r3 }))
        .expect(401)
        .await;
    // The other login's family is untouched.
    let other2 = app
        .post("/v1/auth/refresh")
        .json(json!({ "refresh_token": other }))
        .expect(200)
        .await;
    let fresh = other2.body["access_token"].as_str().unwrap().to_owned();
    let other2 = other2.body["refresh_token"].as_str().unwrap().to_owned();
    // Reuse detection also ends the access tokens issued before it, at once.
    app.get("/v1/me")
        .token(&u.token)
        .expect(401)
        .await
        .assert_problem("invalid_token");

    // The reuse is in the account's own export, with its outcome; the org sees only what its
    // member did themselves, not what someone did against the account.
    let export = app.get("/v1/me/export").token(&fresh).expect(200).await;
    let reused: Vec<&Value> = export.body["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.refresh_token_reused")
        .collect();
    assert_eq!(reused.len(), 1);
    assert_eq!(reused[0]["outcome"], "failure");
    let audit = app
        .get(&format!(
            "/v1/orgs/{org}/audit-events?action=auth.refresh_token_reused"
        ))
        .token(&fresh)
        .expect(200)
        .await;
    assert_eq!(audit.body["items"], json!([]));

    // Logout revokes; logout is idempotent and reveals nothing about unknown tokens.
    app.post("/v1/auth/logout")
        .json(json!({ "refresh_token": other2 }))
        .expect(204)
        .await;
    app.post("/v1/auth/refresh")
        .json(json!({ "refresh_token": other2 }))
        .expect(401)
        .await;
    app.post("/v1/auth/logout")
        .json(json!({ "refresh_token": "rt_unknown" }))
        .expect(204)
        .await;
    app.post("/v1/auth/refresh")
        .json(json!({ "refresh_token": "garbage" }))
        .expect(401)
        .await;
}

/// Two clients presenting the same refresh token at once: one rotation wins, the other counts
/// as reuse, and the reuse revokes the token the winner just received.
async fn concurrent_refresh_is_reuse(app: TestApp) {
    let u = app.user("twin").await;
    let body = json!({ "refresh_token": u.refresh });
    let (a, b) = tokio::join!(
        app.post("/v1/auth/refresh").json(body.clone()).send(),
        app.post("/v1/auth/refresh").json(body.clone()).send()
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 401], "{} / {}", a.text, b.text);
    let winner = if a.status == 200 { a } else { b };
    let new_token = winner.body["refresh_token"].as_str().unwrap();
    app.post("/v1/auth/refresh")
        .json(json!({ "refresh_token": new_token }))
        .expect(401)
        .await
        .assert_problem("invalid_refresh_token");
}

async fn password_change_revokes_sessions(app: TestApp) {
    let u = app.user("pat").await;
    let r = app
        .patch("/v1/me")
        .token(&u.token)
        .json(json!({ "new_password": "a brand new password" }))
        .expect(422)
        .await;
    assert_eq!(r.error_fields(), ["current_password"]);
    let r = app
        .patch("/v1/me")
        .token(&u.token)
        .json(
            json!({ "new_password": "a brand new password", "current_password": "not it at all" }),
        )
        .expect(422)
        .await;
    assert_eq!(r.error_fields(), ["current_password"]);
    let r = app
        .patch("/v1/me")
        .token(&u.token)
        .json(json!({ "new_password": "tiny", "current_password": u.password }))
        .expect(422)
        .await;
    assert_eq!(r.error_fields(), ["new_password"]);
    app.patch("/v1/me")
        .token(&u.token)
        .json(json!({ "new_password": "a brand new password", "current_password": u.password }))
        .expect(200)
        .await;
    // Every refresh token is revoked; the old password no longer works; the new one does.
    app.post("/v1/auth/refresh")
        .json(json!({ "refresh_token": u.refresh }))
        .expect(401)
        .await;
    app.post("/v1/auth/login")
        .json(json!({ "email": u.email, "password": u.password }))
        .expect(401)
        .await;
    app.post("/v1/auth/login")
        .json(json!({ "email": u.email, "password": "a brand new password" }))
        .expect(200)
        .await;
}

/// The kid the server derives from the test key.
fn kid() -> String {
    agentdesk::auth::tokens::hex(&<sha2::Sha256 as sha2::Digest>::digest(TEST_KEY_BYTES))[..16]
        .to_owned()
}

fn forge(claims: serde_json::Value, alter: impl FnOnce(&mut Header)) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid());
    alter(&mut header);
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(TEST_KEY_BYTES)).unwrap()
}

async fn jwt_rejections(app: TestApp) {
    let u = app.user("jay").await;
    let now = chrono::Utc::now().timestamp();
    let good = json!({ "iss": "agentdesk", "aud": "agentdesk-api", "sub": u.id, "exp": now + 600, "iat": now, "jti": "x" });
    // The forger reproduces a valid token: the matrix below differs in one thing each.
    app.get("/v1/me")
        .token(&forge(good.clone(), |_| {}))
        .expect(200)
        .await;

    let with = |k: &str, v: serde_json::Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let b64 =
        |s: &str| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s);
    let alg_none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"at+jwt"}"#),
        b64(&good.to_string())
    );
    let other_key = {
        let mut h = Header::new(Algorithm::HS256);
        h.typ = Some("at+jwt".into());
        h.kid = Some(kid());
        jsonwebtoken::encode(
            &h,
            &good,
            &EncodingKey::from_secret(b"another-key-another-key-another-key!"),
        )
        .unwrap()
    };
    let cases: Vec<(&str, String)> = vec![
        ("alg none", alg_none),
        ("wrong signature", other_key),
        ("wrong issuer", forge(with("iss", json!("evil")), |_| {})),
        (
            "wrong audience",
            forge(with("aud", json!("other-api")), |_| {}),
        ),
        ("expired", forge(with("exp", json!(now - 3600)), |_| {})),
        (
            "wrong typ",
            forge(good.clone(), |h| h.typ = Some("JWT".into())),
        ),
        (
            "unknown kid",
            forge(good.clone(), |h| h.kid = Some("0000000000000000".into())),
        ),
        ("no kid", forge(good.clone(), |h| h.kid = None)),
        ("HS512", forge(good.clone(), |h| h.alg = Algorithm::HS512)),
        ("garbage", "not.a.jwt".into()),
    ];
    for (what, token) in cases {
        let r = app.get("/v1/me").token(&token).send().await;
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        r.assert_problem("invalid_token");
        let challenge = r.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
    }
    // No token at all: 401 with a bare Bearer challenge.
    let r = app.get("/v1/me").expect(401).await;
    assert!(
        r.header("www-authenticate")
            .unwrap_or_default()
            .starts_with("Bearer")
    );
}
