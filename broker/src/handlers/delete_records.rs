//! DeleteRecords: moves partitions' log start offsets forward (answered once durable).

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;

use crate::broker::Broker;

/// Offset meaning "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

/// Deletes the records before each requested offset.
pub async fn handle(broker: &Broker, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for wanted in request.topics {
        let topic = broker.topics.get(wanted.name.0.as_str());
        let mut partitions = Vec::with_capacity(wanted.partitions.len());
        for query in wanted.partitions {
            let result =
                DeleteRecordsPartitionResult::default().with_partition_index(query.partition_index);
            let partition = topic
                .as_ref()
                .and_then(|t| t.partition(query.partition_index));
            let Some(partition) = partition else {
                partitions.push(
                    result
                        .with_low_watermark(-1)
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                );
                continue;
            };
            let high_watermark = partition.high_watermark();
            let offset = match query.offset {
                HIGH_WATERMARK => high_watermark,
                o if o < 0 || o > high_watermark => {
                    partitions.push(
                        result
                            .with_low_watermark(-1)
                            .with_error_code(ResponseError::OffsetOutOfRange.code()),
                    );
                    continue;
                }
                o => o,
            };
            let result = if offset <= partition.log_start() {
                result.with_low_watermark(partition.log_start())
            } else {
                match broker.catalog.truncate(partition.key(), offset).await {
                    Ok(()) => {
                        partition.truncate(offset);
                        tracing::info!(topic = %wanted.name.0, partition = query.partition_index, offset, "records deleted");
                        result.with_low_watermark(partition.log_start())
                    }
                    Err(error) => {
                        tracing::warn!(%error, "DeleteRecords could not be made durable");
                        result
                            .with_low_watermark(-1)
                            .with_error_code(ResponseError::KafkaStorageError.code())
                    }
                }
            };
            partitions.push(result);
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(wanted.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
