//! The desktop relay on a real TigerVNC desktop, through the API and a real WebSocket
//! client: the RFB handshake through the relay (security None, ServerInit with the agent's
//! geometry), view-only enforced by the desktop itself (pointer events from a `view` socket do
//! not move the pointer; from a `control` socket they do — observed with `xdotool` through a
//! `shell` command), and every refusal before the upgrade: a used, expired, foreign-session or
//! other-org ticket, a wrong `Origin`, the viewer cap, a member removed between minting and
//! connecting, a user who logged out everywhere. Open sockets close when the member is removed
//! or logs out everywhere (re-check) and when the session stops. The audit log records tickets
//! and viewers with their bytes.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

use crate::{
    backend_tests,
    common::{Backend, TestApp, User},
    desktop::Desk,
};

backend_tests!(people_watch_and_take_over_through_the_relay);

/// Desktop size (pixels).
const W: u16 = 800;
const H: u16 = 600;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An RFB client over the relay's WebSocket.
struct Viewer {
    ws: Ws,
    buf: Vec<u8>,
}

impl Viewer {
    async fn send(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::Binary(bytes.to_vec().into()))
            .await
            .unwrap();
    }

    /// The next `n` RFB bytes.
    async fn read(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("the relay sends within 10 s")
                .expect("the socket stays open")
                .unwrap();
            match msg {
                Message::Binary(b) => self.buf.extend_from_slice(&b),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("expected RFB bytes, got {other:?}"),
            }
        }
        let rest = self.buf.split_off(n);
        std::mem::replace(&mut self.buf, rest)
    }

    /// The RFB handshake as noVNC does it, asking for exclusive access (shared-flag 0, which
    /// the relay must turn into shared); returns ServerInit's width and height.
    async fn handshake(&mut self) -> (u16, u16) {
        assert_eq!(self.read(12).await, b"RFB 003.008\n");
        self.send(b"RFB 003.008\n").await;
        assert_eq!(self.read(2).await, [1, 1], "only security type None");
        self.send(&[1]).await;
        assert_eq!(self.read(4).await, [0, 0, 0, 0], "SecurityResult OK");
        self.send(&[0]).await;
        let head = self.read(24).await;
        let name_len = u32::from_be_bytes(head[20..24].try_into().unwrap()) as usize;
        self.read(name_len).await;
        (
            u16::from_be_bytes([head[0], head[1]]),
            u16::from_be_bytes([head[2], head[3]]),
        )
    }

    /// PointerEvent (RFC 6143 §7.5.5) to (x, y), then a non-incremental
    /// FramebufferUpdateRequest of one pixel whose answer proves the desktop has processed
    /// the pointer event (it handles a client's messages in order).
    async fn point_and_sync(&mut self, x: u16, y: u16) {
        let mut msg = vec![5, 0];
        msg.extend_from_slice(&x.to_be_bytes());
        msg.extend_from_slice(&y.to_be_bytes());
        // KeyEvent (§7.5.4): 'a' down and up; a view-only desktop drops these too.
        msg.extend_from_slice(&[4, 1, 0, 0, 0, 0, 0, 0x61, 4, 0, 0, 0, 0, 0, 0, 0x61]);
        msg.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 1, 0, 1]);
        self.send(&msg).await;
        // FramebufferUpdate: message type 0.
        assert_eq!(self.read(1).await, [0], "a FramebufferUpdate");
        self.buf.clear();
    }

    /// The close code the server sends next (skipping RFB bytes), within `within`.
    async fn close_code(&mut self, within: Duration) -> u16 {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("the server closes the socket in time");
            match msg {
                Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return 0,
                Some(Ok(_)) => {}
            }
        }
    }
}

/// What a refused upgrade answered: (status, problem body).
type Refusal = (u16, Value);

