//! A scripted RFB server for tests: it reads exactly what the client must send and fails
//! the test on any other byte, and writes what a server would. Used by the protocol tests
//! (over `tokio::io::duplex`) and the link tests (over TCP on 127.0.0.1).

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{
    clipboard,
    messages::{
        ENCODINGS, PixelFormat, framebuffer_update_request, set_encodings, set_pixel_format,
    },
};

/// The challenge the fake server sends.
pub(crate) const CHALLENGE: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
/// The VncAuth response to [`CHALLENGE`] for the password `password`, computed apart from
/// our code: `openssl enc -des-ecb -nopad -K 0e86ceceeef64e26` (the password's bytes with
/// their bits reversed) over the challenge.
pub(crate) const PASSWORD_RESPONSE: [u8; 16] = [
    0xb8, 0x66, 0x92, 0x41, 0x25, 0xc8, 0xee, 0xbb, 0x9d, 0xeb, 0xc1, 0xdb, 0x61, 0xc5, 0x38, 0xe2,
];

/// The server end of a connection under test.
pub(crate) struct FakeServer<S> {
    pub(crate) stream: S,
}

impl<S: AsyncRead + AsyncWrite + Unpin> FakeServer<S> {
    pub(crate) fn new(stream: S) -> Self {
        Self { stream }
    }

    /// Reads `expected.len()` bytes and asserts they are `expected`.
    pub(crate) async fn expect(&mut self, expected: &[u8], what: &str) {
        let got = self.read(expected.len()).await;
        assert_eq!(got, expected, "the client's {what}");
    }

    pub(crate) async fn read(&mut self, n: usize) -> Vec<u8> {
        let mut got = vec![0u8; n];
        self.stream
            .read_exact(&mut got)
            .await
            .unwrap_or_else(|e| panic!("reading {n} bytes from the client: {e}"));
        got
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// An RFB 3.8 handshake offering only VncAuth, checking the response for the password
    /// `password`, then ServerInit of `width × height`.
    pub(crate) async fn accept_38(&mut self, width: u16, height: u16) {
        self.send(b"RFB 003.008\n").await;
        self.expect(b"RFB 003.008\n", "version").await;
        self.send(&[1, 2]).await;
        self.expect(&[2], "security type").await;
        self.send(&CHALLENGE).await;
        self.expect(&PASSWORD_RESPONSE, "VncAuth response").await;
        self.send(&0u32.to_be_bytes()).await;
        self.expect(&[1], "ClientInit (shared)").await;
        self.send_server_init(width, height, "fake desktop").await;
    }

    pub(crate) async fn send_server_init(&mut self, width: u16, height: u16, name: &str) {
        let mut init = Vec::new();
        init.extend_from_slice(&width.to_be_bytes());
        init.extend_from_slice(&height.to_be_bytes());
        init.extend_from_slice(&PixelFormat::BGRX.to_bytes());
        init.extend_from_slice(&(name.len() as u32).to_be_bytes());
        init.extend_from_slice(name.as_bytes());
        self.send(&init).await;
    }

    /// Expects SetPixelFormat, SetEncodings and the first full update request; answers
    /// with clipboard caps (when `extended_clipboard`) and a full update of `bgrx` colour.
    pub(crate) async fn setup(
        &mut self,
        width: u16,
        height: u16,
        extended_clipboard: bool,
        bgrx: [u8; 4],
    ) {
        self.expect(&set_pixel_format(&PixelFormat::BGRX), "SetPixelFormat")
            .await;
        self.expect(&set_encodings(&ENCODINGS), "SetEncodings")
            .await;
        if extended_clipboard {
            self.send_clipboard_caps().await;
        }
        self.expect_full_request(width, height).await;
        if extended_clipboard {
            self.expect(
                &clipboard::caps(clipboard::OUR_CAPS, &[0]),
                "clipboard caps",
            )
            .await;
        }
        self.send_fill(width, height, bgrx).await;
    }

    /// TigerVNC's caps: text, all five actions, no unsolicited data.
    pub(crate) async fn send_clipboard_caps(&mut self) {
        self.send(&server_frame(clipboard::caps(clipboard::OUR_CAPS, &[0])))
            .await;
    }

    pub(crate) async fn expect_full_request(&mut self, width: u16, height: u16) {
        self.expect(
            &framebuffer_update_request(false, 0, 0, width, height),
            "FramebufferUpdateRequest",
        )
        .await;
    }

    /// A FramebufferUpdate with one Raw rectangle filling `width × height` with `bgrx`.
    pub(crate) async fn send_fill(&mut self, width: u16, height: u16, bgrx: [u8; 4]) {
        let mut update = vec![0, 0, 0, 1];
        update.extend(raw_header(0, 0, width, height));
        for _ in 0..usize::from(width) * usize::from(height) {
            update.extend_from_slice(&bgrx);
        }
        self.send(&update).await;
    }
}

/// A Raw rectangle header.
pub(crate) fn raw_header(x: u16, y: u16, width: u16, height: u16) -> Vec<u8> {
    [x, y, width, height]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .chain(0i32.to_be_bytes())
        .collect()
}

/// A client-framed Extended Clipboard message turned into the server's ServerCutText.
pub(crate) fn server_frame(mut client_message: Vec<u8>) -> Vec<u8> {
    client_message[0] = 3;
    client_message
}
