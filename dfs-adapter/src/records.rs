//! Small security records (SCRAM credentials, later ACLs) under `security/`: one JSON object
//! each, replaced atomically and durably like topic records.

use crate::{StorageError, Store};

/// Directory (prefix) of security records.
pub(crate) const SECURITY_DIR: &str = "security/";
/// Suffix of the temporary file a record is written to before being renamed into place (fs).
const TEMP_SUFFIX: &str = ".tmp";

impl Store {
    /// Stores (creates or replaces) the record `security/<name>`; durable when it returns.
    /// `name` is a plain file name (letters, digits, `-`, `_`, `.`), chosen by the caller.
    ///
    /// On `fs` it is written to a temporary file, renamed into place and the directory fsynced:
    /// a crash leaves the old or the new record, never a torn one. Object stores publish a PUT
    /// atomically.
    pub async fn put_security_record(&self, name: &str, body: Vec<u8>) -> Result<(), StorageError> {
        let key = record_key(name)?;
        self.replace_small(&key, &format!("{key}{TEMP_SUFFIX}"), body)
            .await
    }

    /// The record `security/<name>`, if there is one.
    pub async fn read_security_record(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let key = record_key(name)?;
        match self.op().read(&key).await {
            Ok(body) => Ok(Some(body.to_vec())),
            Err(error) if error.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(StorageError::backend(format!("read {key}"))(error)),
        }
    }

    /// Deletes `security/<name>` (absent: nothing to do); durable when it returns.
    pub async fn delete_security_record(&self, name: &str) -> Result<(), StorageError> {
        let key = record_key(name)?;
        self.op()
            .delete(&key)
            .await
            .map_err(StorageError::backend(format!("delete {key}")))?;
        self.sync_dir_of(&key).await
    }

    /// The names of every security record whose name starts with `prefix`, sorted.
    pub async fn list_security_records(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let entries = self
            .op()
            .list(SECURITY_DIR)
            .await
            .map_err(StorageError::backend(format!("list {SECURITY_DIR}")))?;
        let mut names: Vec<String> = entries
            .iter()
            .filter(|e| e.metadata().is_file())
            .map(|e| e.name().to_string())
            .filter(|name| name.starts_with(prefix) && !name.ends_with(TEMP_SUFFIX))
            .collect();
        names.sort();
        Ok(names)
    }
}

fn record_key(name: &str) -> Result<String, StorageError> {
    let valid = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(StorageError::InvalidArgument(format!(
            "bad security record name {name:?}"
        )));
    }
    Ok(format!("{SECURITY_DIR}{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_are_written_read_listed_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("fs://{}", dir.path().display()))
            .await
            .unwrap();
        assert_eq!(store.read_security_record("scram.a").await.unwrap(), None);
        store
            .put_security_record("scram.a", b"one".to_vec())
            .await
            .unwrap();
        store
            .put_security_record("scram.a", b"two".to_vec())
            .await
            .unwrap();
        store
            .put_security_record("acl.x", b"acl".to_vec())
            .await
            .unwrap();
        assert_eq!(
            store.read_security_record("scram.a").await.unwrap(),
            Some(b"two".to_vec())
        );
        assert_eq!(
            store.list_security_records("scram.").await.unwrap(),
            ["scram.a"]
        );
        store.delete_security_record("scram.a").await.unwrap();
        store.delete_security_record("scram.a").await.unwrap();
        assert!(store
            .list_security_records("scram.")
            .await
            .unwrap()
            .is_empty());
        for bad in ["", "../x", "a/b", ".hidden"] {
            assert!(store.read_security_record(bad).await.is_err(), "{bad}");
        }
    }
}
