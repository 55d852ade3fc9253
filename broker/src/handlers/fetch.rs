//! Fetch: durable batches from the hot cache (tailing reads) or from storage (catch-up reads),
//! with long polling woken by high-watermark advances.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use kafka_protocol::ResponseError;
use tokio::sync::watch;
use tokio::time::Instant;

use super::fetch_budget::Held;
use crate::broker::Broker;
use crate::log::partition::Partition;
use crate::log::service::{self, Read, ReadLimits};
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
    handle_held(broker, request, version, client_id).await.0
}

/// [`handle`], with the charge on the fetch memory budget that the response's records hold:
/// keep it until the response is written.
pub async fn handle_held(
    broker: &Broker,
    request: FetchRequest,
    version: i16,
    client_id: &str,
) -> (FetchResponse, Held) {
    let reads = broker.events.fetch_reads.client(client_id);
    let wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0)).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let asked = if version >= 3 {
        usize::try_from(request.max_bytes).unwrap_or(0)
    } else {
        usize::MAX
    };
    // The broker's cap applies whatever the client asks (Kafka's fetch.max.bytes).
    let max_bytes = asked.min(broker.config.fetch_max_bytes);
    let limits = Limits {
        max_bytes,
        deadline,
    };
    loop {
        // Subscribe before reading so an advance between the read and the wait is not missed.
        let mut watches = Vec::new();
        let (response, bytes, errors, held) =
            collect(broker, &reads, &request, limits, &mut watches).await;
        if bytes >= min_bytes || errors || Instant::now() >= deadline || watches.is_empty() {
            return (response, held);
        }
        // Release hot-cache pins and the memory budget while waiting.
        drop((response, held));
        let advanced = select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        if tokio::time::timeout_at(deadline, advanced).await.is_err() {
            let mut none = Vec::new();
            let (response, _, _, held) = collect(broker, &reads, &request, limits, &mut none).await;
            return (response, held);
        }
    }
}

/// What bounds one response.
#[derive(Clone, Copy)]
struct Limits {
    /// Record bytes, the request's and the broker's limits together.
    max_bytes: usize,
    /// Until when a read may wait for the memory budget.
    deadline: Instant,
}

/// Reads every requested partition once. Returns the response, the record bytes in it,
/// whether any partition had an error (answered at once, as Kafka does), and the budget held.
///
/// As in Kafka, `max_bytes` is exceeded only by the first batch of the first partition with
/// data (so a consumer always progresses); every later partition's data fits what is left.
async fn collect(
    broker: &Broker,
    reads: &ClientReads,
    request: &FetchRequest,
    limits: Limits,
    watches: &mut Vec<watch::Receiver<i64>>,
) -> (FetchResponse, usize, bool, Held) {
    let mut remaining = limits.max_bytes;
    let mut total = 0usize;
    let mut errors = false;
    let mut held = Held::default();
    let mut budget_spent = false;
    preload_cold(broker, request, limits.max_bytes);
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
                    let budget = Budget {
                        remaining: if budget_spent { 0 } else { remaining },
                        first: total == 0,
                        deadline: limits.deadline,
                    };
                    let (data, piece) =
                        read_partition(broker, reads, partition, fetch, budget).await;
                    budget_spent |= piece.is_none();
                    held.absorb(piece.unwrap_or_default());
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
        held,
    )
}

/// Starts loading, all at once, the stored data of the requested partitions that are not in
/// the hot cache (on object stores, where each costs a storage round trip that `collect`
/// would otherwise wait for one partition after another), up to the response's `max_bytes`.
fn preload_cold(broker: &Broker, request: &FetchRequest, max_bytes: usize) {
    if !broker.cold.loads_concurrently() {
        return;
    }
    let mut planned = 0usize;
    for wanted in &request.topics {
        let Some(topic) = broker.topics.get(wanted.topic.0.as_str()) else {
            continue;
        };
        for fetch in &wanted.partitions {
            let Some(partition) = topic.partition(fetch.partition) else {
                continue;
            };
            let offset = fetch.fetch_offset;
            let readable = offset >= partition.log_start() && offset < partition.high_watermark();
            if !readable || partition.locate_hot(&broker.cache, offset, 1).is_some() {
                continue;
            }
            let Some(chunk) = partition.stored_chunk(offset) else {
                continue;
            };
            let limit = usize::try_from(fetch.partition_max_bytes)
                .unwrap_or(0)
                .min(max_bytes - planned);
            if limit == 0 {
                return;
            }
            broker.cold.preload(partition, chunk, limit);
            planned += limit;
        }
    }
}

/// What one partition's read may take.
#[derive(Clone, Copy)]
struct Budget {
    /// Record bytes left in the response.
    remaining: usize,
    /// Nothing is in the response yet: the first batch may exceed `remaining`.
    first: bool,
    /// Until when to wait for the memory budget.
    deadline: Instant,
}

/// Reads one partition within `budget` through the log service; also returns the memory
/// budget its records hold, or `None` when the budget had nothing left for it (later
/// partitions then get nothing either).
async fn read_partition(
    broker: &Broker,
    reads: &ClientReads,
    partition: &Arc<Partition>,
    fetch: &FetchPartition,
    budget: Budget,
) -> (PartitionData, Option<Held>) {
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
    let limits = ReadLimits {
        max_bytes: budget
            .remaining
            .min(usize::try_from(fetch.partition_max_bytes).unwrap_or(0)),
        first: budget.first,
        deadline: budget.deadline,
    };
    match service::read(broker, reads, partition, fetch.fetch_offset, limits).await {
        Ok(Read::Records(records, held)) => {
            data.records = Some(records);
            (data, Some(held))
        }
        Ok(Read::NoBudget) => (data, None),
        Err(refusal) => {
            data.error_code = refusal.error.code();
            (data, Some(Held::default()))
        }
    }
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
