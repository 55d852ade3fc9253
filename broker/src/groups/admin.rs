//! The admin views of a group (ListGroups, DescribeGroups, OffsetDelete) and its deletion.

use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::api::{GroupDescription, GroupListing, GroupOverview, MemberDescription};
use super::group::Group;
use super::GroupState;

impl Group {
    /// The ListGroups entry.
    pub(crate) fn listing(&self) -> GroupListing {
        GroupListing {
            group_id: self.id.clone(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            state: self.state,
        }
    }

    /// The DescribeGroups entry: metadata and assignments only while Stable, as Kafka.
    pub(crate) fn describe(&self) -> GroupDescription {
        let stable = self.is(GroupState::Stable);
        let protocol = if stable {
            self.protocol_name.clone().unwrap_or_default()
        } else {
            String::new()
        };
        let members = self
            .members
            .values()
            .map(|member| MemberDescription {
                member_id: member.id.clone(),
                group_instance_id: member.instance_id.clone(),
                client_id: member.client_id.clone(),
                client_host: member.client_host.clone(),
                metadata: if stable {
                    member.metadata(&protocol)
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    member.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        GroupDescription {
            group_id: self.id.clone(),
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_data: protocol,
            members,
        }
    }

    /// What OffsetDelete needs.
    pub(crate) fn overview(&self) -> GroupOverview {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        GroupOverview {
            state: self.state,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            member_metadata: self
                .members
                .values()
                .map(|member| member.metadata(protocol))
                .collect(),
        }
    }

    /// Marks an Empty group Dead for deletion: Kafka's DeleteGroups rules.
    pub(crate) fn begin_delete(&mut self) -> Result<(), ResponseError> {
        match self.state {
            GroupState::Dead => Err(ResponseError::GroupIdNotFound),
            GroupState::Empty => {
                self.set_state(GroupState::Dead);
                self.join_phase = None;
                self.sync_deadline = None;
                Ok(())
            }
            _ => Err(ResponseError::NonEmptyGroup),
        }
    }

    /// The deletion could not be made durable: the group is Empty again.
    pub(crate) fn abort_delete(&mut self) {
        if self.is(GroupState::Dead) {
            self.set_state(GroupState::Empty);
        }
    }
}
