//! [`RfbLink`] against the scripted fake server over TCP on 127.0.0.1: the bytes of each
//! call, captures, clipboard requests answered from the reader loop, reconnects, loss and
//! close.

use std::{sync::Arc, time::Duration};

use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::desktop::rfb::{
    clipboard::{self, flags},
    fake::{FakeServer, server_frame},
    messages::{key_event, pointer_event},
};

const BLUE: [u8; 4] = [255, 0, 0, 0];
const RED: [u8; 4] = [0, 0, 255, 0];
const GREEN: [u8; 4] = [0, 255, 0, 0];

async fn listener() -> (TcpListener, LinkTarget) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = LinkTarget {
        host: "127.0.0.1".into(),
        port: listener.local_addr().unwrap().port(),
        password: "password".into(),
    };
    (listener, target)
}

/// Accepts one connection and runs the handshake and setup on it.
async fn accept(listener: &TcpListener, extended: bool) -> FakeServer<TcpStream> {
    let (stream, _) = listener.accept().await.unwrap();
    let mut server = FakeServer::new(stream);
    server.accept_38(4, 2).await;
    server.setup(4, 2, extended, BLUE).await;
    server
}

fn quick() -> Reconnect {
    Reconnect {
        first_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
        give_up: Duration::from_secs(1),
    }
}

#[test]
fn the_password_is_never_printed() {
    let target = LinkTarget {
        host: "h".into(),
        port: 1,
        password: "hunter2".into(),
    };
    let printed = format!("{target:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("<redacted>"), "{printed}");
}

#[tokio::test]
async fn calls_send_their_messages_and_capture_waits_for_the_update() {
    let (listener, target) = listener().await;
    let server = tokio::spawn(async move {
        let mut server = accept(&listener, true).await;
        server.expect(&pointer_event(1, 3, 1), "PointerEvent").await;
        server.expect(&key_event(true, 0xff0d), "KeyEvent").await;
        server.expect_full_request(4, 2).await;
        server.send_fill(4, 2, RED).await;
        server
    });
    let link = RfbLink::connect(target).await.unwrap();
    assert_eq!(link.size(), (4, 2));
    link.pointer(3, 1, 1).await.unwrap();
    link.key(0xff0d, true).await.unwrap();
    let frame = link.capture().await.unwrap();
    assert_eq!((frame.width, frame.height), (4, 2));
    assert_eq!(frame.rgb, [255u8, 0, 0].repeat(8));
    server.await.unwrap();
}

#[tokio::test]
async fn a_capture_is_never_answered_by_an_earlier_request() {
    let (listener, target) = listener().await;
    let (first_seen, first_seen_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        let mut server = accept(&listener, false).await;
        server.expect_full_request(4, 2).await;
        first_seen.send(()).unwrap();
        // Let the second capture reach the task while the first is in flight.
        tokio::time::sleep(Duration::from_millis(50)).await;
        server.send_fill(4, 2, RED).await;
        server.expect_full_request(4, 2).await;
        server.send_fill(4, 2, GREEN).await;
        server
    });
    let link = Arc::new(RfbLink::connect(target).await.unwrap());
    let first = tokio::spawn({
        let link = Arc::clone(&link);
        async move { link.capture().await }
    });
    first_seen_rx.await.unwrap();
    let second = link.capture().await.unwrap();
    assert_eq!(first.await.unwrap().unwrap().rgb[..3], [255, 0, 0]);
    assert_eq!(second.rgb[..3], [0, 255, 0]);
    server.await.unwrap();
}

