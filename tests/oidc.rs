//! Single sign-on against a real OpenID provider: the npm package `oidc-provider`
//! (`tests/oidc-provider/provider.mjs`) on 127.0.0.1, driven like a browser: each simulated
//! browser has its own cookie jar (the provider's session, our browser-binding cookie),
//! follows the redirects and submits the provider's login and consent forms. The takeover
//! guard's tests are in `oidc/takeover.rs`.

mod takeover;

use std::{path::PathBuf, process::Stdio, time::Duration};

use agentdesk::config::OidcProviderConfig;
use reqwest::{StatusCode, redirect::Policy};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, ChildStdin, Command},
    sync::OnceCell,
};

use crate::{
    backend_tests,
    common::{Backend, TestApp, fresh_database, test_config},
};

backend_tests!(oidc_single_sign_on, oidc_login_csrf);

const FRONTEND: &str = "http://127.0.0.1:9/app/sso";
const CLIENT_ID: &str = "agentdesk";
const CLIENT_SECRET: &str = "test-client-secret_0123456789";

static NPM_CI: OnceCell<()> = OnceCell::const_new();

fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc-provider")
}

/// Installs the provider's npm packages once per test run (from the committed lockfile).
async fn npm_ci() {
    NPM_CI
        .get_or_init(|| async {
            let dir = provider_dir();
            if dir.join("node_modules/oidc-provider").exists() {
                return;
            }
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .status()
                .await
                .expect("npm is installed (the OIDC tests run a real provider on Node.js)");
            assert!(status.success(), "npm ci in tests/oidc-provider failed");
        })
        .await;
}

/// A running `oidc-provider`; it exits when this is dropped (stdin closes).
struct Provider {
    issuer: String,
    _child: Child,
    _stdin: ChildStdin,
}

async fn start_provider(clients: Value) -> Provider {
    npm_ci().await;
    let mut child = Command::new("node")
        .arg("provider.mjs")
        .current_dir(provider_dir())
        .env("OIDC_PORT", "0")
        .env("OIDC_CLIENTS", clients.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let issuer = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("OIDC_PROVIDER_READY ") {
                return url.trim().to_owned();
            }
        }
        panic!("the OIDC provider exited before it was ready");
    })
    .await
    .expect("the OIDC provider starts within 30 s");
    Provider {
        issuer,
        _child: child,
        _stdin: stdin,
    }
}

