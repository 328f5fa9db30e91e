//! Session artifacts: stored through the domain (as the desktop executor does), then listed
//! and downloaded through the real server — pagination, bytes and caching headers, 304,
//! tenant isolation, the viewer role, a missing blob, org deletion — on SQLite and PostgreSQL
//! with the database blob store, and against an S3 bucket served by moto.

use std::time::Duration;

use agentdesk::{
    domain::artifacts::{self, ArtifactKind, NewArtifact},
    entity::{CommandId, OrgId, SessionId, artifact, blob},
    error::AppError,
};
use bytes::Bytes;
use object_store::{ObjectStoreExt, path::Path};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    common::{Backend, TestApp, Urls, User},
    db_tests,
};

db_tests!(
    artifacts_list_and_download,
    artifacts_stay_in_their_org,
    missing_blob_is_a_server_error,
    org_deletion_removes_artifacts_and_blobs
);

/// `Cache-Control` of artifact bytes.
const IMMUTABLE: &str = "private, max-age=31536000, immutable";

/// Bytes that look like a PNG (signature first), distinct per `n`, not valid UTF-8.
fn png(n: u8) -> Bytes {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend((0..=255u8).map(|i| i.wrapping_mul(n).wrapping_add(0xC3)));
    Bytes::from(b)
}

fn uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).unwrap()
}

/// An owner, their org, and a running session of an agent that may take screenshots.
async fn setup(app: &TestApp) -> (User, String, String) {
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Pixels Inc").await;
    let agent = app
        .agent(&owner, &org, "Shooter", &["desktop:screen.capture"])
        .await;
    let session = app.running_session(&owner, &org, &agent).await;
    (owner, org, session)
}

/// Stores a screenshot through the domain on the app's database and blob store.
async fn store(
    app: &TestApp,
    org: &str,
    session: &str,
    command: Option<&str>,
    data: Bytes,
) -> Result<artifact::Model, AppError> {
    let state = app.state();
    artifacts::store(
        &state.db,
        state.blobs.as_ref(),
        NewArtifact {
            org_id: OrgId(uuid(org)),
            session_id: SessionId(uuid(session)),
            command_id: command.map(|c| CommandId(uuid(c))),
            kind: ArtifactKind::Screenshot,
            media_type: "image/png".into(),
            width: Some(1024),
            height: Some(768),
            data,
        },
    )
    .await
}

