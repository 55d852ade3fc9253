//! One control request of an rdma session, answered through the log service (the same
//! validation, offsets, durability and reads as a Kafka request, without building one).

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use rdma::control::{GroupMember, Request, Response, SlotGrant};
use rdma::shm::SharedRing;
use rdma::{Access, Grant};

use super::persist::JoinedSlots;
use super::published::location;
use super::slot_holds::SlotHolds;
use super::OFFSETS_REGION;
use crate::broker::Broker;
use crate::internal::CommittedOffset;
use crate::log::service::{self, Read, ReadLimits, Refusal};
use crate::log::validate::decompression_budget;
use crate::offsets::SlotKey;
use crate::security::acl::{Access as AclAccess, Operation, ResourceType};

/// The client id that copies over the control channel count under in the fetch metrics.
const ONE_SIDED_CLIENT: &str = "hotwire-one-sided";
/// How long an acks=all produce over the ring may wait for durability.
const PRODUCE_TIMEOUT_MS: u64 = 30_000;

/// The response (and binary part) to `request`.
/// What a session may do: its principal's access under the ACLs in force, and whether it
/// holds the cache region.
pub struct Rights<'a> {
    /// The principal's access now.
    pub access: &'a AclAccess,
    /// Whether the session may READ the arena (see `Admitted::reads_cache`).
    pub reads_cache: bool,
}

pub async fn handle(
    broker: &Broker,
    rights: Rights<'_>,
    joined: &JoinedSlots,
    holds: &SlotHolds<'_>,
    ring: &SharedRing,
    request: Request,
) -> (Response, Vec<u8>) {
    if let Err(message) = authorize(rights.access, rights.reads_cache, &request) {
        return (Response::Error { message }, Vec::new());
    }
    let outcome = match request {
        Request::Hello { .. } => Err("the session is already open".to_string()),
        Request::Subscribe { topic, partition } => subscribe(broker, &topic, partition),
        Request::Locate {
            topic,
            partition,
            offset,
            max_bytes,
        } => locate(broker, &topic, partition, offset, max_bytes),
        Request::Fetch {
            topic,
            partition,
            offset,
            max_bytes,
        } => return copy(broker, topic, partition, offset, max_bytes).await,
        Request::Join {
            group,
            topic,
            partitions,
            member,
        } => {
            let member = member.as_ref();
            join(broker, joined, holds, &group, member, &topic, &partitions).await
        }
        Request::Persist => joined
            .persist(broker)
            .await
            .map(|slots| Response::Persisted { slots }),
        Request::Produce {
            topic,
            partition,
            position,
            len,
            acks,
        } => produce_from_ring(broker, ring, topic, partition, position, len, acks).await,
    };
    match outcome {
        Ok(response) => (response, Vec::new()),
        Err(message) => (Response::Error { message }, Vec::new()),
    }
}

/// Whether the session's principal may make `request`, as Kafka judges the TCP request that
/// does the same: READ on the topic to locate or fetch it (and READ of the whole arena, see
/// [`super::session::Admitted::reads_cache`], to locate), READ on the group and the topic to
/// join a group's offset slots (as OffsetCommit), WRITE on the topic to produce. The refusal
/// names Kafka's error.
fn authorize(access: &AclAccess, reads_cache: bool, request: &Request) -> Result<(), String> {
    let topic_denied = |operation: &str, topic: &str| {
        Err(format!(
            "TOPIC_AUTHORIZATION_FAILED: {} may not {operation} topic {topic}",
            access.principal()
        ))
    };
    match request {
        Request::Locate { .. } | Request::Subscribe { .. } if !reads_cache => Err(format!(
            "TOPIC_AUTHORIZATION_FAILED: {} may not read every topic, so it may not read the              cache region directly; Fetch copies what it may read",
            access.principal()
        )),
        Request::Locate { topic, .. }
        | Request::Subscribe { topic, .. }
        | Request::Fetch { topic, .. }
            if !access.allows(Operation::Read, ResourceType::Topic, topic) =>
        {
            topic_denied("read", topic)
        }
        Request::Join { group, .. }
            if !access.allows(Operation::Read, ResourceType::Group, group) =>
        {
            Err(format!(
                "GROUP_AUTHORIZATION_FAILED: {} may not read group {group}",
                access.principal()
            ))
        }
        Request::Join { topic, .. }
            if !access.allows(Operation::Read, ResourceType::Topic, topic) =>
        {
            topic_denied("read", topic)
        }
        Request::Produce { topic, .. }
            if !access.allows(Operation::Write, ResourceType::Topic, topic) =>
        {
            topic_denied("write", topic)
        }
        _ => Ok(()),
    }
}

