//! A cluster's ACLs live in etcd (etcd started on loopback): created through one broker, they
//! count on every broker within its refresh interval (each applies them before routing a
//! request), and a broker started later has them from its first request.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::cluster::{set_user, start_on, wait_status};
use crate::common::etcd::EtcdServer;
use crate::common::{free_port, plain_login, BrokerProcess, Client};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreateAclsRequest, CreateAclsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DescribeAclsRequest, DescribeAclsResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const TOPIC: &str = "guarded";

/// A broker with a PLAINTEXT listener (where clients are `User:ANONYMOUS`) on its `addr` and a
/// SASL_PLAINTEXT one on `sasl`, the ACL authorizer on, and `User:admin` a super user.
fn start(storage: &str, cluster: &str, node: &str, sasl: SocketAddr) -> BrokerProcess {
    let plain = free_port();
    let listeners = format!("PLAINTEXT://{plain},SASL_PLAINTEXT://{sasl}");
    let extra = [
        "--listeners",
        &listeners,
        "--acl-authorizer",
        "true",
        "--super-users",
        "User:admin",
    ];
    start_on(storage, cluster, node, "50", plain, &extra)
}

fn admin(sasl: SocketAddr) -> Client {
    let mut client = Client::connect(sasl);
    assert_eq!(plain_login(&mut client, "admin", "pa55"), 0);
    client
}

/// The error code Metadata gives `TOPIC`.
fn metadata_error(client: &mut Client) -> i16 {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))]));
    let response: MetadataResponse = client.call(ApiKey::Metadata, 12, &request);
    response.topics[0].error_code
}

fn described(client: &mut Client) -> Vec<String> {
    let request = DescribeAclsRequest::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_operation(1)
        .with_permission_type(1);
    let response: DescribeAclsResponse = client.call(ApiKey::DescribeAcls, 3, &request);
    assert_eq!(response.error_code, 0, "{response:?}");
    response
        .resources
        .iter()
        .flat_map(|r| {
            r.acls.iter().map(move |a| {
                format!(
                    "{} {} {}",
                    r.resource_name.as_str(),
                    a.principal.as_str(),
                    a.operation
                )
            })
        })
        .collect()
}

#[test]
fn acls_created_through_one_broker_count_on_every_broker() {
    let etcd = EtcdServer::start();
    let root = tempfile::tempdir().unwrap();
    let storage = format!("fs://{}", root.path().display());
    let cluster = etcd.cluster_url("acls");
    set_user(&cluster, "admin", "pa55");
    let sasl = [free_port(), free_port(), free_port()];
    let first = start(&storage, &cluster, "1", sasl[0]);
    let second = start(&storage, &cluster, "2", sasl[1]);
    wait_status(&cluster, "2 shards, controller");

    let mut admin_1 = admin(sasl[0]);
    let create = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
        .with_num_partitions(2)
        .with_replication_factor(1)]);
    let created: CreateTopicsResponse = admin_1.call(ApiKey::CreateTopics, 5, &create);
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    // No ACL names the topic: an anonymous client may not even see it.
    let mut anonymous = second.connect();
    assert_eq!(
        metadata_error(&mut anonymous),
        ResponseError::TopicAuthorizationFailed.code()
    );

    // Through broker 1, let anonymous clients describe it; broker 2 applies that soon.
    let creation = AclCreation::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_static_str(TOPIC))
        .with_resource_pattern_type(3)
        .with_principal(StrBytes::from_static_str("User:ANONYMOUS"))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(8)
        .with_permission_type(3);
    let request = CreateAclsRequest::default().with_creations(vec![creation]);
    let answer: CreateAclsResponse = admin_1.call(ApiKey::CreateAcls, 3, &request);
    assert_eq!(answer.results[0].error_code, 0, "{answer:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metadata_error(&mut anonymous) != 0 {
        assert!(
            Instant::now() < deadline,
            "broker 2 never applied the ACL created through broker 1"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    assert_eq!(
        described(&mut admin_1),
        vec![format!("{TOPIC} User:ANONYMOUS 8")]
    );
    // A broker that joins later has the ACLs from its first request.
    let third = start(&storage, &cluster, "3", sasl[2]);
    let expected = vec![format!("{TOPIC} User:ANONYMOUS 8")];
    assert_eq!(described(&mut admin(sasl[2])), expected);
    assert_eq!(metadata_error(&mut third.connect()), 0);
    drop((first, second, third));
}
