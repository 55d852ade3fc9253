//! How large objects are split into slices that move concurrently.

use crate::StorageError;

/// The smallest slice accepted: S3's minimum multipart part size (every part but the last).
pub const MIN_SLICE_BYTES: usize = 5 * 1024 * 1024;

/// Slice size and concurrency for writes and reads of large objects.
///
/// A write of more than `slice_bytes` is a multipart upload on object stores (parallel
/// positioned writes and one fsync on `fs`) with up to `concurrency` slices in flight; a read of
/// more than `slice_bytes` is split into ranged reads of `slice_bytes`, `concurrency` at a time.
/// Smaller transfers are one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slicing {
    /// Bytes per slice; at least [`MIN_SLICE_BYTES`].
    pub slice_bytes: usize,
    /// Slices in flight per object, at least 1.
    pub concurrency: usize,
}

impl Default for Slicing {
    fn default() -> Self {
        Slicing {
            slice_bytes: 8 * 1024 * 1024,
            concurrency: 4,
        }
    }
}

impl Slicing {
    /// Checks the limits, so that a bad configuration fails at start, not at the first upload.
    pub fn validate(&self) -> Result<(), StorageError> {
        if self.slice_bytes < MIN_SLICE_BYTES {
            return Err(StorageError::InvalidArgument(format!(
                "slice size {} bytes is below the {MIN_SLICE_BYTES}-byte minimum (S3's smallest \
                 multipart part)",
                self.slice_bytes
            )));
        }
        if self.concurrency == 0 {
            return Err(StorageError::InvalidArgument(
                "slice concurrency must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// `(chunk, concurrency)` for a transfer of `len` bytes, or `None` for a single request.
    pub(crate) fn for_len(&self, len: u64) -> Option<(usize, usize)> {
        (len > self.slice_bytes as u64).then_some((self.slice_bytes, self.concurrency))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transfers_above_one_slice_are_sliced() {
        let slicing = Slicing {
            slice_bytes: MIN_SLICE_BYTES,
            concurrency: 3,
        };
        assert_eq!(slicing.for_len(0), None);
        assert_eq!(slicing.for_len(MIN_SLICE_BYTES as u64), None);
        assert_eq!(
            slicing.for_len(MIN_SLICE_BYTES as u64 + 1),
            Some((MIN_SLICE_BYTES, 3))
        );
    }

    #[test]
    fn slices_below_the_s3_part_minimum_or_no_concurrency_are_refused() {
        let small = Slicing {
            slice_bytes: MIN_SLICE_BYTES - 1,
            concurrency: 1,
        };
        assert!(small.validate().is_err());
        let none = Slicing {
            concurrency: 0,
            ..Slicing::default()
        };
        assert!(none.validate().is_err());
        Slicing::default().validate().unwrap();
    }
}