fn locate(
    broker: &Broker,
    topic: &str,
    partition: i32,
    offset: i64,
    max_bytes: u32,
) -> Result<Response, String> {
    let partition = broker
        .topics
        .get(topic)
        .and_then(|t| t.partition(partition).cloned())
        .ok_or_else(|| format!("unknown topic or partition {topic}/{partition}"))?;
    let high_watermark = partition.high_watermark();
    let log_start = partition.log_start();
    if offset < log_start || offset > high_watermark {
        return Err(format!(
            "offset {offset} out of range [{log_start}, {high_watermark}]"
        ));
    }
    let located = if offset == high_watermark {
        Some(Vec::new())
    } else {
        partition.locate_hot(&broker.cache, offset, max_bytes as usize)
    };
    let hot = located.is_some();
    let batches = located.unwrap_or_default().iter().map(location).collect();
    Ok(Response::Located {
        high_watermark,
        log_start,
        batches,
        hot,
    })
}

/// `Subscribe`: the partition's slot in the published index.
fn subscribe(broker: &Broker, topic: &str, partition: i32) -> Result<Response, String> {
    let index = broker
        .published
        .as_ref()
        .ok_or("this broker publishes no partition index")?;
    let found = broker
        .topics
        .get(topic)
        .and_then(|t| t.partition(partition).cloned())
        .ok_or_else(|| format!("unknown topic or partition {topic}/{partition}"))?;
    let (slot, incarnation) = index.subscribe(&found)?;
    Ok(Response::Subscribed {
        slot,
        incarnation,
        entries: index.layout().entries,
    })
}

/// `Fetch`: the log service's read (hot or cold), its records as the binary part.
async fn copy(
    broker: &Broker,
    topic: String,
    partition: i32,
    offset: i64,
    max_bytes: u32,
) -> (Response, Vec<u8>) {
    let Some(found) = broker
        .topics
        .get(&topic)
        .and_then(|t| t.partition(partition).cloned())
    else {
        return error(&format!(
            "UNKNOWN_TOPIC_OR_PARTITION: unknown topic or partition {topic}/{partition}"
        ));
    };
    let max_bytes = (max_bytes as usize).min(broker.config.fetch_max_bytes);
    // As a Fetch with max_wait 0: no waiting for the memory budget.
    let limits = ReadLimits {
        max_bytes,
        first: true,
        deadline: tokio::time::Instant::now(),
    };
    let reads = broker.events.fetch_reads.client(ONE_SIDED_CLIENT);
    match service::read(broker, &reads, &found, offset, limits).await {
        Ok(Read::Records(records, _held)) => (
            Response::Fetched {
                high_watermark: found.high_watermark(),
            },
            records.to_vec(),
        ),
        // The fetch memory budget is spent: nothing now, the client polls again.
        Ok(Read::NoBudget) => (
            Response::Fetched {
                high_watermark: found.high_watermark(),
            },
            Vec::new(),
        ),
        Err(refusal) => error(&format!("fetch refused: {refusal}")),
    }
}

fn error(message: &str) -> (Response, Vec<u8>) {
    (
        Response::Error {
            message: message.to_string(),
        },
        Vec::new(),
    )
}

