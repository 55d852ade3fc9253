//! The bindings in force: a copy in memory, read on every request without touching storage,
//! changed through the store (single broker: by this broker only; cluster: by any broker,
//! picked up by [`Acls::refresh`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::store::{AclStore, AclStoreError, MAX_BINDINGS};
use super::{
    authorize, AclBinding, AclFilter, AuthorizerSettings, Operation, Permission, Requester,
    ResourceType, ANY_USER, CLUSTER_NAME, WILDCARD,
};
use crate::security::user_admin::ANONYMOUS;

/// The ACLs of a broker (or of a cluster, seen by one broker).
pub struct Acls {
    store: Arc<dyn AclStore>,
    settings: Arc<AuthorizerSettings>,
    enabled: bool,
    current: RwLock<Arc<Vec<AclBinding>>>,
    /// Serializes this process's writes, so none is lost to another's read-modify-write.
    writes: tokio::sync::Mutex<()>,
}

impl Acls {
    /// Loads the stored bindings. With `enabled` false (no authorizer configured, Kafka's
    /// default) every request is allowed and the ACL APIs answer SECURITY_DISABLED.
    pub async fn open(
        store: Arc<dyn AclStore>,
        settings: AuthorizerSettings,
        enabled: bool,
    ) -> Result<Self, AclStoreError> {
        let bindings = store.load().await?;
        Ok(Self {
            store,
            settings: Arc::new(settings),
            enabled,
            current: RwLock::new(Arc::new(bindings.into_iter().collect())),
            writes: tokio::sync::Mutex::new(()),
        })
    }

    /// Whether the authorizer is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// What `principal` connected from `host` may do, as of now.
    pub fn access(&self, principal: &str, host: &str) -> Access {
        self.access_of(Some(Arc::from(principal)), || host.to_string())
    }

    /// As [`Acls::access`] for a connection: `principal` `None` is `User:ANONYMOUS`, and the
    /// host is only written out when the authorizer is on (this runs for every request).
    pub fn access_of(&self, principal: Option<Arc<str>>, host: impl FnOnce() -> String) -> Access {
        let bindings = self.enabled.then(|| self.current.read().clone());
        let host = if bindings.is_some() {
            host()
        } else {
            String::new()
        };
        Access {
            bindings,
            settings: self.settings.clone(),
            principal,
            host,
        }
    }

    /// The bindings `filter` selects.
    pub fn describe(&self, filter: &AclFilter) -> Vec<AclBinding> {
        let current = self.current.read().clone();
        current
            .iter()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect()
    }

    /// Adds `bindings` (each already validated; present ones are kept once). Each is answered:
    /// `false` when the store is full.
    pub async fn create(&self, bindings: &[AclBinding]) -> Result<Vec<bool>, AclStoreError> {
        let _write = self.writes.lock().await;
        let added = Mutex::new(Vec::new());
        let stored = self
            .store
            .update(&|set: &mut BTreeSet<AclBinding>| {
                let outcome = bindings
                    .iter()
                    .map(|b| set.contains(b) || (set.len() < MAX_BINDINGS && set.insert(b.clone())))
                    .collect();
                *added.lock() = outcome;
            })
            .await?;
        self.install(stored);
        Ok(added.into_inner())
    }

    /// Deletes what each filter selects; for each filter, the bindings it deleted.
    pub async fn delete(
        &self,
        filters: &[AclFilter],
    ) -> Result<Vec<Vec<AclBinding>>, AclStoreError> {
        let _write = self.writes.lock().await;
        let deleted = Mutex::new(Vec::new());
        let stored = self
            .store
            .update(&|set: &mut BTreeSet<AclBinding>| {
                let per_filter: Vec<Vec<AclBinding>> = filters
                    .iter()
                    .map(|f| set.iter().filter(|b| f.matches(b)).cloned().collect())
                    .collect();
                set.retain(|b| !filters.iter().any(|f| f.matches(b)));
                *deleted.lock() = per_filter;
            })
            .await?;
        self.install(stored);
        Ok(deleted.into_inner())
    }

    /// Rereads the store (a cluster's other brokers change it).
    pub async fn refresh(&self) -> Result<(), AclStoreError> {
        let stored = self.store.load().await?;
        self.install(stored);
        Ok(())
    }

    fn install(&self, bindings: BTreeSet<AclBinding>) {
        let bindings: Vec<AclBinding> = bindings.into_iter().collect();
        let mut current = self.current.write();
        if **current != bindings {
            *current = Arc::new(bindings);
        }
    }
}

