//! The controller's decisions: which broker leads which shard.
//!
//! A pure function of what etcd holds, so that it can be tested without etcd and so that a new
//! controller, reading the same keys, continues where the last one stopped.

use std::collections::BTreeMap;

use super::model::{LiveBroker, ShardAssignment};

/// One change the controller makes to a shard's assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The shard has no leader (never had one, its leader's lease is gone, or its leader
    /// released it): give it to `to` under `lease`, at the next epoch.
    Assign {
        /// Shard.
        shard: u32,
        /// New leader.
        to: i32,
        /// The new leader's lease.
        lease: i64,
    },
    /// Ask the live leader to hand the shard over to `to` (it releases the shard when its data
    /// is flushed; the shard is then assigned to `to`).
    Move {
        /// Shard.
        shard: u32,
        /// Broker that receives it.
        to: i32,
        /// Why it moves.
        why: MoveReason,
    },
    /// The broker a move was heading to is gone: the leader keeps the shard.
    CancelMove {
        /// Shard.
        shard: u32,
    },
}

/// Why the controller moves a shard that has a live leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoveReason {
    /// Its leader leads two shards more than another broker, or is draining.
    Count,
    /// Counts are even but the measured loads are not (see [`LoadRule`]).
    Load,
}

/// When measured load alone moves shards (counts being even).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadRule {
    /// The smallest gap, in bytes/s, between the busiest and the idlest broker worth a move.
    pub min_gap: u64,
}

