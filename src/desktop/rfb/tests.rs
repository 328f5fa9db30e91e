//! Protocol tests against the scripted [`FakeServer`] over `tokio::io::duplex`: the exact
//! bytes of the handshake and of every client message, and the clipboard duties.

use tokio::io::{AsyncReadExt, DuplexStream, duplex};

use super::{
    clipboard::{self, ClipboardMessage, flags},
    connection::RfbConnection,
    decode::ServerEvent,
    fake::{CHALLENGE, FakeServer, PASSWORD_RESPONSE, server_frame},
    handshake::{Version, handshake},
    messages::{key_event, pointer_event},
};
use crate::desktop::error::LinkError;

const BLUE: [u8; 4] = [255, 0, 0, 0];

fn pipe() -> (DuplexStream, FakeServer<DuplexStream>) {
    let (client, server) = duplex(1 << 20);
    (client, FakeServer::new(server))
}

/// Opens a connection to a fake 3.8 server (with or without the Extended Clipboard).
async fn open(extended: bool) -> (RfbConnection<DuplexStream>, FakeServer<DuplexStream>) {
    let (client, mut server) = pipe();
    let script = async {
        server.accept_38(4, 2).await;
        server.setup(4, 2, extended, BLUE).await;
        server
    };
    let (conn, server) = tokio::join!(RfbConnection::open(client, "password"), script);
    (conn.unwrap(), server)
}

#[tokio::test]
async fn handshake_38_bytes_and_server_init() {
    let (client, mut server) = pipe();
    let script = async {
        server.accept_38(1280, 800).await;
    };
    let mut client = client;
    let (result, ()) = tokio::join!(handshake(&mut client, "password"), script);
    let (version, init) = result.unwrap();
    assert_eq!(version, Version::V3_8);
    assert_eq!((init.width, init.height), (1280, 800));
    assert_eq!(init.name, "fake desktop");
}

#[tokio::test]
async fn handshake_33_lets_the_server_pick_vnc_auth() {
    let (mut client, mut server) = pipe();
    let script = async {
        server.send(b"RFB 003.003\n").await;
        server.expect(b"RFB 003.003\n", "version").await;
        server.send(&2u32.to_be_bytes()).await;
        server.send(&CHALLENGE).await;
        server.expect(&PASSWORD_RESPONSE, "VncAuth response").await;
        server.send(&0u32.to_be_bytes()).await;
        server.expect(&[1], "ClientInit").await;
        server.send_server_init(8, 8, "old").await;
    };
    let (result, ()) = tokio::join!(handshake(&mut client, "password"), script);
    assert_eq!(result.unwrap().0, Version::V3_3);
}