/// `Join`: ATOMIC grants on the group's slots, for whom an OffsetCommit would be accepted.
async fn join(
    broker: &Broker,
    joined: &JoinedSlots,
    holds: &SlotHolds<'_>,
    group: &str,
    member: Option<&GroupMember>,
    topic: &str,
    partitions: &[i32],
) -> Result<Response, String> {
    check_member(broker, group, member)?;
    let topic = broker
        .topics
        .get(topic)
        .ok_or_else(|| format!("unknown topic {topic}"))?;
    let mut slots = Vec::with_capacity(partitions.len());
    for &partition in partitions {
        if topic.partition(partition).is_none() {
            return Err(format!("unknown partition {}/{partition}", topic.name));
        }
        let key = SlotKey {
            group: group.to_string(),
            topic_id: topic.id,
            partition,
        };
        if broker.offsets.table().slot_of(&key).is_none() {
            // A slot exists only for a commit: start the group at offset 0, durably.
            let first = CommittedOffset {
                offset: 0,
                leader_epoch: -1,
                metadata: None,
                commit_timestamp: now_ms(),
            };
            broker
                .offsets
                .commit(group, vec![(topic.id, partition, first)])
                .await
                .map_err(|e| format!("cannot create the offset slot: {e}"))?;
        }
        // Held until the session ends, so that the slot is not given to another key while this
        // client may still add to it.
        let slot = holds.hold(&key)?;
        joined.add(key, slot, broker);
        slots.push(SlotGrant {
            partition,
            grant: Grant {
                region: OFFSETS_REGION,
                start: slot as u64 * 8,
                len: 8,
                // READ to read the slot (never FETCH_AND_ADD of 0: see `rdma::words`).
                access: Access::READ | Access::ATOMIC,
            },
            key: None,
        });
    }
    Ok(Response::Joined { slots })
}

/// The member checks of OffsetCommit (generation -1 and no member id without `member`): the
/// grant is a standing right to commit, so it is given only to whom a commit would be.
fn check_member(broker: &Broker, group: &str, member: Option<&GroupMember>) -> Result<(), String> {
    if group.is_empty() {
        return Err("join refused: INVALID_GROUP_ID (an empty group id)".into());
    }
    let (generation, member_id, instance) = member.map_or((-1, "", None), |m| {
        (
            m.generation_id,
            m.member_id.as_str(),
            m.group_instance_id.as_deref(),
        )
    });
    broker
        .groups
        .validate_offset_commit(group, generation, member_id, instance)
        .map_err(|error| {
            format!(
                "join refused: {error:?} (Kafka error {}) for member {member_id:?} of group \
                 {group:?} at generation {generation}",
                error.code()
            )
        })
}

async fn produce_from_ring(
    broker: &Broker,
    ring: &SharedRing,
    topic: String,
    partition: i32,
    position: u64,
    len: u32,
    acks: i16,
) -> Result<Response, String> {
    let copied = ring.copy_out(position, len);
    // Released whatever happens next: the bytes are ours now.
    ring.release(len);
    let batch = Bytes::from(copied.map_err(|e| e.to_string())?);
    if !matches!(acks, -1..=1) {
        return Ok(refused(Refusal::of(ResponseError::InvalidRequiredAcks)));
    }
    let mut budget =
        decompression_budget(batch.len() as u64, broker.config.message_max_bytes as u64);
    let topic = match service::topic_to_write(broker, &topic).await {
        Ok(topic) => topic,
        Err(refusal) => return Ok(refused(refusal)),
    };
    let (found, appended) =
        match service::append(broker, &topic, partition, batch, &mut budget).await {
            Ok(appended) => appended,
            Err(refusal) => return Ok(refused(refusal)),
        };
    if acks == -1 {
        let limit = Duration::from_millis(PRODUCE_TIMEOUT_MS);
        if let Err(refusal) = service::until_durable(broker, &found, appended, limit).await {
            return Ok(refused(refusal));
        }
    }
    Ok(Response::Produced {
        base_offset: appended.base_offset,
        error_code: 0,
    })
}

/// A refused produce, as the client library reports it (the Kafka error code).
fn refused(refusal: Refusal) -> Response {
    tracing::debug!(%refusal, "one-sided produce refused");
    Response::Produced {
        base_offset: -1,
        error_code: refusal.error.code(),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
