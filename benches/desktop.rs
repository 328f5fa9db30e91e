//! Desktop command benchmark (not a test; `harness = false`): the built-in executor on a real
//! TigerVNC `Xvnc` at 1280×800, against the way process-based executors do the same thing on
//! the same desktop, measured in one run.
//!
//! * Agentdesk: the command's round trip as an agent runner sees it — `commands.create` sent
//!   → its `result` event read on the session's SSE stream — for `move`, `type` (20
//!   characters) and `screenshot` (full 1280×800 PNG of four terminals full of text, stored
//!   as an artifact).
//! * Process-based, each a separate process on the same desktop: `xdotool mousemove`,
//!   `xdotool type` (its default 12 ms delay between keys) and `import -window root` (a PNG
//!   capture with ImageMagick).
//!
//! Prints a Markdown table (p50/p95 in ms and the ratios the README quotes). Runs on SQLite
//! in-process with the integration tests' kit; needs `Xvnc`, `xdotool` and `import`. Usage:
//! `cargo bench --bench desktop` (or `benches/desktop.sh`). Gives up by itself after 240 s.

#[path = "../tests/common/mod.rs"]
mod common;
mod kit;

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, ensure};
use common::{Backend, Sse, TestApp};
use serde_json::{Value, json};

const MOVES: usize = 200;
const TYPES: usize = 40;
const SHOTS: usize = 40;
const WARMUP: usize = 5;
const TEXT: &str = "hello agentdesk 2026"; // 20 characters
const DEADLINE: Duration = Duration::from_secs(240);

fn main() {
    kit::main_with("desktop", DEADLINE, run);
}

/// p50 and p95 of `samples` (ms).
fn percentiles(samples: &mut [f64]) -> (f64, f64) {
    let [p50, p95] = kit::quantiles(samples, [0.50, 0.95]);
    (p50, p95)
}

struct Runner {
    app: TestApp,
    token: String,
    commands: String,
    sse: Sse,
}

impl Runner {
    /// One command's round trip: POST → its `result` event on the stream (ms).
    async fn round_trip(&mut self, kind: &str, args: Value) -> anyhow::Result<f64> {
        let started = Instant::now();
        let r = self
            .app
            .post(&self.commands)
            .token(&self.token)
            .json(json!({ "kind": kind, "args": args }))
            .expect(202)
            .await;
        let id = r.body["id"].clone();
        loop {
            let e = self
                .sse
                .next()
                .await
                .ok_or_else(|| anyhow!("the event stream ended"))?;
            let e = e.json();
            if e["kind"] == "result" && e["payload"]["command_id"] == id {
                ensure!(e["payload"]["status"] == "succeeded", "{kind} failed: {e}");
                return Ok(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }

    async fn measure(&mut self, kind: &str, args: Value, n: usize) -> anyhow::Result<(f64, f64)> {
        for _ in 0..WARMUP {
            self.round_trip(kind, args.clone()).await?;
        }
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            samples.push(self.round_trip(kind, args.clone()).await?);
        }
        Ok(percentiles(&mut samples))
    }
}

/// p50/p95 (ms) of running `program args` `n` times on `display` (X cookie in `xauthority`).
fn measure_process(
    (display, xauthority): (&str, &std::path::Path),
    program: &str,
    args: &[&str],
    n: usize,
) -> anyhow::Result<(f64, f64)> {
    let run = || -> anyhow::Result<f64> {
        let started = Instant::now();
        let status = std::process::Command::new(program)
            .args(args)
            .env("DISPLAY", display)
            .env("XAUTHORITY", xauthority)
            .stdout(std::process::Stdio::null())
            .status()
            .with_context(|| format!("running {program}"))?;
        ensure!(status.success(), "{program} {args:?}: {status}");
        Ok(started.elapsed().as_secs_f64() * 1000.0)
    };
    for _ in 0..WARMUP {
        run()?;
    }
    let mut samples = (0..n).map(|_| run()).collect::<anyhow::Result<Vec<_>>>()?;
    Ok(percentiles(&mut samples))
}

async fn run() -> anyhow::Result<String> {
    let mut data_dir = None;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        data_dir = Some(c.data_dir.clone());
        c.desktop_runtime = agentdesk::config::DesktopRuntimeKind::Process;
        c.desktop_display_min = 450;
        c.desktop_display_max = 459;
        c.desktop_port_min = 18450;
        common::set_rate_limits(c, 1_000_000);
    })
    .await
    .ok_or_else(|| anyhow!("no test app"))?;
    let user = app.user("bench").await;
    let org = app.org(&user, "Bench").await;
    let agent = app
        .post(&format!("/v1/orgs/{org}/agents"))
        .token(&user.token)
        .json(json!({
            "name": "Bench", "model": "m",
            "desktop": {"width": 1280, "height": 800},
            "capabilities": ["desktop:screen.capture", "desktop:input.pointer",
                "desktop:input.keyboard", "desktop:shell"]
        }))
        .expect(201)
        .await
        .body;
    let session = app
        .session(&user, &org, agent["id"].as_str().unwrap())
        .await;
    let running = app.wait_status(&user, &org, &session, "running").await;
    let display = running["desktop"]["display"]
        .as_str()
        .ok_or_else(|| anyhow!("no desktop: {running}"))?
        .to_owned();
    let last_seq = running["last_seq"].as_i64().unwrap_or(0);
    // The desktop's X cookie, as the runtime wrote it for Xvnc (`-auth`).
    let xauthority = data_dir
        .ok_or_else(|| anyhow!("no data dir"))?
        .join("desktops")
        .join(format!("{session}.xauth"));
    let on_desktop = (display.as_str(), xauthority.as_path());
    let sse = app
        .sse(
            &format!("/v1/orgs/{org}/sessions/{session}/events/stream?after_seq={last_seq}"),
            &user.token,
            &[],
        )
        .await
        .without_idle_limit();
    let mut runner = Runner {
        commands: format!("/v1/orgs/{org}/sessions/{session}/commands"),
        token: user.token.clone(),
        app,
        sse,
    };

