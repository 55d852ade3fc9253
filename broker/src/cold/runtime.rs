//! The catch-up readers' own tokio runtime.
//!
//! In a cluster the shards a process leads share one, which lives as long as the process:
//! OpenDAL's HTTP client is process-wide, and a pooled connection belongs to the runtime that
//! opened it, so a runtime dropped with a handed-over shard broke connections that the broker's
//! flush stream and other shards then picked from the pool ("dispatch task is gone", a retry
//! and a second of backoff in an acks=all flush).

use tokio::runtime::{Handle, Runtime};

/// A multi-threaded runtime for cold reads, apart from the network runtime: a catch-up reader
/// waiting on storage or checking CRCs of old data occupies these threads, never the ones that
/// serve produce and tailing fetch.
pub struct ColdRuntime {
    runtime: Option<Runtime>,
}

impl ColdRuntime {
    /// Starts `threads` worker threads named `hotwire-cold`, each at scheduling niceness `nice`
    /// (Linux sets it per thread): when the CPU is short, the network threads run first.
    pub fn start(threads: usize, nice: i32) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("hotwire-cold")
            .on_thread_start(move || lower_priority(nice))
            .enable_all()
            .build()?;
        Ok(ColdRuntime {
            runtime: Some(runtime),
        })
    }

    /// Where cold work is spawned.
    pub fn handle(&self) -> &Handle {
        self.runtime
            .as_ref()
            .expect("the runtime lives until drop")
            .handle()
    }
}

/// Sets the calling thread's niceness; a failure only costs isolation, so it is logged.
fn lower_priority(nice: i32) {
    let tid = rustix::thread::gettid();
    if let Err(error) = rustix::process::setpriority_process(Some(tid), nice) {
        tracing::warn!(%error, nice, "cannot lower the cold-read threads' priority");
    }
}

impl Drop for ColdRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio forbids inside another runtime (the broker is
        // dropped on the network runtime); in-flight cold reads are abandoned either way.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
