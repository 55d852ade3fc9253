//! The verbs provider's side of the one-sided path: RDMA NICs (feature `verbs`).
//!
//! At start the broker opens the configured device and registers, once, the HotCache arena,
//! its generation table, the published index and the offset table, all with no remote right
//! for their own keys: peers reach them through memory windows only. A session whose principal
//! may read every topic gets a READ window on each of the first three, bound through its queue
//! pair (valid for its peer alone, revoked when it ends). A client connects to `rdma_verbs_listen` over TCP and sends `Hello` with
//! its queue pair's address; the broker creates a queue pair and a staging ring (registered
//! WRITE + ATOMIC) for the session, connects the queue pair to the client's (RTR, RTS) and
//! answers `Welcome` with its own address and every region's key. A `Join` binds one memory
//! window per joined slot through the session's queue pair (once per slot, at most
//! [`MAX_WINDOWS`] per session), so the NIC itself confines the client to those slots; the
//! windows are revoked when the session ends. A bind that fails ends the session (the queue
//! pair is in the error state then). Requests are answered exactly as on shm.
//!
//! On a NIC whose atomics are atomic only among its own operations (`IBV_ATOMIC_HCA`), the
//! broker stores slots that sessions hold (TCP commits on them) through a loopback queue pair
//! of its own, so that a store and a client's fetch-and-add never lose one another.
//!
//! The control channel is plain TCP: the broker refuses to serve it without `rdma_token`, and
//! the token travels in clear, so it belongs on the fabric's trusted network.

use std::collections::HashMap;
use std::sync::Arc;

use rdma::control::{self, RegionRole, Response};
use rdma::shm::SharedRing;
use rdma::verbs::{Device, Loopback, MemoryRegion, MemoryWindow, VerbsConfig};
use rdma::{Access, RdmaError};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::persist::JoinedSlots;
use super::server::regions;
use super::session::{accept_sessions, answer_requests, hello};
use super::slot_holds::SlotHolds;
use crate::broker::Broker;
use crate::offsets::HeldSlotWriter;

/// Memory windows one session may hold (joined offset slots).
pub const MAX_WINDOWS: usize = super::slot_holds::MAX_HELD_SLOTS;

/// The device and the regions every verbs session shares.
pub struct VerbsServer {
    device: Arc<Device>,
    cache: Arc<MemoryRegion>,
    generations: Arc<MemoryRegion>,
    offsets: Arc<MemoryRegion>,
    /// The published partition index (READ through windows, like the arena).
    index: Option<Arc<MemoryRegion>>,
}

impl VerbsServer {
    /// Opens the configured device and registers the shared regions; fails with
    /// [`RdmaError::NoDevice`] on a machine without RDMA.
    pub fn open(broker: &Broker) -> Result<Self, RdmaError> {
        let config = VerbsConfig {
            device: broker.config.rdma_verbs_device.clone(),
            port: broker.config.rdma_verbs_port,
            gid_index: broker.config.rdma_verbs_gid_index,
            traffic_class: broker.config.rdma_verbs_traffic_class,
            service_level: broker.config.rdma_verbs_service_level,
            ..VerbsConfig::default()
        };
        let device = Device::open(&config)?;
        if !device.supports_windows() {
            return Err(RdmaError::NoDevice(format!(
                "{} cannot bind type-2 memory windows, which per-slot offset grants need",
                device.name()
            )));
        }
        // The arena, its generations and the index: no right for their own keys, READ only
        // through a window bound per session (see `session`).
        let shared = |fd, len| device.register_fd(fd, len, Access::empty(), Access::READ);
        let cache = Arc::new(shared(broker.cache.memfd(), broker.cache.capacity())?);
        let generations = Arc::new(shared(
            broker.cache.generations_memfd(),
            broker.cache.block_count() * 8,
        )?);
        let table = broker.offsets.table().words();
        let offsets = Arc::new(device.register_fd(
            table.memfd(),
            table.len() * 8,
            Access::empty(),
            Access::READ | Access::ATOMIC,
        )?);
        if !device.atomics_are_global() && broker.config.rdma_shm_socket.is_some() {
            // An shm session's CPU fetch-and-add on a slot could be lost inside a verbs
            // session's (or the loopback's) NIC atomic on it, and the other way round.
            return Err(RdmaError::Refused(format!(
                "{}'s atomics are atomic only among RDMA operations (IBV_ATOMIC_HCA), so shm \
                 sessions (CPU atomics) and verbs sessions could undo each other's commits: \
                 serve one of rdma_shm_socket and rdma_verbs_listen",
                device.name()
            )));
        }
        if !device.atomics_are_global() {
            // Atomic among RDMA operations only (IBV_ATOMIC_HCA): a CPU store of a TCP
            // OffsetCommit racing a client's fetch-and-add on the same slot could be lost, so
            // slots that sessions hold are stored through the NIC.
            let loopback = Loopback::open(&device, &offsets)?;
            broker
                .offsets
                .table()
                .route_held_writes(Box::new(NicSlotWriter(loopback)))
                .map_err(RdmaError::Refused)?;
            tracing::info!(
                device = device.name(),
                "NIC atomics are not atomic against the CPU: held offset slots are stored \
                 through a loopback queue pair"
            );
        }
        let index = match &broker.published {
            Some(index) => Some(Arc::new(shared(
                index.words().memfd(),
                index.words().len() * 8,
            )?)),
            None => None,
        };
        tracing::info!(device = device.name(), "RDMA regions registered");
        Ok(VerbsServer {
            device,
            cache,
            generations,
            offsets,
            index,
        })
    }
}