    let mut x = 0u32;
    let moves = {
        for _ in 0..WARMUP {
            runner.round_trip("move", json!({"x": 10, "y": 10})).await?;
        }
        let mut samples = Vec::with_capacity(MOVES);
        for _ in 0..MOVES {
            x = (x + 37) % 1200;
            samples.push(runner.round_trip("move", json!({"x": x, "y": 400})).await?);
        }
        percentiles(&mut samples)
    };
    let types = runner
        .measure("type", json!({ "text": TEXT }), TYPES)
        .await?;
    // Something to look at: four terminals full of text (a blank screen compresses to nothing).
    runner
        .round_trip(
            "shell",
            json!({"command": "for g in 100x24+0+0 100x24+640+0 100x24+0+400 100x24+640+400; do \
                xterm -geometry $g -e sh -c 'ls -lR /usr/share/doc | head -2000; sleep 600' \
                >/dev/null 2>&1 & done; sleep 2"}),
        )
        .await?;
    let shots = runner.measure("screenshot", json!({}), SHOTS).await?;

    let xmove = measure_process(on_desktop, "xdotool", &["mousemove", "640", "400"], MOVES)?;
    let xtype = measure_process(on_desktop, "xdotool", &["type", TEXT], TYPES)?;
    let out = std::env::temp_dir().join(format!("agentdesk-bench-{}.png", std::process::id()));
    let out_s = out.display().to_string();
    let import = measure_process(on_desktop, "import", &["-window", "root", &out_s], SHOTS)?;
    let _ = std::fs::remove_file(&out);

    let row = |what: &str, ours: (f64, f64), theirs: (f64, f64), how: &str| {
        format!(
            "| {what} | {:.1} | {:.1} | {how} | {:.1} | {:.1} | {:.2} |",
            ours.0,
            ours.1,
            theirs.0,
            theirs.1,
            ours.1 / theirs.1
        )
    };
    Ok([
        "| command (1280×800) | Agentdesk p50 ms | p95 ms | process-based | p50 ms | p95 ms | p95 ratio |".to_owned(),
        "|---|--:|--:|---|--:|--:|--:|".to_owned(),
        row("`move`", moves, xmove, "`xdotool mousemove`"),
        row("`type` 20 chars", types, xtype, "`xdotool type`"),
        row("`screenshot` (PNG)", shots, import, "`import -window root`"),
        String::new(),
        format!(
            "Agentdesk: `commands.create` → `result` event on the SSE stream, SQLite, {MOVES}/{TYPES}/{SHOTS} samples after {WARMUP} warm-up; process-based: one process per call on the same desktop."
        ),
    ]
    .join("\n"))
}