async fn artifacts_list_and_download(app: TestApp) {
    let (owner, org, session) = setup(&app).await;
    let cmd = app
        .post(&Urls::commands(&org, &session))
        .token(&owner.token)
        .json(json!({"kind": "screenshot"}))
        .expect(202)
        .await;
    let cmd = cmd.body["id"].as_str().unwrap().to_owned();
    let data = [png(1), png(2), png(3)];
    let mut stored = Vec::new();
    for (i, d) in data.iter().enumerate() {
        let command = (i == 0).then_some(cmd.as_str());
        stored.push(
            store(&app, &org, &session, command, d.clone())
                .await
                .unwrap(),
        );
    }
    let a = &stored[0];
    assert_eq!(a.storage, artifact::Storage::Database);
    assert_eq!(a.sha256, format!("{:x}", Sha256::digest(&data[0])));

    // The list: oldest first, one per page with limit=1.
    let base = Urls::artifacts(&org, &session);
    let p1 = app
        .get(&format!("{base}?limit=1"))
        .token(&owner.token)
        .expect(200)
        .await;
    let items = p1.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0],
        json!({
            "id": a.id, "session_id": session, "command_id": cmd, "kind": "screenshot",
            "media_type": "image/png", "bytes": data[0].len(), "width": 1024, "height": 768,
            "sha256": a.sha256, "created_at": items[0]["created_at"],
        })
    );
    let cursor = p1.body["next_cursor"].as_str().expect("a next page");
    let p2 = app
        .get(&format!("{base}?limit=1&cursor={cursor}"))
        .token(&owner.token)
        .expect(200)
        .await;
    assert_eq!(p2.body["items"][0]["id"], stored[1].id.to_string());
    assert!(
        p2.body["items"][0].get("command_id").is_none(),
        "{}",
        p2.text
    );
    let all = app
        .walk_pages(&format!("{base}?limit=2"), &owner.token)
        .await;
    let ids: Vec<&str> = all.iter().map(|i| i["id"].as_str().unwrap()).collect();
    let want: Vec<String> = stored.iter().map(|a| a.id.to_string()).collect();
    assert_eq!(ids, want);
    let full: Value = app.as_user(&owner).get(&base, 200).await;
    assert!(full.get("next_cursor").is_none(), "{full}");
    app.get(&format!("{base}?cursor=garbage"))
        .token(&owner.token)
        .expect(400)
        .await
        .assert_problem("invalid_parameter");

    // The bytes, with their media type, length, strong ETag and private immutable caching.
    let url = Urls::artifact(&org, &session, &a.id.to_string());
    let r = app.get(&url).token(&owner.token).expect(200).await;
    assert_eq!(r.bytes, data[0]);
    assert_eq!(r.header("content-type"), Some("image/png"));
    let len = data[0].len().to_string();
    assert_eq!(r.header("content-length"), Some(len.as_str()));
    let etag = format!("\"{}\"", a.sha256);
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("cache-control"), Some(IMMUTABLE));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    // Everything else under /v1 stays no-store.
    let listed = app.get(&base).token(&owner.token).expect(200).await;
    assert_eq!(listed.header("cache-control"), Some("no-store"));

    // Revalidation: a matching tag (also weak, or in a list, or `*`) → 304 without a body.
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"nope\", {etag}"),
        "*".into(),
    ] {
        let r = app
            .get(&url)
            .token(&owner.token)
            .header("if-none-match", &inm)
            .expect(304)
            .await;
        assert!(r.bytes.is_empty(), "{inm}: {}", r.text);
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert_eq!(r.header("cache-control"), Some(IMMUTABLE));
    }
    let r = app
        .get(&url)
        .token(&owner.token)
        .header("if-none-match", &format!("\"{}\"", stored[1].sha256))
        .expect(200)
        .await;
    assert_eq!(r.bytes, data[0]);

    // A viewer (sessions:read) reads both; an API key with that role too.
    let viewer = app.user("viewer").await;
    app.add_member(&owner, &org, &viewer, "viewer").await;
    app.get(&base).token(&viewer.token).expect(200).await;
    let r = app.get(&url).token(&viewer.token).expect(200).await;
    assert_eq!(r.bytes, data[0]);
    let (_, key) = app.api_key(&owner, &org, "viewer").await;
    app.get(&url).header("x-api-key", &key).expect(200).await;

    // Unknown ids are 404 problems; so is an artifact asked for under another session.
    let unknown = Urls::artifact(&org, &session, &Uuid::now_v7().to_string());
    app.get(&unknown)
        .token(&owner.token)
        .expect(404)
        .await
        .assert_problem("not_found");
    let agent = app.agent(&owner, &org, "Other", &[]).await;
    let other_session = app.running_session(&owner, &org, &agent).await;
    app.get(&Urls::artifact(&org, &other_session, &a.id.to_string()))
        .token(&owner.token)
        .expect(404)
        .await
        .assert_problem("not_found");
    let empty: Value = app
        .as_user(&owner)
        .get(&Urls::artifacts(&org, &other_session), 200)
        .await;
    assert_eq!(empty["items"], json!([]));

    // The domain's own checks: a command of another session, a bad media type, no bytes.
    let e = store(&app, &org, &other_session, Some(&cmd), png(4))
        .await
        .unwrap_err();
    assert!(matches!(e, AppError::NotFound("command")), "{e:?}");
    let state = app.state();
    let bad = NewArtifact {
        org_id: OrgId(uuid(&org)),
        session_id: SessionId(uuid(&session)),
        command_id: None,
        kind: ArtifactKind::Screenshot,
        media_type: "image/png\r\nx-evil: 1".into(),
        width: Some(0),
        height: None,
        data: Bytes::new(),
    };
    let AppError::Validation(errs) = artifacts::store(&state.db, state.blobs.as_ref(), bad)
        .await
        .unwrap_err()
    else {
        panic!("validation expected")
    };
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["media_type", "width", "data"]);
}