/// Opens the desktop socket for ticket `t` (a `desktop.create_ticket` body), with `origin`
/// (none when `None`); the path may be replaced to aim the ticket elsewhere.
async fn open(t: &Value, path: Option<&str>, origin: Option<&str>) -> Result<Viewer, Refusal> {
    let url = t["ws_url"].as_str().unwrap();
    let url = match path {
        Some(p) => format!("{}{p}", &url[..url.find("/v1/").unwrap()]),
        None => url.to_owned(),
    };
    let mut req = url.into_client_request().unwrap();
    let protocols = t["protocols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect::<Vec<_>>()
        .join(", ");
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&protocols).unwrap(),
    );
    if let Some(o) = origin {
        req.headers_mut()
            .insert("origin", HeaderValue::from_str(o).unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, resp)) => {
            assert_eq!(
                resp.headers()["sec-websocket-protocol"],
                "binary",
                "the server answers the binary subprotocol"
            );
            Ok(Viewer {
                ws,
                buf: Vec::new(),
            })
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let status = resp.status().as_u16();
            let body = resp
                .body()
                .as_deref()
                .map(|b| serde_json::from_slice(b).unwrap_or(Value::Null))
                .unwrap_or(Value::Null);
            Err((status, body))
        }
        Err(e) => panic!("websocket connect failed: {e}"),
    }
}

async fn refused(t: &Value, path: Option<&str>, origin: Option<&str>) -> Refusal {
    match open(t, path, origin).await {
        Ok(_) => panic!("the relay let in {t}"),
        Err(r) => r,
    }
}

/// Mints a ticket of `mode` as `user`; returns the 201 body.
async fn ticket(app: &TestApp, user: &User, org: &str, session: &str, mode: &str) -> Value {
    app.post(&format!(
        "/v1/orgs/{org}/sessions/{session}/desktop/tickets"
    ))
    .token(&user.token)
    .json(json!({ "mode": mode }))
    .expect(201)
    .await
    .body
}

