//! `/v1/orgs/{org_id}/sessions/{session_id}/desktop/…`: the live desktop for the people
//! watching an agent — one-time tickets (`desktop.create_ticket`) and the WebSocket that
//! relays the desktop's RFB stream (`desktop.connect`).
//!
//! Browsers cannot put an `Authorization` header on a WebSocket, so the socket is authorized
//! by a ticket: minted with a bearer credential, sent in `Sec-WebSocket-Protocol` as
//! `agentdesk.ticket.<ticket>` (as Kubernetes passes bearer tokens to WebSockets) or as
//! `?ticket=`, spent on first use. Every refusal happens before the upgrade, as a problem.

use chrono::{DateTime, Utc};
use poem::{
    FromRequest, IntoResponse, Request, Response,
    web::{
        Data,
        websocket::{BoxWebSocketUpgraded, WebSocket, WebSocketConfig},
    },
};
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Header, Path, Query},
    payload::Json,
    registry::{MetaResponses, Registry},
};
use uuid::Uuid;

use super::{OrgAuth, Tag, access};
use crate::{
    api_errors,
    config::Config,
    desktop::LinkTarget,
    domain::{
        audit::AuditCtx,
        desktops,
        viewers::{self, Mode, Viewer, ViewerEnd},
    },
    entity::SessionId,
    error::{AppError, ProblemCode},
    http::middleware::ClientInfo,
    realtime::relay::{self, MAX_VIEWER_MESSAGE, RelayOptions},
    state::AppState,
};

/// The subprotocol a viewer must offer and the server answers: RFB bytes in binary messages.
pub const SUBPROTOCOL: &str = "binary";
/// Prefix of the subprotocol entry that carries the ticket.
pub const TICKET_PROTOCOL_PREFIX: &str = "agentdesk.ticket.";

/// What a viewer may do with the desktop.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum DesktopMode {
    /// Watch only. Needs `sessions:read`. The relay signs in to the desktop with its
    /// view-only password, so the desktop itself ignores the viewer's pointer, keys and
    /// clipboard, whatever the viewer sends.
    View,
    /// Watch and take over: pointer and keys reach the desktop. Needs `desktop:control`.
    Control,
}

impl From<DesktopMode> for Mode {
    fn from(m: DesktopMode) -> Self {
        match m {
            DesktopMode::View => Mode::View,
            DesktopMode::Control => Mode::Control,
        }
    }
}

impl From<Mode> for DesktopMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::View => DesktopMode::View,
            Mode::Control => DesktopMode::Control,
        }
    }
}

/// `desktop.create_ticket` request.
#[derive(Object)]
pub struct DesktopTicketIn {
    /// `view` to watch, `control` to take over.
    pub mode: DesktopMode,
}

/// A one-time desktop ticket.
#[derive(Object)]
pub struct DesktopTicketOut {
    /// The ticket: `dtk_` + 43 base64url characters (256 random bits). Shown once, spent by
    /// the first `desktop.connect` that presents it, valid until `expires_at`.
    pub ticket: String,
    /// The absolute `ws://` or `wss://` URL of `desktop.connect` for this session.
    pub ws_url: String,
    /// What the ticket allows.
    pub mode: DesktopMode,
    /// When the ticket stops being accepted (RFC 3339, UTC; at most 60 s away).
    pub expires_at: DateTime<Utc>,
    /// The WebSocket subprotocols to offer, in order: `binary` (the server answers it) and
    /// `agentdesk.ticket.<ticket>`. In a browser: `new WebSocket(ws_url, protocols)`.
    pub protocols: Vec<String>,
}

/// A ticket was minted.
#[derive(ApiResponse)]
pub enum DesktopTicketCreated {
    /// The ticket; open `ws_url` with `protocols` within its lifetime.
    #[oai(status = 201)]
    Created(Json<DesktopTicketOut>),
}

