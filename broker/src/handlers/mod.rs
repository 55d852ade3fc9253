//! Request handlers: one module per Kafka API.

pub mod alter_configs;
pub mod api_versions;
pub mod broker_configs;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod fetch;
pub mod fetch_budget;
pub mod find_coordinator;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;
pub mod topic_changes;

use std::sync::Arc;

use crate::server::Origin;
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use tokio::task::JoinHandle;

use crate::broker::Broker;
use crate::groups::ClientContext;
use crate::protocol::{encode_response, Request};
use crate::security::acl::Access;
use crate::security::authorize::{self, Denied, KnownTopics, TopicNames};

/// What the connection does after a request.
#[derive(Debug)]
pub enum Reply {
    /// Send this response frame.
    Frame(Bytes),
    /// Send nothing (acks=0 produce).
    Nothing,
    /// Close the connection.
    Close,
}

/// A request on its way to a reply.
pub enum InFlight {
    /// Answered already.
    Ready(Reply),
    /// Still running (waiting for durability, long-polling, reading storage).
    Running(JoinHandle<Reply>),
}

/// Authorizes `request` (see [`authorize`]) and serves what the client may do.
pub async fn start(broker: Arc<Broker>, request: Request, origin: Origin) -> InFlight {
    let access = origin.access(&broker.acls);
    match admit(request, &access, &BrokerTopics(&broker)) {
        Ok((request, denied)) => serve(broker, request, origin, denied).await,
        Err(refused) => InFlight::Ready(refused),
    }
}

/// What of `request` `access` lets through, and what completes its response; or the reply
/// to send instead when the client may not make it at all.
pub fn admit(
    request: Request,
    access: &Access,
    topics: TopicNames<'_>,
) -> Result<(Request, Denied), Reply> {
    let Request {
        api_key,
        version,
        correlation_id,
        client_id,
        body,
    } = request;
    match authorize::admit(access, body, version, topics) {
        Ok((body, denied)) => Ok((
            Request {
                api_key,
                version,
                correlation_id,
                client_id,
                body,
            },
            denied,
        )),
        Err(response) => Err(encode(api_key, version, correlation_id, &response)),
    }
}

/// The topics of a broker, for the authorizer.
pub struct BrokerTopics<'a>(pub &'a Broker);

impl KnownTopics for BrokerTopics<'_> {
    fn name_of(&self, id: uuid::Uuid) -> Option<String> {
        self.0.topics.get_by_id(id).map(|t| t.name.clone())
    }

    fn exists(&self, name: &str) -> bool {
        self.0.topics.get(name).is_some()
    }
}

