//! Topics in a cluster: etcd holds them (created if absent, so two brokers creating one topic
//! at once agree on its id); Metadata describes every live broker and each partition's leader
//! and epoch from the cluster view.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, BrokerId, CreatePartitionsRequest,
    CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::cluster::etcd::{Compare, Op};
use crate::cluster::node::Node;
use crate::cluster::shards;
use crate::cluster::view::ClusterView;
use crate::handlers::create_topics::{self, Created, TopicCreator};
use crate::handlers::topic_changes::{TopicChanger, TRIES};
use crate::handlers::{
    alter_configs, create_partitions, delete_topics, describe_configs, describe_log_dirs, metadata,
    str_bytes,
};
use crate::log::partition::Partition;
use crate::log::topics::{validate_name, TopicError, TopicLimits, TopicRegistry};
use dfs_adapter::TopicRecord;

/// Creates topics in etcd.
struct ClusterTopics<'a> {
    node: &'a Node,
}

impl TopicCreator for ClusterTopics<'_> {
    fn default_partitions(&self) -> i32 {
        self.node.config.default_partitions
    }

    fn create<'a>(
        &'a self,
        name: &'a str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Created<'a> {
        Box::pin(async move {
            // Checked against one view of the cluster's topics, and created only if no topic
            // was created or grown since that view: two brokers creating at once cannot pass
            // the limits together. A lost race is checked again on the newer view.
            for _ in 0..TRIES {
                let view = self.node.member.view();
                // The broker's own checks (name, partition count, limits, configs), on a
                // scratch registry holding the cluster's topics.
                let scratch = TopicRegistry::recover(
                    view.topics.values().cloned().collect(),
                    Vec::new(),
                    TopicLimits::from(&self.node.config),
                );
                let store = scratch_store().await?;
                scratch
                    .create(&store, name, partitions, configs.clone(), true)
                    .await?;
                if validate_only {
                    return Ok((Uuid::nil(), configs));
                }
                let record = TopicRecord {
                    name: name.to_string(),
                    id: Uuid::new_v4(),
                    partitions,
                    configs: configs.clone(),
                };
                let keys = self.node.member.keys();
                let conditions = [
                    Compare::CreateRevision(keys.topic(name), 0),
                    Compare::PrefixUnchangedSince(keys.topics(), view.revision),
                ];
                if put_record_if(self.node, &conditions, &record).await? {
                    tracing::info!(topic = name, partitions, id = %record.id, "topic created in the cluster");
                    return Ok((record.id, record.configs));
                }
            }
            Err(TopicError::Contended(name.to_string()))
        })
    }
}

impl TopicChanger for ClusterTopics<'_> {
    fn current<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Option<TopicRecord>> {
        Box::pin(async move {
            self.node
                .member
                .fresh_view()
                .await
                .topics
                .get(name)
                .cloned()
        })
    }

    fn replace<'a>(
        &'a self,
        old: &'a TopicRecord,
        new: TopicRecord,
        validate_only: bool,
    ) -> BoxFuture<'a, Result<bool, TopicError>> {
        Box::pin(async move {
            let view = self.node.member.view();
            let Some(&revision) = view.topic_revisions.get(&old.name) else {
                return Ok(false);
            };
            if view.topics.get(&old.name) != Some(old) {
                return Ok(false);
            }
            let held = view
                .topics
                .values()
                .map(|t| usize::try_from(t.partitions).unwrap_or(0))
                .sum();
            TopicLimits::from(&self.node.config).check_change(old, &new, held)?;
            if validate_only {
                return Ok(true);
            }
            let keys = self.node.member.keys();
            let mut conditions = vec![Compare::ModRevision(keys.topic(&old.name), revision)];
            if new.partitions > old.partitions {
                // The limits were checked against this view: growth applies only if no other
                // topic was created or grown since.
                conditions.push(Compare::PrefixUnchangedSince(keys.topics(), view.revision));
            }
            let replaced = put_record_if(self.node, &conditions, &new).await?;
            if replaced {
                tracing::info!(topic = %new.name, partitions = new.partitions, configs = ?new.configs, "topic changed in the cluster");
            }
            Ok(replaced)
        })
    }
}

