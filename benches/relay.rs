//! Desktop relay benchmark (not a test; `harness = false`): one real TigerVNC `Xvnc` at
//! 1280×800, reached three ways in one run by the same RFB client:
//!
//! * **direct**: TCP to Xvnc with VNC Authentication (the floor: no relay at all);
//! * **Agentdesk**: `desktop.create_ticket` → `desktop.connect` (WebSocket, security None;
//!   the relay authenticated upstream);
//! * **websockify** 0.13 (PyPI; the relay noVNC ships with) in front of the same Xvnc, VNC
//!   Authentication through it.
//!
//! Throughput: back-to-back full-screen FramebufferUpdates (a non-incremental
//! FramebufferUpdateRequest of the whole screen, Raw encoding, 4,096,000 bytes each) for
//! [`SECONDS`] s, in MB/s of RFB payload. Latency: round trips of a one-pixel
//! non-incremental request, p50/p99 in ms; the relay's added latency is its p50/p99 minus
//! direct's. Fan-out: [`VIEWERS`] viewers of one session through the relay at once, each
//! pulling full updates for [`SECONDS`] s; every connection must survive.
//!
//! Prints a Markdown table with the ratios the README quotes. Runs the server in-process on
//! SQLite with the integration tests' kit. Needs `Xvnc` and `websockify` (the path in
//! `AGENTDESK_WEBSOCKIFY`, else on `PATH`). Usage: `benches/relay.sh` (installs websockify
//! 0.13 in a venv, then `cargo bench --bench relay`). Gives up by itself after 300 s.

#[path = "../tests/common/mod.rs"]
mod common;
mod kit;

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use common::{Backend, TestApp};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

const W: u16 = 1280;
const H: u16 = 800;
/// Seconds of back-to-back full updates per throughput measurement.
const SECONDS: u64 = 5;
/// Round trips per latency measurement (after 50 warm-up ones).
const ROUND_TRIPS: usize = 1000;
/// Concurrent viewers of one session in the fan-out run.
const VIEWERS: usize = 50;
const DEADLINE: Duration = Duration::from_secs(300);

