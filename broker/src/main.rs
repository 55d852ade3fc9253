//! The `hotwire` binary.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use hotwire_broker::broker::Broker;
use hotwire_broker::config::{Args, Config};
use hotwire_broker::{maintenance, metrics, one_sided, server};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let config = match Config::load(Args::parse()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("hotwire: {error}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|error| {
        eprintln!(
            "hotwire: invalid log level {:?} ({error}); using info",
            config.log_level
        );
        EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hotwire-net")
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    let broker = Broker::open(config).await?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(%listen, storage = broker.store.url(), "hotwire serving Kafka");

    let shutdown = CancellationToken::new();
    if let Some(addr) = broker.config.metrics_listen {
        let metrics_listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))?;
        tracing::info!(%addr, "serving metrics at /metrics");
        tokio::spawn(metrics::serve(
            metrics_listener,
            broker.metrics.clone(),
            shutdown.clone(),
        ));
    }
    let mut serving = tokio::spawn(server::serve(listener, broker.clone(), shutdown.clone()));
    let mut maintaining = tokio::spawn(maintenance::run(broker.clone(), shutdown.clone()));
    let mut rdma_tasks = Vec::new();
    let joined = std::sync::Arc::new(one_sided::JoinedSlots::default());
    if let Some(path) = broker.config.rdma_shm_socket.clone() {
        // A socket file left by an earlier run would make bind fail.
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", path.display()))?;
        tracing::info!(socket = %path.display(), "serving the one-sided path (shm)");
        rdma_tasks.push(tokio::spawn(one_sided::serve(
            listener,
            broker.clone(),
            joined.clone(),
            shutdown.clone(),
        )));
    }
    #[cfg(feature = "verbs")]
    if let Some(addr) = broker.config.rdma_verbs_listen {
        let server = one_sided::verbs::VerbsServer::open(&broker)
            .map_err(|e| anyhow::anyhow!("cannot serve RDMA verbs on {addr}: {e}"))?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        tracing::info!(%addr, "serving the one-sided path (verbs)");
        rdma_tasks.push(tokio::spawn(one_sided::verbs::serve(
            listener,
            std::sync::Arc::new(server),
            broker.clone(),
            joined.clone(),
            shutdown.clone(),
        )));
    }
    if !rdma_tasks.is_empty() {
        rdma_tasks.push(tokio::spawn(one_sided::persist_loop(
            broker.clone(),
            joined,
            Duration::from_millis(broker.config.rdma_commit_interval_ms),
            shutdown.clone(),
        )));
    }
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
        _ = &mut serving => anyhow::bail!("listener stopped unexpectedly"),
        // A lease not renewed in time: another broker may own the storage now.
        reason = broker.root_claim.lost() => anyhow::bail!("stopping: lost the storage root: {reason}"),
        outcome = &mut maintaining => match outcome {
            // Another broker owns the storage now: stop at once, flushing nothing more.
            Ok(Err(error)) => anyhow::bail!("stopping: {error}"),
            Ok(Ok(())) => anyhow::bail!("storage maintenance stopped unexpectedly"),
            Err(error) => anyhow::bail!("storage maintenance failed: {error}"),
        },
    }
    shutdown.cancel();
    // The final persist of one-sided commits goes through the internal log: before the flush.
    for task in rdma_tasks {
        let _ = task.await;
    }
    // Flush first, so producers waiting on acks=all are answered while connections drain.
    let limit = Duration::from_millis(broker.config.shutdown_flush_ms);
    if tokio::time::timeout(limit, broker.shutdown())
        .await
        .is_err()
    {
        anyhow::bail!("storage did not take the pending data within {limit:?}; exiting without it");
    }
    let _ = serving.await;
    // Last: a lease deleted now lets the next broker start without waiting for it to expire.
    broker.root_claim.release().await;
    tracing::info!("all data flushed; bye");
    Ok(())
}
