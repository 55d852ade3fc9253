//! Metadata shows only what the client may describe: topics it named and may not describe
//! are answered TOPIC_AUTHORIZATION_FAILED, and a listing of every topic leaves them out.
//! A missing topic is created only with CREATE on the cluster or on the topic.

use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{MetadataRequest, RequestKind, ResponseKind};

use super::{Checked, Parts, TopicNames};
use crate::security::acl::{Access, Operation, ResourceType};

/// What Metadata's answer must lose or gain.
#[derive(Clone)]
pub struct MetadataFilter {
    access: Access,
    /// The names the client asked for and may describe (`None`: every topic).
    asked: Option<Vec<String>>,
    /// Entries of the topics it named and may not describe.
    denied: Vec<MetadataResponseTopic>,
}

impl MetadataFilter {
    pub(super) fn apply(self, response: &mut ResponseKind) {
        let ResponseKind::Metadata(response) = response else {
            tracing::error!("a Metadata filter for another API's response");
            return;
        };
        let access = &self.access;
        response.topics.retain(|t| {
            let Some(name) = &t.name else {
                return true;
            };
            let asked = self
                .asked
                .as_ref()
                .is_none_or(|asked| asked.iter().any(|a| a.as_str() == name.as_str()));
            asked && access.allows(Operation::Describe, ResourceType::Topic, name)
        });
        response.topics.extend(self.denied);
    }
}

pub(super) fn check(
    access: &Access,
    mut request: MetadataRequest,
    version: i16,
    names: TopicNames<'_>,
) -> Checked {
    let request_flags = request.allow_auto_topic_creation;
    let mut denied = Vec::new();
    let mut asked = None;
    if let Some(topics) = &mut request.topics {
        let mut kept = Vec::new();
        topics.retain(|t| {
            let name = t
                .name
                .as_ref()
                .map(|n| n.to_string())
                .or_else(|| names.name_of(t.topic_id));
            // An id no topic has: the handler answers UNKNOWN_TOPIC_ID.
            let Some(name) = name else {
                return true;
            };
            // A missing topic would be created (where auto-creation is on): CREATE is needed.
            let allowed = access.allows(Operation::Describe, ResourceType::Topic, &name)
                && (!may_create_any(version, &request_flags)
                    || names.exists(&name)
                    || access.allows_cluster(Operation::Create)
                    || access.allows(Operation::Create, ResourceType::Topic, &name));
            if allowed {
                kept.push(name);
                return true;
            }
            denied.push(
                MetadataResponseTopic::default()
                    .with_error_code(kafka_protocol::ResponseError::TopicAuthorizationFailed.code())
                    .with_name(t.name.clone())
                    .with_topic_id(t.topic_id),
            );
            false
        });
        asked = Some(kept);
    }
    let filter = MetadataFilter {
        access: access.clone(),
        asked,
        denied,
    };
    Checked::Serve(
        Box::new(RequestKind::Metadata(request)),
        Parts::Metadata(filter),
    )
}

/// Whether the request lets the broker create missing topics (Metadata before v4 always does).
fn may_create_any(version: i16, allow_auto_topic_creation: &bool) -> bool {
    version < 4 || *allow_auto_topic_creation
}
