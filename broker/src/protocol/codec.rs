//! Request decoding and response encoding around kafka-protocol's message types.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use thiserror::Error;

use super::versions;

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    /// Which API.
    pub api_key: ApiKey,
    /// Which version of it.
    pub version: i16,
    /// Echoed in the response.
    pub correlation_id: i32,
    /// The client's self-description, for logs.
    pub client_id: Option<String>,
    /// The message.
    pub body: RequestKind,
}

/// A request that cannot be served; the connection answers what it can and may close.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Shorter than the fixed header fields.
    #[error("frame of {0} bytes is too short for a request header")]
    Short(usize),
    /// API key not known to the protocol.
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    /// Known API, version not served.
    #[error("unsupported version {version} of {api:?}")]
    UnsupportedVersion {
        /// The API.
        api: ApiKey,
        /// The version asked for.
        version: i16,
        /// To answer ApiVersions, which must reply even then.
        correlation_id: i32,
    },
    /// The bytes do not decode as that API and version.
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        /// The API.
        api: ApiKey,
        /// The version.
        version: i16,
        /// The decoder's complaint.
        reason: String,
    },
    /// A response could not be encoded (a bug, reported rather than panicking).
    #[error("cannot encode {api:?} v{version} response: {reason}")]
    Encode {
        /// The API.
        api: ApiKey,
        /// The version.
        version: i16,
        /// The encoder's complaint.
        reason: String,
    },
}

/// Decodes one request frame (without its length prefix).
pub fn decode_request(mut frame: Bytes) -> Result<Request, ProtocolError> {
    if frame.len() < 8 {
        return Err(ProtocolError::Short(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| ProtocolError::UnknownApi(raw_key))?;
    if !versions::is_supported(api_key, version) {
        return Err(ProtocolError::UnsupportedVersion {
            api: api_key,
            version,
            correlation_id,
        });
    }
    let malformed = |e: anyhow::Error| ProtocolError::Malformed {
        api: api_key,
        version,
        reason: e.to_string(),
    };
    let header = RequestHeader::decode(&mut frame, api_key.request_header_version(version))
        .map_err(malformed)?;
    let body = RequestKind::decode(api_key, &mut frame, version).map_err(malformed)?;
    if frame.has_remaining() {
        tracing::debug!(
            ?api_key,
            version,
            extra = frame.remaining(),
            "trailing bytes ignored"
        );
    }
    Ok(Request {
        api_key,
        version,
        correlation_id,
        client_id: header.client_id.map(|c| c.to_string()),
        body,
    })
}

/// Encodes a response frame body (the connection adds the length prefix).
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Bytes, ProtocolError> {
    let fail = |e: anyhow::Error| ProtocolError::Encode {
        api: api_key,
        version,
        reason: e.to_string(),
    };
    let mut buf = BytesMut::with_capacity(256);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, api_key.response_header_version(version))
        .map_err(fail)?;
    body.encode(&mut buf, version).map_err(fail)?;
    Ok(buf.freeze())
}