async fn artifacts_stay_in_their_org(app: TestApp) {
    let (owner, org, session) = setup(&app).await;
    let a = store(&app, &org, &session, None, png(7)).await.unwrap();
    let url = Urls::artifact(&org, &session, &a.id.to_string());
    let stranger = app.user("stranger").await;
    let theirs = app.org(&stranger, "Elsewhere").await;
    // Not a member: 404 for the list and the bytes (no existence leak).
    for path in [Urls::artifacts(&org, &session), url.clone()] {
        app.get(&path)
            .token(&stranger.token)
            .expect(404)
            .await
            .assert_problem("not_found");
    }
    // Through their own org's path: still 404, for the session and the artifact.
    app.get(&Urls::artifacts(&theirs, &session))
        .token(&stranger.token)
        .expect(404)
        .await
        .assert_problem("not_found");
    app.get(&Urls::artifact(&theirs, &session, &a.id.to_string()))
        .token(&stranger.token)
        .expect(404)
        .await
        .assert_problem("not_found");
    // Nor can their org's id be used to store into it.
    let e = store(&app, &theirs, &session, None, png(8))
        .await
        .unwrap_err();
    assert!(matches!(e, AppError::NotFound("session")), "{e:?}");
    // Without credentials: 401.
    app.get(&url).expect(401).await;
    // The owner still reads it.
    app.get(&url).token(&owner.token).expect(200).await;
}

async fn missing_blob_is_a_server_error(app: TestApp) {
    let (owner, org, session) = setup(&app).await;
    let a = store(&app, &org, &session, None, png(9)).await.unwrap();
    let key = artifacts::key_of(&a);
    app.state().blobs.delete(&key).await.unwrap();
    let r = app
        .get(&Urls::artifact(&org, &session, &a.id.to_string()))
        .token(&owner.token)
        .expect(500)
        .await;
    r.assert_problem("internal_error");
    assert!(
        !r.text.contains(&key),
        "the key stays in the log: {}",
        r.text
    );
    // The metadata is still listed; the row is the record.
    let list: Value = app
        .as_user(&owner)
        .get(&Urls::artifacts(&org, &session), 200)
        .await;
    assert_eq!(list["items"][0]["id"], a.id.to_string());
}

/// Deletes `org` once its stopped sessions' jobs are done (409 until then).
async fn delete_org(app: &TestApp, owner: &User, org: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = app.delete(&Urls::org(org)).token(&owner.token).send().await;
        match r.status {
            204 => return,
            409 if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            _ => panic!("orgs.delete: {} {}", r.status, r.text),
        }
    }
}

async fn org_deletion_removes_artifacts_and_blobs(app: TestApp) {
    let (owner, org, session) = setup(&app).await;
    // Another org's artifact must survive.
    let (other_owner, other_org, other_session) = setup(&app).await;
    let kept = store(&app, &other_org, &other_session, None, png(10))
        .await
        .unwrap();
    for n in 0..3 {
        store(&app, &org, &session, None, png(n)).await.unwrap();
    }
    // An orphan (a blob whose row never committed) goes too.
    let orphan = artifacts::blob_key(uuid(&org), uuid(&session), Uuid::now_v7());
    app.state()
        .blobs
        .put(&orphan, Bytes::from_static(b"orphan"))
        .await
        .unwrap();
    app.post(&Urls::stop(&org, &session))
        .token(&owner.token)
        .expect(202)
        .await;
    app.wait_status(&owner, &org, &session, "stopped").await;
    delete_org(&app, &owner, &org).await;

    let db = &app.state().db;
    let rows = artifact::Entity::find()
        .filter(artifact::Column::OrgId.eq(uuid(&org)))
        .count(db)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    let blobs = blob::Entity::find()
        .filter(blob::Column::Key.starts_with(format!("{org}/")))
        .count(db)
        .await
        .unwrap();
    assert_eq!(blobs, 0);
    let r = app
        .get(&Urls::artifact(
            &other_org,
            &other_session,
            &kept.id.to_string(),
        ))
        .token(&other_owner.token)
        .expect(200)
        .await;
    assert_eq!(r.bytes, png(10));
}

