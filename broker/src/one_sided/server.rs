//! Accepting shm sessions on the control socket: the regions go to the client as memory
//! file descriptors.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rdma::control::{self, NamedRegion, RegionRole, Response};
use rdma::shm::{export, SharedRing};
use rdma::{Access, RdmaError, RemoteRegion};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::persist::JoinedSlots;
use super::session::{answer_requests, hello};
use super::{CACHE_REGION, GENERATIONS_REGION, OFFSETS_REGION, RING_REGION};
use crate::broker::Broker;

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// A number for a new session (shm and verbs alike), for the logs.
pub(super) fn next_session() -> u64 {
    NEXT_SESSION.fetch_add(1, Ordering::Relaxed)
}

/// Serves sessions until `shutdown`.
pub async fn serve(
    listener: UnixListener,
    broker: Arc<Broker>,
    joined: Arc<JoinedSlots>,
    shutdown: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "rdma control accept failed");
                    continue;
                }
            },
        };
        let broker = broker.clone();
        let joined = joined.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let id = next_session();
            tokio::select! {
                _ = shutdown.cancelled() => {}
                outcome = session(stream, id, &broker, &joined) => match outcome {
                    Ok(()) => tracing::debug!(session = id, "rdma session closed"),
                    Err(error) => tracing::info!(session = id, %error, "rdma session ended"),
                },
            }
        });
    }
}

async fn session(
    mut stream: UnixStream,
    id: u64,
    broker: &Broker,
    joined: &JoinedSlots,
) -> Result<(), RdmaError> {
    let (client, _) = hello(&mut stream, broker).await?;
    let ring = SharedRing::new((broker.config.rdma_ring_kib as u64) << 10)?;
    let cache_fd = export(broker.cache.memfd(), Access::READ)?;
    let generations_fd = export(broker.cache.generations_memfd(), Access::READ)?;
    let offsets_fd = export(broker.offsets.table().words().memfd(), Access::ATOMIC)?;
    let ring_fd = export(ring.fd(), Access::WRITE | Access::ATOMIC)?;
    let welcome = Response::Welcome {
        session: id,
        regions: regions(broker, &ring),
        ring_capacity: ring.capacity(),
        qp: None,
    };
    let fds = [
        cache_fd.as_fd(),
        generations_fd.as_fd(),
        offsets_fd.as_fd(),
        ring_fd.as_fd(),
    ];
    control::write_frame_async(&mut stream, &welcome, &[], &fds).await?;
    drop((cache_fd, generations_fd, offsets_fd, ring_fd));
    tracing::info!(session = id, client = %client, "rdma session opened");

    answer_requests(&mut stream, broker, joined, &ring, |_| Ok(())).await
}

/// The four regions of a session, in the order of their descriptors (shm) or keys (verbs).
pub(super) fn regions(broker: &Broker, ring: &SharedRing) -> Vec<NamedRegion> {
    vec![
        named(
            RegionRole::Cache,
            CACHE_REGION,
            broker.cache.capacity() as u64,
            Access::READ,
        ),
        named(
            RegionRole::Generations,
            GENERATIONS_REGION,
            broker.cache.block_count() as u64 * 8,
            Access::READ,
        ),
        // No right on the table as a whole: ATOMIC comes per slot with Join.
        named(
            RegionRole::Offsets,
            OFFSETS_REGION,
            broker.offsets.table().words().len() as u64 * 8,
            Access::empty(),
        ),
        named(
            RegionRole::Ring,
            RING_REGION,
            ring.region_len(),
            Access::WRITE | Access::ATOMIC,
        ),
    ]
}

fn named(role: RegionRole, id: rdma::RegionId, len: u64, access: Access) -> NamedRegion {
    NamedRegion {
        role,
        region: RemoteRegion { id, len, access },
        key: None,
    }
}
