//! Reading the mail a test server sent: the test config uses the `dir` mail sender, which
//! writes each message as an RFC 5322 `.eml` file into the server's mail directory.

use std::path::Path;

/// One message as written by the `dir` sender.
#[derive(Clone, Debug)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    /// `X-Agentdesk-Kind`: `email_verification`, `signup_attempt`, …
    pub kind: String,
    /// `X-Agentdesk-Link`, if the message has one.
    pub link: Option<String>,
    pub body: String,
}

impl Mail {
    /// The `token` in the link's fragment (`…#token=<token>`).
    pub fn token(&self) -> Option<String> {
        let link = self.link.as_deref()?;
        Some(link.split_once("#token=")?.1.to_owned())
    }
}

fn parse(text: &str) -> Mail {
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("headers end with an empty line");
    let header = |name: &str| {
        head.split("\r\n")
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(str::to_owned)
    };
    Mail {
        to: header("To")
            .expect("To")
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned(),
        subject: header("Subject").expect("Subject"),
        kind: header("X-Agentdesk-Kind").expect("X-Agentdesk-Kind"),
        link: header("X-Agentdesk-Link"),
        body: body.replace("\r\n", "\n"),
    }
}

/// Every message in `dir` to `to`, oldest first (file names are UUIDv7s).
pub fn mails_to(dir: &Path, to: &str) -> Vec<Mail> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<_> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| parse(&std::fs::read_to_string(p).unwrap()))
        .filter(|m| m.to == to)
        .collect()
}
