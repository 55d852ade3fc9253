//! The checks an RDMA NIC makes before it touches memory, in one place for every provider.
//!
//! A NIC refuses a work request whose remote key is unknown or invalidated, whose range leaves
//! the memory region, which asks for a right the region was not registered with, or which is an
//! atomic on an unaligned address. The `shm` provider has no NIC, so [`Grants`] makes the same
//! checks in software, with the same outcomes ([`RdmaError`]); the verbs provider runs them
//! too, so that both report an out-of-grant request identically and before posting it.
//!
//! Grants are finer than regions: a session may hold ATOMIC on a few 8-byte slots of the
//! offset table only (the groups it joined), READ on the whole cache, WRITE on its own ring.

use std::collections::HashMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::{Access, RdmaError, RegionId, RemoteRegion};

/// A right on one byte range of a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The region.
    pub region: RegionId,
    /// First byte of the range.
    pub start: u64,
    /// Length of the range.
    pub len: u64,
    /// What may be done there.
    pub access: Access,
}

#[derive(Debug)]
struct RegionState {
    len: u64,
    revoked: bool,
}

#[derive(Debug, Default)]
struct State {
    regions: HashMap<RegionId, RegionState>,
    grants: Vec<Grant>,
}

/// The regions and grants of one session, and the checks of every operation against them.
#[derive(Debug, Default)]
pub struct Grants {
    state: RwLock<State>,
}

impl Grants {
    /// An empty set: every operation is refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `region`, granting its rights on all of it.
    pub fn add_region(&self, region: RemoteRegion) {
        let mut state = self.write();
        state.regions.insert(
            region.id,
            RegionState {
                len: region.len,
                revoked: false,
            },
        );
        if !region.access.is_empty() {
            state.grants.push(Grant {
                region: region.id,
                start: 0,
                len: region.len,
                access: region.access,
            });
        }
    }

    /// Registers a region without any right on it yet (rights come with [`Grants::grant`]).
    pub fn add_bare_region(&self, id: RegionId, len: u64) {
        self.write().regions.insert(
            id,
            RegionState {
                len,
                revoked: false,
            },
        );
    }

    /// Adds a right on a range of a registered region.
    pub fn grant(&self, grant: Grant) {
        self.write().grants.push(grant);
    }

    /// Revokes a region: every later operation on it fails with [`RdmaError::Revoked`].
    pub fn revoke(&self, id: RegionId) {
        if let Some(region) = self.write().regions.get_mut(&id) {
            region.revoked = true;
        }
    }

    /// Checks an operation needing `need` on `len` bytes at `offset` of `region`.
    pub fn check(
        &self,
        region: RegionId,
        offset: u64,
        len: u64,
        need: Access,
    ) -> Result<(), RdmaError> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let denied = |reason: String| RdmaError::RemoteAccess {
            region: region.0,
            reason,
        };
        let Some(known) = state.regions.get(&region) else {
            return Err(denied("unknown region".into()));
        };
        if known.revoked {
            return Err(RdmaError::Revoked(region.0));
        }
        if len == 0 {
            return Err(RdmaError::InvalidRequest("zero-length operation".into()));
        }
        let end = offset
            .checked_add(len)
            .ok_or_else(|| RdmaError::InvalidRequest(format!("{offset}+{len} overflows")))?;
        if need.contains(Access::ATOMIC) && (len != 8 || offset % 8 != 0) {
            return Err(RdmaError::InvalidRequest(format!(
                "atomic on {len} bytes at {offset}: needs 8 bytes, 8-byte aligned"
            )));
        }
        if end > known.len {
            return Err(denied(format!(
                "bytes {offset}..{end} leave the region of {} bytes",
                known.len
            )));
        }
        let covered = state.grants.iter().any(|g| {
            g.region == region
                && g.access.contains(need)
                && g.start <= offset
                && end <= g.start + g.len
        });
        if !covered {
            return Err(denied(format!(
                "{need:?} on bytes {offset}..{end} was not granted"
            )));
        }
        Ok(())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(id: u32, len: u64, access: Access) -> RemoteRegion {
        RemoteRegion {
            id: RegionId(id),
            len,
            access,
        }
    }

    #[test]
    fn refuses_what_a_nic_would_refuse() {
        let grants = Grants::new();
        grants.add_region(region(1, 4096, Access::READ));
        grants.add_bare_region(RegionId(2), 1024);
        grants.grant(Grant {
            region: RegionId(2),
            start: 64,
            len: 16,
            access: Access::ATOMIC,
        });
        let ok = |r, o, l, a| grants.check(RegionId(r), o, l, a).is_ok();
        assert!(ok(1, 0, 4096, Access::READ));
        assert!(!ok(1, 4000, 200, Access::READ), "out of bounds");
        assert!(!ok(1, 0, 8, Access::WRITE), "no write right");
        assert!(!ok(3, 0, 8, Access::READ), "unknown region");
        assert!(ok(2, 64, 8, Access::ATOMIC) && ok(2, 72, 8, Access::ATOMIC));
        assert!(!ok(2, 80, 8, Access::ATOMIC), "slot not granted");
        assert!(matches!(
            grants.check(RegionId(2), 68, 8, Access::ATOMIC),
            Err(RdmaError::InvalidRequest(_))
        ));
        assert!(matches!(
            grants.check(RegionId(1), u64::MAX, 2, Access::READ),
            Err(RdmaError::InvalidRequest(_))
        ));
        grants.revoke(RegionId(1));
        assert!(matches!(
            grants.check(RegionId(1), 0, 8, Access::READ),
            Err(RdmaError::Revoked(1))
        ));
    }
}
