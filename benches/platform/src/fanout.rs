//! SSE fan-out: many subscribers follow one session's event stream while one writer appends
//! paced batches; every subscriber must read every event exactly once, in order.
//!
//! Latency of an (event, subscriber) pair = the instant the subscriber read the chunk that
//! completed the event − the instant the append response of the event's batch arrived at
//! the writer (both `Instant`s of this process, so one clock). A subscriber may read an
//! event before the writer has read its response (the commit wakes both at once); such a
//! pair counts as 0 ms and is counted in [`FanoutRun::early`]. The latency from the append
//! *request* is reported as well ([`FanoutRun::from_sent`]). Subscribers read their sockets
//! directly ([`crate::stream`]), so that the client costs the shared cores little.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use tokio::sync::{Semaphore, oneshot, watch};

use crate::{
    api::parse_appended,
    server::{Memory, cpu_seconds, memory},
    sse::SseReader,
    stats::Pct,
    stream,
};

/// Subscribers connecting at once (the rest wait their turn).
const CONNECT_CONCURRENCY: usize = 64;
/// Longest wait for every subscriber to be connected and caught up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait, after the last append, for every subscriber to have read everything.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// The writer stops after 4 × its planned time plus this, however far it got.
const WRITE_SLACK: Duration = Duration::from_secs(30);
/// Pause after the subscribers disconnected before the memory is read again.
const SETTLE: Duration = Duration::from_secs(1);

/// What one fan-out run does.
#[derive(Clone, Debug)]
pub struct FanoutLoad<'a> {
    /// `http://127.0.0.1:<port>`.
    pub base: &'a str,
    /// The subscribers' credential (a `viewer` API key).
    pub read_token: &'a str,
    /// The writer's credential (an `operator` API key).
    pub write_token: &'a str,
    /// The org.
    pub org: &'a str,
    /// A running session nobody else writes to.
    pub session: &'a str,
    /// Seq of the last event already in the session's log.
    pub last_seq: i64,
    /// Subscribers.
    pub subscribers: usize,
    /// Events to append (a multiple of `batch`).
    pub events: usize,
    /// The serialised batch.
    pub body: Bytes,
    /// Events per append.
    pub batch: usize,
    /// Batch `i` is sent at `start + i × interval` (or at once after `i − 1`, if later).
    pub interval: Duration,
    /// The server's pid, for its memory.
    pub pid: u32,
}

/// The outcome of one fan-out run.
#[derive(Clone, Debug, Default)]
pub struct FanoutRun {
    /// Append response → receipt (ms), over every (event, subscriber) pair received.
    pub lat: Pct,
    /// Append request sent → receipt (ms).
    pub from_sent: Pct,
    /// Pairs that should arrive (`events × subscribers`).
    pub expected: u64,
    /// Events to append.
    pub events: u64,
    /// Events the writer appended (all of them, unless it gave up).
    pub appended: u64,
    /// Pairs received (each counted once).
    pub delivered: u64,
    /// Gaps, duplicates or out-of-order seqs seen, over all subscribers.
    pub order_errors: u64,
    /// Pairs read before the writer had read the append response (counted as 0 ms).
    pub early: u64,
    /// Deliveries per second: pairs received ÷ (last receipt − first append sent).
    pub deliveries_per_s: f64,
    /// Events appended per second by the writer.
    pub append_rate: f64,
    /// The writer's append latency (ms).
    pub append_lat: Pct,
    /// Time to connect and catch up every subscriber.
    pub connect: Duration,
    /// Last append response → last receipt.
    pub drain: Duration,
    /// Server memory before the subscribers connected.
    pub mem_before: Memory,
    /// … once all were connected.
    pub mem_connected: Memory,
    /// … once every event was delivered (or the wait gave up).
    pub mem_delivered: Memory,
    /// … [`SETTLE`] after every subscriber disconnected.
    pub mem_after: Memory,
    /// CPU seconds the server used from the first append to the end of delivery.
    pub server_cpu: f64,
    /// CPU seconds this program (writer and subscribers) used in the same time.
    pub client_cpu: f64,
    /// That time: first append sent → every subscriber done (s).
    pub wall: f64,
}

/// What one subscriber saw.
struct Seen {
    /// Receipt instant of event `i` (seq `last_seq + 1 + i`) in µs since the run's epoch;
    /// `u32::MAX`: not received.
    receipts: Vec<u32>,
    received: u64,
    order_errors: u64,
    error: Option<String>,
}

