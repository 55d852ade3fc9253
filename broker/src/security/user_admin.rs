//! DescribeUserScramCredentials and AlterUserScramCredentials: SCRAM users managed through
//! Kafka's admin API (as `kafka-configs --alter --add-config SCRAM-SHA-256=...` and the admin
//! clients do), on the same credential store as `hotwire users`.
//!
//! Callers need DESCRIBE / ALTER on the cluster (as in Kafka) with the ACL authorizer on, and
//! must be `super_users` without it; a client that did not authenticate is `User:ANONYMOUS`.

use std::collections::BTreeSet;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::credentials::{CredentialStore, UserCredential};
use super::scram::{Credential, Mechanism, MAX_ITERATIONS, MIN_ITERATIONS};

/// The principal of a connection that did not authenticate.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

fn message(text: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from(text.into()))
}

/// DescribeUserScramCredentials: each user's mechanisms and iterations (never a secret).
pub async fn describe(
    store: &dyn CredentialStore,
    request: DescribeUserScramCredentialsRequest,
    allowed: bool,
) -> DescribeUserScramCredentialsResponse {
    let response = DescribeUserScramCredentialsResponse::default();
    if !allowed {
        return response
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(message(
                "DESCRIBE on the cluster is required (super_users without an authorizer)",
            ));
    }
    let stored = match store.list().await {
        Ok(stored) => stored,
        Err(error) => {
            tracing::warn!(%error, "cannot list credentials");
            return response
                .with_error_code(ResponseError::KafkaStorageError.code())
                .with_error_message(message("credentials cannot be read now"));
        }
    };
    let wanted: Vec<String> = match request.users {
        Some(users) if !users.is_empty() => users.iter().map(|u| u.name.to_string()).collect(),
        _ => stored
            .iter()
            .map(|r| r.user.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    let mut seen = BTreeSet::new();
    let results = wanted
        .into_iter()
        .map(|user| {
            let result = DescribeUserScramCredentialsResult::default()
                .with_user(StrBytes::from(user.clone()));
            if !seen.insert(user.clone()) {
                return result
                    .with_error_code(ResponseError::DuplicateResource.code())
                    .with_error_message(message(format!("{user} named twice")));
            }
            let infos: Vec<CredentialInfo> = stored
                .iter()
                .filter(|r| r.user == user)
                .map(|r| {
                    CredentialInfo::default()
                        .with_mechanism(r.credential.mechanism.kafka_type())
                        .with_iterations(r.credential.iterations as i32)
                })
                .collect();
            if infos.is_empty() {
                result
                    .with_error_code(ResponseError::ResourceNotFound.code())
                    .with_error_message(message(format!("no credentials for {user}")))
            } else {
                result.with_credential_infos(infos)
            }
        })
        .collect();
    response.with_results(results)
}

/// AlterUserScramCredentials: deletions and upsertions (the client salts the password).
pub async fn alter(
    store: &dyn CredentialStore,
    request: AlterUserScramCredentialsRequest,
    allowed: bool,
) -> AlterUserScramCredentialsResponse {
    let users: Vec<String> = request
        .deletions
        .iter()
        .map(|d| d.name.to_string())
        .chain(request.upsertions.iter().map(|u| u.name.to_string()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let result = |user: &str, error: Option<(ResponseError, String)>| {
        let result =
            AlterUserScramCredentialsResult::default().with_user(StrBytes::from(user.to_string()));
        match error {
            Some((code, text)) => result
                .with_error_code(code.code())
                .with_error_message(message(text)),
            None => result,
        }
    };
    if !allowed {
        let results = users
            .iter()
            .map(|user| {
                result(
                    user,
                    Some((
                        ResponseError::ClusterAuthorizationFailed,
                        "ALTER on the cluster is required (super_users without an authorizer)"
                            .into(),
                    )),
                )
            })
            .collect();
        return AlterUserScramCredentialsResponse::default().with_results(results);
    }
    let mut results = Vec::new();
    for user in users {
        let error = alter_one(store, &request, &user).await.err();
        results.push(result(&user, error));
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// Applies every change of `request` to `user`, checking them all first.
async fn alter_one(
    store: &dyn CredentialStore,
    request: &AlterUserScramCredentialsRequest,
    user: &str,
) -> Result<(), (ResponseError, String)> {
    let mechanism = |kind: i8| {
        Mechanism::from_kafka_type(kind).ok_or((
            ResponseError::UnsupportedSaslMechanism,
            format!("unknown SCRAM mechanism {kind}"),
        ))
    };
    let mut touched = BTreeSet::new();
    let mut deletions = Vec::new();
    for deletion in request.deletions.iter().filter(|d| d.name.as_str() == user) {
        let mechanism = mechanism(deletion.mechanism)?;
        if !touched.insert(mechanism.name()) {
            return Err(duplicate(user, mechanism));
        }
        deletions.push(mechanism);
    }
    let mut upsertions = Vec::new();
    for upsertion in request
        .upsertions
        .iter()
        .filter(|u| u.name.as_str() == user)
    {
        let mechanism = mechanism(upsertion.mechanism)?;
        if !touched.insert(mechanism.name()) {
            return Err(duplicate(user, mechanism));
        }
        let iterations = u32::try_from(upsertion.iterations).unwrap_or(0);
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err((
                ResponseError::UnacceptableCredential,
                format!("iterations must be {MIN_ITERATIONS} to {MAX_ITERATIONS}"),
            ));
        }
        if upsertion.salt.is_empty() || upsertion.salted_password.len() != mechanism_len(mechanism)
        {
            return Err((
                ResponseError::UnacceptableCredential,
                "a salt and a salted password of the mechanism's length are needed".into(),
            ));
        }
        let credential = Credential::from_salted(
            mechanism,
            &upsertion.salted_password,
            &upsertion.salt,
            iterations,
        );
        upsertions.push(credential);
    }
    let unavailable = |error: super::credentials::CredentialError| {
        tracing::warn!(%error, "cannot change credentials");
        (
            ResponseError::KafkaStorageError,
            "credentials cannot be changed now".to_string(),
        )
    };
    for mechanism in deletions {
        if !store.delete(user, mechanism).await.map_err(unavailable)? {
            return Err((
                ResponseError::ResourceNotFound,
                format!("no {} credential for {user}", mechanism.name()),
            ));
        }
    }
    for credential in upsertions {
        let record = UserCredential {
            user: user.to_string(),
            credential,
        };
        store.put(record).await.map_err(unavailable)?;
    }
    Ok(())
}

fn duplicate(user: &str, mechanism: Mechanism) -> (ResponseError, String) {
    (
        ResponseError::DuplicateResource,
        format!("{user}'s {} changed twice in one request", mechanism.name()),
    )
}

fn mechanism_len(mechanism: Mechanism) -> usize {
    match mechanism {
        Mechanism::Sha256 => 32,
        Mechanism::Sha512 => 64,
    }
}
