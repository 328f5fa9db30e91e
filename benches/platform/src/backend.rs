//! One backend's run: its database, the server, the set-up, every scenario in order, and
//! the rows, memory points and notes they add to the report (see the crate's documentation
//! for what each scenario does and what it is held to).

use std::{path::Path, time::Duration};

use anyhow::Context;

use crate::{
    api::{self, Api, Setup, batch_body},
    append::{self, AppendLoad, AppendRun},
    ceilings::{self, Load, WrkResult},
    fanout::{self, FanoutLoad, FanoutRun},
    options::{Backend, Options},
    progress,
    report::{BackendReport, Row, Verdict},
    scratch::{Scratch, psql, random_hex},
    server::{Keys, Memory, Runtime, Server, ServerConfig},
    starts::{self, Starts},
    stats::{fmt_ms, mib, thousands},
};

/// Append target per backend (events/s).
fn append_target(backend: Backend) -> f64 {
    match backend {
        Backend::Sqlite => 30_000.0,
        Backend::Postgres => 50_000.0,
    }
}

/// Largest RSS growth from round 1 to round 2 that is not called a leak (KiB): 8 MiB or
/// 5 % of round 1, whichever is larger.
fn leak_bound_kib(round1_kib: u64) -> u64 {
    (8 * 1024).max(round1_kib / 20)
}

/// Everything on one backend. Rows, memory and notes go into `rep` as they are measured, so
/// that a failure still reports what ran; what is created is registered in `scratch`.
pub async fn run_backend(
    o: &Options,
    backend: Backend,
    rep: &mut BackendReport,
    scratch: &mut Scratch,
) -> anyhow::Result<()> {
    let dir = scratch.dir()?;
    let (database_url, pgbench_url, database) = match backend {
        Backend::Sqlite => (
            format!("sqlite://{}/bench.db?mode=rwc", dir.display()),
            None,
            None,
        ),
        Backend::Postgres => {
            let tag = random_hex(4)?;
            let name = format!("agentdesk_bench_{tag}");
            progress(
                backend,
                &format!("creating databases {name} and {name}_pgbench"),
            );
            let db = scratch.database(&o.postgres_url, &name).await?;
            let pgb = scratch
                .database(&o.postgres_url, &format!("{name}_pgbench"))
                .await?;
            progress(backend, "pgbench -i -s 10");
            ceilings::pgbench_init(&pgb).await?;
            (db, Some(pgb), Some(name))
        }
    };
    let keys = Keys::generate()?;
    let config = ServerConfig {
        bin: &o.bin,
        dir: &dir,
        database_url: &database_url,
        keys: &keys,
        db_connections: o.db_connections,
        runtime: Runtime::None,
    };
    progress(backend, "starting the server (runtime none)");
    let mut server = Server::start(config.clone()).await?;
    rep.mem("idle after start-up", server.memory()?);
    let api = Api::new(&server.base)?;
    progress(
        backend,
        "set-up: user, org, keys, agent, 51 sessions, 300 events",
    );
    let setup = api::setup(&api).await.context("set-up")?;
    rep.mem("after set-up", server.memory()?);
    warnings(&mut server, rep, "start-up and set-up");
    if let Some(name) = &database {
        let sql = format!(
            "SELECT count(*) FILTER (WHERE s.ssl) || ' of ' || count(*) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.datname = '{name}'"
        );
        match psql(&o.postgres_url, &sql).await {
            Ok(n) => rep.notes.push(format!(
                "the server's connections to PostgreSQL using TLS after set-up: {n}"
            )),
            Err(e) => rep.notes.push(format!("could not read pg_stat_ssl: {e:#}")),
        }
    }

    reads(
        o,
        backend,
        rep,
        &server,
        &setup,
        pgbench_url.as_deref(),
        &dir,
    )
    .await?;
    rep.mem("after the reads", server.memory()?);
    warnings(&mut server, rep, "the reads");

    let round1 = round(o, backend, 1, rep, &server, &api, &setup).await?;
    warnings(&mut server, rep, "round 1");
    let round2 = round(o, backend, 2, rep, &server, &api, &setup).await?;
    warnings(&mut server, rep, "round 2");
    let (r1, r2) = (round1.rss_kib, round2.rss_kib);
    let bound = leak_bound_kib(r1);
    rep.rows.push(Row {
        scenario: "server RSS at the end of round 2 vs round 1 (same load: appends + fan-out)"
            .into(),
        throughput: format!(
            "{} → {} MiB ({:+.1})",
            mib(r1),
            mib(r2),
            (r2 as f64 - r1 as f64) / 1024.0
        ),
        pct: None,
        ratio: format!("{:.3} × round 1", r2 as f64 / r1.max(1) as f64),
        target: format!("growth ≤ {} MiB", mib(bound)),
        verdict: verdict(r2 <= r1 + bound),
    });

    if o.starts > 0 {
        progress(
            backend,
            &format!("session start ×{}, runtime none", o.starts),
        );
        let starts = starts::run(
            &api,
            &server.base,
            &setup.token,
            &setup.org,
            &setup.agent,
            o.starts,
        )
        .await;
        start_row(rep, "none", starts, 100.0);
        warnings(&mut server, rep, "the session starts");
    }
    rep.mem("at the end", server.memory()?);
    progress(backend, "stopping the server");
    server.stop().await?;

    if o.starts > 0 {
        process_starts(
            o,
            backend,
            rep,
            ServerConfig {
                runtime: Runtime::Process,
                ..config
            },
            &setup,
        )
        .await?;
    }
    Ok(())
}

