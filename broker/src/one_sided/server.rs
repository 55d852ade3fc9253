//! Accepting sessions on the control socket and answering their requests.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rdma::control::{self, NamedRegion, RegionRole, Request, Response, PROTOCOL_VERSION};
use rdma::shm::{export, SharedRing};
use rdma::{Access, RdmaError, RemoteRegion};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::handlers;
use super::persist::JoinedSlots;
use super::{CACHE_REGION, GENERATIONS_REGION, OFFSETS_REGION, RING_REGION};
use crate::broker::Broker;

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

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
            let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
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
    let hello = control::read_frame_async::<Request>(&mut stream).await?;
    let client = match hello.message {
        Request::Hello {
            version,
            client_id,
            token,
        } => {
            if let Err(reason) = admit(broker, version, token.as_deref()) {
                let refusal = Response::Error {
                    message: reason.clone(),
                };
                control::write_frame_async(&mut stream, &refusal, &[], &[]).await?;
                return Err(RdmaError::Refused(reason));
            }
            client_id
        }
        _ => {
            return Err(RdmaError::Protocol(
                "the first request must be Hello".into(),
            ))
        }
    };
    let ring = SharedRing::new((broker.config.rdma_ring_kib as u64) << 10)?;
    let cache_fd = export(broker.cache.memfd(), Access::READ)?;
    let generations_fd = export(broker.cache.generations_memfd(), Access::READ)?;
    let offsets_fd = export(broker.offsets.table().words().memfd(), Access::ATOMIC)?;
    let ring_fd = export(ring.fd(), Access::WRITE | Access::ATOMIC)?;
    let regions = vec![
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
    ];
    let welcome = Response::Welcome {
        session: id,
        regions,
        ring_capacity: ring.capacity(),
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

    loop {
        let frame = match control::read_frame_async::<Request>(&mut stream).await {
            Ok(frame) => frame,
            // The client went away.
            Err(RdmaError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let (response, binary) = handlers::handle(broker, joined, &ring, frame.message).await;
        control::write_frame_async(&mut stream, &response, &binary, &[]).await?;
    }
}

/// The authentication hook: the protocol version, and the token if one is configured.
fn admit(broker: &Broker, version: u32, token: Option<&str>) -> Result<(), String> {
    if version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {version} is not served (this broker speaks {PROTOCOL_VERSION})"
        ));
    }
    match (&broker.config.rdma_token, token) {
        (None, _) => Ok(()),
        (Some(expected), Some(given)) if expected == given => Ok(()),
        (Some(_), _) => Err("authentication failed: wrong or missing token".into()),
    }
}

fn named(role: RegionRole, id: rdma::RegionId, len: u64, access: Access) -> NamedRegion {
    NamedRegion {
        role,
        region: RemoteRegion { id, len, access },
    }
}
