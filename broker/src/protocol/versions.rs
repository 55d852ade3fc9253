//! The API versions this broker serves.
//!
//! Ranges are the intersection of what kafka-protocol 0.18 encodes and what the handlers
//! implement. Old versions stay advertised where librdkafka 2.0.x needs them to turn features
//! on (v2 records: Produce 3 / Fetch 4; zstd: Produce 7 / Fetch 10). Produce 13 and Fetch 13+
//! address topics by id only, so they stay off until fetch by topic id is built.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiKey;

/// `(api, min, max)` for every API served.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    // v0 is advertised because librdkafka's feature check asks for it, but refused when used
    // (it would carry raw SASL tokens outside Kafka frames): clients since Kafka 1.0 send v1.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // v0 carries no pattern type; clients that send v0 (librdkafka 2.0 sends up to v1) have v1.
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeCluster, 0, 2),
];

/// The served range of `api`, if it is served.
pub fn range_of(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|&(_, min, max)| (min, max))
}

/// True when `version` of `api` is served.
pub fn is_supported(api: ApiKey, version: i16) -> bool {
    range_of(api).is_some_and(|(min, max)| (min..=max).contains(&version))
}

/// The list sent in ApiVersions responses.
pub fn api_versions() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_advertised_range_is_one_the_codec_can_encode() {
        for &(key, min, max) in SUPPORTED {
            let codec = key.valid_versions();
            assert!(
                min >= codec.min && max <= codec.max,
                "{key:?} {min}..={max}"
            );
        }
    }

    #[test]
    fn librdkafka_feature_gates_are_open() {
        assert!(is_supported(ApiKey::Produce, 3) && is_supported(ApiKey::Fetch, 4));
        assert!(is_supported(ApiKey::Produce, 7) && is_supported(ApiKey::Fetch, 10));
        assert!(is_supported(ApiKey::ListOffsets, 1));
        assert!(!is_supported(ApiKey::Fetch, 13) && !is_supported(ApiKey::Produce, 13));
    }
}
