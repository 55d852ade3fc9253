//! Accept loop with a connection limit and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::Broker;

/// How long open connections get to finish their in-flight requests after shutdown begins.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Serves connections until `shutdown` is cancelled, then lets the open ones drain.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>, shutdown: CancellationToken) {
    let limit = Arc::new(Semaphore::new(broker.config.max_connections));
    let connections = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let broker = broker.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            tracing::debug!(%peer, "connection opened");
            super::connection::serve(stream, broker, shutdown).await;
            tracing::debug!(%peer, "connection closed");
            drop(permit);
        });
    }
    connections.close();
    if tokio::time::timeout(DRAIN_LIMIT, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain limit; closing them");
    }
}
