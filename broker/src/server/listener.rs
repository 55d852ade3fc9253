//! Accept loop with connection limits and graceful shutdown.
//!
//! `max_connections` bounds the connections served at once (further clients wait in the accept
//! queue); `max_connections_per_ip` bounds those of one address (further ones are closed at
//! once, as Kafka does), so one client's flood of sockets cannot take every slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::tls::Tls;
use super::{Origin, Service};

/// How long open connections get to finish their in-flight requests after shutdown begins.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Serves connections on listener number `index` (of `Config::listeners`) until `shutdown` is
/// cancelled, then lets the open ones drain. With `tls`, each connection first completes a TLS
/// handshake within `request_read_timeout_ms`, or is closed (and counted).
pub async fn serve<S: Service>(
    listener: TcpListener,
    index: usize,
    tls: Option<Arc<Tls>>,
    broker: Arc<S>,
    shutdown: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(broker.config().max_connections));
    let per_ip = PerIp::new(broker.config().max_connections_per_ip);
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
        let Some(slot) = per_ip.take(peer.ip()) else {
            tracing::debug!(%peer, "connection refused: max_connections_per_ip reached");
            broker.events().connections_refused.inc();
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let broker = broker.clone();
        let shutdown = shutdown.clone();
        let origin = Origin {
            peer: Some(peer),
            listener: index,
            principal: None,
        };
        let tls = tls.clone();
        // On an SSL listener a client certificate names the principal; on SASL_SSL, SASL does.
        let sasl = broker
            .config()
            .listeners()
            .get(index)
            .is_some_and(|l| l.protocol.is_sasl());
        connections.spawn(async move {
            tracing::debug!(%peer, "connection opened");
            match tls {
                None => {
                    let (read, write) = stream.into_split();
                    super::connection::serve(read, write, origin, broker, shutdown).await;
                }
                Some(tls) => {
                    let limit = Duration::from_millis(broker.config().request_read_timeout_ms);
                    match tokio::time::timeout(limit, tls.acceptor().accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let mut origin = origin;
                            if !sasl {
                                match tls.principal_of(stream.get_ref().1.peer_certificates()) {
                                    Ok(principal) => origin.principal = principal.map(Into::into),
                                    Err(error) => {
                                        tracing::info!(%peer, %error, "closing connection");
                                        broker.events().tls_handshake_failures.inc();
                                        drop((permit, slot));
                                        return;
                                    }
                                }
                            }
                            let (read, write) = tokio::io::split(stream);
                            super::connection::serve(read, write, origin, broker, shutdown).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                            broker.events().tls_handshake_failures.inc();
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            broker.events().tls_handshake_failures.inc();
                        }
                    }
                }
            }
            tracing::debug!(%peer, "connection closed");
            drop((permit, slot));
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

/// Connections open per client address.
#[derive(Clone)]
struct PerIp {
    limit: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place in its address's count; given back when dropped.
struct IpSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerIp {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            open: Arc::default(),
        }
    }

    /// A slot for a connection from `ip`, unless it has `limit` open already.
    fn take(&self, ip: IpAddr) -> Option<IpSlot> {
        let mut open = self.open.lock();
        let count = open.entry(ip).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            ip,
            open: self.open.clone(),
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock();
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_limit_and_slots_come_back() {
        let per_ip = PerIp::new(2);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 1].into();
        let first = per_ip.take(a).unwrap();
        let _second = per_ip.take(a).unwrap();
        assert!(per_ip.take(a).is_none());
        assert!(per_ip.take(b).is_some());
        drop(first);
        assert!(per_ip.take(a).is_some());
        assert!(
            per_ip.open.lock().get(&b).is_none(),
            "empty entries are removed"
        );
    }
}
