//! Membership, controller and shard leadership against a real etcd (started per test on
//! loopback): who leads what, when a dead, paused or cut-off broker loses its shards, and that
//! it has stopped acknowledging before anyone else may take them.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::etcd::EtcdServer;
use hotwire_broker::cluster::etcd::{Compare, Etcd, Op};
use hotwire_broker::cluster::model::{BrokerInfo, ShardAssignment};
use hotwire_broker::cluster::{ClusterConfig, Member};

const SHARDS: u32 = 8;

fn config(etcd: &EtcdServer) -> ClusterConfig {
    let mut config = ClusterConfig::from_url(&etcd.cluster_url("test")).unwrap();
    config.lease_ttl = Duration::from_secs(1);
    config.poll = Duration::from_millis(50);
    config.shards = SHARDS;
    config
}

fn info(node_id: i32) -> BrokerInfo {
    BrokerInfo {
        node_id,
        host: "127.0.0.1".into(),
        port: 9000 + node_id as u16,
        rack: None,
        endpoints: Vec::new(),
        load: Default::default(),
    }
}

async fn eventually<F: Future<Output = bool>>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not within {limit:?}");
}

/// Shards by leader, in `member`'s view.
fn leaders(member: &Member) -> BTreeMap<u32, ShardAssignment> {
    member.view().assignments()
}

