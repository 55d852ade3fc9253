use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::*;
use crate::security::acl::store::StoreAcls;
use crate::security::acl::{
    AclBinding, AclFilter, Acls, AuthorizerSettings, Operation, PatternType, Permission,
    ResourceType,
};

struct Known(&'static [&'static str]);

impl KnownTopics for Known {
    fn name_of(&self, _id: Uuid) -> Option<String> {
        None
    }
    fn exists(&self, name: &str) -> bool {
        self.0.contains(&name)
    }
}

fn alice(
    operation: Operation,
    resource_type: ResourceType,
    name: &str,
    pattern: PatternType,
) -> AclBinding {
    AclBinding {
        resource_type,
        name: name.into(),
        pattern,
        principal: "User:alice".into(),
        host: "*".into(),
        operation,
        permission: Permission::Allow,
    }
}

/// alice may write topic `a`, describe every topic, and read groups `alice-*`.
async fn acls(dir: &tempfile::TempDir, enabled: bool) -> Acls {
    let store = dfs_adapter::Store::open(&format!("fs://{}", dir.path().display()))
        .await
        .unwrap();
    let acls = Acls::open(
        std::sync::Arc::new(StoreAcls(store)),
        AuthorizerSettings::default(),
        enabled,
    )
    .await
    .unwrap();
    let added = acls
        .create(&[
            alice(
                Operation::Write,
                ResourceType::Topic,
                "a",
                PatternType::Literal,
            ),
            alice(
                Operation::Describe,
                ResourceType::Topic,
                "*",
                PatternType::Literal,
            ),
            alice(
                Operation::Read,
                ResourceType::Group,
                "alice-",
                PatternType::Prefixed,
            ),
        ])
        .await
        .unwrap();
    assert_eq!(added, vec![true; 3]);
    acls
}

fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from(name.to_string()))
}

fn produce_to(topics: &[&str]) -> RequestKind {
    let data = topics
        .iter()
        .map(|t| {
            TopicProduceData::default()
                .with_name(topic(t))
                .with_partition_data(vec![PartitionProduceData::default().with_index(0)])
        })
        .collect();
    RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(-1)
            .with_topic_data(data),
    )
}

fn served(checked: Checked) -> (RequestKind, Parts) {
    match checked {
        Checked::Serve(body, denied) => (*body, denied),
        Checked::Answer(response) => panic!("answered {response:?}"),
    }
}

fn answered(checked: Checked) -> ResponseKind {
    match checked {
        Checked::Answer(response) => *response,
        Checked::Serve(body, _) => panic!("served {body:?}"),
    }
}

#[tokio::test]
async fn produce_keeps_the_allowed_topics_and_answers_the_others_denied() {
    let dir = tempfile::tempdir().unwrap();
    let acls = acls(&dir, true).await;
    let access = acls.access("User:alice", "10.0.0.1");
    let (body, denied) = served(check(&access, produce_to(&["a", "b"]), 9, &Known(&[])));
    let RequestKind::Produce(request) = body else {
        unreachable!()
    };
    assert_eq!(request.topic_data.len(), 1);
    assert_eq!(request.topic_data[0].name.as_str(), "a");
    let mut response = ResponseKind::Produce(ProduceResponse::default());
    denied.apply(&mut response);
    let ResponseKind::Produce(response) = response else {
        unreachable!()
    };
    assert_eq!(response.responses.len(), 1);
    assert_eq!(response.responses[0].name.as_str(), "b");
    assert_eq!(
        response.responses[0].partition_responses[0].error_code,
        ResponseError::TopicAuthorizationFailed.code()
    );

    // Another principal, or alice from a host a binding does not name, gets nothing.
    let bob = acls.access("User:bob", "10.0.0.1");
    let (body, _) = served(check(&bob, produce_to(&["a"]), 9, &Known(&[])));
    let RequestKind::Produce(request) = body else {
        unreachable!()
    };
    assert!(request.topic_data.is_empty());
}

