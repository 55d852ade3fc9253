//! The authorized-operations fields (KIP-430) of Metadata (v8+), DescribeGroups (v3+) and
//! DescribeCluster: a bit per Kafka operation code the client may perform on the resource.
//! Without the authorizer every operation the resource type supports, as Kafka answers.

use kafka_protocol::messages::{RequestKind, ResponseKind};

use crate::security::acl::{Access, Operation, ResourceType, CLUSTER_NAME};

/// Kafka's "not requested" value.
const OMITTED: i32 = i32::MIN;

/// The operations Kafka supports on each resource type (`AclEntry.supportedOperations`).
fn supported(resource_type: ResourceType) -> &'static [Operation] {
    use Operation::*;
    match resource_type {
        ResourceType::Topic => &[
            Read,
            Write,
            Create,
            Describe,
            Delete,
            Alter,
            DescribeConfigs,
            AlterConfigs,
        ],
        ResourceType::Group => &[Read, Describe, Delete],
        ResourceType::Cluster => &[
            Create,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            Alter,
            Describe,
        ],
        ResourceType::TransactionalId => &[Describe, Write],
        ResourceType::DelegationToken => &[Describe],
        ResourceType::User => &[CreateTokens, DescribeTokens],
        ResourceType::Any => &[],
    }
}

/// The bit field of what `access` may do to `name` of `resource_type`.
pub fn authorized(access: &Access, resource_type: ResourceType, name: &str) -> i32 {
    supported(resource_type)
        .iter()
        .filter(|op| access.allows(**op, resource_type, name))
        .fold(0, |bits, op| bits | (1 << i8::from(*op)))
}

/// The cluster's field: set only for a client that may describe the cluster (Kafka).
fn cluster(access: &Access) -> i32 {
    if access.allows_cluster(Operation::Describe) {
        authorized(access, ResourceType::Cluster, CLUSTER_NAME)
    } else {
        OMITTED
    }
}

/// The authorized-operations fields a request asked for, filled into its response.
#[derive(Clone)]
pub struct OperationsFill {
    access: Access,
    topics: bool,
    cluster: bool,
    groups: bool,
}

impl OperationsFill {
    /// What `body` asks for, if anything.
    pub fn asked(access: &Access, body: &RequestKind, version: i16) -> Option<Self> {
        let (topics, cluster, groups) = match body {
            RequestKind::Metadata(r) if version >= 8 => (
                r.include_topic_authorized_operations,
                version <= 10 && r.include_cluster_authorized_operations,
                false,
            ),
            RequestKind::DescribeGroups(r) if version >= 3 => {
                (false, false, r.include_authorized_operations)
            }
            RequestKind::DescribeCluster(r) => {
                (false, r.include_cluster_authorized_operations, false)
            }
            _ => return None,
        };
        (topics || cluster || groups).then(|| Self {
            access: access.clone(),
            topics,
            cluster,
            groups,
        })
    }

    /// Fills the fields of `response` (entries answered with an error keep theirs).
    pub fn apply(&self, response: &mut ResponseKind) {
        match response {
            ResponseKind::Metadata(r) => {
                if self.topics {
                    for topic in r.topics.iter_mut().filter(|t| t.error_code == 0) {
                        if let Some(name) = &topic.name {
                            topic.topic_authorized_operations =
                                authorized(&self.access, ResourceType::Topic, name);
                        }
                    }
                }
                if self.cluster {
                    r.cluster_authorized_operations = cluster(&self.access);
                }
            }
            ResponseKind::DescribeGroups(r) if self.groups => {
                for group in r.groups.iter_mut().filter(|g| g.error_code == 0) {
                    group.authorized_operations =
                        authorized(&self.access, ResourceType::Group, &group.group_id);
                }
            }
            ResponseKind::DescribeCluster(r) if self.cluster => {
                r.cluster_authorized_operations = cluster(&self.access);
            }
            _ => {}
        }
    }
}