fn main() {
    kit::main_with("relay", DEADLINE, run);
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A byte stream to an RFB server: plain TCP, or binary WebSocket messages.
enum Transport {
    Tcp(TcpStream),
    Ws { ws: Box<Ws>, pending: bytes::Bytes },
}

impl Transport {
    async fn write(&mut self, data: &[u8]) -> anyhow::Result<()> {
        match self {
            Transport::Tcp(s) => s.write_all(data).await?,
            Transport::Ws { ws, .. } => ws.send(Message::Binary(data.to_vec().into())).await?,
        }
        Ok(())
    }

    /// Fills `out` (for a WebSocket, across message boundaries).
    async fn read_exact(&mut self, out: &mut [u8]) -> anyhow::Result<()> {
        match self {
            Transport::Tcp(s) => {
                s.read_exact(out).await?;
            }
            Transport::Ws { ws, pending } => {
                let mut filled = 0;
                while filled < out.len() {
                    if pending.is_empty() {
                        *pending = next_binary(ws).await?;
                    }
                    let n = pending.len().min(out.len() - filled);
                    out[filled..filled + n].copy_from_slice(&pending.split_to(n));
                    filled += n;
                }
            }
        }
        Ok(())
    }

    /// Reads and drops `n` bytes (pixel data).
    async fn skip(&mut self, mut n: usize) -> anyhow::Result<()> {
        match self {
            Transport::Tcp(s) => {
                let mut buf = vec![0u8; 64 * 1024];
                while n > 0 {
                    let k = n.min(buf.len());
                    s.read_exact(&mut buf[..k]).await?;
                    n -= k;
                }
            }
            Transport::Ws { ws, pending } => {
                while n > 0 {
                    if pending.is_empty() {
                        *pending = next_binary(ws).await?;
                    }
                    let k = pending.len().min(n);
                    let _ = pending.split_to(k);
                    n -= k;
                }
            }
        }
        Ok(())
    }

    async fn u8(&mut self) -> anyhow::Result<u8> {
        let mut b = [0u8; 1];
        self.read_exact(&mut b).await?;
        Ok(b[0])
    }

    async fn u32(&mut self) -> anyhow::Result<u32> {
        let mut b = [0u8; 4];
        self.read_exact(&mut b).await?;
        Ok(u32::from_be_bytes(b))
    }
}

async fn next_binary(ws: &mut Ws) -> anyhow::Result<bytes::Bytes> {
    loop {
        match ws.next().await.ok_or_else(|| anyhow!("socket closed"))?? {
            Message::Binary(b) => return Ok(b),
            Message::Ping(_) | Message::Pong(_) => {}
            other => bail!("unexpected message {other:?}"),
        }
    }
}

/// Opens an RFB session over `t` (RFC 6143 §7.1–§7.3): VNC Authentication with `password`,
/// or security type None without one; shared. Checks the geometry.
async fn rfb_open(mut t: Transport, password: Option<&str>) -> anyhow::Result<Transport> {
    let mut greeting = [0u8; 12];
    t.read_exact(&mut greeting).await?;
    ensure!(&greeting == b"RFB 003.008\n", "greeting {greeting:?}");
    t.write(b"RFB 003.008\n").await?;
    let n = t.u8().await?;
    let mut types = vec![0u8; usize::from(n)];
    t.read_exact(&mut types).await?;
    match password {
        Some(pw) => {
            ensure!(types.contains(&2), "no VNC auth offered: {types:?}");
            t.write(&[2]).await?;
            let mut challenge = [0u8; 16];
            t.read_exact(&mut challenge).await?;
            t.write(&agentdesk::runtime::vncauth::challenge_response(
                pw, &challenge,
            ))
            .await?;
        }
        None => {
            ensure!(types == [1], "expected only None, got {types:?}");
            t.write(&[1]).await?;
        }
    }
    ensure!(t.u32().await? == 0, "security failed");
    t.write(&[1]).await?;
    let mut init = [0u8; 24];
    t.read_exact(&mut init).await?;
    let name_len = u32::from_be_bytes(init[20..24].try_into()?) as usize;
    t.skip(name_len).await?;
    let (w, h) = (
        u16::from_be_bytes([init[0], init[1]]),
        u16::from_be_bytes([init[2], init[3]]),
    );
    ensure!((w, h) == (W, H), "desktop is {w}×{h}");
    ensure!(init[4] == 32, "expected 32 bits per pixel, got {}", init[4]);
    Ok(t)
}

/// A non-incremental FramebufferUpdateRequest of `w`×`h` at the origin, and its whole answer
/// (Raw rectangles); returns the payload bytes.
async fn update(t: &mut Transport, w: u16, h: u16) -> anyhow::Result<u64> {
    let mut req = vec![3, 0, 0, 0, 0, 0];
    req.extend_from_slice(&w.to_be_bytes());
    req.extend_from_slice(&h.to_be_bytes());
    t.write(&req).await?;
    let mut head = [0u8; 4];
    t.read_exact(&mut head).await?;
    ensure!(
        head[0] == 0,
        "expected a FramebufferUpdate, got type {}",
        head[0]
    );
    let rects = u16::from_be_bytes([head[2], head[3]]);
    let mut total = 4u64;
    for _ in 0..rects {
        let mut r = [0u8; 12];
        t.read_exact(&mut r).await?;
        let (rw, rh) = (
            u16::from_be_bytes([r[4], r[5]]) as usize,
            u16::from_be_bytes([r[6], r[7]]) as usize,
        );
        let encoding = i32::from_be_bytes(r[8..12].try_into()?);
        ensure!(encoding == 0, "expected Raw, got encoding {encoding}");
        t.skip(rw * rh * 4).await?;
        total += 12 + (rw * rh * 4) as u64;
    }
    Ok(total)
}

/// One throughput run: MB/s (10^6 bytes) of back-to-back full updates for [`SECONDS`], and
/// the CPU seconds per GB (10^9 bytes) that this process and the relay process `relay_pid`
/// (websockify, with its children) spent meanwhile.
struct Throughput {
    mb_s: f64,
    own_cpu_s_per_gb: f64,
    relay_cpu_s_per_gb: f64,
}

async fn throughput(t: &mut Transport, relay_pid: Option<u32>) -> anyhow::Result<Throughput> {
    update(t, W, H).await?;
    let cpu = || (cpu_s(std::process::id()), relay_pid.map_or(0.0, cpu_s));
    let (own0, relay0) = cpu();
    let started = Instant::now();
    let mut bytes = 0;
    while started.elapsed() < Duration::from_secs(SECONDS) {
        bytes += update(t, W, H).await?;
    }
    let (own1, relay1) = cpu();
    let gb = bytes as f64 / 1e9;
    Ok(Throughput {
        mb_s: bytes as f64 / started.elapsed().as_secs_f64() / 1e6,
        own_cpu_s_per_gb: (own1 - own0) / gb,
        relay_cpu_s_per_gb: (relay1 - relay0) / gb,
    })
}

/// `(ppid, utime + stime in s)` of process `pid` from `/proc/<pid>/stat` (USER_HZ = 100).
fn proc_stat(pid: &str) -> Option<(u32, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((
        fields.get(1)?.parse().ok()?,
        (ticks(11)? + ticks(12)?) / 100.0,
    ))
}

/// CPU seconds used so far by process `pid` and its live children.
fn cpu_s(pid: u32) -> f64 {
    let own = proc_stat(&pid.to_string()).map_or(0.0, |(_, s)| s);
    let children: f64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| proc_stat(e.file_name().to_str()?))
        .filter(|(ppid, _)| *ppid == pid)
        .map(|(_, s)| s)
        .sum();
    own + children
}