/// Notes the server's WARN/ERROR log lines since the last look.
fn warnings(server: &mut Server, rep: &mut BackendReport, during: &str) {
    let groups = server.new_warnings();
    if !groups.is_empty() {
        let n: usize = groups.iter().map(|(n, _)| n).sum();
        let list: Vec<String> = groups.iter().map(|(n, k)| format!("{n} × {k}")).collect();
        rep.notes.push(format!(
            "the server logged {n} WARN/ERROR lines during {during}: {}",
            list.join("; ")
        ));
    }
}

fn verdict(pass: bool) -> Verdict {
    if pass { Verdict::Pass } else { Verdict::Fail }
}

/// A row for a scenario that could not be measured (a finding: the server refused or broke).
fn failed_row(rep: &mut BackendReport, scenario: String, target: &str, e: &anyhow::Error) {
    rep.notes.push(format!("{scenario}: {e:#}"));
    rep.rows.push(Row {
        scenario,
        throughput: "failed (see notes)".into(),
        pct: None,
        ratio: "–".into(),
        target: target.into(),
        verdict: Verdict::Fail,
    });
}

/// What a read is compared with.
#[derive(Clone, Copy, Debug)]
struct Ceiling {
    name: &'static str,
    /// Its throughput (req/s or tx/s).
    rate: f64,
    /// The least ratio to it that passes.
    min: f64,
}

/// One wrk read.
struct ReadCase {
    scenario: String,
    path: String,
    token: String,
    /// `None`: judged on latency alone (the ratio to healthz is shown for information).
    ceiling: Option<Ceiling>,
    /// p99 must stay below this (ms).
    p99_max: f64,
}

