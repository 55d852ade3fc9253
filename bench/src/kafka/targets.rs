//! Where each produced record goes.

use crate::workload::Partitioning;

/// The run's topics and how producers spread records over their partitions.
#[derive(Debug, Clone)]
pub struct Targets {
    pub topics: Vec<String>,
    pub partitions: u32,
    pub partitioning: Partitioning,
}

impl Targets {
    /// Topic and partition of the `seq`-th record of a producer (`None`: the client picks).
    pub fn pick(&self, seq: u64) -> (&str, Option<i32>) {
        let topic_count = self.topics.len().max(1) as u64;
        let partitions = u64::from(self.partitions.max(1));
        match self.partitioning {
            Partitioning::Client => (self.topic(0), None),
            Partitioning::RoundRobin => {
                let slot = seq % (topic_count * partitions);
                let topic = (slot / partitions) as usize;
                // Below `partitions`, which validation keeps under 10,000: fits an i32.
                (self.topic(topic), Some((slot % partitions) as i32))
            }
        }
    }

    /// Every (topic, partition) of the run.
    pub fn all_partitions(&self) -> Vec<(String, i32)> {
        self.topics
            .iter()
            .flat_map(|t| (0..self.partitions as i32).map(move |p| (t.clone(), p)))
            .collect()
    }

    fn topic(&self, index: usize) -> &str {
        self.topics.get(index).map_or("", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_visits_every_partition_of_every_topic() {
        let targets = Targets {
            topics: vec!["a".into(), "b".into()],
            partitions: 2,
            partitioning: Partitioning::RoundRobin,
        };
        let picks: Vec<_> = (0..5).map(|s| targets.pick(s)).collect();
        assert_eq!(
            picks,
            [
                ("a", Some(0)),
                ("a", Some(1)),
                ("b", Some(0)),
                ("b", Some(1)),
                ("a", Some(0))
            ]
        );
        assert_eq!(targets.all_partitions().len(), 4);
        let client = Targets {
            partitioning: Partitioning::Client,
            ..targets
        };
        assert_eq!(client.pick(3), ("a", None));
    }
}
