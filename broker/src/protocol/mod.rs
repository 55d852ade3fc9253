//! The Kafka wire protocol: versions served, request decoding, response encoding.

pub mod codec;
pub mod versions;

pub use codec::{decode_request, encode_response, ProtocolError, Request};