/// The wrk reads and the ceilings.
async fn reads(
    o: &Options,
    backend: Backend,
    rep: &mut BackendReport,
    server: &Server,
    setup: &Setup,
    pgbench_url: Option<&str>,
    dir: &Path,
) -> anyhow::Result<()> {
    let load = Load {
        connections: o.connections,
        threads: 2,
        seconds: o.seconds(),
    };
    let wrk = |path: String, token: Option<String>| {
        let url = format!("{}{path}", server.base);
        let script = o.wrk_script.clone();
        async move {
            progress(backend, &format!("wrk GET {path}"));
            ceilings::wrk(&script, &url, token.as_deref(), load)
                .await
                .with_context(|| format!("wrk GET {path}"))
        }
    };
    let healthz = wrk("/healthz".into(), None).await?;
    rep.rows.push(Row {
        scenario: "`GET /healthz` (no auth, no database)".into(),
        throughput: format!("{} req/s", thousands(healthz.rps)),
        pct: Some(healthz.pct),
        ratio: "1.00".into(),
        target: "ceiling".into(),
        verdict: Verdict::Ceiling,
    });
    note_errors(rep, "GET /healthz", &healthz);
    let pgbench = match pgbench_url {
        Some(url) => {
            progress(backend, "pgbench -S");
            let (tps, pct) = ceilings::pgbench_select(url, load, &dir.join("pgbench")).await?;
            rep.rows.push(Row {
                scenario: format!(
                    "`pgbench -S -M prepared -c {} -j 2` (one indexed read per transaction)",
                    o.connections
                ),
                throughput: format!("{} tx/s", thousands(tps)),
                pct: Some(pct),
                ratio: format!("{:.2} × healthz", tps / healthz.rps),
                target: "ceiling".into(),
                verdict: Verdict::Ceiling,
            });
            Some(tps)
        }
        None => None,
    };

    let (org, session) = (&setup.org, &setup.read_session);
    let healthz_ceiling = Ceiling {
        name: "healthz",
        rate: healthz.rps,
        min: 0.60,
    };
    let session_ceiling = match pgbench {
        Some(tps) => Ceiling {
            name: "`pgbench -S`",
            rate: tps,
            min: 0.70,
        },
        None => Ceiling {
            min: 0.50,
            ..healthz_ceiling
        },
    };
    let case = |scenario: &str, path: String, token: &str, ceiling, p99_max| ReadCase {
        scenario: scenario.to_owned(),
        path,
        token: token.to_owned(),
        ceiling,
        p99_max,
    };
    let jwt = setup.token.as_str();
    let cases = [
        case(
            "`GET /v1/orgs/{id}` (JWT)",
            format!("/v1/orgs/{org}"),
            jwt,
            Some(healthz_ceiling),
            10.0,
        ),
        case(
            "`GET /v1/orgs/{id}` (API key)",
            format!("/v1/orgs/{org}"),
            &setup.viewer_key,
            Some(healthz_ceiling),
            10.0,
        ),
        case(
            "`GET …/sessions/{id}` (JWT)",
            format!("/v1/orgs/{org}/sessions/{session}"),
            jwt,
            Some(session_ceiling),
            10.0,
        ),
        case(
            "`sessions.list` (50 of 51, JWT)",
            format!("/v1/orgs/{org}/sessions?limit=50"),
            jwt,
            None,
            20.0,
        ),
        case(
            "`events.list?limit=200` (200 of 300, JWT)",
            format!("/v1/orgs/{org}/sessions/{session}/events?limit=200"),
            jwt,
            None,
            20.0,
        ),
        case(
            "`audit.list` (50, JWT)",
            format!("/v1/orgs/{org}/audit-events?limit=50"),
            jwt,
            None,
            20.0,
        ),
    ];
    for c in cases {
        let r = wrk(c.path, Some(c.token)).await?;
        note_errors(rep, &c.scenario, &r);
        let clean = r.errors == 0 && r.non2xx == 0;
        let p99_max = c.p99_max;
        let row = match c.ceiling {
            Some(Ceiling { name, rate, min }) => Row {
                ratio: format!("{:.2} × {name}", r.rps / rate),
                target: format!("≥ {min:.2} × {name}, p99 < {p99_max:.0} ms"),
                verdict: verdict(clean && r.rps / rate >= min && r.pct.p99 < p99_max),
                scenario: c.scenario,
                throughput: format!("{} req/s", thousands(r.rps)),
                pct: Some(r.pct),
            },
            None => Row {
                ratio: format!("{:.2} × healthz", r.rps / healthz.rps),
                target: format!("p99 < {p99_max:.0} ms"),
                verdict: verdict(clean && r.pct.p99 < p99_max),
                scenario: c.scenario,
                throughput: format!("{} req/s", thousands(r.rps)),
                pct: Some(r.pct),
            },
        };
        rep.rows.push(row);
    }
    Ok(())
}

fn note_errors(rep: &mut BackendReport, what: &str, r: &WrkResult) {
    if r.errors > 0 || r.non2xx > 0 {
        rep.notes.push(format!(
            "{what}: {} socket errors and {} non-2xx answers out of {} requests (the row fails)",
            r.errors, r.non2xx, r.requests
        ));
    }
}

