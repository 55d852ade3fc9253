//! Requests on topics: each topic the client may not touch is answered
//! TOPIC_AUTHORIZATION_FAILED (configs of the cluster: CLUSTER_AUTHORIZATION_FAILED).

use bytes::Bytes;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::describe_producers_response::TopicResponse as ProducersTopic;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResult;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    DescribeLogDirsResponse, ProduceRequest, ProduceResponse, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{split_off, Checked, Parts, TopicNames};
use crate::security::acl::{Access, Operation, ResourceType};

/// Kafka's DescribeConfigs resource types.
const CONFIG_TOPIC: i8 = 2;
const CONFIG_BROKER: i8 = 4;
const CONFIG_BROKER_LOGGER: i8 = 8;

const TOPIC_DENIED: ResponseError = ResponseError::TopicAuthorizationFailed;

/// The denied topics' entries, per API.
#[derive(Clone)]
pub enum DeniedTopics {
    /// Produce.
    Produce(Vec<TopicProduceResponse>),
    /// Fetch.
    Fetch(Vec<FetchableTopicResponse>),
    /// ListOffsets.
    ListOffsets(Vec<ListOffsetsTopicResponse>),
    /// OffsetForLeaderEpoch.
    OffsetForLeaderEpoch(Vec<OffsetForLeaderTopicResult>),
    /// DeleteRecords.
    DeleteRecords(Vec<DeleteRecordsTopicResult>),
    /// CreateTopics.
    CreateTopics(Vec<CreatableTopicResult>),
    /// DeleteTopics.
    DeleteTopics(Vec<DeletableTopicResult>),
    /// DescribeConfigs.
    DescribeConfigs(Vec<DescribeConfigsResult>),
    /// AlterConfigs.
    AlterConfigs(Vec<AlterConfigsResourceResponse>),
    /// IncrementalAlterConfigs.
    IncrementalAlterConfigs(Vec<IncrementalResult>),
    /// CreatePartitions.
    CreatePartitions(Vec<CreatePartitionsTopicResult>),
    /// DescribeProducers.
    DescribeProducers(Vec<ProducersTopic>),
}

impl DeniedTopics {
    pub(super) fn apply(self, response: &mut ResponseKind) {
        match (self, response) {
            (Self::Produce(denied), ResponseKind::Produce(r)) => r.responses.extend(denied),
            (Self::Fetch(denied), ResponseKind::Fetch(r)) => r.responses.extend(denied),
            (Self::ListOffsets(denied), ResponseKind::ListOffsets(r)) => r.topics.extend(denied),
            (Self::OffsetForLeaderEpoch(denied), ResponseKind::OffsetForLeaderEpoch(r)) => {
                r.topics.extend(denied)
            }
            (Self::DeleteRecords(denied), ResponseKind::DeleteRecords(r)) => {
                r.topics.extend(denied)
            }
            (Self::CreateTopics(denied), ResponseKind::CreateTopics(r)) => r.topics.extend(denied),
            (Self::DeleteTopics(denied), ResponseKind::DeleteTopics(r)) => {
                r.responses.extend(denied)
            }
            (Self::DescribeConfigs(denied), ResponseKind::DescribeConfigs(r)) => {
                r.results.extend(denied)
            }
            (Self::AlterConfigs(denied), ResponseKind::AlterConfigs(r)) => {
                r.responses.extend(denied)
            }
            (Self::IncrementalAlterConfigs(denied), ResponseKind::IncrementalAlterConfigs(r)) => {
                r.responses.extend(denied)
            }
            (Self::CreatePartitions(denied), ResponseKind::CreatePartitions(r)) => {
                r.results.extend(denied)
            }
            (Self::DescribeProducers(denied), ResponseKind::DescribeProducers(r)) => {
                r.topics.extend(denied)
            }
            (_, other) => tracing::error!(?other, "denied topics for another API's response"),
        }
    }
}

fn served(body: RequestKind, denied: DeniedTopics) -> Checked {
    Checked::Serve(Box::new(body), Parts::Topics(denied))
}

fn may(access: &Access, operation: Operation, topic: &str) -> bool {
    access.allows(operation, ResourceType::Topic, topic)
}

fn denial_text(access: &Access, operation: Operation, what: &str) -> Option<StrBytes> {
    Some(StrBytes::from(format!(
        "{} may not {operation:?} {what}",
        access.principal()
    )))
}

