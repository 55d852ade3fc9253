//! Access control lists as Kafka defines them (KIP-11, KIP-290 prefixed patterns) and the
//! decision of its `AclAuthorizer`: who may do what to which resource. Pure: where the ACLs are
//! kept and which request needs which operation are the callers' business.

use serde::{Deserialize, Serialize};

pub mod registry;
pub mod store;

pub use registry::{Access, Acls};

/// A resource type (Kafka's codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ResourceType {
    /// Filters only: any type.
    Any,
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
    /// The cluster (name `kafka-cluster`).
    Cluster,
    /// A transactional id.
    TransactionalId,
    /// A delegation token.
    DelegationToken,
    /// A user (SCRAM credentials).
    User,
}

/// How a binding's name is matched (Kafka's codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PatternType {
    /// Filters only: literal or prefixed, with exactly the filter's name.
    Any,
    /// Filters only: every binding that applies to the filter's name.
    Match,
    /// The name itself (`*`: every resource of the type).
    Literal,
    /// Every name that starts with it.
    Prefixed,
}

/// An operation (Kafka's codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Operation {
    /// Filters only: any operation.
    Any,
    /// Every operation.
    All,
    /// Read (fetch, commit offsets, join a group).
    Read,
    /// Write (produce).
    Write,
    /// Create (topics).
    Create,
    /// Delete (topics, records, groups).
    Delete,
    /// Alter (partitions, ACLs, SCRAM credentials).
    Alter,
    /// Describe (metadata, offsets, groups).
    Describe,
    /// Broker-to-broker requests.
    ClusterAction,
    /// Describe configs.
    DescribeConfigs,
    /// Alter configs.
    AlterConfigs,
    /// Idempotent produce (InitProducerId without a transactional id).
    IdempotentWrite,
    /// Create delegation tokens.
    CreateTokens,
    /// Describe delegation tokens.
    DescribeTokens,
}

/// Allow or deny (Kafka's codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// Filters only: either.
    Any,
    /// Denies, whatever else allows.
    Deny,
    /// Allows, unless something denies.
    Allow,
}

/// A code that is not one of the type's values, or `UNKNOWN` (0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} code {code}")]
pub struct UnknownCode {
    /// The field.
    pub what: &'static str,
    /// The code received.
    pub code: i8,
}

macro_rules! kafka_codes {
    ($type:ident, $what:literal, $($code:literal => $variant:ident),+ $(,)?) => {
        impl TryFrom<i8> for $type {
            type Error = UnknownCode;
            fn try_from(code: i8) -> Result<Self, UnknownCode> {
                match code {
                    $($code => Ok(Self::$variant),)+
                    _ => Err(UnknownCode { what: $what, code }),
                }
            }
        }
        impl From<$type> for i8 {
            fn from(value: $type) -> i8 {
                match value {
                    $($type::$variant => $code,)+
                }
            }
        }
    };
}

kafka_codes!(ResourceType, "resource type",
    1 => Any, 2 => Topic, 3 => Group, 4 => Cluster, 5 => TransactionalId,
    6 => DelegationToken, 7 => User);
kafka_codes!(PatternType, "pattern type", 1 => Any, 2 => Match, 3 => Literal, 4 => Prefixed);
kafka_codes!(Operation, "operation",
    1 => Any, 2 => All, 3 => Read, 4 => Write, 5 => Create, 6 => Delete, 7 => Alter,
    8 => Describe, 9 => ClusterAction, 10 => DescribeConfigs, 11 => AlterConfigs,
    12 => IdempotentWrite, 13 => CreateTokens, 14 => DescribeTokens);
kafka_codes!(Permission, "permission type", 1 => Any, 2 => Deny, 3 => Allow);

/// The literal name that stands for every resource of a type, and the principal and host that
/// stand for every principal and host.
pub const WILDCARD: &str = "*";
/// The principal matching every user.
pub const ANY_USER: &str = "User:*";

/// One ACL: `principal` from `host` is `permission`ed `operation` on the resources of
/// `resource_type` whose name matches `name` by `pattern`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    /// The resource type (never `Any`).
    pub resource_type: ResourceType,
    /// The resource name or prefix.
    pub name: String,
    /// Literal or prefixed.
    pub pattern: PatternType,
    /// `User:<name>` or `User:*`.
    pub principal: String,
    /// A client address, or `*`.
    pub host: String,
    /// The operation (never `Any`).
    pub operation: Operation,
    /// Allow or deny (never `Any`).
    pub permission: Permission,
}

/// Why a binding cannot be stored (Kafka answers `INVALID_REQUEST`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBinding {
    /// `Any`/`Match` are for filters only.
    #[error("{0} is only valid in a filter")]
    FilterOnly(&'static str),
    /// An empty resource name.
    #[error("the resource name is empty")]
    EmptyName,
    /// A principal that is not `<type>:<name>`.
    #[error("principal {0:?} is not of the form User:<name>")]
    Principal(String),
    /// The cluster resource has one name.
    #[error("the cluster resource is named kafka-cluster (literal), not {0:?}")]
    ClusterName(String),
}

/// The cluster resource's name.
pub const CLUSTER_NAME: &str = "kafka-cluster";

