//! What a listener serves: one broker, or a cluster broker's engines behind its router.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::broker::Broker;
use crate::cluster::{router, Node};
use crate::config::Config;
use crate::handlers::{self, InFlight};
use crate::metrics::Events;
use crate::protocol::Request;
use crate::server::frames::RequestMemory;

/// Serves decoded requests; the connection layer needs only this.
pub trait Service: Send + Sync + 'static {
    /// Connection limits and timeouts.
    fn config(&self) -> &Config;
    /// Memory for request frames of all connections.
    fn request_memory(&self) -> &RequestMemory;
    /// Connection-level metrics.
    fn events(&self) -> &Events;
    /// Starts serving one request.
    fn start(
        self: Arc<Self>,
        request: Request,
        peer: Option<SocketAddr>,
    ) -> impl Future<Output = InFlight> + Send;
}

impl Service for Broker {
    fn config(&self) -> &Config {
        &self.config
    }

    fn request_memory(&self) -> &RequestMemory {
        &self.request_memory
    }

    fn events(&self) -> &Events {
        &self.events
    }

    fn start(
        self: Arc<Self>,
        request: Request,
        peer: Option<SocketAddr>,
    ) -> impl Future<Output = InFlight> + Send {
        handlers::start(self, request, peer)
    }
}

impl Service for Node {
    fn config(&self) -> &Config {
        &self.config
    }

    fn request_memory(&self) -> &RequestMemory {
        &self.request_memory
    }

    fn events(&self) -> &Events {
        &self.events
    }

    fn start(
        self: Arc<Self>,
        request: Request,
        peer: Option<SocketAddr>,
    ) -> impl Future<Output = InFlight> + Send {
        router::start(self, request, peer)
    }
}