/// p50 and p99 (ms) of one-pixel update round trips.
async fn latency(t: &mut Transport) -> anyhow::Result<(f64, f64)> {
    for _ in 0..50 {
        update(t, 1, 1).await?;
    }
    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let started = Instant::now();
        update(t, 1, 1).await?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let [p50, p99] = kit::quantiles(&mut samples, [0.50, 0.99]);
    Ok((p50, p99))
}

/// A WebSocket to `url` offering `protocols`.
async fn ws_connect(url: &str, protocols: &str) -> anyhow::Result<Transport> {
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_str(protocols)?);
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(Transport::Ws {
        ws: Box::new(ws),
        pending: bytes::Bytes::new(),
    })
}

struct Relay<'a> {
    app: &'a TestApp,
    token: String,
    tickets: String,
}

impl Relay<'_> {
    /// A fresh relayed RFB session (a view ticket each time).
    async fn open(&self) -> anyhow::Result<Transport> {
        let t: Value = self
            .app
            .post(&self.tickets)
            .token(&self.token)
            .json(json!({ "mode": "view" }))
            .expect(201)
            .await
            .body;
        let protocols = format!("binary, agentdesk.ticket.{}", t["ticket"].as_str().unwrap());
        let t = ws_connect(t["ws_url"].as_str().unwrap(), &protocols).await?;
        rfb_open(t, None).await
    }
}

/// websockify in front of a desktop: its port; the process is killed when dropped.
struct Websockify {
    child: tokio::process::Child,
    port: u16,
}

async fn websockify(vnc_port: u16) -> anyhow::Result<Websockify> {
    let program = std::env::var("AGENTDESK_WEBSOCKIFY").unwrap_or_else(|_| "websockify".into());
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    drop(listener);
    let child = tokio::process::Command::new(&program)
        .arg(format!("127.0.0.1:{port}"))
        .arg(format!("127.0.0.1:{vnc_port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {program} (pip install 'websockify==0.13.*')"))?;
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(Websockify { child, port });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("websockify did not listen on {port}")
}