#[tokio::test]
async fn a_transactional_producer_needs_write_on_its_transactional_id() {
    let dir = tempfile::tempdir().unwrap();
    let acls = acls(&dir, true).await;
    let access = acls.access("User:alice", "10.0.0.1");
    let RequestKind::Produce(request) = produce_to(&["a"]) else {
        unreachable!()
    };
    let request =
        request.with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx"))));
    let ResponseKind::Produce(response) = answered(check(
        &access,
        RequestKind::Produce(request),
        9,
        &Known(&[]),
    )) else {
        unreachable!()
    };
    assert_eq!(
        response.responses[0].partition_responses[0].error_code,
        ResponseError::TransactionalIdAuthorizationFailed.code()
    );
}

#[tokio::test]
async fn group_requests_need_read_on_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let acls = acls(&dir, true).await;
    let access = acls.access("User:alice", "10.0.0.1");
    let join = |group: &str| {
        RequestKind::JoinGroup(
            JoinGroupRequest::default().with_group_id(GroupId(StrBytes::from(group.to_string()))),
        )
    };
    let ResponseKind::JoinGroup(refused) = answered(check(&access, join("bobs"), 5, &Known(&[])))
    else {
        unreachable!()
    };
    assert_eq!(
        refused.error_code,
        ResponseError::GroupAuthorizationFailed.code()
    );
    served(check(&access, join("alice-readers"), 5, &Known(&[])));
}

fn metadata(topics: Option<&[&str]>, create: bool) -> RequestKind {
    let topics = topics.map(|names| {
        names
            .iter()
            .map(|n| MetadataRequestTopic::default().with_name(Some(topic(n))))
            .collect()
    });
    RequestKind::Metadata(
        MetadataRequest::default()
            .with_topics(topics)
            .with_allow_auto_topic_creation(create),
    )
}

fn listed(names: &[&str]) -> ResponseKind {
    let topics = names
        .iter()
        .map(|n| MetadataResponseTopic::default().with_name(Some(topic(n))))
        .collect();
    ResponseKind::Metadata(MetadataResponse::default().with_topics(topics))
}

fn names_and_errors(response: ResponseKind) -> Vec<(String, i16)> {
    let ResponseKind::Metadata(response) = response else {
        unreachable!()
    };
    response
        .topics
        .iter()
        .map(|t| (t.name.as_ref().unwrap().to_string(), t.error_code))
        .collect()
}

#[tokio::test]
async fn metadata_shows_only_what_the_client_may_describe_and_creates_only_with_create() {
    let dir = tempfile::tempdir().unwrap();
    let acls = acls(&dir, true).await;
    let denied_code = ResponseError::TopicAuthorizationFailed.code();
    // bob may describe nothing: every topic is hidden from a listing, and named ones refused.
    let bob = acls.access("User:bob", "10.0.0.1");
    let (_, filter) = served(check(&bob, metadata(None, false), 12, &Known(&["a", "b"])));
    let mut response = listed(&["a", "b"]);
    filter.apply(&mut response);
    assert_eq!(names_and_errors(response), vec![]);
    let (body, filter) = served(check(
        &bob,
        metadata(Some(&["a"]), false),
        12,
        &Known(&["a"]),
    ));
    let RequestKind::Metadata(request) = body else {
        unreachable!()
    };
    assert_eq!(request.topics.unwrap().len(), 0);
    let mut response = listed(&[]);
    filter.apply(&mut response);
    assert_eq!(names_and_errors(response), vec![("a".into(), denied_code)]);

    // alice describes every topic, but creates none: a missing one she names is refused
    // where the request would create it, and left to the handler where it would not.
    let alice = acls.access("User:alice", "10.0.0.1");
    let known = Known(&["a"]);
    let (body, filter) = served(check(
        &alice,
        metadata(Some(&["a", "new"]), true),
        12,
        &known,
    ));
    let RequestKind::Metadata(request) = body else {
        unreachable!()
    };
    assert_eq!(request.topics.unwrap().len(), 1);
    let mut response = listed(&["a"]);
    filter.apply(&mut response);
    assert_eq!(
        names_and_errors(response),
        vec![("a".into(), 0), ("new".into(), denied_code)]
    );
    let (body, _) = served(check(&alice, metadata(Some(&["new"]), false), 12, &known));
    let RequestKind::Metadata(request) = body else {
        unreachable!()
    };
    assert_eq!(request.topics.unwrap().len(), 1);
    // Metadata v0-3 always creates.
    let (body, _) = served(check(&alice, metadata(Some(&["new"]), false), 3, &known));
    let RequestKind::Metadata(request) = body else {
        unreachable!()
    };
    assert_eq!(request.topics.unwrap().len(), 0);
}

