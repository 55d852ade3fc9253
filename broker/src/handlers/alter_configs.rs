//! AlterConfigs and IncrementalAlterConfigs: a topic's overrides, replaced whole (AlterConfigs)
//! or changed one by one (IncrementalAlterConfigs), durable before the answer and applied from
//! the next request on (retention at its next round). A resource's changes apply all or none.
//! Broker settings are static: changing them is refused with the reason.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResult;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::str_bytes;
use super::topic_changes::{self, repeated, TopicChanger};
use crate::log::topic_config;
use crate::log::topics::TopicError;

/// Kafka's config resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Topic configs whose value is a comma-separated list (APPEND and SUBTRACT apply to them).
const LIST_CONFIGS: &[&str] = &["cleanup.policy"];

/// One resource's outcome: nothing, or the error and its message.
type Outcome = Result<(), (ResponseError, String)>;

/// One resource of either request: its type, name, the config names it gives (to refuse one
/// given twice) and what it asks.
struct Asked {
    kind: i8,
    name: StrBytes,
    configs: Vec<String>,
    change: Change,
}

/// What a resource asks for its overrides.
enum Change {
    /// Exactly these (AlterConfigs).
    Replace(BTreeMap<String, String>),
    /// These operations: name, operation, value (IncrementalAlterConfigs).
    Operate(Vec<(String, i8, Option<String>)>),
}

