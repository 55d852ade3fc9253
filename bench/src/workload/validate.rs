//! Checks a parsed workload and lists every problem, so one edit fixes them all.

use std::time::Duration;

use super::{Partitioning, Workload};
use crate::payload::HEADER_LEN;
use crate::units::Rate;

/// Largest number of partitions over all topics (a 2-core bench client cannot drive more).
const MAX_PARTITIONS: u64 = 10_000;
/// Largest record, well under librdkafka's `message.max.bytes` ceiling.
const MAX_RECORD: u64 = 64 << 20;
/// Most threads of one kind the bench will start.
const MAX_CLIENTS: u32 = 64;
/// Phases are numbered in one byte of every record's stamp.
pub(crate) const MAX_STEPS: u32 = 200;
/// Longest phase or warm-up.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Properties the bench sets itself and an `extra` table may not change.
const RESERVED: &[&str] = &["bootstrap.servers", "group.id", "client.id"];

/// Returns `Err` with one line per problem.
pub fn validate(w: &Workload) -> Result<(), Vec<String>> {
    let mut problems = Problems::default();

    problems.check(
        !w.name.is_empty()
            && w.name.len() <= 64
            && w.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'),
        format!(
            "name `{}` must be 1 to 64 characters of letters, digits, `-`, `_` or `.` (it is part of topic names)",
            w.name
        ),
    );

    let t = &w.topics;
    problems.check(t.count >= 1, "topics.count must be at least 1".into());
    problems.check(
        t.partitions >= 1,
        "topics.partitions must be at least 1".into(),
    );
    problems.check(
        w.total_partitions() <= MAX_PARTITIONS,
        format!("topics.count × topics.partitions must be at most {MAX_PARTITIONS}"),
    );
    problems.check(
        t.replication_factor >= 1 || t.replication_factor == -1,
        "topics.replication_factor must be at least 1 (or -1 for the broker's default)".into(),
    );

    let r = &w.records;
    problems.check(
        r.size.0 >= HEADER_LEN as u64 && r.size.0 <= MAX_RECORD,
        format!(
            "records.size must be between {HEADER_LEN} bytes (the bench's stamp) and 64MiB, not {}",
            r.size.0
        ),
    );
    problems.check(
        (0.0..=1.0).contains(&r.randomness),
        format!(
            "records.randomness must be between 0 and 1, not {}",
            r.randomness
        ),
    );

    let p = &w.producers;
    problems.check(
        (1..=MAX_CLIENTS).contains(&p.count),
        format!("producers.count must be between 1 and {MAX_CLIENTS}"),
    );
    match (&w.max_throughput, p.rate) {
        (Some(_), Some(_)) => problems.push(
            "producers.rate must not be set in a max-throughput workload: [max_throughput] sets each step's rate".into(),
        ),
        (None, None) => problems.push(
            "producers.rate is required (records per second in total, or \"max\")".into(),
        ),
        (None, Some(Rate::Fixed(rate))) => problems.check(
            rate.is_finite() && rate > 0.0 && rate <= 1e8,
            format!("producers.rate must be above 0 and at most 100000000 records/s, not {rate}"),
        ),
        _ => {}
    }
    problems.check(
        p.batch_size.0 >= 1 && p.batch_size.0 <= 512 << 20,
        "producers.batch_size must be between 1 byte and 512MiB".into(),
    );
    problems.check(
        p.linger.0 <= Duration::from_secs(60),
        "producers.linger must be at most 60s".into(),
    );
    problems.check(
        !(p.partitioning == Partitioning::Client && w.topics.count > 1),
        "producers.partitioning = \"client\" needs a single topic (round-robin spreads over several)".into(),
    );
    check_extra("producers.extra", p.extra.keys(), &mut problems);

    let c = &w.consumers;
    problems.check(
        c.count <= MAX_CLIENTS,
        format!("consumers.count must be at most {MAX_CLIENTS}"),
    );
    problems.check(
        !c.group.is_empty(),
        "consumers.group must not be empty".into(),
    );
    check_extra("consumers.extra", c.extra.keys(), &mut problems);
    check_extra("client", w.client.keys(), &mut problems);

    let phases_duration = w.run.duration.0;
    problems.check(
        phases_duration > Duration::ZERO && phases_duration <= MAX_DURATION,
        "run.duration must be above 0 and at most 24h".into(),
    );
    problems.check(
        w.run.warmup.0 <= MAX_DURATION,
        "run.warmup must be at most 24h".into(),
    );

    if let Some(cu) = &w.catch_up {
        problems.check(
            (1..=MAX_CLIENTS).contains(&cu.consumers),
            format!("catch_up.consumers must be between 1 and {MAX_CLIENTS}"),
        );
        problems.check(
            (0..=19).contains(&cu.nice),
            "catch_up.nice must be between 0 and 19".into(),
        );
        problems.check(
            w.backlog.size.0 >= w.records.size.0,
            "a catch-up workload needs backlog.size of at least one record".into(),
        );
        problems.check(
            matches!(p.rate, Some(Rate::Fixed(_))),
            "a catch-up workload needs a fixed producers.rate, so that both phases get the same load".into(),
        );
        problems.check(
            w.max_throughput.is_none(),
            "[catch_up] and [max_throughput] cannot be combined".into(),
        );
    }

    if let Some(m) = &w.max_throughput {
        problems.check(
            m.start_rate.is_finite() && m.start_rate > 0.0 && m.start_rate <= 1e8,
            format!(
                "max_throughput.start_rate must be above 0 and at most 100000000, not {}",
                m.start_rate
            ),
        );
        problems.check(
            m.step_factor.is_finite() && m.step_factor > 1.0 && m.step_factor <= 10.0,
            format!(
                "max_throughput.step_factor must be above 1 and at most 10, not {}",
                m.step_factor
            ),
        );
        problems.check(
            (1..=MAX_STEPS).contains(&m.max_steps),
            format!("max_throughput.max_steps must be between 1 and {MAX_STEPS}"),
        );
        problems.check(
            m.min_achieved_ratio > 0.0 && m.min_achieved_ratio <= 1.0,
            format!(
                "max_throughput.min_achieved_ratio must be in (0, 1], not {}",
                m.min_achieved_ratio
            ),
        );
        problems.check(
            m.max_p99.0 > Duration::ZERO,
            "max_throughput.max_p99 must be above 0".into(),
        );
    }

    if problems.0.is_empty() {
        Ok(())
    } else {
        Err(problems.0)
    }
}

/// The problems found so far.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    /// Notes `message` unless `ok`.
    fn check(&mut self, ok: bool, message: String) {
        if !ok {
            self.0.push(message);
        }
    }

    fn push(&mut self, message: String) {
        self.0.push(message);
    }
}

fn check_extra<'a>(table: &str, keys: impl Iterator<Item = &'a String>, problems: &mut Problems) {
    for key in keys {
        if key.trim().is_empty() {
            problems.push(format!("{table} has an empty property name"));
        } else if RESERVED.contains(&key.as_str()) {
            problems.push(format!(
                "{table}.\"{key}\" is set by the bench itself and cannot be overridden"
            ));
        }
    }
}
