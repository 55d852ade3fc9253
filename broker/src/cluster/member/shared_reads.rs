//! Reads of etcd made on clients' behalf, shared: a caller waits for a read that began after
//! it arrived instead of starting one of its own, so a flood of Metadata or FindCoordinator
//! requests costs etcd about two reads at a time, not one each, and every answer still
//! reflects etcd as it was after the request arrived.

use std::future::Future;

use parking_lot::Mutex;
use tokio::time::Instant;

/// One read at a time, shared by the callers that arrived before it began.
#[derive(Default)]
pub struct SharedReads {
    /// Held while a read runs; tokio's mutex is fair, so callers take turns in arrival order.
    turn: tokio::sync::Mutex<()>,
    /// When the last read that succeeded began.
    last_began: Mutex<Option<Instant>>,
}

impl SharedReads {
    /// Runs `read` (true when it succeeded) unless a read that began at or after `arrived`
    /// has succeeded meanwhile.
    pub async fn read_since(&self, arrived: Instant, read: impl Future<Output = bool>) {
        let _turn = self.turn.lock().await;
        if self.last_began.lock().is_some_and(|began| began >= arrived) {
            return;
        }
        let began = Instant::now();
        if read.await {
            *self.last_began.lock() = Some(began);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_callers_shares_two_reads_and_none_is_answered_from_before_it_arrived() {
        let reads = Arc::new(SharedReads::default());
        let count = Arc::new(AtomicUsize::new(0));
        let read = |count: Arc<AtomicUsize>| async move {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10)).await;
            true
        };
        // One read is running when 50 callers arrive: they need one more, not 50.
        let first = tokio::spawn({
            let (reads, count) = (reads.clone(), count.clone());
            async move { reads.read_since(Instant::now(), read(count)).await }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        let callers: Vec<_> = (0..50)
            .map(|_| {
                let (reads, count) = (reads.clone(), count.clone());
                let arrived = Instant::now();
                tokio::spawn(async move { reads.read_since(arrived, read(count)).await })
            })
            .collect();
        first.await.unwrap();
        for caller in callers {
            caller.await.unwrap();
        }
        assert_eq!(count.load(Ordering::SeqCst), 2);
        // A caller after that reads again.
        reads.read_since(Instant::now(), read(count.clone())).await;
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_read_is_not_shared() {
        let reads = SharedReads::default();
        let arrived = Instant::now();
        reads.read_since(arrived, async { false }).await;
        let mut ran = false;
        reads
            .read_since(arrived, async {
                ran = true;
                true
            })
            .await;
        assert!(ran);
    }
}
