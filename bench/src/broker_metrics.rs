//! Optional scrape of the broker's Prometheus endpoint (Hotwire's `--metrics-listen`): how many
//! fetched partitions each Kafka `client.id` had answered from the hot cache and from storage,
//! so a run can report the hot hit rate of its tailing consumers apart from its catch-up
//! readers'. Other brokers do not expose that counter; the results then carry no hit rates.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde::Serialize;

use crate::error::{BenchError, Result};

/// The counter scraped: `hotwire_fetch_client_reads_total{client_id="...",tier="hot|cold"}`.
const METRIC: &str = "hotwire_fetch_client_reads_total{";
const TIMEOUT: Duration = Duration::from_secs(5);

/// Fetched partitions per tier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct TierCounts {
    pub hot: u64,
    pub cold: u64,
}

/// Per client id.
pub type FetchReads = BTreeMap<String, TierCounts>;

/// The broker's cold read-ahead counters (Hotwire's `hotwire_cold_read_ahead_*`), in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ReadAheadBytes {
    /// Loaded ahead of the readers.
    pub loaded: u64,
    /// Of those, read before eviction.
    pub used: u64,
    /// Of those, evicted unread.
    pub wasted: u64,
}

/// One scrape: per-client fetch tiers, and read-ahead where exposed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BrokerSample {
    pub reads: FetchReads,
    pub read_ahead: Option<ReadAheadBytes>,
}

/// Where the broker's metrics are.
#[derive(Clone, Debug)]
pub struct MetricsEndpoint {
    /// host:port
    addr: String,
    path: String,
}

impl MetricsEndpoint {
    /// `http://host:port/path` or `host:port` (path `/metrics`).
    pub fn parse(url: &str) -> Result<Self> {
        let rest = url.strip_prefix("http://").unwrap_or(url);
        let (addr, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/metrics"),
        };
        if addr.is_empty() || !addr.contains(':') {
            return Err(BenchError::Usage(format!(
                "broker metrics {url}: expected http://HOST:PORT/PATH"
            )));
        }
        Ok(MetricsEndpoint {
            addr: addr.to_string(),
            path: path.to_string(),
        })
    }

    /// One scrape of the per-client fetch counters and the read-ahead counters.
    pub fn sample(&self) -> Result<BrokerSample> {
        let text = self.get()?;
        Ok(BrokerSample {
            reads: parse_fetch_reads(&text),
            read_ahead: parse_read_ahead(&text),
        })
    }

    fn get(&self) -> Result<String> {
        let context = || format!("scraping http://{}{}", self.addr, self.path);
        let mut stream = TcpStream::connect(&self.addr).map_err(BenchError::io(context()))?;
        stream
            .set_read_timeout(Some(TIMEOUT))
            .map_err(BenchError::io(context()))?;
        let request = format!(
            "GET {} HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.path, self.addr
        );
        stream
            .write_all(request.as_bytes())
            .map_err(BenchError::io(context()))?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .map_err(BenchError::io(context()))?;
        match response.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
                Ok(body.to_string())
            }
            _ => Err(BenchError::Broker(format!(
                "{}: not an HTTP 200 answer",
                context()
            ))),
        }
    }
}

/// The per-client counts in a Prometheus text exposition.
pub fn parse_fetch_reads(text: &str) -> FetchReads {
    let mut reads = FetchReads::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(METRIC) else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let (Some(client), Some(tier)) = (label(labels, "client_id"), label(labels, "tier")) else {
            continue;
        };
        let count = value.trim().parse::<f64>().unwrap_or(0.0) as u64;
        let entry = reads.entry(client).or_default();
        match tier.as_str() {
            "hot" => entry.hot = count,
            "cold" => entry.cold = count,
            _ => {}
        }
    }
    reads
}

/// The read-ahead counters in a Prometheus text exposition, if all three are there.
pub fn parse_read_ahead(text: &str) -> Option<ReadAheadBytes> {
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
    };
    Some(ReadAheadBytes {
        loaded: value("hotwire_cold_read_ahead_bytes_total")?,
        used: value("hotwire_cold_read_ahead_used_bytes_total")?,
        wasted: value("hotwire_cold_read_ahead_wasted_bytes_total")?,
    })
}

