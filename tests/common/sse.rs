//! The one SSE reader: an incremental `text/event-stream` parser over a response body.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;

/// How long [`Sse::next`] waits for the next chunk unless told otherwise.
pub const SSE_IDLE_LIMIT: Duration = Duration::from_secs(20);

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    /// The `data:` lines, joined by `\n`.
    pub data: String,
    /// When the chunk that completed this event was read.
    pub read_at: Instant,
}

impl SseEvent {
    /// `data` as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

type Body =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// Reads events off an open `text/event-stream` response (see `Client::sse`).
pub struct Sse {
    body: Body,
    /// Unparsed bytes, without `\r`.
    buf: Vec<u8>,
    read_at: Instant,
    idle_limit: Option<Duration>,
}

impl Sse {
    pub(crate) fn new(response: reqwest::Response) -> Self {
        Self {
            body: Box::pin(response.bytes_stream()),
            buf: Vec::new(),
            read_at: Instant::now(),
            idle_limit: Some(SSE_IDLE_LIMIT),
        }
    }

    /// Waits for chunks as long as it takes (for readers with a deadline of their own).
    pub fn without_idle_limit(mut self) -> Self {
        self.idle_limit = None;
        self
    }

    /// The next event (comments and heartbeats skipped); `None` when the stream ended or
    /// broke. Panics when no chunk arrives within the idle limit. Cancel-safe.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                if let Some(e) = parse_block(&block, self.read_at) {
                    return Some(e);
                }
            }
            let chunk = match self.idle_limit {
                Some(limit) => tokio::time::timeout(limit, self.body.next())
                    .await
                    .unwrap_or_else(|_| panic!("no SSE event within {limit:?}")),
                None => self.body.next().await,
            };
            let Some(Ok(chunk)) = chunk else {
                return None;
            };
            self.read_at = Instant::now();
            self.buf
                .extend(chunk.iter().copied().filter(|b| *b != b'\r'));
        }
    }
}

/// One event block; `None` when it holds no `id`, `event` or `data` (a comment, a heartbeat,
/// a lone `retry`).
fn parse_block(block: &[u8], read_at: Instant) -> Option<SseEvent> {
    let mut e = SseEvent {
        id: None,
        event: None,
        data: String::new(),
        read_at,
    };
    let mut has_data = false;
    for line in String::from_utf8_lossy(block).lines() {
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "id" => e.id = Some(value.to_owned()),
            "event" => e.event = Some(value.to_owned()),
            "data" => {
                if has_data {
                    e.data.push('\n');
                }
                e.data.push_str(value);
                has_data = true;
            }
            _ => {}
        }
    }
    (e.id.is_some() || e.event.is_some() || has_data).then_some(e)
}
