//! A small etcd v3 client over etcd's HTTP/JSON gateway (`/v3/kv/...`, `/v3/lease/...`).
//!
//! Why not the `etcd-client` crate: it builds its gRPC stubs with `protoc`, which would become a
//! build dependency of the broker for the handful of calls a cluster needs (ranges, puts,
//! transactions, leases). Every call here is one POST with a JSON body; etcd answers it with the
//! same semantics as the gRPC API.

mod wire;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

pub use wire::KeyValue;
use wire::{
    encode, prefix_end, CompareJson, ErrorBody, KeepAliveResponse, LeaseGrantResponse, OpJson,
    RangeResponse, TxnResponse, WriteResponse,
};

/// Largest etcd response read (etcd's own request limit is 1.5 MiB; a range over a prefix can
/// be larger, but the cluster's keys are few and small).
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// gRPC status "unavailable": no leader, leader changed, member stopping. Another endpoint
/// may answer.
const UNAVAILABLE: i32 = 14;

/// gRPC status "not found" (a lease that does not exist).
const NOT_FOUND: i32 = 5;

/// Why an etcd call failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EtcdError {
    /// No endpoint answered.
    #[error("etcd unreachable ({0})")]
    Unreachable(String),
    /// etcd refused the request.
    #[error("etcd error {code}: {message}")]
    Server {
        /// gRPC status code.
        code: i32,
        /// etcd's message.
        message: String,
    },
    /// The response could not be understood.
    #[error("unexpected etcd response: {0}")]
    BadResponse(String),
}

/// A condition of a transaction.
#[derive(Clone, Debug)]
pub enum Compare {
    /// The key's creation revision equals this (0: the key does not exist).
    CreateRevision(String, i64),
    /// The key's last modification revision equals this (0: the key does not exist).
    ModRevision(String, i64),
    /// The key's value equals this.
    Value(String, Vec<u8>),
    /// The key is attached to this lease.
    Lease(String, i64),
    /// No key that starts with this prefix was created or modified after this revision
    /// (deleting one does not count): what a snapshot read at that revision saw is still all
    /// there is, short of deletions.
    PrefixUnchangedSince(String, i64),
}

/// An operation of a transaction.
#[derive(Clone, Debug)]
pub enum Op {
    /// Put a value, attached to a lease if one is given.
    Put {
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
        /// Lease id, if any.
        lease: Option<i64>,
    },
    /// Delete a key.
    Delete(String),
    /// Read a key.
    Get(String),
}

/// What a transaction did.
#[derive(Clone, Debug, Default)]
pub struct TxnOutcome {
    /// Whether every comparison held (so the success branch ran).
    pub succeeded: bool,
    /// The store's revision after the transaction.
    pub revision: i64,
    /// The keys read by the branch that ran, in its order (one entry per `Get`).
    pub reads: Vec<Option<KeyValue>>,
}

/// An etcd cluster reached through its client URLs.
pub struct Etcd {
    http: reqwest::Client,
    endpoints: Vec<String>,
    /// The endpoint that answered last: tried first.
    preferred: AtomicUsize,
}

