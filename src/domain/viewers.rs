//! Desktop viewers: the one-time tickets that let a browser open a session's live desktop
//! (`desktop.create_ticket` → `desktop.connect`), and the audit trail of each viewer.
//!
//! A ticket is a [`super::tickets`] ticket of kind `desktop` (`dtk_` + 43 base64url
//! characters, 256 random bits; only its SHA-256 is stored), single use, valid for
//! `desktop_ticket_ttl_s` (≤ 60 s), bound to one session of one org, to the principal that
//! minted it and to a [`Mode`]. [`issue`] needs the mode's permission ([`Mode::permission`]:
//! `sessions:read` to watch, `desktop:control` to take over) and a `running` session.
//! [`admit`] spends the ticket and decides again from the database (the principal's
//! membership or key, its role's permission, the session's state), so a member removed, or a
//! key revoked, between minting and connecting is refused.
//!
//! Audit (`audit.list`): `desktop_ticket.issued`, `desktop_ticket.used`,
//! `desktop_ticket.refused` (a real ticket refused: expired, for another session, the
//! principal lost access, the session is not running), and `desktop_viewer.disconnected`
//! with the mode, the duration (s), the bytes each way and why it ended. A secret that was
//! never issued (or was already spent) has no org to audit into: it is logged instead, with
//! the client's address, never the secret.
//!
//! Not here: the WebSocket and the RFB relay (`realtime::relay`), the HTTP contract.

use chrono::{DateTime, Utc};
use sea_orm::EntityTrait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{
    audit::{self, AuditCtx, Event},
    orgs::{self, Access},
    sessions::{self, Status},
    tickets::{self, Kind},
};
use crate::{
    auth::{
        Subject,
        rbac::{self, Rbac},
    },
    entity::{OrgId, SessionId, session, user},
    error::{AppError, AppResult, ProblemCode},
};

/// The ticket kind: `auth_tickets.kind = "desktop"`, secrets `dtk_…`.
pub const KIND: Kind = Kind {
    name: "desktop",
    prefix: "dtk",
};

/// Audit target of the `desktop_*` actions: the session (target id = the session id).
const TARGET: &str = audit::target::SESSION;

/// What a viewer may do with the desktop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Watch: the relay authenticates to the desktop with its view-only password, so the
    /// VNC server itself drops the viewer's pointer, key and clipboard messages.
    View,
    /// Watch and take over: the full-access password; pointer and keys reach the desktop.
    Control,
}

impl Mode {
    /// `view` or `control`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::View => "view",
            Mode::Control => "control",
        }
    }

    /// The permission a ticket of this mode needs: `sessions:read` or `desktop:control`.
    pub fn permission(self) -> &'static str {
        match self {
            Mode::View => rbac::SESSIONS_READ,
            Mode::Control => rbac::DESKTOP_CONTROL,
        }
    }
}

/// The principal a ticket was minted by, as stored with it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Minter {
    /// A user, with the `token_generation` of the access token that minted it: logging out
    /// everywhere, a password change or a detected refresh-token reuse bumps it, and ends
    /// the ticket and every viewer it let in.
    User {
        id: Uuid,
        generation: i64,
    },
    ApiKey {
        id: Uuid,
        role: String,
    },
}

/// What a desktop ticket carries (`auth_tickets.data`).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Binding {
    org_id: Uuid,
    session_id: Uuid,
    mode: Mode,
    minter: Minter,
}

impl Minter {
    fn of(subject: &Subject, generation: Option<i64>) -> Self {
        match subject {
            Subject::User(id) => Minter::User {
                id: *id,
                generation: generation.unwrap_or_default(),
            },
            Subject::ApiKey { id, role, .. } => Minter::ApiKey {
                id: *id,
                role: role.clone(),
            },
        }
    }
}

impl Binding {
    fn generation(&self) -> Option<i64> {
        match self.minter {
            Minter::User { generation, .. } => Some(generation),
            Minter::ApiKey { .. } => None,
        }
    }

