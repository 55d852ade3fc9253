//! Kafka requests to a broker of a cluster: each partition's part goes to the engine of the
//! partition's shard, each group's request to the engine of the group's shard; what belongs to
//! a shard this broker does not lead is answered `NOT_LEADER_OR_FOLLOWER` or
//! `NOT_COORDINATOR`, so that clients refresh their metadata and go to the leader.

mod groups;
mod partitioned;
mod split;
mod topics;

use crate::server::Origin;
use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

use super::node::{Engine, Node};
use crate::handlers::{self, api_versions, describe_cluster, InFlight, Reply};
use crate::protocol::{encode_response, Request};
use crate::security::authorize::KnownTopics;

/// Serves one request of a cluster broker.
pub async fn start(node: Arc<Node>, request: Request, origin: Origin) -> InFlight {
    let access = origin.access(&node.acls);
    let (request, denied) = match handlers::admit(request, &access, &NodeTopics(&node)) {
        Ok(admitted) => admitted,
        Err(refused) => return InFlight::Ready(refused),
    };
    let Request {
        api_key,
        version,
        correlation_id,
        client_id,
        body,
    } = request;
    let latency = node.events.request_latency(&format!("{api_key:?}"));
    let started = std::time::Instant::now();
    let completion = denied.clone();
    let reply = move |mut response: ResponseKind| {
        latency.observe(started.elapsed().as_secs_f64());
        completion.apply(&mut response);
        encode(api_key, version, correlation_id, &response)
    };
    // Requests one engine serves whole go to it unchanged (already authorized).
    let forward = |engine: Arc<Engine>, body: RequestKind| {
        let request = Request {
            api_key,
            version,
            correlation_id,
            client_id: client_id.clone(),
            body,
        };
        handlers::serve(
            engine.broker.clone(),
            request,
            origin.clone(),
            denied.clone(),
        )
    };
    match body {
        RequestKind::ApiVersions(_) => {
            InFlight::Ready(reply(ResponseKind::ApiVersions(api_versions::handle())))
        }
        RequestKind::Metadata(r) => InFlight::Ready(reply(ResponseKind::Metadata(
            topics::metadata(&node, r, version, node.config.protocol_of(origin.listener)).await,
        ))),
        RequestKind::DescribeCluster(r) => {
            let request = describe_cluster::metadata_request();
            let version = describe_cluster::METADATA_VERSION;
            let protocol = node.config.protocol_of(origin.listener);
            let metadata = topics::metadata(&node, request, version, protocol).await;
            InFlight::Ready(reply(ResponseKind::DescribeCluster(
                describe_cluster::from_metadata(metadata, &r),
            )))
        }
        RequestKind::CreateTopics(r) => InFlight::Ready(reply(ResponseKind::CreateTopics(
            topics::create(&node, r, version).await,
        ))),
        RequestKind::DeleteTopics(r) => InFlight::Ready(reply(ResponseKind::DeleteTopics(
            topics::delete(&node, r, version).await,
        ))),
        RequestKind::DescribeLogDirs(r) => InFlight::Ready(reply(ResponseKind::DescribeLogDirs(
            topics::describe_log_dirs(&node, r),
        ))),
        RequestKind::DescribeProducers(r) => InFlight::Ready(reply(
            ResponseKind::DescribeProducers(partitioned::describe_producers(&node, r)),
        )),
        RequestKind::AlterConfigs(r) => InFlight::Ready(reply(ResponseKind::AlterConfigs(
            topics::alter_configs(&node, r).await,
        ))),
        RequestKind::IncrementalAlterConfigs(r) => {
            InFlight::Ready(reply(ResponseKind::IncrementalAlterConfigs(
                topics::incremental_alter_configs(&node, r).await,
            )))
        }
        RequestKind::CreatePartitions(r) => InFlight::Ready(reply(ResponseKind::CreatePartitions(
            topics::create_partitions(&node, r).await,
        ))),
        RequestKind::FindCoordinator(r) => InFlight::Ready(reply(ResponseKind::FindCoordinator(
            groups::find_coordinator(&node, r, version, node.config.protocol_of(origin.listener))
                .await,
        ))),
        RequestKind::Produce(r) => match partitioned::produce_target(&node, &r).await {
            partitioned::Target::One(engine) => forward(engine, RequestKind::Produce(r)).await,
            partitioned::Target::Split => {
                let split = partitioned::produce_stage(&node, r, version).await;
                InFlight::Running(tokio::spawn(async move {
                    match partitioned::produce_complete(split).await {
                        Some(response) => reply(ResponseKind::Produce(response)),
                        None => Reply::Nothing,
                    }
                }))
            }
        },
        RequestKind::Fetch(r) => match partitioned::fetch_target(&node, &r) {
            partitioned::Target::One(engine) => forward(engine, RequestKind::Fetch(r)).await,
            partitioned::Target::Split => {
                let node = node.clone();
                let client = client_id.clone().unwrap_or_default();
                InFlight::Running(tokio::spawn(async move {
                    let (response, held) = partitioned::fetch(&node, r, version, &client).await;
                    held.into_iter()
                        .fold(reply(ResponseKind::Fetch(response)), |r, h| {
                            handlers::fetch_budget::attach(r, h)
                        })
                }))
            }
        },
        RequestKind::ListOffsets(r) => match partitioned::list_offsets_target(&node, &r) {
            partitioned::Target::One(engine) => forward(engine, RequestKind::ListOffsets(r)).await,
            partitioned::Target::Split => {
                let node = node.clone();
                InFlight::Running(tokio::spawn(async move {
                    reply(ResponseKind::ListOffsets(
                        partitioned::list_offsets(&node, r, version).await,
                    ))
                }))
            }
        },
        RequestKind::DeleteRecords(r) => match partitioned::delete_records_target(&node, &r) {
            partitioned::Target::One(engine) => {
                forward(engine, RequestKind::DeleteRecords(r)).await
            }
            partitioned::Target::Split => {
                let node = node.clone();
                InFlight::Running(tokio::spawn(async move {
                    reply(ResponseKind::DeleteRecords(
                        partitioned::delete_records(&node, r).await,
                    ))
                }))
            }
        },
        RequestKind::OffsetForLeaderEpoch(r) => InFlight::Ready(reply(
            ResponseKind::OffsetForLeaderEpoch(partitioned::offset_for_leader_epoch(&node, r)),
        )),
        RequestKind::InitProducerId(r) => match node.engines().into_iter().next() {
            Some(engine) => forward(engine, RequestKind::InitProducerId(r)).await,
            None => InFlight::Ready(reply(ResponseKind::InitProducerId(
                groups::no_producer_ids(),
            ))),
        },
        RequestKind::DescribeConfigs(r) => InFlight::Ready(reply(ResponseKind::DescribeConfigs(
            topics::describe_configs(&node, r).await,
        ))),
        RequestKind::ListGroups(r) => InFlight::Ready(reply(ResponseKind::ListGroups(
            groups::list_groups(&node, r, version),
        ))),
        body => match groups::route(&node, &body) {
            groups::GroupTarget::Engine(engine) => forward(engine, body).await,
            groups::GroupTarget::NotCoordinator => match groups::not_coordinator(body, version) {
                Some(response) => InFlight::Ready(reply(response)),
                None => InFlight::Ready(Reply::Close),
            },
        },
    }
}

/// The cluster's topics as this broker last read them, for the authorizer.
struct NodeTopics<'a>(&'a Node);

impl KnownTopics for NodeTopics<'_> {
    fn name_of(&self, id: uuid::Uuid) -> Option<String> {
        let view = self.0.member.view();
        let name = view.topics.values().find(|t| t.id == id)?.name.clone();
        Some(name)
    }

    fn exists(&self, name: &str) -> bool {
        self.0.member.view().topics.contains_key(name)
    }
}

fn encode(api_key: ApiKey, version: i16, correlation_id: i32, response: &ResponseKind) -> Reply {
    match encode_response(api_key, version, correlation_id, response) {
        Ok(frame) => Reply::Frame(frame),
        Err(error) => {
            tracing::error!(%error, "closing connection");
            Reply::Close
        }
    }
}