/// Releases every shard `member` is asked to move, as a broker does once the shard's data is
/// flushed and it acknowledges nothing more.
fn release_moves(member: &Arc<Member>) -> tokio::task::JoinHandle<()> {
    let member = member.clone();
    tokio::spawn(async move {
        loop {
            for (shard, assignment) in member.leading() {
                if assignment.moving_to.is_some() {
                    let _ = member.release(shard, assignment.epoch).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

fn all_led(members: &[&Arc<Member>]) -> bool {
    let view = members[0].view();
    let live: Vec<i32> = view.brokers.iter().map(|b| b.info.node_id).collect();
    view.assignments().len() == SHARDS as usize
        && view
            .assignments()
            .values()
            .all(|a| a.leader.is_some_and(|l| live.contains(&l)) && a.moving_to.is_none())
        && members.iter().all(|m| m.view().revision >= view.revision)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etcd_client_reads_writes_compares_and_leases() {
    let server = EtcdServer::start();
    let etcd = Etcd::new(vec![server.endpoint()], Duration::from_secs(1)).unwrap();
    etcd.put("/t/a", b"1", None).await.unwrap();
    etcd.put("/t/b", b"2", None).await.unwrap();
    etcd.put("/u", b"3", None).await.unwrap();
    let (kvs, _) = etcd.get_prefix("/t/").await.unwrap();
    assert_eq!(
        kvs.iter().map(|kv| kv.value.clone()).collect::<Vec<_>>(),
        [b"1", b"2"]
    );

    // Create-if-absent: only the first succeeds; the failure branch reads the winner.
    let create = |v: &'static [u8]| {
        let etcd = &etcd;
        async move {
            etcd.txn(
                &[Compare::CreateRevision("/t/once".into(), 0)],
                &[Op::Put {
                    key: "/t/once".into(),
                    value: v.to_vec(),
                    lease: None,
                }],
                &[Op::Get("/t/once".into())],
            )
            .await
            .unwrap()
        }
    };
    assert!(create(b"first").await.succeeded);
    let second = create(b"second").await;
    assert!(!second.succeeded);
    assert_eq!(second.reads[0].as_ref().unwrap().value, b"first");

    // A compare on a stale modification revision fails.
    let (kv, _) = etcd.get("/t/a").await.unwrap();
    let kv = kv.unwrap();
    let swap = |rev| {
        let etcd = &etcd;
        async move {
            etcd.txn(
                &[Compare::ModRevision("/t/a".into(), rev)],
                &[Op::Put {
                    key: "/t/a".into(),
                    value: b"x".to_vec(),
                    lease: None,
                }],
                &[],
            )
            .await
            .unwrap()
            .succeeded
        }
    };
    assert!(swap(kv.mod_revision).await);
    assert!(!swap(kv.mod_revision).await, "the revision moved on");

    // A leased key goes with its lease; a lease that is gone is reported as such.
    let (lease, ttl) = etcd.lease_grant(5).await.unwrap();
    assert_eq!(ttl, 5);
    etcd.put("/t/leased", b"v", Some(lease)).await.unwrap();
    assert_eq!(etcd.get("/t/leased").await.unwrap().0.unwrap().lease, lease);
    assert_eq!(etcd.lease_keepalive(lease).await.unwrap(), Some(5));
    etcd.lease_revoke(lease).await.unwrap();
    assert!(etcd.get("/t/leased").await.unwrap().0.is_none());
    assert_eq!(etcd.lease_keepalive(lease).await.unwrap(), None);
    etcd.lease_revoke(lease).await.unwrap();
    etcd.delete("/u").await.unwrap();
    assert!(etcd.get("/u").await.unwrap().0.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_brokers_share_the_shards_under_one_controller() {
    let server = EtcdServer::start();
    let config = config(&server);
    let a = Member::join(&config, info(1)).await.unwrap();
    let b = Member::join(&config, info(2)).await.unwrap();
    let c = Member::join(&config, info(3)).await.unwrap();
    let _releasing = [&a, &b, &c].map(release_moves);
    eventually(
        "every shard led, evenly",
        Duration::from_secs(10),
        || async {
            let counts: Vec<usize> = [&a, &b, &c].iter().map(|m| m.leading().len()).collect();
            all_led(&[&a, &b, &c])
                && counts.iter().sum::<usize>() == SHARDS as usize
                && counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1
        },
    )
    .await;
    let view = a.view();
    assert_eq!(view.brokers.len(), 3);
    assert!(view.controller.is_some());
    for (shard, assignment) in view.assignments() {
        let leader = [&a, &b, &c]
            .into_iter()
            .find(|m| Some(m.node_id()) == assignment.leader)
            .unwrap();
        assert!(leader.may_acknowledge(shard, assignment.epoch));
        assert!(
            !leader.may_acknowledge(shard, assignment.epoch + 1),
            "another epoch"
        );
        for other in [&a, &b, &c]
            .into_iter()
            .filter(|m| m.node_id() != leader.node_id())
        {
            assert!(!other.may_acknowledge(shard, assignment.epoch));
        }
    }
    // A second broker with a taken node id waits for the first one's lease.
    let twin =
        tokio::time::timeout(Duration::from_millis(1500), Member::join(&config, info(2))).await;
    assert!(
        twin.is_err(),
        "a second broker 2 registered while the first lives"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halted_broker_stops_acknowledging_before_its_shards_move() {
    let server = EtcdServer::start();
    let config = config(&server);
    let a = Member::join(&config, info(1)).await.unwrap();
    let b = Member::join(&config, info(2)).await.unwrap();
    let c = Member::join(&config, info(3)).await.unwrap();
    let _releasing = [&a, &b, &c].map(release_moves);
    eventually("every shard led", Duration::from_secs(10), || async {
        all_led(&[&a, &b, &c]) && b.leading().len() >= 2
    })
    .await;
    let theirs: Vec<(u32, i32)> = b.leading().iter().map(|(s, a)| (*s, a.epoch)).collect();
    // b stops renewing its lease, as a paused or cut-off process does.
    b.halt();
    let halted = Instant::now();
    let mut stopped_acknowledging = None;
    let mut moved = None;
    while moved.is_none() && halted.elapsed() < Duration::from_secs(10) {
        let acknowledging = theirs.iter().any(|(s, e)| b.may_acknowledge(*s, *e));
        if !acknowledging && stopped_acknowledging.is_none() {
            stopped_acknowledging = Some(halted.elapsed());
        }
        let now = leaders(&a);
        if theirs
            .iter()
            .all(|(s, _)| now[s].leader.is_some_and(|l| l != 2))
        {
            moved = Some(halted.elapsed());
            // The fence: b had stopped acknowledging before any of its shards had a new leader.
            assert!(!acknowledging, "b still acknowledged when its shards moved");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (stopped, moved) = (
        stopped_acknowledging.unwrap(),
        moved.expect("b's shards moved"),
    );
    assert!(stopped <= moved, "stopped {stopped:?}, moved {moved:?}");
    eprintln!(
        "halted broker: stopped acknowledging after {stopped:?}, shards moved after {moved:?}"
    );
    let after = leaders(&a);
    for (shard, epoch) in &theirs {
        assert_eq!(
            after[shard].epoch,
            epoch + 1,
            "shard {shard} at the next epoch"
        );
    }
    assert!(after.values().all(|a| a.leader.is_some_and(|l| l != 2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_controller_is_replaced() {
    let server = EtcdServer::start();
    let config = config(&server);
    let a = Member::join(&config, info(1)).await.unwrap();
    let _releasing = release_moves(&a);
    eventually("a controls", Duration::from_secs(5), || async {
        a.view().controller.map(|c| c.0) == Some(1)
    })
    .await;
    let b = Member::join(&config, info(2)).await.unwrap();
    eventually("balanced", Duration::from_secs(10), || async {
        all_led(&[&a, &b]) && b.leading().len() == SHARDS as usize / 2
    })
    .await;
    a.leave().await;
    eventually(
        "b controls and leads everything",
        Duration::from_secs(10),
        || async {
            b.view().controller.map(|c| c.0) == Some(2) && b.leading().len() == SHARDS as usize
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_broker_releases_its_shards_to_the_others() {
    let server = EtcdServer::start();
    let config = config(&server);
    let a = Member::join(&config, info(1)).await.unwrap();
    let b = Member::join(&config, info(2)).await.unwrap();
    let _releasing = release_moves(&a);
    eventually("balanced", Duration::from_secs(10), || async {
        all_led(&[&a, &b]) && b.leading().len() == SHARDS as usize / 2
    })
    .await;
    let etcd = Etcd::new(vec![server.endpoint()], Duration::from_secs(1)).unwrap();
    etcd.put(&a.keys().drain(2), b"", None).await.unwrap();
    // b is asked to move each shard; it releases them as a broker does once flushed.
    let mut released = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.leading().is_empty() && Instant::now() < deadline {
        for (shard, assignment) in b.leading() {
            if assignment.moving_to == Some(1) && b.release(shard, assignment.epoch).await.unwrap()
            {
                assert!(
                    !b.may_acknowledge(shard, assignment.epoch) || b.leading().contains_key(&shard)
                );
                released += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(released, SHARDS as usize / 2);
    eventually("a leads everything", Duration::from_secs(5), || async {
        a.leading().len() == SHARDS as usize
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_etcd_brokers_stop_acknowledging_and_resume_when_it_returns() {
    let mut server = EtcdServer::start();
    let config = config(&server);
    let a = Member::join(&config, info(1)).await.unwrap();
    let b = Member::join(&config, info(2)).await.unwrap();
    let _releasing = (release_moves(&a), release_moves(&b));
    eventually("balanced", Duration::from_secs(10), || async {
        all_led(&[&a, &b]) && a.leading().len() == SHARDS as usize / 2
    })
    .await;
    let before = leaders(&a);
    let lease = a.lease().unwrap().id;
    server.kill();
    eventually("a stops acknowledging", Duration::from_secs(3), || async {
        before.iter().all(|(s, x)| !a.may_acknowledge(*s, x.epoch))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.restart();
    // etcd restores leases with a fresh TTL when it restarts: the same lease, the same shards.
    eventually(
        "both acknowledge again",
        Duration::from_secs(10),
        || async {
            before
                .iter()
                .all(|(s, x)| a.may_acknowledge(*s, x.epoch) || b.may_acknowledge(*s, x.epoch))
        },
    )
    .await;
    assert_eq!(a.lease().unwrap().id, lease);
    assert_eq!(leaders(&a), before, "no shard moved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_publishes_its_load_only_over_its_own_registration() {
    let server = EtcdServer::start();
    let config = config(&server);
    let a = Member::join(&config, info(1)).await.unwrap();
    a.publish_load([(3, 1234)].into()).await;
    eventually("the load in the view", Duration::from_secs(5), || async {
        a.view()
            .broker(1)
            .is_some_and(|b| b.info.load.get(&3) == Some(&1234))
    })
    .await;
    // Once its lease is gone, a publication recreates nothing.
    a.halt();
    let etcd = Etcd::new(vec![server.endpoint()], Duration::from_secs(1)).unwrap();
    let key = a.keys().broker(1);
    eventually(
        "the registration expires",
        Duration::from_secs(5),
        || async { etcd.get(&key).await.unwrap().0.is_none() },
    )
    .await;
    a.publish_load([(3, 1)].into()).await;
    assert!(etcd.get(&key).await.unwrap().0.is_none());
}
