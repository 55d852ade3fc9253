//! Storage probes: small-write fsync latency and fsync'd sequential bandwidth, in a
//! temporary file inside the directory asked for (removed afterwards).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use super::Bandwidth;
use crate::error::{BenchError, Result};
use crate::payload::SplitMix64;
use crate::stats::{new_histogram, Percentiles};

/// Latency of `count` rounds of appending `write` bytes and fsyncing the file, as a broker
/// appending small batches to a log and syncing each would.
pub fn probe_fsync(dir: &Path, write: u64, count: u32) -> Result<Option<Percentiles>> {
    let (mut file, _guard) = temp_file(dir)?;
    let buf = random_bytes(write as usize);
    let mut histogram = new_histogram();
    for _ in 0..count {
        let start = Instant::now();
        file.write_all(&buf)
            .map_err(BenchError::io(format!("writing in {}", dir.display())))?;
        file.sync_all()
            .map_err(BenchError::io(format!("fsync in {}", dir.display())))?;
        histogram.saturating_record((start.elapsed().as_micros() as u64).max(1));
    }
    Ok(Percentiles::from_histogram(&histogram))
}

/// Bandwidth of writing `total` bytes in `chunk`-sized writes with an fsync every
/// `fsync_every` bytes and at the end.
pub fn probe_sequential(dir: &Path, total: u64, chunk: u64, fsync_every: u64) -> Result<Bandwidth> {
    let (mut file, _guard) = temp_file(dir)?;
    let chunk = chunk.max(1);
    // Random bytes, so that a compressing file system cannot flatter the number.
    let buf = random_bytes(chunk as usize);
    let start = Instant::now();
    let mut written = 0u64;
    let mut since_sync = 0u64;
    while written < total {
        let n = chunk.min(total - written) as usize;
        file.write_all(&buf[..n])
            .map_err(BenchError::io(format!("writing in {}", dir.display())))?;
        written += n as u64;
        since_sync += n as u64;
        if since_sync >= fsync_every.max(1) {
            file.sync_all()
                .map_err(BenchError::io(format!("fsync in {}", dir.display())))?;
            since_sync = 0;
        }
    }
    file.sync_all()
        .map_err(BenchError::io(format!("fsync in {}", dir.display())))?;
    Ok(Bandwidth::new(
        written,
        start.elapsed(),
        format!("{chunk} B writes, fsync every {fsync_every} B"),
    ))
}

/// A new file in `dir`, deleted when the guard drops.
fn temp_file(dir: &Path) -> Result<(File, tempfile::TempPath)> {
    let named = tempfile::Builder::new()
        .prefix(".hotwire-bench-probe-")
        .tempfile_in(dir)
        .map_err(BenchError::io(format!(
            "creating a probe file in {}",
            dir.display()
        )))?;
    let (file, path) = named.into_parts();
    Ok((file, path))
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut rng = SplitMix64(0x5EED);
    let mut buf = vec![0u8; len];
    for chunk in buf.chunks_mut(8) {
        let word = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_probes_measure_and_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let fsync = probe_fsync(dir.path(), 4096, 5).unwrap().unwrap();
        assert_eq!(fsync.count, 5);
        assert!(fsync.p50_ms > 0.0);
        let sequential = probe_sequential(dir.path(), 1 << 20, 64 << 10, 256 << 10).unwrap();
        assert_eq!(sequential.bytes, 1 << 20);
        assert!(sequential.mb_per_s > 0.0);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "probe files removed"
        );
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let err = probe_fsync(Path::new("/nonexistent/hotwire-bench"), 4096, 1).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/hotwire-bench"),
            "{err}"
        );
    }
}