/// What the controller should change, given every shard's assignment, the live brokers and
/// each shard's measured load (bytes/s written, as its current leader measured it over a whole
/// period; shards not measured count as 0 for the choices below).
///
/// - A shard whose leader is gone (unregistered, or registered again under another lease) or
///   that was released goes to the target of its move if that broker lives, else to the live
///   broker leading the fewest shards, the least loaded among equals (lowest node id among
///   equals again).
/// - A move towards a broker that is gone is cancelled.
/// - Brokers in `draining` receive nothing and hand every shard away.
/// - Then, while the busiest broker leads two shards more than the idlest and has no move under
///   way, one of its shards is moved there: the one whose load best evens the two brokers' loads.
///   One move per broker at a time, so a rebalance never takes more than a shard from each
///   broker out of service at once.
/// - Then, with `rule` given, nothing else to change or under way, and every led shard
///   measured: if the busiest broker's load exceeds the idlest's by at least `rule.min_gap` and
///   by a third of its own, the move (a shard from the busiest, if it leads more shards) or the
///   swap (a shard each way, if counts are equal) that narrows that gap most, provided it at
///   least halves it. Each such step lowers the sum of the squared broker loads, so with steady
///   loads moves stop; noise is absorbed by the thresholds and by the controller's pause
///   between load moves.
pub fn plan(
    shards: &BTreeMap<u32, ShardAssignment>,
    live: &[LiveBroker],
    draining: &[i32],
    load: &BTreeMap<u32, u64>,
    rule: Option<LoadRule>,
) -> Vec<Change> {
    let lease_of: BTreeMap<i32, i64> = live.iter().map(|b| (b.info.node_id, b.lease)).collect();
    let is_live = |node: i32, lease: i64| lease_of.get(&node) == Some(&lease);
    let takes = |node: &i32| !draining.contains(node);
    let shard_load = |shard: &u32| load.get(shard).copied().unwrap_or(0);
    let mut count: BTreeMap<i32, (usize, u64)> = lease_of.keys().map(|n| (*n, (0, 0))).collect();
    let mut changes = Vec::new();
    let mut orphans = Vec::new();
    let mut moving_from: Vec<i32> = Vec::new();
    for (&shard, assignment) in shards {
        match assignment.leader {
            Some(leader) if is_live(leader, assignment.lease) => {
                let entry = count.entry(leader).or_default();
                entry.0 += 1;
                entry.1 += shard_load(&shard);
                if let Some(to) = assignment.moving_to {
                    if lease_of.contains_key(&to) && takes(&to) {
                        moving_from.push(leader);
                    } else {
                        changes.push(Change::CancelMove { shard });
                    }
                }
            }
            _ => orphans.push((shard, assignment.moving_to)),
        }
    }
    // The heaviest orphans first, so that load spreads as counts do.
    orphans.sort_by_key(|(shard, _)| std::cmp::Reverse(shard_load(shard)));
    for (shard, moving_to) in orphans {
        let target = moving_to
            .filter(|to| lease_of.contains_key(to) && takes(to))
            .or_else(|| idlest(&count, &takes));
        if let Some(to) = target {
            let entry = count.entry(to).or_default();
            entry.0 += 1;
            entry.1 += shard_load(&shard);
            changes.push(Change::Assign {
                shard,
                to,
                lease: lease_of[&to],
            });
        }
    }
    // Drained brokers hand everything away, then the rest is evened out.
    let changed: Vec<u32> = changes.iter().map(shard_of).collect();
    let leaders: Vec<i32> = count.keys().copied().collect();
    for leader in leaders {
        if moving_from.contains(&leader) {
            continue;
        }
        let Some(to) = idlest(&count, &takes) else {
            break;
        };
        let (n_from, load_from) = count[&leader];
        let (n_to, load_to) = count[&to];
        let excess = if takes(&leader) {
            n_from >= n_to + 2
        } else {
            n_from > 0
        };
        if !excess || to == leader {
            continue;
        }
        // Of the leader's shards free to move, the one that leaves the two loads closest.
        let half_gap = load_from.saturating_sub(load_to) / 2;
        let candidate = shards
            .iter()
            .filter(|(shard, a)| {
                a.leader == Some(leader)
                    && a.moving_to.is_none()
                    && is_live(leader, a.lease)
                    && !changed.contains(shard)
            })
            .map(|(shard, _)| *shard)
            .min_by_key(|shard| (shard_load(shard).abs_diff(half_gap), *shard));
        if let Some(shard) = candidate {
            let moved = shard_load(&shard);
            let from = count.get_mut(&leader).expect("a live leader is counted");
            from.0 -= 1;
            from.1 -= moved.min(from.1);
            let target = count.entry(to).or_default();
            target.0 += 1;
            target.1 += moved;
            moving_from.push(leader);
            changes.push(Change::Move {
                shard,
                to,
                why: MoveReason::Count,
            });
        }
    }
    let all_measured = || {
        shards
            .iter()
            .filter(|(_, a)| a.leader.is_some_and(|l| is_live(l, a.lease)))
            .all(|(shard, _)| load.contains_key(shard))
    };
    if let Some(rule) = rule {
        if changes.is_empty() && moving_from.is_empty() && all_measured() {
            let led_by = |node: i32| -> Vec<(u32, u64)> {
                shards
                    .iter()
                    .filter(|(_, a)| a.leader == Some(node) && is_live(node, a.lease))
                    .map(|(shard, _)| (*shard, shard_load(shard)))
                    .collect()
            };
            changes.extend(even_load(&count, &takes, &led_by, rule));
        }
    }
    changes
}

