//! Kafka's offset retention (`offsets.retention.minutes`, KIP-211): a group that has had no
//! members for the retention period, and no commit for as long, is deleted with its committed
//! offsets. Without it, groups and offset slots made by clients long gone pile up until
//! `max_groups` and `offset_slots` refuse everyone, for good (they are durable).
//!
//! A group one-sided sessions hold is kept: their fetch-and-add commits leave no commit time.
//! A commit racing the expiry of a group idle for the whole period may be deleted with it, as
//! DeleteGroups would.

use std::collections::BTreeSet;
use std::time::Duration;

use super::store::Offsets;
use crate::groups::GroupCoordinator;

/// Deletes every group expired at `now_ms` (ms since the epoch); returns how many went.
pub async fn expire_groups(
    offsets: &Offsets,
    groups: &GroupCoordinator,
    retention: Duration,
    now_ms: i64,
) -> usize {
    let cutoff = now_ms.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
    let candidates: BTreeSet<String> = offsets
        .table()
        .groups()
        .into_iter()
        .chain(groups.group_ids())
        .collect();
    let mut with_group = Vec::new();
    let mut offsets_only = Vec::new();
    for id in candidates {
        let (newest_commit, held) = offsets.table().group_activity(&id);
        if held || newest_commit.is_some_and(|at| at > cutoff) {
            continue;
        }
        if !groups.empty_for_at_least(&id, retention) {
            continue;
        }
        if groups.group_exists(&id) {
            with_group.push(id);
        } else {
            offsets_only.push(id);
        }
    }
    let mut expired = 0;
    // The coordinator re-checks under each group's lock that it is still Empty.
    for (id, outcome) in groups.delete_groups(with_group).await {
        match outcome {
            Ok(()) => {
                tracing::info!(group = %id, "group expired (offsets_retention_ms)");
                expired += 1;
            }
            Err(error) => tracing::debug!(group = %id, ?error, "group not expired"),
        }
    }
    for id in offsets_only {
        match offsets.submit_group(&id, None).await {
            Ok(()) => {
                tracing::info!(group = %id, "offsets of a group expired (offsets_retention_ms)");
                expired += 1;
            }
            Err(error) => tracing::warn!(group = %id, %error, "could not expire offsets"),
        }
    }
    expired
}
