//! The attributes of the RESET → INIT → RTR → RTS transitions of an RC queue pair: plain
//! data, built apart from the calls so that they can be checked without a device.

use std::mem::MaybeUninit;

use rdma_sys::{ibv_access_flags, ibv_mtu, ibv_qp_attr, ibv_qp_attr_mask, ibv_qp_state};

use crate::control::QpAddress;

/// Local Ack Timeout: 4.096 µs × 2^14 ≈ 67 ms before a lost packet is retried.
const ACK_TIMEOUT: u8 = 14;
/// Retries of a lost packet, and of a receiver-not-ready NAK (7: retry forever).
const RETRY_COUNT: u8 = 7;
const RNR_RETRY: u8 = 7;
/// Minimum RNR NAK timer (12: 0.64 ms).
const MIN_RNR_TIMER: u8 = 12;
/// Hop limit of RoCE v2 / routed InfiniBand packets.
const HOP_LIMIT: u8 = 64;

/// The local port a queue pair uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct LocalPort {
    pub(super) port: u8,
    pub(super) gid_index: u8,
    /// Active MTU of the port, in bytes.
    pub(super) mtu: u32,
    /// READs and atomics in flight the device allows per queue pair (both directions).
    pub(super) max_rd_atomic: u8,
    /// Traffic class of the global route header (RoCE v2: DSCP and ECN).
    pub(super) traffic_class: u8,
    /// Service level (InfiniBand SL, RoCE VLAN priority).
    pub(super) service_level: u8,
}

/// A zeroed attribute structure (how C code starts one too).
fn zeroed() -> ibv_qp_attr {
    // SAFETY: ibv_qp_attr is a C struct of integers and nested structs/unions of integers:
    // all zeroes is a valid value.
    unsafe { MaybeUninit::zeroed().assume_init() }
}

/// RESET → INIT: the port, and the remote rights the queue pair accepts at all (each memory
/// registration or window narrows them further).
pub(super) fn init(port: &LocalPort) -> (ibv_qp_attr, i32) {
    let mut attr = zeroed();
    attr.qp_state = ibv_qp_state::IBV_QPS_INIT;
    attr.pkey_index = 0;
    attr.port_num = port.port;
    attr.qp_access_flags = (ibv_access_flags::IBV_ACCESS_REMOTE_READ
        | ibv_access_flags::IBV_ACCESS_REMOTE_WRITE
        | ibv_access_flags::IBV_ACCESS_REMOTE_ATOMIC)
        .0;
    let mask = ibv_qp_attr_mask::IBV_QP_STATE
        | ibv_qp_attr_mask::IBV_QP_PKEY_INDEX
        | ibv_qp_attr_mask::IBV_QP_PORT
        | ibv_qp_attr_mask::IBV_QP_ACCESS_FLAGS;
    (attr, mask.0 as i32)
}

/// INIT → RTR: where the peer is (its QPN, first PSN, LID, and its GID in a global route
/// header, which RoCE and routed InfiniBand need and InfiniBand within a subnet accepts), at
/// the smaller of the two MTUs. Only a peer that sent no GID (all zeroes) is reached by LID
/// alone.
pub(super) fn rtr(port: &LocalPort, remote: &QpAddress) -> (ibv_qp_attr, i32) {
    let mut attr = zeroed();
    attr.qp_state = ibv_qp_state::IBV_QPS_RTR;
    attr.path_mtu = mtu_enum(port.mtu.min(remote.mtu));
    attr.dest_qp_num = remote.qpn;
    attr.rq_psn = remote.psn & PSN_MASK;
    attr.max_dest_rd_atomic = port.max_rd_atomic.max(1);
    attr.min_rnr_timer = MIN_RNR_TIMER;
    attr.ah_attr.dlid = remote.lid;
    attr.ah_attr.sl = port.service_level;
    attr.ah_attr.src_path_bits = 0;
    attr.ah_attr.port_num = port.port;
    if remote.gid != [0u8; 16] {
        attr.ah_attr.is_global = 1;
        attr.ah_attr.grh.dgid.raw = remote.gid;
        attr.ah_attr.grh.sgid_index = port.gid_index;
        attr.ah_attr.grh.hop_limit = HOP_LIMIT;
        attr.ah_attr.grh.traffic_class = port.traffic_class;
    }
    let mask = ibv_qp_attr_mask::IBV_QP_STATE
        | ibv_qp_attr_mask::IBV_QP_AV
        | ibv_qp_attr_mask::IBV_QP_PATH_MTU
        | ibv_qp_attr_mask::IBV_QP_DEST_QPN
        | ibv_qp_attr_mask::IBV_QP_RQ_PSN
        | ibv_qp_attr_mask::IBV_QP_MAX_DEST_RD_ATOMIC
        | ibv_qp_attr_mask::IBV_QP_MIN_RNR_TIMER;
    (attr, mask.0 as i32)
}

