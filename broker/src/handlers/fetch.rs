//! Fetch: durable batches from the hot cache (tailing reads) or from storage (catch-up reads),
//! with long polling woken by high-watermark advances.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::select_all;
use hotcache::{HotSlice, ReadOutcome};
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use kafka_protocol::ResponseError;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::broker::Broker;
use crate::log::partition::Partition;
use crate::metrics::ClientReads;

/// Longest long-poll wait honoured, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Answers a fetch, waiting up to `max_wait_ms` for `min_bytes` to be available.
pub async fn handle(
    broker: &Broker,
    request: FetchRequest,
    version: i16,
    client_id: &str,
) -> FetchResponse {
    let reads = broker.events.fetch_reads.client(client_id);
    let wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0)).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let max_bytes = if version >= 3 {
        usize::try_from(request.max_bytes).unwrap_or(0)
    } else {
        usize::MAX
    };
    loop {
        // Subscribe before reading so an advance between the read and the wait is not missed.
        let mut watches = Vec::new();
        let (response, bytes, errors) =
            collect(broker, &reads, &request, max_bytes, &mut watches).await;
        if bytes >= min_bytes || errors || Instant::now() >= deadline || watches.is_empty() {
            return response;
        }
        drop(response); // release hot-cache pins while waiting
        let advanced = select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        if tokio::time::timeout_at(deadline, advanced).await.is_err() {
            let mut none = Vec::new();
            return collect(broker, &reads, &request, max_bytes, &mut none)
                .await
                .0;
        }
    }
}

/// Reads every requested partition once. Returns the response, the record bytes in it, and
/// whether any partition had an error (answered at once, as Kafka does).
async fn collect(
    broker: &Broker,
    reads: &ClientReads,
    request: &FetchRequest,
    max_bytes: usize,
    watches: &mut Vec<watch::Receiver<i64>>,
) -> (FetchResponse, usize, bool) {
    let mut remaining = max_bytes;
    let mut total = 0usize;
    let mut errors = false;
    let mut topics = Vec::with_capacity(request.topics.len());
    for wanted in &request.topics {
        let topic = broker.topics.get(wanted.topic.0.as_str());
        let mut partitions = Vec::with_capacity(wanted.partitions.len());
        for fetch in &wanted.partitions {
            let partition = topic.as_ref().and_then(|t| t.partition(fetch.partition));
            let data = match partition {
                None => {
                    errors = true;
                    error_data(fetch.partition, ResponseError::UnknownTopicOrPartition)
                }
                Some(partition) => {
                    watches.push(partition.subscribe());
                    let data = read_partition(broker, reads, partition, fetch, remaining).await;
                    let len = data.records.as_ref().map_or(0, Bytes::len);
                    errors |= data.error_code != 0;
                    total += len;
                    remaining = remaining.saturating_sub(len);
                    data
                }
            };
            partitions.push(data);
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(wanted.topic.clone())
                .with_partitions(partitions),
        );
    }
    (
        FetchResponse::default().with_responses(topics),
        total,
        errors,
    )
}

async fn read_partition(
    broker: &Broker,
    reads: &ClientReads,
    partition: &Arc<Partition>,
    fetch: &FetchPartition,
    budget: usize,
) -> PartitionData {
    let high_watermark = partition.high_watermark();
    let log_start = partition.log_start();
    let mut data = PartitionData::default()
        .with_partition_index(fetch.partition)
        .with_high_watermark(high_watermark)
        .with_last_stable_offset(high_watermark)
        .with_log_start_offset(log_start)
        .with_aborted_transactions(Some(Vec::new()))
        .with_preferred_read_replica(BrokerId(-1))
        .with_records(Some(Bytes::new()));
    let offset = fetch.fetch_offset;
    if offset < log_start || offset > high_watermark {
        data.error_code = ResponseError::OffsetOutOfRange.code();
        return data;
    }
    let limit = budget.min(usize::try_from(fetch.partition_max_bytes).unwrap_or(0));
    if offset == high_watermark || limit == 0 {
        return data;
    }
    match partition.read_hot(&broker.cache, offset, limit) {
        ReadOutcome::Hit(slices) => {
            reads.hot();
            data.records = Some(join(slices));
        }
        ReadOutcome::Miss => match partition.stored_chunk(offset) {
            Some(chunk) => {
                reads.cold();
                match broker.cold.read(partition, chunk, offset, limit).await {
                    Ok(bytes) => data.records = Some(bytes),
                    Err(error) => {
                        broker.events.cold_read_errors.inc();
                        tracing::warn!(%error, offset, "cold read failed");
                        data.error_code = ResponseError::KafkaStorageError.code();
                    }
                }
            }
            None => {
                tracing::warn!(offset, high_watermark, "durable offset found nowhere");
                data.error_code = ResponseError::KafkaStorageError.code();
            }
        },
    }
    data
}

/// One slice is handed out without copying; several are joined into one buffer.
fn join(mut slices: Vec<HotSlice>) -> Bytes {
    if slices.len() == 1 {
        return Bytes::from_owner(slices.remove(0));
    }
    let mut buf = BytesMut::with_capacity(slices.iter().map(|s| s.len()).sum());
    for slice in &slices {
        buf.extend_from_slice(slice);
    }
    buf.freeze()
}

fn error_data(partition: i32, error: ResponseError) -> PartitionData {
    PartitionData::default()
        .with_partition_index(partition)
        .with_error_code(error.code())
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica(BrokerId(-1))
        .with_records(Some(Bytes::new()))
}
