//! Choosing the GID a queue pair sends from, the way `show_gids` users do by hand.
//!
//! On RoCE every IP address of the netdev appears in the port's GID table twice, once per RoCE
//! version, after the link-local entries; index 0 is RoCE v1 link-local, which routed fabrics
//! (and most RoCE v2 deployments) cannot use. The kernel describes each entry in sysfs:
//! `/sys/class/infiniband/<dev>/ports/<port>/gids/<i>` (the address) and
//! `.../gid_attrs/types/<i>` (`RoCE v2` or `IB/RoCE v1`), and the port's `link_layer`.

use std::net::Ipv6Addr;
use std::path::Path;

/// Where the kernel describes RDMA devices.
pub(super) const SYSFS: &str = "/sys/class/infiniband";

/// One usable entry of a port's GID table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct GidEntry {
    pub(super) index: u8,
    /// `RoCE v2`, `IB/RoCE v1`, ...
    pub(super) kind: String,
    pub(super) gid: Ipv6Addr,
}

/// The GID table of `port` of `device` under `root` (normally [`SYSFS`]), without the empty
/// entries, and the port's link layer.
pub(super) fn read_table(
    root: &Path,
    device: &str,
    port: u8,
) -> std::io::Result<(String, Vec<GidEntry>)> {
    let port_dir = root.join(device).join("ports").join(port.to_string());
    let link_layer = std::fs::read_to_string(port_dir.join("link_layer"))?
        .trim()
        .to_string();
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(port_dir.join("gids"))? {
        let entry = entry?;
        let Some(index) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u8>().ok())
        else {
            continue;
        };
        let Some(gid) = std::fs::read_to_string(entry.path())
            .ok()
            .and_then(|text| text.trim().parse::<Ipv6Addr>().ok())
            .filter(|gid| !gid.is_unspecified())
        else {
            continue;
        };
        // An entry without a type (unset, or InfiniBand's) reads as an error: skip its kind.
        let kind =
            std::fs::read_to_string(port_dir.join("gid_attrs/types").join(index.to_string()))
                .map(|text| text.trim().to_string())
                .unwrap_or_default();
        entries.push(GidEntry { index, kind, gid });
    }
    entries.sort_by_key(|e| e.index);
    Ok((link_layer, entries))
}

/// The index to send from: on InfiniBand, 0 (the port GID); on RoCE (`Ethernet`), a RoCE v2
/// entry, IPv4 first, then a global IPv6 address, then a link-local one; a RoCE v1 entry only
/// when the port has no v2 at all. `Err` says why none fits.
pub(super) fn choose(link_layer: &str, entries: &[GidEntry]) -> Result<u8, String> {
    if link_layer != "Ethernet" {
        return Ok(0);
    }
    let rank = |e: &GidEntry| {
        let v2 = e.kind.eq_ignore_ascii_case("RoCE v2");
        let family = if e.gid.to_ipv4_mapped().is_some() {
            0
        } else if e.gid.is_unicast_link_local() {
            2
        } else {
            1
        };
        (!v2, family, e.index)
    };
    entries
        .iter()
        .min_by_key(|e| rank(e))
        .map(|e| e.index)
        .ok_or_else(|| "the port's GID table is empty (is the netdev up, with an address?)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u8, kind: &str, gid: &str) -> GidEntry {
        GidEntry {
            index,
            kind: kind.into(),
            gid: gid.parse().unwrap(),
        }
    }

    /// A ConnectX port with link-local, IPv4 and global IPv6 addresses, as mlx5 lays it out.
    fn mlx5_table() -> Vec<GidEntry> {
        vec![
            entry(0, "IB/RoCE v1", "fe80::ba59:9fff:fe00:1"),
            entry(1, "RoCE v2", "fe80::ba59:9fff:fe00:1"),
            entry(2, "IB/RoCE v1", "::ffff:10.0.0.5"),
            entry(3, "RoCE v2", "::ffff:10.0.0.5"),
            entry(4, "IB/RoCE v1", "2001:db8::5"),
            entry(5, "RoCE v2", "2001:db8::5"),
        ]
    }

    #[test]
    fn roce_prefers_v2_with_ipv4_then_global_ipv6_then_link_local() {
        let mut table = mlx5_table();
        assert_eq!(choose("Ethernet", &table), Ok(3));
        table.retain(|e| e.index != 3);
        assert_eq!(choose("Ethernet", &table), Ok(5));
        table.retain(|e| e.index != 5);
        assert_eq!(choose("Ethernet", &table), Ok(1));
        // Only RoCE v1 left (an old kernel or a v1-only fabric): the best of those.
        table.retain(|e| e.index != 1);
        assert_eq!(choose("Ethernet", &table), Ok(2));
        assert!(choose("Ethernet", &[]).is_err());
    }

    #[test]
    fn infiniband_uses_the_port_gid() {
        let table = vec![entry(0, "", "fe80::2:c903:0:1")];
        assert_eq!(choose("InfiniBand", &table), Ok(0));
        assert_eq!(choose("InfiniBand", &[]), Ok(0));
    }

    #[test]
    fn the_table_is_read_from_sysfs_without_empty_entries() {
        let root = tempfile::tempdir().unwrap();
        let port = root.path().join("mlx5_0/ports/1");
        std::fs::create_dir_all(port.join("gids")).unwrap();
        std::fs::create_dir_all(port.join("gid_attrs/types")).unwrap();
        std::fs::write(port.join("link_layer"), "Ethernet\n").unwrap();
        for e in mlx5_table() {
            let gid = e.gid.segments().map(|s| format!("{s:04x}")).join(":");
            std::fs::write(port.join("gids").join(e.index.to_string()), gid + "\n").unwrap();
            std::fs::write(
                port.join("gid_attrs/types").join(e.index.to_string()),
                e.kind + "\n",
            )
            .unwrap();
        }
        // Unused entries: all zeroes, and no type (reading it fails with EINVAL on a real port).
        std::fs::write(
            port.join("gids/6"),
            "0000:0000:0000:0000:0000:0000:0000:0000\n",
        )
        .unwrap();
        let (link_layer, table) = read_table(root.path(), "mlx5_0", 1).unwrap();
        assert_eq!(link_layer, "Ethernet");
        assert_eq!(table, mlx5_table());
        assert_eq!(choose(&link_layer, &table), Ok(3));
        assert!(read_table(root.path(), "mlx5_0", 2).is_err());
    }
}