/// RTR → RTS: our first PSN and how lost packets are retried.
pub(super) fn rts(port: &LocalPort, psn: u32) -> (ibv_qp_attr, i32) {
    let mut attr = zeroed();
    attr.qp_state = ibv_qp_state::IBV_QPS_RTS;
    attr.sq_psn = psn & PSN_MASK;
    attr.timeout = ACK_TIMEOUT;
    attr.retry_cnt = RETRY_COUNT;
    attr.rnr_retry = RNR_RETRY;
    attr.max_rd_atomic = port.max_rd_atomic.max(1);
    let mask = ibv_qp_attr_mask::IBV_QP_STATE
        | ibv_qp_attr_mask::IBV_QP_SQ_PSN
        | ibv_qp_attr_mask::IBV_QP_TIMEOUT
        | ibv_qp_attr_mask::IBV_QP_RETRY_CNT
        | ibv_qp_attr_mask::IBV_QP_RNR_RETRY
        | ibv_qp_attr_mask::IBV_QP_MAX_QP_RD_ATOMIC;
    (attr, mask.0 as i32)
}

/// PSNs are 24 bits.
pub(super) const PSN_MASK: u32 = 0x00ff_ffff;

/// The verbs MTU for a size in bytes (rounded down to a valid one, 256 at least).
pub(super) fn mtu_enum(bytes: u32) -> ibv_mtu::Type {
    match bytes {
        4096.. => ibv_mtu::IBV_MTU_4096,
        2048..=4095 => ibv_mtu::IBV_MTU_2048,
        1024..=2047 => ibv_mtu::IBV_MTU_1024,
        512..=1023 => ibv_mtu::IBV_MTU_512,
        _ => ibv_mtu::IBV_MTU_256,
    }
}

