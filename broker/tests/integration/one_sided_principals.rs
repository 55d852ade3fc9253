//! One-sided (shm) sessions under the ACL authorizer: a session logs in with a user of the
//! broker's credential store (or stays `User:ANONYMOUS`) and may locate, fetch, join, and
//! produce only what that principal may, as Kafka judges the TCP requests that do the same; the
//! HotCache arena (every topic's hot batches at once) is mapped only for a principal that may
//! read every topic; a wrong password is refused.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{free_port, plain_login, produce_batch, BrokerProcess, Client};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{
    ApiKey, CreateAclsRequest, CreateAclsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteAclsRequest, DeleteAclsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdma::client::Session;
use rdma::control::{Login, RegionRole, Request};
use rdma::RdmaError;

const USERS: [&str; 4] = ["admin", "alice", "bob", "carol"];

/// A broker with the authorizer on, `User:admin` a super user, a SASL_PLAINTEXT listener at
/// `sasl`, the shm socket, and the users of `USERS` (password: name + "-pa55").
fn start(dir: &Path, sasl: SocketAddr) -> BrokerProcess {
    let storage = tempfile::tempdir().unwrap();
    crate::common::set_users(storage.path(), &USERS);
    let plain = free_port();
    let listeners = format!("PLAINTEXT://{plain},SASL_PLAINTEXT://{sasl}");
    let socket = dir.join("rdma.sock");
    let extra = [
        "--listeners",
        &listeners,
        "--acl-authorizer",
        "true",
        "--super-users",
        "User:admin",
        "--rdma-shm-socket",
        socket.to_str().unwrap(),
    ];
    BrokerProcess::start_on(storage, plain, &extra)
}

/// Allows `principal` `operation` (Kafka's code) on `name` of `resource_type` (literal).
fn allow(resource_type: i8, name: &str, principal: &str, operation: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(StrBytes::from_string(name.to_string()))
        .with_resource_pattern_type(3)
        .with_principal(StrBytes::from_string(principal.to_string()))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(operation)
        .with_permission_type(3)
}

const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const READ: i8 = 3;
const WRITE: i8 = 4;

