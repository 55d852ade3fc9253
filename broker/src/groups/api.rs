//! The coordinator's requests and answers, free of wire versions: the handlers translate
//! between these and `kafka-protocol`'s messages.

use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::GroupState;

/// A JoinGroup request.
#[derive(Clone, Debug, Default)]
pub struct JoinGroupParams {
    /// The group to join.
    pub group_id: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    /// Set by static members (`group.instance.id`, v5+).
    pub group_instance_id: Option<String>,
    /// How long the member may go without a heartbeat.
    pub session_timeout_ms: i32,
    /// How long a join phase may wait for this member (v0 sends none: use the session timeout).
    pub rebalance_timeout_ms: i32,
    /// E.g. `consumer` or `connect`; all members must agree.
    pub protocol_type: String,
    /// Protocols (assignors) in the member's order of preference, with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a first join without an instance id is answered MEMBER_ID_REQUIRED with a new id.
    pub require_known_member_id: bool,
    /// v9+: a static leader that rejoins a stable group may be told to skip the assignment.
    pub supports_skip_assignment: bool,
    /// The client's reason (v8+), for logs.
    pub reason: Option<String>,
}

/// The answer to a JoinGroup request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JoinGroupResult {
    /// `None` on success.
    pub error: Option<ResponseError>,
    /// The generation joined (-1 on error).
    pub generation_id: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The protocol chosen for the generation.
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader_id: String,
    /// The member's id (the newly assigned one for MEMBER_ID_REQUIRED).
    pub member_id: String,
    /// Every member with its metadata for the chosen protocol: for the leader only.
    pub members: Vec<JoinedMember>,
    /// v9+: the leader keeps the current assignment instead of computing one.
    pub skip_assignment: bool,
}

impl JoinGroupResult {
    /// An error answer, as Kafka sends it: no generation, no protocol, no leader.
    pub fn error(member_id: impl Into<String>, error: ResponseError) -> Self {
        Self {
            error: Some(error),
            generation_id: -1,
            member_id: member_id.into(),
            ..Self::default()
        }
    }
}

/// One member as the leader sees it in its JoinGroup answer.
#[derive(Clone, Debug, PartialEq)]
pub struct JoinedMember {
    /// The member's id.
    pub member_id: String,
    /// Its `group.instance.id`, if static.
    pub group_instance_id: Option<String>,
    /// Its metadata for the chosen protocol (for consumers: the subscription).
    pub metadata: Bytes,
}

/// A SyncGroup request.
#[derive(Clone, Debug, Default)]
pub struct SyncGroupParams {
    /// The group.
    pub group_id: String,
    /// The generation the member joined.
    pub generation_id: i32,
    /// The member.
    pub member_id: String,
    /// Set by static members (v3+).
    pub group_instance_id: Option<String>,
    /// v5+: checked against the group's.
    pub protocol_type: Option<String>,
    /// v5+: checked against the generation's.
    pub protocol_name: Option<String>,
    /// From the leader: every member's assignment. Ignored from followers.
    pub assignments: Vec<(String, Bytes)>,
}

/// The answer to a SyncGroup request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncGroupResult {
    /// `None` on success.
    pub error: Option<ResponseError>,
    /// The group's protocol type (success only).
    pub protocol_type: Option<String>,
    /// The generation's protocol (success only).
    pub protocol_name: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

impl SyncGroupResult {
    /// An error answer.
    pub fn error(error: ResponseError) -> Self {
        Self {
            error: Some(error),
            ..Self::default()
        }
    }
}

/// One member named in a LeaveGroup request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeavingMember {
    /// The member id; empty to remove a static member by instance id alone (admin removal).
    pub member_id: String,
    /// The member's `group.instance.id`, if static.
    pub group_instance_id: Option<String>,
    /// The client's reason (v5+), for logs.
    pub reason: Option<String>,
}

/// The answer to a LeaveGroup request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeaveGroupResult {
    /// An error for the whole request (then `members` is empty).
    pub error: Option<ResponseError>,
    /// Each member asked for, with its own outcome, in request order.
    pub members: Vec<(LeavingMember, Option<ResponseError>)>,
}

/// One group in a ListGroups answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// Its protocol type (empty when it never had one, e.g. groups that only commit offsets).
    pub protocol_type: String,
    /// Its state.
    pub state: GroupState,
}

/// One group in a DescribeGroups answer, as Kafka's `GroupSummary`.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// The state (Dead for unknown groups).
    pub state: GroupState,
    /// The protocol type, or empty.
    pub protocol_type: String,
    /// The chosen protocol while Stable, else empty (Kafka's `protocol_data`).
    pub protocol_data: String,
    /// The members; metadata and assignments are filled only while Stable.
    pub members: Vec<MemberDescription>,
}

/// One member in a DescribeGroups answer.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberDescription {
    /// The member id.
    pub member_id: String,
    /// Its `group.instance.id`, if static.
    pub group_instance_id: Option<String>,
    /// The client id it joined with.
    pub client_id: String,
    /// The address it joined from.
    pub client_host: String,
    /// Its metadata for the chosen protocol (Stable only).
    pub metadata: Bytes,
    /// Its assignment (Stable only).
    pub assignment: Bytes,
}

/// What OffsetDelete needs to know about a group: its state and, for consumer groups, each
/// member's metadata for the current protocol (the consumer subscription, to be decoded by the
/// caller).
#[derive(Clone, Debug, PartialEq)]
pub struct GroupOverview {
    /// The state.
    pub state: GroupState,
    /// The protocol type (`consumer` for consumer groups).
    pub protocol_type: Option<String>,
    /// The protocol of the current (or last) generation.
    pub protocol_name: Option<String>,
    /// Each member's metadata for `protocol_name`.
    pub member_metadata: Vec<Bytes>,
}
