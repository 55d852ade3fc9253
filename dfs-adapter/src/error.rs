//! The crate's error type.

/// Everything that can go wrong talking to storage.
///
/// Each variant carries what failed and where; [`StorageError::is_retryable`] says whether trying
/// the same operation again may succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The storage URL could not be understood.
    #[error("invalid storage url: {0}")]
    InvalidUrl(String),

    /// A caller-supplied value is unusable (bad topic name, impossible byte range).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The storage backend (through OpenDAL) failed.
    #[error("{context}: {source}")]
    Backend {
        /// What this crate was doing.
        context: String,
        /// OpenDAL's error, with its kind and retry status.
        #[source]
        source: opendal::Error,
    },

    /// An object exists but its content is not valid (truncated, bit flips, wrong format).
    #[error("corrupt object {object}: {reason}")]
    Corrupt {
        /// Key of the object.
        object: String,
        /// What check failed.
        reason: String,
    },

    /// A local I/O operation this crate does itself (directory fsync or check) failed.
    #[error("{context}: {source}")]
    Io {
        /// What this crate was doing.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// Another writer got to the manifest first: this broker no longer owns the storage root.
    #[error("fenced: {0}")]
    Fenced(String),

    /// Another broker holds the storage root (its file lock or a live lease): this one must
    /// not recover or write there.
    #[error("another broker holds {root}: {detail}")]
    RootHeld {
        /// The storage root.
        root: String,
        /// Who holds it, as far as known.
        detail: String,
    },

    /// The flush pipeline has been shut down.
    #[error("flush pipeline is closed")]
    Closed,
}

impl StorageError {
    /// Whether the backend said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::Backend { source, .. }
            if source.kind() == opendal::ErrorKind::NotFound)
    }

    /// Whether retrying the failed operation may help.
    ///
    /// Backend errors are retryable unless OpenDAL marks them permanent. Errors OpenDAL already
    /// retried until giving up (its "persistent" status) still count as retryable here: the
    /// store may come back later. Corrupt data, bad input and a closed pipeline never heal.
    pub fn is_retryable(&self) -> bool {
        match self {
            StorageError::Backend { source, .. } => !source.is_permanent(),
            StorageError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
            ),
            StorageError::InvalidUrl(_)
            | StorageError::InvalidArgument(_)
            | StorageError::Corrupt { .. }
            | StorageError::Fenced(_)
            | StorageError::RootHeld { .. }
            | StorageError::Closed => false,
        }
    }

    /// Builds a closure that wraps an OpenDAL error with `context`, for use with `map_err`.
    pub(crate) fn backend(context: impl Into<String>) -> impl FnOnce(opendal::Error) -> Self {
        let context = context.into();
        move |source| StorageError::Backend { context, source }
    }

    /// Shorthand for [`StorageError::Corrupt`].
    pub(crate) fn corrupt(object: impl Into<String>, reason: impl Into<String>) -> Self {
        StorageError::Corrupt {
            object: object.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_classification() {
        let temporary = opendal::Error::new(opendal::ErrorKind::Unexpected, "x").set_temporary();
        let permanent = opendal::Error::new(opendal::ErrorKind::PermissionDenied, "x");
        assert!(StorageError::backend("w")(temporary).is_retryable());
        assert!(!StorageError::backend("w")(permanent).is_retryable());
        assert!(!StorageError::corrupt("o", "r").is_retryable());
        assert!(!StorageError::Closed.is_retryable());
    }
}