impl AclBinding {
    /// Checks what CreateAcls must refuse.
    pub fn validate(&self) -> Result<(), InvalidBinding> {
        if self.resource_type == ResourceType::Any {
            return Err(InvalidBinding::FilterOnly("resource type ANY"));
        }
        if matches!(self.pattern, PatternType::Any | PatternType::Match) {
            return Err(InvalidBinding::FilterOnly("pattern type ANY/MATCH"));
        }
        if self.operation == Operation::Any {
            return Err(InvalidBinding::FilterOnly("operation ANY"));
        }
        if self.permission == Permission::Any {
            return Err(InvalidBinding::FilterOnly("permission ANY"));
        }
        if self.name.is_empty() {
            return Err(InvalidBinding::EmptyName);
        }
        if !self
            .principal
            .split_once(':')
            .is_some_and(|(kind, name)| !kind.is_empty() && !name.is_empty())
        {
            return Err(InvalidBinding::Principal(self.principal.clone()));
        }
        if self.resource_type == ResourceType::Cluster
            && (self.name != CLUSTER_NAME || self.pattern != PatternType::Literal)
        {
            return Err(InvalidBinding::ClusterName(self.name.clone()));
        }
        Ok(())
    }

    /// Whether this binding applies to the resource `name` of its type.
    fn applies_to(&self, name: &str) -> bool {
        match self.pattern {
            PatternType::Literal => self.name == name || self.name == WILDCARD,
            PatternType::Prefixed => name.starts_with(self.name.as_str()),
            PatternType::Any | PatternType::Match => false,
        }
    }
}

/// What DescribeAcls and DeleteAcls select: each `None` or `Any` matches everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclFilter {
    /// A type, or `Any`.
    pub resource_type: ResourceType,
    /// A name, or `None` for any.
    pub name: Option<String>,
    /// `Literal`/`Prefixed` (exactly), `Any` (either, same name), `Match` (what applies).
    pub pattern: PatternType,
    /// A principal, or `None` for any.
    pub principal: Option<String>,
    /// A host, or `None` for any.
    pub host: Option<String>,
    /// An operation, or `Any`.
    pub operation: Operation,
    /// A permission, or `Any`.
    pub permission: Permission,
}

impl AclFilter {
    /// Whether `binding` is selected.
    pub fn matches(&self, binding: &AclBinding) -> bool {
        let resource_type =
            self.resource_type == ResourceType::Any || self.resource_type == binding.resource_type;
        let name = match (&self.name, self.pattern) {
            (None, PatternType::Any | PatternType::Match) => true,
            (None, pattern) => pattern == binding.pattern,
            (Some(name), PatternType::Any) => *name == binding.name,
            (Some(name), PatternType::Match) => binding.applies_to(name),
            (Some(name), pattern) => pattern == binding.pattern && *name == binding.name,
        };
        let principal = self
            .principal
            .as_ref()
            .is_none_or(|p| *p == binding.principal);
        let host = self.host.as_ref().is_none_or(|h| *h == binding.host);
        let operation = self.operation == Operation::Any || self.operation == binding.operation;
        let permission =
            self.permission == Permission::Any || self.permission == binding.permission;
        resource_type && name && principal && host && operation && permission
    }
}

/// Who is asking: an authenticated principal (`User:<name>`, or `User:ANONYMOUS`) from an
/// address.
#[derive(Clone, Copy, Debug)]
pub struct Requester<'a> {
    /// `User:<name>`.
    pub principal: &'a str,
    /// The client's IP address, as text.
    pub host: &'a str,
}

/// The authorizer's settings (Kafka's `super.users`, `allow.everyone.if.no.acl.found`).
#[derive(Clone, Debug, Default)]
pub struct AuthorizerSettings {
    /// Principals allowed everything.
    pub super_users: Vec<String>,
    /// Whether a resource no ACL applies to is open to everyone (Kafka's default: false).
    pub allow_everyone_if_no_acl_found: bool,
}

/// Whether `requester` may do `operation` on the resource `name` of `resource_type`, given
/// `bindings` (all of them, or at least every one of that type): Kafka's `AclAuthorizer`.
/// Super users may do anything; a matching DENY wins over any ALLOW; READ, WRITE, DELETE and
/// ALTER imply DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS, ALL implies everything; with
/// no binding applying to the resource at all, `allow_everyone_if_no_acl_found` decides.
pub fn authorize<'a>(
    bindings: impl IntoIterator<Item = &'a AclBinding>,
    settings: &AuthorizerSettings,
    requester: Requester<'_>,
    operation: Operation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    if settings
        .super_users
        .iter()
        .any(|u| u == requester.principal)
    {
        return true;
    }
    let mut any_applies = false;
    let mut allowed = false;
    for binding in bindings {
        if binding.resource_type != resource_type || !binding.applies_to(name) {
            continue;
        }
        any_applies = true;
        let who = binding.principal == requester.principal || binding.principal == ANY_USER;
        let from = binding.host == requester.host || binding.host == WILDCARD;
        if !(who && from) {
            continue;
        }
        match binding.permission {
            // A DENY names the operation itself (or ALL): denying DESCRIBE does not deny READ.
            Permission::Deny
                if binding.operation == operation || binding.operation == Operation::All =>
            {
                return false;
            }
            Permission::Allow if implies(binding.operation, operation) => allowed = true,
            _ => {}
        }
    }
    allowed || (!any_applies && settings.allow_everyone_if_no_acl_found)
}

/// Whether an ALLOW of `granted` allows `wanted`.
pub(super) fn implies(granted: Operation, wanted: Operation) -> bool {
    use Operation::*;
    granted == wanted
        || granted == All
        || (wanted == Describe && matches!(granted, Read | Write | Delete | Alter))
        || (wanted == DescribeConfigs && granted == AlterConfigs)
}

#[cfg(test)]
mod tests;