/// What the spec says `desktop.connect` answers on success; the handler answers with
/// [`DesktopUpgrade`].
#[derive(ApiResponse)]
#[allow(dead_code)]
enum DesktopUpgradeSpec {
    /// Switching Protocols (RFC 6455 §4.2.2): the connection is now a WebSocket carrying RFB
    /// (RFC 6143) in binary messages. The server speaks first (`RFB 003.008\n`) and offers
    /// only security type None: the relay has already authenticated to the desktop with the
    /// password of the ticket's mode. Close codes: 4001 the session left `running`, 4003
    /// access revoked (checked every `desktop_viewer_recheck_s`, 30 s by default), 4008 idle (`desktop_viewer_idle_timeout_s`
    /// without an RFB byte), 4010 desktop connection lost, 1002 RFB protocol error.
    #[oai(status = 101)]
    SwitchingProtocols(
        /// `binary`, when the viewer offered it (browsers require an offered one back).
        #[oai(header = "Sec-WebSocket-Protocol")]
        Option<String>,
    ),
}

/// `desktop.connect` success: the WebSocket upgrade.
pub struct DesktopUpgrade(BoxWebSocketUpgraded);

impl ApiResponse for DesktopUpgrade {
    fn meta() -> MetaResponses {
        DesktopUpgradeSpec::meta()
    }

    fn register(registry: &mut Registry) {
        DesktopUpgradeSpec::register(registry);
    }
}

impl IntoResponse for DesktopUpgrade {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

api_errors!(DesktopTicketErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable
});

api_errors!(DesktopConnectErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict
});

/// Whether `req`'s `Origin` may open the desktop: absent (not a browser), the server's own
/// (`public_url`, or the request's `Host` over http or https), or listed in
/// `cors_allowed_origins`.
fn origin_allowed(req: &Request, config: &Config) -> bool {
    let Some(origin) = req.headers().get("origin") else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    if config
        .cors_allowed_origins
        .iter()
        .any(|o| o.trim_end_matches('/') == origin)
    {
        return true;
    }
    if !config.public_url.is_empty() {
        return url::Url::parse(&config.public_url)
            .is_ok_and(|u| u.origin().ascii_serialization() == origin);
    }
    let host = req.headers().get("host").and_then(|h| h.to_str().ok());
    host.is_some_and(|h| origin == format!("http://{h}") || origin == format!("https://{h}"))
}

/// The `ws://`/`wss://` base of this server: `public_url`, else the request's `Host`.
fn ws_base(req: &Request, config: &Config) -> String {
    let base = if config.public_url.is_empty() {
        let host = req
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or(&config.listen);
        format!("http://{host}")
    } else {
        config.public_url.trim_end_matches('/').to_owned()
    };
    match base.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}"),
        Some((_, rest)) => format!("ws://{rest}"),
        None => format!("ws://{base}"),
    }
}

/// The ticket a viewer presented: the `agentdesk.ticket.<ticket>` subprotocol, else
/// `?ticket=`. Errors: 400 when subprotocols are offered without `binary`; 401
/// `invalid_ticket` when there is none.
fn presented_ticket(protocols: Option<&str>, query: Option<String>) -> Result<String, AppError> {
    if let Some(list) = protocols {
        let offered: Vec<&str> = list.split(',').map(str::trim).collect();
        if !offered.contains(&SUBPROTOCOL) {
            return Err(AppError::BadRequest {
                code: ProblemCode::InvalidParameter,
                detail: "Sec-WebSocket-Protocol must offer `binary` (the only subprotocol the server answers)".into(),
                errors: vec![],
            });
        }
        if let Some(t) = offered
            .iter()
            .find_map(|p| p.strip_prefix(TICKET_PROTOCOL_PREFIX))
        {
            return Ok(t.to_owned());
        }
    }
    query.filter(|t| !t.is_empty()).ok_or_else(|| {
        AppError::unauthorized(
            ProblemCode::InvalidTicket,
            "no desktop ticket: mint one with `desktop.create_ticket` and send it as the subprotocol `agentdesk.ticket.<ticket>` (or `?ticket=`)",
        )
    })
}

/// The access re-check of a connected viewer (every `desktop_viewer_recheck_s`): its minter
/// still may watch in its mode ([`viewers::still_allowed`]). A check that cannot be decided (a
/// database error) keeps the viewer: only a decision against it ends the socket.
fn still_allowed(
    state: &AppState,
    viewer: &Viewer,
) -> impl FnMut() -> futures_util::future::BoxFuture<'static, bool> + Send + 'static {
    let (state, viewer) = (state.clone(), viewer.clone());
    move || {
        let (state, viewer) = (state.clone(), viewer.clone());
        Box::pin(async move {
            match viewers::still_allowed(&state.db, &state.rbac, &viewer).await {
                Ok(allowed) => allowed,
                Err(e) => {
                    tracing::warn!(session_id = %viewer.session_id, error = %e, "viewer access re-check failed; keeping the viewer");
                    true
                }
            }
        })
    }
}

