//! Which store a WAL directory belongs to, when it lives beside the store rather than inside
//! it (the tiered mode): `<dir>/store` holds the store's canonical URL. Replaying one store's
//! WAL into another would graft foreign batches onto its partitions, so a mismatch stops the
//! start with the way out in the message.

use std::io::Write;
use std::path::Path;

use crate::dirsync::fsync_dir;
use crate::StorageError;

const FILE: &str = "store";
const TEMP: &str = "store.tmp";

/// Whether `name` is the owner file (or its temporary).
pub(crate) fn owns(name: &str) -> bool {
    name == FILE || name == TEMP
}

/// Records `store` as the owner of `dir` (first use), or checks that it is.
pub(crate) async fn check_or_record(dir: &Path, store: &str) -> Result<(), StorageError> {
    let path = dir.join(FILE);
    match tokio::fs::read_to_string(&path).await {
        Ok(recorded) if recorded.trim_end() == store => return Ok(()),
        Ok(recorded) => {
            return Err(StorageError::InvalidArgument(format!(
                "the WAL in {} belongs to storage {}, not {store}: its records must not be \
                 replayed into another store. Point --wal at another directory; if that store \
                 only moved (a new endpoint or path), write its new URL into {}",
                dir.display(),
                recorded.trim_end(),
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(StorageError::Io {
                context: format!("read {}", path.display()),
                source,
            })
        }
    }
    let temp = dir.join(TEMP);
    let line = format!("{store}\n");
    let written = tokio::task::spawn_blocking({
        let path = path.clone();
        move || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(line.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temp, &path)
        }
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r);
    written.map_err(|source| StorageError::Io {
        context: format!("record the WAL's store in {}", path.display()),
        source,
    })?;
    fsync_dir(dir).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wal_stays_with_its_store() {
        let dir = tempfile::tempdir().unwrap();
        check_or_record(dir.path(), "s3://a/x").await.unwrap();
        check_or_record(dir.path(), "s3://a/x").await.unwrap();
        let err = check_or_record(dir.path(), "s3://b/y").await.unwrap_err();
        assert!(
            err.to_string().contains("belongs to storage s3://a/x"),
            "{err}"
        );
    }
}