fn connect(socket: &Path, user: Option<(&str, &str)>) -> Result<Session, RdmaError> {
    let login = user.map(|(user, password)| Login {
        user: user.to_string(),
        password: password.to_string(),
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Session::connect_as(socket, "principals", None, login.clone()) {
            Err(RdmaError::Io { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            outcome => return outcome,
        }
    }
}

fn as_user(socket: &Path, user: &str) -> Session {
    connect(socket, Some((user, &format!("{user}-pa55")))).unwrap()
}

fn locate(topic: &str) -> Request {
    Request::Locate {
        topic: topic.into(),
        partition: 0,
        offset: 0,
        max_bytes: 1 << 20,
    }
}

fn fetch(topic: &str) -> Request {
    Request::Fetch {
        topic: topic.into(),
        partition: 0,
        offset: 0,
        max_bytes: 1 << 20,
    }
}

fn join(group: &str, topic: &str) -> Request {
    Request::Join {
        group: group.into(),
        topic: topic.into(),
        partitions: vec![0],
        member: None,
    }
}

fn produce(topic: &str) -> Request {
    Request::Produce {
        topic: topic.into(),
        partition: 0,
        position: 0,
        len: 64,
        acks: -1,
    }
}

/// The refusal's text when `request` is refused, `None` when it is answered.
fn refusal(session: &Session, request: &Request) -> Option<String> {
    match session.call(request) {
        Ok(_) => None,
        Err(RdmaError::Refused(reason)) => Some(reason),
        Err(other) => panic!("{request:?}: {other}"),
    }
}

fn refused_as(session: &Session, request: &Request, error: &str) {
    let reason = refusal(session, request).unwrap_or_else(|| panic!("{request:?} was served"));
    assert!(reason.starts_with(error), "{request:?}: {reason}");
}

fn authorized(session: &Session, request: &Request) {
    if let Some(reason) = refusal(session, request) {
        assert!(
            !reason.contains("AUTHORIZATION_FAILED"),
            "{request:?}: {reason}"
        );
    }
}

#[test]
fn one_sided_sessions_do_only_what_their_principal_may() {
    let dir = tempfile::tempdir().unwrap();
    let sasl = free_port();
    let _broker = start(dir.path(), sasl);
    let socket = dir.path().join("rdma.sock");

    let mut admin = Client::connect(sasl);
    assert_eq!(plain_login(&mut admin, "admin", "admin-pa55"), 0);
    for topic in ["open", "secret"] {
        let create = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(topic)))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
        let created: CreateTopicsResponse = admin.call(ApiKey::CreateTopics, 5, &create);
        assert_eq!(created.topics[0].error_code, 0, "{created:?}");
        assert_eq!(produce_batch(&mut admin, topic, 0, 2, 10).0, 0);
    }
    let acls = CreateAclsRequest::default().with_creations(vec![
        allow(TOPIC, "open", "User:alice", READ),
        allow(GROUP, "alices", "User:alice", READ),
        allow(TOPIC, "open", "User:bob", WRITE),
        allow(TOPIC, "*", "User:carol", READ),
        allow(GROUP, "*", "User:carol", READ),
    ]);
    let answer: CreateAclsResponse = admin.call(ApiKey::CreateAcls, 3, &acls);
    assert!(
        answer.results.iter().all(|r| r.error_code == 0),
        "{answer:?}"
    );

    // A wrong password is refused before any region is handed over.
    match connect(&socket, Some(("alice", "guess"))) {
        Err(RdmaError::Refused(reason)) => assert!(reason.contains("authentication"), "{reason}"),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a wrong password opened a session"),
    }

    // alice reads `open` (copied over the channel), nothing else. She may not read every
    // topic, so the arena is not mapped for her; nor may she commit for every group, so the
    // offset table (one mapping for every slot on shm) is not either: she commits over TCP.
    let alice = as_user(&socket, "alice");
    assert!(alice.region(RegionRole::Cache).is_err());
    assert!(alice.region(RegionRole::Generations).is_err());
    assert!(alice.region(RegionRole::Offsets).is_err());
    refused_as(&alice, &locate("open"), "TOPIC_AUTHORIZATION_FAILED");
    assert!(refusal(&alice, &fetch("open")).is_none());
    refused_as(&alice, &fetch("secret"), "TOPIC_AUTHORIZATION_FAILED");
    refused_as(
        &alice,
        &join("alices", "open"),
        "GROUP_AUTHORIZATION_FAILED",
    );
    refused_as(&alice, &produce("open"), "TOPIC_AUTHORIZATION_FAILED");
    // Persist writes every session's slots: not for a session that holds none.
    assert!(refusal(&alice, &Request::Persist).is_some());

    // bob writes `open` and reads nothing.
    let bob = as_user(&socket, "bob");
    authorized(&bob, &produce("open"));
    refused_as(&bob, &produce("secret"), "TOPIC_AUTHORIZATION_FAILED");
    refused_as(&bob, &fetch("open"), "TOPIC_AUTHORIZATION_FAILED");

    // carol may read every topic and every group: the arena and the offset table are hers,
    // and locating and joining work.
    let carol = as_user(&socket, "carol");
    let cache = carol.region(RegionRole::Cache).unwrap();
    let mut word = [0u8; 8];
    carol.endpoint().read(cache.id, 0, &mut word).unwrap();
    assert!(refusal(&carol, &locate("secret")).is_none());
    assert!(refusal(&carol, &join("carols", "secret")).is_none());
    assert!(refusal(&carol, &Request::Persist).is_none());
    refused_as(&carol, &produce("secret"), "TOPIC_AUTHORIZATION_FAILED");

    // Without a login: User:ANONYMOUS, whom no ACL names.
    let anonymous = connect(&socket, None).unwrap();
    assert!(anonymous.region(RegionRole::Cache).is_err());
    assert!(anonymous.region(RegionRole::Offsets).is_err());
    refused_as(&anonymous, &fetch("open"), "TOPIC_AUTHORIZATION_FAILED");

    // The super user may do anything.
    let admin_session = as_user(&socket, "admin");
    assert!(admin_session.region(RegionRole::Cache).is_ok());
    assert!(admin_session.region(RegionRole::Offsets).is_ok());
    assert!(refusal(&admin_session, &locate("secret")).is_none());
    authorized(&admin_session, &produce("secret"));

    // Taking carol's group READ away ends her session within a second: the offset table she
    // was granted at admission is no longer hers.
    let delete = DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
        .with_resource_type_filter(GROUP)
        .with_resource_name_filter(Some(StrBytes::from_static_str("*")))
        .with_pattern_type_filter(3)
        .with_principal_filter(Some(StrBytes::from_static_str("User:carol")))
        .with_host_filter(None)
        .with_operation(READ)
        .with_permission_type(3)]);
    let deleted: DeleteAclsResponse = admin.call(ApiKey::DeleteAcls, 3, &delete);
    assert_eq!(
        deleted.filter_results[0].matching_acls.len(),
        1,
        "{deleted:?}"
    );
    std::thread::sleep(Duration::from_millis(1_500));
    // The broker told her why and closed the channel: her next request reads the reason, or
    // finds the channel closed.
    match carol.call(&fetch("open")) {
        Err(RdmaError::Refused(reason)) => assert!(reason.contains("ACLs changed"), "{reason}"),
        Err(RdmaError::Io { .. }) => {}
        Ok(_) => panic!("carol's session outlived her ACL"),
        Err(other) => panic!("{other}"),
    }
    // Her next session gets the arena but not the offset table; the super user's is untouched.
    let carol = as_user(&socket, "carol");
    assert!(carol.region(RegionRole::Cache).is_ok());
    assert!(carol.region(RegionRole::Offsets).is_err());
    assert!(refusal(&admin_session, &locate("open")).is_none());
}
