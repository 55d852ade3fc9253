//! DescribeCluster (KIP-700, as admin clients' `describe_cluster` sends it): the brokers, the
//! controller and the cluster id, taken from the answer to a Metadata request without topics,
//! so both always agree (in a cluster, the router's Metadata, read fresh from etcd).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    DescribeClusterRequest, DescribeClusterResponse, MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

/// The Metadata version asked for: it carries the cluster id, the controller and racks.
pub const METADATA_VERSION: i16 = 12;

/// DescribeCluster's endpoint type for controllers (KIP-919); brokers are 1.
const CONTROLLERS: i8 = 2;

/// The Metadata request whose answer DescribeCluster repeats: no topics.
pub fn metadata_request() -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(Vec::new()))
        .with_allow_auto_topic_creation(false)
}

/// The answer to `request`, from `metadata` (the answer to [`metadata_request`]).
pub fn from_metadata(
    metadata: MetadataResponse,
    request: &DescribeClusterRequest,
) -> DescribeClusterResponse {
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_authorized_operations(i32::MIN);
    if request.endpoint_type == CONTROLLERS {
        return response
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "Hotwire has no controller quorum to describe: ask for brokers",
            )));
    }
    let brokers = metadata
        .brokers
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(b.node_id)
                .with_host(b.host)
                .with_port(b.port)
                .with_rack(b.rack)
        })
        .collect();
    response
        .with_cluster_id(metadata.cluster_id.unwrap_or_default())
        .with_controller_id(metadata.controller_id)
        .with_brokers(brokers)
}
