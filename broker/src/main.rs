//! The `hotwire` binary.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::FromArgMatches;
use hotwire_broker::broker::Broker;
use hotwire_broker::cluster::admin;
use hotwire_broker::cluster::model::{BrokerInfo, Endpoint};
use hotwire_broker::cluster::{ClusterConfig, Member, Node};
use hotwire_broker::config::{Args, Command, Config};
use hotwire_broker::security::acl::store::EtcdAcls;
use hotwire_broker::security::acl::Acls;
use hotwire_broker::security::principal_mapping::PrincipalMapper;
use hotwire_broker::security::users;
use hotwire_broker::server::tls::{Tls, TlsFiles};
use hotwire_broker::{maintenance, metrics, one_sided, server};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // The flags as clap declares them, described from docs/configuration.md.
    let matches = hotwire_broker::config_doc::command().get_matches();
    let mut args = match Args::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(error) => error.exit(),
    };
    match args.command.take() {
        Some(Command::Admin { cluster, action }) => {
            return subcommand("admin", admin::run(&cluster, &action))
        }
        Some(Command::Users {
            storage,
            cluster,
            action,
        }) => {
            let run = users::run(storage.as_deref(), cluster.as_deref(), &action);
            return subcommand("users", run);
        }
        None => {}
    }
    let config = match Config::load(args) {
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

/// Runs a subcommand (`hotwire admin`, `hotwire users`): prints what it returns, or the error.
fn subcommand<E: std::fmt::Display>(
    name: &str,
    command: impl std::future::Future<Output = Result<String, E>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hotwire {name}: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("hotwire {name}: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    if config.cluster.is_some() {
        return run_cluster(config).await;
    }
    // TLS files are checked before the storage root is claimed.
    let tls = load_tls(&config)?;
    let broker = Broker::open(config).await?;
    let listeners = bind_listeners(&broker.config, tls).await?;
    tracing::info!(storage = broker.store.url(), "hotwire serving Kafka");

    let shutdown = CancellationToken::new();
    if let Some(addr) = broker.config.metrics_listen {
        serve_metrics(addr, broker.metrics.clone(), &shutdown).await?;
    }
    let mut serving = serve_listeners(listeners, broker.clone(), &shutdown);
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
        reason = root_lost(&broker) => anyhow::bail!("stopping: lost the storage root: {reason}"),
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
    if let Some(claim) = &broker.root_claim {
        claim.release().await;
    }
    tracing::info!("all data flushed; bye");
    Ok(())
}

/// Resolves when the broker's claim on its storage root is lost (never without one).
async fn root_lost(broker: &Broker) -> String {
    match &broker.root_claim {
        Some(claim) => claim.lost().await,
        None => std::future::pending().await,
    }
}

/// A broker of a cluster: joins it in etcd, then serves the shards the controller gives it.
async fn run_cluster(config: Config) -> anyhow::Result<()> {
    let url = config.cluster.clone().unwrap_or_default();
    let mut cluster = ClusterConfig::from_url(&url)?;
    cluster.shards = config.cluster_shards;
    cluster.lease_ttl = Duration::from_secs(config.cluster_lease_s);
    cluster.poll = Duration::from_millis(config.cluster_poll_ms);
    cluster.load_min_gap = config.cluster_load_min_gap_bytes_s;
    let listeners = bind_listeners(&config, load_tls(&config)?).await?;
    let (host, port) = config.advertised();
    let endpoints = config
        .listeners()
        .into_iter()
        .map(|l| Endpoint {
            protocol: l.protocol.name().to_string(),
            host: l.advertised.0,
            port: u16::try_from(l.advertised.1).unwrap_or(0),
        })
        .collect();
    let info = BrokerInfo {
        node_id: config.node_id,
        host,
        port: u16::try_from(port).unwrap_or(0),
        rack: config.rack.clone(),
        endpoints,
        load: Default::default(),
    };
    tracing::info!(cluster = %url, node = info.node_id, "joining the cluster");
    let member = Member::join(&cluster, info).await?;
    // Loaded before the listeners serve, so no request is judged against an empty set.
    let acls = Acls::open(
        Arc::new(EtcdAcls::new(member.etcd().clone(), member.keys().prefix())),
        config.authorizer_settings(),
        config.acl_authorizer,
    )
    .await?;
    let node = Node::new(member, config, Arc::new(acls));
    tracing::info!(storage = %node.config.storage, "hotwire serving Kafka in a cluster");
    let shutdown = CancellationToken::new();
    if let Some(addr) = node.config.metrics_listen {
        serve_metrics(addr, node.clone(), &shutdown).await?;
    }
    let mut serving = serve_listeners(listeners, node.clone(), &shutdown);
    let engines_stop = CancellationToken::new();
    let mut running = tokio::spawn(node.clone().run(engines_stop.clone()));
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
        _ = &mut serving => anyhow::bail!("listener stopped unexpectedly"),
        _ = &mut running => anyhow::bail!("cluster membership stopped unexpectedly"),
    }
    // Flush every shard and leave (the lease is revoked: the others take over at once), then
    // let the connections drain.
    engines_stop.cancel();
    let limit = Duration::from_millis(node.config.shutdown_flush_ms);
    if tokio::time::timeout(limit, running).await.is_err() {
        anyhow::bail!("shards not flushed within {limit:?}; exiting without them");
    }
    shutdown.cancel();
    let _ = serving.await;
    tracing::info!("all shards flushed; left the cluster; bye");
    Ok(())
}