// ---- S3 (moto) ----

/// A moto S3 server on 127.0.0.1, killed when dropped.
struct Moto {
    endpoint: String,
    _child: tokio::process::Child,
}

/// The `moto_server` to run: `AGENTDESK_TEST_MOTO`, else `moto_server` on `PATH`.
fn moto_binary() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("AGENTDESK_TEST_MOTO") {
        return Some(p.into());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("moto_server"))
            .find(|p| p.is_file())
    })
}

impl Moto {
    /// Starts moto on a free port and waits until it answers; `None` (with a note) when it is
    /// not installed, unless `AGENTDESK_TEST_S3=require`, which makes that a failure.
    async fn start() -> Option<Self> {
        let required = std::env::var("AGENTDESK_TEST_S3").is_ok_and(|v| v == "require");
        let bin = match moto_binary() {
            Some(b) if b.is_file() => b,
            other => {
                let why = format!(
                    "moto_server not found ({}); install it with `pip install 'moto[server]'` \
                     and set AGENTDESK_TEST_MOTO to its path",
                    other.map_or("not on PATH".into(), |p| p.display().to_string())
                );
                assert!(!required, "AGENTDESK_TEST_S3=require: {why}");
                eprintln!("skipped: {why}");
                return None;
            }
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while http.get(&endpoint).send().await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "moto did not answer on {endpoint} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(Self {
            endpoint,
            _child: child,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.endpoint)
    }

    /// An S3 client of `bucket` on this server, apart from the app's.
    fn client(&self, bucket: &str) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .build()
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_blob_store_round_trip() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let http = reqwest::Client::new();
    let bucket = "agentdesk-artifacts";
    let r = http.put(moto.url(bucket)).send().await.unwrap();
    assert!(
        r.status().is_success(),
        "creating the bucket: {}",
        r.status()
    );

    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.blob_store = agentdesk::config::BlobStoreKind::S3;
        c.blob_s3_bucket = bucket.into();
        c.blob_s3_endpoint = moto.endpoint.clone();
        c.blob_s3_access_key_id = "testing".into();
        c.blob_s3_secret_access_key = agentdesk::config::Secret::new("testing");
        c.blob_s3_prefix = "screens/".into();
    })
    .await
    .unwrap();
    assert_eq!(app.state().blobs.name(), "s3");
    let (owner, org, session) = setup(&app).await;
    let data = png(42);
    let a = store(&app, &org, &session, None, data.clone())
        .await
        .unwrap();
    assert_eq!(a.storage, artifact::Storage::S3);

    // Served through the API with the same headers as from the database.
    let url = Urls::artifact(&org, &session, &a.id.to_string());
    let r = app.get(&url).token(&owner.token).expect(200).await;
    assert_eq!(r.bytes, data);
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(r.header("cache-control"), Some(IMMUTABLE));

    // The object is in the bucket under the prefix (read back with a signed request of
    // our own: moto refuses anonymous reads of objects), and nothing went to the blobs table.
    let object = Path::from(format!("screens/{}", artifacts::key_of(&a)));
    let o = moto.client(bucket).get(&object).await.unwrap();
    assert_eq!(o.bytes().await.unwrap(), data);
    let rows = blob::Entity::find().count(&app.state().db).await.unwrap();
    assert_eq!(rows, 0);

    // Org deletion deletes the object after the rows.
    app.post(&Urls::stop(&org, &session))
        .token(&owner.token)
        .expect(202)
        .await;
    app.wait_status(&owner, &org, &session, "stopped").await;
    delete_org(&app, &owner, &org).await;
    let gone = moto.client(bucket).get(&object).await;
    assert!(
        matches!(gone, Err(object_store::Error::NotFound { .. })),
        "{gone:?}"
    );
    app.stop().await;
}