/// Records the refusal of a viewer [`viewers::admit`] let in but the server cannot connect
/// (`desktop_ticket.refused` with `e`'s code) and returns `e` (or the audit's own error).
async fn refuse(state: &AppState, viewer: &Viewer, e: AppError, audit: &AuditCtx) -> AppError {
    match viewers::record_admission(&state.db, viewer, Some(e.code().as_str()), audit).await {
        Ok(()) => e,
        Err(audit_error) => audit_error,
    }
}

/// Runs the relay for an admitted viewer over `socket`, then records the end (audit,
/// metrics).
async fn serve_viewer(
    socket: poem::web::websocket::WebSocketStream,
    desktop: tokio::net::TcpStream,
    state: AppState,
    viewer: Viewer,
    slot: relay::ViewerSlot,
    client: ClientInfo,
) {
    let mode = viewer.mode.as_str();
    let gauge = metrics::gauge!("agentdesk_desktop_viewers", "mode" => mode);
    gauge.increment(1.0);
    let opts = RelayOptions {
        ping: std::time::Duration::from_secs(state.config.desktop_viewer_ping_s),
        idle: std::time::Duration::from_secs(state.config.desktop_viewer_idle_timeout_s),
        reauthorize: std::time::Duration::from_secs(state.config.desktop_viewer_recheck_s),
    };
    let report = relay::relay(
        socket,
        desktop,
        opts,
        still_allowed(&state, &viewer),
        relay::left_running(state.db.clone(), state.bus.clone(), viewer.session_id),
    )
    .await;
    drop(slot);
    gauge.decrement(1.0);
    metrics::histogram!("agentdesk_desktop_viewer_duration_seconds", "mode" => mode)
        .record(report.duration.as_secs_f64());
    tracing::info!(
        session_id = %viewer.session_id,
        mode,
        reason = report.end.as_str(),
        duration_s = report.duration.as_secs_f64(),
        bytes_to_viewer = report.bytes_to_viewer,
        bytes_from_viewer = report.bytes_from_viewer,
        "desktop viewer disconnected"
    );
    let end = ViewerEnd {
        duration_s: report.duration.as_secs_f64(),
        bytes_to_viewer: report.bytes_to_viewer,
        bytes_from_viewer: report.bytes_from_viewer,
        reason: report.end.as_str(),
    };
    if let Err(e) = viewers::record_end(&state.db, &viewer, &end, &client.audit()).await {
        tracing::warn!(error = %e, "could not audit a viewer's disconnect");
    }
}

/// The desktop operations.
pub struct DesktopApi;

#[OpenApi(tag = "Tag::Desktop")]
impl DesktopApi {
    /// Mint a desktop ticket
    ///
    /// A one-time ticket for `desktop.connect`, the WebSocket that shows the session's live
    /// desktop. `mode: view` needs `sessions:read`; `mode: control` (pointer and keyboard
    /// reach the desktop) needs `desktop:control`. Only while the session is `running` (409
    /// `session_not_running` with `current_status` otherwise). The ticket is single use,
    /// valid for `desktop_ticket_ttl_s` (at most 60 s), and bound to this session, the caller
    /// and the mode; only its hash is stored. Not idempotent by design: a retry mints
    /// another ticket (an unspent one expires by itself), and no ticket is ever stored to
    /// be replayed. Audited as `desktop_ticket.issued`.
    #[oai(
        path = "/v1/orgs/:org_id/sessions/:session_id/desktop/tickets",
        method = "post",
        operation_id = "desktop.create_ticket"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn create_ticket(
        &self,
        req: &Request,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Session id.
        session_id: Path<Uuid>,
        body: Json<DesktopTicketIn>,
    ) -> Result<DesktopTicketCreated, DesktopTicketErrors> {
        let mode = Mode::from(body.0.mode);
        let a = access(&state, &auth, org_id.0, mode.permission()).await?;
        let ctx = client.audit().as_subject(&a.subject);
        let issued = viewers::issue(
            &state.db,
            &a,
            SessionId(session_id.0),
            mode,
            state.config.desktop_ticket_ttl_s,
            &ctx,
        )
        .await?;
        let ws_url = format!(
            "{}/v1/orgs/{}/sessions/{}/desktop/ws",
            ws_base(req, &state.config),
            org_id.0,
            session_id.0
        );
        Ok(DesktopTicketCreated::Created(Json(DesktopTicketOut {
            protocols: vec![
                SUBPROTOCOL.to_owned(),
                format!("{TICKET_PROTOCOL_PREFIX}{}", issued.secret),
            ],
            ticket: issued.secret,
            ws_url,
            mode: issued.mode.into(),
            expires_at: issued.expires_at,
        })))
    }

