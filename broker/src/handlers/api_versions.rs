//! ApiVersions: the versions served, answered in the version asked.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseKind};
use kafka_protocol::ResponseError;

use crate::protocol::{encode_response, versions};

/// The normal answer. Tagged fields stay at their defaults, so none is written: librdkafka before
/// 2.2 mis-skips tagged fields and would fail to read a response that carries any.
pub fn handle() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(versions::api_versions())
}

/// The answer to a version this broker does not serve: UNSUPPORTED_VERSION with the served list,
/// encoded as v0 so that any client can read it and retry with a version it finds there.
pub fn unsupported_version(correlation_id: i32) -> Option<Bytes> {
    let body = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(versions::api_versions());
    encode_response(
        ApiKey::ApiVersions,
        0,
        correlation_id,
        &ResponseKind::ApiVersions(body),
    )
    .ok()
}
