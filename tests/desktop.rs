//! The built-in executor on a real TigerVNC desktop, through the API only: every command
//! kind, observed on the desktop itself (xdotool, xclip, an xterm writing what it receives,
//! the screenshot's pixels), not on our own bookkeeping. Needs `Xvnc`, `xdotool`, `xclip`,
//! `xterm` and `xsetroot` (CI installs them).

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    backend_tests,
    common::{Backend, TestApp, User},
};

backend_tests!(builtin_executor_drives_the_desktop);

/// Width and height of the test desktop (pixels).
const W: u32 = 1024;
const H: u32 = 768;

/// A running session with a desktop, driven through the API as `user` (shared with the
/// relay tests).
pub(crate) struct Desk<'a> {
    pub(crate) app: &'a TestApp,
    pub(crate) user: User,
    pub(crate) org: String,
    pub(crate) session: String,
}

impl Desk<'_> {
    pub(crate) fn commands(&self) -> String {
        format!("/v1/orgs/{}/sessions/{}/commands", self.org, self.session)
    }

    /// The session's events (`events.list`, 200 at most), of `kind` when given.
    pub(crate) async fn events(&self, kind: Option<&str>) -> Vec<Value> {
        let filter = kind.map(|k| format!("&kind={k}")).unwrap_or_default();
        let page = self
            .app
            .get(&format!(
                "/v1/orgs/{}/sessions/{}/events?limit=200{filter}",
                self.org, self.session
            ))
            .token(&self.user.token)
            .expect(200)
            .await
            .body;
        page["items"].as_array().unwrap().clone()
    }

    /// Sends a command; returns the 202 body, or the whole response for other statuses.
    pub(crate) async fn send(&self, kind: &str, args: Value, status: u16) -> Value {
        self.app
            .post(&self.commands())
            .token(&self.user.token)
            .json(json!({ "kind": kind, "args": args }))
            .expect(status)
            .await
            .body
    }

    /// Sends a command and waits until it is finished; returns it.
    pub(crate) async fn run(&self, kind: &str, args: Value) -> Value {
        let c = self.send(kind, args, 202).await;
        let id = c["id"].as_str().unwrap().to_owned();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let c = self
                .app
                .get(&format!("{}/{id}", self.commands()))
                .token(&self.user.token)
                .expect(200)
                .await
                .body;
            if c["status"] != "queued" && c["status"] != "dispatched" {
                return c;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never finished: {c}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// How many commands the session has.
    pub(crate) async fn count_commands(&self) -> usize {
        self.app
            .get(&format!("{}?limit=200", self.commands()))
            .token(&self.user.token)
            .expect(200)
            .await
            .body["items"]
            .as_array()
            .map_or(0, Vec::len)
    }

    /// Runs `command` with `shell`; expects success; returns its stdout.
    pub(crate) async fn sh(&self, command: &str) -> String {
        let c = self.run("shell", json!({ "command": command })).await;
        assert_eq!(c["status"], "succeeded", "{command}: {c}");
        assert_eq!(c["result"]["exit_code"], 0, "{command}: {c}");
        c["result"]["stdout"].as_str().unwrap().to_owned()
    }

    /// Polls `check` (a shell command) until it prints `want`.
    pub(crate) async fn sh_until(&self, check: &str, want: &str) -> String {
        let mut last = Value::Null;
        for _ in 0..100 {
            last = self.run("shell", json!({ "command": check })).await;
            if last["result"]["stdout"] == want {
                return want.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("`{check}` never printed {want:?}; last: {last}");
    }
}

async fn builtin_executor_drives_the_desktop(backend: Backend) {
    let base = if backend == Backend::Sqlite { 360 } else { 380 };
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.desktop_runtime = agentdesk::config::DesktopRuntimeKind::Process;
        c.desktop_display_min = base;
        c.desktop_display_max = base + 9;
        c.desktop_port_min = 17500 + base as u16;
        // A data directory closed to everyone else, as a real one may be: the desktop users
        // must not need it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&c.data_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        // A "browser" that writes down the URL it was given (its one argument, `$0` here).
        c.desktop_open_url_command = "sh -c 'printf %s \"$0\" > opened.txt'".into();
    })
    .await
    else {
        return;
    };
    let user = app.user("runner").await;
    let org = app.org(&user, "Desks").await;
    let agent = app
        .post(&format!("/v1/orgs/{org}/agents"))
        .token(&user.token)
        .json(json!({
            "name": "Driver", "model": "m",
            "desktop": {"width": W, "height": H},
            "capabilities": ["desktop:screen.capture", "desktop:input.pointer",
                "desktop:input.keyboard", "desktop:clipboard", "desktop:shell",
                "browser:navigate"]
        }))
        .expect(201)
        .await
        .body;
    assert_eq!(agent["executor"], "auto");
    let session = app
        .session(&user, &org, agent["id"].as_str().unwrap())
        .await;
    let running = app.wait_status(&user, &org, &session, "running").await;
    assert_eq!(running["executor"], "builtin", "{running}");
    // The desktop's passwords never leave the server.
    assert!(running.get("desktop_secret").is_none(), "{running}");
    assert!(!running.to_string().contains("v1."), "{running}");
    let desktop = running["desktop"].clone();
    let desk = Desk {
        app: &app,
        user,
        org,
        session,
    };

    // The desktop offers VNC Authentication only (RFC 6143 §7.1.2: one type, 2).
    let port = desktop["vnc_port"].as_u64().unwrap() as u16;
    assert_eq!(security_types(port).await, vec![2u8]);

    // An external executor cannot claim the built-in executor's work.
    let r = app
        .post(&format!("{}/claim", desk.commands()))
        .token(&desk.user.token)
        .expect(409)
        .await;
    assert_eq!(r.body["code"], "executor_builtin");

    // Bad input is refused before anything is queued.
    let r = desk.send("move", json!({"x": W, "y": 10}), 422).await;
    assert_eq!(r["errors"][0]["field"], "args.x", "{r}");
    let r = desk
        .send("key", json!({"keys": "ctrl+hyperspace"}), 422)
        .await;
    assert_eq!(r["errors"][0]["field"], "args.keys", "{r}");

    // `shell` runs as the desktop's own unprivileged user (uid 900000 + display), with the
    // desktop's DISPLAY; an X client without the desktop's cookie is refused.
    let display_no: u32 = desktop["display"].as_str().unwrap()[1..].parse().unwrap();
    let uid = desk.sh("id -u").await;
    assert_eq!(
        uid.trim(),
        (900_000 + display_no).to_string(),
        "shell ran as {uid}"
    );
    assert_eq!(desk.sh("echo $DISPLAY").await.trim(), desktop["display"]);
    let c = desk
        .run(
            "shell",
            json!({"command": "XAUTHORITY=/dev/null xdotool getmouselocation"}),
        )
        .await;
    assert_ne!(
        c["result"]["exit_code"], 0,
        "an X client without the cookie got in: {c}"
    );

    // move / click: the X server's pointer is where we put it.
    let c = desk.run("move", json!({"x": 200, "y": 300})).await;
    assert_eq!(c["status"], "succeeded", "{c}");
    assert_eq!(c["result"], json!({"kind": "move"}));
    let at = desk.sh("xdotool getmouselocation --shell").await;
    assert!(at.contains("X=200\nY=300\n"), "{at}");
    let c = desk
        .run(
            "click",
            json!({"x": 512, "y": 400, "button": "left", "count": 2}),
        )
        .await;
    assert_eq!(c["status"], "succeeded", "{c}");
    let at = desk.sh("xdotool getmouselocation --shell").await;
    assert!(at.contains("X=512\nY=400\n"), "{at}");
    let c = desk
        .run("scroll", json!({"x": 100, "y": 100, "dx": 0, "dy": 3}))
        .await;
    assert_eq!(c["status"], "succeeded", "{c}");

    // clipboard_set with text beyond Latin-1: what an X client reads back.
    let text = "Grüße 你好 — Καλημέρα";
    let c = desk.run("clipboard_set", json!({ "text": text })).await;
    assert_eq!(c["status"], "succeeded", "{c}");
    let got = desk.sh_until("xclip -o -selection clipboard", text).await;
    assert_eq!(got, text);

    // type + key into a real xterm that writes its first input line to a file.
    desk.sh(
        "xterm -u8 -geometry 80x10+0+0 -e sh -c 'stty -echo; head -n1 > typed.txt' >/dev/null 2>&1 &",
    )
    .await;
    desk.sh("xdotool search --sync --onlyvisible --class xterm | head -1 | xargs xdotool windowfocus --sync")
        .await;
    // `ctrl+u` erases what was typed so far (the tty's kill character): only the rest lands.
    let c = desk.run("type", json!({"text": "discard me"})).await;
    assert_eq!(c["status"], "succeeded", "{c}");
    let c = desk.run("key", json!({"keys": "ctrl+u"})).await;
    assert_eq!(c["status"], "succeeded", "{c}");
    let typed = "Grüße, Καλημέρα, 你好";
    assert_eq!(
        desk.run("type", json!({ "text": typed })).await["status"],
        "succeeded"
    );
    assert_eq!(
        desk.run("key", json!({"keys": "Return"})).await["status"],
        "succeeded"
    );
    let got = desk
        .sh_until("cat typed.txt 2>/dev/null", &format!("{typed}\n"))
        .await;
    assert_eq!(got, format!("{typed}\n"));

    // screenshot: the desktop's geometry and its (red) pixels, stored as an artifact.
    desk.sh("xsetroot -solid '#ff0000'").await;
    let c = desk.run("screenshot", json!({})).await;
    assert_eq!(c["status"], "succeeded", "{c}");
    let out = &c["result"];
    assert_eq!(out["kind"], "screenshot");
    assert_eq!(
        (out["width"].as_u64(), out["height"].as_u64()),
        (Some(W.into()), Some(H.into()))
    );
    assert_eq!(out["scale"], 1.0);
    assert_eq!(out["media_type"], "image/png");
    let png = fetch_artifact(&desk, out["artifact_id"].as_str().unwrap()).await;
    assert_eq!(png.len() as u64, out["bytes"].as_u64().unwrap());
    let img = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
        .unwrap()
        .to_rgb8();
    assert_eq!(img.dimensions(), (W, H));
    // The root window is red where no window covers it (the xterm sits at the top left).
    assert_eq!(img.get_pixel(W - 5, H - 5).0, [255, 0, 0]);
    // A `screenshot` event references the artifact; no image bytes in the log.
    let shot = desk
        .events(Some("screenshot"))
        .await
        .into_iter()
        .next()
        .expect("a screenshot event");
    assert_eq!(shot["payload"]["artifact_id"], out["artifact_id"]);

    // A downscaled screenshot has the asked size and says its scale.
    let c = desk.run("screenshot", json!({"max_width": W / 2})).await;
    assert_eq!(c["result"]["width"], W / 2, "{c}");
    assert_eq!(c["result"]["height"], H / 2, "{c}");
    assert_eq!(c["result"]["scale"], 0.5);

    // open_url hands the URL to the browser command as one argument, never shell-parsed.
    let url = "https://example.com/a?b=1&c=$(touch${IFS}pwned)`touch${IFS}pwned2`";
    let c = desk.run("open_url", json!({ "url": url })).await;
    assert_eq!(c["status"], "succeeded", "{c}");
    assert_eq!(c["result"], json!({"kind": "open_url"}));
    desk.sh_until("cat opened.txt 2>/dev/null", url).await;
    assert!(
        !desk.sh("ls").await.contains("pwned"),
        "the URL was shell-parsed"
    );

    // Capabilities are checked before anything reaches the desktop: with `desktop:shell`
    // taken away, a shell command is refused, nothing is queued and nothing runs.
    let agent_url = format!(
        "/v1/orgs/{}/agents/{}",
        desk.org,
        agent["id"].as_str().unwrap()
    );
    let current = app
        .get(&agent_url)
        .token(&desk.user.token)
        .expect(200)
        .await;
    let etag = current.header("etag").unwrap().to_owned();
    let fewer = json!([
        "desktop:screen.capture",
        "desktop:input.pointer",
        "desktop:input.keyboard",
        "desktop:clipboard",
        "browser:navigate"
    ]);
    let updated = app
        .patch(&agent_url)
        .token(&desk.user.token)
        .header("if-match", &etag)
        .json(json!({ "capabilities": fewer }))
        .expect(200)
        .await;
    let before = desk.count_commands().await;
    let r = desk
        .send("shell", json!({"command": "touch denied.txt"}), 403)
        .await;
    assert_eq!(r["code"], "capability_denied", "{r}");
    let after = desk.count_commands().await;
    assert_eq!(before, after, "a denied command was queued");
    app.patch(&agent_url)
        .token(&desk.user.token)
        .header("if-match", updated.header("etag").unwrap())
        .json(json!({ "capabilities": agent["capabilities"] }))
        .expect(200)
        .await;
    assert!(
        !desk.sh("ls").await.contains("denied.txt"),
        "a denied command ran"
    );

    // shell limits: killed at its timeout; long output cut and flagged.
    let started = std::time::Instant::now();
    let c = desk
        .run(
            "shell",
            json!({"command": "echo started; sleep 20", "timeout_s": 1}),
        )
        .await;
    assert_eq!(c["status"], "failed", "{c}");
    assert_eq!(c["error_code"], "timeout", "{c}");
    assert_eq!(c["result"]["stdout"], "started\n");
    assert!(started.elapsed() < Duration::from_secs(10));
    // Killed, so no exit status: left out (the spec's `exit_code` is optional, not nullable),
    // in the command and in its `result` event alike.
    assert!(c["result"].get("exit_code").is_none(), "{c}");
    let result = desk
        .events(Some("result"))
        .await
        .into_iter()
        .find(|e| e["payload"]["command_id"] == c["id"])
        .expect("the killed command's result event");
    assert_eq!(
        result["payload"]["result"]["stdout"], "started\n",
        "{result}"
    );
    assert!(
        result["payload"]["result"].get("exit_code").is_none(),
        "{result}"
    );
    let c = desk
        .run(
            "shell",
            json!({"command": "head -c 100000 /dev/zero | tr '\\0' a"}),
        )
        .await;
    assert_eq!(c["status"], "succeeded", "{c}");
    assert_eq!(c["result"]["truncated"], true);
    assert_eq!(c["result"]["stdout"].as_str().unwrap().len(), 64 * 1024);

    // The desktop dies: the session fails and says why.
    let display = desktop["display"].as_str().unwrap().to_owned();
    let killed = std::process::Command::new("pkill")
        .args(["-KILL", "-f", &format!("Xvnc {display} ")])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = app
            .get(&format!("/v1/orgs/{}/sessions/{}", desk.org, desk.session))
            .token(&desk.user.token)
            .expect(200)
            .await
            .body;
        if s["status"] == "failed" {
            let reason = s["status_reason"].as_str().unwrap();
            assert!(reason.starts_with("desktop lost"), "{reason}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never failed: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The security types a desktop offers to an RFB 3.8 client.
async fn security_types(port: u16) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut version = [0u8; 12];
    conn.read_exact(&mut version).await.unwrap();
    conn.write_all(b"RFB 003.008\n").await.unwrap();
    let n = conn.read_u8().await.unwrap();
    let mut types = vec![0u8; n as usize];
    conn.read_exact(&mut types).await.unwrap();
    types
}

async fn fetch_artifact(desk: &Desk<'_>, id: &str) -> Vec<u8> {
    let r = reqwest::Client::new()
        .get(desk.app.url(&format!(
            "/v1/orgs/{}/sessions/{}/artifacts/{id}",
            desk.org, desk.session
        )))
        .bearer_auth(&desk.user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    r.bytes().await.unwrap().to_vec()
}
