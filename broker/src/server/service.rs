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
use crate::security::acl::{Access, Acls};
use crate::security::credentials::{CredentialStore, EtcdCredentials, StoreCredentials};
use crate::server::frames::RequestMemory;

/// Where a connection came from, given with each of its requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// The listener it came through (an index into `Config::listeners`): Metadata and
    /// FindCoordinator answer with that listener's advertised addresses.
    pub listener: usize,
    /// Who the client authenticated as (`User:<name>`); `None` on listeners without SASL.
    pub principal: Option<Arc<str>>,
}

impl Origin {
    /// What this client may do under `acls` (a client that did not authenticate is
    /// `User:ANONYMOUS`, as in Kafka).
    pub fn access(&self, acls: &Acls) -> Access {
        let peer = self.peer;
        acls.access_of(self.principal.clone(), || {
            peer.map_or_else(String::new, |p| p.ip().to_string())
        })
    }
}

/// Serves decoded requests; the connection layer needs only this.
pub trait Service: Send + Sync + 'static {
    /// Connection limits and timeouts.
    fn config(&self) -> &Config;
    /// Memory for request frames of all connections.
    fn request_memory(&self) -> &RequestMemory;
    /// Connection-level metrics.
    fn events(&self) -> &Events;
    /// Where SASL credentials are read.
    fn credentials(&self) -> Arc<dyn CredentialStore>;
    /// The ACLs in force.
    fn acls(&self) -> &Arc<Acls>;
    /// Starts serving one request.
    fn start(
        self: Arc<Self>,
        request: Request,
        origin: Origin,
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

    fn credentials(&self) -> Arc<dyn CredentialStore> {
        Arc::new(StoreCredentials(self.store.clone()))
    }

    fn acls(&self) -> &Arc<Acls> {
        &self.acls
    }

    fn start(
        self: Arc<Self>,
        request: Request,
        origin: Origin,
    ) -> impl Future<Output = InFlight> + Send {
        handlers::start(self, request, origin)
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

    fn credentials(&self) -> Arc<dyn CredentialStore> {
        Arc::new(EtcdCredentials::new(
            self.member.etcd().clone(),
            self.member.keys().prefix(),
        ))
    }

    fn acls(&self) -> &Arc<Acls> {
        &self.acls
    }

    fn start(
        self: Arc<Self>,
        request: Request,
        origin: Origin,
    ) -> impl Future<Output = InFlight> + Send {
        router::start(self, request, origin)
    }
}
