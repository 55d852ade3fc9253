//! Taking a partitioned request apart by shard, and putting the answers back together.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::cluster::node::{Engine, Node};
use crate::cluster::shards;

/// Where a partitioned request goes.
pub enum Target {
    /// One local engine serves it whole.
    One(Arc<Engine>),
    /// Its partitions span shards (or some are not served here): split it.
    Split,
}

/// Where one partition's part goes.
pub(super) enum Place {
    Engine(Arc<Engine>),
    Refused(ResponseError),
}

pub(super) fn place(node: &Node, topic_id: Option<Uuid>, partition: i32, writes: bool) -> Place {
    let view = node.member.view();
    let Some(record) = topic_id.and_then(|id| view.topics.values().find(|t| t.id == id)) else {
        return Place::Refused(ResponseError::UnknownTopicOrPartition);
    };
    if partition < 0 || partition >= record.partitions {
        return Place::Refused(ResponseError::UnknownTopicOrPartition);
    }
    match node.engine(shards::of_partition(record.id, partition, node.settings())) {
        Some(engine) if !writes || engine.may_acknowledge() => Place::Engine(engine),
        _ => Place::Refused(ResponseError::NotLeaderOrFollower),
    }
}

pub(super) fn topic_id(node: &Node, name: &str, id: Uuid) -> Option<Uuid> {
    if !id.is_nil() {
        return Some(id);
    }
    node.member.view().topics.get(name).map(|t| t.id)
}

/// `Target::One` when every pair goes to the same engine.
pub(super) fn target(places: impl Iterator<Item = Place>) -> Target {
    let mut one: Option<Arc<Engine>> = None;
    for place in places {
        match (place, &one) {
            (Place::Engine(engine), None) => one = Some(engine),
            (Place::Engine(engine), Some(first)) if first.shard == engine.shard => {}
            _ => return Target::Split,
        }
    }
    one.map_or(Target::Split, Target::One)
}

/// How to take a partitioned request apart: its topics, each topic's key and partitions.
pub(super) struct Shape<R, T, P> {
    pub(super) topics: fn(&mut R) -> &mut Vec<T>,
    pub(super) key: fn(&T) -> (&str, Uuid),
    pub(super) partitions: fn(&mut T) -> &mut Vec<P>,
    pub(super) index: fn(&P) -> i32,
    /// Whether a leader that may not acknowledge refuses it here (produce is refused in the
    /// engine instead, see `PRODUCE`).
    pub(super) writes: bool,
}

/// A request split by shard: one part per local engine, and the partitions refused here with
/// their topic and the error.
pub(super) struct Parts<R, T, P> {
    pub(super) parts: Vec<(Arc<Engine>, R)>,
    pub(super) refused: Vec<(T, P, ResponseError)>,
}

pub(super) fn split<R: Clone, T: Clone, P: Clone>(
    node: &Node,
    mut request: R,
    shape: &Shape<R, T, P>,
) -> Parts<R, T, P> {
    let topics = std::mem::take((shape.topics)(&mut request));
    let mut parts: BTreeMap<u32, (Arc<Engine>, R)> = BTreeMap::new();
    let mut refused = Vec::new();
    for mut topic in topics {
        let (name, id) = (shape.key)(&topic);
        let id = topic_id(node, name, id);
        let partitions = std::mem::take((shape.partitions)(&mut topic));
        for partition in partitions {
            match place(node, id, (shape.index)(&partition), shape.writes) {
                Place::Engine(engine) => {
                    let (_, part) = parts
                        .entry(engine.shard)
                        .or_insert_with(|| (engine.clone(), request.clone()));
                    let part_topics = (shape.topics)(part);
                    let same = part_topics
                        .iter()
                        .position(|t| (shape.key)(t) == (shape.key)(&topic));
                    let slot = match same {
                        Some(i) => &mut part_topics[i],
                        None => {
                            part_topics.push(topic.clone());
                            part_topics.last_mut().expect("just pushed")
                        }
                    };
                    (shape.partitions)(slot).push(partition);
                }
                Place::Refused(error) => refused.push((topic.clone(), partition, error)),
            }
        }
    }
    Parts {
        parts: parts.into_values().collect(),
        refused,
    }
}

/// Adds `topic`'s partitions to the entry of the same topic in `topics` (or adds it).
pub(super) fn merge<T, P>(
    topics: &mut Vec<T>,
    mut topic: T,
    partitions: fn(&mut T) -> &mut Vec<P>,
    key: fn(&T) -> (String, Uuid),
) {
    let wanted = key(&topic);
    match topics.iter_mut().find(|t| key(t) == wanted) {
        Some(existing) => {
            let more = std::mem::take(partitions(&mut topic));
            partitions(existing).extend(more);
        }
        None => topics.push(topic),
    }
}