/// A bound listener: its socket, its index in `Config::listeners`, and TLS for an SSL one.
type Bound = (TcpListener, usize, Option<Arc<Tls>>);

/// The SSL listener's certificate and key, read from their files (none without an SSL
/// listener).
fn load_tls(config: &Config) -> anyhow::Result<Option<Arc<Tls>>> {
    if !config.listeners().iter().any(|l| l.protocol.is_tls()) {
        return Ok(None);
    }
    let files = TlsFiles {
        cert: config.tls_cert_file.clone().unwrap_or_default(),
        key: config.tls_key_file.clone().unwrap_or_default(),
        client_ca: config.tls_client_ca_file.clone(),
    };
    // validate() parsed the rules already.
    let principals = PrincipalMapper::parse(&config.ssl_principal_mapping_rules)?;
    Ok(Some(Arc::new(Tls::load(files, principals)?)))
}

/// Binds every listener of `config`, the SSL one with `tls`; SIGHUP reloads `tls` from its
/// files from then on (a failed reload keeps the current certificate).
async fn bind_listeners(config: &Config, tls: Option<Arc<Tls>>) -> anyhow::Result<Vec<Bound>> {
    let mut bound = Vec::new();
    for (index, listener) in config.listeners().into_iter().enumerate() {
        let tls = listener.protocol.is_tls().then(|| tls.clone()).flatten();
        let addr = listener.addr;
        let socket = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        tracing::info!(%addr, protocol = listener.protocol.name(), advertised = ?listener.advertised, "listening");
        bound.push((socket, index, tls));
    }
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match tls.as_ref().map(|tls| tls.reload()) {
                None => tracing::info!("SIGHUP: no TLS listener to reload"),
                Some(Ok(())) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
                Some(Err(error)) => tracing::error!(
                    %error,
                    "SIGHUP: TLS not reloaded; the current certificate stays"
                ),
            }
        }
    });
    Ok(bound)
}

/// Serves every bound listener; the task ends when one stops unexpectedly, or once all have
/// drained after `shutdown`.
fn serve_listeners<S: server::Service>(
    listeners: Vec<Bound>,
    service: Arc<S>,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let mut serving = tokio::task::JoinSet::new();
        for (socket, index, tls) in listeners {
            serving.spawn(server::serve(
                socket,
                index,
                tls,
                service.clone(),
                shutdown.clone(),
            ));
        }
        while serving.join_next().await.is_some() {
            if !shutdown.is_cancelled() {
                return;
            }
        }
    })
}

/// Serves `source`'s metrics at `GET /metrics` on `addr` until `shutdown`.
async fn serve_metrics<M: metrics::Render>(
    addr: std::net::SocketAddr,
    source: std::sync::Arc<M>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))?;
    tracing::info!(%addr, "serving metrics at /metrics");
    tokio::spawn(metrics::serve(listener, source, shutdown.clone()));
    Ok(())
}
