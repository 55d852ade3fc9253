//! Routes OpenDAL's per-operation logging into `tracing`.
//!
//! OpenDAL's default `LoggingLayer` interceptor writes through the `log` crate; the rest of
//! Hotwire logs with `tracing`, so storage operations would otherwise be invisible (or need a
//! `log` bridge) wherever a `tracing` subscriber is installed.

use std::fmt;

use opendal::layers::LoggingInterceptor;
use opendal::raw::{Operation, ServiceInfo};
use opendal::ErrorKind;

/// Target of the events, so they can be filtered (`RUST_LOG=hotwire::storage=debug`).
const TARGET: &str = "hotwire::storage";

/// A [`LoggingInterceptor`] emitting `tracing` events: failures at `warn` (`error` for
/// unexpected ones, `debug` for absent objects: an answer, e.g. to a lookup of a user that does
/// not exist, which the caller reports if it matters), everything else at `trace`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TracingInterceptor;

impl LoggingInterceptor for TracingInterceptor {
    fn log(
        &self,
        info: &ServiceInfo,
        operation: Operation,
        context: &[(&str, &str)],
        message: &str,
        err: Option<&opendal::Error>,
    ) {
        // Formatting is deferred (Display wrapper), so disabled levels cost nothing.
        let context = Context(context);
        let service = info.scheme();
        match err {
            Some(err) if err.kind() == ErrorKind::Unexpected => tracing::error!(
                target: TARGET, service, %operation, %context, error = ?err, "{message}"
            ),
            Some(err) if err.kind() == ErrorKind::NotFound => tracing::debug!(
                target: TARGET, service, %operation, %context, error = %err, "{message}"
            ),
            Some(err) => tracing::warn!(
                target: TARGET, service, %operation, %context, error = %err, "{message}"
            ),
            None => tracing::trace!(
                target: TARGET, service, %operation, %context, "{message}"
            ),
        }
    }
}

/// Key-value pairs OpenDAL attaches to an operation (path, range, sizes).
struct Context<'a>(&'a [(&'a str, &'a str)]);

impl fmt::Display for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{key}={value}")?;
        }
        Ok(())
    }
}
