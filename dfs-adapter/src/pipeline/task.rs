//! The pipeline task: receives commands, seals objects when a policy fires, writes them
//! concurrently, retries failures and delivers outcomes in object order.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use opendal::Buffer;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::batcher::Batcher;
use super::seal::{seal, SealedObject};
use super::{Command, Counters, FlushConfig, FlushEvent};
use crate::{ChunkLocation, ObjectId, StorageError, Store};

/// Upper bound of the pause between attempts at one object.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Commands handled in one go before the task looks at timers and completed writes again.
const DRAIN_LIMIT: usize = 1024;

/// A sealed object that has not been delivered as `Durable` yet.
struct Slot {
    id: ObjectId,
    /// The object's bytes, kept for re-attempts; `None` once durable, which releases the
    /// batches' buffers even while an older object still holds up delivery.
    data: Option<Buffer>,
    chunks: Vec<ChunkLocation>,
    bytes: u64,
    sealed_at: Instant,
    /// The latest failure not yet reported to the sink, with its attempt number.
    unreported: Option<(Arc<StorageError>, u32)>,
}

/// Result of one write attempt.
struct Attempt {
    id: ObjectId,
    number: u32,
    /// Batches in the object, for the counters.
    batches: u64,
    result: Result<(), StorageError>,
}

/// State owned by the pipeline task.
pub(super) struct Task<S> {
    store: Store,
    config: FlushConfig,
    sink: S,
    batcher: Batcher,
    next_id: ObjectId,
    /// Sealed, undelivered objects, oldest first; their ids are consecutive.
    window: VecDeque<Slot>,
    attempts: FuturesUnordered<BoxFuture<'static, Attempt>>,
    counters: Arc<Counters>,
    /// A `flush_now` is pending: flush regardless of policies until nothing is left.
    force: bool,
    /// Shutdown requested (or all handles dropped): flush everything, then stop.
    closing: bool,
}

