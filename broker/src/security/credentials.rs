//! Where SCRAM credentials live: a single broker's storage root (`security/scram.*`), or a
//! cluster's etcd (`/hotwire/<name>/scram/...`), so that every broker of a cluster sees them.
//! A credential is read when a client authenticates (no cache to go stale): `hotwire users`
//! and AlterUserScramCredentials take effect for the next login.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::scram::{Credential, Mechanism};
use crate::cluster::etcd::Etcd;

/// Why credentials could not be read or written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The storage root failed.
    #[error(transparent)]
    Storage(#[from] dfs_adapter::StorageError),
    /// etcd failed.
    #[error(transparent)]
    Etcd(#[from] crate::cluster::etcd::EtcdError),
    /// A stored record does not parse.
    #[error("unreadable credential record {0}")]
    Corrupt(String),
}

/// One user's credential for one mechanism, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCredential {
    /// The user (the SASL name, unescaped).
    pub user: String,
    /// The credential.
    pub credential: Credential,
}

/// A place credentials are kept.
pub trait CredentialStore: Send + Sync {
    /// `user`'s credential for `mechanism`.
    fn get(
        &self,
        user: &str,
        mechanism: Mechanism,
    ) -> BoxFuture<'_, Result<Option<Credential>, CredentialError>>;
    /// Creates or replaces `record`; durable when it returns.
    fn put(&self, record: UserCredential) -> BoxFuture<'_, Result<(), CredentialError>>;
    /// Deletes `user`'s credential for `mechanism`; whether there was one.
    fn delete(
        &self,
        user: &str,
        mechanism: Mechanism,
    ) -> BoxFuture<'_, Result<bool, CredentialError>>;
    /// Every stored credential.
    fn list(&self) -> BoxFuture<'_, Result<Vec<UserCredential>, CredentialError>>;
}

/// The name a user's credential is stored under: the user's bytes in hex (any UTF-8 name fits
/// a key that way), then the mechanism.
fn record_name(user: &str, mechanism: Mechanism) -> String {
    let hex: String = user.bytes().map(|b| format!("{b:02x}")).collect();
    format!("scram.{hex}.{}", mechanism.name())
}

fn parse(name: &str, body: &[u8]) -> Result<UserCredential, CredentialError> {
    serde_json::from_slice(body).map_err(|e| CredentialError::Corrupt(format!("{name}: {e}")))
}

fn encode(record: &UserCredential) -> Vec<u8> {
    serde_json::to_vec_pretty(record).expect("credentials serialize")
}

/// Credentials in a single broker's storage root.
pub struct StoreCredentials(pub dfs_adapter::Store);

impl CredentialStore for StoreCredentials {
    fn get(
        &self,
        user: &str,
        mechanism: Mechanism,
    ) -> BoxFuture<'_, Result<Option<Credential>, CredentialError>> {
        let name = record_name(user, mechanism);
        let user = user.to_string();
        Box::pin(async move {
            let Some(body) = self.0.read_security_record(&name).await? else {
                return Ok(None);
            };
            let record = parse(&name, &body)?;
            Ok(
                (record.user == user && record.credential.mechanism == mechanism)
                    .then_some(record.credential),
            )
        })
    }

    fn put(&self, record: UserCredential) -> BoxFuture<'_, Result<(), CredentialError>> {
        Box::pin(async move {
            let name = record_name(&record.user, record.credential.mechanism);
            Ok(self.0.put_security_record(&name, encode(&record)).await?)
        })
    }

    fn delete(
        &self,
        user: &str,
        mechanism: Mechanism,
    ) -> BoxFuture<'_, Result<bool, CredentialError>> {
        let name = record_name(user, mechanism);
        Box::pin(async move {
            let existed = self.0.read_security_record(&name).await?.is_some();
            self.0.delete_security_record(&name).await?;
            Ok(existed)
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<UserCredential>, CredentialError>> {
        Box::pin(async move {
            let mut records = Vec::new();
            for name in self.0.list_security_records("scram.").await? {
                if let Some(body) = self.0.read_security_record(&name).await? {
                    records.push(parse(&name, &body)?);
                }
            }
            Ok(records)
        })
    }
}

/// Credentials in a cluster's etcd.
pub struct EtcdCredentials {
    etcd: Arc<Etcd>,
    prefix: String,
}

impl EtcdCredentials {
    /// Credentials under `<cluster prefix>scram/`.
    pub fn new(etcd: Arc<Etcd>, cluster_prefix: &str) -> Self {
        Self {
            etcd,
            prefix: format!("{cluster_prefix}scram/"),
        }
    }

    fn key(&self, user: &str, mechanism: Mechanism) -> String {
        format!("{}{}", self.prefix, record_name(user, mechanism))
    }
}

impl CredentialStore for EtcdCredentials {
    fn get(
        &self,
        user: &str,
        mechanism: Mechanism,
    ) -> BoxFuture<'_, Result<Option<Credential>, CredentialError>> {
        let key = self.key(user, mechanism);
        let user = user.to_string();
        Box::pin(async move {
            let (value, _) = self.etcd.get(&key).await?;
            let Some(value) = value else {
                return Ok(None);
            };
            let record = parse(&key, &value.value)?;
            Ok(
                (record.user == user && record.credential.mechanism == mechanism)
                    .then_some(record.credential),
            )
        })
    }

    fn put(&self, record: UserCredential) -> BoxFuture<'_, Result<(), CredentialError>> {
        Box::pin(async move {
            let key = self.key(&record.user, record.credential.mechanism);
            self.etcd.put(&key, &encode(&record), None).await?;
            Ok(())
        })
    }

    fn delete(
        &self,
        user: &str,
        mechanism: Mechanism,
    ) -> BoxFuture<'_, Result<bool, CredentialError>> {
        let key = self.key(user, mechanism);
        Box::pin(async move {
            let existed = self.etcd.get(&key).await?.0.is_some();
            self.etcd.delete(&key).await?;
            Ok(existed)
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<UserCredential>, CredentialError>> {
        Box::pin(async move {
            let (values, _) = self.etcd.get_prefix(&self.prefix).await?;
            values
                .iter()
                .map(|kv| parse(&String::from_utf8_lossy(&kv.key), &kv.value))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_storage_root_keeps_credentials_of_any_user_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = dfs_adapter::Store::open(&format!("fs://{}", dir.path().display()))
            .await
            .unwrap();
        let credentials = StoreCredentials(store);
        let user = "alice/../ö, =x";
        let credential = Credential::new(Mechanism::Sha512, b"pw", 4096);
        credentials
            .put(UserCredential {
                user: user.into(),
                credential: credential.clone(),
            })
            .await
            .unwrap();
        assert_eq!(
            credentials.get(user, Mechanism::Sha512).await.unwrap(),
            Some(credential)
        );
        assert_eq!(
            credentials.get(user, Mechanism::Sha256).await.unwrap(),
            None
        );
        assert_eq!(credentials.list().await.unwrap().len(), 1);
        assert!(credentials.delete(user, Mechanism::Sha512).await.unwrap());
        assert!(!credentials.delete(user, Mechanism::Sha512).await.unwrap());
        assert!(credentials.list().await.unwrap().is_empty());
    }
}