/// Stores held offset slots through the NIC (a READ and one FETCH_AND_ADD of the difference),
/// so that they are atomic with the clients' fetch-and-adds (see `rdma::words`): two NIC
/// operations under the offset table's lock, however a client hammers the slot.
struct NicSlotWriter(Loopback);

impl HeldSlotWriter for NicSlotWriter {
    fn store(&self, slot: usize, value: u64) -> Result<(), String> {
        self.0
            .store(slot as u64 * 8, value)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Serves verbs sessions until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    server: Arc<VerbsServer>,
    broker: Arc<Broker>,
    joined: Arc<JoinedSlots>,
    shutdown: CancellationToken,
) {
    let accept = || async { listener.accept().await.map(|(stream, _)| stream) };
    accept_sessions(
        "verbs",
        accept,
        shutdown,
        broker.one_sided_sessions.clone(),
        |stream, id| {
            let (server, broker, joined) = (server.clone(), broker.clone(), joined.clone());
            async move { session(stream, id, &server, &broker, &joined).await }
        },
    )
    .await;
}

async fn session(
    mut stream: TcpStream,
    id: u64,
    server: &VerbsServer,
    broker: &Broker,
    joined: &JoinedSlots,
) -> Result<(), RdmaError> {
    let _ = stream.set_nodelay(true);
    // The peer's address is what host-specific ACLs match: without it, no session.
    let host = stream
        .peer_addr()
        .map_err(|source| RdmaError::Io {
            context: "the verbs client's address".into(),
            source,
        })?
        .ip()
        .to_string();
    let mut admitted = hello(&mut stream, broker, host).await?;
    // Each joined slot is a window the NIC enforces for this queue pair alone.
    admitted.joins_slots = true;
    let Some(remote) = admitted.qp else {
        let message = "a verbs session needs the client's queue pair in Hello".to_string();
        let refusal = Response::Error {
            message: message.clone(),
        };
        control::write_frame_async_plain(&mut stream, &refusal, &[]).await?;
        return Err(RdmaError::Refused(message));
    };
    let ring = SharedRing::new((broker.config.rdma_ring_kib as u64) << 10)?;
    let ring_region = server.device.register_fd(
        ring.fd(),
        ring.region_len() as usize,
        super::server::RING_ACCESS,
        Access::empty(),
    )?;
    let mut qp = server.device.queue_pair()?;
    qp.connect(&remote)?;
    // The arena, its generations and the index reach a session only through READ windows
    // bound for its queue pair, and only a session whose principal may read every topic
    // (`reads_cache`) gets them: the registrations' own keys allow nothing. Dropped (revoked)
    // when the session ends, before its queue pair.
    let mut shared_windows: Vec<(RegionRole, MemoryWindow)> = Vec::new();
    if admitted.reads_cache {
        let mut shared = vec![
            (RegionRole::Cache, &server.cache),
            (RegionRole::Generations, &server.generations),
        ];
        if let Some(index) = &server.index {
            shared.push((RegionRole::Index, index));
        }
        for (role, region) in shared {
            let len = region.len() as u64;
            let window =
                tokio::task::block_in_place(|| qp.bind_window(region, 0, len, Access::READ))?;
            shared_windows.push((role, window));
        }
    }
    let window_key = |role: RegionRole| {
        shared_windows
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, window)| window.key())
    };
    let mut named = regions(broker, &ring, admitted.reads_cache, true);
    for entry in &mut named {
        entry.key = match entry.role {
            RegionRole::Cache | RegionRole::Generations | RegionRole::Index => {
                window_key(entry.role)
            }
            // Reached only through the windows of joined slots.
            RegionRole::Offsets => None,
            RegionRole::Ring => Some(ring_region.key()),
        };
    }
    let welcome = Response::Welcome {
        session: id,
        regions: named,
        ring_capacity: ring.capacity(),
        qp: Some(qp.address()),
    };
    control::write_frame_async_plain(&mut stream, &welcome, &[]).await?;
    admitted.log_opened(id, "verbs");

    // Released after the windows below are revoked (dropped in reverse order).
    let holds = SlotHolds::new(broker.offsets.table());
    // Dropped (revoked) when the session ends, before its queue pair; one per joined slot.
    let mut windows: HashMap<u64, MemoryWindow> = HashMap::new();
    answer_requests(
        &mut stream,
        broker,
        &admitted,
        joined,
        &holds,
        &ring,
        |response| {
            let Response::Joined { slots } = response else {
                return Ok(());
            };
            for slot in slots.iter_mut() {
                let start = slot.grant.start;
                if !windows.contains_key(&start) {
                    if windows.len() >= MAX_WINDOWS {
                        return Err(RdmaError::Refused(format!(
                            "a session may join at most {MAX_WINDOWS} offset slots"
                        )));
                    }
                    // Posting and polling the bind takes microseconds on a NIC, but may wait up to
                    // the completion timeout: off the async workers.
                    let window = tokio::task::block_in_place(|| {
                        qp.bind_window(&server.offsets, start, slot.grant.len, slot.grant.access)
                    })?;
                    windows.insert(start, window);
                }
                slot.key = windows.get(&start).map(MemoryWindow::key);
            }
            Ok(())
        },
    )
    .await
}