/// Puts `record` in etcd if every condition holds, then applies the cluster's topics here
/// (whether it was put or not: a lost race is retried on the newer view).
async fn put_record_if(
    node: &Node,
    conditions: &[Compare],
    record: &TopicRecord,
) -> Result<bool, TopicError> {
    let key = node.member.keys().topic(&record.name);
    let value = serde_json::to_vec(record).expect("topic records serialize");
    let outcome = node
        .member
        .etcd()
        .txn(
            conditions,
            &[Op::Put {
                key,
                value,
                lease: None,
            }],
            &[],
        )
        .await
        .map_err(|e| TopicError::Coordination(format!("etcd: {e}")))?;
    node.member.refresh().await;
    node.sync_topics().await;
    Ok(outcome.succeeded)
}

/// AlterConfigs.
pub async fn alter_configs(node: &Node, request: AlterConfigsRequest) -> AlterConfigsResponse {
    alter_configs::alter(&ClusterTopics { node }, request).await
}

/// IncrementalAlterConfigs.
pub async fn incremental_alter_configs(
    node: &Node,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    alter_configs::incremental(&ClusterTopics { node }, request).await
}

/// DescribeConfigs, from the cluster's topics as etcd holds them now (a broker that leads no
/// shard answers too, and a change made through another broker is seen at once).
pub async fn describe_configs(
    node: &Node,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let view = node.member.fresh_view().await;
    let overrides = |name: &str| view.topics.get(name).map(|t| t.configs.clone());
    describe_configs::handle_with(&node.config, &overrides, request)
}

