//! The authorizer applied to every request (Kafka's `KafkaApis` checks): before a handler
//! sees a request, the parts the client may not touch are taken out of it and answered with
//! Kafka's authorization errors (`TOPIC_`, `GROUP_`, `CLUSTER_`,
//! `TRANSACTIONAL_ID_AUTHORIZATION_FAILED`), and merged back into the handler's response;
//! a request the client may not make at all is answered here. Lists (Metadata of every
//! topic, ListGroups, OffsetFetch of every topic) are filtered to what the client may
//! describe.
//!
//! Without the authorizer ([`Access::enforced`] false) requests pass untouched.

mod groups;
mod metadata;
mod operations;
mod topics;

pub use operations::OperationsFill;

use kafka_protocol::messages::{RequestKind, ResponseKind};
use uuid::Uuid;

use super::acl::Access;

/// What the authorizer made of a request.
pub enum Checked {
    /// Serve this (what is left of the request), then [`Parts::apply`] to the response.
    Serve(Box<RequestKind>, Parts),
    /// Answer this instead: the client may not make the request at all.
    Answer(Box<ResponseKind>),
}

/// What completes a served request's response: the parts taken out of it, and the
/// authorized-operations fields it asked for.
#[derive(Clone, Default)]
pub struct Denied {
    parts: Parts,
    operations: Option<OperationsFill>,
}

impl Denied {
    /// Completes `response` with the denied parts' errors (or filters it), then fills the
    /// authorized operations the request asked for.
    pub fn apply(self, response: &mut ResponseKind) {
        self.parts.apply(response);
        if let Some(operations) = self.operations {
            operations.apply(response);
        }
    }
}

/// What was taken out of a request, and how to complete or filter its response.
#[derive(Clone, Default)]
pub enum Parts {
    /// Nothing.
    #[default]
    Nothing,
    /// Entries to add to the response.
    Topics(topics::DeniedTopics),
    /// Group APIs' entries to add, or lists to filter.
    Groups(groups::DeniedGroups),
    /// Metadata's filter.
    Metadata(metadata::MetadataFilter),
}

impl Parts {
    /// Completes `response` with the denied parts' errors, or filters it.
    pub fn apply(self, response: &mut ResponseKind) {
        match self {
            Parts::Nothing => {}
            Parts::Topics(denied) => denied.apply(response),
            Parts::Groups(denied) => denied.apply(response),
            Parts::Metadata(filter) => filter.apply(response),
        }
    }
}

/// Keeps in `items` those `allowed` accepts; turns the others into entries with `deny`.
fn split_off<T, E>(
    items: &mut Vec<T>,
    allowed: impl Fn(&T) -> bool,
    deny: impl FnMut(T) -> E,
) -> Vec<E> {
    let (kept, refused): (Vec<T>, Vec<T>) = std::mem::take(items).into_iter().partition(allowed);
    *items = kept;
    refused.into_iter().map(deny).collect()
}

/// The topics that exist now, as the authorizer needs to know them.
pub trait KnownTopics {
    /// The name of the topic with `id` (requests may name topics by id only).
    fn name_of(&self, id: Uuid) -> Option<String>;
    /// Whether `name` exists (Metadata would create it otherwise).
    fn exists(&self, name: &str) -> bool;
}

/// The topics known to the request's broker.
pub type TopicNames<'a> = &'a (dyn KnownTopics + Sync);

/// What of `body` (of `version`) the client may have served, and what completes its response;
/// or the whole answer when it may not make the request at all. Without the authorizer, the
/// request itself at no cost.
pub fn admit(
    access: &Access,
    body: RequestKind,
    version: i16,
    names: TopicNames<'_>,
) -> Result<(RequestKind, Denied), Box<ResponseKind>> {
    let operations = OperationsFill::asked(access, &body, version);
    if !access.enforced() {
        return Ok((
            body,
            Denied {
                parts: Parts::Nothing,
                operations,
            },
        ));
    }
    match check(access, body, version, names) {
        Checked::Serve(body, parts) => Ok((*body, Denied { parts, operations })),
        Checked::Answer(response) => Err(response),
    }
}

/// Checks `body` (of `version`) against what `access` allows.
pub fn check(access: &Access, body: RequestKind, version: i16, names: TopicNames<'_>) -> Checked {
    if !access.enforced() {
        return Checked::Serve(Box::new(body), Parts::Nothing);
    }
    match body {
        RequestKind::Metadata(r) => metadata::check(access, r, version, names),
        RequestKind::Produce(_)
        | RequestKind::Fetch(_)
        | RequestKind::ListOffsets(_)
        | RequestKind::OffsetForLeaderEpoch(_)
        | RequestKind::DeleteRecords(_)
        | RequestKind::CreateTopics(_)
        | RequestKind::DeleteTopics(_)
        | RequestKind::DescribeConfigs(_)
        | RequestKind::AlterConfigs(_)
        | RequestKind::IncrementalAlterConfigs(_)
        | RequestKind::CreatePartitions(_)
        | RequestKind::DescribeLogDirs(_)
        | RequestKind::DescribeProducers(_) => topics::check(access, body, names),
        body => groups::check(access, body, version),
    }
}

#[cfg(test)]
mod tests;
