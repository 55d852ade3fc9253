//! The classic group states.

use std::fmt;

/// A group's place in the rebalance cycle (Kafka's `GroupState`).
///
/// Empty → PreparingRebalance when a member joins; PreparingRebalance → CompletingRebalance when
/// the join phase ends (or → Empty if nobody is left); CompletingRebalance → Stable when the
/// leader's assignment is durable; Stable or CompletingRebalance → PreparingRebalance when a
/// member joins, changes, leaves or expires; Empty → Dead while the group is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; committed offsets (and the generation) may still exist.
    Empty,
    /// Members are (re)joining; the join phase ends when all have or the rebalance timeout passes.
    PreparingRebalance,
    /// The join phase ended; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment for the current generation.
    Stable,
    /// Being deleted; requests for it are told to look for the coordinator again.
    Dead,
}

impl GroupState {
    /// Every state, in the order above.
    pub const ALL: [GroupState; 5] = [
        Self::Empty,
        Self::PreparingRebalance,
        Self::CompletingRebalance,
        Self::Stable,
        Self::Dead,
    ];

    /// The name Kafka uses in DescribeGroups, ListGroups and their filters.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }

    /// The state named `name`, ignoring case (admin tools differ in how they spell them).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|state| state.name().eq_ignore_ascii_case(name))
    }

    /// States from which a rebalance may start (Kafka's valid previous states of
    /// PreparingRebalance).
    pub(crate) fn can_rebalance(self) -> bool {
        matches!(self, Self::Empty | Self::CompletingRebalance | Self::Stable)
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
