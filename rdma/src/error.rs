//! The crate's error type, modelled on verbs work-completion statuses.

/// Why an operation or a session failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RdmaError {
    /// No RDMA device (or no RDMA support in the kernel): the verbs provider cannot run here.
    #[error("no RDMA device: {0}")]
    NoDevice(String),
    /// The target range is outside what was granted, or the right is missing
    /// (IBV_WC_REM_ACCESS_ERR).
    #[error("remote access error on region {region}: {reason}")]
    RemoteAccess {
        /// The region addressed.
        region: u32,
        /// What check failed.
        reason: String,
    },
    /// A malformed request: an atomic on an unaligned address, a zero-length or overflowing
    /// range (IBV_WC_REM_INV_REQ_ERR).
    #[error("invalid remote request: {0}")]
    InvalidRequest(String),
    /// The region was revoked (deregistered) after it was granted.
    #[error("region {0} was revoked")]
    Revoked(u32),
    /// The local buffer does not match the operation's length (IBV_WC_LOC_LEN_ERR).
    #[error("local length error: {0}")]
    LocalLength(String),
    /// The peer refused a control request (with its reason).
    #[error("refused: {0}")]
    Refused(String),
    /// The control channel broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl RdmaError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RdmaError {
        let context = context.into();
        move |source| RdmaError::Io { context, source }
    }
}
