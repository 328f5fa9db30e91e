//! A minimal `text/event-stream` reader for the server's streams: events are blocks of
//! `field: value` lines ending with an empty line (LF line endings, as the server writes
//! them); `:` comments (heartbeats) are skipped. It borrows from its buffer instead of
//! allocating per event, because the fan-out reads millions of events.

/// One event's fields, borrowed from the reader's buffer (the last line of each field wins;
/// the server sends one `data:` line per event).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// `id:` (a session stream: the event's seq).
    pub id: Option<&'a [u8]>,
    /// `event:` (a session stream: the event's kind).
    pub event: Option<&'a [u8]>,
    /// `data:` (the event as JSON).
    pub data: Option<&'a [u8]>,
}

impl SseEvent<'_> {
    /// The `id:` as a non-negative integer (a session stream's seq), if it is one.
    pub fn seq(&self) -> Option<i64> {
        let id = self.id?;
        if id.is_empty() || id.len() > 18 {
            return None;
        }
        id.iter().try_fold(0i64, |n, b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    }
}

/// Reassembles events from the chunks of a response body, which may split an event anywhere.
#[derive(Debug, Default)]
pub struct SseReader {
    buf: Vec<u8>,
}

impl SseReader {
    /// Appends `chunk` and calls `on_event` for every event now complete, in order. Blocks
    /// with no field (comments only) are skipped.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(SseEvent<'_>)) {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(end) = find_blank_line(&self.buf[start..]) {
            let block = &self.buf[start..start + end];
            start += end + 2;
            let mut ev = SseEvent::default();
            for line in block.split(|b| *b == b'\n') {
                let (name, value) = match memchr::memchr(b':', line) {
                    Some(0) => continue,
                    Some(i) => {
                        let v = &line[i + 1..];
                        (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
                    }
                    None => (line, &b""[..]),
                };
                match name {
                    b"id" => ev.id = Some(value),
                    b"event" => ev.event = Some(value),
                    b"data" => ev.data = Some(value),
                    _ => {}
                }
            }
            if ev != SseEvent::default() {
                on_event(ev);
            }
        }
        self.buf.drain(..start);
    }
}

/// Offset of the first `\n\n` in `b`.
fn find_blank_line(b: &[u8]) -> Option<usize> {
    memchr::memmem::find(b, b"\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(chunks: &[&str]) -> Vec<(Option<i64>, String, String)> {
        let mut reader = SseReader::default();
        let mut out = Vec::new();
        for c in chunks {
            reader.feed(c.as_bytes(), |e| {
                out.push((
                    e.seq(),
                    String::from_utf8_lossy(e.event.unwrap_or_default()).into_owned(),
                    String::from_utf8_lossy(e.data.unwrap_or_default()).into_owned(),
                ))
            });
        }
        out
    }

    #[test]
    fn events_split_anywhere() {
        let all = "id: 7\nevent: log\ndata: {\"a\":1}\n\n: heartbeat\n\nid: 8\nevent: status\ndata: {}\n\n";
        let whole = collect(&[all]);
        assert_eq!(
            whole,
            vec![
                (Some(7), "log".into(), "{\"a\":1}".into()),
                (Some(8), "status".into(), "{}".into())
            ]
        );
        for cut in 0..all.len() {
            assert_eq!(collect(&[&all[..cut], &all[cut..]]), whole, "cut at {cut}");
        }
    }

    #[test]
    fn seq_is_digits_only() {
        let ev = |id: &'static str| SseEvent {
            id: Some(id.as_bytes()),
            ..SseEvent::default()
        };
        assert_eq!(ev("42").seq(), Some(42));
        assert_eq!(ev("").seq(), None);
        assert_eq!(ev("4x").seq(), None);
        assert_eq!(ev("-1").seq(), None);
    }
}
