//! Access rights and the description of a remote region a client may address.

use serde::{Deserialize, Serialize};

bitflags::bitflags! {
    /// What a peer may do to a region (IBV_ACCESS_REMOTE_*).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub struct Access: u8 {
        /// One-sided READ.
        const READ = 1;
        /// One-sided WRITE.
        const WRITE = 2;
        /// 8-byte atomics (FETCH_AND_ADD, COMPARE_AND_SWAP).
        const ATOMIC = 4;
    }
}

/// Names a registered region within a session (the role of an rkey).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RegionId(pub u32);

/// A region as a client sees it: which one, its length, and what it may do with it.
///
/// Addresses in operations are byte offsets within the region (with verbs they are added to
/// the region's base address by the provider).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteRegion {
    /// The region.
    pub id: RegionId,
    /// Its length in bytes.
    pub len: u64,
    /// Rights granted on all of it (finer grants: see [`crate::Grant`]).
    pub access: Access,
}

/// Where a region is for a NIC (verbs sessions): its base virtual address in the peer and the
/// remote key of its memory registration (or of a memory window bound on part of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteKey {
    /// Base virtual address of the region in the peer.
    pub addr: u64,
    /// The rkey of its memory registration or window.
    pub rkey: u32,
}