#[tokio::test]
async fn without_the_authorizer_requests_pass_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let acls = acls(&dir, false).await;
    let bob = acls.access("User:bob", "10.0.0.1");
    let (body, _) = served(check(&bob, produce_to(&["a", "b"]), 9, &Known(&[])));
    let RequestKind::Produce(request) = body else {
        unreachable!()
    };
    assert_eq!(request.topic_data.len(), 2);
}

#[tokio::test]
async fn acls_are_kept_in_the_storage_root_and_deleted_by_filter() {
    let dir = tempfile::tempdir().unwrap();
    let first = acls(&dir, true).await;
    let everything = AclFilter {
        resource_type: ResourceType::Any,
        name: None,
        pattern: PatternType::Any,
        principal: None,
        host: None,
        operation: Operation::Any,
        permission: Permission::Any,
    };
    let before = first.describe(&everything);
    assert_eq!(before.len(), 3);
    drop(first);
    let store = dfs_adapter::Store::open(&format!("fs://{}", dir.path().display()))
        .await
        .unwrap();
    let reopened = Acls::open(
        std::sync::Arc::new(StoreAcls(store)),
        AuthorizerSettings::default(),
        true,
    )
    .await
    .unwrap();
    assert_eq!(reopened.describe(&everything), before);
    let groups = AclFilter {
        resource_type: ResourceType::Group,
        ..everything.clone()
    };
    let deleted = reopened
        .delete(&[groups, everything.clone()])
        .await
        .unwrap();
    assert_eq!(deleted[0].len(), 1);
    assert_eq!(deleted[1].len(), 3);
    assert!(reopened.describe(&everything).is_empty());
}

#[tokio::test]
async fn authorized_operations_are_what_the_acls_allow_or_everything_without_the_authorizer() {
    let dir = tempfile::tempdir().unwrap();
    let asked = || {
        RequestKind::Metadata(
            MetadataRequest::default()
                .with_topics(None)
                .with_include_topic_authorized_operations(true),
        )
    };
    let fill = |acls: &Acls, principal: &str| {
        let access = acls.access(principal, "10.0.0.1");
        let (_, denied) = admit(&access, asked(), 12, &Known(&["a", "b"])).unwrap();
        let mut response = listed(&["a", "b"]);
        denied.apply(&mut response);
        let ResponseKind::Metadata(response) = response else {
            unreachable!()
        };
        response
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().unwrap().to_string(),
                    t.topic_authorized_operations,
                )
            })
            .collect::<Vec<_>>()
    };
    let bit = |op: Operation| 1 << i8::from(op);
    let enforced = acls(&dir, true).await;
    // alice may write a (which implies describing it) and describe everything.
    assert_eq!(
        fill(&enforced, "User:alice"),
        vec![
            ("a".into(), bit(Operation::Write) | bit(Operation::Describe)),
            ("b".into(), bit(Operation::Describe)),
        ]
    );
    drop(enforced);
    let dir = tempfile::tempdir().unwrap();
    let open = acls(&dir, false).await;
    let everything = [
        Operation::Read,
        Operation::Write,
        Operation::Create,
        Operation::Describe,
        Operation::Delete,
        Operation::Alter,
        Operation::DescribeConfigs,
        Operation::AlterConfigs,
    ]
    .into_iter()
    .fold(0, |bits, op| bits | bit(op));
    assert_eq!(fill(&open, "User:bob")[0].1, everything);
}

