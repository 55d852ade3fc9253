//! CreateAcls, DescribeAcls and DeleteAcls (as `kafka-acls` and the admin clients send them),
//! on the broker's [`Acls`]. Creating and deleting need ALTER on the cluster, describing needs
//! DESCRIBE; without an authorizer every call answers SECURITY_DISABLED, as in Kafka.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::acl::registry::{Access, Acls};
use super::acl::store::{AclStoreError, MAX_BINDINGS};
use super::acl::{AclBinding, AclFilter, Operation, UnknownCode};

fn message(text: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from(text.into()))
}

/// Why the caller may not use the ACL APIs at all, if it may not.
fn refusal(acls: &Acls, access: &Access, operation: Operation) -> Option<Failure> {
    if !acls.enabled() {
        return Some((
            ResponseError::SecurityDisabled,
            "no authorizer is configured (acl_authorizer = false)".into(),
        ));
    }
    (!access.allows_cluster(operation)).then(|| {
        (
            ResponseError::ClusterAuthorizationFailed,
            format!("{} may not {operation:?} the cluster", access.principal()),
        )
    })
}

fn binding_of(creation: &AclCreation) -> Result<AclBinding, String> {
    let binding = AclBinding {
        resource_type: creation.resource_type.try_into().map_err(text)?,
        name: creation.resource_name.to_string(),
        pattern: creation.resource_pattern_type.try_into().map_err(text)?,
        principal: creation.principal.to_string(),
        host: creation.host.to_string(),
        operation: creation.operation.try_into().map_err(text)?,
        permission: creation.permission_type.try_into().map_err(text)?,
    };
    binding.validate().map_err(|e| e.to_string())?;
    Ok(binding)
}

fn text(error: UnknownCode) -> String {
    error.to_string()
}

