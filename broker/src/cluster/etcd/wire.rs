//! The JSON shapes of etcd's v3 HTTP gateway (`/v3/...`), as etcd 3.4 and later speak them.
//!
//! The gateway is gRPC's JSON mapping: keys and values are base64, 64-bit integers are strings,
//! and a field at its default value (0, false, empty) is left out of a response.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize};

/// A 64-bit integer as the gateway writes it: a JSON string (or, leniently, a number).
pub(crate) fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Text(String),
        Number(i64),
    }
    match Int::deserialize(d)? {
        Int::Number(n) => Ok(n),
        Int::Text(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

/// Bytes as the gateway writes them: base64.
fn base64_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    B64.decode(text).map_err(serde::de::Error::custom)
}

/// `bytes` in the gateway's encoding.
pub(crate) fn encode(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// The first key after every key that starts with `prefix` (etcd's `range_end` for a prefix).
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff (or empty): to the end of the key space.
    vec![0]
}

/// Every response's header.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Header {
    /// The store's revision when the request was served.
    #[serde(default, deserialize_with = "int64")]
    pub revision: i64,
}

/// A stored key, as the gateway returns it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct KeyValue {
    /// The key.
    #[serde(deserialize_with = "base64_bytes")]
    pub key: Vec<u8>,
    /// The value (empty when absent from the response).
    #[serde(default, deserialize_with = "base64_bytes")]
    pub value: Vec<u8>,
    /// Revision of the key's creation.
    #[serde(default, deserialize_with = "int64")]
    pub create_revision: i64,
    /// Revision of its last change.
    #[serde(default, deserialize_with = "int64")]
    pub mod_revision: i64,
    /// Number of changes since its creation (1 after the first put).
    #[serde(default, deserialize_with = "int64")]
    pub version: i64,
    /// Lease it is attached to (0: none).
    #[serde(default, deserialize_with = "int64")]
    pub lease: i64,
}

/// `/v3/kv/range` response.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RangeResponse {
    #[serde(default)]
    pub header: Header,
    #[serde(default)]
    pub kvs: Vec<KeyValue>,
}

/// `/v3/kv/put` and `/v3/kv/deleterange` responses.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WriteResponse {
    #[serde(default)]
    pub header: Header,
}

/// `/v3/kv/txn` response.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TxnResponse {
    #[serde(default)]
    pub header: Header,
    #[serde(default)]
    pub succeeded: bool,
    #[serde(default)]
    pub responses: Vec<OpResponse>,
}

/// One operation's response inside a transaction.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct OpResponse {
    #[serde(default)]
    pub response_range: Option<RangeResponse>,
}

/// `/v3/lease/grant` response.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LeaseGrantResponse {
    #[serde(rename = "ID", default, deserialize_with = "int64")]
    pub id: i64,
    #[serde(rename = "TTL", default, deserialize_with = "int64")]
    pub ttl: i64,
    #[serde(default)]
    pub error: String,
}

/// `/v3/lease/keepalive` response: the gateway streams one `{"result": ...}` per request.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct KeepAliveResponse {
    #[serde(default)]
    pub result: Option<KeepAliveResult>,
}

/// The lease's state after a keep-alive: a TTL of 0 (absent) means it no longer exists.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct KeepAliveResult {
    #[serde(rename = "TTL", default, deserialize_with = "int64")]
    pub ttl: i64,
}

/// An error body: `{"error", "message", "code"}` (the gRPC status).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub code: i32,
}

/// A comparison of a transaction, in the gateway's form.
#[derive(Debug, Serialize)]
pub(crate) struct CompareJson {
    pub target: &'static str,
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_end: Option<String>,
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mod_revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
}

/// An operation of a transaction, in the gateway's form.
#[derive(Debug, Serialize)]
pub(crate) enum OpJson {
    #[serde(rename = "request_put")]
    Put {
        key: String,
        value: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        lease: Option<String>,
    },
    #[serde(rename = "request_delete_range")]
    DeleteRange { key: String },
    #[serde(rename = "request_range")]
    Range { key: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_at_its_successor() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn defaults_left_out_of_a_response_read_as_zero() {
        let kv: KeyValue = serde_json::from_str(r#"{"key":"Zm9v","create_revision":"2"}"#).unwrap();
        assert_eq!(kv.key, b"foo");
        assert_eq!(kv.value, b"");
        assert_eq!((kv.create_revision, kv.mod_revision, kv.lease), (2, 0, 0));
        let txn: TxnResponse = serde_json::from_str(r#"{"header":{"revision":"7"}}"#).unwrap();
        assert!(!txn.succeeded);
        assert_eq!(txn.header.revision, 7);
        let alive: KeepAliveResponse = serde_json::from_str(r#"{"result":{"ID":"5"}}"#).unwrap();
        assert_eq!(alive.result.unwrap().ttl, 0);
    }

    #[test]
    fn a_transaction_op_is_written_as_the_gateway_reads_it() {
        let op = OpJson::Put {
            key: encode(b"k"),
            value: encode(b"v"),
            lease: Some("12".into()),
        };
        assert_eq!(
            serde_json::to_string(&op).unwrap(),
            r#"{"request_put":{"key":"aw==","value":"dg==","lease":"12"}}"#
        );
    }
}