    fn subject(&self) -> Subject {
        match &self.minter {
            Minter::User { id, .. } => Subject::User(*id),
            Minter::ApiKey { id, role } => Subject::ApiKey {
                id: *id,
                org_id: self.org_id,
                role: role.clone(),
            },
        }
    }
}

/// A ticket just minted (`Debug` leaves the secret out).
pub struct Issued {
    /// The secret (`dtk_…`), shown once.
    pub secret: String,
    /// Its mode.
    pub mode: Mode,
    /// When it stops being spendable (UTC).
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("secret", &"<redacted>")
            .field("mode", &self.mode)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The `token_generation` of user `id` while the account is neither disabled nor deleted.
async fn live_user(db: &impl sea_orm::ConnectionTrait, id: Uuid) -> AppResult<Option<i64>> {
    Ok(user::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|u| u.disabled_at.is_none() && u.deleted_at.is_none())
        .map(|u| u.token_generation))
}

/// Whether the principal behind `viewer` may still watch in its mode: a key still live, a
/// user still a member with the permission, not disabled, and without a new token
/// generation since the ticket was minted (logout everywhere, password change). `Ok(false)`
/// for a decision against it; `Err` when it could not be decided (a database error), which
/// callers should not take for a revocation. Errors: database errors.
pub async fn still_allowed(
    db: &sea_orm::DatabaseConnection,
    rbac: &Rbac,
    viewer: &Viewer,
) -> AppResult<bool> {
    match check_principal(
        db,
        rbac,
        &viewer.subject,
        viewer.generation,
        viewer.org_id,
        viewer.mode,
    )
    .await
    {
        Ok(()) => Ok(true),
        Err(AppError::Internal(e)) => Err(AppError::Internal(e)),
        Err(_) => Ok(false),
    }
}

/// The principal checks of [`admit`] and [`still_allowed`].
async fn check_principal(
    db: &sea_orm::DatabaseConnection,
    rbac: &Rbac,
    subject: &Subject,
    generation: Option<i64>,
    org_id: Uuid,
    mode: Mode,
) -> AppResult<()> {
    if let (Subject::User(id), Some(minted)) = (subject, generation)
        && live_user(db, *id).await? != Some(minted)
    {
        return Err(AppError::invalid_token(
            "the credentials that minted the ticket were revoked (logout, password change) or the account is disabled",
        ));
    }
    orgs::authorize_fresh(db, rbac, subject, org_id, mode.permission()).await?;
    Ok(())
}

/// A viewer let in by [`admit`].
#[derive(Clone, Debug)]
pub struct Viewer {
    /// The org.
    pub org_id: Uuid,
    /// The session whose desktop it watches.
    pub session_id: Uuid,
    /// Its mode.
    pub mode: Mode,
    /// Who minted the ticket (re-authorized while the viewer stays connected).
    pub subject: Subject,
    /// For a user: the `token_generation` the ticket was minted under ([`still_allowed`]).
    pub generation: Option<i64>,
    /// The session as read when it was let in (`running`, with its desktop).
    pub session: session::Model,
}

