//! A cluster broker's metrics: who it is in the cluster (shards led and their epochs, the
//! controller role, its lease, its hand-overs), then every engine's own metrics, each sample
//! labelled with its `shard`.

use std::fmt::Write;

use super::node::Node;
use crate::metrics::Render;

impl Render for Node {
    fn render(&self) -> String {
        let mut out = String::new();
        let view = self.member.view();
        let lease = self.member.lease();
        let engines = self.engines();
        let gauge = |out: &mut String, name: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        };
        gauge(
            &mut out,
            "hotwire_cluster_shards_led",
            "Shards this broker leads and serves.",
        );
        let _ = writeln!(out, "hotwire_cluster_shards_led {}", engines.len());
        gauge(
            &mut out,
            "hotwire_cluster_shard_epoch",
            "Epoch of each shard this broker leads.",
        );
        for engine in &engines {
            let _ = writeln!(
                out,
                "hotwire_cluster_shard_epoch{{shard=\"{}\"}} {}",
                engine.shard, engine.epoch
            );
        }
        gauge(
            &mut out,
            "hotwire_cluster_controller",
            "1 while this broker is the controller.",
        );
        let controller = view.controller.is_some_and(|(n, l)| {
            n == self.member.node_id() && lease.is_some_and(|lease| lease.id == l)
        });
        let _ = writeln!(out, "hotwire_cluster_controller {}", u8::from(controller));
        gauge(
            &mut out,
            "hotwire_cluster_lease_valid",
            "1 while this broker's etcd lease is surely valid (writes may be acknowledged).",
        );
        let valid = lease.is_some_and(|l| l.is_valid());
        let _ = writeln!(out, "hotwire_cluster_lease_valid {}", u8::from(valid));
        gauge(
            &mut out,
            "hotwire_cluster_brokers",
            "Live brokers in the cluster.",
        );
        let _ = writeln!(out, "hotwire_cluster_brokers {}", view.brokers.len());
        let handovers = self.handovers();
        let _ = writeln!(
            out,
            "# HELP hotwire_cluster_takeovers Shards this broker took over since start.\n\
             # TYPE hotwire_cluster_takeovers counter\n\
             hotwire_cluster_takeovers_total {}",
            handovers.len()
        );
        gauge(
            &mut out,
            "hotwire_cluster_takeover_last_seconds",
            "How long the last take-over of each shard took, from the assignment to serving.",
        );
        let mut last = std::collections::BTreeMap::new();
        for handover in &handovers {
            last.insert(handover.shard, handover.opened_in.as_secs_f64());
        }
        for (shard, seconds) in last {
            let _ = writeln!(
                out,
                "hotwire_cluster_takeover_last_seconds{{shard=\"{shard}\"}} {seconds}"
            );
        }
        if let Some(stream) = self.stream() {
            let stats = stream.stats();
            for (name, help, value) in [
                (
                    "hotwire_cluster_stream_objects",
                    "Objects this broker's flush stream wrote (one request each, for all its shards).",
                    stats.objects,
                ),
                (
                    "hotwire_cluster_stream_sections",
                    "Shards' flush objects packed into them.",
                    stats.sections,
                ),
                (
                    "hotwire_cluster_stream_bytes",
                    "Bytes the flush stream wrote.",
                    stats.bytes,
                ),
            ] {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} counter\n{name}_total {value}"
                );
            }
        }
        let mut families = Families::default();
        for engine in &engines {
            families.add(&engine.broker.metrics.render(), engine.shard);
        }
        families.write(&mut out);
        out.push_str("# EOF\n");
        out
    }
}

/// Metric families gathered from several engines: each family's header once, then the samples
/// of every engine.
#[derive(Default)]
struct Families {
    order: Vec<String>,
    headers: std::collections::HashMap<String, Vec<String>>,
    samples: std::collections::HashMap<String, Vec<String>>,
}

impl Families {
    fn add(&mut self, text: &str, shard: u32) {
        let mut family = String::new();
        let mut seen_headers: Vec<String> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line
                .strip_prefix("# HELP ")
                .or_else(|| line.strip_prefix("# TYPE "))
                .or_else(|| line.strip_prefix("# UNIT "))
            {
                family = rest.split(' ').next().unwrap_or_default().to_string();
                if !self.headers.contains_key(&family) {
                    self.order.push(family.clone());
                    self.headers.insert(family.clone(), Vec::new());
                }
                if !seen_headers.contains(&family) && self.samples.contains_key(&family) {
                    // Another engine's header: already written once.
                    continue;
                }
                seen_headers.push(family.clone());
                let headers = self.headers.entry(family.clone()).or_default();
                if !headers.contains(&line.to_string()) {
                    headers.push(line.to_string());
                }
            } else if line.starts_with('#') || line.is_empty() {
                continue;
            } else {
                self.samples
                    .entry(family.clone())
                    .or_default()
                    .push(with_shard(line, shard));
            }
        }
    }

    fn write(&self, out: &mut String) {
        for family in &self.order {
            for header in &self.headers[family] {
                out.push_str(header);
                out.push('\n');
            }
            for sample in self.samples.get(family).into_iter().flatten() {
                out.push_str(sample);
                out.push('\n');
            }
        }
    }
}

/// `line` (`name{labels} value` or `name value`) with `shard="<shard>"` added to its labels.
fn with_shard(line: &str, shard: u32) -> String {
    let label = format!("shard=\"{shard}\"");
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    match line[name_end..].chars().next() {
        Some('{') if line[name_end + 1..].starts_with('}') => {
            format!("{}{{{label}{}", &line[..name_end], &line[name_end + 1..])
        }
        Some('{') => format!("{}{{{label},{}", &line[..name_end], &line[name_end + 1..]),
        _ => format!("{}{{{label}}}{}", &line[..name_end], &line[name_end..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_gain_the_shard_label_and_headers_appear_once() {
        assert_eq!(with_shard("a_total 3", 2), "a_total{shard=\"2\"} 3");
        assert_eq!(with_shard("a{x=\"1\"} 3", 2), "a{shard=\"2\",x=\"1\"} 3");
        assert_eq!(with_shard("a{} 3", 2), "a{shard=\"2\"} 3");
        let text = "# HELP a A.\n# TYPE a counter\na_total 1\n# EOF\n";
        let mut families = Families::default();
        families.add(text, 0);
        families.add(text, 1);
        let mut out = String::new();
        families.write(&mut out);
        assert_eq!(
            out,
            "# HELP a A.\n# TYPE a counter\na_total{shard=\"0\"} 1\na_total{shard=\"1\"} 1\n"
        );
    }
}
