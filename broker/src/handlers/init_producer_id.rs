//! InitProducerId for idempotent producers (transactions are not supported).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use crate::broker::Broker;

/// Hands out a producer id and epoch, or bumps the epoch of the one the client names.
pub async fn handle(
    broker: &Broker,
    request: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let failed = |error: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if request.transactional_id.is_some_and(|id| !id.0.is_empty()) {
        tracing::info!("transactional producer refused: transactions are not supported");
        return failed(ResponseError::TransactionalIdAuthorizationFailed);
    }
    let current = (version >= 3 && request.producer_id.0 >= 0)
        .then_some((request.producer_id.0, request.producer_epoch));
    match broker.producer_ids.init(current).await {
        Ok((id, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Err(error) => failed(error),
    }
}
