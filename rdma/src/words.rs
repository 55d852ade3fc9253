//! Reading and changing shared 8-byte words (offset slots, ring counters) so that no update
//! is ever undone.
//!
//! An RDMA NIC's atomics are atomic among the operations of the NIC; on most NICs
//! (`IBV_ATOMIC_HCA`, every ConnectX) not against the CPU of the host that owns the memory.
//! A NIC runs FETCH_AND_ADD or COMPARE_AND_SWAP as "read the word, compute, write it back",
//! so a CPU store that lands in between is overwritten. Hence two rules, which these helpers
//! follow:
//! - read a word with READ, never with FETCH_AND_ADD of 0 (which writes back what it read);
//! - the owner of the memory changes a word that peers change with atomics through the NIC
//!   too (a loopback queue pair), with [`store_word`], never with a CPU store; a store then
//!   orders with peers' fetch-and-adds (one racing it is applied after it).

use crate::{OneSided, RdmaError, RegionId};

/// The word at `offset` of `region`, by an 8-byte READ (no write of any kind).
pub fn read_word(endpoint: &dyn OneSided, region: RegionId, offset: u64) -> Result<u64, RdmaError> {
    let mut bytes = [0u8; 8];
    endpoint.read(region, offset, &mut bytes)?;
    Ok(u64::from_ne_bytes(bytes))
}

/// Raises the word to `to` if it is lower (never lowers it): one COMPARE_AND_SWAP from the
/// value read, repeated only while others move it meanwhile. Returns the value it replaced,
/// or the higher one it found.
pub fn raise_word(
    endpoint: &dyn OneSided,
    region: RegionId,
    offset: u64,
    to: u64,
) -> Result<u64, RdmaError> {
    let mut current = read_word(endpoint, region, offset)?;
    while current < to {
        let seen = endpoint.compare_swap(region, offset, current, to)?;
        if seen == current {
            break;
        }
        current = seen;
    }
    Ok(current)
}

/// Stores `value` in the word through the atomic unit that peers use: a READ, then one
/// FETCH_AND_ADD of the difference. Two operations whatever peers do (a COMPARE_AND_SWAP loop
/// could be kept failing by a peer adding without pause): a peer's FETCH_AND_ADD that lands
/// between the two is kept, as if it came just after the store, never lost. Returns the
/// value replaced and the value left.
pub fn store_word(
    endpoint: &dyn OneSided,
    region: RegionId,
    offset: u64,
    value: u64,
) -> Result<(u64, u64), RdmaError> {
    let current = read_word(endpoint, region, offset)?;
    let delta = value.wrapping_sub(current);
    let replaced = endpoint.fetch_add(region, offset, delta)?;
    Ok((replaced, replaced.wrapping_add(delta)))
}