/// The load move or swap of [`plan`]'s last rule, if one is worth making.
fn even_load(
    count: &BTreeMap<i32, (usize, u64)>,
    takes: &impl Fn(&i32) -> bool,
    led_by: &impl Fn(i32) -> Vec<(u32, u64)>,
    rule: LoadRule,
) -> Vec<Change> {
    let takers = || count.iter().filter(|(node, _)| takes(node));
    let Some((&busy, &(n_busy, l_busy))) = takers().max_by_key(|(node, (_, l))| (*l, -**node))
    else {
        return Vec::new();
    };
    let Some((&idle, &(n_idle, l_idle))) = takers().min_by_key(|(node, (_, l))| (*l, **node))
    else {
        return Vec::new();
    };
    let gap = l_busy.saturating_sub(l_idle);
    if busy == idle || rule.min_gap == 0 || gap < rule.min_gap || gap.saturating_mul(3) < l_busy {
        return Vec::new();
    }
    // Moving net load x from busy to idle leaves a gap of |gap - 2x|.
    let left = |x: u64| (gap as i128 - 2 * x as i128).unsigned_abs();
    let mut idle_shards = led_by(idle);
    idle_shards.sort_by_key(|(shard, l)| (*l, *shard));
    // (gap left, whether a swap: one move rather than two among equals, shard from busy,
    // shard from idle if a swap)
    let mut best: Option<(u128, bool, u32, Option<u32>)> = None;
    for (shard, l) in led_by(busy) {
        if n_busy > n_idle {
            let option = (left(l), false, shard, None);
            best = Some(best.map_or(option, |b| b.min(option)));
        }
        // The idle broker's shard whose load is closest to l - gap/2: the two either side.
        let wanted = l.saturating_sub(gap / 2);
        let at = idle_shards.partition_point(|(_, x)| *x < wanted);
        for (other, x) in idle_shards[at.saturating_sub(1)..(at + 1).min(idle_shards.len())]
            .iter()
            .copied()
        {
            if x < l {
                let option = (left(l - x), true, shard, Some(other));
                best = Some(best.map_or(option, |b| b.min(option)));
            }
        }
    }
    match best {
        Some((left, _, shard, back)) if left * 2 <= gap as u128 => {
            let mut moves = vec![Change::Move {
                shard,
                to: idle,
                why: MoveReason::Load,
            }];
            if let Some(other) = back {
                moves.push(Change::Move {
                    shard: other,
                    to: busy,
                    why: MoveReason::Load,
                });
            }
            moves
        }
        _ => Vec::new(),
    }
}

fn shard_of(change: &Change) -> u32 {
    match *change {
        Change::Assign { shard, .. }
        | Change::Move { shard, .. }
        | Change::CancelMove { shard } => shard,
    }
}

/// The broker that takes shards and leads the fewest, the least loaded among equals (lowest
/// node id among equals again).
fn idlest(count: &BTreeMap<i32, (usize, u64)>, takes: &impl Fn(&i32) -> bool) -> Option<i32> {
    count
        .iter()
        .filter(|(node, _)| takes(node))
        .min_by_key(|(node, (n, load))| (*n, *load, **node))
        .map(|(node, _)| *node)
}