async fn run() -> anyhow::Result<String> {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.desktop_runtime = agentdesk::config::DesktopRuntimeKind::Process;
        c.desktop_display_min = 440;
        c.desktop_display_max = 449;
        c.desktop_port_min = 18440;
        c.desktop_viewers_per_session = (VIEWERS + 10) as u32;
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
            "desktop": {"width": W, "height": H},
            "capabilities": ["desktop:shell"]
        }))
        .expect(201)
        .await
        .body;
    let session = app
        .running_session(&user, &org, agent["id"].as_str().unwrap())
        .await;
    // The desktop's endpoint and full-access password, for the direct and websockify paths.
    let model = agentdesk::domain::sessions::find(
        &app.state().db,
        agentdesk::entity::SessionId(session.parse()?),
    )
    .await?
    .ok_or_else(|| anyhow!("no session"))?;
    let endpoint =
        agentdesk::domain::desktops::endpoint(&model).ok_or_else(|| anyhow!("no desktop"))?;
    let password = agentdesk::domain::desktops::passwords(&app.state().sealer, &model)?.control;
    let relay = Relay {
        app: &app,
        token: user.token.clone(),
        tickets: format!("/v1/orgs/{org}/sessions/{session}/desktop/tickets"),
    };
    let wsfy = websockify(endpoint.vnc_port).await?;

    let mut direct = rfb_open(
        Transport::Tcp(TcpStream::connect((endpoint.vnc_host.as_str(), endpoint.vnc_port)).await?),
        Some(&password),
    )
    .await?;
    let mut ours = relay.open().await?;
    let mut theirs = rfb_open(
        ws_connect(&format!("ws://127.0.0.1:{}/", wsfy.port), "binary").await?,
        Some(&password),
    )
    .await?;

    let tp = (
        throughput(&mut direct, None).await?,
        throughput(&mut ours, None).await?,
        throughput(&mut theirs, wsfy.child.id()).await?,
    );
    // CPU per GB of each relay: websockify's own processes; ours, what this process (server
    // and client) spent on the relayed run beyond what its client alone spent on the
    // websockify run (the same WebSocket client code).
    let cpu = (
        tp.1.own_cpu_s_per_gb - tp.2.own_cpu_s_per_gb,
        tp.2.relay_cpu_s_per_gb,
    );
    let lat = (
        latency(&mut direct).await?,
        latency(&mut ours).await?,
        latency(&mut theirs).await?,
    );
    drop((direct, ours, theirs));

    // Fan-out: VIEWERS relayed viewers pulling full updates at once.
    let mut viewers = Vec::with_capacity(VIEWERS);
    for _ in 0..VIEWERS {
        viewers.push(relay.open().await?);
    }
    let started = Instant::now();
    let runs = viewers.into_iter().map(|mut t| {
        tokio::spawn(async move {
            let mut bytes = 0;
            while started.elapsed() < Duration::from_secs(SECONDS) {
                bytes += update(&mut t, W, H).await?;
            }
            anyhow::Ok(bytes)
        })
    });
    let results = futures_util::future::join_all(runs).await;
    let elapsed = started.elapsed().as_secs_f64();
    let dropped = results.iter().filter(|r| !matches!(r, Ok(Ok(_)))).count();
    let fan_bytes: u64 = results
        .iter()
        .filter_map(|r| r.as_ref().ok().and_then(|r| r.as_ref().ok()))
        .sum();
    let rss_kb = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);

    let lat_row = |name: &str, (p50, p99): (f64, f64)| {
        format!(
            "| {name} | {p50:.3} | {p99:.3} | {:+.3} | {:+.3} |",
            p50 - lat.0.0,
            p99 - lat.0.1
        )
    };
    Ok([
        format!("| path (Xvnc {W}×{H}, Raw full updates) | throughput MB/s | ÷ websockify | ÷ direct |"),
        "|---|--:|--:|--:|".to_owned(),
        format!("| direct TCP (no relay) | {:.0} | {:.2} | 1.00 |", tp.0.mb_s, tp.0.mb_s / tp.2.mb_s),
        format!(
            "| **Agentdesk relay** (WebSocket) | **{:.0}** | **{:.2}** | {:.2} |",
            tp.1.mb_s,
            tp.1.mb_s / tp.2.mb_s,
            tp.1.mb_s / tp.0.mb_s
        ),
        format!(
            "| websockify 0.13 (WebSocket) | {:.0} | 1.00 | {:.2} |",
            tp.2.mb_s,
            tp.2.mb_s / tp.0.mb_s
        ),
        String::new(),
        format!(
            "Relay CPU per GB relayed: Agentdesk {:.2} s, websockify {:.2} s (websockify ÷ Agentdesk = {:.1}).",
            cpu.0,
            cpu.1,
            cpu.1 / cpu.0
        ),
        String::new(),
        "| path (1-pixel update round trip) | p50 ms | p99 ms | added p50 ms | added p99 ms |".to_owned(),
        "|---|--:|--:|--:|--:|".to_owned(),
        lat_row("direct TCP", lat.0),
        lat_row("**Agentdesk relay**", lat.1),
        lat_row("websockify 0.13", lat.2),
        String::new(),
        format!(
            "Fan-out: {VIEWERS} relayed viewers of one session pulling full updates for {SECONDS} s: \
             {} of {VIEWERS} connections dropped, {:.0} MB/s in all; peak RSS of the bench process \
             (server and clients) {} MiB.",
            dropped,
            fan_bytes as f64 / elapsed / 1e6,
            rss_kb / 1024
        ),
        format!(
            "Throughput over {SECONDS} s per path; latency over {ROUND_TRIPS} round trips after 50 warm-up, \
             one connection at a time, SQLite, in one run."
        ),
    ]
    .join("\n"))
}