impl<S: FnMut(FlushEvent) + Send + 'static> Task<S> {
    pub(super) fn new(
        store: Store,
        config: FlushConfig,
        first_object: ObjectId,
        sink: S,
        counters: Arc<Counters>,
    ) -> Self {
        Task {
            store,
            batcher: Batcher::new(&config),
            config,
            sink,
            next_id: first_object,
            window: VecDeque::new(),
            attempts: FuturesUnordered::new(),
            counters,
            force: false,
            closing: false,
        }
    }

    pub(super) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        info!(first_object = %self.next_id, config = ?self.config, "flush pipeline started");
        let mut input_open = true;
        // One timer re-armed as deadlines change, rather than a new one per loop.
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        loop {
            self.seal_due();
            if !input_open && self.batcher.is_empty() && self.window.is_empty() {
                break;
            }
            // With the window full, a due deadline cannot be acted on; wait for a write instead.
            let deadline = if self.has_room() {
                self.batcher.deadline()
            } else {
                None
            };
            if deadline != armed {
                if let Some(at) = deadline {
                    timer.as_mut().reset(at.into());
                }
                armed = deadline;
            }
            tokio::select! {
                Some(attempt) = self.attempts.next(), if !self.attempts.is_empty() => {
                    self.on_attempt(attempt);
                }
                command = commands.recv(), if input_open => match command {
                    Some(command) => {
                        self.on_command(command, &mut commands);
                        self.drain(&mut commands);
                    }
                    None => {
                        input_open = false;
                        self.closing = true;
                    }
                },
                () = &mut timer, if armed.is_some() => {
                    // The policy check at the top of the loop acts on it.
                    armed = None;
                }
            }
        }
        info!(next_object = %self.next_id, "flush pipeline stopped");
    }

    /// Handles queued commands without waiting, a bounded number at a time.
    fn drain(&mut self, commands: &mut mpsc::UnboundedReceiver<Command>) {
        for _ in 0..DRAIN_LIMIT {
            if self.batcher.is_due(Instant::now()) {
                return;
            }
            match commands.try_recv() {
                Ok(command) => self.on_command(command, commands),
                Err(_) => return,
            }
        }
    }

    fn on_command(&mut self, command: Command, commands: &mut mpsc::UnboundedReceiver<Command>) {
        match command {
            Command::Batch(batch) => self.batcher.push(batch, Instant::now()),
            Command::FlushNow => self.force = true,
            Command::Abandon => {
                warn!(
                    pending = self.window.len(),
                    "flush pipeline abandoned; objects in flight are given up"
                );
                self.window.clear();
                drop(self.batcher.take());
                self.attempts.clear();
                self.closing = true;
                commands.close();
                while commands.try_recv().is_ok() {}
            }
            Command::Shutdown => {
                debug!("flush pipeline shutting down");
                self.closing = true;
                // No new commands; those already queued are still received and flushed.
                commands.close();
            }
        }
    }

    fn has_room(&self) -> bool {
        self.window.len() < self.config.max_in_flight.max(1)
    }

    /// Whether an object is being written (sealed, not durable yet).
    fn writing(&self) -> bool {
        self.window.iter().any(|slot| slot.data.is_some())
    }

    /// Seals and starts writing objects while the in-flight window has room and either a
    /// policy (or a flush request) says so or, with group commit, no object is being written.
    fn seal_due(&mut self) {
        while self.has_room()
            && !self.batcher.is_empty()
            && (self.force
                || self.closing
                || (self.config.group_commit && !self.writing())
                || self.batcher.is_due(Instant::now()))
        {
            let object = seal(self.next_id, self.batcher.take());
            self.next_id = self.next_id.next();
            self.start(object);
        }
        if self.batcher.is_empty() {
            self.force = false;
        }
    }

    fn start(&mut self, object: SealedObject) {
        self.store.place_flush_object(object.id, object.bytes);
        debug!(object = %object.id, bytes = object.bytes, batches = object.batches,
            partitions = object.chunks.len(), "writing flush object");
        self.attempts.push(self.attempt(
            object.id,
            object.data.clone(),
            object.batches,
            1,
            Duration::ZERO,
        ));
        self.window.push_back(Slot {
            id: object.id,
            data: Some(object.data),
            chunks: object.chunks,
            bytes: object.bytes,
            sealed_at: object.sealed_at,
            unreported: None,
        });
    }

    fn attempt(
        &self,
        id: ObjectId,
        data: Buffer,
        batches: u64,
        number: u32,
        delay: Duration,
    ) -> BoxFuture<'static, Attempt> {
        let store = self.store.clone();
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let result = store.write_object(id, data).await;
            Attempt {
                id,
                number,
                batches,
                result,
            }
        })
    }

    fn on_attempt(&mut self, attempt: Attempt) {
        let Some(front) = self.window.front().map(|slot| slot.id) else {
            error!(object = %attempt.id, "write finished for an object not in flight");
            return;
        };
        let index = usize::try_from(attempt.id.0.wrapping_sub(front.0)).unwrap_or(usize::MAX);
        let Some(slot) = self.window.get_mut(index) else {
            error!(object = %attempt.id, "write finished for an object not in flight");
            return;
        };
        match attempt.result {
            Ok(()) => {
                slot.data = None;
                self.counters
                    .objects_written
                    .fetch_add(1, Ordering::Relaxed);
                self.counters
                    .bytes_written
                    .fetch_add(slot.bytes, Ordering::Relaxed);
                self.counters
                    .batches_written
                    .fetch_add(attempt.batches, Ordering::Relaxed);
            }
            Err(error) => {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                let delay = backoff(self.config.retry_backoff, attempt.number);
                warn!(object = %attempt.id, attempt = attempt.number, %error,
                    retry_in = ?delay, "flush object write failed");
                slot.unreported = Some((Arc::new(error), attempt.number));
                // Same id, same bytes: the object's content never changes between attempts.
                let data = slot.data.clone().unwrap_or_default();
                let next = self.attempt(
                    attempt.id,
                    data,
                    attempt.batches,
                    attempt.number.saturating_add(1),
                    delay,
                );
                self.attempts.push(next);
            }
        }
        self.deliver();
    }

    /// Reports, oldest first, every outcome that no older object holds back.
    fn deliver(&mut self) {
        while let Some(front) = self.window.front_mut() {
            if let Some((error, attempt)) = front.unreported.take() {
                (self.sink)(FlushEvent::Failed {
                    object: front.id,
                    error,
                    attempt,
                });
            }
            if front.data.is_some() {
                break; // not durable yet
            }
            let Some(slot) = self.window.pop_front() else {
                break;
            };
            (self.sink)(FlushEvent::Durable {
                object: slot.id,
                chunks: slot.chunks,
                bytes: slot.bytes,
                elapsed: slot.sealed_at.elapsed(),
            });
        }
    }
}

/// Pause before attempt `failed + 1`: `base * 2^(failed - 1)`, at most [`MAX_BACKOFF`].
fn backoff(base: Duration, failed: u32) -> Duration {
    let factor = 1u32 << failed.saturating_sub(1).min(16);
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_millis(200);
        assert_eq!(backoff(base, 1), Duration::from_millis(200));
        assert_eq!(backoff(base, 2), Duration::from_millis(400));
        assert_eq!(backoff(base, 5), Duration::from_millis(3200));
        assert_eq!(backoff(base, 6), MAX_BACKOFF);
        assert_eq!(backoff(base, u32::MAX), MAX_BACKOFF);
        assert_eq!(backoff(Duration::from_secs(60), 1), MAX_BACKOFF);
    }
}