#[tokio::test]
async fn topic_changes_need_alter_configs_or_alter_on_the_topic_and_the_cluster() {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
    let dir = tempfile::tempdir().unwrap();
    let acls = acls(&dir, true).await;
    let grant =
        |operation, name: &str| alice(operation, ResourceType::Topic, name, PatternType::Literal);
    acls.create(&[
        grant(Operation::AlterConfigs, "a"),
        grant(Operation::Alter, "b"),
    ])
    .await
    .unwrap();
    let access = acls.access("User:alice", "10.0.0.1");

    let resource = |kind: i8, name: &'static str| {
        AlterConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(StrBytes::from_static_str(name))
    };
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        resource(2, "a"),
        resource(2, "b"),
        resource(4, "0"),
    ]);
    let (body, denied) = served(check(
        &access,
        RequestKind::IncrementalAlterConfigs(request),
        1,
        &Known(&[]),
    ));
    let RequestKind::IncrementalAlterConfigs(request) = body else {
        unreachable!()
    };
    let kept: Vec<&str> = request
        .resources
        .iter()
        .map(|r| r.resource_name.as_str())
        .collect();
    assert_eq!(kept, ["a"]);
    let mut response = ResponseKind::IncrementalAlterConfigs(Default::default());
    denied.apply(&mut response);
    let ResponseKind::IncrementalAlterConfigs(response) = response else {
        unreachable!()
    };
    let codes: Vec<(&str, i16)> = response
        .responses
        .iter()
        .map(|r| (r.resource_name.as_str(), r.error_code))
        .collect();
    assert_eq!(
        codes,
        [
            ("b", ResponseError::TopicAuthorizationFailed.code()),
            ("0", ResponseError::ClusterAuthorizationFailed.code())
        ]
    );

    let grow = |name: &'static str| {
        CreatePartitionsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(name)))
            .with_count(3)
    };
    let request = CreatePartitionsRequest::default().with_topics(vec![grow("a"), grow("b")]);
    let (body, denied) = served(check(
        &access,
        RequestKind::CreatePartitions(request),
        3,
        &Known(&[]),
    ));
    let RequestKind::CreatePartitions(request) = body else {
        unreachable!()
    };
    assert_eq!(request.topics.len(), 1);
    assert_eq!(request.topics[0].name.as_str(), "b");
    let mut response = ResponseKind::CreatePartitions(Default::default());
    denied.apply(&mut response);
    let ResponseKind::CreatePartitions(response) = response else {
        unreachable!()
    };
    assert_eq!(response.results[0].name.as_str(), "a");
    assert_eq!(
        response.results[0].error_code,
        ResponseError::TopicAuthorizationFailed.code()
    );
}

/// Reading every topic (what a one-sided session's READ of the whole arena amounts to) needs a
/// READ (or ALL) of literal `*` and no DENY of READ on any topic; DESCRIBE of `*` is not READ.
#[tokio::test]
async fn reading_every_topic_needs_a_wildcard_allow_and_no_deny() {
    let dir = tempfile::tempdir().unwrap();
    let acls = acls(&dir, true).await;
    let every = |acls: &Acls, who: &str| {
        acls.access(who, "127.0.0.1")
            .allows_every(Operation::Read, ResourceType::Topic)
    };
    // alice may describe `*` and write `a`: not read everything.
    assert!(!every(&acls, "User:alice"));
    let read_all = alice(
        Operation::Read,
        ResourceType::Topic,
        "*",
        PatternType::Literal,
    );
    acls.create(std::slice::from_ref(&read_all)).await.unwrap();
    assert!(every(&acls, "User:alice"));
    assert!(!every(&acls, "User:bob"));
    // A prefixed ALLOW is not every topic.
    let prefixed = AclBinding {
        principal: "User:bob".into(),
        ..alice(
            Operation::All,
            ResourceType::Topic,
            "b",
            PatternType::Prefixed,
        )
    };
    acls.create(&[prefixed]).await.unwrap();
    assert!(!every(&acls, "User:bob"));
    // One DENY of READ anywhere, even of one topic, refuses the whole.
    let deny = AclBinding {
        permission: Permission::Deny,
        ..alice(
            Operation::Read,
            ResourceType::Topic,
            "secret",
            PatternType::Literal,
        )
    };
    acls.create(std::slice::from_ref(&deny)).await.unwrap();
    assert!(!every(&acls, "User:alice"));
    // Without the authorizer everything is readable.
    let open = acls_off().await;
    assert!(every(&open, "User:anyone"));
}

async fn acls_off() -> Acls {
    let dir = tempfile::tempdir().unwrap();
    acls(&dir, false).await
}
