//! `desktop::RfbLink` against a real TigerVNC `Xvnc` (VncAuth only), checked from the X side
//! with `xdotool`, `xclip` and an `xterm`: pointer, typing (Unicode), clipboard, screenshots,
//! a wrong password, reconnecting through a proxy we cut, and the loss of the desktop.
//!
//! Each test starts its own `Xvnc` on a free display in 600–650 with an `-rfbauth` file
//! written by `rfb::auth::rfbauth_file`; the server is killed when the test ends. Skipped
//! (with a note) only when `Xvnc` is not installed; CI installs it.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use agentdesk::desktop::{
    Button, DesktopLink, LinkError, LinkTarget, Reconnect, RfbLink, actions,
    rfb::auth::{obfuscated_password, rfbauth_file},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    process::{Child, Command},
    task::JoinHandle,
};

const XVNC: &str = "/usr/bin/Xvnc";
const PASSWORD: &str = "t3st-pw!";
const VIEW_PASSWORD: &str = "view-pw1";
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 800;
/// The next display to try; tests run in parallel, each takes its own.
static NEXT_DISPLAY: AtomicU32 = AtomicU32::new(600);
const LAST_DISPLAY: u32 = 650;

/// One `Xvnc` for one test.
struct Desktop {
    child: Child,
    display: u32,
    port: u16,
    dir: tempfile::TempDir,
}

