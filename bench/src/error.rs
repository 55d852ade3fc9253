//! The one error type of the bench, with the exit code each kind of failure maps to.

use std::path::PathBuf;

use rdkafka::error::KafkaError;

/// Everything that can stop a benchmark. Messages name the file, address or setting involved,
/// because the reader is a person who has to fix a workload file or a broker address.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A workload file that cannot be read, parsed or validated.
    #[error("workload {path}: {message}")]
    Workload { path: PathBuf, message: String },

    /// A bad command-line value that clap could not catch (e.g. a combination of options).
    #[error("{0}")]
    Usage(String),

    /// The Kafka client failed, with what we were doing at the time.
    #[error("{context}: {source}")]
    Kafka {
        context: String,
        #[source]
        source: KafkaError,
    },

    /// The broker answered, but not as a benchmark needs (e.g. topics never appeared).
    #[error("broker: {0}")]
    Broker(String),

    /// Local I/O: output files, the limits probe, a spawned broker.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// Writing a plot failed.
    #[error("plot {path}: {message}")]
    Plot { path: PathBuf, message: String },

    /// A worker thread ended abnormally.
    #[error("{0}")]
    Worker(String),
}

impl BenchError {
    /// Exit code: 2 for input the user must fix, 1 for failures while running.
    pub fn exit_code(&self) -> i32 {
        match self {
            BenchError::Workload { .. } | BenchError::Usage(_) => 2,
            _ => 1,
        }
    }

    /// Wraps a Kafka client error with what we were doing.
    pub fn kafka(context: impl Into<String>) -> impl FnOnce(KafkaError) -> BenchError {
        let context = context.into();
        move |source| BenchError::Kafka { context, source }
    }

    /// Wraps an I/O error with what we were doing.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let context = context.into();
        move |source| BenchError::Io { context, source }
    }
}

/// Result with [`BenchError`].
pub type Result<T, E = BenchError> = std::result::Result<T, E>;
