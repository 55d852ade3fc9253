//! Which protocols a group can accept, and the vote that picks the generation's protocol.

use bytes::Bytes;

use super::member::Member;

/// Whether a member offering `protocol_type` and `protocols` fits a group whose other members
/// are `others` and whose protocol type is `group_protocol_type`.
///
/// As in Kafka, a group with nobody in it accepts any non-empty type and protocol list; otherwise
/// the type must match and at least one offered protocol must be supported by every other member.
/// Unlike Kafka, the joining member's own previous protocols are not counted (the caller leaves
/// it out of `others`), so a sole member can change assignors without being refused.
pub fn supports_protocols<'a>(
    group_protocol_type: Option<&str>,
    others: impl Iterator<Item = &'a Member> + Clone,
    protocol_type: &str,
    protocols: &[(String, Bytes)],
) -> bool {
    if protocol_type.is_empty() || protocols.is_empty() {
        return false;
    }
    let mut others = others.peekable();
    if others.peek().is_none() {
        return true;
    }
    if group_protocol_type.is_some_and(|t| t != protocol_type) {
        return false;
    }
    protocols
        .iter()
        .any(|(name, _)| others.clone().all(|member| member.supports(name)))
}

/// The protocol for a new generation: each member votes for its first choice among the protocols
/// every member supports, and the most votes win (ties go to the earlier candidate in the first
/// member's order, so the outcome is deterministic). `None` when there are no members or no
/// protocol is common to all, which the join checks prevent.
pub fn select_protocol<'a>(members: impl Iterator<Item = &'a Member> + Clone) -> Option<String> {
    let first = members.clone().next()?;
    let candidates: Vec<&str> = first
        .protocols
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| members.clone().all(|member| member.supports(name)))
        .collect();
    let mut votes = vec![0usize; candidates.len()];
    for member in members {
        if let Some(choice) = member.vote(&candidates) {
            if let Some(index) = candidates.iter().position(|c| *c == choice) {
                votes[index] += 1;
            }
        }
    }
    // `max_by_key` keeps the last maximum; iterate in reverse so ties go to the first candidate.
    votes
        .iter()
        .enumerate()
        .rev()
        .max_by_key(|(_, count)| **count)
        .map(|(index, _)| candidates[index].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::ClientContext;
    use tokio::time::{Duration, Instant};

    fn member(id: &str, protocols: &[&str]) -> Member {
        Member::new(
            id.into(),
            None,
            &ClientContext::default(),
            Duration::from_secs(10),
            Duration::from_secs(10),
            protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::new()))
                .collect(),
            Instant::now(),
        )
    }

    fn offer(protocols: &[&str]) -> Vec<(String, Bytes)> {
        protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::new()))
            .collect()
    }

    #[tokio::test]
    async fn the_majority_choice_among_common_protocols_wins() {
        let members = [
            member("a", &["range", "roundrobin"]),
            member("b", &["roundrobin", "range"]),
            member("c", &["roundrobin", "sticky", "range"]),
        ];
        assert_eq!(
            select_protocol(members.iter()).as_deref(),
            Some("roundrobin")
        );
        let members = [
            member("a", &["range", "roundrobin"]),
            member("b", &["roundrobin", "range"]),
        ];
        assert_eq!(select_protocol(members.iter()).as_deref(), Some("range"));
        assert_eq!(select_protocol([].iter()), None);
    }

    #[tokio::test]
    async fn joining_needs_a_protocol_all_others_support() {
        let others = [member("a", &["range"]), member("b", &["range", "sticky"])];
        let fits = |offered: &[&str], kind: &str| {
            supports_protocols(Some("consumer"), others.iter(), kind, &offer(offered))
        };
        assert!(fits(&["sticky", "range"], "consumer"));
        assert!(!fits(&["sticky"], "consumer"));
        assert!(!fits(&["range"], "connect"));
        assert!(!fits(&[], "consumer"));
        assert!(supports_protocols(
            Some("consumer"),
            [].iter(),
            "connect",
            &offer(&["x"])
        ));
        assert!(!supports_protocols(None, [].iter(), "", &offer(&["x"])));
    }
}