/// One round of the write load: appends on one session, appends on one session per writer,
/// the fan-out; then its sessions are stopped. Returns the server's memory at its end.
#[allow(clippy::too_many_arguments)]
async fn round(
    o: &Options,
    backend: Backend,
    k: u32,
    rep: &mut BackendReport,
    server: &Server,
    api: &Api,
    setup: &Setup,
) -> anyhow::Result<Memory> {
    progress(
        backend,
        &format!("round {k}: starting {} sessions", o.writers + 2),
    );
    let sessions = api
        .running_sessions(&setup.token, &setup.org, &setup.agent, o.writers + 2)
        .await
        .with_context(|| format!("round {k}: starting sessions"))?;
    let body = batch_body(o.batch);
    let target = append_target(backend);
    let target_text = format!("≥ {} events/s, p99 < 50 ms", thousands(target));
    let load = |range: std::ops::Range<usize>| AppendLoad {
        base: &server.base,
        token: &setup.operator_key,
        org: &setup.org,
        sessions: &sessions[range],
        writers: o.writers,
        body: body.clone(),
        batch: o.batch,
        duration: o.duration,
    };

    progress(
        backend,
        &format!("round {k}: append, {} writers on one session", o.writers),
    );
    let shape = format!("{} writers × {} events", o.writers, o.batch);
    let one = append::run(load(0..1)).await;
    let one_rate = one.as_ref().map(|r| r.events_per_s).ok();
    append_row(
        rep,
        format!("append, {shape}, one session · round {k}"),
        one,
        target,
        &target_text,
        None,
    );
    rep.mem(
        format!("round {k}: after appends on one session"),
        server.memory()?,
    );

    progress(
        backend,
        &format!(
            "round {k}: append, {} writers on {} sessions",
            o.writers, o.writers
        ),
    );
    let many = append::run(load(1..o.writers + 1)).await;
    append_row(
        rep,
        format!("append, {shape}, {} sessions · round {k}", o.writers),
        many,
        target,
        &target_text,
        one_rate,
    );
    rep.mem(
        format!("round {k}: after appends on {} sessions", o.writers),
        server.memory()?,
    );

    progress(
        backend,
        &format!(
            "round {k}: SSE fan-out, {} subscribers × {} events",
            o.subscribers, o.sse_events
        ),
    );
    let fan_session = &sessions[o.writers + 1];
    let scenario = format!(
        "SSE fan-out, {} subscribers × {} events · round {k}",
        thousands(o.subscribers as f64),
        thousands(o.sse_events as f64)
    );
    let fan_target = "every event to every subscriber, in order; p99 < 50 ms";
    let last_seq = api.last_seq(&setup.token, &setup.org, fan_session).await?;
    let fan = fanout::run(FanoutLoad {
        base: &server.base,
        read_token: &setup.viewer_key,
        write_token: &setup.operator_key,
        org: &setup.org,
        session: fan_session,
        last_seq,
        subscribers: o.subscribers,
        events: o.sse_events,
        body: body.clone(),
        batch: o.batch,
        interval: o.sse_interval,
        pid: server.pid(),
    })
    .await;
    match fan {
        Ok(f) => fanout_row(rep, scenario, fan_target, k, &f),
        Err(e) => failed_row(rep, scenario, fan_target, &e),
    }

    api.stop_sessions(&setup.token, &setup.org, &sessions)
        .await
        .with_context(|| format!("round {k}: stopping its sessions"))?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let end = server.memory()?;
    rep.mem(format!("round {k}: end"), end);
    Ok(end)
}

fn append_row(
    rep: &mut BackendReport,
    scenario: String,
    run: anyhow::Result<AppendRun>,
    target: f64,
    target_text: &str,
    one_session: Option<f64>,
) {
    let run = match run {
        Ok(r) => r,
        Err(e) => return failed_row(rep, scenario, target_text, &e),
    };
    if run.errors > 0 {
        rep.notes.push(format!(
            "{scenario}: {} of {} appends failed (the row fails); first: {}",
            run.errors,
            run.errors + run.ok,
            run.first_error.as_deref().unwrap_or("?")
        ));
    }
    rep.rows.push(Row {
        throughput: format!("{} events/s", thousands(run.events_per_s)),
        pct: Some(run.lat),
        ratio: match one_session {
            Some(one) => format!("{:.2} × one session", run.events_per_s / one),
            None => format!("{:.2} × target", run.events_per_s / target),
        },
        target: target_text.into(),
        verdict: verdict(run.errors == 0 && run.events_per_s >= target && run.lat.p99 < 50.0),
        scenario,
    });
}