/// `assignment` after `change` (`None` if the change does not apply to it).
pub fn apply(assignment: ShardAssignment, change: Change) -> ShardAssignment {
    match change {
        Change::Assign { to, lease, .. } => ShardAssignment {
            leader: Some(to),
            lease,
            epoch: assignment.epoch + 1,
            moving_to: None,
        },
        Change::Move { to, .. } => ShardAssignment {
            moving_to: Some(to),
            ..assignment
        },
        Change::CancelMove { .. } => ShardAssignment {
            moving_to: None,
            ..assignment
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::model::BrokerInfo;

    fn broker(node_id: i32, lease: i64) -> LiveBroker {
        LiveBroker {
            info: BrokerInfo {
                node_id,
                host: "127.0.0.1".into(),
                port: 9092,
                rack: None,
                endpoints: Vec::new(),
                load: BTreeMap::new(),
            },
            lease,
        }
    }

    fn led(leader: i32, lease: i64, epoch: i32) -> ShardAssignment {
        ShardAssignment {
            leader: Some(leader),
            lease,
            epoch,
            moving_to: None,
        }
    }

    /// Applies plans until nothing changes, moving shards as their leaders would release them.
    fn settle(
        shards: BTreeMap<u32, ShardAssignment>,
        live: &[LiveBroker],
        draining: &[i32],
    ) -> BTreeMap<u32, ShardAssignment> {
        settle_loaded(shards, live, draining, &BTreeMap::new(), None)
    }

    /// [`settle`] with steady loads and a load rule.
    fn settle_loaded(
        mut shards: BTreeMap<u32, ShardAssignment>,
        live: &[LiveBroker],
        draining: &[i32],
        load: &BTreeMap<u32, u64>,
        rule: Option<LoadRule>,
    ) -> BTreeMap<u32, ShardAssignment> {
        for _ in 0..100 {
            let changes = plan(&shards, live, draining, load, rule);
            if changes.is_empty() {
                return shards;
            }
            for change in changes {
                let shard = shard_of(&change);
                let next = apply(shards[&shard], change);
                shards.insert(shard, next);
            }
            // Leaders release what they were asked to move.
            for a in shards.values_mut() {
                if a.moving_to.is_some() {
                    a.leader = None;
                    a.lease = 0;
                }
            }
        }
        panic!("the plan did not settle");
    }

    fn counts(shards: &BTreeMap<u32, ShardAssignment>) -> BTreeMap<i32, usize> {
        let mut counts = BTreeMap::new();
        for a in shards.values() {
            *counts.entry(a.leader.unwrap()).or_default() += 1;
        }
        counts
    }

    #[test]
    fn a_new_cluster_spreads_its_shards_evenly() {
        let shards = (0..16).map(|s| (s, ShardAssignment::default())).collect();
        let live = [broker(1, 10), broker(2, 20), broker(3, 30)];
        let settled = settle(shards, &live, &[]);
        assert_eq!(
            counts(&settled).values().copied().collect::<Vec<_>>(),
            [6, 5, 5]
        );
        assert!(settled.values().all(|a| a.epoch == 1));
    }

    #[test]
    fn a_dead_brokers_shards_go_to_the_others_at_the_next_epoch() {
        let shards: BTreeMap<_, _> = (0..6)
            .map(|s| (s, led(1 + (s as i32 % 3), 10 * (1 + (s as i64 % 3)), 4)))
            .collect();
        let live = [broker(1, 10), broker(3, 30)];
        let changes = plan(&shards, &live, &[], &BTreeMap::new(), None);
        assert_eq!(
            changes,
            [
                Change::Assign {
                    shard: 1,
                    to: 1,
                    lease: 10
                },
                Change::Assign {
                    shard: 4,
                    to: 3,
                    lease: 30
                }
            ]
        );
        let settled = settle(shards, &live, &[]);
        assert_eq!(settled[&1].epoch, 5);
        assert_eq!(settled[&0].epoch, 4, "a shard that stayed keeps its epoch");
    }

    #[test]
    fn a_broker_back_under_a_new_lease_has_lost_its_shards() {
        let shards: BTreeMap<_, _> = [(0, led(1, 10, 2)), (1, led(2, 20, 2))].into();
        let live = [broker(1, 11), broker(2, 20)];
        assert_eq!(
            plan(&shards, &live, &[], &BTreeMap::new(), None),
            [Change::Assign {
                shard: 0,
                to: 1,
                lease: 11
            }]
        );
    }

    #[test]
    fn a_joining_broker_receives_shards_one_move_per_broker_at_a_time() {
        let shards: BTreeMap<_, _> = (0..8)
            .map(|s| (s, led(1 + (s as i32 % 2), 10 * (1 + s as i64 % 2), 1)))
            .collect();
        let live = [broker(1, 10), broker(2, 20), broker(3, 30)];
        let changes = plan(&shards, &live, &[], &BTreeMap::new(), None);
        assert_eq!(
            changes,
            [
                Change::Move {
                    shard: 0,
                    to: 3,
                    why: MoveReason::Count
                },
                Change::Move {
                    shard: 1,
                    to: 3,
                    why: MoveReason::Count
                }
            ]
        );
        let settled = settle(shards, &live, &[]);
        let c = counts(&settled);
        assert!(
            c.values().max().unwrap() - c.values().min().unwrap() <= 1,
            "{c:?}"
        );
    }

    #[test]
    fn a_released_shard_goes_where_it_was_moving() {
        let shards: BTreeMap<_, _> = [(
            0,
            ShardAssignment {
                leader: None,
                lease: 0,
                epoch: 3,
                moving_to: Some(2),
            },
        )]
        .into();
        let live = [broker(1, 10), broker(2, 20)];
        assert_eq!(
            plan(&shards, &live, &[], &BTreeMap::new(), None),
            [Change::Assign {
                shard: 0,
                to: 2,
                lease: 20
            }]
        );
    }

    #[test]
    fn a_move_towards_a_dead_broker_is_cancelled() {
        let mut moving = led(1, 10, 3);
        moving.moving_to = Some(2);
        let shards: BTreeMap<_, _> = [(0, moving)].into();
        assert_eq!(
            plan(&shards, &[broker(1, 10)], &[], &BTreeMap::new(), None),
            [Change::CancelMove { shard: 0 }]
        );
    }

    #[test]
    fn a_draining_broker_hands_every_shard_away_and_receives_none() {
        let shards = (0..6).map(|s| (s, ShardAssignment::default())).collect();
        let live = [broker(1, 10), broker(2, 20), broker(3, 30)];
        let settled = settle(shards, &live, &[]);
        let drained = settle(settled, &live, &[2]);
        let c = counts(&drained);
        assert_eq!(c.get(&2), None, "{c:?}");
        assert_eq!(c.values().sum::<usize>(), 6);
    }

    #[test]
    fn load_chooses_where_orphans_go_and_which_shard_moves() {
        // Two brokers with two shards each; broker 1's are busy.
        let shards: BTreeMap<_, _> = [
            (0, led(1, 10, 1)),
            (1, led(1, 10, 1)),
            (2, led(2, 20, 1)),
            (3, led(2, 20, 1)),
            (4, ShardAssignment::default()),
        ]
        .into();
        let load: BTreeMap<u32, u64> = [(0, 900), (1, 800), (2, 10), (3, 20), (4, 5)].into();
        let live = [broker(1, 10), broker(2, 20)];
        assert_eq!(
            plan(&shards, &live, &[], &load, None),
            [Change::Assign {
                shard: 4,
                to: 2,
                lease: 20
            }],
            "equal counts: the orphan goes to the less loaded broker"
        );
        // A third broker joins: the busy broker gives the shard that evens the loads best.
        let live = [broker(1, 10), broker(2, 20), broker(3, 30)];
        let mut shards = shards;
        shards.insert(4, led(2, 20, 1));
        let shards: BTreeMap<_, _> = shards.into_iter().chain([(5, led(1, 10, 1))]).collect();
        let load: BTreeMap<u32, u64> =
            [(0, 900), (1, 800), (5, 30), (2, 10), (3, 20), (4, 5)].into();
        let changes = plan(&shards, &live, &[], &load, None);
        assert!(
            changes.contains(&Change::Move {
                shard: 0,
                to: 3,
                why: MoveReason::Count
            }),
            "{changes:?}"
        );
        assert!(
            changes.contains(&Change::Move {
                shard: 4,
                to: 3,
                why: MoveReason::Count
            }),
            "{changes:?}"
        );
    }

    const RULE: Option<LoadRule> = Some(LoadRule { min_gap: 100 });

    fn load_move(shard: u32, to: i32) -> Change {
        Change::Move {
            shard,
            to,
            why: MoveReason::Load,
        }
    }

    #[test]
    fn even_counts_with_uneven_loads_swap_the_shards_that_even_them() {
        let shards: BTreeMap<_, _> = [
            (0, led(1, 10, 1)),
            (1, led(1, 10, 1)),
            (2, led(2, 20, 1)),
            (3, led(2, 20, 1)),
        ]
        .into();
        let load: BTreeMap<u32, u64> = [(0, 900), (1, 800), (2, 10), (3, 20)].into();
        let live = [broker(1, 10), broker(2, 20)];
        assert_eq!(
            plan(&shards, &live, &[], &load, RULE),
            [load_move(0, 2), load_move(3, 1)]
        );
        let settled = settle_loaded(shards.clone(), &live, &[], &load, RULE);
        assert_eq!(counts(&settled), [(1, 2), (2, 2)].into());
        assert_eq!(settled[&0].leader, Some(2));
        assert_eq!(settled[&1].leader, Some(1));
        assert!(
            plan(&shards, &live, &[], &load, None).is_empty(),
            "no load moves without the rule"
        );
    }

    #[test]
    fn a_broker_leading_more_shards_gives_one_away_for_load() {
        let shards: BTreeMap<_, _> = [
            (0, led(1, 10, 1)),
            (1, led(1, 10, 1)),
            (2, led(1, 10, 1)),
            (3, led(2, 20, 1)),
            (4, led(2, 20, 1)),
        ]
        .into();
        let load: BTreeMap<u32, u64> = [(0, 500), (1, 400), (2, 10), (3, 10), (4, 10)].into();
        let live = [broker(1, 10), broker(2, 20)];
        assert_eq!(plan(&shards, &live, &[], &load, RULE), [load_move(1, 2)]);
    }

    #[test]
    fn load_moves_wait_for_a_real_gap_for_every_measure_and_for_other_moves() {
        let shards: BTreeMap<_, _> = [(0, led(1, 10, 1)), (1, led(2, 20, 1))]
            .into_iter()
            .chain([(2, led(1, 10, 1)), (3, led(2, 20, 1))])
            .collect();
        let live = [broker(1, 10), broker(2, 20)];
        let quiet = |load: &[(u32, u64)]| {
            let load: BTreeMap<u32, u64> = load.iter().copied().collect();
            plan(&shards, &live, &[], &load, RULE).is_empty()
        };
        assert!(
            !quiet(&[(0, 300), (2, 300), (1, 0), (3, 0)]),
            "a gap of 600"
        );
        assert!(quiet(&[(0, 50), (2, 40), (1, 0), (3, 0)]), "below min_gap");
        assert!(
            quiet(&[(0, 600), (2, 500), (1, 400), (3, 400)]),
            "a gap under a third of the busiest broker's load"
        );
        assert!(quiet(&[(0, 1000), (2, 0), (1, 0), (3, 0)]), "one hot shard");
        assert!(quiet(&[(0, 300), (2, 300), (1, 0)]), "shard 3 not measured");
        let mut moving = shards.clone();
        moving.get_mut(&1).unwrap().moving_to = Some(1);
        let load: BTreeMap<u32, u64> = [(0, 300), (2, 300), (1, 0), (3, 0)].into();
        assert!(
            plan(&moving, &live, &[], &load, RULE).is_empty(),
            "a move under way"
        );
    }

    proptest::proptest! {
        #[test]
        fn steady_loads_settle_with_even_counts(
            loads in proptest::collection::vec(0u64..10_000, 1..24),
            brokers in 1i32..5,
            first in proptest::collection::vec(0i32..5, 24),
        ) {
            let live: Vec<_> = (1..=brokers).map(|n| broker(n, 10 * n as i64)).collect();
            let shards: BTreeMap<_, _> = (0..loads.len() as u32)
                .map(|s| {
                    let node = 1 + first[s as usize] % brokers;
                    (s, led(node, 10 * node as i64, 1))
                })
                .collect();
            let load: BTreeMap<u32, u64> = (0..).zip(loads.iter().copied()).collect();
            // `settle_loaded` panics if the moves never stop.
            let settled = settle_loaded(shards, &live, &[], &load, RULE);
            let c = counts(&settled);
            let (max, min) = (c.values().max().unwrap(), c.values().min().unwrap());
            proptest::prop_assert!(c.len() < live.len() || max - min <= 1, "{c:?}");
        }
    }

    #[test]
    fn with_no_live_broker_nothing_is_assigned() {
        let shards = (0..3).map(|s| (s, ShardAssignment::default())).collect();
        assert!(plan(&shards, &[], &[], &BTreeMap::new(), None).is_empty());
    }
}