/// Runs the order-sensitive part of an authorized `request` now and the rest in its own task;
/// `denied` completes its response.
///
/// Requests that change state (produce appends, offset commits and deletions, topic creation and
/// deletion) take effect in the order they arrived on the connection; reads, and the waits for
/// durability, run concurrently.
/// Responses are still written in request order by the connection.
pub async fn serve(
    broker: Arc<Broker>,
    request: Request,
    origin: Origin,
    denied: Denied,
) -> InFlight {
    let peer = origin.peer;
    let Request {
        api_key,
        version,
        correlation_id,
        client_id,
        body,
    } = request;
    tracing::trace!(?api_key, version, correlation_id, ?client_id, "request");
    let latency = broker.events.request_latency(&format!("{api_key:?}"));
    let started = std::time::Instant::now();
    let reply = move |mut response| {
        latency.observe(started.elapsed().as_secs_f64());
        denied.apply(&mut response);
        encode(api_key, version, correlation_id, &response)
    };
    match body {
        RequestKind::Produce(r) => {
            let staged = produce::stage(&broker, r, version).await;
            InFlight::Running(tokio::spawn(async move {
                match produce::complete(&broker, staged).await {
                    Some(response) => reply(ResponseKind::Produce(response)),
                    None => Reply::Nothing,
                }
            }))
        }
        RequestKind::Fetch(r) => InFlight::Running(tokio::spawn(async move {
            let client_id = client_id.as_deref().unwrap_or_default();
            let (response, held) = fetch::handle_held(&broker, r, version, client_id).await;
            // The budget is held until the connection has written the frame.
            fetch_budget::attach(reply(ResponseKind::Fetch(response)), held)
        })),
        RequestKind::ListOffsets(r) => InFlight::Running(tokio::spawn(async move {
            reply(ResponseKind::ListOffsets(
                list_offsets::handle(&broker, r, version).await,
            ))
        })),
        RequestKind::InitProducerId(r) => InFlight::Running(tokio::spawn(async move {
            reply(ResponseKind::InitProducerId(
                init_producer_id::handle(&broker, r, version).await,
            ))
        })),
        RequestKind::OffsetFetch(r) => InFlight::Ready(reply(ResponseKind::OffsetFetch(
            offset_fetch::handle(&broker, r, version),
        ))),
        RequestKind::OffsetCommit(r) => {
            let staged = offset_commit::stage(&broker, r, version);
            InFlight::Running(tokio::spawn(async move {
                reply(ResponseKind::OffsetCommit(staged.await))
            }))
        }
        RequestKind::OffsetDelete(r) => {
            let staged = offset_delete::stage(&broker, r);
            InFlight::Running(tokio::spawn(async move {
                reply(ResponseKind::OffsetDelete(staged.await))
            }))
        }
        RequestKind::FindCoordinator(r) => {
            let (host, port) = broker.config.advertised_for(origin.listener);
            let this = find_coordinator::CoordinatorAddress {
                node_id: broker.config.node_id,
                host,
                port,
            };
            InFlight::Ready(reply(ResponseKind::FindCoordinator(
                find_coordinator::handle(&this, r, version),
            )))
        }
        RequestKind::JoinGroup(r) => {
            let client = ClientContext {
                client_id: client_id.clone().unwrap_or_default(),
                client_host: peer.map_or_else(String::new, |p| format!("/{}", p.ip())),
            };
            InFlight::Running(tokio::spawn(async move {
                reply(ResponseKind::JoinGroup(
                    join_group::handle(&broker.groups, &client, r, version).await,
                ))
            }))
        }
        RequestKind::SyncGroup(r) => InFlight::Running(tokio::spawn(async move {
            reply(ResponseKind::SyncGroup(
                sync_group::handle(&broker.groups, r, version).await,
            ))
        })),
        RequestKind::Heartbeat(r) => InFlight::Ready(reply(ResponseKind::Heartbeat(
            heartbeat::handle(&broker.groups, r),
        ))),
        RequestKind::LeaveGroup(r) => InFlight::Ready(reply(ResponseKind::LeaveGroup(
            leave_group::handle(&broker.groups, r, version),
        ))),
        RequestKind::ListGroups(r) => InFlight::Ready(reply(ResponseKind::ListGroups(
            list_groups::handle(&broker.groups, r, version),
        ))),
        RequestKind::DescribeGroups(r) => InFlight::Ready(reply(ResponseKind::DescribeGroups(
            describe_groups::handle(&broker.groups, r, version),
        ))),
        RequestKind::DeleteGroups(r) => InFlight::Running(tokio::spawn(async move {
            reply(ResponseKind::DeleteGroups(
                delete_groups::handle(&broker.groups, r).await,
            ))
        })),
        RequestKind::ApiVersions(_) => {
            InFlight::Ready(reply(ResponseKind::ApiVersions(api_versions::handle())))
        }
        RequestKind::Metadata(r) => InFlight::Ready(reply(ResponseKind::Metadata(
            metadata::handle(&broker, r, version, origin.listener).await,
        ))),
        RequestKind::DescribeCluster(r) => {
            let request = describe_cluster::metadata_request();
            let version = describe_cluster::METADATA_VERSION;
            let metadata = metadata::handle(&broker, request, version, origin.listener).await;
            InFlight::Ready(reply(ResponseKind::DescribeCluster(
                describe_cluster::from_metadata(metadata, &r),
            )))
        }
        RequestKind::CreateTopics(r) => InFlight::Ready(reply(ResponseKind::CreateTopics(
            create_topics::handle(broker.as_ref(), r, version).await,
        ))),
        RequestKind::DeleteTopics(r) => InFlight::Ready(reply(ResponseKind::DeleteTopics(
            delete_topics::handle(&broker, r, version).await,
        ))),
        RequestKind::DeleteRecords(r) => InFlight::Running(tokio::spawn(async move {
            reply(ResponseKind::DeleteRecords(
                delete_records::handle(&broker, r).await,
            ))
        })),
        RequestKind::OffsetForLeaderEpoch(r) => InFlight::Ready(reply(
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(&broker, r)),
        )),
        RequestKind::DescribeConfigs(r) => InFlight::Ready(reply(ResponseKind::DescribeConfigs(
            describe_configs::handle(&broker, r),
        ))),
        RequestKind::DescribeLogDirs(r) => InFlight::Ready(reply(ResponseKind::DescribeLogDirs(
            describe_log_dirs::handle(&broker, r),
        ))),
        RequestKind::DescribeProducers(r) => InFlight::Ready(reply(
            ResponseKind::DescribeProducers(describe_producers::handle(&broker, r)),
        )),
        RequestKind::AlterConfigs(r) => InFlight::Ready(reply(ResponseKind::AlterConfigs(
            alter_configs::alter(broker.as_ref(), r).await,
        ))),
        RequestKind::IncrementalAlterConfigs(r) => {
            InFlight::Ready(reply(ResponseKind::IncrementalAlterConfigs(
                alter_configs::incremental(broker.as_ref(), r).await,
            )))
        }
        RequestKind::CreatePartitions(r) => InFlight::Ready(reply(ResponseKind::CreatePartitions(
            create_partitions::handle(broker.as_ref(), r).await,
        ))),
        other => {
            // Unreachable while `versions::SUPPORTED` and this match agree; close rather than
            // answer something the client cannot parse.
            tracing::error!(?api_key, "no handler for advertised API: {other:?}");
            InFlight::Ready(Reply::Close)
        }
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

/// An owned string in the protocol's string type.
pub(crate) fn str_bytes(text: impl Into<String>) -> StrBytes {
    StrBytes::from_string(text.into())
}
