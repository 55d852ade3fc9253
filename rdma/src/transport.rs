//! The one-sided operations every provider offers.

use crate::{RdmaError, RegionId};

/// One-sided operations on a peer's registered memory, with verbs semantics: the peer's CPU
/// takes no part, each operation is checked against the session's grants first (see
/// [`crate::Grants`]), and a failed check changes nothing.
///
/// Offsets are byte offsets within the region. Operations complete before they return (a
/// verbs provider posts the work request and polls its completion).
pub trait OneSided: Send + Sync {
    /// RDMA READ: copies `local.len()` bytes at `offset` of `region` into `local`.
    fn read(&self, region: RegionId, offset: u64, local: &mut [u8]) -> Result<(), RdmaError>;

    /// RDMA WRITE: copies `data` to `offset` of `region`.
    fn write(&self, region: RegionId, offset: u64, data: &[u8]) -> Result<(), RdmaError>;

    /// 8-byte atomic FETCH_AND_ADD at `offset` (8-byte aligned); returns the old value.
    fn fetch_add(&self, region: RegionId, offset: u64, add: u64) -> Result<u64, RdmaError>;

    /// 8-byte atomic COMPARE_AND_SWAP at `offset` (8-byte aligned): stores `new` if the word
    /// equals `expected`; returns the old value either way.
    fn compare_swap(
        &self,
        region: RegionId,
        offset: u64,
        expected: u64,
        new: u64,
    ) -> Result<u64, RdmaError>;
}