fn query(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A new browser: its own cookie jar, following no redirect by itself. Use one per login (a
/// jar holding the provider's session logs the next login in as the previous user).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// Plays `browser`: from the provider's authorization URL through its login and consent
/// forms, until the provider redirects to `stop_at` (our callback); returns that URL.
async fn browser_walk(
    browser: &reqwest::Client,
    authorize_url: &str,
    email: &str,
    stop_at: &str,
) -> String {
    let mut url = url::Url::parse(authorize_url).unwrap();
    let mut form: Option<Vec<(&str, String)>> = None;
    for _ in 0..20 {
        let r = match form.take() {
            Some(f) => browser.post(url.clone()).form(&f).send().await.unwrap(),
            None => browser.get(url.clone()).send().await.unwrap(),
        };
        if r.status().is_redirection() {
            let loc = r.headers()["location"].to_str().unwrap().to_owned();
            url = url.join(&loc).unwrap();
            if url.as_str().starts_with(stop_at) {
                return url.to_string();
            }
            continue;
        }
        let status = r.status();
        let html = r.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "provider page: {html}");
        let action = html
            .split("action=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("a form on the provider's page")
            .replace("&amp;", "&");
        let prompt = html
            .split("name=\"prompt\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("the form says which prompt it answers")
            .to_owned();
        url = url.join(&action).unwrap();
        form = Some(if prompt == "login" {
            vec![
                ("prompt", prompt),
                ("login", email.to_owned()),
                ("password", "any".to_owned()),
            ]
        } else {
            vec![("prompt", prompt)]
        });
    }
    panic!("the provider's login did not finish in 20 steps");
}

/// A server whose providers `test` (any email domain) and `corp` (`corp.example` only) are
/// one running `oidc-provider`.
struct World {
    /// The provider (it stops when this is dropped).
    provider: Provider,
    app: TestApp,
    /// The server's base URL (its `public_url`).
    base: String,
}

impl World {
    /// `None` when `backend` is not configured.
    async fn start(backend: Backend) -> Option<World> {
        let dir = tempfile::tempdir().unwrap();
        let database_url = fresh_database(backend, dir.path()).await?;
        // Our address must be known before the provider registers our callback URLs.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let provider = start_provider(json!([{
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [
                format!("{base}/v1/auth/oidc/test/callback"),
                format!("{base}/v1/auth/oidc/corp/callback"),
            ],
        }]))
        .await;
        let mut config = test_config(dir.path(), database_url.clone());
        config.public_url = base.clone();
        let idp = |domains: Vec<String>| OidcProviderConfig {
            issuer_url: provider.issuer.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            allowed_email_domains: domains,
            redirect_uris: vec![FRONTEND.into()],
        };
        config.oidc_providers.insert("test".into(), idp(vec![]));
        config
            .oidc_providers
            .insert("corp".into(), idp(vec!["corp.example".into()]));
        config.validate().unwrap();
        let app = TestApp::start_on(backend, dir, database_url, config, listener).await;
        Some(World {
            provider,
            app,
            base,
        })
    }

    fn sso(&self) -> Sso<'_> {
        Sso {
            app: &self.app,
            plain: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
        }
    }
}

struct Sso<'a> {
    app: &'a TestApp,
    /// Not a browser: no cookies.
    plain: reqwest::Client,
}