/// Bytes of a verbs MTU.
pub(super) fn mtu_bytes(mtu: ibv_mtu::Type) -> u32 {
    match mtu {
        ibv_mtu::IBV_MTU_4096 => 4096,
        ibv_mtu::IBV_MTU_2048 => 2048,
        ibv_mtu::IBV_MTU_1024 => 1024,
        ibv_mtu::IBV_MTU_512 => 512,
        _ => 256,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORT: LocalPort = LocalPort {
        port: 1,
        gid_index: 3,
        mtu: 4096,
        max_rd_atomic: 16,
        traffic_class: 106,
        service_level: 3,
    };

    fn peer(gid: [u8; 16], mtu: u32) -> QpAddress {
        QpAddress {
            qpn: 0x1234,
            psn: 0x0abc_def0,
            lid: 7,
            gid,
            mtu,
        }
    }

    fn has(mask: i32, flag: ibv_qp_attr_mask) -> bool {
        mask as u32 & flag.0 == flag.0
    }

    #[test]
    fn init_opens_the_port_with_every_remote_right_for_the_registrations_to_narrow() {
        let (attr, mask) = init(&PORT);
        assert_eq!(attr.qp_state, ibv_qp_state::IBV_QPS_INIT);
        assert_eq!(attr.port_num, 1);
        let rights = ibv_access_flags(attr.qp_access_flags);
        assert_eq!(
            rights,
            ibv_access_flags::IBV_ACCESS_REMOTE_READ
                | ibv_access_flags::IBV_ACCESS_REMOTE_WRITE
                | ibv_access_flags::IBV_ACCESS_REMOTE_ATOMIC
        );
        for flag in [
            ibv_qp_attr_mask::IBV_QP_STATE,
            ibv_qp_attr_mask::IBV_QP_PKEY_INDEX,
            ibv_qp_attr_mask::IBV_QP_PORT,
            ibv_qp_attr_mask::IBV_QP_ACCESS_FLAGS,
        ] {
            assert!(has(mask, flag));
        }
    }

    #[test]
    fn rtr_targets_the_peer_at_the_smaller_mtu_with_a_global_route_on_roce() {
        let gid = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1];
        let (attr, mask) = rtr(&PORT, &peer(gid, 1024));
        assert_eq!(attr.qp_state, ibv_qp_state::IBV_QPS_RTR);
        assert_eq!(attr.path_mtu, ibv_mtu::IBV_MTU_1024);
        assert_eq!(attr.dest_qp_num, 0x1234);
        assert_eq!(attr.rq_psn, 0x00bc_def0, "PSNs are 24 bits");
        assert_eq!(attr.ah_attr.dlid, 7);
        assert_eq!(attr.ah_attr.port_num, 1);
        assert_eq!(attr.ah_attr.is_global, 1);
        // SAFETY: `raw` is the member written above.
        assert_eq!(unsafe { attr.ah_attr.grh.dgid.raw }, gid);
        assert_eq!(attr.ah_attr.grh.sgid_index, 3);
        // The configured class (DSCP 26, ECN-capable) and level go into every packet.
        assert_eq!(attr.ah_attr.grh.traffic_class, 106);
        assert_eq!(attr.ah_attr.sl, 3);
        assert!(attr.ah_attr.grh.hop_limit > 1);
        assert_eq!(attr.max_dest_rd_atomic, 16);
        for flag in [
            ibv_qp_attr_mask::IBV_QP_AV,
            ibv_qp_attr_mask::IBV_QP_PATH_MTU,
            ibv_qp_attr_mask::IBV_QP_DEST_QPN,
            ibv_qp_attr_mask::IBV_QP_RQ_PSN,
            ibv_qp_attr_mask::IBV_QP_MAX_DEST_RD_ATOMIC,
            ibv_qp_attr_mask::IBV_QP_MIN_RNR_TIMER,
        ] {
            assert!(has(mask, flag));
        }
    }

    #[test]
    fn rtr_to_a_peer_without_a_gid_routes_by_lid_alone() {
        let (attr, _) = rtr(&PORT, &peer([0; 16], 8192));
        assert_eq!(attr.ah_attr.is_global, 0);
        assert_eq!(attr.path_mtu, ibv_mtu::IBV_MTU_4096);
    }

    #[test]
    fn rts_sends_from_our_psn_and_retries_lost_packets() {
        let (attr, mask) = rts(&PORT, 0xff00_0001);
        assert_eq!(attr.qp_state, ibv_qp_state::IBV_QPS_RTS);
        assert_eq!(attr.sq_psn, 0x0000_0001);
        assert!(attr.timeout > 0 && attr.retry_cnt > 0 && attr.rnr_retry > 0);
        assert_eq!(attr.max_rd_atomic, 16);
        for flag in [
            ibv_qp_attr_mask::IBV_QP_SQ_PSN,
            ibv_qp_attr_mask::IBV_QP_TIMEOUT,
            ibv_qp_attr_mask::IBV_QP_RETRY_CNT,
            ibv_qp_attr_mask::IBV_QP_RNR_RETRY,
            ibv_qp_attr_mask::IBV_QP_MAX_QP_RD_ATOMIC,
        ] {
            assert!(has(mask, flag));
        }
    }

    #[test]
    fn mtus_round_down_to_a_valid_size_and_back() {
        assert_eq!(mtu_enum(1500), ibv_mtu::IBV_MTU_1024);
        assert_eq!(mtu_enum(9000), ibv_mtu::IBV_MTU_4096);
        assert_eq!(mtu_enum(0), ibv_mtu::IBV_MTU_256);
        for bytes in [256, 512, 1024, 2048, 4096] {
            assert_eq!(mtu_bytes(mtu_enum(bytes)), bytes);
        }
    }
}
