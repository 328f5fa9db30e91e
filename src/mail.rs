//! Mail to account owners: email verification links and sign-up notices.
//!
//! Sending mail is outside what Agentdesk exists for, so this is only the plug: the domain
//! composes a [`Message`] and hands it to the node's [`Mailer`]. Two senders ship:
//!
//! * [`LogMailer`] (`mail_sender = "log"`, the default): logs each message, link included, at
//!   INFO. For development only: the links are one-time secrets, and a log is not a mailbox.
//!   A warning at start says so.
//! * [`DirMailer`] (`mail_sender = "dir"`): writes each message as an RFC 5322 `.eml` file
//!   (mode 0600) into `mail_dir`, for a local pickup (a relay that watches the directory) and
//!   for the tests, which read the link from there.
//!
//! A production sender (SMTP, a provider's HTTP API) implements [`Mailer`]; a failure to send
//! is logged by the caller and never undoes the change that asked for the mail.

use std::{path::PathBuf, sync::Arc};

use async_trait::async_trait;

use crate::config::{Config, MailSenderKind};

/// One message to one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// What it is, e.g. `email_verification` or `signup_attempt` (an `X-Agentdesk-Kind`
    /// header, for filtering).
    pub kind: &'static str,
    /// The recipient (a normalised email address).
    pub to: String,
    /// Subject line (ASCII).
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// The one action link in the body, if any (also an `X-Agentdesk-Link` header).
    pub link: Option<String>,
}

/// Sends messages. One per node, shared.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Hands `message` on. Errors: the sender could not take it (logged by the caller).
    async fn send(&self, message: &Message) -> anyhow::Result<()>;
}

/// Logs messages (development).
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, m: &Message) -> anyhow::Result<()> {
        tracing::info!(
            kind = m.kind,
            to = %m.to,
            subject = %m.subject,
            link = m.link.as_deref().unwrap_or(""),
            "mail (mail_sender = \"log\": development only)"
        );
        Ok(())
    }
}

/// Writes messages as `.eml` files into a directory.
pub struct DirMailer {
    dir: PathBuf,
}

impl DirMailer {
    /// Writes into `dir` (created on first use, mode 0700).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The message as RFC 5322 text (CRLF line ends, ASCII headers, UTF-8 body).
    pub fn render(m: &Message, id: &uuid::Uuid) -> String {
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S +0000");
        let mut out = format!(
            "From: Agentdesk <no-reply@agentdesk.invalid>\r\nTo: <{}>\r\nSubject: {}\r\nDate: {date}\r\nMessage-ID: <{id}@agentdesk.invalid>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\nX-Agentdesk-Kind: {}\r\n",
            m.to, m.subject, m.kind
        );
        if let Some(link) = &m.link {
            out.push_str(&format!("X-Agentdesk-Link: {link}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&m.text.replace('\n', "\r\n"));
        out
    }
}

#[async_trait]
impl Mailer for DirMailer {
    async fn send(&self, m: &Message) -> anyhow::Result<()> {
        let id = uuid::Uuid::now_v7();
        let text = Self::render(m, &id);
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || write_private(&dir, &format!("{id}.eml"), &text))
            .await??;
        Ok(())
    }
}

#[cfg(unix)]
fn write_private(dir: &std::path::Path, name: &str, text: &str) -> std::io::Result<()> {
    use std::{
        fs::{DirBuilder, OpenOptions},
        io::Write,
        os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    };
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    // Written under a temporary name and renamed, so a reader never sees half a message.
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(tmp, dir.join(name))
}

#[cfg(not(unix))]
fn write_private(dir: &std::path::Path, name: &str, text: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), text)
}

/// The sender `config.mail_sender` names; `log` warns once that it is for development.
pub fn from_config(config: &Config) -> Arc<dyn Mailer> {
    match config.mail_sender {
        MailSenderKind::Log => {
            tracing::warn!(
                "mail_sender = \"log\": verification links are written to the log; configure a real sender in production"
            );
            Arc::new(LogMailer)
        }
        MailSenderKind::Dir => Arc::new(DirMailer::new(config.mail_dir())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc5322_with_the_link_header() {
        let m = Message {
            kind: "email_verification",
            to: "ada@example.com".into(),
            subject: "Confirm your email".into(),
            text: "Open:\nhttps://app/verify#token=ev_x\n".into(),
            link: Some("https://app/verify#token=ev_x".into()),
        };
        let text = DirMailer::render(&m, &uuid::Uuid::nil());
        assert!(text.contains("To: <ada@example.com>\r\n"));
        assert!(text.contains("X-Agentdesk-Kind: email_verification\r\n"));
        assert!(text.contains("X-Agentdesk-Link: https://app/verify#token=ev_x\r\n"));
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(!head.contains("\n\n"));
        assert_eq!(body, "Open:\r\nhttps://app/verify#token=ev_x\r\n");
    }
}