impl Desktop {
    /// Starts `Xvnc` on the next free display, or `None` (with a note) when it is absent.
    async fn start() -> Option<Self> {
        if !Path::new(XVNC).exists() {
            eprintln!("note: {XVNC} is not installed; skipping the real-desktop test");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let auth = dir.path().join("passwd");
        std::fs::write(&auth, rfbauth_file(PASSWORD, Some(VIEW_PASSWORD))).unwrap();
        loop {
            let display = NEXT_DISPLAY.fetch_add(1, Ordering::SeqCst);
            assert!(display <= LAST_DISPLAY, "no free X display in 600..=650");
            clear_stale_display(display);
            if Path::new(&format!("/tmp/.X{display}-lock")).exists()
                || Path::new(&format!("/tmp/.X11-unix/X{display}")).exists()
            {
                continue;
            }
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("xvnc.log")).unwrap();
            let mut child = Command::new(XVNC)
                .arg(format!(":{display}"))
                .args(["-geometry", &format!("{WIDTH}x{HEIGHT}"), "-depth", "24"])
                .args(["-rfbport", &port.to_string(), "-localhost"])
                .args(["-SecurityTypes", "VncAuth", "-rfbauth"])
                .arg(&auth)
                .args(["-nolisten", "tcp"])
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log))
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            if wait_for_greeting(&mut child, port).await {
                return Some(Self {
                    child,
                    display,
                    port,
                    dir,
                });
            }
            let _ = child.kill().await;
        }
    }

    fn target(&self, password: &str) -> LinkTarget {
        LinkTarget {
            host: "127.0.0.1".into(),
            port: self.port,
            password: password.into(),
        }
    }

    /// Runs an X client on this display (UTF-8 locale) and returns its stdout.
    async fn x(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .args(args)
            .env("DISPLAY", format!(":{}", self.display))
            .env("LANG", "C.UTF-8")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .await
            .unwrap_or_else(|e| panic!("running {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Removes display `n`'s X lock and socket when the server named in the lock is gone (a
/// SIGKILLed Xvnc leaves both behind, and CI reuses the machine).
fn clear_stale_display(n: u32) {
    let lock = format!("/tmp/.X{n}-lock");
    let Ok(text) = std::fs::read_to_string(&lock) else {
        return;
    };
    let alive = text
        .trim()
        .parse::<u32>()
        .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
    if !alive {
        let _ = std::fs::remove_file(&lock);
        let _ = std::fs::remove_file(format!("/tmp/.X11-unix/X{n}"));
    }
}

impl Drop for Desktop {
    /// Kills Xvnc and removes the lock and socket it cannot remove itself after SIGKILL.
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_file(format!("/tmp/.X{}-lock", self.display));
        let _ = std::fs::remove_file(format!("/tmp/.X11-unix/X{}", self.display));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `Xvnc` greets on `port` within 10 s (false when it exited: display taken).
async fn wait_for_greeting(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await {
            let mut greeting = [0u8; 12];
            if stream.read_exact(&mut greeting).await.is_ok() && greeting.starts_with(b"RFB 003.") {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Polls `check` every 50 ms for up to 10 s.
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn rfbauth_files_match_vncpasswd() {
    let Ok(mut child) = Command::new("vncpasswd")
        .arg("-f")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    else {
        eprintln!("note: vncpasswd is not installed; skipping");
        return;
    };
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.stdout, obfuscated_password(PASSWORD));
    assert_eq!(rfbauth_file(PASSWORD, None), out.stdout);
}

#[tokio::test]
async fn only_vnc_auth_is_offered_and_a_wrong_password_is_refused() {
    let Some(desktop) = Desktop::start().await else {
        return;
    };
    let mut raw = TcpStream::connect(("127.0.0.1", desktop.port))
        .await
        .unwrap();
    let mut greeting = [0u8; 12];
    raw.read_exact(&mut greeting).await.unwrap();
    raw.write_all(b"RFB 003.008\n").await.unwrap();
    let count = raw.read_u8().await.unwrap();
    let mut types = vec![0u8; usize::from(count)];
    raw.read_exact(&mut types).await.unwrap();
    assert_eq!(types, [2], "security types offered");
    drop(raw);

    let err = RfbLink::connect(desktop.target("wrong-pw"))
        .await
        .unwrap_err();
    assert!(matches!(err, LinkError::AuthFailed(_)), "{err:?}");
    let link = RfbLink::connect(desktop.target(PASSWORD)).await.unwrap();
    assert_eq!(link.size(), (WIDTH, HEIGHT));
}

#[tokio::test]
async fn pointer_and_clicks_reach_the_desktop() {
    let Some(desktop) = Desktop::start().await else {
        return;
    };
    let link = RfbLink::connect(desktop.target(PASSWORD)).await.unwrap();
    actions::move_to(&link, 200, 300).await.unwrap();
    let location = eventually("the pointer at 200,300", async || {
        let out = desktop.x("xdotool", &["getmouselocation"]).await;
        out.starts_with("x:200 y:300 ").then_some(out)
    })
    .await;
    assert!(location.contains("screen:0"), "{location}");
    actions::click(&link, 640, 400, Button::Left, 2)
        .await
        .unwrap();
    actions::scroll(&link, 640, 400, 0, 2).await.unwrap();
    eventually("the pointer at 640,400", async || {
        let out = desktop.x("xdotool", &["getmouselocation"]).await;
        out.starts_with("x:640 y:400 ").then_some(())
    })
    .await;
}

#[tokio::test]
async fn unicode_text_is_typed_into_an_xterm() {
    let Some(desktop) = Desktop::start().await else {
        return;
    };
    let out_file = desktop.path("typed.txt");
    let script = format!("head -n1 > '{}'", out_file.display());
    let mut xterm = Command::new("xterm")
        .args(["-u8", "-geometry", "80x10+0+0", "-e", "sh", "-c", &script])
        .env("DISPLAY", format!(":{}", desktop.display))
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let window = desktop
        .x(
            "xdotool",
            &["search", "--sync", "--onlyvisible", "--class", "xterm"],
        )
        .await;
    let window = window.lines().next().unwrap().to_owned();
    desktop
        .x("xdotool", &["windowfocus", "--sync", &window])
        .await;

    let link = RfbLink::connect(desktop.target(PASSWORD)).await.unwrap();
    // No window manager: keep the pointer over the xterm too (focus follows it otherwise).
    actions::move_to(&link, 20, 20).await.unwrap();
    let text = "Grüße, Καλημέρα, 你好";
    actions::type_text(&link, text).await.unwrap();
    actions::type_text(&link, "\n").await.unwrap();
    let typed = eventually("the xterm to write the line", async || {
        let typed = std::fs::read_to_string(&out_file).ok()?;
        typed.ends_with('\n').then_some(typed)
    })
    .await;
    assert_eq!(typed, format!("{text}\n"));
    let _ = xterm.wait().await;
}

#[tokio::test]
async fn the_clipboard_reaches_x_applications() {
    let Some(desktop) = Desktop::start().await else {
        return;
    };
    let link = RfbLink::connect(desktop.target(PASSWORD)).await.unwrap();
    let text = "Grüße 你好";
    actions::set_clipboard(&link, text).await.unwrap();
    // TigerVNC owns CLIPBOARD and, with SetPrimary (default on), PRIMARY; it asks us for
    // the text (Extended Clipboard `request`) when xclip reads the selection.
    for selection in ["clipboard", "primary"] {
        let got = desktop.x("xclip", &["-o", "-selection", selection]).await;
        assert_eq!(got, text, "selection {selection}");
    }
    // A second text replaces the first.
    actions::set_clipboard(&link, "second\nline").await.unwrap();
    let got = desktop.x("xclip", &["-o", "-selection", "clipboard"]).await;
    assert_eq!(got, "second\nline");
}

#[tokio::test]
async fn screenshots_show_the_desktop() {
    let Some(desktop) = Desktop::start().await else {
        return;
    };
    let link = RfbLink::connect(desktop.target(PASSWORD)).await.unwrap();
    desktop.x("xsetroot", &["-solid", "#ff0000"]).await;
    // The server draws the cursor into the framebuffer: park it in the corner.
    actions::move_to(&link, (WIDTH - 1) as u16, (HEIGHT - 1) as u16)
        .await
        .unwrap();

    let started = Instant::now();
    let png = actions::screenshot(&link, None, None).await.unwrap();
    eprintln!(
        "screenshot {}x{}: {} bytes in {:?} (capture + PNG)",
        png.width,
        png.height,
        png.bytes.len(),
        started.elapsed()
    );
    assert_eq!((png.width, png.height, png.scale), (WIDTH, HEIGHT, 1.0));
    let image = image::load_from_memory(&png.bytes).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (WIDTH, HEIGHT));
    let not_red = image
        .enumerate_pixels()
        .filter(|(x, y, p)| p.0 != [255, 0, 0] && !(*x >= WIDTH - 32 && *y >= HEIGHT - 32))
        .count();
    assert_eq!(
        not_red, 0,
        "pixels other than red outside the cursor's corner"
    );

    let small = actions::screenshot(&link, Some(640), None).await.unwrap();
    assert_eq!((small.width, small.height, small.scale), (640, 400, 0.5));
    let image = image::load_from_memory(&small.bytes).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (640, 400));
    assert_eq!(image.get_pixel(320, 200).0, [255, 0, 0]);
    assert_eq!(image.get_pixel(0, 0).0, [255, 0, 0]);
}

/// A TCP proxy to `port` whose connections a test can cut.
struct Proxy {
    port: u16,
    connections: std::sync::Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let connections = std::sync::Arc::clone(&connections);
            async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        return;
                    };
                    let relay = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    connections.lock().unwrap().push(relay);
                }
            }
        });
        Self {
            port,
            connections,
            accept,
        }
    }

    /// Drops every relayed connection (both sides see the connection reset or closed).
    fn cut(&self) -> usize {
        let relays: Vec<_> = self.connections.lock().unwrap().drain(..).collect();
        for relay in &relays {
            relay.abort();
        }
        relays.len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

#[tokio::test]
async fn the_link_reconnects_after_a_cut_and_reports_a_dead_desktop() {
    let Some(mut desktop) = Desktop::start().await else {
        return;
    };
    let proxy = Proxy::start(desktop.port).await;
    let target = LinkTarget {
        port: proxy.port,
        ..desktop.target(PASSWORD)
    };
    let policy = Reconnect {
        give_up: Duration::from_secs(2),
        ..Reconnect::default()
    };
    let link = RfbLink::connect_with(target, policy).await.unwrap();
    actions::set_clipboard(&link, "before the cut")
        .await
        .unwrap();
    assert_eq!(proxy.cut(), 1);
    // Once the link dials again it has seen the loss: calls from now on wait for the new
    // connection. (An event written in the instant before a drop is noticed is lost, as
    // with any TCP client.)
    eventually("the link to dial again", async || {
        (proxy.connections.lock().unwrap().len() == 1).then_some(())
    })
    .await;

    // The next calls wait for the new connection and work.
    actions::move_to(&link, 321, 123).await.unwrap();
    eventually("the pointer at 321,123", async || {
        let out = desktop.x("xdotool", &["getmouselocation"]).await;
        out.starts_with("x:321 y:123 ").then_some(())
    })
    .await;
    let frame = link.capture().await.unwrap();
    assert_eq!((frame.width, frame.height), (WIDTH, HEIGHT));
    // The clipboard was announced again on the new connection.
    let got = desktop.x("xclip", &["-o", "-selection", "clipboard"]).await;
    assert_eq!(got, "before the cut");

    // The desktop dies: the link gives up after its policy and says so.
    desktop.child.kill().await.unwrap();
    let lost = tokio::time::timeout(Duration::from_secs(15), link.lost())
        .await
        .expect("the link gives up");
    let reason = lost.to_string();
    assert!(reason.starts_with("desktop lost: "), "{reason}");
    assert!(matches!(link.capture().await, Err(LinkError::Gone(_))));
    assert!(matches!(
        actions::move_to(&link, 1, 1).await,
        Err(LinkError::Gone(_))
    ));
}