/// AlterConfigs: each resource's overrides become exactly those given.
pub async fn alter(
    changer: &dyn TopicChanger,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let asked = request.resources.into_iter().map(|r| Asked {
        kind: r.resource_type,
        name: r.resource_name,
        configs: r.configs.iter().map(|c| c.name.to_string()).collect(),
        change: Change::Replace(
            r.configs
                .into_iter()
                .filter_map(|c| Some((c.name.to_string(), c.value?.to_string())))
                .collect(),
        ),
    });
    let responses = run(changer, request.validate_only, asked.collect()).await;
    AlterConfigsResponse::default().with_responses(
        responses
            .into_iter()
            .map(|(kind, name, code, message)| {
                AlterConfigsResourceResponse::default()
                    .with_resource_type(kind)
                    .with_resource_name(name)
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect(),
    )
}

/// IncrementalAlterConfigs: each resource's overrides changed by SET, DELETE, APPEND and
/// SUBTRACT operations.
pub async fn incremental(
    changer: &dyn TopicChanger,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let asked = request.resources.into_iter().map(|r| Asked {
        kind: r.resource_type,
        name: r.resource_name,
        configs: r.configs.iter().map(|c| c.name.to_string()).collect(),
        change: Change::Operate(
            r.configs
                .into_iter()
                .map(|c| {
                    let value = c.value.as_ref().map(StrBytes::to_string);
                    (c.name.to_string(), c.config_operation, value)
                })
                .collect(),
        ),
    });
    let responses = run(changer, request.validate_only, asked.collect()).await;
    IncrementalAlterConfigsResponse::default().with_responses(
        responses
            .into_iter()
            .map(|(kind, name, code, message)| {
                IncrementalResult::default()
                    .with_resource_type(kind)
                    .with_resource_name(name)
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect(),
    )
}

/// Applies each resource's change in order: (type, name, error code, message) for each.
async fn run(
    changer: &dyn TopicChanger,
    validate_only: bool,
    asked: Vec<Asked>,
) -> Vec<(i8, StrBytes, i16, Option<StrBytes>)> {
    let twice = repeated(asked.iter().map(|a| (a.kind, a.name.to_string())));
    let mut responses = Vec::with_capacity(asked.len());
    for resource in asked {
        let outcome = if twice.contains(&(resource.kind, resource.name.to_string())) {
            Err((
                ResponseError::InvalidRequest,
                "the resource is listed more than once in the request".to_string(),
            ))
        } else if let Some(name) = repeated(resource.configs).into_iter().next() {
            Err((
                ResponseError::InvalidRequest,
                format!("config {name} is given more than once"),
            ))
        } else if let Some(reason) = malformed(&resource.change) {
            Err((ResponseError::InvalidRequest, reason))
        } else {
            let change = &resource.change;
            apply(
                changer,
                resource.kind,
                &resource.name,
                validate_only,
                |configs| match change {
                    Change::Replace(new) => Ok(new.clone()),
                    Change::Operate(operations) => operate(configs, operations),
                },
            )
            .await
        };
        let (code, message) = match outcome {
            Ok(()) => (0, None),
            Err((code, message)) => (code.code(), Some(str_bytes(message))),
        };
        responses.push((resource.kind, resource.name, code, message));
    }
    responses
}

/// Why an incremental change is malformed, as Kafka judges it (INVALID_REQUEST, not
/// INVALID_CONFIG): an unknown operation, or one that needs a value without one.
fn malformed(change: &Change) -> Option<String> {
    let Change::Operate(operations) = change else {
        return None;
    };
    operations
        .iter()
        .find_map(|(name, operation, value)| match (*operation, value) {
            (OP_SET | OP_APPEND | OP_SUBTRACT, None) => {
                Some(format!("operation {operation} on {name} needs a value"))
            }
            (OP_SET | OP_DELETE | OP_APPEND | OP_SUBTRACT, _) => None,
            (other, _) => Some(format!("unknown config operation {other} on {name}")),
        })
}

/// Changes the configs of resource `name` of type `kind` as `derive` says.
async fn apply(
    changer: &dyn TopicChanger,
    kind: i8,
    name: &str,
    validate_only: bool,
    derive: impl Fn(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String>,
) -> Outcome {
    match kind {
        RESOURCE_TOPIC => topic_changes::change(changer, name, validate_only, |old| {
            let mut new = old.clone();
            new.configs = derive(&old.configs).map_err(TopicError::InvalidConfig)?;
            Ok(new)
        })
        .await
        .map(drop)
        .map_err(|error| (topic_changes::error_code(&error), error.to_string())),
        RESOURCE_BROKER => Err((
            ResponseError::InvalidConfig,
            "broker settings are static: set them in the config file, a flag or the \
             environment, and restart (docs/configuration.md)"
                .into(),
        )),
        RESOURCE_BROKER_LOGGER => Err((
            ResponseError::InvalidRequest,
            "log levels are set when the broker starts (RUST_LOG), not through the protocol".into(),
        )),
        other => Err((
            ResponseError::InvalidRequest,
            format!("unsupported config resource type {other}"),
        )),
    }
}

/// The overrides after `operations` (name, operation, value), or why they are refused.
fn operate(
    configs: &BTreeMap<String, String>,
    operations: &[(String, i8, Option<String>)],
) -> Result<BTreeMap<String, String>, String> {
    let mut configs = configs.clone();
    for (name, operation, value) in operations {
        let Some(default) = topic_config::default_of(name) else {
            return Err(format!("unknown topic config {name}"));
        };
        let list = LIST_CONFIGS.contains(&name.as_str());
        match (*operation, value) {
            (OP_SET, Some(value)) => {
                configs.insert(name.clone(), value.clone());
            }
            (OP_DELETE, _) => {
                configs.remove(name);
            }
            (OP_APPEND | OP_SUBTRACT, _) if !list => {
                return Err(format!(
                    "{name} is not a list: APPEND and SUBTRACT do not apply"
                ));
            }
            (OP_APPEND | OP_SUBTRACT, Some(value)) => {
                let current = configs.get(name).map_or(default, String::as_str);
                let mut items: Vec<String> = split_list(current);
                for item in split_list(value) {
                    if *operation == OP_APPEND && !items.contains(&item) {
                        items.push(item);
                    } else if *operation == OP_SUBTRACT {
                        items.retain(|i| *i != item);
                    }
                }
                configs.insert(name.clone(), items.join(","));
            }
            (OP_SET | OP_APPEND | OP_SUBTRACT, None) => {
                return Err(format!("operation {operation} on {name} needs a value"));
            }
            (other, _) => return Err(format!("unknown config operation {other} on {name}")),
        }
    }
    Ok(configs)
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(name: &str, operation: i8, value: Option<&str>) -> (String, i8, Option<String>) {
        (name.into(), operation, value.map(str::to_string))
    }

    #[test]
    fn operations_set_delete_append_and_subtract() {
        let start = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        let out = operate(
            &start,
            &[
                op("retention.ms", OP_DELETE, None),
                op("retention.bytes", OP_SET, Some("4096")),
                op("cleanup.policy", OP_APPEND, Some("delete")),
            ],
        )
        .unwrap();
        assert_eq!(out.get("retention.ms"), None);
        assert_eq!(out["retention.bytes"], "4096");
        assert_eq!(out["cleanup.policy"], "delete");
        let out = operate(&out, &[op("cleanup.policy", OP_SUBTRACT, Some("delete"))]).unwrap();
        assert_eq!(out["cleanup.policy"], "");
    }

    #[test]
    fn malformed_operations_are_told_apart_from_bad_configs() {
        let change = |ops| Change::Operate(ops);
        assert!(malformed(&change(vec![op("retention.ms", OP_SET, Some("1"))])).is_none());
        assert!(malformed(&change(vec![op("retention.ms", OP_DELETE, None)])).is_none());
        let reason = malformed(&change(vec![op("retention.ms", OP_SET, None)])).unwrap();
        assert!(reason.contains("needs a value"), "{reason}");
        let reason = malformed(&change(vec![op("retention.ms", 7, Some("1"))])).unwrap();
        assert!(reason.contains("unknown config operation"), "{reason}");
        assert!(malformed(&Change::Replace(BTreeMap::new())).is_none());
    }

    #[test]
    fn bad_operations_are_refused_with_the_reason() {
        let none = BTreeMap::new();
        for (ops, reason) in [
            (
                vec![op("retention.mss", OP_SET, Some("1"))],
                "unknown topic config",
            ),
            (vec![op("retention.ms", OP_APPEND, Some("1"))], "not a list"),
            (vec![op("retention.ms", OP_SET, None)], "needs a value"),
            (
                vec![op("retention.ms", 9, Some("1"))],
                "unknown config operation",
            ),
        ] {
            let err = operate(&none, &ops).unwrap_err();
            assert!(err.contains(reason), "{ops:?}: {err}");
        }
    }
}