/// What one client may do: the bindings of the moment it asked, its principal and address.
#[derive(Clone, Debug)]
pub struct Access {
    /// `None` when the authorizer is off: everything is allowed.
    bindings: Option<Arc<Vec<AclBinding>>>,
    settings: Arc<AuthorizerSettings>,
    /// `None`: `User:ANONYMOUS`.
    principal: Option<Arc<str>>,
    host: String,
}

impl Access {
    /// Access with no authorizer (everything allowed), for callers that serve no client.
    pub fn unrestricted() -> Self {
        Self {
            bindings: None,
            settings: Arc::default(),
            principal: None,
            host: String::new(),
        }
    }

    /// Whether the authorizer is on.
    pub fn enforced(&self) -> bool {
        self.bindings.is_some()
    }

    /// The client's principal (`User:<name>`).
    pub fn principal(&self) -> &str {
        self.principal.as_deref().unwrap_or(ANONYMOUS)
    }

    /// Whether the client is a super user.
    pub fn is_super_user(&self) -> bool {
        let principal = self.principal();
        self.settings.super_users.iter().any(|u| u == principal)
    }

    /// Whether the client may do `operation` on `name` of `resource_type`.
    pub fn allows(&self, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        let Some(bindings) = &self.bindings else {
            return true;
        };
        authorize(
            bindings.iter(),
            &self.settings,
            Requester {
                principal: self.principal(),
                host: &self.host,
            },
            operation,
            resource_type,
            name,
        )
    }

    /// Whether the client may do `operation` on the cluster.
    pub fn allows_cluster(&self, operation: Operation) -> bool {
        self.allows(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Whether some ACL allows the client to `operation` some resource of `resource_type`
    /// (Kafka's `authorizeByResourceType`, used for an idempotent producer without
    /// IDEMPOTENT_WRITE on the cluster: WRITE on any topic will do). A DENY of every name
    /// (literal `*`) for the client wins.
    pub fn allows_some(&self, operation: Operation, resource_type: ResourceType) -> bool {
        let Some(bindings) = &self.bindings else {
            return true;
        };
        if self.is_super_user() {
            return true;
        }
        let mine = |b: &&AclBinding| {
            self.names_me(b, resource_type)
                && (b.operation == operation || b.operation == Operation::All)
        };
        let denied_everywhere = bindings.iter().filter(mine).any(|b| {
            b.permission == Permission::Deny
                && b.name == WILDCARD
                && b.pattern == super::PatternType::Literal
        });
        let none_of_type = !bindings.iter().any(|b| b.resource_type == resource_type);
        !denied_everywhere
            && (bindings
                .iter()
                .filter(mine)
                .any(|b| b.permission == Permission::Allow)
                || (none_of_type && self.settings.allow_everyone_if_no_acl_found))
    }

    /// Whether the client may do `operation` on every resource of `resource_type`, those that
    /// do not exist yet included: a super user, or an ALLOW of every name (literal `*`) that
    /// implies `operation`, with no DENY of it for the client on any name. What cannot be
    /// granted resource by resource (one-sided READ of the whole HotCache arena) is granted
    /// only on this; it errs towards refusing (a DENY of one topic refuses the whole).
    pub fn allows_every(&self, operation: Operation, resource_type: ResourceType) -> bool {
        let Some(bindings) = &self.bindings else {
            return true;
        };
        if self.is_super_user() {
            return true;
        }
        let mine = |b: &&AclBinding| self.names_me(b, resource_type);
        let denied_somewhere = bindings.iter().filter(mine).any(|b| {
            b.permission == Permission::Deny
                && (b.operation == operation || b.operation == Operation::All)
        });
        let allowed_everywhere = bindings.iter().filter(mine).any(|b| {
            b.permission == Permission::Allow
                && b.name == WILDCARD
                && b.pattern == super::PatternType::Literal
                && super::implies(b.operation, operation)
        });
        allowed_everywhere && !denied_somewhere
    }

    /// Whether `binding` is about resources of `resource_type` and applies to this client
    /// (its principal or every user, its host or every host).
    fn names_me(&self, binding: &AclBinding, resource_type: ResourceType) -> bool {
        binding.resource_type == resource_type
            && (binding.principal == self.principal() || binding.principal == ANY_USER)
            && (binding.host == self.host || binding.host == WILDCARD)
    }
}