/// The value of `name="..."` in a label list (client ids with quotes or commas are escaped by
/// the exposition format; such ids are not used by the bench).
fn label(labels: &str, name: &str) -> Option<String> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let len = labels[start..].find('"')?;
    Some(labels[start..start + len].to_string())
}

/// What happened between two samples.
pub fn sample_delta(before: &BrokerSample, after: &BrokerSample) -> BrokerSample {
    let read_ahead = before
        .read_ahead
        .zip(after.read_ahead)
        .map(|(b, a)| ReadAheadBytes {
            loaded: a.loaded.saturating_sub(b.loaded),
            used: a.used.saturating_sub(b.used),
            wasted: a.wasted.saturating_sub(b.wasted),
        });
    BrokerSample {
        reads: delta(&before.reads, &after.reads),
        read_ahead,
    }
}

/// What happened between two scrapes of the per-client counts.
pub fn delta(before: &FetchReads, after: &FetchReads) -> FetchReads {
    after
        .iter()
        .map(|(client, now)| {
            let then = before.get(client).copied().unwrap_or_default();
            let counts = TierCounts {
                hot: now.hot.saturating_sub(then.hot),
                cold: now.cold.saturating_sub(then.cold),
            };
            (client.clone(), counts)
        })
        .filter(|(_, c)| c.hot + c.cold > 0)
        .collect()
}

/// Hot reads over all reads of the client ids starting with `prefix` (`None`: no reads).
pub fn hot_ratio(reads: &FetchReads, prefix: &str) -> Option<f64> {
    let (hot, all) = reads
        .iter()
        .filter(|(client, _)| client.starts_with(prefix))
        .fold((0, 0), |(hot, all), (_, c)| {
            (hot + c.hot, all + c.hot + c.cold)
        });
    (all > 0).then(|| hot as f64 / all as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "\
# HELP hotwire_fetch_client_reads Fetched partitions per Kafka client.id and tier.
# TYPE hotwire_fetch_client_reads counter
hotwire_fetch_client_reads_total{client_id=\"hotwire-bench-consumer-0\",tier=\"hot\"} 990
hotwire_fetch_client_reads_total{client_id=\"hotwire-bench-consumer-0\",tier=\"cold\"} 10
hotwire_fetch_client_reads_total{client_id=\"hotwire-bench-catch-up\",tier=\"cold\"} 400
hotwire_fetch_hot_reads_total 990
hotwire_cold_read_ahead_bytes_total 3000
hotwire_cold_read_ahead_used_bytes_total 2000
hotwire_cold_read_ahead_wasted_bytes_total 500
";

    #[test]
    fn per_client_counts_and_ratios_come_out_of_a_scrape() {
        let after = parse_fetch_reads(SCRAPE);
        assert_eq!(
            after["hotwire-bench-consumer-0"],
            TierCounts { hot: 990, cold: 10 }
        );
        assert_eq!(after["hotwire-bench-catch-up"].cold, 400);
        let mut before = FetchReads::new();
        before.insert(
            "hotwire-bench-consumer-0".into(),
            TierCounts { hot: 490, cold: 10 },
        );
        let phase = delta(&before, &after);
        assert_eq!(
            phase["hotwire-bench-consumer-0"],
            TierCounts { hot: 500, cold: 0 }
        );
        assert_eq!(hot_ratio(&phase, "hotwire-bench-consumer-"), Some(1.0));
        assert_eq!(hot_ratio(&phase, "hotwire-bench-catch-up"), Some(0.0));
        assert_eq!(hot_ratio(&phase, "nobody"), None);
        let read_ahead = parse_read_ahead(SCRAPE).unwrap();
        assert_eq!(
            read_ahead,
            ReadAheadBytes {
                loaded: 3000,
                used: 2000,
                wasted: 500
            }
        );
        assert_eq!(parse_read_ahead("hotwire_fetch_hot_reads_total 1\n"), None);
    }

    #[test]
    fn endpoints_parse_with_or_without_scheme_and_path() {
        let e = MetricsEndpoint::parse("http://127.0.0.1:9100/metrics").unwrap();
        assert_eq!(
            (e.addr.as_str(), e.path.as_str()),
            ("127.0.0.1:9100", "/metrics")
        );
        let e = MetricsEndpoint::parse("127.0.0.1:9100").unwrap();
        assert_eq!(e.path, "/metrics");
        assert!(MetricsEndpoint::parse("http:///metrics").is_err());
    }
}
