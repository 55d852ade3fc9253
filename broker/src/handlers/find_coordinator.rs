//! FindCoordinator: this broker coordinates every group; transactions are not supported.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;

/// Kafka's coordinator key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Where clients should connect for coordination: this broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorAddress {
    /// The broker's node id.
    pub node_id: i32,
    /// Its advertised host.
    pub host: String,
    /// Its advertised port.
    pub port: i32,
}

/// Answers a FindCoordinator request: one key (v0-3) or a batch of keys (v4+).
pub fn handle(
    this: &CoordinatorAddress,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    handle_with(&|_| Some(this.clone()), request, version)
}

/// [`handle`] where each group's coordinator is found by `resolve` (a cluster: the leader of
/// the group's shard; `None` while it has none).
pub fn handle_with(
    resolve: &dyn Fn(&str) -> Option<CoordinatorAddress>,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    // v0 has no key type: it always asks for a group coordinator.
    let key_type = if version >= 1 {
        request.key_type
    } else {
        KEY_TYPE_GROUP
    };
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let mut coordinator = Coordinator::default();
                match lookup(key_type, &key, resolve) {
                    Ok(this) => {
                        coordinator.node_id = BrokerId(this.node_id);
                        coordinator.host = str_bytes(this.host);
                        coordinator.port = this.port;
                    }
                    Err((error, message)) => {
                        coordinator.node_id = BrokerId(-1);
                        coordinator.port = -1;
                        coordinator.error_code = error.code();
                        coordinator.error_message = Some(str_bytes(message));
                    }
                }
                coordinator.with_key(key)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let mut response = FindCoordinatorResponse::default();
    match lookup(key_type, &request.key, resolve) {
        Ok(this) => {
            response.node_id = BrokerId(this.node_id);
            response.host = str_bytes(this.host);
            response.port = this.port;
        }
        Err((error, message)) => {
            tracing::debug!(key = %request.key, key_type, %error, "no coordinator");
            response.error_code = error.code();
            response.node_id = BrokerId(-1);
            response.port = -1;
            if version >= 1 {
                response.error_message = Some(str_bytes(message));
            }
        }
    }
    response
}

fn lookup(
    key_type: i8,
    key: &str,
    resolve: &dyn Fn(&str) -> Option<CoordinatorAddress>,
) -> Result<CoordinatorAddress, (ResponseError, &'static str)> {
    match key_type {
        KEY_TYPE_GROUP => resolve(key).ok_or((
            ResponseError::CoordinatorNotAvailable,
            "the group's shard has no leader yet",
        )),
        KEY_TYPE_TRANSACTION => Err((
            // Fatal in clients (unlike COORDINATOR_NOT_AVAILABLE, which they retry until their
            // own timeout), so a transactional producer fails at once with a clear error.
            ResponseError::TransactionalIdAuthorizationFailed,
            "transactions are not supported by this broker",
        )),
        _ => Err((
            ResponseError::InvalidRequest,
            "unknown coordinator key type",
        )),
    }
}