/// DescribeLogDirs: one directory per shard this broker leads (its root in the store), with
/// the shard's partitions.
pub fn describe_log_dirs(node: &Node, request: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let settings = node.settings();
    let results = node
        .engines()
        .iter()
        .map(|engine| {
            let in_shard = |partition: &Partition| {
                let key = partition.key();
                shards::of_partition(key.topic_id, key.partition, settings) == engine.shard
            };
            let topics = describe_log_dirs::partitions(&engine.broker, &request, in_shard);
            describe_log_dirs::result(engine.broker.store.url(), topics)
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(results)
}

/// CreatePartitions.
pub async fn create_partitions(
    node: &Node,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    create_partitions::handle(&ClusterTopics { node }, request).await
}

/// An empty in-memory store for the scratch validation (never written: validate only).
async fn scratch_store() -> Result<dfs_adapter::Store, TopicError> {
    static SCRATCH: tokio::sync::OnceCell<dfs_adapter::Store> = tokio::sync::OnceCell::const_new();
    SCRATCH
        .get_or_try_init(|| async {
            let dir = std::env::temp_dir().join(format!("hotwire-scratch-{}", std::process::id()));
            dfs_adapter::Store::open(&format!("fs://{}", dir.display())).await
        })
        .await
        .cloned()
        .map_err(TopicError::Storage)
}

/// Creates the topics among `names` that the cluster does not have, with the default
/// partition count, when auto-creation is on.
pub async fn ensure_topics(node: &Node, names: &[String]) {
    if !node.config.auto_create_topics {
        return;
    }
    let view = node.member.view();
    for name in names {
        if view.topics.contains_key(name) || validate_name(name).is_err() {
            continue;
        }
        let creator = ClusterTopics { node };
        match creator
            .create(name, node.config.default_partitions, BTreeMap::new(), false)
            .await
        {
            Ok(_) | Err(TopicError::Exists(_)) => {}
            Err(error) => tracing::warn!(topic = %name, %error, "auto-create refused"),
        }
    }
}

/// CreateTopics.
pub async fn create(
    node: &Node,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    create_topics::handle(&ClusterTopics { node }, request, version).await
}

/// DeleteTopics: removes the record from etcd; each leader retires the topic's data.
pub async fn delete(
    node: &Node,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
    let wanted = delete_topics::wanted(request, version);
    let mut responses = Vec::new();
    for (name, id) in wanted {
        // The record as etcd holds it now: a stale one would lose the compare below and
        // answer UNKNOWN_TOPIC_OR_PARTITION for a topic that exists.
        let view = node.member.fresh_view().await;
        let record = match &name {
            Some(name) => view.topics.get(name).cloned(),
            None => view.topics.values().find(|t| t.id == id).cloned(),
        };
        let mut result = DeletableTopicResult::default().with_name(
            record
                .as_ref()
                .map(|r| TopicName(str_bytes(r.name.clone())))
                .or(name.clone().map(|n| TopicName(str_bytes(n)))),
        );
        if version >= 6 {
            result.topic_id = record.as_ref().map_or(id, |r| r.id);
        }
        let error = match record {
            None if name.is_some() => Some(ResponseError::UnknownTopicOrPartition),
            None => Some(ResponseError::UnknownTopicId),
            Some(record) => {
                let key = node.member.keys().topic(&record.name);
                let revision = view.topic_revisions.get(&record.name).copied().unwrap_or(0);
                match node
                    .member
                    .etcd()
                    .txn(
                        &[Compare::ModRevision(key.clone(), revision)],
                        &[Op::Delete(key)],
                        &[],
                    )
                    .await
                {
                    Ok(outcome) if outcome.succeeded => {
                        tracing::info!(topic = %record.name, "topic deleted from the cluster");
                        None
                    }
                    Ok(_) => Some(ResponseError::UnknownTopicOrPartition),
                    Err(error) => {
                        tracing::warn!(%error, "cannot delete a topic in etcd");
                        Some(ResponseError::RequestTimedOut)
                    }
                }
            }
        };
        if let Some(error) = error {
            result.error_code = error.code();
        }
        responses.push(result);
    }
    node.member.refresh().await;
    node.sync_topics().await;
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Metadata: every live broker, and each partition's leader and epoch.
pub async fn metadata(
    node: &Node,
    request: MetadataRequest,
    version: i16,
    protocol: &str,
) -> MetadataResponse {
    let wanted = match request.topics {
        Some(list) if !(version == 0 && list.is_empty()) => Some(list),
        _ => None,
    };
    let may_create = version < 4 || request.allow_auto_topic_creation;
    if let (Some(list), true) = (&wanted, may_create) {
        let names: Vec<String> = list
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect();
        ensure_topics(node, &names).await;
    }
    let view = node.member.fresh_view().await;
    let mut topics = Vec::new();
    match wanted {
        None => topics.extend(view.topics.values().map(|t| describe(node, &view, t))),
        Some(list) => {
            for wanted in list {
                let found = match &wanted.name {
                    Some(name) => view.topics.get(name.0.as_str()),
                    None => view.topics.values().find(|t| t.id == wanted.topic_id),
                };
                topics.push(match found {
                    Some(record) => describe(node, &view, record),
                    None => {
                        let invalid = wanted
                            .name
                            .as_ref()
                            .is_some_and(|n| validate_name(n.0.as_str()).is_err());
                        let error = match (&wanted.name, invalid) {
                            (Some(_), true) => ResponseError::InvalidTopicException,
                            (Some(_), false) => ResponseError::UnknownTopicOrPartition,
                            (None, _) => ResponseError::UnknownTopicId,
                        };
                        let name = wanted.name.as_ref().map(|n| n.0.as_str());
                        metadata::error_topic(name, wanted.topic_id, error)
                    }
                });
            }
        }
    }
    let brokers = view
        .brokers
        .iter()
        .map(|b| {
            let (host, port) = b.info.address(protocol);
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.info.node_id))
                .with_host(str_bytes(host))
                .with_port(port)
                .with_rack(b.info.rack.clone().map(str_bytes))
        })
        .collect();
    let mut response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_topics(topics);
    if version >= 2 {
        response.cluster_id = Some(str_bytes(format!("hotwire-{}", node.member.name())));
    }
    if version >= 1 {
        response.controller_id = BrokerId(view.controller.map_or(-1, |c| c.0));
    }
    response
}

fn describe(node: &Node, view: &ClusterView, topic: &TopicRecord) -> MetadataResponseTopic {
    let assignments = view.assignments();
    let live = |n: i32| view.broker(n).is_some();
    let partitions = (0..topic.partitions)
        .map(|index| {
            let shard = shards::of_partition(topic.id, index, node.settings());
            let assignment = assignments.get(&shard).copied().unwrap_or_default();
            let partition = MetadataResponsePartition::default().with_partition_index(index);
            match assignment.leader.filter(|l| live(*l)) {
                Some(leader) => partition
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(assignment.epoch)
                    .with_replica_nodes(vec![BrokerId(leader)])
                    .with_isr_nodes(vec![BrokerId(leader)]),
                None => partition
                    .with_error_code(ResponseError::LeaderNotAvailable.code())
                    .with_leader_id(BrokerId(-1))
                    .with_leader_epoch(assignment.epoch),
            }
        })
        .collect();
    metadata::topic_entry(&topic.name, topic.id, partitions)
}
