//! DescribeConfigs for topics (and the few broker settings clients ask about).

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::ResponseError;

use std::collections::BTreeMap;

use super::{broker_configs, str_bytes};
use crate::broker::Broker;
use crate::config::Config;
use crate::log::topic_config;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Kafka's config sources.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// Describes each resource asked for, from this broker's topics.
pub fn handle(broker: &Broker, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let overrides = |name: &str| broker.topics.get(name).map(|t| t.configs.clone());
    handle_with(&broker.config, &overrides, request)
}

/// Describes each resource asked for; `overrides` gives a topic's overrides (`None`: no such
/// topic), wherever the topics are held.
pub fn handle_with(
    config: &Config,
    overrides: &dyn Fn(&str) -> Option<BTreeMap<String, String>>,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|resource| describe(config, overrides, resource, request.include_synonyms))
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn describe(
    config: &Config,
    overrides: &dyn Fn(&str) -> Option<BTreeMap<String, String>>,
    resource: DescribeConfigsResource,
    synonyms: bool,
) -> DescribeConfigsResult {
    let mut result = DescribeConfigsResult::default()
        .with_resource_type(resource.resource_type)
        .with_resource_name(resource.resource_name.clone());
    let entries: Vec<(String, String, i8)> = match resource.resource_type {
        RESOURCE_TOPIC => match overrides(resource.resource_name.as_str()) {
            Some(configs) => topic_config::DEFAULTS
                .iter()
                .map(|(name, default)| match configs.get(*name) {
                    Some(value) => (name.to_string(), value.clone(), SOURCE_TOPIC),
                    None => (name.to_string(), default.to_string(), SOURCE_DEFAULT),
                })
                .collect(),
            None => {
                result.error_code = ResponseError::UnknownTopicOrPartition.code();
                result.error_message = Some(str_bytes(format!(
                    "topic {} does not exist",
                    resource.resource_name.as_str()
                )));
                return result;
            }
        },
        RESOURCE_BROKER => broker_configs::of(config)
            .into_iter()
            .map(|c| (c.name.to_string(), c.value, SOURCE_STATIC_BROKER))
            .collect(),
        other => {
            result.error_code = ResponseError::InvalidRequest.code();
            result.error_message = Some(str_bytes(format!("unsupported resource type {other}")));
            return result;
        }
    };
    let wanted = resource.configuration_keys;
    result.configs = entries
        .into_iter()
        .filter(|(name, _, _)| {
            wanted
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
        })
        .map(|(name, value, source)| {
            // Broker settings are static (AlterConfigs refuses them); topic overrides are not.
            let mut entry = DescribeConfigsResourceResult::default()
                .with_name(str_bytes(name.clone()))
                .with_value(Some(str_bytes(value.clone())))
                .with_read_only(source == SOURCE_STATIC_BROKER)
                .with_config_source(source);
            if synonyms {
                entry.synonyms = vec![DescribeConfigsSynonym::default()
                    .with_name(str_bytes(name))
                    .with_value(Some(str_bytes(value)))
                    .with_source(source)];
            }
            entry
        })
        .collect();
    result
}