async fn people_watch_and_take_over_through_the_relay(backend: Backend) {
    let base = if backend == Backend::Sqlite { 500 } else { 520 };
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.desktop_runtime = agentdesk::config::DesktopRuntimeKind::Process;
        c.desktop_display_min = base;
        c.desktop_display_max = base + 9;
        c.desktop_port_min = 17500 + base as u16;
        c.desktop_viewers_per_session = 2;
        c.desktop_viewer_recheck_s = 1;
    })
    .await
    else {
        return;
    };
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Watchers").await;
    let agent = app
        .post(&format!("/v1/orgs/{org}/agents"))
        .token(&owner.token)
        .json(json!({
            "name": "Watched", "model": "m",
            "desktop": {"width": W, "height": H},
            "capabilities": ["desktop:shell", "desktop:input.pointer"]
        }))
        .expect(201)
        .await
        .body;
    let session = app
        .running_session(&owner, &org, agent["id"].as_str().unwrap())
        .await;
    let desk = Desk {
        app: &app,
        user: owner.clone(),
        org: org.clone(),
        session: session.clone(),
    };
    let tickets = format!("/v1/orgs/{org}/sessions/{session}/desktop/tickets");
    let ws_path = format!("/v1/orgs/{org}/sessions/{session}/desktop/ws");

    // A view ticket: 256-bit secret, the socket's absolute URL, the subprotocols to offer.
    let t = ticket(&app, &owner, &org, &session, "view").await;
    let secret = t["ticket"].as_str().unwrap();
    assert!(secret.starts_with("dtk_") && secret.len() == 47, "{t}");
    assert_eq!(t["mode"], "view");
    assert_eq!(
        t["ws_url"],
        format!("ws://{}{ws_path}", app.addr),
        "the socket's absolute URL"
    );
    assert_eq!(
        t["protocols"],
        json!(["binary", format!("agentdesk.ticket.{secret}")])
    );

    // A foreign Origin is refused before the ticket is spent.
    let (status, p) = refused(&t, None, Some("https://evil.example")).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (403, Some("origin_not_allowed")),
        "{p}"
    );

    // Watching: the handshake ends in ServerInit with the agent's geometry; input is dropped
    // by the desktop itself (the relay signed in with the view-only password).
    desk.sh("xdotool mousemove 10 10").await;
    let own_origin = format!("http://{}", app.addr);
    let mut watcher = open(&t, None, Some(&own_origin)).await.unwrap();
    assert_eq!(watcher.handshake().await, (W, H));
    watcher.point_and_sync(400, 300).await;
    let at = desk.sh("xdotool getmouselocation --shell").await;
    assert!(
        at.contains("X=10\nY=10\n"),
        "a view socket moved the pointer: {at}"
    );
    // The agent's own link survived the watcher's request for exclusive access.
    assert!(desk.sh("echo still-linked").await.contains("still-linked"));

    // A used ticket is refused.
    let (status, p) = refused(&t, None, None).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (401, Some("invalid_ticket")),
        "{p}"
    );

    // Taking over: a control ticket's pointer events reach the desktop.
    let c = ticket(&app, &owner, &org, &session, "control").await;
    let mut controller = open(&c, None, None).await.unwrap();
    assert_eq!(controller.handshake().await, (W, H));
    controller.point_and_sync(400, 300).await;
    let at = desk.sh("xdotool getmouselocation --shell").await;
    assert!(
        at.contains("X=400\nY=300\n"),
        "the control socket did not move the pointer: {at}"
    );

    // Two viewers is this server's cap for one session: a third is refused with 429.
    let third = ticket(&app, &owner, &org, &session, "view").await;
    let (status, p) = refused(&third, None, None).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (429, Some("quota_exceeded")),
        "{p}"
    );
    assert_eq!(p["limit"], "desktop_viewers_per_session", "{p}");
    controller.ws.close(None).await.unwrap();
    drop(controller);

    // A ticket aimed at another session or another org is refused (and spent).
    let other_session = uuid::Uuid::now_v7();
    let t = ticket(&app, &owner, &org, &session, "view").await;
    let path = format!("/v1/orgs/{org}/sessions/{other_session}/desktop/ws");
    let (status, p) = refused(&t, Some(&path), None).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (401, Some("invalid_ticket")),
        "{p}"
    );
    let other_org = app.org(&owner, "Elsewhere").await;
    let t = ticket(&app, &owner, &org, &session, "view").await;
    let path = format!("/v1/orgs/{other_org}/sessions/{session}/desktop/ws");
    let (status, p) = refused(&t, Some(&path), None).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (401, Some("invalid_ticket")),
        "{p}"
    );

    // An expired ticket is refused.
    let t = ticket(&app, &owner, &org, &session, "view").await;
    {
        use agentdesk::entity::auth_ticket;
        let db = app.db().await;
        auth_ticket::Entity::update_many()
            .col_expr(
                auth_ticket::Column::ExpiresAt,
                Expr::value(chrono::Utc::now() - chrono::Duration::seconds(1)),
            )
            .filter(auth_ticket::Column::Kind.eq("desktop"))
            .exec(&db)
            .await
            .unwrap();
    }
    let (status, p) = refused(&t, None, None).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (401, Some("invalid_ticket")),
        "{p}"
    );
    assert!(p["detail"].as_str().unwrap().contains("expired"), "{p}");
    let r = app.get(&ws_path).expect(401).await;
    assert_eq!(r.body["code"], "invalid_ticket", "no ticket at all");
    // A ticket in the query of a request that is not a WebSocket handshake: refused before it
    // is spent, and the query reaches neither the problem nor the metrics.
    let q = ticket(&app, &owner, &org, &session, "view").await;
    let secret = q["ticket"].as_str().unwrap().to_owned();
    let r = app
        .get(&format!("{ws_path}?ticket={secret}"))
        .expect(400)
        .await;
    assert_eq!(r.body["code"], "websocket_upgrade_required", "{}", r.body);
    assert_eq!(r.body["instance"], ws_path.as_str(), "{}", r.body);
    let metrics = app.get("/metrics").expect(200).await.text;
    assert!(!metrics.contains(&secret), "a ticket reached the metrics");
    let path = format!("{ws_path}?ticket={secret}");
    let t = json!({ "ws_url": format!("ws://{}{path}", app.addr), "protocols": ["binary"] });
    let mut by_query = open(&t, None, None)
        .await
        .expect("a query ticket works once");
    assert_eq!(by_query.handshake().await, (W, H));
    by_query.ws.close(None).await.unwrap();

    // Who may mint what: a viewer watches but may not take over.
    let viewer = app.user("viewer").await;
    app.add_member(&owner, &org, &viewer, "viewer").await;
    let r = app
        .post(&tickets)
        .token(&viewer.token)
        .json(json!({ "mode": "control" }))
        .expect(403)
        .await;
    assert_eq!(
        r.body["missing_permission"], "desktop:control",
        "{}",
        r.body
    );

    // A member removed between minting and connecting is refused; one removed while
    // watching loses the socket within the re-check interval (1 s here).
    let t = ticket(&app, &viewer, &org, &session, "view").await;
    let operator = app.user("operator").await;
    app.add_member(&owner, &org, &operator, "operator").await;
    let o = ticket(&app, &operator, &org, &session, "control").await;
    let mut operator_socket = open(&o, None, None).await.unwrap();
    operator_socket.handshake().await;
    for member in [&viewer, &operator] {
        app.delete(&format!("/v1/orgs/{org}/members/{}", member.id))
            .token(&owner.token)
            .expect(204)
            .await;
    }
    let (status, p) = refused(&t, None, None).await;
    assert_eq!(status, 404, "{p}");
    assert_eq!(
        operator_socket.close_code(Duration::from_secs(10)).await,
        4003
    );

    // Logging out everywhere ends what the user's tokens opened: an unspent ticket and a socket.
    let leaver = app.user("leaver").await;
    app.add_member(&owner, &org, &leaver, "operator").await;
    let unspent = ticket(&app, &leaver, &org, &session, "view").await;
    let spent = ticket(&app, &leaver, &org, &session, "view").await;
    let mut leaver_socket = open(&spent, None, None).await.unwrap();
    leaver_socket.handshake().await;
    app.post("/v1/me/logout-all")
        .token(&leaver.token)
        .expect(204)
        .await;
    let (status, p) = refused(&unspent, None, None).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (401, Some("invalid_token")),
        "{p}"
    );
    assert_eq!(
        leaver_socket.close_code(Duration::from_secs(10)).await,
        4003
    );

    // Stopping the session closes the watcher's socket, and no ticket is minted any more.
    app.post(&format!("/v1/orgs/{org}/sessions/{session}/stop"))
        .token(&owner.token)
        .expect(202)
        .await;
    assert_eq!(watcher.close_code(Duration::from_secs(10)).await, 4001);
    let r = app
        .post(&tickets)
        .token(&owner.token)
        .json(json!({ "mode": "view" }))
        .expect(409)
        .await;
    assert_eq!(r.body["code"], "session_not_running", "{}", r.body);

    // The audit log: tickets issued, used and refused; each viewer with mode and bytes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let audit = loop {
        let items = app
            .walk_pages(
                &format!("/v1/orgs/{org}/audit-events?limit=200"),
                &owner.token,
            )
            .await;
        let closed = items
            .iter()
            .filter(|e| e["action"] == "desktop_viewer.disconnected")
            .count();
        if closed >= 5 || tokio::time::Instant::now() > deadline {
            break items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let count = |action: &str| audit.iter().filter(|e| e["action"] == action).count();
    assert_eq!(count("desktop_ticket.issued"), 11, "{audit:?}");
    // Used: the watcher, the controller, the query ticket, the operator and the leaver — not
    // the one over the cap.
    assert_eq!(count("desktop_ticket.used"), 5, "{audit:?}");
    let reasons: Vec<&str> = audit
        .iter()
        .filter(|e| e["action"] == "desktop_ticket.refused")
        .map(|e| e["details"]["reason"].as_str().unwrap())
        .collect();
    for reason in [
        "quota_exceeded",
        "invalid_ticket",
        "not_found",
        "invalid_token",
    ] {
        assert!(
            reasons.contains(&reason),
            "no {reason} refusal: {reasons:?}"
        );
    }
    let closed: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "desktop_viewer.disconnected")
        .collect();
    assert_eq!(closed.len(), 5, "{closed:?}");
    let watcher_end = closed
        .iter()
        .find(|e| e["details"]["reason"] == "session_ended")
        .expect("the watcher's end is audited");
    assert_eq!(watcher_end["details"]["mode"], "view");
    // ServerInit (24 bytes and the name) and the one-pixel update.
    assert!(watcher_end["details"]["bytes_to_viewer"].as_u64().unwrap() > 40);
    assert!(
        watcher_end["details"]["bytes_from_viewer"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        closed
            .iter()
            .any(|e| e["details"]["reason"] == "access_revoked"),
        "{closed:?}"
    );
    assert!(
        !serde_json::to_string(&audit).unwrap().contains("dtk_"),
        "no ticket secret in the audit log"
    );
}
