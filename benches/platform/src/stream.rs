//! A minimal HTTP/1.1 client for one long-lived `GET` (an SSE stream) over a plain TCP
//! connection: it writes the request, checks the status, and hands back the body as it
//! arrives, undoing `Transfer-Encoding: chunked`.
//!
//! The fan-out uses it instead of reqwest because a subscriber then reads its socket itself,
//! many events per `read`, where a pooled client passes every chunk (one event each) from a
//! connection task to the reader: with 1,000 subscribers that bookkeeping cost as much CPU as
//! a third of the server's, on the cores the server needs.

use anyhow::{Context, bail, ensure};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// Where a chunked body's decoder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunked {
    /// Reading the hex size line (the value so far; `true` once past extensions).
    Size(usize, bool),
    /// Expecting the `\n` that ends the size line.
    SizeLf(usize),
    /// Inside a chunk: bytes left.
    Data(usize),
    /// Expecting the `\r\n` after a chunk's data (bytes of it left).
    DataEnd(u8),
    /// The last (zero-size) chunk was read.
    Done,
}

/// How the body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Chunked(Chunked),
    /// Until the server closes the connection.
    UntilClose,
}

/// An open response body.
pub struct BodyStream {
    socket: TcpStream,
    framing: Framing,
    /// Body bytes read with the head, not yet handed out.
    pending: Vec<u8>,
    raw: Vec<u8>,
}

/// Sends `GET path` to `addr` (`127.0.0.1:port`) with a bearer `token` and
/// `Accept: text/event-stream`; returns the body once the status is 200. Errors: connection
/// refused, another status (with the start of the body), a malformed head.
pub async fn get(addr: &str, path: &str, token: &str) -> anyhow::Result<BodyStream> {
    let mut socket = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    socket.set_nodelay(true)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(4096);
    let end = loop {
        if let Some(i) = memchr::memmem::find(&head, b"\r\n\r\n") {
            break i;
        }
        ensure!(
            head.len() < MAX_HEAD,
            "response head longer than {MAX_HEAD} bytes"
        );
        let mut buf = [0u8; 4096];
        let n = socket.read(&mut buf).await?;
        ensure!(n > 0, "the server closed the connection before answering");
        head.extend_from_slice(&buf[..n]);
    };
    let text = String::from_utf8_lossy(&head[..end]).into_owned();
    let pending = head[end + 4..].to_vec();
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .context("no status line")?;
    if status != 200 {
        bail!(
            "GET {path}: {status}: {}",
            String::from_utf8_lossy(&pending)
                .chars()
                .take(300)
                .collect::<String>()
        );
    }
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    Ok(BodyStream {
        socket,
        framing: if chunked {
            Framing::Chunked(Chunked::Size(0, false))
        } else {
            Framing::UntilClose
        },
        pending,
        raw: vec![0; 64 * 1024],
    })
}

impl BodyStream {
    /// Waits for more of the body and appends it to `out`. Returns `false` at its end (the
    /// last chunk, or the connection closed). Cancel-safe: nothing is lost if the future is
    /// dropped while it waits.
    pub async fn read(&mut self, out: &mut Vec<u8>) -> anyhow::Result<bool> {
        if !self.pending.is_empty() {
            let input = std::mem::take(&mut self.pending);
            return self.decode(&input, out);
        }
        let n = self.socket.read(&mut self.raw).await?;
        if n == 0 {
            return Ok(false);
        }
        let input = std::mem::take(&mut self.raw);
        let more = self.decode(&input[..n], out);
        self.raw = input;
        more
    }

    fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> anyhow::Result<bool> {
        match &mut self.framing {
            Framing::UntilClose => {
                out.extend_from_slice(input);
                Ok(true)
            }
            Framing::Chunked(state) => {
                decode_chunked(state, input, out)?;
                Ok(*state != Chunked::Done)
            }
        }
    }
}

/// Feeds `input` through the chunked decoder `state`, appending the data to `out`.
fn decode_chunked(state: &mut Chunked, mut input: &[u8], out: &mut Vec<u8>) -> anyhow::Result<()> {
    while let Some(&b) = input.first() {
        match *state {
            Chunked::Size(size, past_digits) => {
                input = &input[1..];
                match b {
                    b'\r' => *state = Chunked::SizeLf(size),
                    b'\n' => *state = size_done(size),
                    _ if past_digits => {}
                    b';' | b' ' | b'\t' => *state = Chunked::Size(size, true),
                    _ => {
                        let d = (b as char)
                            .to_digit(16)
                            .with_context(|| format!("bad chunk size byte {b:#04x}"))?;
                        ensure!(size < usize::MAX >> 8, "chunk size too large");
                        *state = Chunked::Size(size * 16 + d as usize, false);
                    }
                }
            }
            Chunked::SizeLf(size) => {
                ensure!(b == b'\n', "chunk size line without \\n");
                input = &input[1..];
                *state = size_done(size);
            }
            Chunked::Data(left) => {
                let take = left.min(input.len());
                out.extend_from_slice(&input[..take]);
                input = &input[take..];
                *state = if take == left {
                    Chunked::DataEnd(2)
                } else {
                    Chunked::Data(left - take)
                };
            }
            Chunked::DataEnd(left) => {
                let expected = if left == 2 { b'\r' } else { b'\n' };
                ensure!(b == expected, "chunk data not followed by \\r\\n");
                input = &input[1..];
                *state = if left == 2 {
                    Chunked::DataEnd(1)
                } else {
                    Chunked::Size(0, false)
                };
            }
            // Trailers after the last chunk are not read: the stream is over.
            Chunked::Done => return Ok(()),
        }
    }
    Ok(())
}

fn size_done(size: usize) -> Chunked {
    if size == 0 {
        Chunked::Done
    } else {
        Chunked::Data(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_split_anywhere() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        for cut in 0..wire.len() {
            let mut state = Chunked::Size(0, false);
            let mut out = Vec::new();
            decode_chunked(&mut state, &wire[..cut], &mut out).unwrap();
            decode_chunked(&mut state, &wire[cut..], &mut out).unwrap();
            assert_eq!(out, b"hello, world", "cut at {cut}");
            assert_eq!(state, Chunked::Done);
        }
        let mut state = Chunked::Size(0, false);
        assert!(decode_chunked(&mut state, b"zz\r\n", &mut Vec::new()).is_err());
        let mut state = Chunked::Size(0, false);
        assert!(decode_chunked(&mut state, b"1\r\nab", &mut Vec::new()).is_err());
    }
}
