//! The broker's own state survives kill -9: producer ids never repeat, committed offsets stay.

mod common;

use common::BrokerProcess;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};

fn init_producer(broker: &BrokerProcess, version: i16) -> (i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let response: InitProducerIdResponse =
        broker
            .connect()
            .call(ApiKey::InitProducerId, version, &request);
    assert_eq!(response.error_code, 0);
    (response.producer_id.0, response.producer_epoch)
}

#[test]
fn producer_ids_never_repeat_across_crashes() {
    let mut broker = BrokerProcess::start(&[]);
    let mut seen = Vec::new();
    for _round in 0..3 {
        for version in [0, 4] {
            let (id, epoch) = init_producer(&broker, version);
            assert_eq!(epoch, 0);
            assert!(!seen.contains(&id), "producer id {id} handed out twice");
            seen.push(id);
        }
        broker = broker.kill_and_restart(&[]);
    }
}

#[test]
fn epoch_bumps_keep_the_id_and_stale_epochs_are_refused() {
    let broker = BrokerProcess::start(&[]);
    let (id, epoch) = init_producer(&broker, 4);
    let bump = |epoch: i16| {
        let request = InitProducerIdRequest::default()
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch);
        let response: InitProducerIdResponse =
            broker.connect().call(ApiKey::InitProducerId, 4, &request);
        response
    };
    let bumped = bump(epoch);
    assert_eq!(
        (
            bumped.error_code,
            bumped.producer_id.0,
            bumped.producer_epoch
        ),
        (0, id, 1)
    );
    let stale = bump(epoch);
    assert_eq!(
        stale.error_code,
        kafka_protocol::ResponseError::InvalidProducerEpoch.code()
    );
}

#[test]
fn transactional_producers_get_a_clear_error() {
    let broker = BrokerProcess::start(&[]);
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(kafka_protocol::messages::TransactionalId(
            kafka_protocol::protocol::StrBytes::from_static_str("tx-1"),
        )))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let response: InitProducerIdResponse =
        broker.connect().call(ApiKey::InitProducerId, 4, &request);
    assert_eq!(
        response.error_code,
        kafka_protocol::ResponseError::TransactionalIdAuthorizationFailed.code()
    );
}

/// Produces one idempotent batch to `idem`/0 and returns (error code, base offset).
fn produce_sequence(broker: &BrokerProcess, id: i64, epoch: i16, sequence: i32) -> (i16, i64) {
    use bytes::Bytes;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let batch = common::idempotent_batch(
        5,
        kafka_protocol::records::Compression::None,
        id,
        epoch,
        sequence,
    );
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("idem")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch)))])]);
    let response: ProduceResponse = broker.connect().call(ApiKey::Produce, 9, &request);
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

#[test]
fn retried_batches_are_answered_with_their_first_offsets_even_after_a_crash() {
    use kafka_protocol::ResponseError;
    let mut broker = BrokerProcess::start(&[]);
    let (id, epoch) = init_producer(&broker, 4);
    assert_eq!(produce_sequence(&broker, id, epoch, 0), (0, 0));
    assert_eq!(produce_sequence(&broker, id, epoch, 5), (0, 5));
    // A retry of the last batch: same offsets, nothing appended.
    assert_eq!(produce_sequence(&broker, id, epoch, 5), (0, 5));
    // A gap.
    assert_eq!(
        produce_sequence(&broker, id, epoch, 20).0,
        ResponseError::OutOfOrderSequenceNumber.code()
    );
    // Producer state is rebuilt from storage after kill -9.
    broker = broker.kill_and_restart(&[]);
    assert_eq!(
        produce_sequence(&broker, id, epoch, 5),
        (0, 5),
        "duplicate after restart"
    );
    assert_eq!(produce_sequence(&broker, id, epoch, 10), (0, 10));
    assert_eq!(
        produce_sequence(&broker, id, epoch - 1, 15).0,
        ResponseError::InvalidProducerEpoch.code()
    );
}