impl Sso<'_> {
    fn callback_prefix(&self, provider: &str) -> String {
        self.app.url(&format!("/v1/auth/oidc/{provider}/callback"))
    }

    /// `auth.oidc_authorize` in `browser`: the provider URL it redirects to. Checks the
    /// browser-binding cookie it sets (the jar keeps it).
    async fn authorize(&self, browser: &reqwest::Client, provider: &str) -> String {
        let r = browser
            .get(self.app.url(&format!(
                "/v1/auth/oidc/{provider}/authorize?redirect_uri={}",
                urlencode(FRONTEND)
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
        assert_eq!(r.headers()["cache-control"], "no-store");
        let cookie = r.headers()["set-cookie"].to_str().unwrap();
        let secret = cookie
            .strip_prefix("agentdesk_oidc=ob_")
            .and_then(|c| c.split(';').next())
            .unwrap_or_else(|| panic!("the browser-binding cookie: {cookie}"));
        assert_eq!(secret.len(), 43, "256 bits: {cookie}");
        let attributes: Vec<&str> = cookie.split("; ").skip(1).collect();
        assert_eq!(
            attributes,
            [
                "Path=/v1/auth/oidc/",
                "Max-Age=600",
                "HttpOnly",
                "SameSite=Lax"
            ],
            "no `Secure` on an http public_url: {cookie}"
        );
        r.headers()["location"].to_str().unwrap().to_owned()
    }

    /// Our callback answering `browser`: the frontend URL it redirects to (or a problem).
    /// Every answer clears the browser-binding cookie.
    async fn callback(&self, browser: &reqwest::Client, callback_url: &str) -> reqwest::Response {
        let r = browser.get(callback_url).send().await.unwrap();
        if r.status() != 404 {
            assert_eq!(
                r.headers()["set-cookie"],
                "agentdesk_oidc=; Path=/v1/auth/oidc/; Max-Age=0; HttpOnly; SameSite=Lax"
            );
        }
        r
    }

    /// A whole login as `email` at `provider` in a new browser; returns the frontend URL it
    /// ends on.
    async fn login(&self, provider: &str, email: &str) -> String {
        let b = browser();
        let auth = self.authorize(&b, provider).await;
        let cb = browser_walk(&b, &auth, email, &self.callback_prefix(provider)).await;
        let r = self.callback(&b, &cb).await;
        assert_eq!(r.status(), 302);
        r.headers()["location"].to_str().unwrap().to_owned()
    }

    /// `auth.oidc_exchange`.
    async fn exchange(&self, code: &str) -> (u16, Value) {
        let r = self
            .plain
            .post(self.app.url("/v1/auth/oidc/exchange"))
            .json(&json!({ "code": code }))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Logs in and exchanges the code; returns `/v1/me` and the token pair.
    async fn login_user(&self, email: &str) -> (Value, Value) {
        let landed = self.login("test", email).await;
        assert!(landed.starts_with(FRONTEND), "{landed}");
        assert_eq!(query(&landed, "error"), None, "{landed}");
        let code = query(&landed, "code").expect("a one-time code");
        assert!(code.starts_with("lc_"));
        // Only the one-time code travels in the URL, never a token.
        let params: Vec<String> = url::Url::parse(&landed)
            .unwrap()
            .query_pairs()
            .map(|(k, _)| k.into_owned())
            .collect();
        assert_eq!(params, ["code"], "{landed}");
        assert_eq!(code.len(), 3 + 43, "lc_ + 256 bits: {code}");
        let (status, tokens) = self.exchange(&code).await;
        assert_eq!(status, 200, "{tokens}");
        let me = self
            .app
            .get("/v1/me")
            .token(tokens["access_token"].as_str().unwrap())
            .expect(200)
            .await;
        (me.body, tokens)
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn oidc_single_sign_on(backend: Backend) {
    let Some(world) = World::start(backend).await else {
        return;
    };
    let (app, provider, base) = (&world.app, &world.provider, &world.base);
    let sso = world.sso();

    // The authorize redirect: code flow, PKCE S256, state, nonce, our exact callback.
    let auth = sso.authorize(&browser(), "test").await;
    assert!(auth.starts_with(&provider.issuer), "{auth}");
    assert_eq!(query(&auth, "response_type").as_deref(), Some("code"));
    assert_eq!(
        query(&auth, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(query(&auth, "code_challenge").is_some_and(|c| c.len() >= 43));
    assert!(query(&auth, "state").is_some() && query(&auth, "nonce").is_some());
    assert_eq!(
        query(&auth, "redirect_uri").unwrap(),
        format!("{base}/v1/auth/oidc/test/callback")
    );

    // A new identity with a verified, unknown email: a new user.
    let (ada, tokens) = sso.login_user("ada@example.com").await;
    assert_eq!(ada["email"], "ada@example.com");
    assert_eq!(ada["display_name"], "ada");
    // The refresh token works like any login's.
    app.post("/v1/auth/refresh")
        .json(json!({ "refresh_token": tokens["refresh_token"] }))
        .expect(200)
        .await;
    let export = app
        .get("/v1/me/export")
        .token(tokens["access_token"].as_str().unwrap())
        .expect(200)
        .await;
    assert_eq!(export.body["identities"][0]["provider"], "test");
    assert_eq!(export.body["has_password"], false);
    let actions: Vec<&str> = export.body["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["user.registered", "auth.login"]);
    // The same identity again: the same user.
    let (again, _) = sso.login_user("ada@example.com").await;
    assert_eq!(again["id"], ada["id"]);

    // A verified email of an existing, verified password account links to it as is: the
    // password and the earlier tokens keep working (no takeover guard).
    let bob = app.user("bob").await;
    let (linked, _) = sso.login_user(&bob.email).await;
    assert_eq!(linked["id"], bob.id.as_str());
    app.post("/v1/auth/login")
        .json(json!({ "email": bob.email, "password": bob.password }))
        .expect(200)
        .await;
    app.get("/v1/me").token(&bob.token).expect(200).await;
    app.post("/v1/auth/refresh")
        .json(json!({ "refresh_token": bob.refresh }))
        .expect(200)
        .await;

    // An unverified email that collides with an account is refused, and nothing is linked.
    let carol_email = "unverified.carol@example.com";
    app.post("/v1/auth/register")
        .json(json!({ "email": carol_email, "password": "carol's long password", "display_name": "Carol" }))
        .expect(201)
        .await;
    let landed = sso.login("test", carol_email).await;
    assert_eq!(
        query(&landed, "error").as_deref(),
        Some("email_not_verified"),
        "{landed}"
    );
    assert_eq!(query(&landed, "code"), None);
    // An unverified email that collides with nothing makes a new account.
    let (dan, _) = sso.login_user("unverified.dan@example.com").await;
    assert_eq!(dan["email"], "unverified.dan@example.com");

    // Wrong state; a replayed callback (its state is spent).
    let b = browser();
    let r = sso
        .callback(
            &b,
            &format!("{}?code=abc&state=st_forged", sso.callback_prefix("test")),
        )
        .await;
    assert_eq!(r.status(), 400);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "invalid_state");
    let auth = sso.authorize(&b, "test").await;
    let cb = browser_walk(&b, &auth, "erin@example.com", &sso.callback_prefix("test")).await;
    let first = sso.callback(&b, &cb).await;
    assert_eq!(first.status(), 302);
    let first_code = query(first.headers()["location"].to_str().unwrap(), "code").unwrap();
    let replay = sso.callback(&b, &cb).await;
    assert_eq!(replay.status(), 400);
    // A replayed authorization code under a fresh state: the provider refuses it.
    let b = browser();
    let auth = sso.authorize(&b, "test").await;
    let cb2 = browser_walk(&b, &auth, "erin@example.com", &sso.callback_prefix("test")).await;
    let stale = cb2.replace(
        &format!("code={}", urlencode(&query(&cb2, "code").unwrap())),
        &format!("code={}", urlencode(&query(&cb, "code").unwrap())),
    );
    assert_ne!(stale, cb2);
    let r = sso.callback(&b, &stale).await;
    let landed = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        query(&landed, "error").as_deref(),
        Some("code_exchange_failed"),
        "{landed}"
    );
    // A replayed exchange code.
    assert_eq!(sso.exchange(&first_code).await.0, 200);
    let (status, problem) = sso.exchange(&first_code).await;
    assert_eq!(status, 400);
    assert_eq!(problem["code"], "invalid_grant");

    // A nonce swapped on the way to the provider: the ID token carries the wrong one.
    let b = browser();
    let auth = sso.authorize(&b, "test").await;
    let nonce = query(&auth, "nonce").unwrap();
    let forged = auth.replace(&format!("nonce={}", urlencode(&nonce)), "nonce=n_forged");
    assert_ne!(forged, auth);
    let cb = browser_walk(
        &b,
        &forged,
        "frank@example.com",
        &sso.callback_prefix("test"),
    )
    .await;
    let landed = sso.callback(&b, &cb).await.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        query(&landed, "error").as_deref(),
        Some("invalid_nonce"),
        "{landed}"
    );

    // The provider reporting an error (the user cancelled).
    let b = browser();
    let auth = sso.authorize(&b, "test").await;
    let state = query(&auth, "state").unwrap();
    let r = sso
        .callback(
            &b,
            &format!(
                "{}?error=access_denied&state={}",
                sso.callback_prefix("test"),
                urlencode(&state)
            ),
        )
        .await;
    let landed = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(query(&landed, "error").as_deref(), Some("access_denied"));

    // A provider limited to some email domains.
    let landed = sso.login("corp", "gina@example.com").await;
    assert_eq!(
        query(&landed, "error").as_deref(),
        Some("email_domain_not_allowed"),
        "{landed}"
    );

    // Unknown provider; a redirect_uri that is not configured; a state for another provider.
    let r = sso
        .plain
        .get(app.url(&format!(
            "/v1/auth/oidc/nope/authorize?redirect_uri={}",
            urlencode(FRONTEND)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = sso
        .plain
        .get(app.url("/v1/auth/oidc/test/authorize?redirect_uri=https%3A%2F%2Fevil.example%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["errors"][0]["field"], "redirect_uri");
    let b = browser();
    let auth = sso.authorize(&b, "corp").await;
    let r = sso
        .callback(
            &b,
            &format!(
                "{}?code=x&state={}",
                sso.callback_prefix("test"),
                urlencode(&query(&auth, "state").unwrap())
            ),
        )
        .await;
    assert_eq!(r.status(), 400);

    // Every failure is audited as a failed login (account events of no org: read the table).
    let db = app.db().await;
    use agentdesk::entity::audit_event;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let failures = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("auth.login"))
        .filter(audit_event::Column::Outcome.eq("failure"))
        .all(&db)
        .await
        .unwrap();
    let reasons: Vec<String> = failures
        .iter()
        .filter_map(|e| e.details["reason"].as_str().map(str::to_owned))
        .collect();
    for reason in [
        "email_not_verified",
        "code_exchange_failed",
        "invalid_nonce",
        "access_denied",
        "email_domain_not_allowed",
    ] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "{reason} not audited: {reasons:?}"
        );
    }
}

/// Login CSRF: an authorization response only finishes a login in the browser that started it.
async fn oidc_login_csrf(backend: Backend) {
    let Some(world) = World::start(backend).await else {
        return;
    };
    let (app, sso) = (&world.app, world.sso());
    let prefix = sso.callback_prefix("test");

    // The attacker starts a login in their browser and stops at the provider's answer...
    let attacker = browser();
    let auth = sso.authorize(&attacker, "test").await;
    let planted = browser_walk(&attacker, &auth, "mallory@example.com", &prefix).await;
    // ...which the victim's browser is made to open: it has no binding cookie.
    let victim = browser();
    let r = sso.callback(&victim, &planted).await;
    assert_eq!(r.status(), 302);
    let landed = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(landed.starts_with(FRONTEND), "{landed}");
    assert_eq!(query(&landed, "error").as_deref(), Some("invalid_state"));
    assert_eq!(query(&landed, "code"), None, "{landed}");
    // The state is spent: not even the attacker's own browser can use it now.
    let r = sso.callback(&attacker, &planted).await;
    assert_eq!(r.status(), 400);

    // A victim whose browser holds the cookie of its own login: a different secret.
    let attacker = browser();
    let auth = sso.authorize(&attacker, "test").await;
    let planted = browser_walk(&attacker, &auth, "mallory@example.com", &prefix).await;
    let victim = browser();
    let own = sso.authorize(&victim, "test").await;
    assert_ne!(query(&own, "state"), query(&planted, "state"));
    let r = sso.callback(&victim, &planted).await;
    let landed = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(query(&landed, "error").as_deref(), Some("invalid_state"));

    // Nobody was logged in: the attacker's identity never reached the accounts.
    let db = app.db().await;
    use agentdesk::entity::{audit_event, user};
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let mallory = user::Entity::find()
        .filter(user::Column::Email.eq("mallory@example.com"))
        .count(&db)
        .await
        .unwrap();
    assert_eq!(mallory, 0);
    let refused = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("auth.login"))
        .filter(audit_event::Column::Outcome.eq("failure"))
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.details["reason"] == "invalid_state")
        .count();
    assert_eq!(refused, 2, "each refused callback is audited");

    // The login started in one browser and finished in it works (the cookie is cleared after).
    let (me, _) = sso.login_user("mallory@example.com").await;
    assert_eq!(me["email"], "mallory@example.com");
}
