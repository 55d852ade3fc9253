//! The control channel: the session protocol between a client and the broker.
//!
//! The client connects (a Unix socket for the shm provider, TCP for verbs, as rdma_cm does),
//! says [`Request::Hello`], and gets [`Response::Welcome`] with the regions it may address.
//! With shm their memory files come with that frame as descriptors, in the order of
//! `Welcome::regions`; with verbs the client's `Hello` carries its queue pair's address
//! ([`QpAddress`]), and `Welcome` the broker's, with each region's [`RemoteKey`] (address and
//! rkey). Everything else is a request and its response, in order, one at a time per
//! connection:
//!
//! - [`Request::Subscribe`]: a partition's slot in the published index, through which the
//!   client then tails and locates batches with READ alone;
//! - [`Request::Locate`]: where a partition's batches from an offset sit in the cache region
//!   (the client then READs them itself), or that they are not hot;
//! - [`Request::Fetch`]: the same batches copied over the channel (the fallback for data that
//!   is not hot, or after repeated races with reuse);
//! - [`Request::Join`]: ATOMIC grants on the offset-table slots of a group's partitions;
//! - [`Request::Persist`]: make the session's slots durable now;
//! - [`Request::Produce`]: the batch WRITten at a ring position is ready; append it.
//!
//! Frames: `[json length u32 LE][binary length u32 LE][JSON][binary]`, the binary part only
//! for [`Response::Fetched`]. Sizes are bounded ([`MAX_JSON`], [`MAX_BINARY`]), and a body's buffer
//! grows with the bytes that arrive, not with what the header claims; a peer that breaks the
//! framing is disconnected.

mod frame;

use serde::{Deserialize, Serialize};

pub use frame::{
    read_frame, read_frame_async, read_frame_async_within, read_frame_plain, write_frame,
    write_frame_async, write_frame_async_plain, write_frame_plain, Frame, MAX_BINARY, MAX_JSON,
};

use crate::{Grant, RemoteKey, RemoteRegion};

/// Version of this protocol, sent in `Hello` and checked by the server.
pub const PROTOCOL_VERSION: u32 = 1;

/// What a region is for, in `Welcome`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionRole {
    /// The HotCache arena (READ).
    Cache,
    /// One `u64` generation per cache block (READ).
    Generations,
    /// The committed-offset table (ATOMIC on joined slots only).
    Offsets,
    /// This session's produce staging ring (WRITE and ATOMIC).
    Ring,
    /// The published partition index (READ; see [`crate::published`]).
    Index,
}

/// A region in `Welcome`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedRegion {
    /// What it is.
    pub role: RegionRole,
    /// Its id, length and rights.
    pub region: RemoteRegion,
    /// Verbs sessions: where the NIC finds it (shm sessions get a descriptor instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<RemoteKey>,
}

/// How a peer reaches a reliable-connected queue pair (what rdma_cm would exchange): sent by
/// the client in `Hello` and by the broker in `Welcome` of a verbs session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QpAddress {
    /// Queue pair number.
    pub qpn: u32,
    /// First packet sequence number it sends.
    pub psn: u32,
    /// Port LID (InfiniBand; 0 on RoCE).
    pub lid: u16,
    /// Port GID at the chosen index (a global route header carries it; all zeroes: reach the
    /// port by LID alone).
    pub gid: [u8; 16],
    /// Active path MTU of the port, in bytes (256..4096): the connection uses the smaller.
    pub mtu: u32,
}

/// A user name and its password (checked against the broker's SCRAM credentials, as a SASL
/// PLAIN login is). The password never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    /// The user's name.
    pub user: String,
    /// The user's password.
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A consumer-group member, as JoinGroup answered it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    /// The member id the coordinator assigned.
    pub member_id: String,
    /// The group generation the member is in.
    pub generation_id: i32,
    /// Static membership id, if the member has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_instance_id: Option<String>,
}

