//! The run epoch: a number stored in `epoch` beside the WAL files, raised durably by every run
//! before it writes, and written into each record header. Recovery never lets a record of an
//! older run follow one of a newer run, so the leftovers of a crashed run (records written
//! past what it acknowledged) can never be taken for the continuation of a later run's log,
//! even where a later record happens to end exactly where an old one began.

use std::io::Write;
use std::path::Path;

use crate::dirsync::fsync_dir;
use crate::StorageError;

const FILE: &str = "epoch";
const TEMP: &str = "epoch.tmp";
const MAGIC: &[u8; 8] = b"HWEPOCH1";

/// Whether `name` is the epoch file (or its temporary).
pub(crate) fn owns(name: &str) -> bool {
    name == FILE || name == TEMP
}

/// Reads the stored epoch (0 when there is none yet), stores the next one durably and
/// returns it.
pub(crate) async fn advance(dir: &Path) -> Result<u64, StorageError> {
    let path = dir.join(FILE);
    let previous = match tokio::fs::read(&path).await {
        Ok(bytes) => decode(&bytes).ok_or_else(|| {
            StorageError::corrupt(
                path.display().to_string(),
                "not a WAL epoch file; it is replaced only by rename, so this is damage: \
                 restore it, or write a larger epoch than any run used",
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(source) => {
            return Err(StorageError::Io {
                context: format!("read {}", path.display()),
                source,
            })
        }
    };
    let next = previous
        .checked_add(1)
        .ok_or_else(|| StorageError::corrupt(path.display().to_string(), "epoch exhausted"))?;
    let temp = dir.join(TEMP);
    let encoded = encode(next);
    let io = |context: String| move |source| StorageError::Io { context, source };
    tokio::task::spawn_blocking({
        let (temp, path) = (temp.clone(), path.clone());
        move || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(&encoded)?;
            file.sync_all()?;
            std::fs::rename(&temp, &path)
        }
    })
    .await
    .map_err(|e| StorageError::Io {
        context: "store WAL epoch".into(),
        source: std::io::Error::other(e),
    })?
    .map_err(io(format!("store {}", path.display())))?;
    fsync_dir(dir).await?;
    Ok(next)
}

fn encode(epoch: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(20);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&out).to_le_bytes());
    out
}

fn decode(bytes: &[u8]) -> Option<u64> {
    if bytes.len() != 20 || &bytes[..8] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(bytes[16..20].try_into().ok()?);
    if crc32c::crc32c(&bytes[..16]) != crc {
        return None;
    }
    Some(u64::from_le_bytes(bytes[8..16].try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_run_gets_a_larger_epoch() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(advance(dir.path()).await.unwrap(), 1);
        assert_eq!(advance(dir.path()).await.unwrap(), 2);
        assert_eq!(advance(dir.path()).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_damaged_epoch_file_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        advance(dir.path()).await.unwrap();
        let path = dir.path().join(FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[9] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let err = advance(dir.path()).await.unwrap_err();
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    }
}