fn fanout_row(rep: &mut BackendReport, scenario: String, target: &str, k: u32, f: &FanoutRun) {
    let complete = f.delivered == f.expected && f.order_errors == 0;
    rep.notes.push(format!(
        "fan-out round {k}: {} of {} events appended, {} of {} pairs delivered, {} gaps/duplicates/out-of-order; subscribers attached in {:.1} s; \
         writer {} events/s (append p50 {} ms, p99 {} ms); latency from the append request p50 {} ms, p99 {} ms, max {} ms; \
         {} pairs read before the append answer (counted 0 ms); last delivery {} ms after the last append answer; \
         server RSS {} MiB before, {} with everyone attached (+{:.1}), {} after delivery, {} after they left; \
         CPU from the first append to the end of delivery ({:.1} s): server {:.1} s, this client (writer + subscribers) {:.1} s",
        thousands(f.appended as f64),
        thousands(f.events as f64),
        thousands(f.delivered as f64),
        thousands(f.expected as f64),
        f.order_errors,
        f.connect.as_secs_f64(),
        thousands(f.append_rate),
        fmt_ms(f.append_lat.p50),
        fmt_ms(f.append_lat.p99),
        fmt_ms(f.from_sent.p50),
        fmt_ms(f.from_sent.p99),
        fmt_ms(f.from_sent.max),
        thousands(f.early as f64),
        fmt_ms(f.drain.as_secs_f64() * 1e3),
        mib(f.mem_before.rss_kib),
        mib(f.mem_connected.rss_kib),
        (f.mem_connected.rss_kib as f64 - f.mem_before.rss_kib as f64) / 1024.0,
        mib(f.mem_delivered.rss_kib),
        mib(f.mem_after.rss_kib),
        f.wall,
        f.server_cpu,
        f.client_cpu,
    ));
    rep.mem(format!("round {k}: fan-out attached"), f.mem_connected);
    rep.mem(format!("round {k}: fan-out delivered"), f.mem_delivered);
    rep.mem(format!("round {k}: fan-out left"), f.mem_after);
    rep.rows.push(Row {
        scenario,
        throughput: format!("{} deliveries/s", thousands(f.deliveries_per_s)),
        pct: Some(f.lat),
        ratio: format!(
            "{} / {} delivered",
            thousands(f.delivered as f64),
            thousands(f.expected as f64)
        ),
        target: target.into(),
        verdict: verdict(complete && f.lat.p99 < 50.0),
    });
}

fn start_row(rep: &mut BackendReport, runtime: &str, starts: anyhow::Result<Starts>, p95_max: f64) {
    let scenario =
        format!("session start, runtime `{runtime}` (`POST /sessions` → `running`), sequential");
    let target = format!("p95 < {p95_max:.0} ms");
    let s = match starts {
        Ok(s) => s,
        Err(e) => return failed_row(rep, scenario, &target, &e),
    };
    rep.notes.push(format!(
        "session start ({runtime}): the POST alone p50 {} ms, p95 {} ms; start max {} ms; stop (`POST …/stop` → `stopped`) p50 {} ms, p95 {} ms",
        fmt_ms(s.create.p50),
        fmt_ms(s.create.p95),
        fmt_ms(s.start.max),
        fmt_ms(s.stop.p50),
        fmt_ms(s.stop.p95),
    ));
    rep.rows.push(Row {
        scenario,
        throughput: format!("{} starts", s.start.n),
        pct: Some(s.start),
        ratio: "–".into(),
        target,
        verdict: verdict(s.start.p95 < p95_max),
    });
}

/// Session starts with the `process` runtime, on a second server on the same database.
async fn process_starts(
    o: &Options,
    backend: Backend,
    rep: &mut BackendReport,
    config: ServerConfig<'_>,
    setup: &Setup,
) -> anyhow::Result<()> {
    if !starts::xvnc_available() {
        rep.notes.push(
            "session start with runtime `process` skipped: `Xvnc` is not on PATH (apt-get install tigervnc-standalone-server)".into(),
        );
        return Ok(());
    }
    let before = starts::count_xvnc();
    progress(backend, "starting a second server (runtime process)");
    let mut server = Server::start(config).await?;
    let api = Api::new(&server.base)?;
    let token = api.log_in(&setup.login.0, &setup.login.1).await?;
    progress(
        backend,
        &format!("session start ×{}, runtime process", o.starts),
    );
    let starts = starts::run(
        &api,
        &server.base,
        &token,
        &setup.org,
        &setup.agent,
        o.starts,
    )
    .await;
    start_row(rep, "process", starts, 1000.0);
    warnings(&mut server, rep, "the process-runtime starts");
    server.stop().await?;
    let after = starts::count_xvnc();
    rep.notes.push(format!(
        "`Xvnc` processes before the process-runtime server: {before}, after it stopped: {after}"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leak_bound_is_8_mib_or_5_percent() {
        assert_eq!(leak_bound_kib(50 * 1024), 8 * 1024);
        assert_eq!(leak_bound_kib(400 * 1024), 20 * 1024);
    }
}