pub(super) fn check(access: &Access, body: RequestKind, names: TopicNames<'_>) -> Checked {
    match body {
        RequestKind::Produce(r) => produce(access, r),
        RequestKind::Fetch(mut r) => {
            let denied = split_off(
                &mut r.topics,
                |t| may(access, Operation::Read, &t.topic),
                |t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            PartitionData::default()
                                .with_partition_index(p.partition)
                                .with_error_code(TOPIC_DENIED.code())
                                .with_high_watermark(-1)
                                .with_last_stable_offset(-1)
                                .with_log_start_offset(-1)
                                .with_records(Some(Bytes::new()))
                        })
                        .collect();
                    FetchableTopicResponse::default()
                        .with_topic(t.topic)
                        .with_topic_id(t.topic_id)
                        .with_partitions(partitions)
                },
            );
            served(RequestKind::Fetch(r), DeniedTopics::Fetch(denied))
        }
        RequestKind::ListOffsets(mut r) => {
            let denied = split_off(
                &mut r.topics,
                |t| may(access, Operation::Describe, &t.name),
                |t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(TOPIC_DENIED.code())
                                .with_timestamp(-1)
                                .with_offset(-1)
                        })
                        .collect();
                    ListOffsetsTopicResponse::default()
                        .with_name(t.name)
                        .with_partitions(partitions)
                },
            );
            served(
                RequestKind::ListOffsets(r),
                DeniedTopics::ListOffsets(denied),
            )
        }
        RequestKind::OffsetForLeaderEpoch(mut r) => {
            let denied = split_off(
                &mut r.topics,
                |t| may(access, Operation::Describe, &t.topic),
                |t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            EpochEndOffset::default()
                                .with_partition(p.partition)
                                .with_error_code(TOPIC_DENIED.code())
                                .with_leader_epoch(-1)
                                .with_end_offset(-1)
                        })
                        .collect();
                    OffsetForLeaderTopicResult::default()
                        .with_topic(t.topic)
                        .with_partitions(partitions)
                },
            );
            served(
                RequestKind::OffsetForLeaderEpoch(r),
                DeniedTopics::OffsetForLeaderEpoch(denied),
            )
        }
        RequestKind::DeleteRecords(mut r) => {
            let denied = split_off(
                &mut r.topics,
                |t| may(access, Operation::Delete, &t.name),
                |t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            DeleteRecordsPartitionResult::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(TOPIC_DENIED.code())
                                .with_low_watermark(-1)
                        })
                        .collect();
                    DeleteRecordsTopicResult::default()
                        .with_name(t.name)
                        .with_partitions(partitions)
                },
            );
            served(
                RequestKind::DeleteRecords(r),
                DeniedTopics::DeleteRecords(denied),
            )
        }
        RequestKind::CreateTopics(mut r) => {
            let cluster = access.allows_cluster(Operation::Create);
            let denied = split_off(
                &mut r.topics,
                |t| cluster || may(access, Operation::Create, &t.name),
                |t| {
                    let text = denial_text(access, Operation::Create, &t.name);
                    CreatableTopicResult::default()
                        .with_name(t.name)
                        .with_error_code(TOPIC_DENIED.code())
                        .with_error_message(text)
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                },
            );
            served(
                RequestKind::CreateTopics(r),
                DeniedTopics::CreateTopics(denied),
            )
        }
        RequestKind::DeleteTopics(mut r) => {
            let mut denied = Vec::new();
            r.topic_names.retain(|name| {
                let ok = may(access, Operation::Delete, name);
                if !ok {
                    denied.push(
                        DeletableTopicResult::default()
                            .with_name(Some(name.clone()))
                            .with_error_code(TOPIC_DENIED.code()),
                    );
                }
                ok
            });
            r.topics.retain(|t| {
                let name = t
                    .name
                    .as_ref()
                    .map(|n| n.to_string())
                    .or_else(|| names.name_of(t.topic_id));
                // An id no topic has: the handler answers UNKNOWN_TOPIC_ID.
                let ok = name
                    .as_deref()
                    .is_none_or(|n| may(access, Operation::Delete, n));
                if !ok {
                    denied.push(
                        DeletableTopicResult::default()
                            .with_name(t.name.clone())
                            .with_topic_id(t.topic_id)
                            .with_error_code(TOPIC_DENIED.code()),
                    );
                }
                ok
            });
            served(
                RequestKind::DeleteTopics(r),
                DeniedTopics::DeleteTopics(denied),
            )
        }
        RequestKind::DescribeConfigs(mut r) => {
            let mut denied = Vec::new();
            r.resources.retain(|resource| {
                let (ok, code) = match resource.resource_type {
                    CONFIG_TOPIC => (
                        may(access, Operation::DescribeConfigs, &resource.resource_name),
                        TOPIC_DENIED,
                    ),
                    CONFIG_BROKER | CONFIG_BROKER_LOGGER => (
                        access.allows_cluster(Operation::DescribeConfigs),
                        ResponseError::ClusterAuthorizationFailed,
                    ),
                    _ => (true, ResponseError::InvalidRequest),
                };
                if !ok {
                    denied.push(
                        DescribeConfigsResult::default()
                            .with_error_code(code.code())
                            .with_error_message(denial_text(
                                access,
                                Operation::DescribeConfigs,
                                &resource.resource_name,
                            ))
                            .with_resource_type(resource.resource_type)
                            .with_resource_name(resource.resource_name.clone()),
                    );
                }
                ok
            });
            served(
                RequestKind::DescribeConfigs(r),
                DeniedTopics::DescribeConfigs(denied),
            )
        }
        RequestKind::AlterConfigs(mut r) => {
            let denied = split_off(
                &mut r.resources,
                |c| may_alter_configs(access, c.resource_type, &c.resource_name).is_none(),
                |c| {
                    let (code, text) =
                        alter_configs_denial(access, c.resource_type, &c.resource_name);
                    AlterConfigsResourceResponse::default()
                        .with_error_code(code)
                        .with_error_message(text)
                        .with_resource_type(c.resource_type)
                        .with_resource_name(c.resource_name)
                },
            );
            served(
                RequestKind::AlterConfigs(r),
                DeniedTopics::AlterConfigs(denied),
            )
        }
        RequestKind::IncrementalAlterConfigs(mut r) => {
            let denied = split_off(
                &mut r.resources,
                |c| may_alter_configs(access, c.resource_type, &c.resource_name).is_none(),
                |c| {
                    let (code, text) =
                        alter_configs_denial(access, c.resource_type, &c.resource_name);
                    IncrementalResult::default()
                        .with_error_code(code)
                        .with_error_message(text)
                        .with_resource_type(c.resource_type)
                        .with_resource_name(c.resource_name)
                },
            );
            served(
                RequestKind::IncrementalAlterConfigs(r),
                DeniedTopics::IncrementalAlterConfigs(denied),
            )
        }
        RequestKind::CreatePartitions(mut r) => {
            let denied = split_off(
                &mut r.topics,
                |t| may(access, Operation::Alter, &t.name),
                |t| {
                    let text = denial_text(access, Operation::Alter, &t.name);
                    CreatePartitionsTopicResult::default()
                        .with_name(t.name)
                        .with_error_code(TOPIC_DENIED.code())
                        .with_error_message(text)
                },
            );
            served(
                RequestKind::CreatePartitions(r),
                DeniedTopics::CreatePartitions(denied),
            )
        }
        RequestKind::DescribeLogDirs(_) if !access.allows_cluster(Operation::Describe) => {
            Checked::Answer(Box::new(ResponseKind::DescribeLogDirs(
                DescribeLogDirsResponse::default()
                    .with_error_code(ResponseError::ClusterAuthorizationFailed.code()),
            )))
        }
        RequestKind::DescribeProducers(mut r) => {
            let denied = split_off(
                &mut r.topics,
                |t| may(access, Operation::Read, &t.name),
                |t| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .map(|&index| {
                            crate::handlers::describe_producers::refused(index, TOPIC_DENIED)
                        })
                        .collect();
                    ProducersTopic::default()
                        .with_name(t.name)
                        .with_partitions(partitions)
                },
            );
            served(
                RequestKind::DescribeProducers(r),
                DeniedTopics::DescribeProducers(denied),
            )
        }
        other => Checked::Serve(Box::new(other), Parts::Nothing),
    }
}

