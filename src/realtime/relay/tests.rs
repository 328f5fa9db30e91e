//! The relay against a scripted viewer (a channel pair standing in for the WebSocket) and a
//! scripted desktop (a TCP listener past its SecurityResult): the viewer's handshake in each
//! RFB version, the forced shared flag, bytes both ways, and each close.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use tokio::{net::TcpListener, sync::mpsc};

use super::*;

/// One end of a fake WebSocket: what the relay sends arrives on `sent`; `incoming` feeds it.
struct FakeWs {
    incoming: mpsc::UnboundedReceiver<io::Result<Message>>,
    sent: mpsc::UnboundedSender<Message>,
    /// After this many messages the socket takes no more (a viewer that stopped reading).
    takes: usize,
}

impl Stream for FakeWs {
    type Item = io::Result<Message>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.incoming.poll_recv(cx)
    }
}

impl Sink<Message> for FakeWs {
    type Error = io::Error;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.takes == 0 {
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }
    fn start_send(mut self: Pin<&mut Self>, item: Message) -> io::Result<()> {
        self.takes -= 1;
        self.sent
            .send(item)
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The viewer's side of the fake socket.
struct Viewer {
    to_relay: mpsc::UnboundedSender<io::Result<Message>>,
    from_relay: mpsc::UnboundedReceiver<Message>,
}

impl Viewer {
    fn send(&self, bytes: &[u8]) {
        self.to_relay
            .send(Ok(Message::Binary(bytes.to_vec())))
            .unwrap();
    }

    async fn next(&mut self) -> Message {
        tokio::time::timeout(Duration::from_secs(5), self.from_relay.recv())
            .await
            .expect("the relay answers within 5 s")
            .expect("the relay keeps the socket open")
    }

    async fn bytes(&mut self) -> Vec<u8> {
        match self.next().await {
            Message::Binary(b) => b,
            other => panic!("expected a binary message, got {other:?}"),
        }
    }
}

fn fake_ws() -> (FakeWs, Viewer) {
    let (to_relay, incoming) = mpsc::unbounded_channel();
    let (sent, from_relay) = mpsc::unbounded_channel();
    (
        FakeWs {
            incoming,
            sent,
            takes: usize::MAX,
        },
        Viewer {
            to_relay,
            from_relay,
        },
    )
}

/// A connected TCP pair: (the relay's end, the scripted desktop's end).
async fn desktop_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (client.unwrap(), server.unwrap().0)
}

/// Runs the relay for a viewer that stays allowed, on a session that keeps running.
fn spawn_relay(
    ws: FakeWs,
    desktop: TcpStream,
    opts: RelayOptions,
) -> tokio::task::JoinHandle<Report> {
    tokio::spawn(relay(
        ws,
        desktop,
        opts,
        || async { true },
        std::future::pending(),
    ))
}

const OPTS: RelayOptions = RelayOptions {
    ping: Duration::from_secs(30),
    idle: Duration::from_secs(60),
    reauthorize: Duration::from_secs(30),
};

#[tokio::test]
async fn a_3_8_viewer_gets_security_none_and_its_client_init_is_forced_shared() {
    let (ws, mut viewer) = fake_ws();
    let (relay_end, mut desktop) = desktop_pair().await;
    let task = spawn_relay(ws, relay_end, OPTS);

    assert_eq!(viewer.bytes().await, b"RFB 003.008\n");
    viewer.send(b"RFB 003.008\n");
    assert_eq!(
        viewer.bytes().await,
        [1, SECURITY_NONE],
        "only None offered"
    );
    viewer.send(&[SECURITY_NONE]);
    assert_eq!(
        viewer.bytes().await,
        0u32.to_be_bytes(),
        "SecurityResult OK"
    );
    // An exclusive ClientInit (shared-flag 0) and a first client message in one frame.
    viewer.send(&[0, 3, 0, 0, 0]);

    let mut got = [0u8; 5];
    desktop.read_exact(&mut got).await.unwrap();
    assert_eq!(
        got,
        [1, 3, 0, 0, 0],
        "shared-flag forced to 1; the rest follows"
    );

    desktop.write_all(b"server-init-and-updates").await.unwrap();
    assert_eq!(viewer.bytes().await, b"server-init-and-updates");
    viewer.send(b"pointer");
    let mut got = [0u8; 7];
    desktop.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"pointer");

    drop(desktop);
    match viewer.next().await {
        Message::Close(Some((code, _))) => assert_eq!(u16::from(code), 4010),
        other => panic!("expected close 4010, got {other:?}"),
    }
    let report = task.await.unwrap();
    assert_eq!(report.end, End::DesktopClosed);
    assert_eq!(report.bytes_to_viewer, 23);
    assert_eq!(
        report.bytes_from_viewer, 7,
        "handshake bytes are not counted"
    );
}

