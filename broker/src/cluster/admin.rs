//! `hotwire admin`: what an operator asks of a cluster, read and written straight in etcd (no
//! broker needs to be reachable): who leads what, and draining a broker before maintenance (its
//! shards move away one at a time, each flushed first, through the planned hand-over).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::etcd::Etcd;
use super::model::Keys;
use super::view::ClusterView;
use super::{ClusterConfig, ClusterError};

/// How often `drain --wait` looks again.
const WAIT_POLL: Duration = Duration::from_millis(200);

/// What `hotwire admin` does.
#[derive(Clone, Debug, PartialEq, Eq, clap::Subcommand)]
pub enum AdminAction {
    /// Prints the live brokers, the controller, and who leads each shard at which epoch.
    Status,
    /// Asks broker NODE to hand all its shards to the others (it stays registered and keeps
    /// serving until they moved).
    Drain {
        /// The broker's node id.
        node: i32,
        /// Waits until it leads no shard, at most this many seconds (failing after).
        #[arg(long, value_name = "SECONDS")]
        wait: Option<u64>,
    },
    /// Lets broker NODE receive shards again.
    Undrain {
        /// The broker's node id.
        node: i32,
    },
}

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// etcd or the URL.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// `drain --wait` ran out of time.
    #[error("broker {node} still leads shards {shards:?} after {waited:?}")]
    StillLeading {
        /// The broker.
        node: i32,
        /// What it still leads.
        shards: Vec<u32>,
        /// How long it was waited for.
        waited: Duration,
    },
}

/// Runs `action` on the cluster at `url` (`etcd://host:port[,...]/name`); returns what to
/// print.
pub async fn run(url: &str, action: &AdminAction) -> Result<String, AdminError> {
    let config = ClusterConfig::from_url(url)?;
    let etcd =
        Etcd::new(config.endpoints.clone(), Duration::from_secs(2)).map_err(ClusterError::from)?;
    let keys = Keys::new(&config.name);
    match action {
        AdminAction::Status => Ok(render(&config.name, &read(&etcd, &keys).await?)),
        AdminAction::Drain { node, wait } => {
            etcd.put(&keys.drain(*node), b"", None)
                .await
                .map_err(ClusterError::from)?;
            if let Some(seconds) = wait {
                let limit = Duration::from_secs(*seconds);
                let started = Instant::now();
                loop {
                    let shards = led_by(&read(&etcd, &keys).await?, *node);
                    if shards.is_empty() {
                        break;
                    }
                    if started.elapsed() >= limit {
                        return Err(AdminError::StillLeading {
                            node: *node,
                            shards,
                            waited: started.elapsed(),
                        });
                    }
                    tokio::time::sleep(WAIT_POLL).await;
                }
            }
            let shards = led_by(&read(&etcd, &keys).await?, *node);
            Ok(format!(
                "broker {node} is draining; it leads {} shard(s) {shards:?}\n",
                shards.len()
            ))
        }
        AdminAction::Undrain { node } => {
            etcd.delete(&keys.drain(*node))
                .await
                .map_err(ClusterError::from)?;
            Ok(format!("broker {node} may receive shards again\n"))
        }
    }
}

async fn read(etcd: &Etcd, keys: &Keys) -> Result<ClusterView, ClusterError> {
    let (kvs, revision) = etcd.get_prefix(keys.prefix()).await?;
    Ok(ClusterView::parse(keys, &kvs, revision))
}

/// The shards `node` leads, or is asked to hand over.
fn led_by(view: &ClusterView, node: i32) -> Vec<u32> {
    view.shards
        .iter()
        .filter(|(_, (a, _))| a.leader == Some(node))
        .map(|(shard, _)| *shard)
        .collect()
}

/// The view as an operator reads it.
fn render(name: &str, view: &ClusterView) -> String {
    let mut out = String::new();
    let shards = view.settings.map_or(0, |s| s.shards);
    let controller = view
        .controller
        .map_or("none".to_string(), |(node, _)| node.to_string());
    let _ = writeln!(
        out,
        "cluster {name}: {shards} shards, controller {controller}, etcd revision {}",
        view.revision
    );
    let _ = writeln!(out, "brokers:");
    for broker in &view.brokers {
        let info = &broker.info;
        let led = led_by(view, info.node_id);
        let rack = info
            .rack
            .as_deref()
            .map_or(String::new(), |r| format!(" rack {r}"));
        let draining = if view.draining.contains(&info.node_id) {
            " (draining)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {} {}:{}{rack}: leads {} shard(s){draining}",
            info.node_id,
            info.host,
            info.port,
            led.len()
        );
    }
    for node in &view.draining {
        if view.broker(*node).is_none() {
            let _ = writeln!(out, "  {node} (not registered; draining)");
        }
    }
    let _ = writeln!(out, "shards:");
    for (shard, assignment) in view.assignments() {
        let leader = assignment
            .leader
            .map_or("none".to_string(), |node| node.to_string());
        let moving = assignment
            .moving_to
            .map_or(String::new(), |node| format!(", moving to {node}"));
        let _ = writeln!(
            out,
            "  {shard}: leader {leader}, epoch {}{moving}",
            assignment.epoch
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::model::{BrokerInfo, ClusterSettings, LiveBroker, ShardAssignment};

    #[test]
    fn status_names_leaders_epochs_moves_and_drains() {
        let mut view = ClusterView {
            revision: 42,
            settings: Some(ClusterSettings {
                shards: 2,
                placement: crate::cluster::shards::PLACEMENT,
            }),
            controller: Some((1, 7)),
            draining: vec![2],
            ..Default::default()
        };
        for node in [1, 2] {
            view.brokers.push(LiveBroker {
                info: BrokerInfo {
                    node_id: node,
                    host: "10.0.0.1".into(),
                    port: 9092,
                    rack: (node == 1).then(|| "a".to_string()),
                    endpoints: Vec::new(),
                    load: Default::default(),
                },
                lease: 7,
            });
        }
        let led = |leader, epoch, moving_to| ShardAssignment {
            leader: Some(leader),
            lease: 7,
            epoch,
            moving_to,
        };
        view.shards.insert(0, (led(1, 3, None), 10));
        view.shards.insert(1, (led(2, 5, Some(1)), 11));
        let text = render("prod", &view);
        assert!(text.starts_with("cluster prod: 2 shards, controller 1, etcd revision 42\n"));
        assert!(
            text.contains("  1 10.0.0.1:9092 rack a: leads 1 shard(s)\n"),
            "{text}"
        );
        assert!(text.contains("  2 10.0.0.1:9092: leads 1 shard(s) (draining)\n"));
        assert!(text.contains("  0: leader 1, epoch 3\n"));
        assert!(text.contains("  1: leader 2, epoch 5, moving to 1\n"));
        assert_eq!(led_by(&view, 2), vec![1]);
    }
}