/// The filter of DescribeAcls and DeleteAcls, from the request's fields.
#[allow(clippy::too_many_arguments)]
fn filter_of(
    resource_type: i8,
    name: &Option<StrBytes>,
    pattern: i8,
    principal: &Option<StrBytes>,
    host: &Option<StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, String> {
    Ok(AclFilter {
        resource_type: resource_type.try_into().map_err(text)?,
        name: name.as_ref().map(|n| n.to_string()),
        pattern: pattern.try_into().map_err(text)?,
        principal: principal.as_ref().map(|p| p.to_string()),
        host: host.as_ref().map(|h| h.to_string()),
        operation: operation.try_into().map_err(text)?,
        permission: permission.try_into().map_err(text)?,
    })
}

/// Why an item of a request failed: its error and message.
type Failure = (ResponseError, String);

/// Answers each of `parsed` (the items of a CreateAcls or DeleteAcls): unparsable ones
/// INVALID_REQUEST, the others with `ok` and what `apply` returned for each of them in order,
/// or all KAFKA_STORAGE_ERROR if the store failed.
async fn answer_each<P: Clone, O: Default, R>(
    parsed: Vec<Result<P, String>>,
    apply: impl AsyncFnOnce(Vec<P>) -> Result<Vec<O>, AclStoreError>,
    ok: impl Fn(P, O) -> R,
    failed: impl Fn(Failure) -> R,
) -> Vec<R> {
    let valid: Vec<P> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let outcomes = if valid.is_empty() {
        Ok(Vec::new())
    } else {
        apply(valid).await
    };
    match outcomes {
        Err(error) => {
            tracing::warn!(%error, "cannot store ACLs");
            let unavailable = || {
                (
                    ResponseError::KafkaStorageError,
                    "ACLs cannot be written now".into(),
                )
            };
            parsed.iter().map(|_| failed(unavailable())).collect()
        }
        Ok(outcomes) => {
            let mut outcomes = outcomes.into_iter();
            parsed
                .into_iter()
                .map(|p| match p {
                    Err(reason) => failed((ResponseError::InvalidRequest, reason)),
                    Ok(item) => ok(item, outcomes.next().unwrap_or_default()),
                })
                .collect()
        }
    }
}

/// CreateAcls: each creation is answered on its own; valid ones are stored together.
pub async fn create(
    acls: &Acls,
    access: &Access,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    let failed = |(code, text): Failure| {
        AclCreationResult::default()
            .with_error_code(code.code())
            .with_error_message(message(text))
    };
    if let Some(refused) = refusal(acls, access, Operation::Alter) {
        let results = request
            .creations
            .iter()
            .map(|_| failed(refused.clone()))
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let parsed = request.creations.iter().map(binding_of).collect();
    let results = answer_each(
        parsed,
        async |valid| acls.create(&valid).await,
        |binding, added| {
            if added {
                tracing::info!(principal = access.principal(), ?binding, "ACL created");
                AclCreationResult::default()
            } else {
                failed((
                    ResponseError::PolicyViolation,
                    format!("at most {MAX_BINDINGS} ACLs are kept"),
                ))
            }
        },
        failed,
    )
    .await;
    CreateAclsResponse::default().with_results(results)
}

/// DescribeAcls: the bindings the filter selects, grouped by resource pattern.
pub fn describe(
    acls: &Acls,
    access: &Access,
    request: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let failed = |code: ResponseError, text: String| {
        DescribeAclsResponse::default()
            .with_error_code(code.code())
            .with_error_message(message(text))
    };
    if let Some((code, text)) = refusal(acls, access, Operation::Describe) {
        return failed(code, text);
    }
    let filter = match filter_of(
        request.resource_type_filter,
        &request.resource_name_filter,
        request.pattern_type_filter,
        &request.principal_filter,
        &request.host_filter,
        request.operation,
        request.permission_type,
    ) {
        Ok(filter) => filter,
        Err(reason) => return failed(ResponseError::InvalidRequest, reason),
    };
    let mut resources: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for binding in acls.describe(&filter) {
        resources
            .entry((
                binding.resource_type.into(),
                binding.name.clone(),
                binding.pattern.into(),
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(StrBytes::from(binding.principal))
                    .with_host(StrBytes::from(binding.host))
                    .with_operation(binding.operation.into())
                    .with_permission_type(binding.permission.into()),
            );
    }
    let resources = resources
        .into_iter()
        .map(|((resource_type, name, pattern), descriptions)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from(name))
                .with_pattern_type(pattern)
                .with_acls(descriptions)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

fn filter_of_delete(filter: &DeleteAclsFilter) -> Result<AclFilter, String> {
    filter_of(
        filter.resource_type_filter,
        &filter.resource_name_filter,
        filter.pattern_type_filter,
        &filter.principal_filter,
        &filter.host_filter,
        filter.operation,
        filter.permission_type,
    )
}

/// DeleteAcls: for each filter, the bindings it deleted.
pub async fn delete(
    acls: &Acls,
    access: &Access,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let failed = |(code, text): Failure| {
        DeleteAclsFilterResult::default()
            .with_error_code(code.code())
            .with_error_message(message(text))
    };
    if let Some(refused) = refusal(acls, access, Operation::Alter) {
        let results = request
            .filters
            .iter()
            .map(|_| failed(refused.clone()))
            .collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let parsed = request.filters.iter().map(filter_of_delete).collect();
    let results = answer_each(
        parsed,
        async |valid| acls.delete(&valid).await,
        |_, matching: Vec<AclBinding>| {
            if !matching.is_empty() {
                tracing::info!(principal = access.principal(), ?matching, "ACLs deleted");
            }
            DeleteAclsFilterResult::default()
                .with_matching_acls(matching.into_iter().map(matching_acl).collect())
        },
        failed,
    )
    .await;
    DeleteAclsResponse::default().with_filter_results(results)
}

fn matching_acl(binding: AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(binding.resource_type.into())
        .with_resource_name(StrBytes::from(binding.name))
        .with_pattern_type(binding.pattern.into())
        .with_principal(StrBytes::from(binding.principal))
        .with_host(StrBytes::from(binding.host))
        .with_operation(binding.operation.into())
        .with_permission_type(binding.permission.into())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kafka_protocol::messages::create_acls_request::AclCreation;
    use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;

    use super::*;
    use crate::security::acl::store::StoreAcls;
    use crate::security::acl::AuthorizerSettings;

    async fn acls(dir: &tempfile::TempDir, enabled: bool) -> Acls {
        let store = dfs_adapter::Store::open(&format!("fs://{}", dir.path().display()))
            .await
            .unwrap();
        let settings = AuthorizerSettings {
            super_users: vec!["User:admin".into()],
            allow_everyone_if_no_acl_found: false,
        };
        Acls::open(Arc::new(StoreAcls(store)), settings, enabled)
            .await
            .unwrap()
    }

    fn creation(resource_type: i8, name: &str, operation: i8) -> AclCreation {
        AclCreation::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from(name.to_string()))
            .with_resource_pattern_type(3)
            .with_principal(StrBytes::from_static_str("User:alice"))
            .with_host(StrBytes::from_static_str("*"))
            .with_operation(operation)
            .with_permission_type(3)
    }

    #[tokio::test]
    async fn each_creation_and_filter_is_judged_on_its_own_and_bad_ones_are_invalid_requests() {
        let dir = tempfile::tempdir().unwrap();
        let acls = acls(&dir, true).await;
        let admin = acls.access("User:admin", "10.0.0.1");
        let request = CreateAclsRequest::default().with_creations(vec![
            creation(2, "t", 3),
            creation(1, "t", 3),     // resource type ANY: filters only
            creation(99, "t", 3),    // no such type
            creation(2, "", 3),      // empty name
            creation(4, "other", 8), // the cluster resource has one name
            creation(2, "t", -7),    // no such operation
        ]);
        let codes: Vec<i16> = create(&acls, &admin, request)
            .await
            .results
            .iter()
            .map(|r| r.error_code)
            .collect();
        let invalid = ResponseError::InvalidRequest.code();
        assert_eq!(codes, vec![0, invalid, invalid, invalid, invalid, invalid]);

        let filter = |operation: i8| {
            DeleteAclsFilter::default()
                .with_resource_type_filter(1)
                .with_resource_name_filter(None)
                .with_pattern_type_filter(1)
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_operation(operation)
                .with_permission_type(1)
        };
        let request = DeleteAclsRequest::default().with_filters(vec![filter(42), filter(1)]);
        let results = delete(&acls, &admin, request).await.filter_results;
        assert_eq!(results[0].error_code, invalid);
        assert_eq!(results[1].error_code, 0);
        assert_eq!(results[1].matching_acls.len(), 1);
    }

    #[tokio::test]
    async fn only_the_cluster_s_alterers_change_acls_and_nobody_without_the_authorizer() {
        let dir = tempfile::tempdir().unwrap();
        let on = acls(&dir, true).await;
        let alice = on.access("User:alice", "10.0.0.1");
        let request = CreateAclsRequest::default().with_creations(vec![creation(2, "t", 3)]);
        let refused = create(&on, &alice, request.clone()).await;
        assert_eq!(
            refused.results[0].error_code,
            ResponseError::ClusterAuthorizationFailed.code()
        );
        drop(on);
        let off = acls(&dir, false).await;
        let admin = off.access("User:admin", "10.0.0.1");
        let disabled = create(&off, &admin, request).await;
        assert_eq!(
            disabled.results[0].error_code,
            ResponseError::SecurityDisabled.code()
        );
        let described = describe(&off, &admin, DescribeAclsRequest::default());
        assert_eq!(described.error_code, ResponseError::SecurityDisabled.code());
    }
}
