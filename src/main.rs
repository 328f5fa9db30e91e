//! The `agentdesk` binary: `serve` (default), `worker`, `migrate`, `openapi`, `healthcheck`.
#![forbid(unsafe_code)]

use std::{path::PathBuf, process::ExitCode};

use agentdesk::{Config, config::LogFormat};
use clap::{Parser, Subcommand};
use migration::{Migrator, MigratorTrait};

/// mimalloc instead of glibc's allocator: a request allocates and frees many small objects
/// (headers, JSON values, rows); with glibc, `malloc`/`free` took about a fifth of a list
/// request's CPU and the heap kept growing from one load round to the next (README,
/// "Benchmarks").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Agentdesk: the control plane for AI desktop agents.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply or roll back database migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Print or write the v1 OpenAPI spec (YAML).
    Openapi {
        /// Exit non-zero when the committed spec differs from the generated one.
        #[arg(long)]
        check: bool,
        /// Write to FILE instead of stdout (with --check: the file to compare against).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Run only the job worker (provisioning, stops, retries, the reaper), apart from API
    /// nodes; `worker_concurrency` jobs at once.
    Worker,
    /// Exit 0 when the local server's /healthz answers 200 (for container HEALTHCHECK).
    Healthcheck {
        /// Address to probe; defaults to the configured listen address (0.0.0.0 → 127.0.0.1).
        #[arg(long)]
        addr: Option<String>,
    },
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Apply all pending migrations.
    Up,
    /// Roll back the last N migrations (default 1).
    Down { n: Option<u32> },
    /// List applied and pending migrations.
    Status,
    /// Drop every table and apply all migrations (destroys data).
    Fresh,
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Pretty => builder.init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Openapi { check, out } = &command {
        return openapi(*check, out.clone());
    }
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("agentdesk: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::Healthcheck { addr } = &command {
        return healthcheck(addr.clone().unwrap_or_else(|| config.listen.clone())).await;
    }
    init_tracing(&config);
    let result = match command {
        Command::Serve => serve(config).await,
        Command::Worker => worker(config).await,
        Command::Migrate { action } => migrate(config, action).await,
        Command::Openapi { .. } | Command::Healthcheck { .. } => unreachable!(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "agentdesk failed");
            eprintln!("agentdesk: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let addr = config.listen_addr();
    let state = agentdesk::build_state(config).await?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tracing::info!(
        api = %format!("http://{bound}/v1"),
        docs = %format!("http://{bound}/docs/"),
        "agentdesk listening on http://{bound} (API http://{bound}/v1, docs http://{bound}/docs/)"
    );
    agentdesk::serve(state, listener, shutdown_signal()).await?;
    tracing::info!("agentdesk stopped");
    Ok(())
}

async fn worker(mut config: Config) -> anyhow::Result<()> {
    if config.database_url().starts_with("sqlite:") {
        anyhow::bail!(
            "`agentdesk worker` needs PostgreSQL (`database_url`): with SQLite everything runs in \
             one `serve` process (worker_concurrency > 0), whose in-process event bus a separate \
             worker could not reach"
        );
    }
    config.worker_concurrency = config.worker_concurrency.max(1);
    let state = agentdesk::build_state(config).await?;
    agentdesk::run_worker(state, shutdown_signal()).await?;
    tracing::info!("worker stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received: finishing in-flight requests");
}

async fn migrate(config: Config, action: MigrateAction) -> anyhow::Result<()> {
    let db = agentdesk::app::connect(&config).await?;
    match action {
        MigrateAction::Up => Migrator::up(&db, None).await?,
        MigrateAction::Down { n } => Migrator::down(&db, Some(n.unwrap_or(1))).await?,
        MigrateAction::Fresh => Migrator::fresh(&db).await?,
        MigrateAction::Status => {
            for m in Migrator::get_applied_migrations(&db).await? {
                println!("applied  {}", m.name());
            }
            for m in Migrator::get_pending_migrations(&db).await? {
                println!("pending  {}", m.name());
            }
        }
    }
    Ok(())
}

fn openapi(check: bool, out: Option<PathBuf>) -> ExitCode {
    let spec = agentdesk::api::spec_yaml();
    if check {
        let path = out.unwrap_or_else(|| PathBuf::from("openapi/v1.yaml"));
        return match std::fs::read_to_string(&path) {
            Ok(committed) if committed == spec => ExitCode::SUCCESS,
            Ok(_) => {
                eprintln!(
                    "{} differs from the spec the code declares: run `agentdesk openapi --out {}` and commit it",
                    path.display(),
                    path.display()
                );
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("cannot read {}: {e}", path.display());
                ExitCode::FAILURE
            }
        };
    }
    match out {
        Some(path) => match std::fs::write(&path, spec) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cannot write {}: {e}", path.display());
                ExitCode::FAILURE
            }
        },
        None => {
            print!("{spec}");
            ExitCode::SUCCESS
        }
    }
}

async fn healthcheck(addr: String) -> ExitCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = addr
        .replace("0.0.0.0", "127.0.0.1")
        .replace("[::]", "[::1]");
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(&addr).await?;
        stream
            .write_all(
                format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut buf = vec![0u8; 64];
        let n = stream.read(&mut buf).await?;
        Ok::<bool, std::io::Error>(buf[..n].starts_with(b"HTTP/1.1 200"))
    };
    match tokio::time::timeout(std::time::Duration::from_secs(3), probe).await {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
