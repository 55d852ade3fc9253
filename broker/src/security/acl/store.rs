//! Where ACLs are kept: one record holding every binding, in a single broker's storage root
//! (`security/acls.json`) or in a cluster's etcd (`/hotwire/<name>/acls`), replaced whole on
//! each change, so a crash leaves the old set or the new one and every broker of a cluster
//! reads the same set.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::AclBinding;
use crate::cluster::etcd::{Compare, Etcd, Op};

/// Most bindings kept: CreateAcls beyond it is refused, so the record (and each broker's copy)
/// stays small.
pub const MAX_BINDINGS: usize = 10_000;

/// How often a cluster update retries after another broker changed the set under it.
const ETCD_UPDATE_ATTEMPTS: usize = 16;

/// Why ACLs could not be read or written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AclStoreError {
    /// The storage root failed.
    #[error(transparent)]
    Storage(#[from] dfs_adapter::StorageError),
    /// etcd failed.
    #[error(transparent)]
    Etcd(#[from] crate::cluster::etcd::EtcdError),
    /// The stored record does not parse.
    #[error("unreadable ACL record: {0}")]
    Corrupt(String),
    /// Other brokers kept changing the set.
    #[error("the ACLs kept changing under this update")]
    Contended,
}

/// The stored form.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    bindings: BTreeSet<AclBinding>,
}

fn parse(body: &[u8]) -> Result<BTreeSet<AclBinding>, AclStoreError> {
    serde_json::from_slice::<Record>(body)
        .map(|r| r.bindings)
        .map_err(|e| AclStoreError::Corrupt(e.to_string()))
}

fn encode(bindings: &BTreeSet<AclBinding>) -> Vec<u8> {
    serde_json::to_vec(&Record {
        bindings: bindings.clone(),
    })
    .expect("ACLs serialize")
}

/// A change to the set of bindings. It may run more than once (etcd retries it on the set
/// another broker stored meanwhile), so it must depend only on the set it is given.
pub type Change<'a> = &'a (dyn Fn(&mut BTreeSet<AclBinding>) + Sync);

/// A place ACLs are kept. Writers of one store are serialized by the caller within a process
/// ([`super::Acls`]); a cluster's brokers are serialized by etcd.
pub trait AclStore: Send + Sync {
    /// Every binding.
    fn load(&self) -> BoxFuture<'_, Result<BTreeSet<AclBinding>, AclStoreError>>;
    /// Applies `change` to the stored set and stores the result (durable when it returns);
    /// the set after it.
    fn update<'a>(
        &'a self,
        change: Change<'a>,
    ) -> BoxFuture<'a, Result<BTreeSet<AclBinding>, AclStoreError>>;
}

/// The record's name in a storage root.
const RECORD: &str = "acls.json";

/// ACLs in a single broker's storage root.
pub struct StoreAcls(pub dfs_adapter::Store);

impl AclStore for StoreAcls {
    fn load(&self) -> BoxFuture<'_, Result<BTreeSet<AclBinding>, AclStoreError>> {
        Box::pin(async move {
            match self.0.read_security_record(RECORD).await? {
                Some(body) => parse(&body),
                None => Ok(BTreeSet::new()),
            }
        })
    }

    fn update<'a>(
        &'a self,
        change: Change<'a>,
    ) -> BoxFuture<'a, Result<BTreeSet<AclBinding>, AclStoreError>> {
        Box::pin(async move {
            let mut bindings = self.load().await?;
            change(&mut bindings);
            self.0
                .put_security_record(RECORD, encode(&bindings))
                .await?;
            Ok(bindings)
        })
    }
}

/// ACLs in a cluster's etcd, changed by compare-and-swap on the key's revision.
pub struct EtcdAcls {
    etcd: Arc<Etcd>,
    key: String,
}

impl EtcdAcls {
    /// The ACLs under `<cluster prefix>acls`.
    pub fn new(etcd: Arc<Etcd>, cluster_prefix: &str) -> Self {
        Self {
            etcd,
            key: format!("{cluster_prefix}acls"),
        }
    }
}

impl AclStore for EtcdAcls {
    fn load(&self) -> BoxFuture<'_, Result<BTreeSet<AclBinding>, AclStoreError>> {
        Box::pin(async move {
            match self.etcd.get(&self.key).await?.0 {
                Some(kv) => parse(&kv.value),
                None => Ok(BTreeSet::new()),
            }
        })
    }

    fn update<'a>(
        &'a self,
        change: Change<'a>,
    ) -> BoxFuture<'a, Result<BTreeSet<AclBinding>, AclStoreError>> {
        Box::pin(async move {
            for _ in 0..ETCD_UPDATE_ATTEMPTS {
                let (current, _) = self.etcd.get(&self.key).await?;
                let revision = current.as_ref().map_or(0, |kv| kv.mod_revision);
                let mut bindings = match &current {
                    Some(kv) => parse(&kv.value)?,
                    None => BTreeSet::new(),
                };
                change(&mut bindings);
                let put = Op::Put {
                    key: self.key.clone(),
                    value: encode(&bindings),
                    lease: None,
                };
                let compare = Compare::ModRevision(self.key.clone(), revision);
                if self.etcd.txn(&[compare], &[put], &[]).await?.succeeded {
                    return Ok(bindings);
                }
            }
            Err(AclStoreError::Contended)
        })
    }
}
