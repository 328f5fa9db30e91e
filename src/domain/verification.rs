//! Proving an email address: a one-time link sent to it.
//!
//! An address counts as verified only when its owner opened a link sent to it (or an OIDC
//! provider vouched for it at the account's first SSO login). Until then the account cannot
//! accept invitations, and the first verified SSO identity for the address takes the account
//! over (`domain::oidc`, the pre-account-takeover guard).
//!
//! The link is `<frontend_url>/verify-email#token=<ev_…>` (in the fragment, so it never reaches
//! a server log); the token is a ticket (`domain::tickets`, kind `email_verification`): 256
//! random bits stored as SHA-256, single use, `email_verification_ttl_s` long, bound to the
//! user and to the address it was sent to (a link for an old address proves nothing about a
//! new one). Sending goes through the node's [`Mailer`]; a failure to send is logged and does
//! not undo what asked for the mail.

use chrono::Utc;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{
    audit::{self, AuditCtx, Event},
    tickets::{self, Kind},
};
use crate::{
    config::Config,
    entity::user,
    error::{AppError, AppResult, ProblemCode},
    mail::{Mailer, Message},
};

/// Verification tickets: the secret is the link's token (`ev_…`).
const TICKET: Kind = Kind {
    name: "email_verification",
    prefix: "ev",
};

#[derive(Debug, Deserialize, Serialize)]
struct TicketData {
    email: String,
}

/// Where verification links and notices go, from config.
#[derive(Clone, Debug)]
pub struct Links {
    /// `frontend_url`.
    pub frontend_url: String,
    /// `email_verification_ttl_s`.
    pub ttl_s: u64,
}

impl Links {
    /// From the configuration.
    pub fn from_config(config: &Config) -> Self {
        Self {
            frontend_url: config.frontend_url(),
            ttl_s: config.email_verification_ttl_s,
        }
    }
}

async fn deliver(mailer: &dyn Mailer, message: Message) {
    if let Err(e) = mailer.send(&message).await {
        tracing::warn!(kind = message.kind, error = %e, "could not send mail");
    }
}

/// Issues a verification link for `account`'s current address and mails it there. Works in the
/// caller's transaction when `db` is one (the mail goes out after the ticket is written; a
/// rolled-back ticket makes a dead link, never a live one for a vanished account).
pub async fn send(
    db: &impl ConnectionTrait,
    mailer: &dyn Mailer,
    links: &Links,
    account: &user::Model,
) -> AppResult<()> {
    let data = TicketData {
        email: account.email.clone(),
    };
    let issued = tickets::issue(db, TICKET, Some(account.id), &data, links.ttl_s).await?;
    let link = format!(
        "{}/verify-email#token={}",
        links.frontend_url, issued.secret
    );
    let hours = links.ttl_s.div_ceil(3600);
    deliver(
        mailer,
        Message {
            kind: "email_verification",
            to: account.email.clone(),
            subject: "Confirm your email address for Agentdesk".into(),
            text: format!(
                "Hello {},\n\nconfirm that this address is yours by opening this link within {hours} h:\n\n{link}\n\nIf you did not sign up for Agentdesk, ignore this message.\n",
                account.display_name
            ),
            link: Some(link),
        },
    )
    .await;
    Ok(())
}

/// Tells the owner of `email` that someone tried to sign up with it (the sign-up answered as
/// for a new address, so the person signing up learns nothing; the owner learns of it).
pub async fn notify_signup_attempt(mailer: &dyn Mailer, links: &Links, email: &str) {
    let link = format!("{}/login", links.frontend_url);
    deliver(
        mailer,
        Message {
            kind: "signup_attempt",
            to: email.to_owned(),
            subject: "Someone tried to sign up for Agentdesk with your address".into(),
            text: format!(
                "Someone tried to create an Agentdesk account with this address, which already has one. No account was created and nothing changed.\n\nIf it was you, log in instead:\n\n{link}\n\nIf you forgot your password, sign in with single sign-on if your organization uses it, or ask your administrator.\n"
            ),
            link: Some(link),
        },
    )
    .await;
}

fn invalid_link() -> AppError {
    AppError::BadRequest {
        code: ProblemCode::InvalidVerificationToken,
        detail: "the verification link is unknown, expired or already used; ask for a new one"
            .into(),
        errors: vec![],
    }
}

/// Spends a verification token and marks the address it was sent to as verified, when that is
/// still the account's address. Audited as `user.email_verified`. Errors: 400
/// `invalid_verification_token` (unknown, spent, expired, or the account's address changed or
/// it was erased).
pub async fn verify(db: &DatabaseConnection, token: &str, ctx: &AuditCtx) -> AppResult<Uuid> {
    let ticket = tickets::spend(db, TICKET, token)
        .await?
        .ok_or_else(invalid_link)?;
    let user_id = ticket.user_id.ok_or_else(invalid_link)?;
    let data: TicketData = serde_json::from_value(ticket.data).map_err(|_| invalid_link())?;
    let tx = super::begin_write(db).await?;
    let account = user::Entity::find_by_id(user_id)
        .one(&tx)
        .await?
        .filter(|u| u.deleted_at.is_none() && u.email == data.email)
        .ok_or_else(invalid_link)?;
    if account.email_verified_at.is_none() {
        user::Entity::update_many()
            .col_expr(
                user::Column::EmailVerifiedAt,
                sea_orm::sea_query::Expr::value(Utc::now()),
            )
            .filter(user::Column::Id.eq(user_id))
            .filter(user::Column::EmailVerifiedAt.is_null())
            .exec(&tx)
            .await?;
        let event = Event::account("user.email_verified", Some(user_id), true, json!({}));
        audit::record(&tx, &ctx.as_actor(user_id), event).await?;
    }
    tx.commit().await?;
    Ok(user_id)
}

/// Sends a new link to the caller's address. Errors: 409 `email_already_verified`; 401 when the
/// account is gone.
pub async fn resend(
    db: &DatabaseConnection,
    mailer: &dyn Mailer,
    links: &Links,
    user_id: Uuid,
) -> AppResult<()> {
    let account = super::accounts::me(db, user_id).await?;
    if account.email_verified_at.is_some() {
        return Err(AppError::conflict(
            ProblemCode::EmailAlreadyVerified,
            "this account's email address is already verified",
        ));
    }
    send(db, mailer, links, &account).await
}
