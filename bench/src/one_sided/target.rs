//! Where the benchmark's one-sided sessions go: the broker's shm socket, or (in a bench built
//! with the `verbs` feature) its verbs control channel over an RDMA NIC.

use std::path::PathBuf;

use clap::Args;
use rdma::client::Session;

use crate::error::{BenchError, Result};

/// The one-sided endpoint of the broker under test.
#[derive(Clone, Debug, Args)]
pub struct OneSidedTarget {
    /// Its one-sided control socket (`--rdma-shm-socket`): same-host shared memory.
    #[arg(
        long,
        required_unless_present = "rdma_verbs",
        conflicts_with = "rdma_verbs"
    )]
    pub rdma_socket: Option<PathBuf>,
    /// Its verbs control channel (`--rdma-verbs-listen`, host:port): an RDMA NIC. Needs
    /// hotwire-bench built with `--features verbs`.
    #[arg(long)]
    pub rdma_verbs: Option<String>,
    /// RDMA device for `--rdma-verbs` (the first one when unset).
    #[arg(long)]
    pub rdma_device: Option<String>,
    /// GID index for `--rdma-verbs`; unset: chosen as the broker chooses (RoCE v2, IPv4
    /// first; InfiniBand 0).
    #[arg(long)]
    pub rdma_gid_index: Option<u8>,
    /// Traffic class of `--rdma-verbs` packets (RoCE v2: DSCP and ECN bits).
    #[arg(long, default_value_t = 0)]
    pub rdma_traffic_class: u8,
    /// Service level of `--rdma-verbs` packets (InfiniBand SL, RoCE VLAN priority).
    #[arg(long, default_value_t = 0)]
    pub rdma_service_level: u8,
    /// The broker's `rdma_token` (required by a verbs listener).
    #[arg(long, env = "HOTWIRE_RDMA_TOKEN")]
    pub rdma_token: Option<String>,
}

impl OneSidedTarget {
    /// The provider, for reports: `shm` or `verbs`.
    pub fn provider(&self) -> &'static str {
        if self.rdma_verbs.is_some() {
            "verbs"
        } else {
            "shm"
        }
    }

    /// Opens a session as `client_id`.
    pub fn connect(&self, client_id: &str) -> Result<Session> {
        let session = match (&self.rdma_socket, &self.rdma_verbs) {
            (Some(socket), _) => {
                Session::connect_with_token(socket, client_id, self.rdma_token.clone())
            }
            (None, Some(addr)) => self.connect_verbs(addr, client_id),
            (None, None) => {
                return Err(BenchError::Usage(
                    "give --rdma-socket or --rdma-verbs".into(),
                ))
            }
        };
        session.map_err(|e| BenchError::Broker(format!("one-sided session: {e}")))
    }

    #[cfg(feature = "verbs")]
    fn connect_verbs(
        &self,
        addr: &str,
        client_id: &str,
    ) -> std::result::Result<Session, rdma::RdmaError> {
        let config = rdma::verbs::VerbsConfig {
            device: self.rdma_device.clone(),
            gid_index: self.rdma_gid_index,
            traffic_class: self.rdma_traffic_class,
            service_level: self.rdma_service_level,
            ..rdma::verbs::VerbsConfig::default()
        };
        Session::connect_verbs(addr, client_id, self.rdma_token.clone(), &config)
    }

    #[cfg(not(feature = "verbs"))]
    fn connect_verbs(
        &self,
        _addr: &str,
        _client_id: &str,
    ) -> std::result::Result<Session, rdma::RdmaError> {
        Err(rdma::RdmaError::NoDevice(
            "this hotwire-bench was built without the verbs provider: build it with \
             `cargo build --release -p hotwire-bench --features verbs`"
                .into(),
        ))
    }
}