    /// Watch or control the live desktop (WebSocket)
    ///
    /// A WebSocket (RFC 6455) carrying the desktop's RFB (RFC 6143) stream in binary
    /// messages — what noVNC speaks. Authorized by a ticket from `desktop.create_ticket`
    /// (no bearer header: browsers cannot send one on a WebSocket), offered as the
    /// subprotocols `binary, agentdesk.ticket.<ticket>` (the server answers `binary`), or as
    /// `?ticket=` (never logged). The ticket is spent on the first attempt. The relay
    /// authenticates to the desktop itself with the password of the ticket's mode — with a
    /// `view` ticket the view-only one, so the desktop ignores input whatever the client
    /// sends — and offers the client security type None: no VNC password reaches it.
    ///
    /// Refusals come before the upgrade, as problems: 400 not a WebSocket handshake (or
    /// subprotocols without `binary`); 401 `invalid_ticket` (missing, unknown, used, expired,
    /// or for another session); 403 `origin_not_allowed` (`Origin` is neither this server
    /// nor in `cors_allowed_origins`), or the ticket's holder lost the permission; 404 the
    /// holder left the organization; 409 `session_not_running`; 429 `quota_exceeded` when
    /// the session already has `desktop_viewers_per_session` viewers on this server; 503
    /// `desktop_unreachable`. Once open, the holder's access is re-checked every `desktop_viewer_recheck_s` (30 s), and
    /// the socket closes when the session leaves `running` (see the 101 response for the
    /// close codes). Audited: `desktop_ticket.used` / `desktop_ticket.refused`, and
    /// `desktop_viewer.disconnected` with mode, duration and bytes.
    #[oai(
        path = "/v1/orgs/:org_id/sessions/:session_id/desktop/ws",
        method = "get",
        operation_id = "desktop.connect"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn connect(
        &self,
        req: &Request,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Session id.
        session_id: Path<Uuid>,
        /// The ticket, for clients that cannot set subprotocols. Prefer the subprotocol: a
        /// URL may be kept by proxies and browser history (the server redacts it from its
        /// own logs, metrics and traces).
        ticket: Query<Option<String>>,
        /// `binary, agentdesk.ticket.<ticket>`: the subprotocols offered (RFC 6455 §11.3.4).
        /// When sent, it must offer `binary`, the only one the server answers (browsers fail
        /// a handshake whose offered subprotocols get no answer).
        #[oai(
            name = "Sec-WebSocket-Protocol",
            validator(pattern = r"(^|,)[ \t]*binary[ \t]*(,|$)")
        )]
        protocols: Header<Option<String>>,
    ) -> Result<DesktopUpgrade, DesktopConnectErrors> {
        if !origin_allowed(req, &state.config) {
            return Err(AppError::forbidden(
                ProblemCode::OriginNotAllowed,
                "this Origin may not open the desktop: use the server's own origin or one in `cors_allowed_origins`",
            )
            .into());
        }
        let secret = presented_ticket(protocols.0.as_deref(), ticket.0)?;
        let ws = WebSocket::from_request_without_body(req)
            .await
            .map_err(|_| AppError::BadRequest {
                code: ProblemCode::WebsocketUpgradeRequired,
                detail: "not a WebSocket handshake: send GET with `Upgrade: websocket`, `Connection: Upgrade`, `Sec-WebSocket-Version: 13` and `Sec-WebSocket-Key`".into(),
                errors: vec![],
            })?;
        let audit = client.audit();
        let viewer = viewers::admit(
            &state.db,
            &state.rbac,
            org_id.0,
            session_id.0,
            &secret,
            &audit,
        )
        .await?;
        let max = state.config.desktop_viewers_per_session;
        let Some(slot) = state.viewers.try_take(viewer.session_id, max) else {
            let e = AppError::QuotaExceeded {
                limit: "desktop_viewers_per_session",
                max: u64::from(max),
                detail: format!(
                    "the session already has {max} viewers on this server; try again when one leaves"
                ),
                retry_after_s: Some(5),
            };
            return Err(refuse(&state, &viewer, e, &audit).await.into());
        };
        let unreachable = |detail: String| AppError::Unavailable {
            code: ProblemCode::DesktopUnreachable,
            detail,
        };
        let Some(endpoint) = desktops::endpoint(&viewer.session) else {
            let e = unreachable("the session has no desktop".into());
            return Err(refuse(&state, &viewer, e, &audit).await.into());
        };
        let passwords = desktops::passwords(&state.sealer, &viewer.session)?;
        let target = LinkTarget {
            host: endpoint.vnc_host,
            port: endpoint.vnc_port,
            password: match viewer.mode {
                Mode::View => passwords.view,
                Mode::Control => passwords.control,
            },
        };
        let desktop = match relay::connect_desktop(&target).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(session_id = %viewer.session_id, error = %e, "viewer: the desktop refused the relay");
                let e = unreachable("the session's desktop cannot be reached right now".into());
                return Err(refuse(&state, &viewer, e, &audit).await.into());
            }
        };
        viewers::record_admission(&state.db, &viewer, None, &audit).await?;
        let state = state.0.clone();
        let client = client.0.clone();
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_VIEWER_MESSAGE))
            .max_frame_size(Some(MAX_VIEWER_MESSAGE));
        Ok(DesktopUpgrade(
            ws.protocols([SUBPROTOCOL])
                .config(config)
                .on_upgrade(move |socket| {
                    serve_viewer(socket, desktop, state, viewer, slot, client)
                })
                .boxed(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ticket_comes_from_the_subprotocols_or_the_query() {
        let t = presented_ticket(Some("binary, agentdesk.ticket.dtk_abc"), None).unwrap();
        assert_eq!(t, "dtk_abc");
        let t = presented_ticket(Some("binary"), Some("dtk_q".into())).unwrap();
        assert_eq!(t, "dtk_q");
        assert_eq!(
            presented_ticket(None, Some("dtk_q".into())).unwrap(),
            "dtk_q"
        );
        let e = presented_ticket(Some("agentdesk.ticket.dtk_abc"), None).unwrap_err();
        assert_eq!(
            e.code(),
            ProblemCode::InvalidParameter,
            "binary must be offered"
        );
        let e = presented_ticket(None, Some(String::new())).unwrap_err();
        assert_eq!(e.code(), ProblemCode::InvalidTicket);
    }

    #[test]
    fn origins() {
        let config = Config {
            cors_allowed_origins: vec!["https://app.example.com/".into()],
            ..Config::default()
        };
        let req = |origin: Option<&str>| {
            let mut b = Request::builder().header("host", "agentdesk.local:8080");
            if let Some(o) = origin {
                b = b.header("origin", o);
            }
            b.finish()
        };
        assert!(origin_allowed(&req(None), &config), "not a browser");
        assert!(origin_allowed(
            &req(Some("http://agentdesk.local:8080")),
            &config
        ));
        assert!(origin_allowed(
            &req(Some("https://app.example.com")),
            &config
        ));
        assert!(!origin_allowed(&req(Some("https://evil.example")), &config));
        assert!(!origin_allowed(
            &req(Some("http://agentdesk.local")),
            &config
        ));
        let config = Config {
            public_url: "https://desk.example.com".into(),
            ..Config::default()
        };
        assert!(origin_allowed(
            &req(Some("https://desk.example.com")),
            &config
        ));
        assert!(!origin_allowed(
            &req(Some("http://agentdesk.local:8080")),
            &config
        ));
        assert_eq!(ws_base(&req(None), &config), "wss://desk.example.com");
        assert_eq!(
            ws_base(&req(None), &Config::default()),
            "ws://agentdesk.local:8080"
        );
    }
}