impl Etcd {
    /// A client of the etcd cluster at `endpoints` (`http://host:port`, one per member). Each
    /// request is given up after `timeout` on an endpoint, then tried on the next.
    pub fn new(endpoints: Vec<String>, timeout: Duration) -> Result<Self, EtcdError> {
        if endpoints.is_empty() {
            return Err(EtcdError::Unreachable("no endpoint given".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .no_proxy()
            .build()
            .map_err(|e| EtcdError::Unreachable(e.to_string()))?;
        Ok(Self {
            http,
            endpoints,
            preferred: AtomicUsize::new(0),
        })
    }

    /// The endpoints, as given.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// One key, and the store's revision.
    pub async fn get(&self, key: &str) -> Result<(Option<KeyValue>, i64), EtcdError> {
        let body = serde_json::json!({ "key": encode(key.as_bytes()) });
        let response: RangeResponse = self.call("/v3/kv/range", &body).await?;
        Ok((response.kvs.into_iter().next(), response.header.revision))
    }

    /// Every key that starts with `prefix`, in key order, and the store's revision.
    pub async fn get_prefix(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), EtcdError> {
        let body = serde_json::json!({
            "key": encode(prefix.as_bytes()),
            "range_end": encode(&prefix_end(prefix.as_bytes())),
        });
        let response: RangeResponse = self.call("/v3/kv/range", &body).await?;
        Ok((response.kvs, response.header.revision))
    }

    /// Puts a value (attached to `lease` if given); returns the new revision.
    pub async fn put(&self, key: &str, value: &[u8], lease: Option<i64>) -> Result<i64, EtcdError> {
        let mut body = serde_json::json!({
            "key": encode(key.as_bytes()),
            "value": encode(value),
        });
        if let Some(lease) = lease {
            body["lease"] = lease.to_string().into();
        }
        let response: WriteResponse = self.call("/v3/kv/put", &body).await?;
        Ok(response.header.revision)
    }

    /// Deletes a key (nothing happens if it does not exist).
    pub async fn delete(&self, key: &str) -> Result<(), EtcdError> {
        let body = serde_json::json!({ "key": encode(key.as_bytes()) });
        let _: WriteResponse = self.call("/v3/kv/deleterange", &body).await?;
        Ok(())
    }

    /// Runs `success` if every comparison holds, `failure` otherwise, atomically.
    pub async fn txn(
        &self,
        compare: &[Compare],
        success: &[Op],
        failure: &[Op],
    ) -> Result<TxnOutcome, EtcdError> {
        let body = serde_json::json!({
            "compare": compare.iter().map(compare_json).collect::<Vec<_>>(),
            "success": success.iter().map(op_json).collect::<Vec<_>>(),
            "failure": failure.iter().map(op_json).collect::<Vec<_>>(),
        });
        let response: TxnResponse = self.call("/v3/kv/txn", &body).await?;
        let reads = response
            .responses
            .into_iter()
            .filter_map(|r| r.response_range)
            .map(|r| r.kvs.into_iter().next())
            .collect();
        Ok(TxnOutcome {
            succeeded: response.succeeded,
            revision: response.header.revision,
            reads,
        })
    }

    /// Grants a lease of `ttl_s` seconds; returns its id and the TTL etcd granted (etcd raises
    /// a TTL below its minimum, which depends on its election timeout).
    pub async fn lease_grant(&self, ttl_s: i64) -> Result<(i64, i64), EtcdError> {
        let body = serde_json::json!({ "TTL": ttl_s.to_string() });
        let response: LeaseGrantResponse = self.call("/v3/lease/grant", &body).await?;
        if !response.error.is_empty() || response.id == 0 {
            return Err(EtcdError::BadResponse(format!(
                "lease grant: {}",
                response.error
            )));
        }
        Ok((response.id, response.ttl))
    }

    /// Renews a lease; returns its TTL from now, or `None` if it no longer exists (expired or
    /// revoked: everything attached to it is gone).
    pub async fn lease_keepalive(&self, id: i64) -> Result<Option<i64>, EtcdError> {
        let body = serde_json::json!({ "ID": id.to_string() });
        let response: KeepAliveResponse = self.call("/v3/lease/keepalive", &body).await?;
        Ok(response.result.map(|r| r.ttl).filter(|ttl| *ttl > 0))
    }

    /// Revokes a lease, deleting every key attached to it. A lease that is already gone is not
    /// an error.
    pub async fn lease_revoke(&self, id: i64) -> Result<(), EtcdError> {
        let body = serde_json::json!({ "ID": id.to_string() });
        match self.call::<WriteResponse>("/v3/lease/revoke", &body).await {
            Err(EtcdError::Server {
                code: NOT_FOUND, ..
            }) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// POSTs `body` to `path` on the preferred endpoint, then on each other one while they are
    /// unreachable or unavailable.
    async fn call<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, EtcdError> {
        let body = serde_json::to_vec(body).map_err(|e| EtcdError::BadResponse(e.to_string()))?;
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last_error = EtcdError::Unreachable("no endpoint tried".into());
        for i in 0..self.endpoints.len() {
            let index = (first + i) % self.endpoints.len();
            let url = format!("{}{}", self.endpoints[index], path);
            match self.post(&url, body.clone()).await {
                Ok(bytes) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return serde_json::from_slice(&bytes)
                        .map_err(|e| EtcdError::BadResponse(format!("{path}: {e}")));
                }
                Err(error @ EtcdError::Server { code, .. }) if code != UNAVAILABLE => {
                    return Err(error)
                }
                Err(error) => {
                    tracing::debug!(endpoint = %self.endpoints[index], %error, "etcd endpoint failed");
                    last_error = error;
                }
            }
        }
        Err(last_error)
    }

    /// One POST; the body of a 200 answer, or the error etcd reported.
    async fn post(&self, url: &str, body: Vec<u8>) -> Result<Vec<u8>, EtcdError> {
        let mut response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| EtcdError::Unreachable(format!("{url}: {e}")))?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| EtcdError::Unreachable(format!("{url}: {e}")))?
        {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(EtcdError::BadResponse(format!(
                    "{url}: response over {MAX_RESPONSE_BYTES} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return Ok(bytes);
        }
        let error: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
        Err(EtcdError::Server {
            code: if error.code == 0 {
                UNAVAILABLE
            } else {
                error.code
            },
            message: if error.message.is_empty() {
                format!("HTTP {status}")
            } else {
                error.message
            },
        })
    }
}

fn compare_json(compare: &Compare) -> CompareJson {
    let (target, key) = match compare {
        Compare::CreateRevision(key, _) => ("CREATE", key),
        Compare::ModRevision(key, _) => ("MOD", key),
        Compare::Value(key, _) => ("VALUE", key),
        Compare::Lease(key, _) => ("LEASE", key),
        Compare::PrefixUnchangedSince(prefix, _) => ("MOD", prefix),
    };
    let (result, range_end) = match compare {
        // etcd compares every key in [key, range_end); a range with no key holds.
        Compare::PrefixUnchangedSince(prefix, _) => {
            ("LESS", Some(encode(&prefix_end(prefix.as_bytes()))))
        }
        _ => ("EQUAL", None),
    };
    CompareJson {
        target,
        key: encode(key.as_bytes()),
        range_end,
        result,
        create_revision: match compare {
            Compare::CreateRevision(_, rev) => Some(rev.to_string()),
            _ => None,
        },
        mod_revision: match compare {
            Compare::ModRevision(_, rev) => Some(rev.to_string()),
            Compare::PrefixUnchangedSince(_, rev) => Some(rev.saturating_add(1).to_string()),
            _ => None,
        },
        value: match compare {
            Compare::Value(_, value) => Some(encode(value)),
            _ => None,
        },
        lease: match compare {
            Compare::Lease(_, lease) => Some(lease.to_string()),
            _ => None,
        },
    }
}

fn op_json(op: &Op) -> OpJson {
    match op {
        Op::Put { key, value, lease } => OpJson::Put {
            key: encode(key.as_bytes()),
            value: encode(value),
            lease: lease.map(|l| l.to_string()),
        },
        Op::Delete(key) => OpJson::DeleteRange {
            key: encode(key.as_bytes()),
        },
        Op::Get(key) => OpJson::Range {
            key: encode(key.as_bytes()),
        },
    }
}