/// Client to broker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Opens the session.
    Hello {
        /// [`PROTOCOL_VERSION`].
        version: u32,
        /// Who the client is (logged).
        client_id: String,
        /// Credential for the broker's authentication hook, if it has one.
        token: Option<String>,
        /// A user of the broker's credential store: the session acts as `User:<name>` (as a
        /// SASL login on TCP would), and the broker's authorizer judges what it may do.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        login: Option<Login>,
        /// Verbs sessions: the client's queue pair (absent for shm).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        qp: Option<QpAddress>,
    },
    /// A slot of the published index for a partition: from then on the client tails and
    /// fetches it with READ alone.
    Subscribe {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
    },
    /// Where batches of a partition from `offset` are in the cache region.
    Locate {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
        /// First offset wanted.
        offset: i64,
        /// Bytes wanted at most (the first batch is located whatever its size).
        max_bytes: u32,
    },
    /// The same batches, copied over the channel.
    Fetch {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
        /// First offset wanted.
        offset: i64,
        /// Bytes wanted at most.
        max_bytes: u32,
    },
    /// ATOMIC grants on the offset slots of `group` for these partitions, checked as Kafka
    /// checks an OffsetCommit: a member of a group with members must name its current
    /// generation; without `member` the client is a "simple" consumer, admitted only while the
    /// group has no members.
    Join {
        /// Consumer group.
        group: String,
        /// Topic name.
        topic: String,
        /// Partitions.
        partitions: Vec<i32>,
        /// Who joins, as the group coordinator knows it (from JoinGroup over TCP).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        member: Option<GroupMember>,
    },
    /// Make every slot this session changed durable now.
    Persist,
    /// A batch was written at `position` of the ring: append it.
    Produce {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
        /// Byte position in the ring's data area.
        position: u64,
        /// Its length.
        len: u32,
        /// 0, 1 or -1 (all), as in Kafka.
        acks: i16,
    },
}

/// One located batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchLocation {
    /// Byte offset in the cache region.
    pub position: u64,
    /// Length in bytes.
    pub len: u32,
    /// The cache block holding it (its entry in the generation region).
    pub block: u32,
    /// The block's generation when the batch was written there.
    pub generation: u64,
    /// First offset in the batch.
    pub base_offset: i64,
    /// Last offset in the batch.
    pub last_offset: i64,
}

/// An ATOMIC grant on one partition's committed-offset slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotGrant {
    /// Partition index.
    pub partition: i32,
    /// The grant (8 bytes of the offsets region).
    pub grant: Grant,
    /// Verbs sessions: the memory window bound on just this slot (its rkey is the only key to
    /// the offset table the client gets; `addr` is the slot's own address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<RemoteKey>,
}

/// Broker to client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// The session is open; descriptors of `regions` ride with this frame, in order.
    Welcome {
        /// Session number (logged on both sides).
        session: u64,
        /// Regions and their rights.
        regions: Vec<NamedRegion>,
        /// Bytes of the ring's data area (after its 64-byte header).
        ring_capacity: u64,
        /// Verbs sessions: the broker's queue pair for this session (absent for shm).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        qp: Option<QpAddress>,
    },
    /// Answer to `Subscribe`: where the partition's index is in the index region.
    Subscribed {
        /// The slot (see [`crate::published::IndexLayout`]).
        slot: u32,
        /// The slot's incarnation, which every entry's checksum covers.
        incarnation: u64,
        /// Entries in each slot's ring.
        entries: u64,
    },
    /// Answer to `Locate`.
    Located {
        /// The partition's durable end: what may be read.
        high_watermark: i64,
        /// First offset still held.
        log_start: i64,
        /// The batches, in offset order (empty when `hot` is false or nothing is there yet).
        batches: Vec<BatchLocation>,
        /// False when `offset` is not in the cache: use `Fetch`.
        hot: bool,
    },
    /// Answer to `Fetch`: the batches are the frame's binary part.
    Fetched {
        /// The partition's durable end.
        high_watermark: i64,
    },
    /// Answer to `Join`.
    Joined {
        /// One grant per partition, in request order.
        slots: Vec<SlotGrant>,
    },
    /// Answer to `Persist`.
    Persisted {
        /// Slots written.
        slots: usize,
    },
    /// Answer to `Produce` (after the durability `acks` asks for).
    Produced {
        /// Offset given to the batch's first record (-1 on error).
        base_offset: i64,
        /// Kafka error code (0: none).
        error_code: i16,
    },
    /// The request failed.
    Error {
        /// Why.
        message: String,
    },
}
