//! Broker processes in a cluster, and `hotwire admin` run against it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hotwire_broker::cluster::model::ClusterSettings;
use hotwire_broker::cluster::shards;

use super::{free_port, BrokerProcess};

/// A broker of `cluster` with node id `node` on `storage`: 2 shards, a 1 s lease, a 50 ms poll.
pub fn start_in_cluster(storage: &str, cluster: &str, node: &str, extra: &[&str]) -> BrokerProcess {
    start_polling(storage, cluster, node, "50", extra)
}

/// As [`start_in_cluster`], reading the cluster from etcd every `poll_ms`.
pub fn start_polling(
    storage: &str,
    cluster: &str,
    node: &str,
    poll_ms: &str,
    extra: &[&str],
) -> BrokerProcess {
    start_on(storage, cluster, node, poll_ms, free_port(), extra)
}

/// As [`start_polling`], with `addr` as the address clients are given first.
pub fn start_on(
    storage: &str,
    cluster: &str,
    node: &str,
    poll_ms: &str,
    addr: SocketAddr,
    extra: &[&str],
) -> BrokerProcess {
    let mut args = vec![
        "--node-id",
        node,
        "--cluster",
        cluster,
        "--cluster-shards",
        "2",
        "--cluster-lease-s",
        "1",
        "--cluster-poll-ms",
        poll_ms,
    ];
    args.extend_from_slice(extra);
    BrokerProcess::start_shared(storage, addr, &args)
}

/// Sets `user`'s SCRAM credentials in `cluster` with `hotwire users`.
pub fn set_user(cluster: &str, user: &str, password: &str) {
    let users = std::process::Command::new(env!("CARGO_BIN_EXE_hotwire"))
        .args(["users", "--cluster", cluster, "set", user])
        .env("HOTWIRE_USER_PASSWORD", password)
        .output()
        .unwrap();
    assert!(users.status.success(), "{users:?}");
}

/// `hotwire admin` with `args` against `cluster`: (success, what it printed).
pub fn admin(cluster: &str, args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hotwire"))
        .args(["admin", "--cluster", cluster])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

/// Waits until `hotwire admin status` prints `line`.
pub fn wait_status(cluster: &str, line: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, text) = admin(cluster, &["status"]);
        if ok && text.contains(line) {
            return text;
        }
        assert!(Instant::now() < deadline, "no {line:?} in:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Shard -> leader, as `hotwire admin status` prints them.
pub fn shard_leaders(cluster: &str) -> BTreeMap<u32, i32> {
    let (_, text) = admin(cluster, &["status"]);
    text.lines()
        .filter_map(|line| {
            let (shard, rest) = line.trim().split_once(": leader ")?;
            let leader = rest.split(|c: char| !c.is_ascii_digit()).next()?;
            Some((shard.parse().ok()?, leader.parse().ok()?))
        })
        .collect()
}

/// Waits until each of two brokers leads one of the cluster's two shards.
pub fn wait_spread(cluster: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while admin(cluster, &["status"])
        .1
        .matches("leads 1 shard(s)")
        .count()
        != 2
    {
        assert!(
            Instant::now() < deadline,
            "the shards never spread over both brokers"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A group id whose coordinator is the leader of a shard `node` leads.
pub fn group_led_by(cluster: &str, node: i32) -> String {
    let settings = ClusterSettings {
        shards: 2,
        placement: shards::PLACEMENT,
    };
    let shard = shard_leaders(cluster)
        .into_iter()
        .find_map(|(shard, leader)| (leader == node).then_some(shard))
        .unwrap_or_else(|| panic!("broker {node} leads no shard"));
    (0..)
        .map(|i| format!("group-{i}"))
        .find(|g| shards::of_group(g, settings) == shard)
        .unwrap()
}

/// Drains broker `node` with `hotwire admin drain` and waits until etcd names `to` the leader
/// of both shards.
pub fn drain(cluster: &str, node: i32, to: i32) {
    let (ok, text) = admin(cluster, &["drain", &node.to_string(), "--wait", "30"]);
    assert!(ok, "{text}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, text) = admin(cluster, &["status"]);
        if text.contains(&format!("  0: leader {to},"))
            && text.contains(&format!("  1: leader {to},"))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the drain never completed:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