#[tokio::test]
async fn older_viewers_are_answered_in_their_version() {
    // 3.7: a list, the viewer's choice, no SecurityResult for None.
    let (ws, mut viewer) = fake_ws();
    let (relay_end, mut desktop) = desktop_pair().await;
    let task = tokio::spawn(relay(ws, relay_end, OPTS, || async { true }, async {
        tokio::time::sleep(Duration::from_millis(300)).await
    }));
    viewer.bytes().await;
    viewer.send(b"RFB 003.007\n");
    assert_eq!(viewer.bytes().await, [1, SECURITY_NONE]);
    viewer.send(&[SECURITY_NONE, 1]);
    let mut init = [0u8; 1];
    desktop.read_exact(&mut init).await.unwrap();
    assert_eq!(init, [1]);
    match viewer.next().await {
        Message::Close(Some((code, _))) => assert_eq!(u16::from(code), 4001),
        other => panic!("expected close 4001, got {other:?}"),
    }
    assert_eq!(task.await.unwrap().end, End::SessionEnded);

    // 3.3: the server decides, a u32 type.
    let (ws, mut viewer) = fake_ws();
    let (relay_end, mut desktop) = desktop_pair().await;
    let task = spawn_relay(ws, relay_end, OPTS);
    viewer.bytes().await;
    viewer.send(b"RFB 003.003\n");
    assert_eq!(viewer.bytes().await, 1u32.to_be_bytes());
    viewer.send(&[0]);
    desktop.read_exact(&mut init).await.unwrap();
    assert_eq!(init, [1]);
    viewer.to_relay.send(Ok(Message::Close(None))).unwrap();
    assert_eq!(task.await.unwrap().end, End::ViewerClosed);
}

#[tokio::test]
async fn a_viewer_asking_for_vnc_auth_or_speaking_text_is_refused() {
    let (ws, mut viewer) = fake_ws();
    let (relay_end, _desktop) = desktop_pair().await;
    let task = spawn_relay(ws, relay_end, OPTS);
    viewer.bytes().await;
    viewer.send(b"RFB 003.008\n");
    viewer.bytes().await;
    viewer.send(&[2]);
    let failed = viewer.bytes().await;
    assert_eq!(&failed[..4], &1u32.to_be_bytes(), "SecurityResult failed");
    assert!(String::from_utf8_lossy(&failed[8..]).contains("None"));
    match viewer.next().await {
        Message::Close(Some((code, _))) => assert_eq!(u16::from(code), 1002),
        other => panic!("expected close 1002, got {other:?}"),
    }
    assert_eq!(task.await.unwrap().end, End::ViewerProtocol);

    let (ws, mut viewer) = fake_ws();
    let (relay_end, _desktop) = desktop_pair().await;
    let task = spawn_relay(ws, relay_end, OPTS);
    viewer.bytes().await;
    viewer
        .to_relay
        .send(Ok(Message::Text("RFB 003.008\n".into())))
        .unwrap();
    assert_eq!(task.await.unwrap().end, End::ViewerProtocol);
}

#[tokio::test(start_paused = true)]
async fn revoked_access_and_idleness_close_the_socket() {
    async fn connected(opts: RelayOptions, allowed: bool) -> (Viewer, End, TcpStream) {
        let (ws, mut viewer) = fake_ws();
        let (relay_end, desktop) = desktop_pair().await;
        let task = tokio::spawn(relay(
            ws,
            relay_end,
            opts,
            move || async move { allowed },
            std::future::pending(),
        ));
        viewer.bytes().await;
        viewer.send(b"RFB 003.008\n");
        viewer.bytes().await;
        viewer.send(&[SECURITY_NONE]);
        viewer.bytes().await;
        viewer.send(&[1]);
        let end = task.await.unwrap().end;
        (viewer, end, desktop)
    }
    let opts = RelayOptions {
        ping: Duration::from_secs(3600),
        idle: Duration::from_secs(3600),
        reauthorize: Duration::from_secs(30),
    };
    let (mut viewer, end, _d) = connected(opts, false).await;
    assert_eq!(end, End::AccessRevoked);
    while !matches!(viewer.next().await, Message::Close(Some(_))) {}

    let opts = RelayOptions {
        idle: Duration::from_secs(10),
        ..opts
    };
    let (_viewer, end, _d) = connected(opts, true).await;
    assert_eq!(end, End::Idle);
}

#[tokio::test(start_paused = true)]
async fn a_viewer_that_stops_reading_is_dropped_after_two_pings() {
    let (mut ws, mut viewer) = fake_ws();
    // Greeting, security types, SecurityResult; then nothing more is taken.
    ws.takes = 3;
    let (relay_end, mut desktop) = desktop_pair().await;
    let opts = RelayOptions {
        ping: Duration::from_secs(1),
        ..OPTS
    };
    let task = spawn_relay(ws, relay_end, opts);
    viewer.bytes().await;
    viewer.send(b"RFB 003.008\n");
    viewer.bytes().await;
    viewer.send(&[SECURITY_NONE]);
    viewer.bytes().await;
    viewer.send(&[1]);
    let mut init = [0u8; 1];
    desktop.read_exact(&mut init).await.unwrap();
    // The desktop keeps sending; the viewer keeps talking (pongs, input) but reads nothing.
    desktop.write_all(&[0u8; 1024]).await.unwrap();
    let talker = tokio::spawn(async move {
        loop {
            viewer.to_relay.send(Ok(Message::Pong(Vec::new()))).ok();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let report = task.await.unwrap();
    talker.abort();
    assert_eq!(report.end, End::ViewerGone);
    assert_eq!(report.bytes_to_viewer, 0, "nothing was delivered");
}

#[test]
fn viewer_slots_cap_each_session_and_come_back_when_dropped() {
    let slots = ViewerSlots::default();
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let first = slots.try_take(a, 2).unwrap();
    let _second = slots.try_take(a, 2).unwrap();
    assert!(
        slots.try_take(a, 2).is_none(),
        "a third viewer is over the cap"
    );
    assert!(slots.try_take(b, 2).is_some(), "the cap is per session");
    drop(first);
    assert_eq!(slots.count(a), 1);
    assert!(slots.try_take(a, 2).is_some());
}