/// Mints a ticket of `mode` for `session_id` of the caller's org. The caller was authorized
/// for [`Mode::permission`] (`access`). Audited as `desktop_ticket.issued`. Errors: 404 for
/// a session of another org; 409 `session_not_running` (with `current_status`) unless the
/// session is `running`.
pub async fn issue(
    db: &impl sea_orm::ConnectionTrait,
    access: &Access,
    session_id: SessionId,
    mode: Mode,
    ttl_s: u64,
    ctx: &AuditCtx,
) -> AppResult<Issued> {
    let s = sessions::get(db, access.org(), session_id).await?;
    require_running(&s)?;
    let minter = match &access.subject {
        Subject::User(id) => Minter::User {
            id: *id,
            generation: live_user(db, *id)
                .await?
                .ok_or_else(|| AppError::invalid_token("the account is disabled or deleted"))?,
        },
        Subject::ApiKey { id, role, .. } => Minter::ApiKey {
            id: *id,
            role: role.clone(),
        },
    };
    let binding = Binding {
        org_id: access.org_id,
        session_id: s.id,
        mode,
        minter,
    };
    let issued = tickets::issue(db, KIND, access.user_id(), &binding, ttl_s).await?;
    audit::record(
        db,
        ctx,
        Event {
            org_id: Some(access.org_id),
            action: "desktop_ticket.issued",
            target_type: TARGET,
            target_id: Some(s.id),
            success: true,
            details: json!({ "mode": mode.as_str(), "expires_at": issued.expires_at }),
        },
    )
    .await?;
    Ok(Issued {
        secret: issued.secret,
        mode,
        expires_at: issued.expires_at,
    })
}

/// 401 `invalid_ticket`.
fn invalid_ticket(detail: &str) -> AppError {
    AppError::unauthorized(ProblemCode::InvalidTicket, detail)
}

/// 409 `session_not_running` unless `s` is `running`.
fn require_running(s: &session::Model) -> AppResult<()> {
    if s.status == Status::Running {
        return Ok(());
    }
    Err(AppError::SessionState {
        code: ProblemCode::SessionNotRunning,
        current: s.status.as_str(),
        detail: format!(
            "the session is `{}`; its desktop can be watched only while it is `running`",
            s.status.as_str()
        ),
    })
}

/// Spends `secret` for the desktop of `session_id` in `org_id` (the path the viewer
/// connects to) and decides afresh: the ticket must be unspent, unexpired and bound to that
/// session; its minter must still act in the org with the mode's permission (a user still a
/// member whose credentials were not revoked since, a key neither revoked nor expired); the
/// session must be `running`. A refusal of a ticket that was issued is audited as
/// `desktop_ticket.refused` with the reason; an unknown secret is only logged. Once the viewer
/// is connected (or refused for capacity), the caller records [`record_admission`]. The
/// ticket is spent either way.
///
/// Errors: 401 `invalid_ticket` (unknown, spent, expired, or bound to another session); 404
/// when the minter no longer belongs to the org; 403 `permission_denied`; 401
/// `invalid_token` for a revoked key, a disabled account or revoked user credentials; 409
/// `session_not_running`.
pub async fn admit(
    db: &sea_orm::DatabaseConnection,
    rbac: &Rbac,
    org_id: Uuid,
    session_id: Uuid,
    secret: &str,
    ctx: &AuditCtx,
) -> AppResult<Viewer> {
    let Some(ticket) = tickets::take(db, KIND, secret).await? else {
        tracing::info!(ip = ?ctx.ip, "desktop ticket refused: unknown or already used");
        return Err(invalid_ticket(
            "the desktop ticket is unknown or was already used: mint a new one with `desktop.create_ticket`",
        ));
    };
    let binding: Binding = serde_json::from_value(ticket.data)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("desktop ticket data: {e}")))?;
    let subject = binding.subject();
    let decided = decide(
        db,
        rbac,
        &binding,
        &subject,
        org_id,
        session_id,
        ticket.expires_at,
    )
    .await;
    let viewer = Viewer {
        org_id: binding.org_id,
        session_id: binding.session_id,
        mode: binding.mode,
        generation: binding.generation(),
        subject,
        session: match decided {
            Ok(s) => s,
            Err(e) => {
                let ctx = ctx.as_subject(&binding.subject());
                record_ticket(db, &ctx, &binding, Some(e.code().as_str())).await?;
                return Err(e);
            }
        },
    };
    Ok(viewer)
}