#[tokio::test]
async fn refuses_security_none() {
    let (mut client, mut server) = pipe();
    let script = async {
        server.send(b"RFB 003.008\n").await;
        server.expect(b"RFB 003.008\n", "version").await;
        server.send(&[1, 1]).await;
        // The client must hang up without choosing.
        let mut rest = Vec::new();
        server.stream.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "the client sent {rest:?}");
    };
    let outcome = async {
        let result = handshake(&mut client, "password").await;
        drop(client);
        result
    };
    let (result, ()) = tokio::join!(outcome, script);
    let err = result.unwrap_err();
    assert!(matches!(err, LinkError::NoVncAuth { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the desktop offers no VNC authentication; refusing security type None"
    );

    // 3.3 server deciding on None.
    let (mut client, mut server) = pipe();
    let script = async {
        server.send(b"RFB 003.003\n").await;
        server.expect(b"RFB 003.003\n", "version").await;
        server.send(&1u32.to_be_bytes()).await;
    };
    let (result, ()) = tokio::join!(handshake(&mut client, "password"), script);
    assert!(matches!(result, Err(LinkError::NoVncAuth { .. })));
}

#[tokio::test]
async fn auth_failure_carries_the_reason() {
    let (mut client, mut server) = pipe();
    let script = async {
        server.send(b"RFB 003.008\n").await;
        server.expect(b"RFB 003.008\n", "version").await;
        server.send(&[2, 1, 2]).await;
        server.expect(&[2], "security type").await;
        server.send(&CHALLENGE).await;
        server.read(16).await;
        let reason = b"Authentication failed";
        server.send(&1u32.to_be_bytes()).await;
        server.send(&(reason.len() as u32).to_be_bytes()).await;
        server.send(reason).await;
    };
    let (result, ()) = tokio::join!(handshake(&mut client, "wrong"), script);
    match result {
        Err(LinkError::AuthFailed(reason)) => assert_eq!(reason, "Authentication failed"),
        other => panic!("expected AuthFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_refused_connection_reports_the_servers_reason() {
    let (mut client, mut server) = pipe();
    let script = async {
        server.send(b"RFB 003.008\n").await;
        server.expect(b"RFB 003.008\n", "version").await;
        server.send(&[0, 0, 0, 0, 4]).await;
        server.send(b"busy").await;
    };
    let (result, ()) = tokio::join!(handshake(&mut client, "password"), script);
    let err = result.unwrap_err();
    assert!(
        err.to_string().contains("refused the connection: busy"),
        "{err}"
    );
}

#[tokio::test]
async fn open_reads_the_first_full_update() {
    let (conn, _server) = open(false).await;
    assert_eq!(conn.name(), "fake desktop");
    assert!(!conn.extended_clipboard());
    let fb = conn.framebuffer();
    assert_eq!((fb.width(), fb.height()), (4, 2));
    assert_eq!(fb.to_rgb()[..3], [0, 0, 255]);
}

#[tokio::test]
async fn input_messages_byte_for_byte() {
    let (mut conn, mut server) = open(false).await;
    conn.send(&pointer_event(1, 200, 300)).await.unwrap();
    conn.send(&key_event(true, 0x0100_4f60)).await.unwrap();
    conn.request_full_update().await.unwrap();
    server.expect(&[5, 1, 0, 200, 1, 44], "PointerEvent").await;
    server
        .expect(&[4, 1, 0, 0, 0x01, 0x00, 0x4f, 0x60], "KeyEvent")
        .await;
    server.expect_full_request(4, 2).await;
}

#[tokio::test]
async fn legacy_clipboard_is_latin1_only() {
    let (mut conn, mut server) = open(false).await;
    conn.set_clipboard("Grüße").await.unwrap();
    server
        .expect(
            &[6, 0, 0, 0, 0, 0, 0, 5, b'G', b'r', 0xfc, 0xdf, b'e'],
            "ClientCutText",
        )
        .await;
    let err = conn.set_clipboard("你好").await.unwrap_err();
    assert!(matches!(err, LinkError::Unsupported(_)), "{err:?}");
}

#[tokio::test]
async fn extended_clipboard_announces_then_provides_on_request() {
    let (mut conn, mut server) = open(true).await;
    assert!(conn.extended_clipboard());
    conn.set_clipboard("Grüße 你好").await.unwrap();
    server
        .expect(&clipboard::notify(flags::TEXT), "notify")
        .await;

    // Later the server asks (an X application reads the selection) and peeks.
    server
        .send(&server_frame(clipboard::request(flags::TEXT)))
        .await;
    server.send(&server_frame(clipboard::peek())).await;
    let events = conn.next_events().await.unwrap();
    conn.flush().await.unwrap();
    assert_eq!(
        events,
        [
            ServerEvent::Clipboard(ClipboardMessage::Request(flags::TEXT)),
            ServerEvent::Clipboard(ClipboardMessage::Peek)
        ]
    );
    let provide = clipboard::provide_text("Grüße 你好").unwrap();
    server.expect(&provide, "provide").await;
    let parsed = clipboard::parse(&provide[8..]).unwrap();
    assert_eq!(parsed, ClipboardMessage::Provide(Some("Grüße 你好".into())));
    server
        .expect(&clipboard::notify(flags::TEXT), "notify after peek")
        .await;
}