#[derive(Clone)]
struct Subscription {
    /// `127.0.0.1:<port>`.
    addr: Arc<str>,
    path: Arc<str>,
    token: Arc<str>,
    marker: i64,
    events: usize,
    epoch: Instant,
    connecting: Arc<Semaphore>,
}

/// Follows the stream from the event before `marker`: reading `marker` proves the
/// subscriber is attached (the server subscribes to live events before it replays), then
/// records every later event until it has them all or `stop` is set.
async fn subscribe(
    s: Subscription,
    ready: oneshot::Sender<()>,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let mut seen = Seen {
        receipts: vec![u32::MAX; s.events],
        received: 0,
        order_errors: 0,
        error: None,
    };
    let permit = s.connecting.acquire().await;
    let body = stream::get(&s.addr, &s.path, &s.token).await;
    drop(permit);
    let mut body = match body {
        Ok(b) => b,
        Err(e) => {
            seen.error = Some(format!("{e:#}"));
            return seen;
        }
    };
    let mut ready = Some(ready);
    let mut reader = SseReader::default();
    let mut data = Vec::with_capacity(64 * 1024);
    let mut last = s.marker;
    while seen.received < s.events as u64 {
        data.clear();
        let more = tokio::select! {
            r = body.read(&mut data) => r,
            _ = stop.changed() => break,
        };
        match more {
            Ok(true) => {}
            Ok(false) => {
                seen.error = Some("the stream ended early".into());
                break;
            }
            Err(e) => {
                seen.error = Some(format!("reading the stream: {e:#}"));
                break;
            }
        }
        let at = s.epoch.elapsed().as_micros() as u32;
        reader.feed(&data, |ev| {
            let Some(seq) = ev.seq() else { return };
            if seq <= s.marker {
                if seq == s.marker
                    && let Some(r) = ready.take()
                {
                    let _ = r.send(());
                }
                return;
            }
            if seq != last + 1 {
                seen.order_errors += 1;
            }
            last = seq;
            let i = (seq - s.marker - 1) as usize;
            match seen.receipts.get_mut(i) {
                Some(slot) if *slot == u32::MAX => {
                    *slot = at;
                    seen.received += 1;
                }
                _ => seen.order_errors += 1,
            }
        });
    }
    seen
}