/// Records `desktop_ticket.used` for `viewer` (it is connected), or `desktop_ticket.refused`
/// with `refusal` (a problem code: the viewer cap, an unreachable desktop) when it was let in
/// by [`admit`] but could not be connected. Errors: database errors.
pub async fn record_admission(
    db: &impl sea_orm::ConnectionTrait,
    viewer: &Viewer,
    refusal: Option<&'static str>,
    ctx: &AuditCtx,
) -> AppResult<()> {
    let binding = Binding {
        org_id: viewer.org_id,
        session_id: viewer.session_id,
        mode: viewer.mode,
        minter: Minter::of(&viewer.subject, viewer.generation),
    };
    record_ticket(db, &ctx.as_subject(&viewer.subject), &binding, refusal).await
}

/// `desktop_ticket.used`, or `desktop_ticket.refused` with the reason.
async fn record_ticket(
    db: &impl sea_orm::ConnectionTrait,
    ctx: &AuditCtx,
    binding: &Binding,
    refusal: Option<&str>,
) -> AppResult<()> {
    let mode = binding.mode.as_str();
    audit::record(
        db,
        ctx,
        Event {
            org_id: Some(binding.org_id),
            action: match refusal {
                None => "desktop_ticket.used",
                Some(_) => "desktop_ticket.refused",
            },
            target_type: TARGET,
            target_id: Some(binding.session_id),
            success: refusal.is_none(),
            details: match refusal {
                None => json!({ "mode": mode }),
                Some(reason) => json!({ "mode": mode, "reason": reason }),
            },
        },
    )
    .await
}

/// The decision of [`admit`] for a ticket that existed.
async fn decide(
    db: &sea_orm::DatabaseConnection,
    rbac: &Rbac,
    binding: &Binding,
    subject: &Subject,
    org_id: Uuid,
    session_id: Uuid,
    expires_at: DateTime<Utc>,
) -> AppResult<session::Model> {
    if expires_at <= Utc::now() {
        return Err(invalid_ticket(
            "the desktop ticket has expired: mint a new one with `desktop.create_ticket` and connect at once",
        ));
    }
    if binding.org_id != org_id || binding.session_id != session_id {
        return Err(invalid_ticket(
            "the desktop ticket was issued for another session",
        ));
    }
    check_principal(
        db,
        rbac,
        subject,
        binding.generation(),
        org_id,
        binding.mode,
    )
    .await?;
    let s = sessions::get(db, OrgId(org_id), SessionId(session_id)).await?;
    require_running(&s)?;
    Ok(s)
}

/// How a viewer's connection ended, for the audit trail and the metrics.
#[derive(Clone, Debug)]
pub struct ViewerEnd {
    /// How long it was connected (s).
    pub duration_s: f64,
    /// RFB bytes relayed from the desktop to the viewer.
    pub bytes_to_viewer: u64,
    /// RFB bytes relayed from the viewer to the desktop.
    pub bytes_from_viewer: u64,
    /// Why it ended (`viewer_closed`, `session_ended`, `access_revoked`, `idle`, …).
    pub reason: &'static str,
}

/// Records `desktop_viewer.disconnected` for `viewer` with its mode, duration, bytes and
/// reason. Errors: database errors.
pub async fn record_end(
    db: &impl sea_orm::ConnectionTrait,
    viewer: &Viewer,
    end: &ViewerEnd,
    ctx: &AuditCtx,
) -> AppResult<()> {
    audit::record(
        db,
        &ctx.as_subject(&viewer.subject),
        Event {
            org_id: Some(viewer.org_id),
            action: "desktop_viewer.disconnected",
            target_type: TARGET,
            target_id: Some(viewer.session_id),
            success: true,
            details: json!({
                "mode": viewer.mode.as_str(),
                "duration_s": (end.duration_s * 1000.0).round() / 1000.0,
                "bytes_to_viewer": end.bytes_to_viewer,
                "bytes_from_viewer": end.bytes_from_viewer,
                "reason": end.reason,
            }),
        },
    )
    .await
}