/// The error code and message for a denied change of resource `name`'s configs.
fn alter_configs_denial(access: &Access, kind: i8, name: &str) -> (i16, Option<StrBytes>) {
    let code = may_alter_configs(access, kind, name).map_or(0, |c| c.code());
    (code, denial_text(access, Operation::AlterConfigs, name))
}

/// The error for altering the configs of resource `name` of `kind` without ALTER_CONFIGS on
/// it (topics) or on the cluster (broker settings); `None` when allowed. Unknown kinds pass:
/// the handler refuses them.
fn may_alter_configs(access: &Access, kind: i8, name: &str) -> Option<ResponseError> {
    match kind {
        CONFIG_TOPIC => (!may(access, Operation::AlterConfigs, name)).then_some(TOPIC_DENIED),
        CONFIG_BROKER | CONFIG_BROKER_LOGGER => (!access.allows_cluster(Operation::AlterConfigs))
            .then_some(ResponseError::ClusterAuthorizationFailed),
        _ => None,
    }
}

/// Produce: WRITE on each topic; a transactional producer also needs WRITE on its
/// transactional id (else the whole request fails).
fn produce(access: &Access, mut request: ProduceRequest) -> Checked {
    let error_entries =
        |topics: &[kafka_protocol::messages::produce_request::TopicProduceData],
         code: ResponseError| {
            topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partition_data
                        .iter()
                        .map(|p| {
                            PartitionProduceResponse::default()
                                .with_index(p.index)
                                .with_error_code(code.code())
                                .with_base_offset(-1)
                                .with_log_start_offset(-1)
                        })
                        .collect();
                    TopicProduceResponse::default()
                        .with_name(t.name.clone())
                        .with_topic_id(t.topic_id)
                        .with_partition_responses(partitions)
                })
                .collect::<Vec<_>>()
        };
    if let Some(id) = &request.transactional_id {
        if !access.allows(Operation::Write, ResourceType::TransactionalId, id) {
            let responses = error_entries(
                &request.topic_data,
                ResponseError::TransactionalIdAuthorizationFailed,
            );
            return Checked::Answer(Box::new(ResponseKind::Produce(
                ProduceResponse::default().with_responses(responses),
            )));
        }
    }
    let denied = split_off(
        &mut request.topic_data,
        |t| may(access, Operation::Write, &t.name),
        |t| t,
    );
    let denied = error_entries(&denied, TOPIC_DENIED);
    served(RequestKind::Produce(request), DeniedTopics::Produce(denied))
}
