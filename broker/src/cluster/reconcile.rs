//! What a broker does to bring the shards it has open in line with what etcd says it leads:
//! a pure function of the two, so that every combination is tested without a cluster.

use std::collections::BTreeMap;

use super::model::ShardAssignment;

/// One thing to do for one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Open the shard: this broker leads it and has it closed.
    Open(u32, ShardAssignment),
    /// Flush, close and release the shard: the controller asked for a planned move.
    HandOver(u32),
    /// Close the shard at once: this broker lost it (another epoch, or no longer its own).
    Close(u32),
    /// Release, at this epoch, a shard asked to move that this broker never opened: the move
    /// was decided before this broker read the assignment that gave it the shard.
    ReleaseUnopened(u32, i32),
}

/// The steps from `open` (shard → epoch of each engine) to `wanted` (what this broker leads
/// under its live lease; empty without one).
pub(crate) fn reconcile_steps(
    wanted: &BTreeMap<u32, ShardAssignment>,
    open: &BTreeMap<u32, i32>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for (&shard, &epoch) in open {
        match wanted.get(&shard) {
            Some(a) if a.epoch == epoch && a.moving_to.is_none() => {}
            Some(a) if a.epoch == epoch => steps.push(Step::HandOver(shard)),
            _ => steps.push(Step::Close(shard)),
        }
    }
    for (&shard, &assignment) in wanted {
        if open.contains_key(&shard) {
            continue;
        }
        steps.push(match assignment.moving_to {
            None => Step::Open(shard, assignment),
            Some(_) => Step::ReleaseUnopened(shard, assignment.epoch),
        });
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn led(epoch: i32, moving_to: Option<i32>) -> ShardAssignment {
        ShardAssignment {
            leader: Some(1),
            lease: 7,
            epoch,
            moving_to,
        }
    }

    fn steps(wanted: &[(u32, ShardAssignment)], open: &[(u32, i32)]) -> Vec<Step> {
        reconcile_steps(
            &wanted.iter().copied().collect(),
            &open.iter().copied().collect(),
        )
    }

    #[test]
    fn a_shard_led_and_open_at_its_epoch_is_left_alone() {
        assert_eq!(steps(&[(3, led(2, None))], &[(3, 2)]), vec![]);
    }

    #[test]
    fn a_shard_led_and_closed_is_opened() {
        assert_eq!(
            steps(&[(3, led(2, None))], &[]),
            vec![Step::Open(3, led(2, None))]
        );
    }

    #[test]
    fn a_shard_asked_to_move_is_handed_over() {
        assert_eq!(
            steps(&[(3, led(2, Some(5)))], &[(3, 2)]),
            vec![Step::HandOver(3)]
        );
    }

    #[test]
    fn a_shard_lost_or_led_at_another_epoch_is_closed() {
        assert_eq!(steps(&[], &[(3, 2)]), vec![Step::Close(3)]);
        // Open at epoch 2 but led at 4 (lost and given back meanwhile): the old engine goes
        // now; the next pass opens the shard at its new epoch.
        assert_eq!(steps(&[(3, led(4, None))], &[(3, 2)]), vec![Step::Close(3)]);
    }

    /// Seen in the end-to-end tests under load: the controller gave a joining broker a shard
    /// and, 30 ms later, asked it to move the shard on; the broker read both at once, never
    /// opened the shard, and nobody released it, so the move's target waited forever.
    #[test]
    fn a_shard_asked_to_move_before_it_was_ever_opened_is_released() {
        assert_eq!(
            steps(&[(3, led(2, Some(5)))], &[]),
            vec![Step::ReleaseUnopened(3, 2)]
        );
    }
}