#[tokio::test]
async fn clipboard_requests_are_answered_whenever_they_come() {
    let (listener, target) = listener().await;
    let server = tokio::spawn(async move {
        let mut server = accept(&listener, true).await;
        server
            .expect(&clipboard::notify(flags::TEXT), "notify")
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        server
            .send(&server_frame(clipboard::request(flags::TEXT)))
            .await;
        let provide = clipboard::provide_text("Grüße 你好").unwrap();
        server.expect(&provide, "provide").await;
        // Asked again later (another application reads the selection).
        server
            .send(&server_frame(clipboard::request(flags::TEXT)))
            .await;
        server.expect(&provide, "provide again").await;
        server
    });
    let link = RfbLink::connect(target).await.unwrap();
    link.cut_text("Grüße 你好").await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn legacy_servers_get_latin1_or_a_clear_refusal() {
    let (listener, target) = listener().await;
    let server = tokio::spawn(async move {
        let mut server = accept(&listener, false).await;
        server
            .expect(&[6, 0, 0, 0, 0, 0, 0, 2, 0xfc, b'!'], "ClientCutText")
            .await;
        server
    });
    let link = RfbLink::connect(target).await.unwrap();
    link.cut_text("ü!").await.unwrap();
    let err = link.cut_text("你好").await.unwrap_err();
    assert!(matches!(err, LinkError::Unsupported(_)), "{err:?}");
    server.await.unwrap();
}

#[tokio::test]
async fn reconnects_announces_the_clipboard_again_and_calls_wait() {
    let (listener, target) = listener().await;
    let (dropped, dropped_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        let mut server = accept(&listener, true).await;
        server
            .expect(&clipboard::notify(flags::TEXT), "notify")
            .await;
        drop(server);
        dropped.send(()).unwrap();
        // The link reconnects at once; hold the new connection until a call is waiting.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut server = accept(&listener, true).await;
        server
            .expect(&clipboard::notify(flags::TEXT), "notify again")
            .await;
        server.expect(&pointer_event(0, 1, 2), "PointerEvent").await;
        server
    });
    let link = RfbLink::connect_with(target, quick()).await.unwrap();
    link.cut_text("kept").await.unwrap();
    dropped_rx.await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    link.pointer(1, 2, 0).await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn gives_up_and_reports_the_loss() {
    let (listener, target) = listener().await;
    let server = tokio::spawn(async move {
        let server = accept(&listener, false).await;
        drop(listener);
        drop(server);
    });
    let link = RfbLink::connect_with(target, quick()).await.unwrap();
    server.await.unwrap();
    let lost = tokio::time::timeout(Duration::from_secs(5), link.lost())
        .await
        .expect("the link gives up within its policy");
    let text = lost.to_string();
    assert!(
        text.starts_with("desktop lost: no RFB connection to 127.0.0.1:"),
        "{text}"
    );
    assert!(matches!(
        link.pointer(0, 0, 0).await,
        Err(LinkError::Gone(_))
    ));
    assert!(matches!(link.capture().await, Err(LinkError::Gone(_))));
}

#[tokio::test]
async fn close_ends_the_link() {
    let (listener, target) = listener().await;
    let server = tokio::spawn(async move { accept(&listener, false).await });
    let link = RfbLink::connect(target).await.unwrap();
    let _server = server.await.unwrap();
    link.close();
    assert_eq!(
        link.lost().await.to_string(),
        "desktop lost: the link was closed"
    );
    assert!(matches!(link.key(1, true).await, Err(LinkError::Gone(_))));
}

#[tokio::test]
async fn a_wrong_password_fails_the_connect() {
    let (listener, target) = listener().await;
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut server = FakeServer::new(stream);
        server.send(b"RFB 003.008\n").await;
        server.read(12).await;
        server.send(&[1, 2]).await;
        server.read(1).await;
        server.send(&[0; 16]).await;
        server.read(16).await;
        server.send(&[0, 0, 0, 1, 0, 0, 0, 4]).await;
        server.send(b"nope").await;
    });
    let err = RfbLink::connect(target).await.unwrap_err();
    assert_eq!(err.to_string(), "VNC authentication failed: nope");
    server.await.unwrap();
}

#[tokio::test]
async fn a_clipboard_taken_over_on_the_desktop_is_not_announced_again() {
    let (listener, target) = listener().await;
    let (dropped, dropped_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        let mut server = accept(&listener, true).await;
        server
            .expect(&clipboard::notify(flags::TEXT), "notify")
            .await;
        // An X application copies something: the server tells its clients.
        server
            .send(&server_frame(clipboard::notify(flags::TEXT)))
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(server);
        dropped.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut server = accept(&listener, true).await;
        // No notify: the first message after the setup is the pointer event.
        server.expect(&pointer_event(0, 5, 6), "PointerEvent").await;
        server
    });
    let link = RfbLink::connect_with(target, quick()).await.unwrap();
    link.cut_text("mine").await.unwrap();
    dropped_rx.await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    link.pointer(5, 6, 0).await.unwrap();
    server.await.unwrap();
}
