//! Accepting shm sessions on the control socket: the regions go to the client as memory
//! file descriptors.

use std::os::fd::AsFd;
use std::sync::Arc;

use rdma::control::{self, NamedRegion, RegionRole, Response};
use rdma::shm::{export, SharedRing};
use rdma::{Access, RdmaError, RemoteRegion};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::persist::JoinedSlots;
use super::session::{accept_sessions, answer_requests, hello};
use super::slot_holds::SlotHolds;
use super::{CACHE_REGION, GENERATIONS_REGION, INDEX_REGION, OFFSETS_REGION, RING_REGION};
use crate::broker::Broker;

/// What a client may do to its staging ring: WRITE batches, FETCH_AND_ADD the head to reserve
/// space, READ the tail the broker releases (not FETCH_AND_ADD of 0: see `rdma::words`).
pub(super) const RING_ACCESS: Access = Access::READ.union(Access::WRITE).union(Access::ATOMIC);

/// Serves shm sessions until `shutdown`.
pub async fn serve(
    listener: UnixListener,
    broker: Arc<Broker>,
    joined: Arc<JoinedSlots>,
    shutdown: CancellationToken,
) {
    if !broker.cache.write_sealed() {
        tracing::error!(
            "the hot cache could not be sealed read-only (F_SEAL_FUTURE_WRITE needs Linux 5.1+): \
             every shm session will be refused"
        );
    }
    let accept = || async { listener.accept().await.map(|(stream, _)| stream) };
    accept_sessions(
        "shm",
        accept,
        shutdown,
        broker.one_sided_sessions.clone(),
        |stream, id| {
            let (broker, joined) = (broker.clone(), joined.clone());
            async move { session(stream, id, &broker, &joined).await }
        },
    )
    .await;
}

async fn session(
    mut stream: UnixStream,
    id: u64,
    broker: &Broker,
    joined: &JoinedSlots,
) -> Result<(), RdmaError> {
    let mut admitted = hello(&mut stream, broker, "127.0.0.1".to_string()).await?;
    // One mapping covers every slot here: only a session that may commit anywhere gets it.
    admitted.joins_slots = admitted.commits_anywhere;
    let ring = SharedRing::new((broker.config.rdma_ring_kib as u64) << 10)?;
    // Only sealed memory files leave the process (see `rdma::shm::export`): a refusal is told
    // to the client rather than a bare hang-up. The arena and its generations only to a
    // session that may read every topic.
    let exported = (|| {
        let mut fds = Vec::new();
        if admitted.reads_cache {
            fds.push(export(broker.cache.memfd(), Access::READ)?);
            fds.push(export(broker.cache.generations_memfd(), Access::READ)?);
        }
        if admitted.joins_slots {
            fds.push(export(
                broker.offsets.table().words().memfd(),
                Access::READ | Access::ATOMIC,
            )?);
        }
        fds.push(export(ring.fd(), RING_ACCESS)?);
        if let Some(index) = broker.published.as_ref().filter(|_| admitted.reads_cache) {
            fds.push(export(index.words().memfd(), Access::READ)?);
        }
        Ok::<_, RdmaError>(fds)
    })();
    let exported = match exported {
        Ok(fds) => fds,
        Err(error) => {
            let refusal = Response::Error {
                message: error.to_string(),
            };
            control::write_frame_async_plain(&mut stream, &refusal, &[]).await?;
            return Err(error);
        }
    };
    let welcome = Response::Welcome {
        session: id,
        regions: regions(broker, &ring, admitted.reads_cache, admitted.joins_slots),
        ring_capacity: ring.capacity(),
        qp: None,
    };
    let fds: Vec<_> = exported.iter().map(|fd| fd.as_fd()).collect();
    control::write_frame_async(&mut stream, &welcome, &[], &fds).await?;
    drop(exported);
    admitted.log_opened(id, "shm");

    let holds = SlotHolds::new(broker.offsets.table());
    answer_requests(
        &mut stream,
        broker,
        &admitted,
        joined,
        &holds,
        &ring,
        |_| Ok(()),
    )
    .await
}

/// The regions of a session, in the order of their descriptors (shm) or keys (verbs): the
/// arena and its generations only with `reads_cache`, the offset table only with `offsets`,
/// then the ring, then the published index (with `reads_cache`, where there is one: it
/// locates every subscribed partition's batches in the arena).
pub(super) fn regions(
    broker: &Broker,
    ring: &SharedRing,
    reads_cache: bool,
    offsets: bool,
) -> Vec<NamedRegion> {
    let mut all = vec![
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
        // No right on the table as a whole: READ and ATOMIC come per slot with Join.
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
            RING_ACCESS,
        ),
    ];
    if let Some(index) = &broker.published {
        all.push(named(
            RegionRole::Index,
            INDEX_REGION,
            index.words().len() as u64 * 8,
            Access::READ,
        ));
    }
    all.into_iter()
        .filter(|r| match r.role {
            RegionRole::Cache | RegionRole::Generations | RegionRole::Index => reads_cache,
            RegionRole::Offsets => offsets,
            RegionRole::Ring => true,
        })
        .collect()
}

fn named(role: RegionRole, id: rdma::RegionId, len: u64, access: Access) -> NamedRegion {
    NamedRegion {
        role,
        region: RemoteRegion { id, len, access },
        key: None,
    }
}