/// Runs one fan-out: connect every subscriber, append the paced batches, wait for delivery
/// (bounded), disconnect. Errors: a subscriber could not connect or catch up, or an append
/// failed (the run is then not measured).
pub async fn run(load: FanoutLoad<'_>) -> anyhow::Result<FanoutRun> {
    ensure!(
        load.last_seq >= 1 && load.events.is_multiple_of(load.batch),
        "a fan-out needs an event already in the log and whole batches"
    );
    let mut out = FanoutRun {
        expected: (load.events * load.subscribers) as u64,
        events: load.events as u64,
        mem_before: memory(load.pid)?,
        ..FanoutRun::default()
    };
    let epoch = Instant::now();
    let sub = Subscription {
        addr: load.base.trim_start_matches("http://").into(),
        path: format!(
            "/v1/orgs/{}/sessions/{}/events/stream?after_seq={}",
            load.org,
            load.session,
            load.last_seq - 1
        )
        .into(),
        token: load.read_token.into(),
        marker: load.last_seq,
        events: load.events,
        epoch,
        connecting: Arc::new(Semaphore::new(CONNECT_CONCURRENCY)),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut readies = Vec::with_capacity(load.subscribers);
    let mut tasks = Vec::with_capacity(load.subscribers);
    for _ in 0..load.subscribers {
        let (tx, rx) = oneshot::channel();
        readies.push(rx);
        tasks.push(tokio::spawn(subscribe(sub.clone(), tx, stop_rx.clone())));
    }
    drop(stop_rx);
    // From here on a failure must stop the subscribers: `stop_tx` is dropped on return,
    // which ends every `stop.changed()` wait.
    let connected = async {
        for r in readies {
            r.await
                .ok()
                .context("a subscriber failed before it caught up")?;
        }
        anyhow::Ok(())
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connected).await {
        Ok(Ok(())) => {}
        failed => {
            let _ = stop_tx.send(true);
            let mut first = None;
            for t in tasks {
                if !t.is_finished() {
                    // Perhaps still waiting for the answer's headers: `stop` cannot reach it.
                    t.abort();
                } else if let Ok(seen) = t.await
                    && seen.error.is_some()
                {
                    first = first.or(seen.error);
                }
            }
            match failed {
                Err(_) => bail!(
                    "the subscribers were not all connected within {CONNECT_TIMEOUT:?} ({})",
                    first.unwrap_or_default()
                ),
                _ => bail!("a subscriber failed: {}", first.unwrap_or_default()),
            }
        }
    }
    out.connect = epoch.elapsed();
    out.mem_connected = memory(load.pid)?;

    // The writer: batch i at start + i × interval; (sent, response) in µs since the epoch.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = format!(
        "{}/v1/orgs/{}/sessions/{}/events",
        load.base, load.org, load.session
    );
    let batches = load.events / load.batch;
    let mut sent = Vec::with_capacity(batches);
    let mut done = Vec::with_capacity(batches);
    let mut append_lat = Vec::with_capacity(batches);
    let cpu_before = (cpu_seconds(Some(load.pid))?, cpu_seconds(None)?);
    let start = tokio::time::Instant::now();
    let write_limit = load.interval * (4 * batches as u32) + WRITE_SLACK;
    for i in 0..batches {
        if start.elapsed() > write_limit {
            eprintln!(
                "  fan-out: the writer gave up after {i} of {batches} batches ({write_limit:?})"
            );
            break;
        }
        tokio::time::sleep_until(start + load.interval * i as u32).await;
        let t = Instant::now();
        let r = async {
            let r = http
                .post(&url)
                .bearer_auth(load.write_token)
                .header("content-type", "application/json")
                .body(load.body.clone())
                .send()
                .await?;
            let status = r.status().as_u16();
            parse_appended(status, &r.bytes().await?)
        }
        .await;
        let d = Instant::now();
        let (first, _) = r.with_context(|| format!("fan-out append {i}"))?;
        let expected_first = load.last_seq + 1 + (i * load.batch) as i64;
        ensure!(
            first == expected_first,
            "fan-out append {i}: first seq {first}, expected {expected_first} (someone else appends?)"
        );
        sent.push(t.duration_since(epoch).as_micros() as u32);
        done.push(d.duration_since(epoch).as_micros() as u32);
        append_lat.push((d - t).as_secs_f64() * 1e3);
    }
    let last_done = *done.last().context("no batch")?;
    out.appended = (done.len() * load.batch) as u64;
    out.append_rate = out.appended as f64 / (f64::from(last_done - sent[0]) / 1e6);
    out.append_lat = Pct::of_ms(&mut append_lat);

    // Delivery, bounded; then whoever has not got everything is stopped.
    let mut results: Vec<Option<Result<Seen, tokio::task::JoinError>>> =
        (0..tasks.len()).map(|_| None).collect();
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        for (t, slot) in tasks.iter_mut().zip(results.iter_mut()) {
            *slot = Some(t.await);
        }
    })
    .await;
    if drained.is_err() {
        let _ = stop_tx.send(true);
        for (t, slot) in tasks.iter_mut().zip(results.iter_mut()) {
            if slot.is_none() {
                *slot = Some(t.await);
            }
        }
    }
    out.mem_delivered = memory(load.pid)?;
    out.wall = start.elapsed().as_secs_f64();
    out.server_cpu = cpu_seconds(Some(load.pid))? - cpu_before.0;
    out.client_cpu = cpu_seconds(None)? - cpu_before.1;

    let mut lat = Vec::with_capacity(out.expected as usize);
    let mut from_sent = Vec::with_capacity(out.expected as usize);
    let mut last_receipt = last_done;
    let mut first_error = None;
    for r in results.into_iter().flatten() {
        let seen = r.context("a subscriber task failed")?;
        out.delivered += seen.received;
        out.order_errors += seen.order_errors;
        if first_error.is_none() {
            first_error = seen.error;
        }
        for (i, at) in seen.receipts.into_iter().enumerate() {
            if at == u32::MAX {
                continue;
            }
            let b = i / load.batch;
            if b >= done.len() {
                // Not appended by the writer: a seq nobody should have sent.
                out.order_errors += 1;
                continue;
            }
            last_receipt = last_receipt.max(at);
            if at < done[b] {
                out.early += 1;
            }
            lat.push(at.saturating_sub(done[b]));
            from_sent.push(at.saturating_sub(sent[b]));
        }
    }
    // The subscribers' connections are closed now (their tasks ended).
    tokio::time::sleep(SETTLE).await;
    out.mem_after = memory(load.pid)?;
    out.drain = Duration::from_micros(u64::from(last_receipt - last_done));
    out.deliveries_per_s = out.delivered as f64 / (f64::from(last_receipt - sent[0]) / 1e6);
    out.lat = Pct::of_us(&mut lat);
    out.from_sent = Pct::of_us(&mut from_sent);
    if out.delivered < out.expected
        && let Some(e) = first_error
    {
        eprintln!("  fan-out: a subscriber stopped early: {e}");
    }
    Ok(out)
}
